//! A register-level **model** of the 82599 and the 82576 for unit tests — not hardware, and
//! not validated against hardware. Written from the datasheets: a register file with reset
//! values, a reset state machine (CTRL.RST self-clears after a few reads, EEC.ARD and
//! RDRXCTL.DMAIDONE come up some reads after it), link bring-up side effects (AUTOC restart /
//! MDIC PHY write), clear-on-read statistics, RSS (Toeplitz hash over RSSRK, RETA lookup,
//! MRQC), and a DMA engine that consumes transmit descriptors and fills receive descriptors
//! through the fake IOMMU of `joyride-vfio` (so every address the driver hands out is checked).
//! Every register access is logged for golden-trace tests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use joyride_drivers::csum::ones_complement_sum;
use joyride_vfio::fake::{FakeDevice, FakeIommu, FakeSys};
use joyride_vfio::{Device, IovaSpace, Mmio, Width};

use crate::desc::*;
use crate::regs::{common, x82576, x82599};
use crate::Personality;

pub(crate) const BDF: &str = "0000:00:05.0";
const BAR_LEN: u64 = 0x20000;
pub(crate) const MAC: [u8; 6] = [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c];

/// One register access: `W` or `R`, offset, value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Access(pub(crate) char, pub(crate) u64, pub(crate) u32);

/// A frame the model transmitted, with the offloads the descriptors asked for.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    pub(crate) queue: usize,
    pub(crate) frame: Vec<u8>,
    pub(crate) txsm: bool,
}

pub(crate) struct Model {
    pub(crate) pers: Personality,
    regs: HashMap<u64, u32>,
    pub(crate) log: Vec<Access>,
    /// Reads left before CTRL.RST clears / ARD and DMAIDONE set.
    rst_reads: u32,
    init_reads: u32,
    iommu: Arc<FakeIommu>,
    rx_head: [u16; 16],
    tx_head: [u16; 16],
    tx_ctx: [[u32; 4]; 16],
    pub(crate) sent: Vec<Sent>,
    /// Process transmit descriptors as soon as the tail is written.
    pub(crate) auto_tx: bool,
    pub(crate) resets: u32,
    pub(crate) phy_ctrl: u16,
}

fn tx_base(p: Personality) -> u64 {
    match p {
        Personality::X82599 => x82599::TX_QUEUE_BASE,
        Personality::I82576 => x82576::TX_QUEUE_BASE,
    }
}

pub(crate) fn rx_base(p: Personality) -> u64 {
    match p {
        Personality::X82599 => x82599::RX_QUEUE_BASE,
        Personality::I82576 => x82576::RX_QUEUE_BASE,
    }
}

/// Toeplitz hash (Microsoft RSS specification) of `input` under `key`.
pub(crate) fn toeplitz(key: &[u8; 40], input: &[u8]) -> u32 {
    let mut hash = 0u32;
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    for (next, &byte) in (4..).zip(input) {
        for bit in (0..8).rev() {
            if byte & (1 << bit) != 0 {
                hash ^= window;
            }
            let kb = key.get(next).copied().unwrap_or(0);
            window = (window << 1) | u32::from((kb >> bit) & 1);
        }
    }
    hash
}

impl Model {
    fn reset_values(&mut self) {
        self.regs.clear();
        let p = self.pers;
        let mut ral = [0u8; 4];
        ral.copy_from_slice(&MAC[..4]);
        let rah = u32::from(MAC[4]) | u32::from(MAC[5]) << 8 | common::RAH_AV;
        match p {
            Personality::X82599 => {
                self.regs.insert(x82599::RAL0, u32::from_le_bytes(ral));
                self.regs.insert(x82599::RAH0, rah);
                self.regs.insert(x82599::STATUS, x82599::STATUS_MASTER_ENABLE);
                self.regs.insert(x82599::AUTOC, 0xc000); // some LMS set at power-up
                self.regs.insert(x82599::HLREG0, x82599::HLREG0_TXCRCEN | x82599::HLREG0_TXPADEN);
            }
            Personality::I82576 => {
                self.regs.insert(x82576::RAL0, u32::from_le_bytes(ral));
                self.regs.insert(x82576::RAH0, rah);
                self.regs.insert(x82576::STATUS, x82576::STATUS_MASTER_ENABLE);
                self.regs.insert(x82576::CTRL, x82576::CTRL_LRST);
                self.regs.insert(x82576::RXCSUM, x82576::RXCSUM_IPOFLD | x82576::RXCSUM_TUOFLD);
            }
        }
        self.rx_head = [0; 16];
        self.tx_head = [0; 16];
        self.tx_ctx = [[0; 4]; 16];
        self.phy_ctrl = 0;
    }

