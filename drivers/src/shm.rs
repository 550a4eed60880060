//! The shared-memory wire: two engines, usually in two processes, joined through one file (in
//! `/dev/shm`) that both map — an Ethernet cable made of two rings, with no kernel on the path.
//!
//! ## Layout (version 2, native endianness, all offsets from the start of the file)
//! ```text
//! 0      header (4096 bytes): magic "JRSHMWIR", version, header_len, slots, slot_size,
//!        slot_stride, ring offsets [2], total_len, FNV-1a check of the bytes before it,
//!        then `state` (u32 atomic: 1 = ready) and `peer` (u32 atomic: 1 = opener attached)
//! 4096   ring 0 (creator → opener), then ring 1 (opener → creator); each ring:
//!          +0    head: u64 atomic, written only by the producer   (own 128-byte block)
//!          +128  tail: u64 atomic, written only by the consumer   (own 128-byte block)
//!          +192  waiting: u32 atomic, 1 while the consumer sleeps (same block as tail)
//!          +256  `slots` slots of `slot_stride` bytes: len u32, flags u16, csum_start u16,
//!                csum_offset u16, 6 reserved bytes, then up to `slot_size` frame bytes
//! ```
//!
//! ## Doorbells
//! Beside the file, the creator makes one FIFO per ring, `PATH.bell0` and `PATH.bell1`; the
//! consumer of ring `r` sleeps in `poll(2)` on `PATH.bell<r>` ([`Nic::wait_fd`]). Before it
//! sleeps ([`Nic::prepare_wait`]) it sets the ring's `waiting` word and re-checks `head`; a
//! producer that publishes a new `head` and then finds `waiting` set clears it and writes one
//! byte into the FIFO. Both pairs (store, then load the other word) are sequentially
//! consistent, so either the consumer sees the new frame or the producer sees it waiting: no
//! frame waits for a timeout, a busy consumer costs the producer one load per burst, and an
//! idle end sleeps until a frame comes. Both ends open both FIFOs read-write and non-blocking
//! (never blocking on open, never hanging up), and refuse anything that is not a FIFO.
//! `head` and `tail` are free-running counters; slot `i` lives at index `i & (slots - 1)`.
//! The control words sit 128 bytes apart so that producer and consumer never write the same
//! cache line (128 rather than 64 to defeat the adjacent-line prefetcher).
//!
//! ## Memory ordering
//! - The producer writes a slot's bytes, then publishes them with `head.store(h, Release)`; the
//!   consumer's `head.load(Acquire)` makes those bytes visible before it reads them.
//! - The consumer reads a slot's bytes, then frees it with `tail.store(t, Release)`; the
//!   producer's `tail.load(Acquire)` orders its later overwrite after that read.
//! - Each side caches the other's counter and reloads it only when the cached value says the
//!   ring is empty (consumer) or has too little room (producer); both publish once per burst.
//!
//! ## Distrust
//! The other process may be buggy or hostile. `open` validates every header field against the
//! layout it implies and against the file's size, and rejects a foreign, truncated or corrupted
//! file with a [`ShmError`]. On the data path every value read from the file is checked before
//! use: a counter that claims more than `slots` frames in flight is [`NicError::Corrupt`], a slot
//! length beyond `slot_size` or checksum offsets beyond the frame count as `rx_errors`. All memory
//! access goes through the bounds-checked accessors of `mmap`, so a bad value can cost frames,
//! never memory safety. (A peer that truncates the file after mapping can still raise SIGBUS.)

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::mmap::MmapRegion;
use crate::{
    Batch, Capabilities, LinkState, MacAddr, Nic, NicError, Offloads, Pool, QueueCounters, QueueId,
    RxCsum,
};

