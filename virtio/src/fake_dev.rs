//! A register-level model of a modern virtio-net PCI device for unit tests: the common
//! configuration, device configuration and notification registers in BAR 4 (the layout QEMU
//! uses), and a "device" that consumes the avail rings and produces used entries by DMA through
//! the fake IOMMU — so every address the driver hands out is checked to be mapped.

use std::sync::{Arc, Mutex, MutexGuard, Weak};

use joyride_vfio::fake::{FakeDevice, FakeIommu, FakeSys};
use joyride_vfio::{Device, IovaSpace, Mmio, Width};

use crate::pci::{common, feature};

pub(crate) const BDF: &str = "0000:00:03.0";
const COMMON: u64 = 0x0000;
const ISR: u64 = 0x1000;
const DEVCFG: u64 = 0x2000;
const NOTIFY: u64 = 0x3000;
const NOTIFY_MULT: u64 = 4;
const BAR_LEN: u64 = 0x4000;

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Queue {
    pub(crate) max: u16,
    pub(crate) size: u16,
    pub(crate) desc: u64,
    pub(crate) avail: u64,
    pub(crate) used: u64,
    pub(crate) enable: u16,
    pub(crate) vector: u16,
    pub(crate) last_avail: u16,
    pub(crate) used_idx: u16,
}

pub(crate) struct Model {
    pub(crate) offered: u64,
    pub(crate) driver_features: u64,
    dfsel: u32,
    drfsel: u32,
    pub(crate) status: u8,
    qsel: u16,
    pub(crate) queues: [Queue; 3],
    pub(crate) mac: [u8; 6],
    pub(crate) mtu: u16,
    pub(crate) link_up: bool,
    pub(crate) msix: u16,
    pub(crate) sent: Vec<Vec<u8>>,
    pub(crate) sent_hdrs: Vec<[u8; 12]>,
    pub(crate) notifies: [u32; 3],
    pub(crate) consume_tx: bool,
    pub(crate) interrupts: u32,
    iommu: Arc<FakeIommu>,
    sys: Weak<FakeSys>,
}

impl Model {
    fn reset(&mut self) {
        self.driver_features = 0;
        self.status = 0;
        self.qsel = 0;
        for q in &mut self.queues {
            *q = Queue { max: q.max, vector: common::NO_VECTOR, ..Queue::default() };
        }
    }

    fn q(&mut self) -> Option<&mut Queue> {
        self.queues.get_mut(usize::from(self.qsel))
    }

    fn read_common(&mut self, off: u64) -> u64 {
        let q = self.queues.get(usize::from(self.qsel)).copied().unwrap_or_default();
        match off {
            common::DEVICE_FEATURE_SELECT => self.dfsel.into(),
            common::DEVICE_FEATURE => match self.dfsel {
                0 => self.offered & 0xffff_ffff,
                1 => self.offered >> 32,
                _ => 0,
            },
            common::DRIVER_FEATURE_SELECT => self.drfsel.into(),
            common::DRIVER_FEATURE => match self.drfsel {
                0 => self.driver_features & 0xffff_ffff,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            common::CONFIG_MSIX_VECTOR => common::NO_VECTOR.into(),
            common::NUM_QUEUES => 3,
            common::DEVICE_STATUS => self.status.into(),
            common::CONFIG_GENERATION => 0,
            common::QUEUE_SELECT => self.qsel.into(),
            common::QUEUE_SIZE => if q.size != 0 { q.size } else { q.max }.into(),
            common::QUEUE_MSIX_VECTOR => q.vector.into(),
            common::QUEUE_ENABLE => q.enable.into(),
            common::QUEUE_NOTIFY_OFF => self.qsel.into(),
            _ => 0,
        }
    }

    fn write_common(&mut self, off: u64, v: u64) {
        let msix = self.msix;
        match off {
            common::DEVICE_FEATURE_SELECT => self.dfsel = v as u32,
            common::DRIVER_FEATURE_SELECT => self.drfsel = v as u32,
            common::DRIVER_FEATURE => {
                let shift = 32 * u64::from(self.drfsel.min(1));
                self.driver_features &= !(0xffff_ffff << shift);
                self.driver_features |= (v & 0xffff_ffff) << shift;
            }
            common::DEVICE_STATUS => {
                let v = v as u8;
                if v == 0 {
                    self.reset();
                } else if v & crate::pci::status::FEATURES_OK != 0
                    && self.driver_features & !self.offered != 0
                {
                    self.status = v & !crate::pci::status::FEATURES_OK; // refuse
                } else {
                    self.status = v;
                }
            }
            common::QUEUE_SELECT => self.qsel = v as u16,
            common::QUEUE_SIZE => {
                if let Some(q) = self.q() {
                    if v as u16 <= q.max {
                        q.size = v as u16;
                    }
                }
            }
            common::QUEUE_MSIX_VECTOR => {
                if let Some(q) = self.q() {
                    q.vector = if (v as u16) < msix { v as u16 } else { common::NO_VECTOR };
                }
            }
            common::QUEUE_ENABLE => {
                if let Some(q) = self.q() {
                    q.enable = v as u16;
                }
            }
            o @ common::QUEUE_DESC..=0x37 => {
                let Some(q) = self.q() else { return };
                let field = match o & !7 {
                    common::QUEUE_DESC => &mut q.desc,
                    common::QUEUE_DRIVER => &mut q.avail,
                    _ => &mut q.used,
                };
                if o & 4 == 0 {
                    *field = (*field & !0xffff_ffff) | (v & 0xffff_ffff);
                } else {
                    *field = (*field & 0xffff_ffff) | (v << 32);
                }
            }
            _ => {}
        }
    }

    fn read_devcfg(&self, off: u64, w: Width) -> u64 {
        let mut cfg = [0u8; 16];
        cfg[0..6].copy_from_slice(&self.mac);
        cfg[6..8].copy_from_slice(&u16::from(self.link_up).to_le_bytes());
        cfg[8..10].copy_from_slice(&1u16.to_le_bytes());
        cfg[10..12].copy_from_slice(&self.mtu.to_le_bytes());
        let mut b = [0u8; 8];
        let n = w.bytes() as usize;
        b[..n].copy_from_slice(&cfg[off as usize..off as usize + n]);
        u64::from_le_bytes(b)
    }

    /// Writes a used entry for queue `qi` (no validation: tests use it to play a hostile device).
    pub(crate) fn push_used(&mut self, qi: usize, id: u32, len: u32) {
        let q = &mut self.queues[qi];
        let slot = u64::from(q.used_idx % q.size);
        let e = q.used + 4 + 8 * slot;
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&id.to_le_bytes());
        b[4..].copy_from_slice(&len.to_le_bytes());
        self.iommu.write(e, &b).expect("used ring mapped");
        q.used_idx = q.used_idx.wrapping_add(1);
        self.iommu.write(q.used + 2, &q.used_idx.to_le_bytes()).expect("used idx mapped");
    }