    fn reg(&self, off: u64) -> u32 {
        self.regs.get(&off).copied().unwrap_or(0)
    }

    fn queue_of(off: u64, base: u64) -> Option<(usize, u64)> {
        let rel = off.checked_sub(base)?;
        let q = rel / common::QUEUE_STRIDE;
        (q < 16).then_some((q as usize, rel % common::QUEUE_STRIDE))
    }

    fn read(&mut self, off: u64) -> u32 {
        let p = self.pers;
        let v = match (p, off) {
            (_, 0) if self.rst_reads > 0 => {
                self.rst_reads -= 1;
                if self.rst_reads == 0 {
                    let c = self.reg(0) & !(x82599::CTRL_RST | x82599::CTRL_LRST);
                    let c = if p == Personality::I82576 { c | x82576::CTRL_LRST } else { c };
                    self.regs.insert(0, c);
                }
                self.reg(0)
            }
            (Personality::X82599, x82599::EEC) | (Personality::X82599, x82599::RDRXCTL) => {
                if self.init_reads > 0 {
                    self.init_reads -= 1;
                    self.reg(off) & !(x82599::EEC_ARD | x82599::RDRXCTL_DMAIDONE)
                } else if off == x82599::EEC {
                    self.reg(off) | x82599::EEC_ARD
                } else {
                    self.reg(off) | x82599::RDRXCTL_DMAIDONE
                }
            }
            // §8.2.3.23 / §8.19: statistics clear on read.
            (Personality::X82599, x82599::GPRC..=0x04094)
            | (Personality::X82599, x82599::MPC0)
            | (Personality::X82599, x82599::CRCERRS)
            | (Personality::I82576, x82576::CRCERRS..=0x4094) => {
                self.regs.remove(&off).unwrap_or(0)
            }
            _ => self.reg(off),
        };
        self.log.push(Access('R', off, v));
        v
    }

    fn write(&mut self, off: u64, v: u32) {
        self.log.push(Access('W', off, v));
        let p = self.pers;
        self.regs.insert(off, v);
        match (p, off) {
            (_, 0) => {
                if v & x82599::CTRL_MASTER_DISABLE != 0 {
                    self.regs.insert(
                        x82599::STATUS,
                        self.reg(x82599::STATUS) & !x82599::STATUS_MASTER_ENABLE,
                    );
                }
                if v & x82599::CTRL_RST != 0 {
                    self.resets += 1;
                    self.reset_values();
                    self.regs.insert(0, v);
                    self.rst_reads = 3;
                    self.init_reads = 2;
                }
            }
            (Personality::X82599, x82599::AUTOC) if v & x82599::AUTOC_AN_RESTART != 0 => {
                self.regs.insert(x82599::AUTOC, v & !x82599::AUTOC_AN_RESTART);
                self.regs
                    .insert(x82599::LINKS, x82599::LINKS_UP | (3 << x82599::LINKS_SPEED_SHIFT));
            }
            (Personality::I82576, x82576::MDIC) => {
                let reg = (v >> x82576::MDIC_REG_SHIFT) & 0x1f;
                let phy = (v >> x82576::MDIC_PHY_SHIFT) & 0x1f;
                let mut out = v | x82576::MDIC_READY;
                if phy != 1 {
                    out |= x82576::MDIC_ERROR;
                } else if v & x82576::MDIC_OP_WRITE != 0 && reg == 0 {
                    self.phy_ctrl = v as u16;
                    let ctrl = self.reg(x82576::CTRL);
                    if v as u16 & 0x0200 != 0
                        && ctrl & x82576::CTRL_SLU != 0
                        && ctrl & x82576::CTRL_LRST == 0
                    {
                        let s = self.reg(x82576::STATUS)
                            | x82576::STATUS_LU
                            | (2 << x82576::STATUS_SPEED_SHIFT);
                        self.regs.insert(x82576::STATUS, s);
                    }
                }
                self.regs.insert(x82576::MDIC, out);
            }
            _ => {}
        }
        if let Some((q, common::DT)) = Self::queue_of(off, tx_base(p)) {
            if self.auto_tx {
                self.process_tx(q);
            }
        }
    }

