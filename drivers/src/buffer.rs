//! Packet buffers and their pools (safe API over `pool_raw`).

use std::fmt;

use crate::csum;
use crate::mmap::MmapRegion;
use crate::pool_raw::{CoreHandle, RawBuf};

/// An address as a DMA-capable device sees it (an I/O virtual address behind an IOMMU).
/// Filled in by the VFIO layer once it has mapped a pool; software backends never need one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Iova(pub u64);

/// A physical address (VFIO no-IOMMU mode only; never used by the software backends).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PhysAddr(pub u64);

/// What the receiving side knows about a frame's layer-4 checksum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxCsum {
    /// Nothing: software must verify the checksum.
    #[default]
    Unknown,
    /// The NIC or the kernel verified the L4 checksum (virtio `DATA_VALID`, `TP_STATUS_CSUM_VALID`).
    Verified,
    /// The frame came from the local host with its checksum not filled in (virtio `NEEDS_CSUM`,
    /// `TP_STATUS_CSUMNOTREADY`): the 16-bit field at `start + offset` holds only the pseudo-header
    /// sum. The data never crossed a wire, so the stack may treat it as verified; anything that
    /// forwards or records the frame calls [`PacketBuf::complete_partial_csum`] first.
    Partial {
        /// Offset of the checksummed area (the L4 header) from the frame start.
        start: u16,
        /// Offset of the checksum field from `start`.
        offset: u16,
    },
}

/// A request to the transmitting NIC: compute the ones'-complement checksum over
/// `frame[start..]` and add it into the field at `start + offset`, which the stack has seeded with
/// the pseudo-header sum (the virtio-net / Linux `CHECKSUM_PARTIAL` convention). Backends without
/// the offload complete it in software.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CsumRequest {
    /// Offset of the checksummed area from the frame start.
    pub start: u16,
    /// Offset of the checksum field from `start`.
    pub offset: u16,
}

/// How to build a [`Pool`].
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    /// Number of buffers.
    pub count: u32,
    /// Size of each buffer in bytes, headroom included (a multiple of 64, at least 256).
    pub buf_size: u32,
    /// Bytes kept free before the data of a fresh buffer, for headers pushed in front later.
    pub headroom: u32,
    /// Try 2 MiB huge pages first (`MAP_HUGETLB`); fall back to ordinary pages silently.
    pub hugepages: bool,
    /// `mlock` the region, best-effort (DMA needs pinned memory; see [`Pool::is_locked`]).
    pub mlock: bool,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig { count: 4096, buf_size: 2048, headroom: 128, hugepages: true, mlock: true }
    }
}

/// Why a pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The configuration is out of range.
    #[error("invalid pool configuration: {0}")]
    Config(&'static str),
    /// The memory could not be mapped.
    #[error("cannot map pool memory: {0}")]
    Map(#[from] std::io::Error),
}

/// A single-threaded pool of fixed-size packet buffers carved from one mapped region.
///
/// Cloning a `Pool` gives another handle on the same buffers (one counter bump per clone, never
/// per packet); drivers keep a handle for their receive path. `Pool` is neither `Send` nor `Sync`:
/// one pool per engine core.
#[derive(Clone)]
pub struct Pool {
    core: CoreHandle,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("count", &self.capacity())
            .field("available", &self.available())
            .field("buf_size", &self.buf_size())
            .field("hugepages", &self.is_hugepage())
            .finish()
    }
}

impl Pool {
    /// Maps the region and cuts it into buffers.
    pub fn new(cfg: PoolConfig) -> Result<Pool, PoolError> {
        if cfg.count == 0 || cfg.count > 1 << 24 {
            return Err(PoolError::Config("count must be in 1..=16M"));
        }
        if cfg.buf_size < 256 || cfg.buf_size > 1 << 20 || !cfg.buf_size.is_multiple_of(64) {
            return Err(PoolError::Config("buf_size must be a multiple of 64 in 256..=1M"));
        }
        if cfg.headroom >= cfg.buf_size / 2 {
            return Err(PoolError::Config("headroom must be below half the buffer"));
        }
        let len = cfg.count as usize * cfg.buf_size as usize;
        let region = MmapRegion::anonymous(len, cfg.hugepages, cfg.mlock)?;
        Ok(Pool { core: CoreHandle::new(region, cfg.buf_size as usize, cfg.headroom, cfg.count) })
    }

