//! A fake of the syscall edge (DESIGN.md rule 8): [`FakeSys`] implements [`Sys`] with an
//! in-memory model of VFIO — containers, groups, devices with a config space and BARs backed by
//! register-level device models — and a [`FakeIommu`] that records every DMA mapping so that a
//! fake device can read and write guest memory *by IOVA*, exactly as a real device behind an
//! IOMMU would: an access outside every live mapping is a fault, which tests assert on.
//!
//! Compiled for this crate's tests and, with the `fake` feature, for other crates' tests.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::bar::Mmio;
pub use crate::dma::{FakeIommu, IommuFault};
use crate::error::VfioError;
use crate::sys::{self, DeviceInfo, IrqInfo, RegionInfo, Sys};

/// Builds a register window for one BAR of a fake device (called on every `mmap`).
pub type BarFactory = Arc<dyn Fn() -> Box<dyn Mmio> + Send + Sync>;

/// A fake PCI device.
#[derive(Clone)]
pub struct FakeDevice {
    /// PCI address.
    pub bdf: String,
    /// IOMMU group.
    pub group: u32,
    /// Whether the group is viable.
    pub viable: bool,
    /// Configuration space (at least 256 bytes); writes land here.
    pub config: Vec<u8>,
    /// BARs: `(index, length, model)`.
    pub bars: Vec<(u8, u64, BarFactory)>,
    /// MSI-X vectors.
    pub msix: u32,
    /// Whether it supports `VFIO_DEVICE_RESET`.
    pub resettable: bool,
}

#[derive(Clone, Copy, Debug)]
enum Obj {
    Container,
    Group(u32),
    Device(usize),
}

struct State {
    devices: Vec<FakeDevice>,
    objs: HashMap<RawFd, Obj>,
    irqs: HashMap<usize, Vec<OwnedFd>>,
    resets: u32,
}

/// The fake VFIO system. Knobs: whether `/dev/vfio/vfio` exists and whether type1v2 is offered.
pub struct FakeSys {
    /// Whether `/dev/vfio/vfio` exists.
    pub has_vfio: bool,
    /// Whether the container offers type1v2.
    pub type1v2: bool,
    state: Mutex<State>,
    iommu: Arc<FakeIommu>,
}

const CONFIG_OFFSET: u64 = 7 << 40;

fn bar_offset(i: u8) -> u64 {
    u64::from(i) << 40
}

impl FakeSys {
    /// A system with these devices.
    pub fn new(devices: Vec<FakeDevice>) -> FakeSys {
        FakeSys {
            has_vfio: true,
            type1v2: true,
            state: Mutex::new(State {
                devices,
                objs: HashMap::new(),
                irqs: HashMap::new(),
                resets: 0,
            }),
            iommu: Arc::new(FakeIommu::default()),
        }
    }

    /// The IOMMU (for device models doing DMA).
    pub fn iommu(&self) -> Arc<FakeIommu> {
        self.iommu.clone()
    }

    fn st(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn handle(&self, obj: Obj) -> Result<OwnedFd, VfioError> {
        let fd = sys::eventfd()?;
        self.st().objs.insert(fd.as_raw_fd(), obj);
        Ok(fd)
    }

    fn obj(&self, fd: BorrowedFd<'_>) -> Result<Obj, VfioError> {
        self.st()
            .objs
            .get(&fd.as_raw_fd())
            .copied()
            .ok_or(VfioError::Os { op: "fake", errno: libc::EBADF })
    }

    fn device(&self, fd: BorrowedFd<'_>) -> Result<usize, VfioError> {
        match self.obj(fd)? {
            Obj::Device(i) => Ok(i),
            _ => Err(VfioError::Os { op: "fake device op", errno: libc::ENOTTY }),
        }
    }

    /// Signals MSI-X vector `vector` of device `bdf` (what the device's interrupt does);
    /// `false` if that vector has no eventfd.
    pub fn signal_msix(&self, bdf: &str, vector: usize) -> bool {
        let st = self.st();
        let Some(i) = st.devices.iter().position(|d| d.bdf == bdf) else { return false };
        match st.irqs.get(&i).and_then(|v| v.get(vector)) {
            Some(fd) => sys::eventfd_signal(fd.as_fd()).is_ok(),
            None => false,
        }
    }

    /// The config space of device `bdf` as it is now.
    pub fn config_of(&self, bdf: &str) -> Option<Vec<u8>> {
        self.st().devices.iter().find(|d| d.bdf == bdf).map(|d| d.config.clone())
    }

    /// How many `VFIO_DEVICE_RESET`s were issued.
    pub fn resets(&self) -> u32 {
        self.st().resets
    }
}

impl Sys for FakeSys {
    fn open_container(&self) -> Result<OwnedFd, VfioError> {
        if !self.has_vfio {
            return Err(VfioError::NoVfio);
        }
        self.handle(Obj::Container)
    }

