//! The virtio-net driver: bring-up (virtio 1.2 §3.1.1 and §5.1.5), one receive/transmit queue
//! pair, and the [`Nic`] data path.

use joyride_drivers::{
    Batch, Capabilities, LinkState, MacAddr, Nic, NicError, Offloads, PacketBuf, Pool,
    QueueCounters, QueueId, RxCsum,
};
use joyride_vfio::{Bar, Device, DmaMapping, EventFd};

use crate::pci::{self, common, feature, net_cfg, status, CapLocation};
use crate::ring::{PoolDma, SplitQueue, Used};
use crate::VirtioError;

/// virtio 1.2 §5.1.6: `struct virtio_net_hdr` with `num_buffers` (VERSION_1 layout): 12 bytes.
pub const NET_HDR_LEN: usize = 12;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`.
const HDR_F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`.
const HDR_F_DATA_VALID: u8 = 2;

const RXQ: u16 = 0;
const TXQ: u16 = 1;

/// How to bring the device up.
#[derive(Clone, Copy, Debug)]
pub struct VirtioNetConfig {
    /// Largest ring size to use (a power of two; the device may offer less).
    pub queue_size: u16,
    /// Route the receive queue's interrupt to an eventfd ([`Nic::wait_fd`]) when MSI-X works.
    pub rx_interrupt: bool,
    /// Accept checksum offloads when offered.
    pub offloads: bool,
}

impl Default for VirtioNetConfig {
    fn default() -> Self {
        VirtioNetConfig { queue_size: 256, rx_interrupt: true, offloads: true }
    }
}

/// A virtio-net device driven from user space through VFIO.
pub struct VirtioNet {
    // Drop order matters and is handled in `Drop`: reset the device first (no more DMA), then
    // the queues' buffers, then the mappings, then the device fd.
    rxq: SplitQueue,
    txq: SplitQueue,
    common: Bar,
    common_off: u64,
    notify: Bar,
    device_cfg: Option<(Bar, u64)>,
    notify_rx: u64,
    notify_tx: u64,
    pool: Pool,
    features: u64,
    mac: MacAddr,
    mtu: u32,
    rx_irq: Option<EventFd>,
    irq_armed: bool,
    broken: Option<&'static str>,
    counters: QueueCounters,
    notifies: u64,
    _pool_map: DmaMapping,
    dev: Device,
}

impl std::fmt::Debug for VirtioNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtioNet")
            .field("dev", &self.dev)
            .field("features", &format_args!("{:#x}", self.features))
            .field("mac", &self.mac)
            .finish_non_exhaustive()
    }
}

/// One BAR per capability location, checked to hold the whole structure.
fn window(dev: &Device, loc: CapLocation, need: u64) -> Result<(Bar, u64), VirtioError> {
    let bar = dev.map_bar(loc.bar)?;
    let end = u64::from(loc.offset) + u64::from(loc.length).max(need);
    if end > bar.len() || u64::from(loc.length) < need {
        return Err(VirtioError::MissingCap("capability outside its BAR"));
    }
    Ok((bar, u64::from(loc.offset)))
}

/// A common-configuration window (offsets relative to the structure).
struct Common<'a>(&'a Bar, u64);

impl Common<'_> {
    fn r8(&self, o: u64) -> Result<u8, VirtioError> {
        Ok(self.0.read8(self.1 + o)?)
    }
    fn r16(&self, o: u64) -> Result<u16, VirtioError> {
        Ok(self.0.read16(self.1 + o)?)
    }
    fn r32(&self, o: u64) -> Result<u32, VirtioError> {
        Ok(self.0.read32(self.1 + o)?)
    }
    fn w8(&self, o: u64, v: u8) -> Result<(), VirtioError> {
        Ok(self.0.write8(self.1 + o, v)?)
    }
    fn w16(&self, o: u64, v: u16) -> Result<(), VirtioError> {
        Ok(self.0.write16(self.1 + o, v)?)
    }
    fn w32(&self, o: u64, v: u32) -> Result<(), VirtioError> {
        Ok(self.0.write32(self.1 + o, v)?)
    }
    // virtio 1.2 §4.1.3.1: 64-bit fields are written as two 32-bit halves, low first.
    fn w64(&self, o: u64, v: u64) -> Result<(), VirtioError> {
        self.w32(o, v as u32)?;
        self.w32(o + 4, (v >> 32) as u32)
    }

    /// virtio 1.2 §4.1.4.3.2: write 0 and wait for the device to read back 0.
    fn reset(&self) -> Result<(), VirtioError> {
        self.w8(common::DEVICE_STATUS, 0)?;
        for _ in 0..1_000_000 {
            if self.r8(common::DEVICE_STATUS)? == 0 {
                return Ok(());
            }
            std::hint::spin_loop();
        }
        Err(VirtioError::Device("reset did not complete"))
    }

    fn add_status(&self, bits: u8) -> Result<(), VirtioError> {
        let s = self.r8(common::DEVICE_STATUS)?;
        self.w8(common::DEVICE_STATUS, s | bits)
    }
}

