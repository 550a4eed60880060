//! Container/group/device flows, DMA mappings and interrupts against the fake syscall layer.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use crate::bar::{Mmio, Width};
use crate::fake::{FakeDevice, FakeSys};
use crate::*;

struct Regs(Arc<Mutex<[u32; 16]>>);
impl Mmio for Regs {
    fn len(&self) -> u64 {
        64
    }
    fn read(&self, off: u64, _w: Width) -> u64 {
        self.0.lock().unwrap()[off as usize / 4].into()
    }
    fn write(&self, off: u64, _w: Width, v: u64) {
        self.0.lock().unwrap()[off as usize / 4] = v as u32;
    }
}

fn dev(bdf: &str, group: u32) -> (FakeDevice, Arc<Mutex<[u32; 16]>>) {
    let mut config = vec![0u8; 256];
    config[0..4].copy_from_slice(&[0xf4, 0x1a, 0x41, 0x10]);
    config[6] = 0x10; // capability list
    config[0x34] = 0x40;
    config[0x40] = pci::CAP_ID_MSIX;
    config[0x41] = 0x50;
    config[0x50] = pci::CAP_ID_VENDOR;
    config[0x51] = 0x50; // a loop: the walk must stop
    let regs = Arc::new(Mutex::new([0u32; 16]));
    let r2 = regs.clone();
    let d = FakeDevice {
        bdf: bdf.into(),
        group,
        viable: true,
        config,
        bars: vec![(4, 64, Arc::new(move || Box::new(Regs(r2.clone())) as Box<dyn Mmio>))],
        msix: 3,
        resettable: true,
    };
    (d, regs)
}

#[test]
fn open_config_bars_and_bus_master() {
    let (d, regs) = dev("0000:00:03.0", 7);
    let sys = Arc::new(FakeSys::new(vec![d]));
    let dev = Device::open(sys.clone(), "0000:00:03.0", IovaSpace::default()).unwrap();
    assert_eq!(dev.pci_ids().unwrap(), (0x1af4, 0x1041));
    let caps = dev.capabilities().unwrap();
    assert_eq!(caps[0], (pci::CAP_ID_MSIX, 0x40));
    assert_eq!(caps[1], (pci::CAP_ID_VENDOR, 0x50));
    assert!(caps.len() <= 48, "looping capability list is bounded");
    dev.enable_bus_master().unwrap();
    let cfg = sys.config_of("0000:00:03.0").unwrap();
    let cmd = u16::from_le_bytes([cfg[4], cfg[5]]);
    assert_eq!(cmd & 0x6, 0x6, "memory + bus master enabled");
    assert!(dev.config_read(250, &mut [0; 8]).is_err(), "outside config space");
    let bar = dev.map_bar(4).unwrap();
    bar.write32(8, 0xfeed).unwrap();
    assert_eq!(regs.lock().unwrap()[2], 0xfeed);
    assert!(bar.read32(64).is_err());
    assert!(dev.map_bar(0).is_err(), "BAR 0 does not exist");
    assert!(dev.reset().unwrap());
    assert_eq!(sys.resets(), 1);
}

#[test]
fn clear_errors_for_missing_pieces() {
    let (d, _) = dev("0000:00:03.0", 7);
    let mut sys = FakeSys::new(vec![d.clone()]);
    sys.has_vfio = false;
    let e = Device::open(Arc::new(sys), "0000:00:03.0", IovaSpace::default()).unwrap_err();
    assert_eq!(e, VfioError::NoVfio);
    assert!(e.to_string().contains("vfio-pci"));

    let mut sys = FakeSys::new(vec![d.clone()]);
    sys.type1v2 = false;
    let e = Device::open(Arc::new(sys), "0000:00:03.0", IovaSpace::default()).unwrap_err();
    assert_eq!(e, VfioError::NoType1v2);

    let sys = Arc::new(FakeSys::new(vec![d.clone()]));
    let e = Device::open(sys, "0000:00:09.0", IovaSpace::default()).unwrap_err();
    assert!(matches!(e, VfioError::NoIommuGroup(_)), "{e}");

    let (other, _) = dev("0000:00:04.0", 7);
    let other = FakeDevice { viable: false, ..other };
    let sys = Arc::new(FakeSys::new(vec![d, other]));
    let e = Device::open(sys, "0000:00:03.0", IovaSpace::default()).unwrap_err();
    assert_eq!(e, VfioError::GroupNotViable(7));
}

