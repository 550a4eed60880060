//! The shared driver: bring-up around the personality hooks, per-queue init, RSS, and the
//! [`Nic`] data path over the rings.

use joyride_drivers::{
    Batch, Capabilities, Iova, LinkState, MacAddr, Nic, NicError, Offloads, PacketBuf, Pool,
    QueueCounters, QueueId, RxCsum,
};
use joyride_vfio::{Bar, Device, DmaMapping};

use crate::desc::{self, RxErrBits, RXD_STAT_L4CS, RXD_STAT_UDPCS};
use crate::regs::{common, x82576, x82599};
use crate::ring::{wmb_before_tail, PoolDma, RxDone, RxRing, TxRing};
use crate::{igb, x82599 as p82599, IntelError, VENDOR_INTEL};

/// Which part this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Personality {
    /// 82599 10 GbE (X520 and relatives).
    X82599,
    /// 82576 1 GbE (igb).
    I82576,
}

impl Personality {
    /// The personality for an Intel PCI device id, if this driver knows it.
    pub fn from_pci(vendor: u16, device: u16) -> Option<Personality> {
        if vendor != VENDOR_INTEL {
            return None;
        }
        match device {
            // 82599 datasheet §9.3.3.2 device ids: KX4, KX4 mezz, combo backplane, CX4, SFP+,
            // SFP+ FCoE, T3 LOM, backplane FCoE, SFP EM, SFP SF2, SFP SF QP, QSFP SF QP.
            0x10f7 | 0x1514 | 0x10f8 | 0x10f9 | 0x10fb | 0x1529 | 0x151c | 0x152a | 0x1507
            | 0x154d | 0x1557 | 0x1558 | 0x154a => Some(Personality::X82599),
            // 82576 datasheet §9.x device ids: copper, fiber, serdes, quad copper, NS, NS
            // serdes, serdes quad, quad copper ET2.
            0x10c9 | 0x10e6 | 0x10e7 | 0x10e8 | 0x150a | 0x1518 | 0x150d | 0x1526 => {
                Some(Personality::I82576)
            }
            _ => None,
        }
    }

    fn rx_queue_base(self) -> u64 {
        match self {
            Personality::X82599 => x82599::RX_QUEUE_BASE,
            Personality::I82576 => x82576::RX_QUEUE_BASE,
        }
    }

    fn tx_queue_base(self) -> u64 {
        match self {
            Personality::X82599 => x82599::TX_QUEUE_BASE,
            Personality::I82576 => x82576::TX_QUEUE_BASE,
        }
    }

    fn srrctl(self, q: u16) -> u64 {
        let inblock = match self {
            Personality::X82599 => x82599::SRRCTL_IN_BLOCK,
            Personality::I82576 => x82576::SRRCTL_IN_BLOCK,
        };
        self.rx_queue_base() + common::QUEUE_STRIDE * u64::from(q) + inblock
    }

    fn srrctl_drop_en(self) -> u32 {
        match self {
            Personality::X82599 => x82599::SRRCTL_DROP_EN,
            Personality::I82576 => x82576::SRRCTL_DROP_EN,
        }
    }

    fn err_bits(self) -> RxErrBits {
        match self {
            Personality::X82599 => desc::ERR_82599,
            Personality::I82576 => desc::ERR_82576,
        }
    }

    /// MRQC.MRQE value for "RSS only" (82599 §8.2.3.7.12: 0001b; 82576: 010b).
    fn mrqe_rss(self) -> u32 {
        match self {
            Personality::X82599 => 0x1,
            Personality::I82576 => 0x2,
        }
    }

    /// Most queues of each kind.
    fn max_queues(self) -> u16 {
        match self {
            Personality::X82599 => 16, // RSS spreads over at most 16 queues
            Personality::I82576 => 8,
        }
    }

    fn ral0(self) -> u64 {
        match self {
            Personality::X82599 => x82599::RAL0,
            Personality::I82576 => x82576::RAL0,
        }
    }

    fn speed_mtu(self) -> u32 {
        1500
    }
}