const MAGIC: [u8; 8] = *b"JRSHMWIR";
/// Layout version written and accepted.
pub const VERSION: u32 = 2;
const HEADER_LEN: usize = 4096;
const H_VERSION: usize = 8;
const H_HEADER_LEN: usize = 12;
const H_SLOTS: usize = 16;
const H_SLOT_SIZE: usize = 20;
const H_STRIDE: usize = 24;
const H_RING0: usize = 32;
const H_RING1: usize = 40;
const H_TOTAL: usize = 48;
const H_CHECK: usize = 56;
const H_STATE: usize = 64;
const H_PEER: usize = 68;
const STATE_READY: u32 = 1;

const R_HEAD: usize = 0;
const R_TAIL: usize = 128;
const R_WAITING: usize = 192;
const R_SLOTS: usize = 256;
const SLOT_HDR: usize = 16;
const FLAG_CSUM_PARTIAL: u16 = 1;

/// Largest number of slots per ring.
pub const MAX_SLOTS: u32 = 1 << 20;
/// Largest frame a slot can hold.
pub const MAX_SLOT_SIZE: u32 = 65_536;

/// Why a wire could not be created or opened.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A file operation failed.
    #[error("shared-memory file: {0}")]
    Io(#[from] io::Error),
    /// `slots` or `slot_size` out of range.
    #[error("invalid wire configuration: {0}")]
    Config(&'static str),
    /// The file is smaller than its header or than the layout it describes.
    #[error("file too small ({0} bytes)")]
    TooSmall(u64),
    /// Not a Joyride wire.
    #[error("not a joyride shared-memory wire (bad magic)")]
    BadMagic,
    /// A wire of another layout version.
    #[error("unsupported wire version {0} (this build speaks {VERSION})")]
    BadVersion(u32),
    /// The header check does not match its fields.
    #[error("header check mismatch: header corrupted")]
    Checksum,
    /// A header field is inconsistent with the others or with the file.
    #[error("inconsistent header field: {0}")]
    BadHeader(&'static str),
    /// The creator has not finished initialising the file.
    #[error("wire not ready (creator still initialising)")]
    NotReady,
    /// Another process is already attached as the opener.
    #[error("another peer is already attached")]
    PeerAttached,
}

/// Geometry derived from (slots, slot_size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    slots: u32,
    slot_size: u32,
    stride: usize,
    ring: [usize; 2],
    total: usize,
}

impl Layout {
    fn new(slots: u32, slot_size: u32) -> Result<Layout, &'static str> {
        if !slots.is_power_of_two() || !(2..=MAX_SLOTS).contains(&slots) {
            return Err("slots must be a power of two in 2..=1M");
        }
        if !(64..=MAX_SLOT_SIZE).contains(&slot_size) {
            return Err("slot_size must be in 64..=65536");
        }
        let stride = (SLOT_HDR + slot_size as usize).div_ceil(64) * 64;
        let ring_len = R_SLOTS + stride * slots as usize;
        let ring0 = HEADER_LEN;
        let ring1 = ring0 + ring_len;
        Ok(Layout { slots, slot_size, stride, ring: [ring0, ring1], total: ring1 + ring_len })
    }
}

/// FNV-1a over the header fields, so that a flipped bit anywhere in them is caught.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The doorbell FIFO of ring `ring` of the wire at `path`: `PATH.bell<ring>`.
pub fn bell_path(path: &Path, ring: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".bell{ring}"));
    PathBuf::from(s)
}

/// Opens a doorbell FIFO read-write and non-blocking; anything but a FIFO (a file, a device,
/// a symbolic link) is refused before or after opening it.
fn open_bell(path: &Path) -> Result<File, ShmError> {
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let not_fifo = || ShmError::BadHeader("doorbell is not a FIFO");
    if !std::fs::symlink_metadata(path)?.file_type().is_fifo() {
        return Err(not_fifo());
    }
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path)?;
    if !f.metadata()?.file_type().is_fifo() {
        return Err(not_fifo());
    }
    Ok(f)
}

/// Which end of the wire this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Made the file; transmits on ring 0.
    Creator,
    /// Opened it; transmits on ring 1.
    Opener,
}

