//! The raw core of a packet-buffer pool: one mapped region cut into equal slots, a free-list
//! stack of slot indices, and owning slot handles. This is the only module that turns a slot
//! index into a Rust slice; [`crate::buffer`] builds the public API on top of it in safe code.
//!
//! Invariant that makes the slices sound: every slot index is, at any moment, either on the
//! free-list stack or owned by exactly one live [`RawBuf`] — never both, never twice. `alloc`
//! pops an index into a new `RawBuf`; `RawBuf::drop` pushes it back. `RawBuf` is neither `Clone`
//! nor `Send`, and the core is reached through a non-`Sync` pointer, so all of this happens on one
//! thread and needs no atomics or locks.
//!
//! Lifetime: the core lives on the heap, owned jointly by the pool handles ([`CoreHandle`], a
//! handle count, not a per-packet count) and the outstanding buffers (`count - free`). It is freed
//! by whichever of them goes last, so dropping a `Pool` while buffers are in flight is safe.

use std::cell::Cell;
use std::ptr::NonNull;

use crate::mmap::MmapRegion;

pub(crate) struct PoolCore {
    region: MmapRegion,
    buf_size: usize,
    headroom: u32,
    count: u32,
    free: Box<[Cell<u32>]>,
    free_top: Cell<u32>,
    handles: Cell<u32>,
    iova_base: Cell<Option<u64>>,
}

impl PoolCore {
    fn maybe_free(core: NonNull<PoolCore>) {
        // SAFETY: `core` is live: the caller is a handle or buffer that has not yet released it.
        let c = unsafe { core.as_ref() };
        if c.handles.get() == 0 && c.free_top.get() == c.count {
            // SAFETY: no handle and no buffer remains, so nobody else can reach `core`; it was
            // created by `Box::into_raw` in `CoreHandle::new` and is freed exactly once here.
            drop(unsafe { Box::from_raw(core.as_ptr()) });
        }
    }
}

/// An owning handle on a pool core (the public `Pool` wraps it).
pub(crate) struct CoreHandle(NonNull<PoolCore>);

impl CoreHandle {
    /// Cuts `region` into `count` slots of `buf_size` bytes each.
    ///
    /// # Panics
    /// If the region is smaller than `count * buf_size` or `headroom >= buf_size`.
    pub(crate) fn new(region: MmapRegion, buf_size: usize, headroom: u32, count: u32) -> Self {
        assert!(buf_size.checked_mul(count as usize).is_some_and(|n| n <= region.len()));
        assert!((headroom as usize) < buf_size);
        // Stack bottom-up with index 0 on top, so the first buffers handed out are the lowest.
        let free: Box<[Cell<u32>]> = (0..count).rev().map(Cell::new).collect();
        let core = Box::new(PoolCore {
            region,
            buf_size,
            headroom,
            count,
            free,
            free_top: Cell::new(count),
            handles: Cell::new(1),
            iova_base: Cell::new(None),
        });
        CoreHandle(NonNull::from(Box::leak(core)))
    }

    fn core(&self) -> &PoolCore {
        // SAFETY: a live handle keeps the core allocated (`handles > 0`).
        unsafe { self.0.as_ref() }
    }

    /// Pops a free slot, or `None` when the pool is exhausted. O(1), no allocation.
    #[inline]
    pub(crate) fn alloc(&self) -> Option<RawBuf> {
        let c = self.core();
        let top = c.free_top.get();
        if top == 0 {
            return None;
        }
        let idx = c.free[top as usize - 1].get();
        c.free_top.set(top - 1);
        Some(RawBuf { core: self.0, idx })
    }

    pub(crate) fn available(&self) -> u32 {
        self.core().free_top.get()
    }

    pub(crate) fn count(&self) -> u32 {
        self.core().count
    }

    pub(crate) fn buf_size(&self) -> usize {
        self.core().buf_size
    }

    pub(crate) fn headroom(&self) -> u32 {
        self.core().headroom
    }

    pub(crate) fn region(&self) -> &MmapRegion {
        &self.core().region
    }

    pub(crate) fn set_iova_base(&self, base: Option<u64>) {
        self.core().iova_base.set(base);
    }

    /// Whether `buf` came from this pool.
    pub(crate) fn owns(&self, buf: &RawBuf) -> bool {
        self.0 == buf.core
    }
}

impl Clone for CoreHandle {
    fn clone(&self) -> Self {
        let c = self.core();
        c.handles.set(c.handles.get() + 1);
        CoreHandle(self.0)
    }
}

impl Drop for CoreHandle {
    fn drop(&mut self) {
        let c = self.core();
        c.handles.set(c.handles.get() - 1);
        PoolCore::maybe_free(self.0);
    }
}

/// Exclusive ownership of one slot; returns it to the free list on drop.
pub(crate) struct RawBuf {
    core: NonNull<PoolCore>,
    idx: u32,
}

impl RawBuf {
    fn core(&self) -> &PoolCore {
        // SAFETY: an outstanding buffer keeps the core allocated (`free_top < count`).
        unsafe { self.core.as_ref() }
    }

    /// Slot index within its pool.
    #[inline]
    pub(crate) fn index(&self) -> u32 {
        self.idx
    }

    /// Slot size in bytes.
    #[inline]
    pub(crate) fn size(&self) -> usize {
        self.core().buf_size
    }

    /// Default headroom of the owning pool.
    #[inline]
    pub(crate) fn default_headroom(&self) -> u32 {
        self.core().headroom
    }

    /// Device address of the slot's first byte, once the VFIO layer has mapped the pool.
    #[inline]
    pub(crate) fn iova(&self) -> Option<u64> {
        let c = self.core();
        c.iova_base.get().map(|b| b + self.idx as u64 * c.buf_size as u64)
    }

    /// The whole slot.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        let c = self.core();
        // SAFETY: this `RawBuf` exclusively owns slot `idx` (module invariant), so nobody writes
        // the range while `&self` is borrowed; the range is in bounds (checked by `slice`).
        unsafe { c.region.slice(self.idx as usize * c.buf_size, c.buf_size) }
    }

    /// The whole slot, mutably.
    #[inline]
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        let c = self.core();
        // SAFETY: as for `bytes`; `&mut self` makes this the only live slice of the slot.
        unsafe { c.region.slice_mut(self.idx as usize * c.buf_size, c.buf_size) }
    }
}

impl Drop for RawBuf {
    #[inline]
    fn drop(&mut self) {
        let c = self.core();
        let top = c.free_top.get();
        // The stack has room: at most `count` indices exist and this one is not on it.
        c.free[top as usize].set(self.idx);
        c.free_top.set(top + 1);
        PoolCore::maybe_free(self.core);
    }
}