/// How to bring the device up.
#[derive(Clone, Copy, Debug)]
pub struct IntelConfig {
    /// Receive queues (RSS spreads flows over them when more than one).
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// Descriptors per ring (a multiple of 8, 64..=4096).
    pub ring_size: u16,
    /// Use checksum offloads (receive status and transmit context descriptors).
    pub offloads: bool,
    /// Accept every unicast and multicast frame.
    pub promiscuous: bool,
    /// How long [`IntelNic::open`] waits for the link to come up (0: do not wait).
    pub link_wait_ms: u32,
}

impl Default for IntelConfig {
    fn default() -> Self {
        IntelConfig {
            rx_queues: 1,
            tx_queues: 1,
            ring_size: 512,
            offloads: true,
            promiscuous: false,
            link_wait_ms: 2000,
        }
    }
}

/// The device's own statistics counters (clear on read; accumulated here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HwStats {
    /// Good packets received (GPRC).
    pub rx_good_packets: u64,
    /// Good packets transmitted (GPTC).
    pub tx_good_packets: u64,
    /// Good octets received (GORC).
    pub rx_good_bytes: u64,
    /// Good octets transmitted (GOTC).
    pub tx_good_bytes: u64,
    /// Packets missed for want of a descriptor or buffer space (MPC).
    pub rx_missed: u64,
    /// CRC errors (CRCERRS).
    pub crc_errors: u64,
}

/// What [`IntelNic::loopback_selftest`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SelfTest {
    /// Frames transmitted.
    pub sent: u32,
    /// Frames received back byte-exact.
    pub received: u32,
    /// Frames received back that differ.
    pub corrupted: u32,
    /// The device's counters over the test.
    pub hw: HwStats,
}

/// The one place this driver sleeps: waits the datasheets prescribe during bring-up, link
/// waits and the self-test — never on the rx/tx paths (DESIGN.md §2: drivers touch no clock on
/// the data path).
#[allow(clippy::disallowed_methods)]
pub(crate) fn bring_up_sleep(d: std::time::Duration) {
    std::thread::sleep(d);
}

/// Checked register access with polling, shared by the personalities.
pub(crate) struct Regs {
    bar: Bar,
}

impl Regs {
    pub(crate) fn new(bar: Bar) -> Regs {
        Regs { bar }
    }

    pub(crate) fn r(&self, off: u64) -> Result<u32, IntelError> {
        Ok(self.bar.read32(off)?)
    }

    pub(crate) fn w(&self, off: u64, v: u32) -> Result<(), IntelError> {
        Ok(self.bar.write32(off, v)?)
    }

    pub(crate) fn set(&self, off: u64, bits: u32) -> Result<(), IntelError> {
        let v = self.r(off)?;
        self.w(off, v | bits)
    }

    pub(crate) fn clear(&self, off: u64, bits: u32) -> Result<(), IntelError> {
        let v = self.r(off)?;
        self.w(off, v & !bits)
    }

    pub(crate) fn sleep_ms(&self, ms: u64) {
        bring_up_sleep(std::time::Duration::from_millis(ms));
    }

    /// Polls `off` until `value & mask == want`, for up to `ms` milliseconds.
    pub(crate) fn poll(
        &self,
        off: u64,
        mask: u32,
        want: u32,
        ms: u32,
        what: &'static str,
    ) -> Result<(), IntelError> {
        for _ in 0..=ms * 10 {
            if self.r(off)? & mask == want {
                return Ok(());
            }
            bring_up_sleep(std::time::Duration::from_micros(100));
        }
        Err(IntelError::Timeout(what))
    }
}

struct RxQueue {
    ring: RxRing,
    tail_reg: u64,
}

struct TxQueue {
    ring: TxRing,
    tail_reg: u64,
}

/// Refill the receive ring once at least this many descriptors are free.
const RX_REFILL_BATCH: u16 = 32;

/// An 82599 or 82576 driven from user space through VFIO.
pub struct IntelNic {
    pers: Personality,
    regs: Regs,
    rx: Vec<RxQueue>,
    tx: Vec<TxQueue>,
    counters: Vec<QueueCounters>,
    pool: Pool,
    mac: MacAddr,
    offloads: bool,
    promiscuous: bool,
    /// Receive buffers are posted from byte 0 of the pool buffer (no headroom) so that the
    /// device's 1 KiB buffer-size granularity fits a whole frame.
    rx_head0: bool,
    hw: HwStats,
    _pool_map: DmaMapping,
    dev: Device,
}

