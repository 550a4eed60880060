//! Containers, groups and devices (VFIO's three objects, `Documentation/driver-api/vfio.rst`),
//! in safe code over [`crate::sys::Sys`].
//!
//! Order of operations: open the container, check the API version and the type1v2 extension;
//! open the device's group, check that it is viable, attach it to the container; set the IOMMU
//! type (after the first group is attached); get the device fd. A [`Device`] keeps its group and
//! container alive; the container keeps the IOVA allocator.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};

use crate::bar::Bar;
use crate::dma::{DmaBuffer, DmaMapping, DmaMemory, DmaTarget};
use crate::error::VfioError;
use crate::iova::IovaAllocator;
use crate::sys::{self, DeviceInfo, RegionInfo, Sys};

/// The IOVA space to allocate from. The default, `[1 MiB, 2^39)`, fits QEMU's intel-iommu
/// (`aw-bits=39`) and every real VT-d/AMD-Vi unit; IOVA 0 is never handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IovaSpace {
    /// Lowest IOVA.
    pub base: u64,
    /// One past the highest IOVA.
    pub limit: u64,
}

impl Default for IovaSpace {
    fn default() -> Self {
        IovaSpace { base: 1 << 20, limit: 1 << 39 }
    }
}

pub(crate) struct ContainerInner {
    pub(crate) sys: Arc<dyn Sys>,
    fd: OwnedFd,
    iova: Mutex<IovaAllocator>,
    iommu_set: Mutex<bool>,
}

impl ContainerInner {
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn alloc_iova(&self, len: u64, align: u64) -> Result<u64, VfioError> {
        let mut a = self.iova.lock().unwrap_or_else(|e| e.into_inner());
        a.alloc(len, align).ok_or(VfioError::IovaExhausted(len))
    }

    pub(crate) fn free_iova(&self, iova: u64, len: u64) {
        self.iova.lock().unwrap_or_else(|e| e.into_inner()).free(iova, len);
    }
}

/// A VFIO container: one IOMMU address space (type1v2) and Joyride's IOVA allocator for it.
/// Cloning gives another handle on the same container.
#[derive(Clone)]
pub struct Container {
    inner: Arc<ContainerInner>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container").field("fd", &self.inner.fd.as_raw_fd()).finish()
    }
}

impl Container {
    /// Opens `/dev/vfio/vfio` and checks that it speaks API 0 with the type1v2 IOMMU.
    pub fn open(sys: Arc<dyn Sys>, space: IovaSpace) -> Result<Container, VfioError> {
        let fd = sys.open_container()?;
        let v = sys.api_version(fd.as_fd())?;
        if v != 0 {
            return Err(VfioError::ApiVersion(v));
        }
        if !sys.check_extension(fd.as_fd(), sys::VFIO_TYPE1V2_IOMMU)? {
            return Err(VfioError::NoType1v2);
        }
        let inner = ContainerInner {
            sys,
            fd,
            iova: Mutex::new(IovaAllocator::new(space.base, space.limit)),
            iommu_set: Mutex::new(false),
        };
        Ok(Container { inner: Arc::new(inner) })
    }

    /// Maps `target` for device DMA at a freshly allocated IOVA; the mapping owns `target`.
    pub fn map_dma<T: DmaTarget>(&self, target: T) -> Result<DmaMapping, VfioError> {
        DmaMapping::map(self.inner.clone(), target)
    }

    /// Allocates `len` bytes of zeroed, pinned DMA memory (huge pages if `try_huge` and
    /// reserved) and maps it.
    pub fn alloc_dma(&self, len: usize, try_huge: bool) -> Result<DmaBuffer, VfioError> {
        DmaBuffer::new(self.inner.clone(), DmaMemory::new(len, try_huge)?)
    }

    fn attach(&self, group: &Group) -> Result<(), VfioError> {
        let sys = &self.inner.sys;
        sys.group_set_container(group.fd.as_fd(), self.inner.fd())?;
        let mut set = self.inner.iommu_set.lock().unwrap_or_else(|e| e.into_inner());
        if !*set {
            sys.set_iommu(self.inner.fd(), sys::VFIO_TYPE1V2_IOMMU).map_err(|e| match e {
                VfioError::Os { errno: libc::ENODEV, .. } => VfioError::NoType1v2,
                e => e,
            })?;
            *set = true;
        }
        Ok(())
    }
}

/// An IOMMU group attached to a container.
#[derive(Debug)]
pub struct Group {
    id: u32,
    fd: OwnedFd,
}

impl Group {
    /// The group number.
    pub fn id(&self) -> u32 {
        self.id
    }
}