    fn iommu_group(&self, bdf: &str) -> Result<u32, VfioError> {
        self.st()
            .devices
            .iter()
            .find(|d| d.bdf == bdf)
            .map(|d| d.group)
            .ok_or_else(|| VfioError::NoIommuGroup(bdf.to_string()))
    }

    fn open_group(&self, group: u32) -> Result<OwnedFd, VfioError> {
        if !self.st().devices.iter().any(|d| d.group == group) {
            return Err(VfioError::NoGroupDevice(group));
        }
        self.handle(Obj::Group(group))
    }

    fn api_version(&self, _c: BorrowedFd<'_>) -> Result<i32, VfioError> {
        Ok(0)
    }

    fn check_extension(&self, _c: BorrowedFd<'_>, ext: u32) -> Result<bool, VfioError> {
        Ok(ext == sys::VFIO_TYPE1V2_IOMMU && self.type1v2)
    }

    fn set_iommu(&self, _c: BorrowedFd<'_>, kind: u32) -> Result<(), VfioError> {
        if kind == sys::VFIO_TYPE1V2_IOMMU && self.type1v2 {
            Ok(())
        } else {
            Err(VfioError::Os { op: "VFIO_SET_IOMMU", errno: libc::ENODEV })
        }
    }

    fn group_status(&self, g: BorrowedFd<'_>) -> Result<u32, VfioError> {
        let Obj::Group(id) = self.obj(g)? else { return Err(VfioError::Invalid("not a group")) };
        let viable = self.st().devices.iter().filter(|d| d.group == id).all(|d| d.viable);
        Ok(if viable { sys::GROUP_FLAGS_VIABLE } else { 0 })
    }

    fn group_set_container(&self, g: BorrowedFd<'_>, c: BorrowedFd<'_>) -> Result<(), VfioError> {
        match (self.obj(g)?, self.obj(c)?) {
            (Obj::Group(_), Obj::Container) => Ok(()),
            _ => Err(VfioError::Os { op: "VFIO_GROUP_SET_CONTAINER", errno: libc::EINVAL }),
        }
    }

    fn group_get_device(&self, g: BorrowedFd<'_>, bdf: &str) -> Result<OwnedFd, VfioError> {
        let Obj::Group(id) = self.obj(g)? else { return Err(VfioError::Invalid("not a group")) };
        let i = self
            .st()
            .devices
            .iter()
            .position(|d| d.bdf == bdf && d.group == id)
            .ok_or(VfioError::Os { op: "GET_DEVICE_FD", errno: libc::ENODEV })?;
        self.handle(Obj::Device(i))
    }

    fn device_info(&self, d: BorrowedFd<'_>) -> Result<DeviceInfo, VfioError> {
        let i = self.device(d)?;
        let flags = if self.st().devices[i].resettable { sys::DEVICE_FLAGS_RESET } else { 0 };
        Ok(DeviceInfo { flags, num_regions: 9, num_irqs: 5 })
    }

    fn region_info(&self, d: BorrowedFd<'_>, index: u32) -> Result<RegionInfo, VfioError> {
        let i = self.device(d)?;
        let st = self.st();
        let dev = &st.devices[i];
        if index == sys::PCI_CONFIG_REGION_INDEX {
            return Ok(RegionInfo {
                flags: 3,
                size: dev.config.len() as u64,
                offset: CONFIG_OFFSET,
            });
        }
        Ok(match dev.bars.iter().find(|b| u32::from(b.0) == index) {
            Some(b) => RegionInfo {
                flags: 3 | sys::REGION_INFO_FLAG_MMAP,
                size: b.1,
                offset: bar_offset(b.0),
            },
            None => RegionInfo::default(),
        })
    }