impl VirtioNet {
    /// Brings up the virtio-net device `dev` with receive buffers from `pool` (which it maps
    /// for DMA and records the IOVA of: [`Pool::set_iova_base`]).
    pub fn new(dev: Device, pool: Pool, cfg: VirtioNetConfig) -> Result<VirtioNet, VirtioError> {
        let (vendor, device) = dev.pci_ids()?;
        if vendor != pci::VENDOR_ID || device != pci::DEVICE_ID_NET_MODERN {
            return Err(if device == pci::DEVICE_ID_NET_TRANSITIONAL {
                VirtioError::Legacy
            } else {
                VirtioError::NotVirtioNet(vendor, device)
            });
        }
        if !cfg.queue_size.is_power_of_two() || cfg.queue_size < 2 {
            return Err(VirtioError::Config("queue_size must be a power of two >= 2"));
        }
        let caps = pci::parse_caps(&dev)?;
        let (common_bar, common_off) = window(&dev, caps.common, common::LEN)?;
        let (notify, notify_off) = window(&dev, caps.notify, 2)?;
        let device_cfg = match caps.device {
            Some(loc) => Some(window(&dev, loc, 12)?),
            None => None,
        };
        dev.enable_bus_master()?;
        let c = Common(&common_bar, common_off);

        // virtio 1.2 §3.1.1 steps 1-3.
        c.reset()?;
        c.add_status(status::ACKNOWLEDGE)?;
        c.add_status(status::DRIVER)?;
        // Step 4: features.
        c.w32(common::DEVICE_FEATURE_SELECT, 0)?;
        let lo = c.r32(common::DEVICE_FEATURE)?;
        c.w32(common::DEVICE_FEATURE_SELECT, 1)?;
        let hi = c.r32(common::DEVICE_FEATURE)?;
        let offered = u64::from(lo) | u64::from(hi) << 32;
        if offered & feature::VERSION_1 == 0 {
            let _ = c.w8(common::DEVICE_STATUS, status::FAILED);
            return Err(VirtioError::MissingFeature("VERSION_1"));
        }
        if offered & feature::ACCESS_PLATFORM == 0 {
            // Without it the device ignores the IOMMU and would read our IOVAs as physical
            // addresses (QEMU: iommu_platform=on).
            let _ = c.w8(common::DEVICE_STATUS, status::FAILED);
            return Err(VirtioError::MissingFeature("ACCESS_PLATFORM (iommu_platform=on)"));
        }
        let mut want = feature::VERSION_1
            | feature::ACCESS_PLATFORM
            | feature::NET_MAC
            | feature::NET_MTU
            | feature::NET_STATUS;
        if cfg.offloads {
            want |= feature::NET_CSUM | feature::NET_GUEST_CSUM;
        }
        // Not negotiated: MRG_RXBUF (one buffer holds a frame), EVENT_IDX, INDIRECT_DESC,
        // RING_PACKED, and MQ/CTRL_VQ (one queue pair; see the crate docs).
        let features = offered & want;
        c.w32(common::DRIVER_FEATURE_SELECT, 0)?;
        c.w32(common::DRIVER_FEATURE, features as u32)?;
        c.w32(common::DRIVER_FEATURE_SELECT, 1)?;
        c.w32(common::DRIVER_FEATURE, (features >> 32) as u32)?;
        // Steps 5-6.
        c.add_status(status::FEATURES_OK)?;
        if c.r8(common::DEVICE_STATUS)? & status::FEATURES_OK == 0 {
            let _ = c.w8(common::DEVICE_STATUS, status::FAILED);
            return Err(VirtioError::Device("device refused our feature set"));
        }

        // Device configuration (§5.1.4), read under config_generation (§4.1.4.3.1).
        let (mut mac, mut mtu) = (MacAddr([0x02, 0, 0, 0, 0, 0x01]), 1500u32);
        if let Some((bar, off)) = &device_cfg {
            for _ in 0..16 {
                let gen = c.r8(common::CONFIG_GENERATION)?;
                if features & feature::NET_MAC != 0 {
                    for (i, b) in mac.0.iter_mut().enumerate() {
                        *b = bar.read8(off + net_cfg::MAC + i as u64)?;
                    }
                }
                if features & feature::NET_MTU != 0 {
                    mtu = u32::from(bar.read16(off + net_cfg::MTU)?).clamp(68, 1500);
                }
                if c.r8(common::CONFIG_GENERATION)? == gen {
                    break;
                }
            }
        }

        // Interrupts: one MSI-X vector for the receive queue, if wanted and available.
        let rx_irq =
            if cfg.rx_interrupt { dev.enable_msix(1).ok().and_then(|mut v| v.pop()) } else { None };

        // Map the pool before any buffer is posted.
        let pool_map = dev.container().map_dma(PoolDma(pool.clone()))?;
        pool.set_iova_base(Some(joyride_drivers::Iova(pool_map.iova())));

        // Queues (§4.1.5.1.3).
        let num_queues = c.r16(common::NUM_QUEUES)?;
        if num_queues < 2 {
            return Err(VirtioError::Device("fewer than two virtqueues"));
        }
        let mut queues = Vec::with_capacity(2);
        let mut notify_offs = [0u64; 2];
        for q in [RXQ, TXQ] {
            c.w16(common::QUEUE_SELECT, q)?;
            let max = c.r16(common::QUEUE_SIZE)?;
            if max == 0 {
                return Err(VirtioError::Device("queue not available"));
            }
            // §2.7: split queue sizes are powers of two; use the largest <= both limits.
            let size = cfg.queue_size.min(1 << (15 - max.leading_zeros().min(15)));
            let mem = dev.container().alloc_dma(SplitQueue::bytes(size), false)?;
            let ring = SplitQueue::new(mem, size);
            let (d, a, u) = ring.addrs();
            c.w16(common::QUEUE_SIZE, size)?;
            c.w64(common::QUEUE_DESC, d)?;
            c.w64(common::QUEUE_DRIVER, a)?;
            c.w64(common::QUEUE_DEVICE, u)?;
            let vector = if q == RXQ && rx_irq.is_some() { 0 } else { common::NO_VECTOR };
            c.w16(common::QUEUE_MSIX_VECTOR, vector)?;
            let noff = u64::from(c.r16(common::QUEUE_NOTIFY_OFF)?);
            let at = notify_off + noff * u64::from(caps.notify_multiplier);
            notify.check(at, joyride_vfio::Width::W16)?;
            if at + 2 > notify_off + u64::from(caps.notify.length) {
                return Err(VirtioError::Device("queue notify address outside its capability"));
            }
            notify_offs[usize::from(q)] = at;
            c.w16(common::QUEUE_ENABLE, 1)?;
            queues.push(ring);
        }
        let rx_irq = match rx_irq {
            // §4.1.5.1.2: the device reports NO_VECTOR when it could not use the vector.
            Some(fd) => {
                c.w16(common::QUEUE_SELECT, RXQ)?;
                (c.r16(common::QUEUE_MSIX_VECTOR)? == 0).then_some(fd)
            }
            None => None,
        };
        let txq = queues.pop().ok_or(VirtioError::Device("queue setup"))?;
        let rxq = queues.pop().ok_or(VirtioError::Device("queue setup"))?;
        let mut nic = VirtioNet {
            rxq,
            txq,
            common: common_bar,
            common_off,
            notify,
            device_cfg,
            notify_rx: notify_offs[0],
            notify_tx: notify_offs[1],
            pool,
            features,
            mac,
            mtu,
            rx_irq,
            irq_armed: true,
            broken: None,
            counters: QueueCounters::default(),
            notifies: 0,
            _pool_map: pool_map,
            dev,
        };
        nic.refill_rx();
        nic.common().add_status(status::DRIVER_OK)?;
        if nic.rxq.publish() || nic.rxq.outstanding() > 0 {
            nic.kick(RXQ);
        }
        Ok(nic)
    }