    /// A fresh buffer (length 0, default headroom), or `None` when all are in use.
    #[inline]
    pub fn alloc(&self) -> Option<PacketBuf> {
        let raw = self.core.alloc()?;
        let head = raw.default_headroom();
        Some(PacketBuf { raw, head, len: 0, rx_csum: RxCsum::Unknown, tx_csum: None })
    }

    /// A fresh buffer holding a copy of `data`, or `None` if the pool is empty or `data` does not
    /// fit after the headroom.
    pub fn alloc_copy(&self, data: &[u8]) -> Option<PacketBuf> {
        let mut b = self.alloc()?;
        b.append(data.len())?.copy_from_slice(data);
        Some(b)
    }

    /// Buffers currently free.
    pub fn available(&self) -> u32 {
        self.core.available()
    }

    /// Total buffers.
    pub fn capacity(&self) -> u32 {
        self.core.count()
    }

    /// Size of each buffer, headroom included.
    pub fn buf_size(&self) -> usize {
        self.core.buf_size()
    }

    /// Headroom of a fresh buffer.
    pub fn headroom(&self) -> usize {
        self.core.headroom() as usize
    }

    /// Whether the region is on 2 MiB huge pages.
    pub fn is_hugepage(&self) -> bool {
        self.core.region().is_huge()
    }

    /// Whether the region is `mlock`ed.
    pub fn is_locked(&self) -> bool {
        self.core.region().is_locked()
    }

    /// Start and length of the region, for the VFIO layer to DMA-map.
    pub fn region(&self) -> (*const u8, usize) {
        let r = self.core.region();
        (r.as_ptr(), r.len())
    }

    /// Records where the device sees the region; [`PacketBuf::iova`] derives from it.
    pub fn set_iova_base(&self, base: Option<Iova>) {
        self.core.set_iova_base(base.map(|i| i.0));
    }

    /// Whether `buf` was allocated from this pool (drivers posting receive buffers check this).
    pub fn owns(&self, buf: &PacketBuf) -> bool {
        self.core.owns(&buf.raw)
    }
}

/// One packet buffer, owned exclusively; it goes back to its pool when dropped.
///
/// Layout: `[ headroom | data (len) | tailroom ]` within a buffer of [`Pool::buf_size`] bytes.
pub struct PacketBuf {
    raw: RawBuf,
    head: u32,
    len: u32,
    rx_csum: RxCsum,
    tx_csum: Option<CsumRequest>,
}

impl fmt::Debug for PacketBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PacketBuf")
            .field("index", &self.raw.index())
            .field("head", &self.head)
            .field("len", &self.len)
            .field("rx_csum", &self.rx_csum)
            .finish()
    }
}

