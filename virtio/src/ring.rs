//! Split virtqueues (virtio 1.2 §2.7) in device-shared memory, with a private shadow of every
//! posted descriptor (DESIGN.md rule 6).
//!
//! The rings live in a [`DmaBuffer`]; they are never Rust references — every access is a
//! bounds-checked volatile read or write through [`joyride_vfio::DmaMemory`]. What the driver
//! believes it posted is kept here, in process memory the device cannot reach: the buffer, the
//! address and the length of each descriptor. What the device writes back (used ids, lengths,
//! the used index) is checked against that shadow before anything is trusted, so a buggy or
//! hostile device can make us drop frames but never read or free the wrong buffer.
//!
//! The module also holds [`PoolDma`], the one `unsafe impl` of this crate.

use std::mem::{offset_of, size_of};
use std::sync::atomic::{fence, Ordering};

use joyride_drivers::{PacketBuf, Pool};
use joyride_vfio::{DmaBuffer, DmaTarget};

/// virtio 1.2 §2.7.5: `struct virtq_desc`.
#[repr(C)]
#[allow(dead_code)] // the layout is the contract; fields are written by offset
struct Desc {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}
const _: () = assert!(size_of::<Desc>() == 16);
const DESC_ADDR: usize = offset_of!(Desc, addr);
const DESC_LEN: usize = offset_of!(Desc, len);
const DESC_FLAGS: usize = offset_of!(Desc, flags);
const DESC_NEXT: usize = offset_of!(Desc, next);

/// virtio 1.2 §2.7.8: `struct virtq_used_elem`.
#[repr(C)]
#[allow(dead_code)]
struct UsedElem {
    id: u32,
    len: u32,
}
const _: () = assert!(size_of::<UsedElem>() == 8);