    fn irq_info(&self, d: BorrowedFd<'_>, index: u32) -> Result<IrqInfo, VfioError> {
        let i = self.device(d)?;
        let count = if index == sys::PCI_MSIX_IRQ_INDEX { self.st().devices[i].msix } else { 0 };
        Ok(IrqInfo { flags: 0, count })
    }

    fn set_irq_eventfds(
        &self,
        d: BorrowedFd<'_>,
        index: u32,
        start: u32,
        fds: &[RawFd],
    ) -> Result<(), VfioError> {
        let i = self.device(d)?;
        if index != sys::PCI_MSIX_IRQ_INDEX || start != 0 {
            return Err(VfioError::Os { op: "SET_IRQS", errno: libc::EINVAL });
        }
        let owned = fds.iter().map(|&fd| sys::dup_raw(fd)).collect::<Result<Vec<_>, _>>()?;
        self.st().irqs.insert(i, owned);
        Ok(())
    }

    fn reset(&self, d: BorrowedFd<'_>) -> Result<(), VfioError> {
        let i = self.device(d)?;
        let mut st = self.st();
        if !st.devices[i].resettable {
            return Err(VfioError::Os { op: "VFIO_DEVICE_RESET", errno: libc::ENOTTY });
        }
        st.resets += 1;
        Ok(())
    }

    fn read_at(&self, d: BorrowedFd<'_>, offset: u64, buf: &mut [u8]) -> Result<(), VfioError> {
        let i = self.device(d)?;
        let st = self.st();
        let cfg = &st.devices[i].config;
        let off = offset.checked_sub(CONFIG_OFFSET).ok_or(VfioError::BadRegion(0))? as usize;
        let src = cfg.get(off..off + buf.len()).ok_or(VfioError::BadRegion(7))?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn write_at(&self, d: BorrowedFd<'_>, offset: u64, buf: &[u8]) -> Result<(), VfioError> {
        let i = self.device(d)?;
        let mut st = self.st();
        let cfg = &mut st.devices[i].config;
        let off = offset.checked_sub(CONFIG_OFFSET).ok_or(VfioError::BadRegion(0))? as usize;
        cfg.get_mut(off..off + buf.len()).ok_or(VfioError::BadRegion(7))?.copy_from_slice(buf);
        Ok(())
    }

    fn map_region(
        &self,
        d: BorrowedFd<'_>,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn Mmio>, VfioError> {
        let i = self.device(d)?;
        let st = self.st();
        let b = st.devices[i]
            .bars
            .iter()
            .find(|b| bar_offset(b.0) == offset && b.1 == len)
            .ok_or(VfioError::BadRegion((offset >> 40) as u32))?;
        Ok((b.2)())
    }

    fn dma_map(
        &self,
        c: BorrowedFd<'_>,
        vaddr: usize,
        iova: u64,
        size: u64,
    ) -> Result<(), VfioError> {
        let Obj::Container = self.obj(c)? else {
            return Err(VfioError::Invalid("not a container"));
        };
        let mut maps = self.iommu.table();
        if maps.iter().any(|&(i, _, l)| iova < i + l && i < iova + size) {
            return Err(VfioError::Os { op: "VFIO_IOMMU_MAP_DMA", errno: libc::EEXIST });
        }
        maps.push((iova, vaddr, size));
        Ok(())
    }

    fn dma_unmap(&self, _c: BorrowedFd<'_>, iova: u64, size: u64) -> Result<(), VfioError> {
        let mut maps = self.iommu.table();
        let n = maps.len();
        maps.retain(|&(i, _, l)| !(i == iova && l == size));
        if maps.len() == n {
            return Err(VfioError::Os { op: "VFIO_IOMMU_UNMAP_DMA", errno: libc::EINVAL });
        }
        Ok(())
    }
}