impl PacketBuf {
    /// The frame bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        let (h, l) = (self.head as usize, self.len as usize);
        &self.raw.bytes()[h..h + l]
    }

    /// The frame bytes, mutably.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let (h, l) = (self.head as usize, self.len as usize);
        &mut self.raw.bytes_mut()[h..h + l]
    }

    /// Frame length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the frame is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes free before the data.
    #[inline]
    pub fn headroom(&self) -> usize {
        self.head as usize
    }

    /// Bytes free after the data.
    #[inline]
    pub fn tailroom(&self) -> usize {
        self.raw.size() - self.head as usize - self.len as usize
    }

    /// The largest length [`PacketBuf::set_len`] accepts (buffer size minus headroom).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.raw.size() - self.head as usize
    }

    /// Sets the frame length (bytes beyond the old length keep whatever the buffer held).
    ///
    /// # Panics
    /// If `len > self.capacity()`.
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "set_len {len} beyond capacity {}", self.capacity());
        self.len = len as u32;
    }

    /// The whole area after the headroom (`capacity()` bytes), for a backend to receive into;
    /// follow with [`PacketBuf::set_len`].
    #[inline]
    pub fn spare_mut(&mut self) -> &mut [u8] {
        let h = self.head as usize;
        &mut self.raw.bytes_mut()[h..]
    }

    /// Grows the frame by `n` bytes at the end and returns them, or `None` without tailroom.
    #[inline]
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.tailroom() {
            return None;
        }
        let start = self.head as usize + self.len as usize;
        self.len += n as u32;
        Some(&mut self.raw.bytes_mut()[start..start + n])
    }

    /// Grows the frame by `n` bytes at the front (into the headroom) and returns them.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if n > self.head as usize {
            return None;
        }
        self.head -= n as u32;
        self.len += n as u32;
        let h = self.head as usize;
        Some(&mut self.raw.bytes_mut()[h..h + n])
    }

    /// Drops `n` bytes from the front (e.g. a header already parsed); `false` if `n > len`.
    #[inline]
    pub fn advance(&mut self, n: usize) -> bool {
        if n > self.len as usize {
            return false;
        }
        self.head += n as u32;
        self.len -= n as u32;
        true
    }

    /// Empties the buffer and restores the pool's default headroom and metadata.
    #[inline]
    pub fn reset(&mut self) {
        self.head = self.raw.default_headroom();
        self.len = 0;
        self.rx_csum = RxCsum::Unknown;
        self.tx_csum = None;
    }

    /// Replaces the contents with a copy of `data`; `false` (unchanged) if it does not fit.
    pub fn copy_from(&mut self, data: &[u8]) -> bool {
        if data.len() > self.capacity() {
            return false;
        }
        self.set_len(data.len());
        self.data_mut().copy_from_slice(data);
        true
    }

    /// Receive-side checksum status.
    #[inline]
    pub fn rx_csum(&self) -> RxCsum {
        self.rx_csum
    }

    /// Sets the receive-side checksum status (backends do this).
    #[inline]
    pub fn set_rx_csum(&mut self, c: RxCsum) {
        self.rx_csum = c;
    }

    /// The transmit checksum request, if any.
    #[inline]
    pub fn tx_csum(&self) -> Option<CsumRequest> {
        self.tx_csum
    }

    /// Asks the NIC to fill in the L4 checksum on transmit.
    #[inline]
    pub fn set_tx_csum(&mut self, r: Option<CsumRequest>) {
        self.tx_csum = r;
    }

    /// Fills in a partial checksum in software: the rx [`RxCsum::Partial`] field (then marks the
    /// frame `Verified`) or, when none, the tx request (then clears it). `false` if the offsets do
    /// not fit the frame (the frame is left as it was).
    pub fn complete_partial_csum(&mut self) -> bool {
        let (start, offset) = match (self.rx_csum, self.tx_csum) {
            (RxCsum::Partial { start, offset }, _) => (start, offset),
            (_, Some(r)) => (r.start, r.offset),
            _ => return true,
        };
        if !csum::complete_partial(self.data_mut(), start as usize, offset as usize) {
            return false;
        }
        if matches!(self.rx_csum, RxCsum::Partial { .. }) {
            self.rx_csum = RxCsum::Verified;
        } else {
            self.tx_csum = None;
        }
        true
    }

    /// Device address of the first data byte, once the pool is DMA-mapped.
    #[inline]
    pub fn iova(&self) -> Option<Iova> {
        self.raw.iova().map(|b| Iova(b + self.head as u64))
    }

    /// Index of this buffer in its pool (for drivers' shadow descriptor tables).
    #[inline]
    pub fn index(&self) -> u32 {
        self.raw.index()
    }
}

/// A fixed-capacity list of buffers passed to [`crate::Nic::rx_burst`] and
/// [`crate::Nic::tx_burst`]. Allocated once; pushing within capacity never allocates.
#[derive(Debug)]
pub struct Batch {
    bufs: Vec<PacketBuf>,
    cap: usize,
}

impl Batch {
    /// An empty batch holding at most `cap` buffers.
    pub fn new(cap: usize) -> Batch {
        Batch { bufs: Vec::with_capacity(cap), cap }
    }

    /// Buffers held.
    #[inline]
    pub fn len(&self) -> usize {
        self.bufs.len()
    }

