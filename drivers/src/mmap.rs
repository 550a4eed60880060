//! Memory mappings: the one type through which the crate reads and writes memory it shares with
//! the kernel (packet rings), with another process (the shared-memory wire) or with a device
//! (packet-buffer pools the VFIO drivers will DMA-map).
//!
//! Shared memory is never a Rust reference (DESIGN.md rule 6): every access goes through a
//! method here that bounds-checks `offset + len` against the mapping (and alignment for atomics)
//! and then does one raw read, write, copy or atomic operation. A bad offset is a panic (a bug in
//! this crate), never an out-of-bounds access. Plain byte copies may observe bytes torn by a
//! misbehaving peer; callers only ever interpret such bytes after validating them.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// Size of a 2 MiB huge page.
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// An RAII memory mapping: `munmap` on drop (and `munlock` implicitly with it).
#[derive(Debug)]
pub(crate) struct MmapRegion {
    ptr: NonNull<u8>,
    len: usize,
    huge: bool,
    locked: bool,
}

// SAFETY: the mapping is plain process memory not tied to the creating thread; moving the owner
// to another thread is fine. `MmapRegion` is deliberately not `Sync`: its `&self` write methods
// are only sound for one thread at a time (cross-process sharing is handled with atomics).
unsafe impl Send for MmapRegion {}

fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p <= 0 {
        4096
    } else {
        p as usize
    }
}

impl MmapRegion {
    /// Anonymous private memory of at least `len` bytes, zero-filled. With `try_huge`, first tries
    /// 2 MiB huge pages (`MAP_HUGETLB`, length rounded up to 2 MiB), falling back to ordinary
    /// pages when none are reserved. With `lock`, `mlock`s the region best-effort (the result is
    /// reported by [`MmapRegion::is_locked`]).
    pub(crate) fn anonymous(len: usize, try_huge: bool, lock: bool) -> io::Result<Self> {
        let len = len.max(1);
        let mut region = None;
        if try_huge {
            let huge_len = len.div_ceil(HUGE_PAGE) * HUGE_PAGE;
            region = Self::map_anon(huge_len, libc::MAP_HUGETLB | libc::MAP_HUGE_2MB).ok();
        }
        let mut region = match region {
            Some(r) => r,
            None => {
                let page = page_size();
                Self::map_anon(len.div_ceil(page) * page, 0)?
            }
        };
        if lock {
            // SAFETY: ptr/len describe exactly our own live mapping.
            region.locked = unsafe { libc::mlock(region.ptr.as_ptr().cast(), region.len) } == 0;
        }
        Ok(region)
    }

