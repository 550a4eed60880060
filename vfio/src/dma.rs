//! DMA memory (DESIGN.md rules 6 and 7). Memory a device may read or write is never a Rust
//! reference: [`DmaMemory`] hands out only bounds-checked volatile reads and writes (and byte
//! copies), so a device writing behind the compiler's back cannot break an aliasing assumption.
//! Every IOMMU mapping is an RAII [`DmaMapping`]: dropping it unmaps the IOVA range and returns it
//! to the allocator *before* the memory it covers can be freed.

use std::any::Any;
use std::fmt;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
#[cfg(any(test, feature = "fake"))]
use std::sync::{Mutex, MutexGuard};

use crate::device::ContainerInner;
use crate::error::VfioError;

/// Size of a 2 MiB huge page.
pub const HUGE_PAGE: usize = 2 << 20;
/// Size of an ordinary page.
pub const PAGE: usize = 4096;

/// Memory that can be handed to a device: a stable address range that stays mapped as long as
/// the value lives.
///
/// # Safety
/// Implementors guarantee that [`DmaTarget::dma_region`] returns the same page-aligned range for
/// the whole life of the value, that the range stays mapped (readable and writable) until the
/// value is dropped, and that it is acceptable for a device to write any byte of it at any time
/// (no Rust reference into the range may rely on the bytes not changing while the device owns
/// them; a driver owns buffers while they are posted).
pub unsafe trait DmaTarget: 'static {
    /// Start address and length in bytes.
    fn dma_region(&self) -> (*const u8, usize);
}

/// Anonymous memory for descriptor rings and other device-shared structures: 2 MiB huge pages
/// when reserved, else 4 KiB pages, `mlock`ed (pinned). Zero-filled; `munmap` on drop.
pub struct DmaMemory {
    ptr: NonNull<u8>,
    len: usize,
    huge: bool,
}

impl fmt::Debug for DmaMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaMemory").field("len", &self.len).field("huge", &self.huge).finish()
    }
}

// SAFETY: plain process memory, not tied to a thread; accessed only by volatile copies.
unsafe impl Send for DmaMemory {}

impl DmaMemory {
    /// At least `len` bytes (rounded up to the page size used).
    pub fn new(len: usize, try_huge: bool) -> Result<DmaMemory, VfioError> {
        let len = len.max(1);
        if try_huge {
            let hl = len.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            if let Ok(m) = Self::map(hl, libc::MAP_HUGETLB | libc::MAP_HUGE_2MB) {
                return Ok(DmaMemory { huge: true, ..m });
            }
        }
        Self::map(len.div_ceil(PAGE) * PAGE, 0)
    }