impl std::fmt::Debug for IntelNic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntelNic")
            .field("personality", &self.pers)
            .field("dev", &self.dev)
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

/// A fixed, documented RSS key: the one from Microsoft's RSS verification suite, so that
/// hashes can be checked against published values.
pub(crate) const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

impl IntelNic {
    /// Brings up the 82599 or 82576 `dev` (personality from its PCI id) with receive buffers
    /// from `pool`, which it maps for DMA ([`Pool::set_iova_base`]).
    pub fn open(dev: Device, pool: Pool, cfg: IntelConfig) -> Result<IntelNic, IntelError> {
        let (vendor, device) = dev.pci_ids()?;
        let pers =
            Personality::from_pci(vendor, device).ok_or(IntelError::Unsupported(vendor, device))?;
        if cfg.ring_size < 64 || cfg.ring_size > 4096 || !cfg.ring_size.is_multiple_of(8) {
            return Err(IntelError::Config("ring_size must be a multiple of 8 in 64..=4096"));
        }
        if cfg.rx_queues == 0
            || cfg.tx_queues == 0
            || cfg.rx_queues > pers.max_queues()
            || cfg.tx_queues > pers.max_queues()
        {
            return Err(IntelError::Config("queue count out of range for this device"));
        }
        // Receive buffer size in SRRCTL's 1 KiB units; a whole 1522-byte frame must fit.
        let rx_head0 = pool.buf_size() - pool.headroom() < 2048;
        let room = if rx_head0 { pool.buf_size() } else { pool.buf_size() - pool.headroom() };
        let bsize_kb = (room / 1024).min(15) as u32;
        if bsize_kb < 2 {
            return Err(IntelError::Config("pool buffers must hold at least 2 KiB"));
        }
        let bar = dev.map_bar(0)?;
        let regs = Regs { bar };
        dev.enable_bus_master()?;

        // 82599 §4.6.3 / 82576 §4.5: reset, link, statistics, receive, transmit.
        match pers {
            Personality::X82599 => p82599::reset(&regs)?,
            Personality::I82576 => igb::reset(&regs)?,
        }
        let ral = regs.r(pers.ral0())?;
        let rah = regs.r(pers.ral0() + 4)?;
        let mut mac = [0u8; 6];
        mac[..4].copy_from_slice(&ral.to_le_bytes());
        mac[4..].copy_from_slice(&rah.to_le_bytes()[..2]);
        match pers {
            Personality::X82599 => p82599::link_setup(&regs)?,
            Personality::I82576 => igb::link_setup(&regs)?,
        }
        // §4.6.5: read the clear-on-read statistics once so they start at zero.
        let mut discard = HwStats::default();
        match pers {
            Personality::X82599 => p82599::read_stats(&regs, &mut discard)?,
            Personality::I82576 => igb::read_stats(&regs, &mut discard)?,
        }
        let hw = HwStats::default();

        let pool_map = dev.container().map_dma(PoolDma(pool.clone()))?;
        pool.set_iova_base(Some(Iova(pool_map.iova())));

        let rss = cfg.rx_queues > 1;
        match pers {
            Personality::X82599 => p82599::rx_global(&regs, cfg.promiscuous, rss)?,
            Personality::I82576 => igb::rx_global(&regs, rss)?,
        }
        program_rss(&regs, pers, cfg.rx_queues)?;

        let mut nic = IntelNic {
            pers,
            regs,
            rx: Vec::new(),
            tx: Vec::new(),
            counters: vec![QueueCounters::default(); usize::from(cfg.rx_queues.max(cfg.tx_queues))],
            pool,
            mac: MacAddr(mac),
            offloads: cfg.offloads,
            promiscuous: cfg.promiscuous,
            rx_head0,
            hw,
            _pool_map: pool_map,
            dev,
        };
        for q in 0..cfg.rx_queues {
            nic.init_rx_queue(q, cfg.ring_size, bsize_kb)?;
        }
        match pers {
            Personality::X82599 => p82599::rx_enable(&nic.regs)?,
            Personality::I82576 => igb::rx_enable(&nic.regs, cfg.promiscuous)?,
        }
        if pers == Personality::X82599 {
            p82599::tx_global(&nic.regs)?;
        }
        for q in 0..cfg.tx_queues {
            nic.init_tx_queue(q, cfg.ring_size)?;
        }
        if pers == Personality::I82576 {
            igb::tx_enable(&nic.regs)?;
        }
        if cfg.link_wait_ms > 0 {
            for _ in 0..cfg.link_wait_ms / 10 {
                if nic.link().up {
                    break;
                }
                bring_up_sleep(std::time::Duration::from_millis(10));
            }
        }
        Ok(nic)
    }