    fn tx_enabled(&self, q: usize) -> bool {
        let blk = tx_base(self.pers) + common::QUEUE_STRIDE * q as u64;
        let global = match self.pers {
            Personality::X82599 => self.reg(x82599::DMATXCTL) & x82599::DMATXCTL_TE != 0,
            Personality::I82576 => self.reg(x82576::TCTL) & x82576::TCTL_EN != 0,
        };
        global && self.reg(blk + common::DCTL) & common::DCTL_ENABLE != 0
    }

    /// Consumes transmit descriptors of queue `q` from the model's head to the tail.
    pub(crate) fn process_tx(&mut self, q: usize) {
        if !self.tx_enabled(q) {
            return;
        }
        let blk = tx_base(self.pers) + common::QUEUE_STRIDE * q as u64;
        let base =
            u64::from(self.reg(blk + common::DBAL)) | u64::from(self.reg(blk + common::DBAH)) << 32;
        let n = (self.reg(blk + common::DLEN) / 16) as u16;
        let tail = self.reg(blk + common::DT) as u16;
        assert!(n > 0 && tail < n, "tail {tail} outside the ring of {n}");
        while self.tx_head[q] != tail {
            let d = base + 16 * u64::from(self.tx_head[q]);
            let addr = self.iommu.read_u64(d).expect("descriptor mapped");
            let cmd = self.iommu.read_u32(d + 8).expect("descriptor mapped");
            let ol = self.iommu.read_u32(d + 12).expect("descriptor mapped");
            assert_ne!(cmd & TXD_CMD_DEXT, 0, "advanced descriptors only");
            self.tx_head[q] = (self.tx_head[q] + 1) % n;
            if cmd & (0xf << 20) == TXD_DTYP_CTXT {
                let lo = addr as u32;
                let hi = (addr >> 32) as u32;
                self.tx_ctx[q] = [lo, hi, cmd, ol];
                continue;
            }
            assert_eq!(cmd & (0xf << 20), TXD_DTYP_DATA, "data descriptor type");
            assert_ne!(cmd & TXD_CMD_EOP, 0, "the driver sends one buffer per packet");
            let len = (cmd & 0xffff) as usize;
            assert_eq!((ol >> TXD_PAYLEN_SHIFT) as usize, len, "PAYLEN = frame length");
            let mut frame = vec![0u8; len];
            self.iommu.read(addr, &mut frame).expect("transmit buffer mapped");
            let txsm = ol & TXD_POPTS_TXSM != 0;
            if txsm {
                assert_ne!(ol & TXD_CC, 0, "checksum offload needs the context (CC)");
                let c = self.tx_ctx[q];
                let maclen = ((c[0] >> 9) & 0x7f) as usize;
                let iplen = (c[0] & 0x1ff) as usize;
                let field = if c[2] & TUCMD_L4T_TCP != 0 { 16 } else { 6 };
                let start = maclen + iplen;
                // The field holds the pseudo-header sum; add the rest and complement.
                let s = !ones_complement_sum(0, &frame[start..]);
                frame[start + field..start + field + 2].copy_from_slice(&s.to_be_bytes());
            }
            if cmd & TXD_CMD_RS != 0 {
                self.iommu.write(d + 12, &(ol | TXD_STAT_DD).to_le_bytes()).expect("mapped");
            }
            self.bump(match self.pers {
                Personality::X82599 => x82599::GPTC,
                Personality::I82576 => x82576::GPTC,
            });
            let lb = match self.pers {
                Personality::X82599 => self.reg(x82599::HLREG0) & x82599::HLREG0_LPBK != 0,
                Personality::I82576 => self.reg(x82576::RCTL) & (3 << 6) == 1 << 6,
            };
            self.sent.push(Sent { queue: q, frame: frame.clone(), txsm });
            if lb {
                self.inject(&frame);
            }
        }
        self.regs.insert(blk + common::DH, u32::from(self.tx_head[q]));
    }