/// One end of a shared-memory wire; a [`Nic`] with one queue.
pub struct ShmWire {
    map: MmapRegion,
    layout: Layout,
    side: Side,
    tx_ring: usize,
    rx_ring: usize,
    tx_head: u64,
    tx_tail_cache: u64,
    rx_tail: u64,
    rx_head_cache: u64,
    pool: Pool,
    mac: MacAddr,
    counters: QueueCounters,
    /// Our receive ring's doorbell (read end: the wait fd).
    rx_bell: File,
    /// The peer's receive ring's doorbell (we ring it).
    tx_bell: File,
    /// Doorbell bytes written to the peer (one per sleep of the peer that a frame ended).
    bells_rung: u64,
    /// The creator removes the file and both doorbells when dropped.
    unlink: Option<PathBuf>,
    _file: File,
}

impl std::fmt::Debug for ShmWire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShmWire").field("side", &self.side).field("layout", &self.layout).finish()
    }
}

impl ShmWire {
    /// Creates (replacing any old file at `path`) a wire of two rings of `slots` slots, each
    /// holding a frame of up to `slot_size` bytes; received frames are copied into buffers from
    /// `pool`. The file is removed when this end is dropped (an attached opener keeps its mapping).
    pub fn create(
        path: &Path,
        slots: u32,
        slot_size: u32,
        pool: Pool,
    ) -> Result<ShmWire, ShmError> {
        let layout = Layout::new(slots, slot_size).map_err(ShmError::Config)?;
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        let bells = [bell_path(path, 0), bell_path(path, 1)];
        for b in &bells {
            match std::fs::remove_file(b) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path)?;
        let made = (|| {
            for b in &bells {
                crate::sys::mkfifo(b, 0o666)?;
            }
            // Creator: transmits on ring 0, receives on ring 1.
            Ok::<_, ShmError>((open_bell(&bells[1])?, open_bell(&bells[0])?))
        })();
        let (rx_bell, tx_bell) = match made {
            Ok(b) => b,
            Err(e) => {
                for p in [path, &bells[0], &bells[1]] {
                    let _ = std::fs::remove_file(p);
                }
                return Err(e);
            }
        };
        file.set_len(layout.total as u64)?;
        let map = MmapRegion::shared(file.as_fd(), layout.total, true)?;
        map.write_bytes(0, &MAGIC);
        map.write_u32(H_VERSION, VERSION);
        map.write_u32(H_HEADER_LEN, HEADER_LEN as u32);
        map.write_u32(H_SLOTS, slots);
        map.write_u32(H_SLOT_SIZE, slot_size);
        map.write_u32(H_STRIDE, layout.stride as u32);
        map.write_u64(H_RING0, layout.ring[0] as u64);
        map.write_u64(H_RING1, layout.ring[1] as u64);
        map.write_u64(H_TOTAL, layout.total as u64);
        let mut hdr = [0u8; H_CHECK];
        map.read_bytes(0, &mut hdr);
        map.write_u64(H_CHECK, fnv1a(&hdr));
        // Release: an opener that sees READY (Acquire) sees every header byte above.
        map.atomic_u32(H_STATE).store(STATE_READY, Ordering::Release);
        let mut w = ShmWire::attach(map, layout, Side::Creator, pool, file, (rx_bell, tx_bell))?;
        w.unlink = Some(path.to_path_buf());
        Ok(w)
    }