    /// 82599 §4.6.7 / 82576 §4.5.9, per queue: ring base and length, buffer size and
    /// descriptor type, head and tail at 0, enable and wait for it, then post buffers and
    /// bump the tail.
    fn init_rx_queue(&mut self, q: u16, size: u16, bsize_kb: u32) -> Result<(), IntelError> {
        let blk = self.pers.rx_queue_base() + common::QUEUE_STRIDE * u64::from(q);
        let mem = self.dev.container().alloc_dma(usize::from(size) * desc::DESC_LEN, false)?;
        let ring = RxRing::new(mem, size, (bsize_kb * 1024) as u16);
        let (base, len) = ring.base();
        let r = &self.regs;
        r.w(blk + common::DBAL, base as u32)?;
        r.w(blk + common::DBAH, (base >> 32) as u32)?;
        r.w(blk + common::DLEN, len)?;
        r.w(
            self.pers.srrctl(q),
            bsize_kb | common::SRRCTL_DESCTYPE_ADV_ONEBUF | self.pers.srrctl_drop_en(),
        )?;
        r.w(blk + common::DH, 0)?;
        r.w(blk + common::DT, 0)?;
        r.set(blk + common::DCTL, common::DCTL_ENABLE)?;
        r.poll(blk + common::DCTL, common::DCTL_ENABLE, common::DCTL_ENABLE, 100, "RXDCTL.ENABLE")?;
        self.rx.push(RxQueue { ring, tail_reg: blk + common::DT });
        self.refill(usize::from(q))?;
        Ok(())
    }

    /// 82599 §4.6.8 / 82576 §4.5.10, per queue: ring base and length, head and tail at 0,
    /// write-back threshold 0 (every RS descriptor written back), enable and wait for it.
    fn init_tx_queue(&mut self, q: u16, size: u16) -> Result<(), IntelError> {
        let blk = self.pers.tx_queue_base() + common::QUEUE_STRIDE * u64::from(q);
        let mem = self.dev.container().alloc_dma(usize::from(size) * desc::DESC_LEN, false)?;
        let ring = TxRing::new(mem, size);
        let (base, len) = ring.base();
        let r = &self.regs;
        r.w(blk + common::DBAL, base as u32)?;
        r.w(blk + common::DBAH, (base >> 32) as u32)?;
        r.w(blk + common::DLEN, len)?;
        r.w(blk + common::DH, 0)?;
        r.w(blk + common::DT, 0)?;
        // TXDCTL: PTHRESH 32, HTHRESH 1, WTHRESH 0 (82599 §8.2.3.9.10 recommends these for
        // descriptor write-back without head write-back).
        r.w(blk + common::DCTL, common::DCTL_ENABLE | 32 | (1 << 8))?;
        r.poll(blk + common::DCTL, common::DCTL_ENABLE, common::DCTL_ENABLE, 100, "TXDCTL.ENABLE")?;
        self.tx.push(TxQueue { ring, tail_reg: blk + common::DT });
        Ok(())
    }