    fn bump(&mut self, off: u64) {
        *self.regs.entry(off).or_insert(0) += 1;
    }

    /// The receive queue RSS picks for `frame` (IPv4 TCP/UDP hashed on addresses and ports).
    pub(crate) fn rss_queue(&self, frame: &[u8]) -> (usize, u32) {
        let mrqc = self.reg(common::MRQC);
        if mrqc & 7 == 0 || frame.len() < 38 || frame[12..14] != [8, 0] {
            return (0, 0);
        }
        let mut key = [0u8; 40];
        for i in 0..10 {
            key[4 * i..4 * i + 4]
                .copy_from_slice(&self.reg(common::RSSRK + 4 * i as u64).to_le_bytes());
        }
        let ihl = usize::from(frame[14] & 0xf) * 4;
        let mut input = frame[26..34].to_vec();
        if matches!(frame[23], 6 | 17) && frame.len() >= 14 + ihl + 4 {
            input.extend_from_slice(&frame[14 + ihl..14 + ihl + 4]);
        }
        let h = toeplitz(&key, &input);
        let idx = u64::from(h & 0x7f);
        let q = (self.reg(common::RETA + 4 * (idx / 4)) >> (8 * (idx % 4))) & 0xf;
        (q as usize, h)
    }

    fn rx_on(&self) -> bool {
        match self.pers {
            Personality::X82599 => self.reg(x82599::RXCTRL) & x82599::RXCTRL_RXEN != 0,
            Personality::I82576 => self.reg(x82576::RCTL) & x82576::RCTL_EN != 0,
        }
    }

    /// Checksum status bits for a received frame (IPv4 TCP/UDP only).
    fn csum_status(&self, frame: &[u8]) -> u32 {
        if frame.len() < 34 || frame[12..14] != [8, 0] {
            return 0;
        }
        let ihl = usize::from(frame[14] & 0xf) * 4;
        let proto = frame[23];
        let l4 = &frame[14 + ihl..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&frame[26..34]);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        let ok = ones_complement_sum(ones_complement_sum(0, &pseudo), l4) == 0xffff;
        let err = match self.pers {
            Personality::X82599 => ERR_82599.tcpe,
            Personality::I82576 => ERR_82576.tcpe,
        };
        let st = match proto {
            6 => RXD_STAT_L4CS,
            17 => RXD_STAT_L4CS | RXD_STAT_UDPCS,
            _ => return RXD_STAT_IPCS,
        };
        st | RXD_STAT_IPCS | if ok { 0 } else { err }
    }

    /// Receives `frame` into the queue RSS picks; `false` (MPC counted) when receive is off or
    /// that queue has no descriptor posted.
    pub(crate) fn inject(&mut self, frame: &[u8]) -> bool {
        let (q, hash) = self.rss_queue(frame);
        let blk = rx_base(self.pers) + common::QUEUE_STRIDE * q as u64;
        let n = (self.reg(blk + common::DLEN) / 16) as u16;
        let missed = match self.pers {
            Personality::X82599 => x82599::MPC0,
            Personality::I82576 => x82576::MPC,
        };
        if !self.rx_on() || self.reg(blk + common::DCTL) & common::DCTL_ENABLE == 0 || n == 0 {
            self.bump(missed);
            return false;
        }
        let tail = self.reg(blk + common::DT) as u16;
        if self.rx_head[q] == tail {
            self.bump(missed);
            return false;
        }
        let srrctl = self.reg(
            blk + match self.pers {
                Personality::X82599 => x82599::SRRCTL_IN_BLOCK,
                Personality::I82576 => x82576::SRRCTL_IN_BLOCK,
            },
        );
        assert_eq!(srrctl & (7 << 25), common::SRRCTL_DESCTYPE_ADV_ONEBUF, "advanced one-buffer");
        let bsize = (srrctl & 0x1f) as usize * 1024;
        assert!(frame.len() <= bsize, "frame larger than the buffer");
        let base =
            u64::from(self.reg(blk + common::DBAL)) | u64::from(self.reg(blk + common::DBAH)) << 32;
        let d = base + 16 * u64::from(self.rx_head[q]);
        let addr = self.iommu.read_u64(d).expect("descriptor mapped");
        self.iommu.write(addr, frame).expect("receive buffer mapped");
        let st = RXD_STAT_DD | RXD_STAT_EOP | self.csum_status(frame);
        self.write_back(d, hash, st, frame.len() as u16);
        self.rx_head[q] = (self.rx_head[q] + 1) % n;
        self.regs.insert(blk + common::DH, u32::from(self.rx_head[q]));
        self.bump(match self.pers {
            Personality::X82599 => x82599::GPRC,
            Personality::I82576 => x82576::GPRC,
        });
        true
    }