    /// Opens the wire at `path` made by [`ShmWire::create`], validating its header.
    pub fn open(path: &Path, pool: Pool) -> Result<ShmWire, ShmError> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let flen = file.metadata()?.len();
        if flen < HEADER_LEN as u64 {
            return Err(ShmError::TooSmall(flen));
        }
        let max = Layout::new(MAX_SLOTS, MAX_SLOT_SIZE).map(|l| l.total as u64).unwrap_or(0);
        if flen > max {
            return Err(ShmError::BadHeader("file larger than any valid wire"));
        }
        let map = MmapRegion::shared(file.as_fd(), flen as usize, false)?;
        let mut magic = [0u8; 8];
        map.read_bytes(0, &mut magic);
        if magic != MAGIC {
            return Err(ShmError::BadMagic);
        }
        if map.atomic_u32(H_STATE).load(Ordering::Acquire) != STATE_READY {
            return Err(ShmError::NotReady);
        }
        let version = map.read_u32(H_VERSION);
        if version != VERSION {
            return Err(ShmError::BadVersion(version));
        }
        let mut hdr = [0u8; H_CHECK];
        map.read_bytes(0, &mut hdr);
        if fnv1a(&hdr) != map.read_u64(H_CHECK) {
            return Err(ShmError::Checksum);
        }
        if map.read_u32(H_HEADER_LEN) as usize != HEADER_LEN {
            return Err(ShmError::BadHeader("header_len"));
        }
        let layout = Layout::new(map.read_u32(H_SLOTS), map.read_u32(H_SLOT_SIZE))
            .map_err(|_| ShmError::BadHeader("slots/slot_size"))?;
        if map.read_u32(H_STRIDE) as usize != layout.stride {
            return Err(ShmError::BadHeader("slot_stride"));
        }
        if map.read_u64(H_RING0) != layout.ring[0] as u64
            || map.read_u64(H_RING1) != layout.ring[1] as u64
        {
            return Err(ShmError::BadHeader("ring offsets"));
        }
        if map.read_u64(H_TOTAL) != layout.total as u64 || flen != layout.total as u64 {
            return Err(ShmError::BadHeader("total_len does not match the file"));
        }
        // Opener: receives on ring 0, transmits on ring 1.
        let bells = (open_bell(&bell_path(path, 0))?, open_bell(&bell_path(path, 1))?);
        if map
            .atomic_u32(H_PEER)
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return Err(ShmError::PeerAttached);
        }
        // If `attach` fails, the half-built wire's Drop releases `peer` again.
        ShmWire::attach(map, layout, Side::Opener, pool, file, bells)
    }

    fn attach(
        map: MmapRegion,
        layout: Layout,
        side: Side,
        pool: Pool,
        file: File,
        (rx_bell, tx_bell): (File, File),
    ) -> Result<ShmWire, ShmError> {
        let (tx_ring, rx_ring) = match side {
            Side::Creator => (layout.ring[0], layout.ring[1]),
            Side::Opener => (layout.ring[1], layout.ring[0]),
        };
        let slots = u64::from(layout.slots);
        let tx_head = map.atomic_u64(tx_ring + R_HEAD).load(Ordering::Acquire);
        let tx_tail = map.atomic_u64(tx_ring + R_TAIL).load(Ordering::Acquire);
        let rx_head = map.atomic_u64(rx_ring + R_HEAD).load(Ordering::Acquire);
        let rx_tail = map.atomic_u64(rx_ring + R_TAIL).load(Ordering::Acquire);
        let mac_last = if side == Side::Creator { 1 } else { 2 };
        let w = ShmWire {
            map,
            layout,
            side,
            tx_ring,
            rx_ring,
            tx_head,
            tx_tail_cache: tx_tail,
            rx_tail,
            rx_head_cache: rx_head,
            pool,
            mac: MacAddr([0x02, 0x4a, 0x52, 0x00, 0x00, mac_last]),
            counters: QueueCounters::default(),
            rx_bell,
            tx_bell,
            bells_rung: 0,
            unlink: None,
            _file: file,
        };
        if tx_head.wrapping_sub(tx_tail) > slots || rx_head.wrapping_sub(rx_tail) > slots {
            return Err(ShmError::BadHeader("ring counters"));
        }
        Ok(w)
    }

    /// Which end this is.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Overrides the MAC reported in [`Nic::capabilities`].
    pub fn set_mac(&mut self, mac: MacAddr) {
        self.mac = mac;
    }

    /// Largest frame a slot holds.
    pub fn slot_size(&self) -> usize {
        self.layout.slot_size as usize
    }

    fn head(&self, ring: usize) -> &AtomicU64 {
        self.map.atomic_u64(ring + R_HEAD)
    }

    fn tail(&self, ring: usize) -> &AtomicU64 {
        self.map.atomic_u64(ring + R_TAIL)
    }

    /// Doorbell bytes written to the peer so far.
    pub fn bells_rung(&self) -> u64 {
        self.bells_rung
    }

    fn waiting(&self, ring: usize) -> &AtomicU32 {
        self.map.atomic_u32(ring + R_WAITING)
    }

    fn peer_flag(&self) -> &AtomicU32 {
        self.map.atomic_u32(H_PEER)
    }

    #[inline]
    fn slot_off(&self, ring: usize, i: u64) -> usize {
        ring + R_SLOTS + (i & u64::from(self.layout.slots - 1)) as usize * self.layout.stride
    }
}