    /// Posts fresh buffers into every free receive descriptor of queue `q` and writes the tail
    /// once.
    fn refill(&mut self, q: usize) -> Result<(), IntelError> {
        let rq = &mut self.rx[q];
        let mut posted = false;
        for _ in 0..rq.ring.free() {
            let Some(mut b) = self.pool.alloc() else { break };
            if self.rx_head0 {
                let h = b.headroom();
                b.prepend(h);
                b.set_len(0);
            }
            let Some(iova) = b.iova() else { break };
            if rq.ring.post(b, iova.0).is_err() {
                break;
            }
            posted = true;
        }
        if posted {
            wmb_before_tail();
            self.regs.w(rq.tail_reg, u32::from(rq.ring.tail()))?;
        }
        Ok(())
    }

    /// Which part this is.
    pub fn personality(&self) -> Personality {
        self.pers
    }

    /// The PCI address.
    pub fn bdf(&self) -> &str {
        self.dev.bdf()
    }

    /// Write-backs the device made to receive descriptors the driver had not posted (each
    /// one rejected).
    pub fn unposted_writebacks(&self) -> u64 {
        self.rx.iter().map(|q| q.ring.unposted_dd).sum()
    }

    /// The device's statistics registers, accumulated since bring-up.
    pub fn hw_stats(&mut self) -> Result<HwStats, IntelError> {
        match self.pers {
            Personality::X82599 => p82599::read_stats(&self.regs, &mut self.hw)?,
            Personality::I82576 => igb::read_stats(&self.regs, &mut self.hw)?,
        }
        Ok(self.hw)
    }

    /// The registers a bring-up report shows (control, link, receive/transmit enables, queue 0's
    /// ring registers; none clear-on-read), read now.
    pub fn registers(&self) -> Vec<crate::selftest::RegValue> {
        crate::selftest::snapshot(&self.regs, self.pers)
    }

    /// The RSS redirection table as programmed (128 entries).
    pub fn reta(&self) -> Result<Vec<u8>, IntelError> {
        let mut v = Vec::with_capacity(128);
        for i in 0..common::RETA_REGS {
            v.extend_from_slice(&self.regs.r(common::RETA + 4 * i)?.to_le_bytes());
        }
        Ok(v)
    }

    /// Self-test for a user with real hardware (an X520, or an 82576): puts the MAC in
    /// loopback, sends `frames` numbered test frames on queue 0 and checks that each comes
    /// back byte-exact, with the device's counters. Loopback is turned off again afterwards.
    pub fn loopback_selftest(&mut self, frames: u32) -> Result<SelfTest, IntelError> {
        match self.pers {
            Personality::X82599 => p82599::loopback(&self.regs, true)?,
            Personality::I82576 => igb::loopback(&self.regs, true)?,
        }
        let hw0 = self.hw_stats()?;
        let mut t = SelfTest::default();
        let frame = |i: u32, mac: [u8; 6]| -> Vec<u8> {
            let mut f = vec![0u8; 60 + (i as usize % 1400)];
            f[0..6].copy_from_slice(&mac);
            f[6..12].copy_from_slice(&mac);
            f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            f[14..18].copy_from_slice(&i.to_be_bytes());
            for (j, b) in f.iter_mut().enumerate().skip(18) {
                *b = (i as usize * 31 + j) as u8;
            }
            f
        };
        let mut batch = Batch::new(32);
        for i in 0..frames {
            let Some(b) = self.pool.alloc_copy(&frame(i, self.mac.0)) else { break };
            let _ = batch.push(b);
            let _ = self.tx_burst(QueueId(0), &mut batch);
            batch.clear();
            t.sent += 1;
        }
        let mut rx = Batch::new(32);
        for _ in 0..2000 {
            rx.clear();
            let _ = self.rx_burst(QueueId(0), &mut rx);
            for b in rx.iter() {
                let d = b.data();
                let i = d.get(14..18).map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
                match i {
                    Some(i) if d == frame(i, self.mac.0).as_slice() => t.received += 1,
                    _ => t.corrupted += 1,
                }
            }
            if t.received + t.corrupted >= t.sent {
                break;
            }
            bring_up_sleep(std::time::Duration::from_millis(1));
        }
        let hw1 = self.hw_stats()?;
        t.hw = HwStats {
            rx_good_packets: hw1.rx_good_packets - hw0.rx_good_packets,
            tx_good_packets: hw1.tx_good_packets - hw0.tx_good_packets,
            rx_good_bytes: hw1.rx_good_bytes - hw0.rx_good_bytes,
            tx_good_bytes: hw1.tx_good_bytes - hw0.tx_good_bytes,
            rx_missed: hw1.rx_missed - hw0.rx_missed,
            crc_errors: hw1.crc_errors - hw0.crc_errors,
        };
        match self.pers {
            Personality::X82599 => p82599::loopback(&self.regs, false)?,
            Personality::I82576 => igb::loopback(&self.regs, false)?,
        }
        if !self.promiscuous {
            // Loopback turned promiscuous mode on; put the filters back as configured.
            match self.pers {
                Personality::X82599 => {
                    self.regs.clear(x82599::FCTRL, x82599::FCTRL_UPE | x82599::FCTRL_MPE)?
                }
                Personality::I82576 => igb::rx_enable(&self.regs, false)?,
            }
        }
        Ok(t)
    }