    fn common(&self) -> Common<'_> {
        // The window was checked at bring-up.
        Common(&self.common, self.common_off)
    }

    /// Negotiated feature bits.
    pub fn features(&self) -> u64 {
        self.features
    }

    /// Queue notifications written so far (one per batch at most).
    pub fn notifies(&self) -> u64 {
        self.notifies
    }

    /// Why the driver stopped trusting the device, if it did.
    pub fn broken(&self) -> Option<&'static str> {
        self.broken
    }

    /// The PCI address.
    pub fn bdf(&self) -> &str {
        self.dev.bdf()
    }

    fn kick(&mut self, q: u16) {
        let at = if q == RXQ { self.notify_rx } else { self.notify_tx };
        // In bounds: checked at bring-up.
        if self.notify.write16(at, q).is_ok() {
            self.notifies += 1;
        }
    }

    /// Posts fresh receive buffers into every free descriptor (not yet published).
    fn refill_rx(&mut self) {
        while self.rxq.free() > 0 {
            let Some(b) = self.pool.alloc() else { break };
            self.post_rx(b);
        }
    }

    fn post_rx(&mut self, mut b: PacketBuf) {
        b.reset();
        let (Some(iova), Ok(len)) = (b.iova(), u32::try_from(b.capacity())) else {
            return; // not from our (mapped) pool: dropped back to its own
        };
        let _ = self.rxq.post(b, iova.0, len, true);
    }

    fn fail(&mut self, why: &'static str) -> NicError {
        self.broken = Some(why);
        NicError::Corrupt(why)
    }

    fn check(&self, q: QueueId) -> Result<(), NicError> {
        if q.0 != 0 {
            return Err(NicError::BadQueue(q));
        }
        match self.broken {
            Some(why) => Err(NicError::Corrupt(why)),
            None => Ok(()),
        }
    }

    /// Turns one used receive buffer into a frame, or `None` (counted) when it is unusable.
    fn finish_rx(&mut self, mut b: PacketBuf, len: u32) -> Option<PacketBuf> {
        let len = len as usize;
        if len < NET_HDR_LEN + 14 {
            self.counters.rx_errors += 1;
            self.post_rx(b);
            return None;
        }
        b.set_len(len); // <= posted length == capacity (checked by the ring)
        let h = b.data();
        let (flags, start, off) =
            (h[0], u16::from_le_bytes([h[6], h[7]]), u16::from_le_bytes([h[8], h[9]]));
        b.advance(NET_HDR_LEN);
        let csum = if flags & HDR_F_NEEDS_CSUM != 0
            && usize::from(start) + usize::from(off) + 2 <= b.len()
        {
            RxCsum::Partial { start, offset: off }
        } else if flags & HDR_F_DATA_VALID != 0 {
            RxCsum::Verified
        } else {
            RxCsum::Unknown
        };
        b.set_rx_csum(csum);
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += b.len() as u64;
        Some(b)
    }

    /// Reclaims transmitted buffers (they go back to their pool).
    fn reclaim_tx(&mut self) -> Result<(), NicError> {
        let n = self.txq.used_ready().map_err(|w| self.fail(w))?;
        for _ in 0..n {
            match self.txq.take_used() {
                Used::Done(..) | Used::BadLen(_) => {} // lengths of read-only buffers are ignored
                Used::BadId => self.counters.tx_errors += 1,
            }
        }
        Ok(())
    }

    /// Prepares one frame for transmission: our pool, a virtio-net header in front.
    fn prepare_tx(&mut self, mut b: PacketBuf) -> Option<PacketBuf> {
        if !self.pool.owns(&b) {
            // A buffer from a pool this device cannot reach: copy it into one of ours.
            let mut own = self.pool.alloc()?;
            if !own.copy_from(b.data()) {
                return None;
            }
            own.set_tx_csum(b.tx_csum());
            b = own;
        }
        let mut hdr = [0u8; NET_HDR_LEN];
        if let Some(r) = b.tx_csum() {
            if self.features & feature::NET_CSUM != 0 {
                hdr[0] = HDR_F_NEEDS_CSUM;
                hdr[6..8].copy_from_slice(&r.start.to_le_bytes());
                hdr[8..10].copy_from_slice(&r.offset.to_le_bytes());
            } else if !b.complete_partial_csum() {
                return None;
            }
        }
        b.prepend(NET_HDR_LEN)?.copy_from_slice(&hdr);
        Some(b)
    }
}