    /// Whether empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bufs.is_empty()
    }

    /// Maximum number of buffers.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Free places.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.cap - self.bufs.len()
    }

    /// Appends `b`, or gives it back when full.
    #[inline]
    pub fn push(&mut self, b: PacketBuf) -> Result<(), PacketBuf> {
        if self.bufs.len() >= self.cap {
            return Err(b);
        }
        self.bufs.push(b);
        Ok(())
    }

    /// Removes the last buffer.
    #[inline]
    pub fn pop(&mut self) -> Option<PacketBuf> {
        self.bufs.pop()
    }

    /// The buffers as a slice.
    #[inline]
    pub fn as_slice(&self) -> &[PacketBuf] {
        &self.bufs
    }

    /// The buffers as a mutable slice.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [PacketBuf] {
        &mut self.bufs
    }

    /// Iterates over the buffers.
    pub fn iter(&self) -> std::slice::Iter<'_, PacketBuf> {
        self.bufs.iter()
    }

    /// Removes and yields the first `n` buffers (all if `n > len`), keeping the order of the rest.
    pub fn drain_front(&mut self, n: usize) -> std::vec::Drain<'_, PacketBuf> {
        let n = n.min(self.bufs.len());
        self.bufs.drain(..n)
    }

    /// Removes and yields every buffer.
    pub fn drain(&mut self) -> std::vec::Drain<'_, PacketBuf> {
        self.bufs.drain(..)
    }

    /// Drops every buffer (back to their pools).
    pub fn clear(&mut self) {
        self.bufs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(count: u32) -> Pool {
        Pool::new(PoolConfig {
            count,
            buf_size: 2048,
            headroom: 128,
            hugepages: false,
            mlock: false,
        })
        .unwrap()
    }

    #[test]
    fn exhaustion_and_return_on_drop() {
        let pool = small(8);
        let mut held: Vec<PacketBuf> = (0..8).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(pool.available(), 0);
        assert!(pool.alloc().is_none(), "an exhausted pool hands out nothing");
        let mut idx: Vec<u32> = held.iter().map(|b| b.index()).collect();
        idx.sort_unstable();
        idx.dedup();
        assert_eq!(idx.len(), 8, "every buffer is distinct");
        let b = held.pop().unwrap();
        let i = b.index();
        drop(b);
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.alloc().unwrap().index(), i, "LIFO: the hot buffer comes back first");
        held.clear();
        assert_eq!(pool.available(), 8);
    }

    #[test]
    fn buffers_do_not_alias() {
        let pool = small(4);
        let mut a = pool.alloc().unwrap();
        let mut b = pool.alloc().unwrap();
        a.append(2000 - 128).unwrap().fill(0xaa);
        b.append(100).unwrap().fill(0x55);
        assert!(a.data().iter().all(|&x| x == 0xaa));
        assert!(b.data().iter().all(|&x| x == 0x55));
    }

    #[test]
    fn head_and_tail_room() {
        let pool = small(2);
        let mut b = pool.alloc().unwrap();
        assert_eq!((b.headroom(), b.len(), b.tailroom()), (128, 0, 2048 - 128));
        b.append(4).unwrap().copy_from_slice(b"data");
        b.prepend(3).unwrap().copy_from_slice(b"hdr");
        assert_eq!(b.data(), b"hdrdata");
        assert!(b.advance(3));
        assert_eq!(b.data(), b"data");
        assert!(!b.advance(5));
        assert!(b.prepend(200).is_none());
        assert!(b.append(5000).is_none());
        assert!(b.copy_from(&[1; 1920]));
        assert!(!b.copy_from(&[1; 1921]));
        assert_eq!(b.tailroom(), 0);
        b.reset();
        assert_eq!((b.headroom(), b.len()), (128, 0));
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| b.set_len(1921)));
        assert!(r.is_err());
    }

    #[test]
    fn pool_outlived_by_its_buffers() {
        let pool = small(4);
        let mut b = pool.alloc_copy(b"still here").unwrap();
        let other = pool.clone();
        drop(pool);
        assert_eq!(other.available(), 3);
        drop(other);
        // The region stays mapped until the last buffer goes.
        b.data_mut()[0] = b'S';
        assert_eq!(b.data(), b"Still here");
        drop(b);
    }

    #[test]
    fn iova_follows_base_and_headroom() {
        let pool = small(4);
        let b0 = pool.alloc().unwrap();
        let b1 = pool.alloc().unwrap();
        assert_eq!(b0.iova(), None);
        pool.set_iova_base(Some(Iova(0x1_0000_0000)));
        assert_eq!(b1.iova(), Some(Iova(0x1_0000_0000 + b1.index() as u64 * 2048 + 128)));
        assert!(pool.owns(&b0));
        assert!(!small(1).owns(&b0));
    }

    #[test]
    fn bad_configs_rejected() {
        let base = PoolConfig { hugepages: false, mlock: false, ..PoolConfig::default() };
        assert!(Pool::new(PoolConfig { count: 0, ..base }).is_err());
        assert!(Pool::new(PoolConfig { buf_size: 1000, ..base }).is_err());
        assert!(Pool::new(PoolConfig { headroom: 1024, ..base }).is_err());
    }

    #[test]
    fn batch_is_bounded() {
        let pool = small(4);
        let mut batch = Batch::new(2);
        assert!(batch.push(pool.alloc().unwrap()).is_ok());
        assert!(batch.push(pool.alloc().unwrap()).is_ok());
        assert!(batch.push(pool.alloc().unwrap()).is_err());
        assert_eq!(pool.available(), 2, "the rejected buffer went back when dropped");
        assert_eq!(batch.drain_front(1).count(), 1);
        assert_eq!(batch.len(), 1);
        batch.clear();
        assert_eq!(pool.available(), 4);
    }
}