    /// What the write-back's status says about the L4 checksum (`e`: this part's error bits).
    #[inline]
    fn rx_csum(offloads: bool, e: RxErrBits, st: u32) -> RxCsum {
        let l4 = st & (RXD_STAT_L4CS | RXD_STAT_UDPCS) != 0;
        // A frame with IPCS set had its IPv4 header checked too (IPE clear); IPv6 has none.
        if offloads && l4 && st & (e.tcpe | e.ipe) == 0 {
            RxCsum::Verified
        } else {
            RxCsum::Unknown
        }
    }

    /// A frame ready to post: in a buffer of `pool` (copied there if it came from elsewhere),
    /// 1..=1518 bytes, with the context descriptor its checksum request needs (or the checksum
    /// completed in software when offloads are off).
    #[inline]
    fn prepare_tx(
        pool: &Pool,
        offloads: bool,
        mut b: PacketBuf,
    ) -> Option<(PacketBuf, Option<desc::TxContext>)> {
        if !pool.owns(&b) {
            let mut own = pool.alloc()?;
            if !own.copy_from(b.data()) {
                return None;
            }
            own.set_tx_csum(b.tx_csum());
            b = own;
        }
        if b.is_empty() || b.len() > 1518 {
            return None;
        }
        let ctx = match b.tx_csum() {
            Some(req) if offloads => desc::TxContext::for_csum(b.data(), req),
            _ => None,
        };
        if ctx.is_none() && b.tx_csum().is_some() && !b.complete_partial_csum() {
            return None;
        }
        Some((b, ctx))
    }
}

/// 82599 §4.6.10.1 / 82576 §7.1.2.x: RSS key, redirection table (entry i → queue i mod n),
/// then MRQC (hash fields and "RSS only"). With one queue MRQC is 0 (no RSS).
fn program_rss(r: &Regs, pers: Personality, queues: u16) -> Result<(), IntelError> {
    if queues <= 1 {
        return r.w(common::MRQC, 0);
    }
    for i in 0..common::RSSRK_REGS as usize {
        let k = &RSS_KEY[4 * i..4 * i + 4];
        r.w(common::RSSRK + 4 * i as u64, u32::from_le_bytes([k[0], k[1], k[2], k[3]]))?;
    }
    for i in 0..common::RETA_REGS {
        let e = |j: u64| ((4 * i + j) % u64::from(queues)) as u32;
        r.w(common::RETA + 4 * i, e(0) | e(1) << 8 | e(2) << 16 | e(3) << 24)?;
    }
    r.w(common::MRQC, pers.mrqe_rss() | common::MRQC_FIELDS)
}