impl Nic for VirtioNet {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mtu: self.mtu,
            mac: self.mac,
            rx_queues: 1,
            tx_queues: 1,
            offloads: Offloads {
                rx_checksum: self.features & feature::NET_GUEST_CSUM != 0,
                tx_checksum: self.features & feature::NET_CSUM != 0,
                tso: false,
                rss: false,
            },
        }
    }

    fn link(&self) -> LinkState {
        let up = match (&self.device_cfg, self.features & feature::NET_STATUS != 0) {
            (Some((bar, off)), true) => bar
                .read16(off + net_cfg::STATUS)
                .map(|s| s & net_cfg::S_LINK_UP != 0)
                .unwrap_or(false),
            _ => true,
        };
        LinkState { up, speed_mbps: None }
    }

    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        self.check(queue)?;
        if out.remaining() == 0 {
            return Ok(0);
        }
        let mut got = 0;
        for pass in 0..2 {
            let ready = self.rxq.used_ready().map_err(|w| self.fail(w))?;
            let n = usize::from(ready).min(out.remaining());
            for _ in 0..n {
                match self.rxq.take_used() {
                    Used::Done(b, len) => {
                        if let Some(b) = self.finish_rx(b, len) {
                            // Cannot fail: at most `remaining()` frames are taken.
                            let _ = out.push(b);
                            got += 1;
                        }
                    }
                    Used::BadLen(b) => {
                        self.counters.rx_errors += 1;
                        self.post_rx(b);
                    }
                    Used::BadId => self.counters.rx_errors += 1,
                }
            }
            if got > 0 || pass == 1 || self.rx_irq.is_none() {
                break;
            }
            // Found nothing: arm the interrupt (if not armed), clear the eventfd, then look
            // once more so that a frame that landed in between is not left waiting for a wake-up
            // that already happened.
            if !self.irq_armed {
                self.rxq.suppress_interrupts(false);
                self.irq_armed = true;
            }
            if let Some(fd) = &self.rx_irq {
                let _ = fd.take();
            }
        }
        if got > 0 && self.irq_armed && self.rx_irq.is_some() {
            // Busy: poll without interrupts until the ring runs dry again.
            self.rxq.suppress_interrupts(true);
            self.irq_armed = false;
        }
        self.refill_rx();
        if self.rxq.publish() {
            self.kick(RXQ);
        }
        if self.rxq.outstanding() == 0 {
            self.counters.rx_drops += 1; // pool exhausted: the device has nowhere to write
        }
        Ok(got)
    }

    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        self.check(queue)?;
        self.reclaim_tx()?;
        let n = bufs.len().min(self.txq.free());
        for b in bufs.drain_front(n) {
            let len = b.len();
            let Some(b) = self.prepare_tx(b) else {
                self.counters.tx_drops += 1;
                continue;
            };
            let Some(iova) = b.iova() else {
                self.counters.tx_drops += 1;
                continue;
            };
            let plen = b.len() as u32;
            if self.txq.post(b, iova.0, plen, false).is_err() {
                self.counters.tx_drops += 1; // cannot happen: n <= free
                continue;
            }
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += len as u64;
        }
        if self.txq.publish() {
            self.kick(TXQ);
        }
        Ok(n)
    }

    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        (queue.0 == 0).then_some(self.counters)
    }

    fn wait_fd(&self, queue: QueueId) -> Option<std::os::fd::RawFd> {
        use std::os::fd::AsRawFd;
        (queue.0 == 0).then(|| self.rx_irq.as_ref().map(|f| f.as_raw_fd())).flatten()
    }
}

impl Drop for VirtioNet {
    fn drop(&mut self) {
        // Stop the device before its buffers and mappings go: reset (§4.1.4.3.2), no more DMA.
        let _ = self.common().reset();
        let _ = self.dev.disable_bus_master();
        let _ = self.dev.disable_msix();
        self.rxq.clear();
        self.txq.clear();
    }
}