fn check_queue(q: QueueId) -> Result<(), NicError> {
    if q.0 == 0 {
        Ok(())
    } else {
        Err(NicError::BadQueue(q))
    }
}

impl Nic for ShmWire {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            mtu: self.layout.slot_size - 14,
            mac: self.mac,
            rx_queues: 1,
            tx_queues: 1,
            // The partial-checksum flag travels in the slot: nobody computes anything.
            offloads: Offloads { rx_checksum: true, tx_checksum: true, tso: false, rss: false },
        }
    }

    fn link(&self) -> LinkState {
        let up = match self.side {
            Side::Creator => self.peer_flag().load(Ordering::Relaxed) == 1,
            Side::Opener => true,
        };
        LinkState { up, speed_mbps: None }
    }

    fn rx_burst(&mut self, queue: QueueId, out: &mut Batch) -> Result<usize, NicError> {
        check_queue(queue)?;
        let slots = u64::from(self.layout.slots);
        let mut t = self.rx_tail;
        if self.rx_head_cache == t {
            // Acquire: pairs with the producer's Release store; slot bytes below are visible.
            let h = self.head(self.rx_ring).load(Ordering::Acquire);
            if h.wrapping_sub(t) > slots {
                self.counters.rx_errors += 1;
                return Err(NicError::Corrupt("rx head runs more than a ring ahead of tail"));
            }
            self.rx_head_cache = h;
        }
        let avail = self.rx_head_cache.wrapping_sub(t);
        let mut n = 0;
        for _ in 0..avail.min(out.remaining() as u64) {
            let off = self.slot_off(self.rx_ring, t);
            let len = self.map.read_u32(off) as usize;
            if len > self.layout.slot_size as usize {
                self.counters.rx_errors += 1;
                t = t.wrapping_add(1);
                continue;
            }
            let Some(mut b) = self.pool.alloc() else {
                break; // no buffer: leave the frame in the ring for the next burst
            };
            if len > b.capacity() {
                self.counters.rx_errors += 1;
                t = t.wrapping_add(1);
                continue;
            }
            self.map.read_bytes(off + SLOT_HDR, &mut b.spare_mut()[..len]);
            b.set_len(len);
            if self.map.read_u16(off + 4) & FLAG_CSUM_PARTIAL != 0 {
                let start = self.map.read_u16(off + 6);
                let offset = self.map.read_u16(off + 8);
                let fits = start as usize + offset as usize + 2 <= len;
                b.set_rx_csum(if fits {
                    RxCsum::Partial { start, offset }
                } else {
                    RxCsum::Unknown
                });
                if !fits {
                    self.counters.rx_errors += 1;
                }
            }
            t = t.wrapping_add(1);
            self.counters.rx_packets += 1;
            self.counters.rx_bytes += len as u64;
            let _ = out.push(b); // room checked by the loop bound
            n += 1;
        }
        if t != self.rx_tail {
            // Release: our reads of the freed slots happen before the producer reuses them.
            self.tail(self.rx_ring).store(t, Ordering::Release);
            self.rx_tail = t;
        }
        Ok(n)
    }

    fn tx_burst(&mut self, queue: QueueId, bufs: &mut Batch) -> Result<usize, NicError> {
        check_queue(queue)?;
        let slots = u64::from(self.layout.slots);
        let mut h = self.tx_head;
        if slots - h.wrapping_sub(self.tx_tail_cache) < bufs.len() as u64 {
            // Acquire: pairs with the consumer's Release store; it has finished reading the
            // slots we are about to overwrite.
            let t = self.tail(self.tx_ring).load(Ordering::Acquire);
            if h.wrapping_sub(t) > slots {
                self.counters.tx_errors += 1;
                return Err(NicError::Corrupt("tx tail runs ahead of head"));
            }
            self.tx_tail_cache = t;
        }
        let free = slots - h.wrapping_sub(self.tx_tail_cache);
        let n = bufs.len().min(free as usize);
        for b in bufs.drain_front(n) {
            if b.len() > self.layout.slot_size as usize {
                self.counters.tx_drops += 1;
                continue;
            }
            let off = self.slot_off(self.tx_ring, h);
            let (flags, start, offset) = match b.tx_csum() {
                Some(r) => (FLAG_CSUM_PARTIAL, r.start, r.offset),
                None => (0, 0, 0),
            };
            self.map.write_u32(off, b.len() as u32);
            self.map.write_u16(off + 4, flags);
            self.map.write_u16(off + 6, start);
            self.map.write_u16(off + 8, offset);
            self.map.write_bytes(off + SLOT_HDR, b.data());
            h = h.wrapping_add(1);
            self.counters.tx_packets += 1;
            self.counters.tx_bytes += b.len() as u64;
        }
        if h != self.tx_head {
            // Release: the slot bytes written above are visible before the new head. SeqCst:
            // ordered before the load of `waiting` below (the consumer's prepare_wait does the
            // mirror image), so a sleeping consumer is always woken.
            self.head(self.tx_ring).store(h, Ordering::SeqCst);
            self.tx_head = h;
            let w = self.waiting(self.tx_ring);
            if w.load(Ordering::SeqCst) != 0 && w.swap(0, Ordering::SeqCst) != 0 {
                // A full FIFO (EAGAIN) already holds a wake-up; the consumer drains it.
                let _ = (&self.tx_bell).write(&[1]);
                self.bells_rung += 1;
            }
        }
        Ok(n)
    }

    fn queue_counters(&self, queue: QueueId) -> Option<QueueCounters> {
        (queue.0 == 0).then_some(self.counters)
    }

    fn wait_fd(&self, queue: QueueId) -> Option<RawFd> {
        (queue.0 == 0).then(|| self.rx_bell.as_raw_fd())
    }

    fn prepare_wait(&mut self, queue: QueueId) -> bool {
        if queue.0 != 0 {
            return true;
        }
        // SeqCst, store then load: the mirror image of tx_burst's head store and flag load.
        self.waiting(self.rx_ring).store(1, Ordering::SeqCst);
        if self.head(self.rx_ring).load(Ordering::SeqCst) != self.rx_tail {
            self.waiting(self.rx_ring).store(0, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn end_wait(&mut self, queue: QueueId) {
        if queue.0 != 0 {
            return;
        }
        self.waiting(self.rx_ring).store(0, Ordering::Relaxed);
        // Drain the doorbell (bounded: a peer flooding the FIFO only costs wake-ups).
        let mut buf = [0u8; 64];
        for _ in 0..64 {
            match (&self.rx_bell).read(&mut buf) {
                Ok(n) if n == buf.len() => {}
                _ => break,
            }
        }
    }
}

impl Drop for ShmWire {
    fn drop(&mut self) {
        if self.side == Side::Opener {
            self.peer_flag().store(0, Ordering::Release);
        }
        if let Some(p) = self.unlink.take() {
            let _ = std::fs::remove_file(bell_path(&p, 0));
            let _ = std::fs::remove_file(bell_path(&p, 1));
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
#[path = "shm_tests.rs"]
mod tests;