/// An eventfd an interrupt vector signals (RAII: closed on drop).
#[derive(Debug)]
pub struct EventFd(OwnedFd);

impl EventFd {
    /// Reads and clears the counter; 0 if it was not signalled.
    pub fn take(&self) -> Result<u64, VfioError> {
        sys::eventfd_take(self.0.as_fd())
    }

    /// Signals it (what the device's interrupt does; for tests and for waking a waiter).
    pub fn signal(&self) -> Result<(), VfioError> {
        sys::eventfd_signal(self.0.as_fd())
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// PCI configuration-space offsets used here (PCI Local Bus Specification 3.0 §6.1, §6.7).
pub mod pci {
    /// Vendor ID (16 bits).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device ID (16 bits).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command register (16 bits).
    pub const COMMAND: u16 = 0x04;
    /// Status register (16 bits).
    pub const STATUS: u16 = 0x06;
    /// Capabilities pointer (8 bits).
    pub const CAP_PTR: u16 = 0x34;
    /// Command: memory space enable.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// Command: bus master enable (the device may DMA).
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    /// Command: INTx disable.
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    /// Status: the capability list exists.
    pub const STATUS_CAP_LIST: u16 = 1 << 4;
    /// Capability ID of MSI-X.
    pub const CAP_ID_MSIX: u8 = 0x11;
    /// Capability ID of a vendor-specific capability (virtio uses these).
    pub const CAP_ID_VENDOR: u8 = 0x09;
}

/// A PCI device opened through VFIO.
pub struct Device {
    bdf: String,
    fd: OwnedFd,
    info: DeviceInfo,
    config: RegionInfo,
    // Drop order: the device fd closes first (above), then the group, then the container.
    _group: Group,
    container: Container,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("bdf", &self.bdf).field("info", &self.info).finish()
    }
}

impl Device {
    /// Opens the PCI device `bdf` (`0000:00:03.0`) in a new container.
    pub fn open(sys: Arc<dyn Sys>, bdf: &str, space: IovaSpace) -> Result<Device, VfioError> {
        let container = Container::open(sys, space)?;
        Device::open_in(&container, bdf)
    }

    /// Opens `bdf` in an existing container (devices sharing one IOMMU address space).
    pub fn open_in(container: &Container, bdf: &str) -> Result<Device, VfioError> {
        let sys = container.inner.sys.clone();
        let id = sys.iommu_group(bdf)?;
        let group = Group { id, fd: sys.open_group(id)? };
        if sys.group_status(group.fd.as_fd())? & sys::GROUP_FLAGS_VIABLE == 0 {
            return Err(VfioError::GroupNotViable(id));
        }
        container.attach(&group)?;
        let fd = sys.group_get_device(group.fd.as_fd(), bdf)?;
        let info = sys.device_info(fd.as_fd())?;
        let config = sys.region_info(fd.as_fd(), sys::PCI_CONFIG_REGION_INDEX)?;
        if config.size < 64 {
            return Err(VfioError::BadRegion(sys::PCI_CONFIG_REGION_INDEX));
        }
        Ok(Device {
            bdf: bdf.to_string(),
            fd,
            info,
            config,
            _group: group,
            container: container.clone(),
        })
    }

    fn sys(&self) -> &dyn Sys {
        &*self.container.inner.sys
    }

    /// The PCI address.
    pub fn bdf(&self) -> &str {
        &self.bdf
    }

    /// The container (for DMA mappings).
    pub fn container(&self) -> &Container {
        &self.container
    }

    /// `VFIO_DEVICE_GET_INFO`.
    pub fn info(&self) -> DeviceInfo {
        self.info
    }

    /// Information about region `index` (BAR 0–5, ROM 6, config 7).
    pub fn region_info(&self, index: u32) -> Result<RegionInfo, VfioError> {
        self.sys().region_info(self.fd.as_fd(), index)
    }

    /// Reads configuration space at `off` (bounds-checked against the config region).
    pub fn config_read(&self, off: u16, buf: &mut [u8]) -> Result<(), VfioError> {
        if u64::from(off) + buf.len() as u64 > self.config.size {
            return Err(VfioError::Invalid("config read outside config space"));
        }
        self.sys().read_at(self.fd.as_fd(), self.config.offset + u64::from(off), buf)
    }

    /// Writes configuration space at `off`.
    pub fn config_write(&self, off: u16, buf: &[u8]) -> Result<(), VfioError> {
        if u64::from(off) + buf.len() as u64 > self.config.size {
            return Err(VfioError::Invalid("config write outside config space"));
        }
        self.sys().write_at(self.fd.as_fd(), self.config.offset + u64::from(off), buf)
    }