    fn map(len: usize, extra: libc::c_int) -> Result<DmaMemory, VfioError> {
        // SAFETY: a fresh anonymous mapping at a kernel-chosen address aliases nothing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE | extra,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(VfioError::last_os("mmap DMA memory"));
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(VfioError::Invalid("mmap gave null"))?;
        let m = DmaMemory { ptr, len, huge: false };
        // Pinning is best effort: VFIO_IOMMU_MAP_DMA pins the pages itself (and accounts them
        // against RLIMIT_MEMLOCK); mlock only keeps them resident before the mapping exists.
        // SAFETY: ptr/len are exactly our own live mapping.
        let _ = unsafe { libc::mlock(m.ptr.as_ptr().cast(), m.len) };
        Ok(m)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether empty (never: at least one page).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether backed by huge pages.
    pub fn is_huge(&self) -> bool {
        self.huge
    }

    #[inline]
    #[track_caller]
    fn at(&self, off: usize, n: usize, align: usize) -> *mut u8 {
        assert!(
            off.checked_add(n).is_some_and(|e| e <= self.len) && off.is_multiple_of(align),
            "DMA access {off}+{n} outside {} bytes or misaligned",
            self.len
        );
        self.ptr.as_ptr().wrapping_add(off)
    }

    /// Volatile 16-bit read at `off` (2-aligned). Panics when out of bounds (a driver bug).
    #[inline]
    pub fn read_u16(&self, off: usize) -> u16 {
        let p = self.at(off, 2, 2);
        // SAFETY: in bounds and aligned (checked); volatile because the device writes it.
        unsafe { p.cast::<u16>().read_volatile() }
    }

    /// Volatile 32-bit read at `off` (4-aligned).
    #[inline]
    pub fn read_u32(&self, off: usize) -> u32 {
        let p = self.at(off, 4, 4);
        // SAFETY: in bounds and aligned (checked).
        unsafe { p.cast::<u32>().read_volatile() }
    }

    /// Volatile 64-bit read at `off` (8-aligned).
    #[inline]
    pub fn read_u64(&self, off: usize) -> u64 {
        let p = self.at(off, 8, 8);
        // SAFETY: in bounds and aligned (checked).
        unsafe { p.cast::<u64>().read_volatile() }
    }

    /// Volatile 16-bit write at `off` (2-aligned).
    #[inline]
    pub fn write_u16(&self, off: usize, v: u16) {
        let p = self.at(off, 2, 2);
        // SAFETY: in bounds and aligned (checked).
        unsafe { p.cast::<u16>().write_volatile(v) }
    }

    /// Volatile 32-bit write at `off` (4-aligned).
    #[inline]
    pub fn write_u32(&self, off: usize, v: u32) {
        let p = self.at(off, 4, 4);
        // SAFETY: in bounds and aligned (checked).
        unsafe { p.cast::<u32>().write_volatile(v) }
    }

    /// Volatile 64-bit write at `off` (8-aligned).
    #[inline]
    pub fn write_u64(&self, off: usize, v: u64) {
        let p = self.at(off, 8, 8);
        // SAFETY: in bounds and aligned (checked).
        unsafe { p.cast::<u64>().write_volatile(v) }
    }

    /// Zeroes the whole region.
    pub fn zero(&self) {
        let p = self.at(0, self.len, 1);
        // SAFETY: the whole mapping, in bounds; no reference into it exists.
        unsafe { std::ptr::write_bytes(p, 0, self.len) }
    }
}

// SAFETY: the mapping lives (unchanged, read-write, page-aligned) until `DmaMemory` is dropped,
// and the crate never makes a reference into it.
unsafe impl DmaTarget for DmaMemory {
    fn dma_region(&self) -> (*const u8, usize) {
        (self.ptr.as_ptr(), self.len)
    }
}

impl Drop for DmaMemory {
    fn drop(&mut self) {
        // SAFETY: we own the mapping and nothing references it.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// An IOMMU mapping of some [`DmaTarget`] at an IOVA of our choosing. Dropping it unmaps the
/// range (`VFIO_IOMMU_UNMAP_DMA`), returns the IOVAs to the allocator and only then drops the
/// owner of the memory.
pub struct DmaMapping {
    container: Arc<ContainerInner>,
    iova: u64,
    len: u64,
    // Declared last: dropped after `Drop::drop` unmapped the range.
    _owner: Box<dyn Any>,
}

impl fmt::Debug for DmaMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaMapping").field("iova", &self.iova).field("len", &self.len).finish()
    }
}

impl DmaMapping {
    pub(crate) fn map<T: DmaTarget>(
        container: Arc<ContainerInner>,
        owner: T,
    ) -> Result<DmaMapping, VfioError> {
        let (ptr, len) = owner.dma_region();
        if len == 0 || !(ptr as usize).is_multiple_of(PAGE) {
            return Err(VfioError::Invalid("DMA target must be non-empty and page-aligned"));
        }
        let len = (len.div_ceil(PAGE) * PAGE) as u64;
        let align = if len >= HUGE_PAGE as u64 { HUGE_PAGE as u64 } else { PAGE as u64 };
        let iova = container.alloc_iova(len, align)?;
        if let Err(e) = container.sys.dma_map(container.fd(), ptr as usize, iova, len) {
            container.free_iova(iova, len);
            return Err(e);
        }
        Ok(DmaMapping { container, iova, len, _owner: Box::new(owner) })
    }

    /// The device address of the first byte.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// Mapped length in bytes (page-rounded).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether empty (never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for DmaMapping {
    fn drop(&mut self) {
        // An unmap failure leaves the range mapped: keep its IOVAs out of the allocator (and
        // leak the owner, whose memory the device may still reach).
        if self.container.sys.dma_unmap(self.container.fd(), self.iova, self.len).is_ok() {
            self.container.free_iova(self.iova, self.len);
        } else {
            std::mem::forget(std::mem::replace(&mut self._owner, Box::new(())));
        }
    }
}

/// Device-shared memory with its mapping: what a driver allocates for descriptor rings.
#[derive(Debug)]
pub struct DmaBuffer {
    // Field order: the mapping (which holds the memory as its owner) goes first.
    mapping: DmaMapping,
    mem: Rc<DmaMemory>,
}

/// The `Rc` lets the mapping own the memory while the buffer keeps an accessor.
// SAFETY: `Rc<DmaMemory>` keeps the same mapping alive; see `DmaMemory`'s impl.
unsafe impl DmaTarget for Rc<DmaMemory> {
    fn dma_region(&self) -> (*const u8, usize) {
        (**self).dma_region()
    }
}

impl DmaBuffer {
    pub(crate) fn new(container: Arc<ContainerInner>, mem: DmaMemory) -> Result<Self, VfioError> {
        let mem = Rc::new(mem);
        let mapping = DmaMapping::map(container, mem.clone())?;
        Ok(DmaBuffer { mapping, mem })
    }