    /// Sets the used index to anything (hostile device).
    pub(crate) fn set_used_idx(&mut self, qi: usize, idx: u16) {
        let q = &mut self.queues[qi];
        q.used_idx = idx;
        self.iommu.write(q.used + 2, &idx.to_le_bytes()).expect("used idx mapped");
    }

    /// The next available descriptor of queue `qi`: `(id, addr, len, flags)`.
    fn next_avail(&mut self, qi: usize) -> Option<(u16, u64, u32, u16)> {
        let q = self.queues[qi];
        if q.enable == 0 || q.size == 0 {
            return None;
        }
        let avail_idx = self.iommu.read_u16(q.avail + 2).expect("avail mapped");
        if avail_idx == q.last_avail {
            return None;
        }
        let slot = u64::from(q.last_avail % q.size);
        let id = self.iommu.read_u16(q.avail + 4 + 2 * slot).expect("avail ring mapped");
        let d = q.desc + 16 * u64::from(id);
        let addr = self.iommu.read_u64(d).expect("desc mapped");
        let len = self.iommu.read_u32(d + 8).expect("desc mapped");
        let flags = self.iommu.read_u16(d + 12).expect("desc mapped");
        self.queues[qi].last_avail = q.last_avail.wrapping_add(1);
        Some((id, addr, len, flags))
    }

    /// Transmits everything the driver made available on the transmit queue.
    pub(crate) fn consume_tx(&mut self) {
        while let Some((id, addr, len, flags)) = self.next_avail(1) {
            assert_eq!(flags & 2, 0, "transmit descriptors are device-readable");
            let mut buf = vec![0u8; len as usize];
            self.iommu.read(addr, &mut buf).expect("transmit buffer mapped");
            let mut hdr = [0u8; 12];
            hdr.copy_from_slice(&buf[..12]);
            self.sent_hdrs.push(hdr);
            self.sent.push(buf[12..].to_vec());
            self.push_used(1, id.into(), 0);
        }
    }

    /// Receives `frame` with virtio-net header `hdr` into the next receive buffer; `false`
    /// when the driver has none posted.
    pub(crate) fn inject(&mut self, hdr: [u8; 12], frame: &[u8]) -> bool {
        let Some((id, addr, len, flags)) = self.next_avail(0) else { return false };
        assert_eq!(flags & 2, 2, "receive descriptors are device-writable");
        assert!(len as usize >= 12 + frame.len(), "receive buffer too small");
        self.iommu.write(addr, &hdr).expect("receive buffer mapped");
        self.iommu.write(addr + 12, frame).expect("receive buffer mapped");
        self.push_used(0, id.into(), (12 + frame.len()) as u32);
        let q = self.queues[0];
        let flags = self.iommu.read_u16(q.avail).expect("avail mapped");
        if q.vector != common::NO_VECTOR && flags & 1 == 0 {
            self.interrupts += 1;
            if let Some(sys) = self.sys.upgrade() {
                sys.signal_msix(BDF, q.vector.into());
            }
        }
        true
    }
}