    fn map_anon(len: usize, extra: libc::c_int) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses aliases nothing.
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
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(MmapRegion { ptr, len, huge: extra & libc::MAP_HUGETLB != 0, locked: false })
    }

    /// A shared read-write mapping of `len` bytes of `fd` from offset 0 (a packet socket's rings,
    /// or a file in `/dev/shm`). The caller checks that the object is at least `len` long.
    pub(crate) fn shared(fd: BorrowedFd<'_>, len: usize, populate: bool) -> io::Result<Self> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: mapping a caller-supplied fd at a kernel-chosen address aliases no Rust object;
        // the fd is borrowed for the duration of the call only (the mapping outlives it legally).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(MmapRegion { ptr, len, huge: false, locked: false })
    }

    /// Length of the mapping in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Start address (for DMA mapping by the VFIO layer; never dereferenced outside this module).
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Whether the region is backed by 2 MiB huge pages.
    pub(crate) fn is_huge(&self) -> bool {
        self.huge
    }

    /// Whether `mlock` succeeded.
    pub(crate) fn is_locked(&self) -> bool {
        self.locked
    }

    #[inline]
    #[track_caller]
    fn check(&self, off: usize, len: usize) {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "mmap access {off}+{len} outside region of {} bytes",
            self.len
        );
    }

    /// Address of byte `off` (computed without dereferencing; callers check bounds first).
    #[inline]
    fn at(&self, off: usize) -> *mut u8 {
        self.ptr.as_ptr().wrapping_add(off)
    }

    /// The atomic `u32` at `off` (4-aligned, in bounds).
    #[inline]
    pub(crate) fn atomic_u32(&self, off: usize) -> &AtomicU32 {
        self.check(off, 4);
        assert!(off.is_multiple_of(4), "misaligned atomic u32 at {off}");
        // SAFETY: in bounds and aligned (checked; the base is page-aligned); the memory lives as
        // long as `&self`; AtomicU32 has u32's layout and every bit pattern is valid; all
        // concurrent accessors of this word (kernel, peer process) use atomic accesses.
        unsafe { &*self.at(off).cast::<AtomicU32>() }
    }

    /// The atomic `u64` at `off` (8-aligned, in bounds).
    #[inline]
    pub(crate) fn atomic_u64(&self, off: usize) -> &AtomicU64 {
        self.check(off, 8);
        assert!(off.is_multiple_of(8), "misaligned atomic u64 at {off}");
        // SAFETY: as for `atomic_u32`, with 8-byte alignment checked.
        unsafe { &*self.at(off).cast::<AtomicU64>() }
    }

    /// Copies `dst.len()` bytes from the mapping at `off` into `dst`.
    #[inline]
    pub(crate) fn read_bytes(&self, off: usize, dst: &mut [u8]) {
        self.check(off, dst.len());
        // SAFETY: the source range is in bounds (checked); `dst` is a distinct Rust buffer (it
        // cannot point into this mapping, which is never lent out as a reference).
        unsafe { std::ptr::copy_nonoverlapping(self.at(off), dst.as_mut_ptr(), dst.len()) }
    }

    /// Copies `src` into the mapping at `off`.
    #[inline]
    pub(crate) fn write_bytes(&self, off: usize, src: &[u8]) {
        self.check(off, src.len());
        // SAFETY: the destination range is in bounds (checked); `src` is a distinct Rust buffer.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.at(off), src.len()) }
    }

    /// Reads a native-endian `u16` at `off` (any alignment).
    #[inline]
    pub(crate) fn read_u16(&self, off: usize) -> u16 {
        let mut b = [0u8; 2];
        self.read_bytes(off, &mut b);
        u16::from_ne_bytes(b)
    }

    /// Reads a native-endian `u32` at `off` (any alignment).
    #[inline]
    pub(crate) fn read_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read_bytes(off, &mut b);
        u32::from_ne_bytes(b)
    }

    /// Reads a native-endian `u64` at `off` (any alignment).
    #[inline]
    pub(crate) fn read_u64(&self, off: usize) -> u64 {
        let mut b = [0u8; 8];
        self.read_bytes(off, &mut b);
        u64::from_ne_bytes(b)
    }

    /// Writes a native-endian `u16` at `off`.
    #[inline]
    pub(crate) fn write_u16(&self, off: usize, v: u16) {
        self.write_bytes(off, &v.to_ne_bytes());
    }

    /// Writes a native-endian `u32` at `off`.
    #[inline]
    pub(crate) fn write_u32(&self, off: usize, v: u32) {
        self.write_bytes(off, &v.to_ne_bytes());
    }

    /// Writes a native-endian `u64` at `off`.
    #[inline]
    pub(crate) fn write_u64(&self, off: usize, v: u64) {
        self.write_bytes(off, &v.to_ne_bytes());
    }

    /// The bytes `off..off+len` as a shared slice.
    ///
    /// # Safety
    /// For the lifetime of the returned slice nobody (this process, the kernel, a device, a peer
    /// process) may write that range.
    #[inline]
    pub(crate) unsafe fn slice(&self, off: usize, len: usize) -> &[u8] {
        self.check(off, len);
        // SAFETY: in bounds (checked); the caller guarantees no concurrent writer.
        unsafe { std::slice::from_raw_parts(self.at(off), len) }
    }

    /// The bytes `off..off+len` as an exclusive slice.
    ///
    /// # Safety
    /// For the lifetime of the returned slice nobody else may read or write that range.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, off: usize, len: usize) -> &mut [u8] {
        self.check(off, len);
        // SAFETY: in bounds (checked); the caller guarantees exclusive access to the range.
        unsafe { std::slice::from_raw_parts_mut(self.at(off), len) }
    }
}

impl Drop for MmapRegion {
    fn drop(&mut self) {
        // SAFETY: we own this mapping; no reference into it outlives `self` (slices borrow it).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn anonymous_region_is_zeroed_and_bounds_checked() {
        let r = MmapRegion::anonymous(10_000, true, true).unwrap();
        assert!(r.len() >= 10_000);
        assert_eq!(r.read_u64(9_992), 0);
        r.write_u32(100, 0xdead_beef);
        assert_eq!(r.read_u32(100), 0xdead_beef);
        r.atomic_u64(8).store(7, Ordering::Release);
        assert_eq!(r.read_u64(8), 7);
        let len = r.len();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.read_u32(len - 2)));
        assert!(res.is_err(), "out-of-bounds read must panic");
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.atomic_u32(6)));
        assert!(res.is_err(), "misaligned atomic must panic");
    }
}
