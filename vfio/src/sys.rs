//! The syscall edge (DESIGN.md rule 8): every VFIO ioctl, `open`, `pread`/`pwrite` and `mmap`
//! of a device region happens in this module, behind the object-safe [`Sys`] trait, so that the
//! rest of the crate (and the drivers above it) can be unit-tested against
//! `crate::fake::FakeSys` (feature `fake`) on machines without VFIO.
//!
//! The ioctl numbers and structures are those of `include/uapi/linux/vfio.h` (`VFIO_TYPE` = ';',
//! `VFIO_BASE` = 100; every VFIO ioctl is `_IO(VFIO_TYPE, VFIO_BASE + n)`, size and direction 0,
//! with `argsz` inside the structure carrying the size instead).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;

use crate::bar::{Mmio, MmioRegion};
use crate::error::VfioError;

const VFIO_TYPE: u64 = b';' as u64;
const VFIO_BASE: u64 = 100;
const fn vfio_io(n: u64) -> u64 {
    (VFIO_TYPE << 8) | (VFIO_BASE + n)
}
const VFIO_GET_API_VERSION: u64 = vfio_io(0);
const VFIO_CHECK_EXTENSION: u64 = vfio_io(1);
const VFIO_SET_IOMMU: u64 = vfio_io(2);
const VFIO_GROUP_GET_STATUS: u64 = vfio_io(3);
const VFIO_GROUP_SET_CONTAINER: u64 = vfio_io(4);
const VFIO_GROUP_GET_DEVICE_FD: u64 = vfio_io(6);
const VFIO_DEVICE_GET_INFO: u64 = vfio_io(7);
const VFIO_DEVICE_GET_REGION_INFO: u64 = vfio_io(8);
const VFIO_DEVICE_GET_IRQ_INFO: u64 = vfio_io(9);
const VFIO_DEVICE_SET_IRQS: u64 = vfio_io(10);
const VFIO_DEVICE_RESET: u64 = vfio_io(11);
const VFIO_IOMMU_MAP_DMA: u64 = vfio_io(13);
const VFIO_IOMMU_UNMAP_DMA: u64 = vfio_io(14);

/// `VFIO_TYPE1v2_IOMMU`: the IOMMU model this crate uses.
pub const VFIO_TYPE1V2_IOMMU: u32 = 3;
/// `VFIO_GROUP_FLAGS_VIABLE`.
pub const GROUP_FLAGS_VIABLE: u32 = 1;
/// `VFIO_DEVICE_FLAGS_RESET`: the device supports `VFIO_DEVICE_RESET`.
pub const DEVICE_FLAGS_RESET: u32 = 1;
/// `VFIO_REGION_INFO_FLAG_MMAP`.
pub const REGION_INFO_FLAG_MMAP: u32 = 1 << 2;
/// `VFIO_PCI_CONFIG_REGION_INDEX`.
pub const PCI_CONFIG_REGION_INDEX: u32 = 7;
/// `VFIO_PCI_MSIX_IRQ_INDEX`.
pub const PCI_MSIX_IRQ_INDEX: u32 = 2;

const DMA_MAP_FLAG_READ: u32 = 1;
const DMA_MAP_FLAG_WRITE: u32 = 2;
const IRQ_SET_DATA_NONE: u32 = 1;
const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;

#[repr(C)]
struct GroupStatus {
    argsz: u32,
    flags: u32,
}
const _: () = assert!(size_of::<GroupStatus>() == 8);

#[repr(C)]
struct RawDeviceInfo {
    argsz: u32,
    flags: u32,
    num_regions: u32,
    num_irqs: u32,
}
const _: () = assert!(size_of::<RawDeviceInfo>() == 16);

#[repr(C)]
struct RawRegionInfo {
    argsz: u32,
    flags: u32,
    index: u32,
    cap_offset: u32,
    size: u64,
    offset: u64,
}
const _: () = assert!(size_of::<RawRegionInfo>() == 32);

#[repr(C)]
struct RawIrqInfo {
    argsz: u32,
    flags: u32,
    index: u32,
    count: u32,
}
const _: () = assert!(size_of::<RawIrqInfo>() == 16);

#[repr(C)]
struct DmaMap {
    argsz: u32,
    flags: u32,
    vaddr: u64,
    iova: u64,
    size: u64,
}
const _: () = assert!(size_of::<DmaMap>() == 32);

#[repr(C)]
struct DmaUnmap {
    argsz: u32,
    flags: u32,
    iova: u64,
    size: u64,
}
const _: () = assert!(size_of::<DmaUnmap>() == 24);