    fn write_back(&self, d: u64, hash: u32, staterr: u32, len: u16) {
        let mut wb = [0u8; 16];
        wb[4..8].copy_from_slice(&hash.to_le_bytes());
        wb[8..12].copy_from_slice(&staterr.to_le_bytes());
        wb[12..14].copy_from_slice(&len.to_le_bytes());
        self.iommu.write(d, &wb).expect("descriptor mapped");
    }

    /// Hostile device: writes a write-back into receive descriptor `idx` of queue `q`
    /// (whether or not it was posted) and advances the model's head past it.
    pub(crate) fn forge_rx(&mut self, q: usize, idx: u16, staterr: u32, len: u16) {
        let blk = rx_base(self.pers) + common::QUEUE_STRIDE * q as u64;
        let base =
            u64::from(self.reg(blk + common::DBAL)) | u64::from(self.reg(blk + common::DBAH)) << 32;
        self.write_back(base + 16 * u64::from(idx), 0, staterr, len);
        let n = (self.reg(blk + common::DLEN) / 16) as u16;
        self.rx_head[q] = (idx + 1) % n;
    }

    pub(crate) fn reg_value(&self, off: u64) -> u32 {
        self.reg(off)
    }
}

struct FakeBar(Arc<Mutex<Model>>);

impl Mmio for FakeBar {
    fn len(&self) -> u64 {
        BAR_LEN
    }

    fn read(&self, off: u64, w: Width) -> u64 {
        assert_eq!(w, Width::W32, "Intel registers are 32-bit");
        u64::from(self.0.lock().unwrap().read(off))
    }

    fn write(&self, off: u64, w: Width, v: u64) {
        assert_eq!(w, Width::W32, "Intel registers are 32-bit");
        self.0.lock().unwrap().write(off, v as u32);
    }
}

pub(crate) struct Fake {
    pub(crate) sys: Arc<FakeSys>,
    pub(crate) model: Arc<Mutex<Model>>,
}

impl Fake {
    pub(crate) fn new(pers: Personality) -> Fake {
        let device_id: u16 = match pers {
            Personality::X82599 => 0x10fb,
            Personality::I82576 => 0x10c9,
        };
        let mut config = vec![0u8; 256];
        config[0..2].copy_from_slice(&0x8086u16.to_le_bytes());
        config[2..4].copy_from_slice(&device_id.to_le_bytes());
        let model = Arc::new(Mutex::new(Model {
            pers,
            regs: HashMap::new(),
            log: Vec::new(),
            rst_reads: 0,
            init_reads: 0,
            iommu: Arc::new(FakeIommu::default()),
            rx_head: [0; 16],
            tx_head: [0; 16],
            tx_ctx: [[0; 4]; 16],
            sent: Vec::new(),
            auto_tx: true,
            resets: 0,
            phy_ctrl: 0,
        }));
        model.lock().unwrap().reset_values();
        let m2 = model.clone();
        let dev = FakeDevice {
            bdf: BDF.into(),
            group: 5,
            viable: true,
            config,
            bars: vec![(
                0,
                BAR_LEN,
                Arc::new(move || Box::new(FakeBar(m2.clone())) as Box<dyn Mmio>),
            )],
            msix: 0,
            resettable: true,
        };
        let sys = Arc::new(FakeSys::new(vec![dev]));
        model.lock().unwrap().iommu = sys.iommu();
        Fake { sys, model }
    }

    pub(crate) fn device(&self) -> Device {
        Device::open(self.sys.clone(), BDF, IovaSpace::default()).unwrap()
    }

    pub(crate) fn m(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap()
    }
}