    /// The memory (checked volatile accessors).
    pub fn mem(&self) -> &DmaMemory {
        &self.mem
    }

    /// Device address of byte 0.
    pub fn iova(&self) -> u64 {
        self.mapping.iova()
    }
}

// ---- The fake IOMMU (tests): DMA by IOVA through recorded mappings. ----

/// A DMA access the IOMMU refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("IOMMU fault at IOVA {iova:#x} (+{len})")]
#[cfg(any(test, feature = "fake"))]
pub struct IommuFault {
    /// Start of the access.
    pub iova: u64,
    /// Length of the access.
    pub len: usize,
}

/// The fake IOMMU: live mappings, and DMA through them.
#[derive(Debug, Default)]
#[cfg(any(test, feature = "fake"))]
pub struct FakeIommu {
    maps: Mutex<Vec<(u64, usize, u64)>>, // (iova, vaddr, len)
}

#[cfg(any(test, feature = "fake"))]
impl FakeIommu {
    pub(crate) fn table(&self) -> MutexGuard<'_, Vec<(u64, usize, u64)>> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn translate(maps: &[(u64, usize, u64)], iova: u64, len: usize) -> Result<usize, IommuFault> {
        let fault = IommuFault { iova, len };
        let end = iova.checked_add(len as u64).ok_or(fault)?;
        maps.iter()
            .find(|&&(base, _, l)| iova >= base && end <= base + l)
            .map(|&(base, va, _)| va + (iova - base) as usize)
            .ok_or(fault)
    }

    /// The device reads `buf.len()` bytes at `iova`.
    pub fn read(&self, iova: u64, buf: &mut [u8]) -> Result<(), IommuFault> {
        let maps = self.table();
        let va = Self::translate(&maps, iova, buf.len())?;
        // SAFETY: the range lies inside a live mapping (the lock keeps it from being unmapped
        // meanwhile), whose owner keeps the memory mapped (`DmaTarget` contract); the driver
        // holds no reference into device-owned memory.
        unsafe { copy_from_va(va, buf) };
        Ok(())
    }

    /// The device writes `buf` at `iova`.
    pub fn write(&self, iova: u64, buf: &[u8]) -> Result<(), IommuFault> {
        let maps = self.table();
        let va = Self::translate(&maps, iova, buf.len())?;
        // SAFETY: as for `read`.
        unsafe { copy_to_va(va, buf) };
        Ok(())
    }

    /// Reads a little-endian u16 at `iova`.
    pub fn read_u16(&self, iova: u64) -> Result<u16, IommuFault> {
        let mut b = [0; 2];
        self.read(iova, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian u32 at `iova`.
    pub fn read_u32(&self, iova: u64) -> Result<u32, IommuFault> {
        let mut b = [0; 4];
        self.read(iova, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian u64 at `iova`.
    pub fn read_u64(&self, iova: u64) -> Result<u64, IommuFault> {
        let mut b = [0; 8];
        self.read(iova, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Number of live mappings.
    pub fn mappings(&self) -> usize {
        self.table().len()
    }

    /// `(iova, len)` of every live mapping.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.table().iter().map(|&(i, _, l)| (i, l)).collect()
    }
}

/// Copies `buf.len()` bytes from process address `va` (a fake device's DMA read).
///
/// # Safety
/// `[va, va + buf.len())` must be mapped readable memory (covered by a live [`DmaMapping`])
/// that no Rust reference exclusively borrows.
#[cfg(any(test, feature = "fake"))]
unsafe fn copy_from_va(va: usize, buf: &mut [u8]) {
    // SAFETY: the caller guarantees the source range; `buf` is a distinct Rust buffer.
    unsafe { std::ptr::copy_nonoverlapping(va as *const u8, buf.as_mut_ptr(), buf.len()) }
}

/// Copies `buf` to process address `va` (a fake device's DMA write).
///
/// # Safety
/// `[va, va + buf.len())` must be mapped writable memory (covered by a live [`DmaMapping`]) that
/// no Rust reference borrows.
#[cfg(any(test, feature = "fake"))]
unsafe fn copy_to_va(va: usize, buf: &[u8]) {
    // SAFETY: the caller guarantees the destination range; `buf` is a distinct Rust buffer.
    unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), va as *mut u8, buf.len()) }
}