/// Header of `struct vfio_irq_set`; the eventfds (`s32` each) follow it.
#[repr(C)]
struct IrqSetHdr {
    argsz: u32,
    flags: u32,
    index: u32,
    start: u32,
    count: u32,
}
const _: () = assert!(size_of::<IrqSetHdr>() == 20);

/// `VFIO_DEVICE_GET_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    /// `VFIO_DEVICE_FLAGS_*`.
    pub flags: u32,
    /// Number of regions.
    pub num_regions: u32,
    /// Number of interrupt indices.
    pub num_irqs: u32,
}

/// `VFIO_DEVICE_GET_REGION_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RegionInfo {
    /// `VFIO_REGION_INFO_FLAG_*`.
    pub flags: u32,
    /// Size in bytes (0: the region does not exist).
    pub size: u64,
    /// Offset of the region in the device fd (for `pread`/`pwrite`/`mmap`).
    pub offset: u64,
}

/// `VFIO_DEVICE_GET_IRQ_INFO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IrqInfo {
    /// `VFIO_IRQ_INFO_*`.
    pub flags: u32,
    /// Number of vectors.
    pub count: u32,
}

/// Every operating-system call the VFIO layer makes. [`RealSys`] issues them; the fake in
/// `crate::fake` models them for tests.
pub trait Sys: Send + Sync {
    /// Opens `/dev/vfio/vfio`.
    fn open_container(&self) -> Result<OwnedFd, VfioError>;
    /// The IOMMU group of the PCI device `bdf` (`/sys/bus/pci/devices/BDF/iommu_group`).
    fn iommu_group(&self, bdf: &str) -> Result<u32, VfioError>;
    /// Opens `/dev/vfio/GROUP`.
    fn open_group(&self, group: u32) -> Result<OwnedFd, VfioError>;
    /// `VFIO_GET_API_VERSION`.
    fn api_version(&self, container: BorrowedFd<'_>) -> Result<i32, VfioError>;
    /// `VFIO_CHECK_EXTENSION`.
    fn check_extension(&self, container: BorrowedFd<'_>, ext: u32) -> Result<bool, VfioError>;
    /// `VFIO_SET_IOMMU`.
    fn set_iommu(&self, container: BorrowedFd<'_>, kind: u32) -> Result<(), VfioError>;
    /// `VFIO_GROUP_GET_STATUS`: the flags.
    fn group_status(&self, group: BorrowedFd<'_>) -> Result<u32, VfioError>;
    /// `VFIO_GROUP_SET_CONTAINER`.
    fn group_set_container(
        &self,
        group: BorrowedFd<'_>,
        container: BorrowedFd<'_>,
    ) -> Result<(), VfioError>;
    /// `VFIO_GROUP_GET_DEVICE_FD`.
    fn group_get_device(&self, group: BorrowedFd<'_>, bdf: &str) -> Result<OwnedFd, VfioError>;
    /// `VFIO_DEVICE_GET_INFO`.
    fn device_info(&self, device: BorrowedFd<'_>) -> Result<DeviceInfo, VfioError>;
    /// `VFIO_DEVICE_GET_REGION_INFO`.
    fn region_info(&self, device: BorrowedFd<'_>, index: u32) -> Result<RegionInfo, VfioError>;
    /// `VFIO_DEVICE_GET_IRQ_INFO`.
    fn irq_info(&self, device: BorrowedFd<'_>, index: u32) -> Result<IrqInfo, VfioError>;
    /// `VFIO_DEVICE_SET_IRQS` with `DATA_EVENTFD | ACTION_TRIGGER` for vectors
    /// `start..start + fds.len()`; an empty `fds` disables the index (`DATA_NONE`, count 0).
    fn set_irq_eventfds(
        &self,
        device: BorrowedFd<'_>,
        index: u32,
        start: u32,
        fds: &[RawFd],
    ) -> Result<(), VfioError>;
    /// `VFIO_DEVICE_RESET`.
    fn reset(&self, device: BorrowedFd<'_>) -> Result<(), VfioError>;
    /// `pread` of exactly `buf.len()` bytes at `offset` of the device fd.
    fn read_at(&self, device: BorrowedFd<'_>, offset: u64, buf: &mut [u8])
        -> Result<(), VfioError>;
    /// `pwrite` of exactly `buf.len()` bytes at `offset` of the device fd.
    fn write_at(&self, device: BorrowedFd<'_>, offset: u64, buf: &[u8]) -> Result<(), VfioError>;
    /// `mmap` of `len` bytes at `offset` of the device fd (a BAR), as a register window.
    fn map_region(
        &self,
        device: BorrowedFd<'_>,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn Mmio>, VfioError>;
    /// `VFIO_IOMMU_MAP_DMA` (read and write) of `[vaddr, vaddr + size)` at `iova`.
    fn dma_map(
        &self,
        container: BorrowedFd<'_>,
        vaddr: usize,
        iova: u64,
        size: u64,
    ) -> Result<(), VfioError>;
    /// `VFIO_IOMMU_UNMAP_DMA`.
    fn dma_unmap(&self, container: BorrowedFd<'_>, iova: u64, size: u64) -> Result<(), VfioError>;
    /// A non-blocking, close-on-exec `eventfd`.
    fn eventfd(&self) -> Result<OwnedFd, VfioError> {
        eventfd()
    }
}

/// A non-blocking, close-on-exec `eventfd` with counter 0.
pub fn eventfd() -> Result<OwnedFd, VfioError> {
    // SAFETY: eventfd has no memory-safety preconditions.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(VfioError::last_os("eventfd"));
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds 1 to an eventfd's counter (what an interrupt does; used by the fake device).
pub fn eventfd_signal(fd: BorrowedFd<'_>) -> Result<(), VfioError> {
    let f = File::from(fd.try_clone_to_owned().map_err(|e| VfioError::io("dup", &e))?);
    (&f).write_all(&1u64.to_ne_bytes()).map_err(|e| VfioError::io("eventfd write", &e))
}

/// Reads and clears an eventfd's counter; 0 if it was not signalled (non-blocking fd).
pub fn eventfd_take(fd: BorrowedFd<'_>) -> Result<u64, VfioError> {
    let f = File::from(fd.try_clone_to_owned().map_err(|e| VfioError::io("dup", &e))?);
    let mut b = [0u8; 8];
    match (&f).read(&mut b) {
        Ok(8) => Ok(u64::from_ne_bytes(b)),
        Ok(_) => Err(VfioError::Os { op: "eventfd read", errno: libc::EIO }),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(VfioError::io("eventfd read", &e)),
    }
}

/// The real system calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealSys;

/// `ioctl(fd, req, arg)` returning the non-negative result or the errno as `VfioError::Os`.
///
/// # Safety
/// `arg` must be what `req` expects: an integer, or a pointer to a live structure of the size
/// and layout the kernel reads and writes for `req`.
unsafe fn ioctl(
    fd: BorrowedFd<'_>,
    req: u64,
    arg: libc::c_ulong,
    op: &'static str,
) -> Result<i32, VfioError> {
    // SAFETY: the caller guarantees that `arg` matches `req`; `fd` is a live descriptor.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as libc::c_ulong, arg) };
    if r < 0 {
        Err(VfioError::last_os(op))
    } else {
        Ok(r)
    }
}

fn ptr_arg<T>(v: &mut T) -> libc::c_ulong {
    v as *mut T as libc::c_ulong
}

impl Sys for RealSys {
    fn open_container(&self) -> Result<OwnedFd, VfioError> {
        match OpenOptions::new().read(true).write(true).open("/dev/vfio/vfio") {
            Ok(f) => Ok(f.into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(VfioError::NoVfio),
            Err(e) => Err(VfioError::io("open /dev/vfio/vfio", &e)),
        }
    }

    fn iommu_group(&self, bdf: &str) -> Result<u32, VfioError> {
        if bdf.contains('/') || bdf.is_empty() {
            return Err(VfioError::Invalid("PCI address"));
        }
        let link = std::fs::read_link(format!("/sys/bus/pci/devices/{bdf}/iommu_group"))
            .map_err(|_| VfioError::NoIommuGroup(bdf.to_string()))?;
        link.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| VfioError::NoIommuGroup(bdf.to_string()))
    }

    fn open_group(&self, group: u32) -> Result<OwnedFd, VfioError> {
        match OpenOptions::new().read(true).write(true).open(format!("/dev/vfio/{group}")) {
            Ok(f) => Ok(f.into()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(VfioError::NoGroupDevice(group))
            }
            Err(e) => Err(VfioError::io("open /dev/vfio/GROUP", &e)),
        }
    }

    fn api_version(&self, c: BorrowedFd<'_>) -> Result<i32, VfioError> {
        // SAFETY: VFIO_GET_API_VERSION takes no argument.
        unsafe { ioctl(c, VFIO_GET_API_VERSION, 0, "VFIO_GET_API_VERSION") }
    }

    fn check_extension(&self, c: BorrowedFd<'_>, ext: u32) -> Result<bool, VfioError> {
        // SAFETY: VFIO_CHECK_EXTENSION takes the extension number by value.
        let r = unsafe { ioctl(c, VFIO_CHECK_EXTENSION, ext.into(), "VFIO_CHECK_EXTENSION") }?;
        Ok(r > 0)
    }

    fn set_iommu(&self, c: BorrowedFd<'_>, kind: u32) -> Result<(), VfioError> {
        // SAFETY: VFIO_SET_IOMMU takes the IOMMU type by value.
        unsafe { ioctl(c, VFIO_SET_IOMMU, kind.into(), "VFIO_SET_IOMMU") }.map(drop)
    }

    fn group_status(&self, g: BorrowedFd<'_>) -> Result<u32, VfioError> {
        let mut s = GroupStatus { argsz: size_of::<GroupStatus>() as u32, flags: 0 };
        // SAFETY: `s` is a live vfio_group_status with argsz set.
        unsafe { ioctl(g, VFIO_GROUP_GET_STATUS, ptr_arg(&mut s), "VFIO_GROUP_GET_STATUS") }?;
        Ok(s.flags)
    }

    fn group_set_container(&self, g: BorrowedFd<'_>, c: BorrowedFd<'_>) -> Result<(), VfioError> {
        let mut fd: libc::c_int = c.as_raw_fd();
        // SAFETY: VFIO_GROUP_SET_CONTAINER reads one int (the container fd) through the pointer.
        unsafe { ioctl(g, VFIO_GROUP_SET_CONTAINER, ptr_arg(&mut fd), "VFIO_GROUP_SET_CONTAINER") }
            .map(drop)
    }

    fn group_get_device(&self, g: BorrowedFd<'_>, bdf: &str) -> Result<OwnedFd, VfioError> {
        let name = CString::new(bdf).map_err(|_| VfioError::Invalid("PCI address"))?;
        // SAFETY: VFIO_GROUP_GET_DEVICE_FD reads a NUL-terminated string, which `name` is.
        let fd = unsafe {
            ioctl(g, VFIO_GROUP_GET_DEVICE_FD, name.as_ptr() as libc::c_ulong, "GET_DEVICE_FD")
        }?;
        // SAFETY: the ioctl returned a fresh descriptor that we now own.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    fn device_info(&self, d: BorrowedFd<'_>) -> Result<DeviceInfo, VfioError> {
        let mut i = RawDeviceInfo {
            argsz: size_of::<RawDeviceInfo>() as u32,
            flags: 0,
            num_regions: 0,
            num_irqs: 0,
        };
        // SAFETY: `i` is a live vfio_device_info (without the 1.x cap_offset: argsz says so).
        unsafe { ioctl(d, VFIO_DEVICE_GET_INFO, ptr_arg(&mut i), "VFIO_DEVICE_GET_INFO") }?;
        Ok(DeviceInfo { flags: i.flags, num_regions: i.num_regions, num_irqs: i.num_irqs })
    }

    fn region_info(&self, d: BorrowedFd<'_>, index: u32) -> Result<RegionInfo, VfioError> {
        let mut r = RawRegionInfo {
            argsz: size_of::<RawRegionInfo>() as u32,
            flags: 0,
            index,
            cap_offset: 0,
            size: 0,
            offset: 0,
        };
        // SAFETY: `r` is a live vfio_region_info with argsz and index set.
        unsafe { ioctl(d, VFIO_DEVICE_GET_REGION_INFO, ptr_arg(&mut r), "GET_REGION_INFO") }?;
        Ok(RegionInfo { flags: r.flags, size: r.size, offset: r.offset })
    }

    fn irq_info(&self, d: BorrowedFd<'_>, index: u32) -> Result<IrqInfo, VfioError> {
        let mut r = RawIrqInfo { argsz: size_of::<RawIrqInfo>() as u32, flags: 0, index, count: 0 };
        // SAFETY: `r` is a live vfio_irq_info with argsz and index set.
        unsafe { ioctl(d, VFIO_DEVICE_GET_IRQ_INFO, ptr_arg(&mut r), "GET_IRQ_INFO") }?;
        Ok(IrqInfo { flags: r.flags, count: r.count })
    }

    fn set_irq_eventfds(
        &self,
        d: BorrowedFd<'_>,
        index: u32,
        start: u32,
        fds: &[RawFd],
    ) -> Result<(), VfioError> {
        // Build header + fds in a u32 buffer (alignment 4 suffices for both).
        let hdr_words = size_of::<IrqSetHdr>() / 4;
        let mut buf = vec![0u32; hdr_words + fds.len()];
        let flags = if fds.is_empty() {
            IRQ_SET_DATA_NONE | IRQ_SET_ACTION_TRIGGER
        } else {
            IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER
        };
        buf[0] = (buf.len() * 4) as u32; // argsz
        buf[1] = flags;
        buf[2] = index;
        buf[3] = start;
        buf[4] = fds.len() as u32;
        for (w, &fd) in buf[hdr_words..].iter_mut().zip(fds) {
            *w = fd as u32;
        }
        // SAFETY: `buf` holds a vfio_irq_set header followed by `count` s32 eventfds; argsz is
        // its full length; the kernel only reads it.
        unsafe { ioctl(d, VFIO_DEVICE_SET_IRQS, buf.as_mut_ptr() as libc::c_ulong, "SET_IRQS") }
            .map(drop)
    }

    fn reset(&self, d: BorrowedFd<'_>) -> Result<(), VfioError> {
        // SAFETY: VFIO_DEVICE_RESET takes no argument.
        unsafe { ioctl(d, VFIO_DEVICE_RESET, 0, "VFIO_DEVICE_RESET") }.map(drop)
    }

    fn read_at(&self, d: BorrowedFd<'_>, offset: u64, buf: &mut [u8]) -> Result<(), VfioError> {
        let f = File::from(d.try_clone_to_owned().map_err(|e| VfioError::io("dup", &e))?);
        f.read_exact_at(buf, offset).map_err(|e| VfioError::io("pread region", &e))
    }

    fn write_at(&self, d: BorrowedFd<'_>, offset: u64, buf: &[u8]) -> Result<(), VfioError> {
        let f = File::from(d.try_clone_to_owned().map_err(|e| VfioError::io("dup", &e))?);
        f.write_all_at(buf, offset).map_err(|e| VfioError::io("pwrite region", &e))
    }

    fn map_region(
        &self,
        d: BorrowedFd<'_>,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn Mmio>, VfioError> {
        let len = usize::try_from(len).map_err(|_| VfioError::Invalid("region length"))?;
        if len == 0 {
            return Err(VfioError::Invalid("empty region"));
        }
        // SAFETY: a shared mapping of the device fd at a kernel-chosen address aliases no Rust
        // object; the region is accessed only through `MmioRegion`'s checked volatile accessors.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                d.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(VfioError::last_os("mmap BAR"));
        }
        // SAFETY: `p` is a fresh mapping of `len` bytes that we hand over to the region.
        Ok(Box::new(unsafe { MmioRegion::from_raw(p.cast(), len) }))
    }

    fn dma_map(
        &self,
        c: BorrowedFd<'_>,
        vaddr: usize,
        iova: u64,
        size: u64,
    ) -> Result<(), VfioError> {
        let mut m = DmaMap {
            argsz: size_of::<DmaMap>() as u32,
            flags: DMA_MAP_FLAG_READ | DMA_MAP_FLAG_WRITE,
            vaddr: vaddr as u64,
            iova,
            size,
        };
        // SAFETY: `m` is a live vfio_iommu_type1_dma_map; the memory it names is kept mapped by
        // the caller (`crate::dma::DmaMapping` owns it) for as long as the IOMMU mapping lasts.
        unsafe { ioctl(c, VFIO_IOMMU_MAP_DMA, ptr_arg(&mut m), "VFIO_IOMMU_MAP_DMA") }.map(drop)
    }

    fn dma_unmap(&self, c: BorrowedFd<'_>, iova: u64, size: u64) -> Result<(), VfioError> {
        let mut m = DmaUnmap { argsz: size_of::<DmaUnmap>() as u32, flags: 0, iova, size };
        // SAFETY: `m` is a live vfio_iommu_type1_dma_unmap.
        unsafe { ioctl(c, VFIO_IOMMU_UNMAP_DMA, ptr_arg(&mut m), "VFIO_IOMMU_UNMAP_DMA") }.map(drop)
    }
}

/// `dup(fd)` of a raw descriptor number (the fake keeps the eventfds it is given).
#[cfg(any(test, feature = "fake"))]
pub(crate) fn dup_raw(fd: RawFd) -> Result<OwnedFd, VfioError> {
    // SAFETY: dup has no memory-safety preconditions; an invalid fd gives EBADF.
    let r = unsafe { libc::dup(fd) };
    if r < 0 {
        return Err(VfioError::last_os("dup"));
    }
    // SAFETY: `r` is a fresh descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}