    /// Reads an 8-bit config register.
    pub fn config_read8(&self, off: u16) -> Result<u8, VfioError> {
        let mut b = [0u8; 1];
        self.config_read(off, &mut b)?;
        Ok(b[0])
    }

    /// Reads a 16-bit config register (PCI config space is little-endian).
    pub fn config_read16(&self, off: u16) -> Result<u16, VfioError> {
        let mut b = [0u8; 2];
        self.config_read(off, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a 32-bit config register.
    pub fn config_read32(&self, off: u16) -> Result<u32, VfioError> {
        let mut b = [0u8; 4];
        self.config_read(off, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a 16-bit config register.
    pub fn config_write16(&self, off: u16, v: u16) -> Result<(), VfioError> {
        self.config_write(off, &v.to_le_bytes())
    }

    /// `(vendor, device)` IDs.
    pub fn pci_ids(&self) -> Result<(u16, u16), VfioError> {
        Ok((self.config_read16(pci::VENDOR_ID)?, self.config_read16(pci::DEVICE_ID)?))
    }

    /// The capability list as `(id, offset)` pairs, walked with a bound on its length (a
    /// device could present a loop).
    pub fn capabilities(&self) -> Result<Vec<(u8, u8)>, VfioError> {
        let mut out = Vec::new();
        if self.config_read16(pci::STATUS)? & pci::STATUS_CAP_LIST == 0 {
            return Ok(out);
        }
        let mut ptr = self.config_read8(pci::CAP_PTR)? & !3;
        // PCI 3.0 §6.7: capabilities live in 0x40..0x100, each at least 4 bytes: at most 48.
        while ptr >= 0x40 && out.len() < 48 {
            let id = self.config_read8(ptr.into())?;
            out.push((id, ptr));
            ptr = self.config_read8(u16::from(ptr) + 1)? & !3;
        }
        Ok(out)
    }

    /// Enables memory decoding and bus mastering (the device may now DMA) and disables INTx.
    pub fn enable_bus_master(&self) -> Result<(), VfioError> {
        let c = self.config_read16(pci::COMMAND)?;
        self.config_write16(
            pci::COMMAND,
            c | pci::COMMAND_MEMORY | pci::COMMAND_BUS_MASTER | pci::COMMAND_INTX_DISABLE,
        )
    }

    /// Disables bus mastering (no more DMA).
    pub fn disable_bus_master(&self) -> Result<(), VfioError> {
        let c = self.config_read16(pci::COMMAND)?;
        self.config_write16(pci::COMMAND, c & !pci::COMMAND_BUS_MASTER)
    }

    /// Function-level reset through `VFIO_DEVICE_RESET`; `Ok(false)` when the device offers none.
    pub fn reset(&self) -> Result<bool, VfioError> {
        if self.info.flags & sys::DEVICE_FLAGS_RESET == 0 {
            return Ok(false);
        }
        self.sys().reset(self.fd.as_fd())?;
        Ok(true)
    }

    /// Maps BAR `index` (which must be mappable memory).
    pub fn map_bar(&self, index: u8) -> Result<Bar, VfioError> {
        let r = self.region_info(index.into())?;
        if index > 5 || r.size == 0 || r.flags & sys::REGION_INFO_FLAG_MMAP == 0 {
            return Err(VfioError::BadRegion(index.into()));
        }
        Ok(Bar::new(index, self.sys().map_region(self.fd.as_fd(), r.offset, r.size)?))
    }

    /// Routes MSI-X vectors `0..n` to fresh eventfds (`VFIO_DEVICE_SET_IRQS`).
    pub fn enable_msix(&self, n: u32) -> Result<Vec<EventFd>, VfioError> {
        let info = self.sys().irq_info(self.fd.as_fd(), sys::PCI_MSIX_IRQ_INDEX)?;
        if n == 0 || n > info.count {
            return Err(VfioError::Invalid("more MSI-X vectors than the device has"));
        }
        let fds =
            (0..n).map(|_| self.sys().eventfd().map(EventFd)).collect::<Result<Vec<_>, _>>()?;
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        self.sys().set_irq_eventfds(self.fd.as_fd(), sys::PCI_MSIX_IRQ_INDEX, 0, &raw)?;
        Ok(fds)
    }

    /// Disables MSI-X.
    pub fn disable_msix(&self) -> Result<(), VfioError> {
        self.sys().set_irq_eventfds(self.fd.as_fd(), sys::PCI_MSIX_IRQ_INDEX, 0, &[])
    }
}