impl Nic for IntelNic {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mtu: self.pers.speed_mtu(),
            mac: self.mac,
            rx_queues: self.rx.len() as u16,
            tx_queues: self.tx.len() as u16,
            offloads: Offloads {
                rx_checksum: self.offloads,
                tx_checksum: self.offloads,
                tso: false,
                rss: self.rx.len() > 1,
            },
        }
    }

    fn link(&self) -> LinkState {
        match self.pers {
            Personality::X82599 => p82599::link(&self.regs),
            Personality::I82576 => igb::link(&self.regs),
        }
    }

    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        let q = usize::from(queue.0);
        if q >= self.rx.len() {
            return Err(NicError::BadQueue(queue));
        }
        // Per burst, not per packet: the part's error bits, the ring, the counters (added once
        // at the end).
        let errs = self.pers.err_bits();
        let offloads = self.offloads;
        let ring = &mut self.rx[q].ring;
        let (mut got, mut bytes, mut bad) = (0usize, 0u64, 0u64);
        let want = out.remaining();
        while got < want {
            let Some(done) = ring.take() else { break };
            match done {
                RxDone::Frame(mut b, len, st, _hash) => {
                    if st & errs.frame != 0 || len < 14 {
                        bad += 1;
                        continue; // dropped: back to the pool
                    }
                    b.set_len(usize::from(len)); // <= posted length <= capacity (ring checks)
                    b.set_rx_csum(Self::rx_csum(offloads, errs, st));
                    bytes += u64::from(len);
                    let _ = out.push(b); // cannot fail: got < remaining() on entry
                    got += 1;
                }
                RxDone::Bad => bad += 1,
            }
        }
        let c = &mut self.counters[q];
        c.rx_packets += got as u64;
        c.rx_bytes += bytes;
        c.rx_errors += bad;
        let ring = &self.rx[q].ring;
        if ring.free() >= RX_REFILL_BATCH || ring.posted() < RX_REFILL_BATCH {
            self.refill(q).map_err(|_| NicError::Corrupt("receive tail write failed"))?;
        }
        if self.rx[q].ring.posted() == 0 {
            self.counters[q].rx_drops += 1; // pool exhausted: the device has nowhere to write
        }
        Ok(got)
    }

    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        let q = usize::from(queue.0);
        if q >= self.tx.len() {
            return Err(NicError::BadQueue(queue));
        }
        // Per burst, not per packet: the ring and the pool are borrowed once, counters are
        // added once at the end.
        let (pool, offloads) = (&self.pool, self.offloads);
        let txq = &mut self.tx[q];
        txq.ring.reclaim();
        let n = bufs.len().min(usize::from(txq.ring.free() / 2));
        let (mut sent, mut bytes, mut dropped) = (0u64, 0u64, 0u64);
        for b in bufs.drain_front(n) {
            let len = b.len() as u64;
            let Some((b, ctx)) = Self::prepare_tx(pool, offloads, b) else {
                dropped += 1;
                continue;
            };
            let Some(iova) = b.iova() else {
                dropped += 1;
                continue;
            };
            if txq.ring.post(b, iova.0, ctx.as_ref()).is_err() {
                dropped += 1; // cannot happen: two descriptors per packet free
                continue;
            }
            sent += 1;
            bytes += len;
        }
        if sent > 0 {
            wmb_before_tail();
            let (reg, tail) = (txq.tail_reg, txq.ring.tail());
            self.regs
                .w(reg, u32::from(tail))
                .map_err(|_| NicError::Corrupt("transmit tail write failed"))?;
        }
        let c = &mut self.counters[q];
        c.tx_packets += sent;
        c.tx_bytes += bytes;
        c.tx_drops += dropped;
        Ok(n)
    }

    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        self.counters.get(usize::from(queue.0)).copied()
    }
}

impl Drop for IntelNic {
    fn drop(&mut self) {
        // Stop the device before its buffers and mappings go: receive and transmit off, queues
        // disabled, mastering off (no more DMA), then the shadows drop their buffers.
        let _ = match self.pers {
            Personality::X82599 => p82599::stop(&self.regs),
            Personality::I82576 => igb::stop(&self.regs),
        };
        for (base, n) in
            [(self.pers.rx_queue_base(), self.rx.len()), (self.pers.tx_queue_base(), self.tx.len())]
        {
            for q in 0..n as u64 {
                let _ = self
                    .regs
                    .clear(base + common::QUEUE_STRIDE * q + common::DCTL, common::DCTL_ENABLE);
            }
        }
        let _ = self.dev.disable_bus_master();
        for q in &mut self.rx {
            q.ring.clear();
        }
        for q in &mut self.tx {
            q.ring.clear();
        }
    }
}