/// `VIRTQ_DESC_F_WRITE`: the device writes this buffer (receive).
const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_AVAIL_F_NO_INTERRUPT`.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// `VIRTQ_USED_F_NO_NOTIFY`.
const USED_F_NO_NOTIFY: u16 = 1;

// Ring headers: `flags` (le16) then `idx` (le16), then the ring.
const RING_FLAGS: usize = 0;
const RING_IDX: usize = 2;
const RING_ENTRIES: usize = 4;

/// Barrier: orders the stores of descriptors and avail-ring entries before the store of
/// `avail.idx` that publishes them to the device (virtio 1.2 §2.7.13.3). On x86 this is a
/// compiler barrier (stores are not reordered with stores).
#[inline]
fn wmb_publish_avail() {
    fence(Ordering::Release);
}

/// Barrier: orders the load of `used.idx` before the loads of the used elements and of the
/// buffers they describe (virtio 1.2 §2.7.14).
#[inline]
fn rmb_after_used_idx() {
    fence(Ordering::Acquire);
}

/// Barrier: orders the store of `avail.idx` (or of `avail.flags`) before the following load of
/// `used.flags` (or `used.idx`): without it the device could re-enable notifications (or add a
/// used entry) in between and we would miss it (virtio 1.2 §2.7.13.4).
#[inline]
fn mb_store_then_load() {
    fence(Ordering::SeqCst);
}

/// A packet-buffer pool as a DMA target.
pub(crate) struct PoolDma(pub(crate) Pool);

// SAFETY: a pool's region is one anonymous mapping made at pool creation, page-aligned, never
// remapped, and unmapped only when the last pool handle *and* the last buffer are gone
// (joyride-drivers `pool_raw`); `PoolDma` holds a handle, so the range stays mapped as long as it
// lives. The pool hands out buffers exclusively: a buffer the device may write is one the driver
// holds in its shadow, so no Rust reference to it exists meanwhile.
unsafe impl DmaTarget for PoolDma {
    fn dma_region(&self) -> (*const u8, usize) {
        self.0.region()
    }
}

/// One posted descriptor, as the driver remembers it.
struct Posted {
    buf: PacketBuf,
    len: u32,
}

/// What the device gave back.
pub(crate) enum Used {
    /// A buffer with the length the device reported (checked against what was posted).
    Done(PacketBuf, u32),
    /// The length exceeds the posted length; the buffer is returned for recycling.
    BadLen(PacketBuf),
    /// The id is out of range or names a descriptor not outstanding.
    BadId,
}

/// A split virtqueue of `size` entries.
pub(crate) struct SplitQueue {
    mem: DmaBuffer,
    size: u16,
    avail_off: usize,
    used_off: usize,
    /// Next free-running avail index (what `avail.idx` will be published as).
    avail_idx: u16,
    /// Next used index to consume.
    last_used: u16,
    free: Vec<u16>,
    shadow: Vec<Option<Posted>>,
    /// Descriptors posted since the last `publish`.
    pending: u16,
}

impl SplitQueue {
    /// Lays a queue out in `mem` (zeroed): descriptors at 0, avail after them, used 64-aligned
    /// after the avail ring. `mem` must hold [`SplitQueue::bytes`]`(size)`.
    pub(crate) fn new(mem: DmaBuffer, size: u16) -> SplitQueue {
        assert!(size.is_power_of_two() && mem.mem().len() >= Self::bytes(size));
        let n = usize::from(size);
        let avail_off = 16 * n;
        let used_off = (avail_off + 6 + 2 * n).next_multiple_of(64);
        mem.mem().zero();
        SplitQueue {
            mem,
            size,
            avail_off,
            used_off,
            avail_idx: 0,
            last_used: 0,
            free: (0..size).rev().collect(),
            shadow: (0..size).map(|_| None).collect(),
            pending: 0,
        }
    }

    /// Bytes of DMA memory a queue of `size` entries needs.
    pub(crate) fn bytes(size: u16) -> usize {
        let n = usize::from(size);
        (16 * n + 6 + 2 * n).next_multiple_of(64) + 6 + 8 * n
    }

    /// Device addresses of the descriptor table, avail ring and used ring.
    pub(crate) fn addrs(&self) -> (u64, u64, u64) {
        let b = self.mem.iova();
        (b, b + self.avail_off as u64, b + self.used_off as u64)
    }

    /// Free descriptors.
    pub(crate) fn free(&self) -> usize {
        self.free.len()
    }

    /// Posts `buf` as one descriptor of `len` bytes at `addr` (device-writable if `write`), not
    /// yet visible to the device; gives it back when the ring is full.
    pub(crate) fn post(
        &mut self,
        buf: PacketBuf,
        addr: u64,
        len: u32,
        write: bool,
    ) -> Result<(), PacketBuf> {
        let Some(id) = self.free.pop() else { return Err(buf) };
        let m = self.mem.mem();
        let d = usize::from(id) * 16;
        m.write_u64(d + DESC_ADDR, addr.to_le());
        m.write_u32(d + DESC_LEN, len.to_le());
        m.write_u16(d + DESC_FLAGS, if write { DESC_F_WRITE } else { 0 }.to_le());
        m.write_u16(d + DESC_NEXT, 0);
        let slot = usize::from(self.avail_idx & (self.size - 1));
        m.write_u16(self.avail_off + RING_ENTRIES + 2 * slot, id.to_le());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.pending += 1;
        self.shadow[usize::from(id)] = Some(Posted { buf, len });
        Ok(())
    }

    /// Makes everything posted visible (`avail.idx`); returns whether the device wants a
    /// notification (`used.flags` without `NO_NOTIFY`) — `false` when nothing was pending.
    pub(crate) fn publish(&mut self) -> bool {
        if self.pending == 0 {
            return false;
        }
        self.pending = 0;
        wmb_publish_avail();
        self.mem.mem().write_u16(self.avail_off + RING_IDX, self.avail_idx.to_le());
        mb_store_then_load();
        u16::from_le(self.mem.mem().read_u16(self.used_off + RING_FLAGS)) & USED_F_NO_NOTIFY == 0
    }

    /// Used entries the device reports as ready, or an error when it claims more than the ring
    /// holds (a device that does so is broken; nothing it wrote can be trusted).
    pub(crate) fn used_ready(&self) -> Result<u16, &'static str> {
        let idx = u16::from_le(self.mem.mem().read_u16(self.used_off + RING_IDX));
        let n = idx.wrapping_sub(self.last_used);
        if n > self.size {
            return Err("used index ran ahead of the ring");
        }
        Ok(n)
    }

    /// Takes the next used entry; call only when [`SplitQueue::used_ready`] said one is there.
    pub(crate) fn take_used(&mut self) -> Used {
        rmb_after_used_idx();
        let slot = usize::from(self.last_used & (self.size - 1));
        self.last_used = self.last_used.wrapping_add(1);
        let e = self.used_off + RING_ENTRIES + 8 * slot;
        let id = u32::from_le(self.mem.mem().read_u32(e));
        let len = u32::from_le(self.mem.mem().read_u32(e + 4));
        let Some(posted) =
            usize::try_from(id).ok().and_then(|i| self.shadow.get_mut(i)).and_then(|s| s.take())
        else {
            return Used::BadId;
        };
        self.free.push(id as u16);
        if len > posted.len {
            return Used::BadLen(posted.buf);
        }
        Used::Done(posted.buf, len)
    }

    /// Asks the device not to interrupt (`true`) or to interrupt again (`false`) when it uses
    /// buffers; after re-enabling, a full barrier orders the flag store before the caller's
    /// next look at `used.idx`.
    pub(crate) fn suppress_interrupts(&mut self, suppress: bool) {
        let v = if suppress { AVAIL_F_NO_INTERRUPT } else { 0 };
        self.mem.mem().write_u16(self.avail_off + RING_FLAGS, v.to_le());
        if !suppress {
            mb_store_then_load();
        }
    }

    /// Drops every outstanding buffer (after the device was reset).
    pub(crate) fn clear(&mut self) {
        for (id, s) in self.shadow.iter_mut().enumerate() {
            if s.take().is_some() {
                self.free.push(id as u16);
            }
        }
    }

    /// Buffers currently posted.
    pub(crate) fn outstanding(&self) -> usize {
        usize::from(self.size) - self.free.len()
    }
}