struct FakeBar(Arc<Mutex<Model>>);

impl Mmio for FakeBar {
    fn len(&self) -> u64 {
        BAR_LEN
    }

    fn read(&self, off: u64, w: Width) -> u64 {
        let mut m = self.0.lock().unwrap();
        match off {
            o if o < ISR => m.read_common(o - COMMON),
            o if (DEVCFG..DEVCFG + 12).contains(&o) => m.read_devcfg(o - DEVCFG, w),
            _ => 0,
        }
    }

    fn write(&self, off: u64, _w: Width, v: u64) {
        let mut m = self.0.lock().unwrap();
        match off {
            o if o < ISR => m.write_common(o - COMMON, v),
            o if o >= NOTIFY => {
                let q = ((o - NOTIFY) / NOTIFY_MULT) as usize;
                assert_eq!(v as usize, q, "notify writes the queue index");
                if let Some(n) = m.notifies.get_mut(q) {
                    *n += 1;
                }
                if q == 1 && m.consume_tx {
                    m.consume_tx();
                }
            }
            _ => {}
        }
    }
}

/// What QEMU's virtio-net-pci offers with `iommu_platform=on` behind a hub (no vnet header:
/// no checksum offloads), plus MRG_RXBUF and EVENT_IDX which the driver must decline.
pub(crate) const QEMU_FEATURES: u64 = feature::VERSION_1
    | feature::ACCESS_PLATFORM
    | feature::NET_MAC
    | feature::NET_STATUS
    | feature::NET_MRG_RXBUF
    | feature::RING_EVENT_IDX
    | feature::NET_CTRL_VQ;

pub(crate) struct Fake {
    pub(crate) sys: Arc<FakeSys>,
    pub(crate) model: Arc<Mutex<Model>>,
}

impl Fake {
    pub(crate) fn new(offered: u64, queue_max: u16, msix: u16) -> Fake {
        let mut config = vec![0u8; 256];
        config[0..4].copy_from_slice(&[0xf4, 0x1a, 0x41, 0x10]);
        config[6] = 0x10;
        config[0x34] = 0x40;
        let mut cap = |at: usize, next: u8, len: u8, kind: u8, off: u32, l: u32| {
            config[at..at + 5].copy_from_slice(&[0x09, next, len, kind, 4]);
            config[at + 8..at + 12].copy_from_slice(&off.to_le_bytes());
            config[at + 12..at + 16].copy_from_slice(&l.to_le_bytes());
        };
        cap(0x40, 0x50, 16, 1, COMMON as u32, 0x38);
        cap(0x50, 0x64, 20, 2, NOTIFY as u32, 0x1000);
        cap(0x64, 0x74, 16, 3, ISR as u32, 4);
        cap(0x74, 0x84, 16, 4, DEVCFG as u32, 0x10);
        config[0x60..0x64].copy_from_slice(&(NOTIFY_MULT as u32).to_le_bytes());
        config[0x84] = 0x11; // MSI-X, end of list
        let iommu_placeholder = Arc::new(FakeIommu::default());
        let model = Arc::new(Mutex::new(Model {
            offered,
            driver_features: 0,
            dfsel: 0,
            drfsel: 0,
            status: 0,
            qsel: 0,
            queues: [Queue { max: queue_max, vector: common::NO_VECTOR, ..Queue::default() }; 3],
            mac: [0x52, 0x54, 0, 0x12, 0x34, 0x02],
            mtu: 1500,
            link_up: true,
            msix,
            sent: Vec::new(),
            sent_hdrs: Vec::new(),
            notifies: [0; 3],
            consume_tx: true,
            interrupts: 0,
            iommu: iommu_placeholder,
            sys: Weak::new(),
        }));
        let m2 = model.clone();
        let dev = FakeDevice {
            bdf: BDF.into(),
            group: 3,
            viable: true,
            config,
            bars: vec![(
                4,
                BAR_LEN,
                Arc::new(move || Box::new(FakeBar(m2.clone())) as Box<dyn Mmio>),
            )],
            msix: msix.into(),
            resettable: true,
        };
        let sys = Arc::new(FakeSys::new(vec![dev]));
        {
            let mut m = model.lock().unwrap();
            m.iommu = sys.iommu();
            m.sys = Arc::downgrade(&sys);
        }
        Fake { sys, model }
    }

    pub(crate) fn device(&self) -> Device {
        Device::open(self.sys.clone(), BDF, IovaSpace::default()).unwrap()
    }

    pub(crate) fn m(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap()
    }
}