#[test]
fn dma_mappings_are_raii_and_device_sees_memory_by_iova() {
    let (d, _) = dev("0000:00:03.0", 7);
    let sys = Arc::new(FakeSys::new(vec![d]));
    let iommu = sys.iommu();
    let dev = Device::open(sys.clone(), "0000:00:03.0", IovaSpace::default()).unwrap();
    let a = dev.container().alloc_dma(10_000, false).unwrap();
    let b = dev.container().alloc_dma(4096, false).unwrap();
    assert_eq!(iommu.mappings(), 2);
    assert!(a.iova() >= 1 << 20 && a.iova() + 12288 <= 1 << 39);
    assert!(b.iova() >= a.iova() + 12288 || b.iova() + 4096 <= a.iova(), "disjoint");
    a.mem().write_u32(4, 0xa5a5_0001);
    assert_eq!(iommu.read_u32(a.iova() + 4).unwrap(), 0xa5a5_0001);
    iommu.write(a.iova() + 9000, &[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    assert_eq!(a.mem().read_u64(9000), u64::from_le_bytes([1, 2, 3, 4, 5, 6, 7, 8]));
    assert!(iommu.read(a.iova() + 12288 - 2, &mut [0; 4]).is_err(), "straddles the end");
    assert!(iommu.read(0, &mut [0; 1]).is_err(), "IOVA 0 is never mapped");
    let a_iova = a.iova();
    drop(a);
    assert_eq!(iommu.mappings(), 1);
    assert!(iommu.read(a_iova, &mut [0; 4]).is_err(), "unmapped on drop");
    let c = dev.container().alloc_dma(4096, false).unwrap();
    assert_eq!(c.iova(), a_iova, "IOVAs are reused after unmap");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| c.mem().read_u32(4096)));
    assert!(r.is_err(), "DMA accessors are bounds-checked");
}

#[test]
fn iova_space_exhaustion_is_an_error() {
    let (d, _) = dev("0000:00:03.0", 7);
    let sys = Arc::new(FakeSys::new(vec![d]));
    let space = IovaSpace { base: 1 << 20, limit: (1 << 20) + 8192 };
    let dev = Device::open(sys, "0000:00:03.0", space).unwrap();
    let _a = dev.container().alloc_dma(8192, false).unwrap();
    assert_eq!(dev.container().alloc_dma(4096, false).unwrap_err(), VfioError::IovaExhausted(4096));
}

#[test]
fn msix_vectors_reach_eventfds() {
    let (d, _) = dev("0000:00:03.0", 7);
    let sys = Arc::new(FakeSys::new(vec![d]));
    let dev = Device::open(sys.clone(), "0000:00:03.0", IovaSpace::default()).unwrap();
    assert!(dev.enable_msix(4).is_err(), "only 3 vectors");
    let fds = dev.enable_msix(2).unwrap();
    assert_ne!(fds[0].as_raw_fd(), fds[1].as_raw_fd());
    assert_eq!(fds[1].take().unwrap(), 0);
    assert!(sys.signal_msix("0000:00:03.0", 1));
    assert!(sys.signal_msix("0000:00:03.0", 1));
    assert_eq!(fds[1].take().unwrap(), 2);
    assert_eq!(fds[0].take().unwrap(), 0);
    assert!(!sys.signal_msix("0000:00:03.0", 2));
    dev.disable_msix().unwrap();
    assert!(!sys.signal_msix("0000:00:03.0", 0));
}
