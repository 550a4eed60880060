//! Lock-free single-producer/single-consumer rings inside a [`Region`].
//!
//! A ring at offset `off` is `head: u32` at `off` (its own cache line, written only by the
//! producer), `tail: u32` at `off + 64` (its own line, written only by the consumer) and
//! `entries` slots of [`ENTRY_SIZE`] bytes from `off + 128`. Indices run freely and wrap at
//! 2³²; slot = index & (entries − 1); the ring holds `head − tail` (wrapping) entries.
//!
//! Ordering: the producer writes a slot, then stores `head` with **Release**; the consumer loads
//! `head` with **Acquire**, so the slot's bytes are visible before it reads them. The consumer
//! copies a slot out, then stores `tail` with **Release**; the producer loads `tail` with
//! **Acquire**, so the copy is done before the slot is overwritten.
//!
//! Each side keeps its own index in private memory and never reads it back from the region;
//! the other side's index is read and checked: `head − tail ≤ entries`, else the ring is
//! a [`RingError`] (the peer lied), which the service turns into poisoning.

use crate::layout::{CACHE_LINE, ENTRY_SIZE, RING_HEADER};
use crate::shm::Region;
use crate::wire::Entry;
use std::sync::atomic::Ordering;

/// A ring's index words disagree with the ring's size, or lie outside the region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingError {
    /// The producer index read (or held).
    pub head: u32,
    /// The consumer index read (or held).
    pub tail: u32,
}

/// Where a ring lives.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    off: usize,
    entries: u32,
}

impl Geometry {
    fn head(&self) -> usize {
        self.off
    }
    fn tail(&self) -> usize {
        self.off + CACHE_LINE
    }
    fn slot(&self, index: u32) -> usize {
        self.off + RING_HEADER + (index & (self.entries - 1)) as usize * ENTRY_SIZE
    }
    fn check(&self, head: u32, tail: u32) -> Result<u32, RingError> {
        let used = head.wrapping_sub(tail);
        if used <= self.entries {
            Ok(used)
        } else {
            Err(RingError { head, tail })
        }
    }
}

/// The producing end of a ring (the app for commands, the service for completions).
#[derive(Debug)]
pub struct Producer {
    geo: Geometry,
    head: u32,
    cached_tail: u32,
}

impl Producer {
    /// The producer of the ring at `off` with `entries` (a power of two) slots, starting at index
    /// `start` (0 for a fresh region).
    pub fn new(off: usize, entries: u32, start: u32) -> Producer {
        Producer { geo: Geometry { off, entries }, head: start, cached_tail: start }
    }

    /// Free slots, re-reading the consumer's tail. Errors if the tail is impossible.
    pub fn free(&mut self, r: &Region) -> Result<u32, RingError> {
        let tail = r.atomic_u32(self.geo.tail()).ok_or(RingError { head: self.head, tail: 0 })?;
        let t = tail.load(Ordering::Acquire);
        let used = self.geo.check(self.head, t)?;
        self.cached_tail = t;
        Ok(self.geo.entries - used)
    }

    /// Free slots by the cached tail, re-reading the consumer's tail only when that says full
    /// (so a streaming producer touches the consumer's cache line once per lap, not per entry).
    pub fn room(&mut self, r: &Region) -> Result<u32, RingError> {
        let cached =
            self.geo.entries - self.head.wrapping_sub(self.cached_tail).min(self.geo.entries);
        if cached > 0 {
            Ok(cached)
        } else {
            self.free(r)
        }
    }

    /// Pushes one entry and publishes it. `Ok(false)` if the ring is full.
    pub fn push(&mut self, r: &Region, e: &Entry) -> Result<bool, RingError> {
        if self.head.wrapping_sub(self.cached_tail) >= self.geo.entries && self.free(r)? == 0 {
            return Ok(false);
        }
        self.write_slot(r, e)?;
        self.publish(r)?;
        Ok(true)
    }

    /// Writes one entry without publishing it (call [`Producer::publish`] after a batch).
    /// The caller must have checked [`Producer::free`] for room.
    pub fn write_slot(&mut self, r: &Region, e: &Entry) -> Result<(), RingError> {
        if !r.write(self.geo.slot(self.head), e) {
            return Err(RingError { head: self.head, tail: self.cached_tail });
        }
        self.head = self.head.wrapping_add(1);
        Ok(())
    }

    /// Makes every written entry visible to the consumer (Release store of `head`).
    pub fn publish(&self, r: &Region) -> Result<(), RingError> {
        let head = r.atomic_u32(self.geo.head()).ok_or(RingError { head: self.head, tail: 0 })?;
        head.store(self.head, Ordering::Release);
        Ok(())
    }

    /// This side's index (entries ever produced, mod 2³²).
    pub fn head(&self) -> u32 {
        self.head
    }
}

/// The consuming end of a ring (the service for commands, the app for completions).
#[derive(Debug)]
pub struct Consumer {
    geo: Geometry,
    tail: u32,
    cached_head: u32,
}

impl Consumer {
    /// The consumer of the ring at `off` with `entries` slots, starting at index `start`.
    pub fn new(off: usize, entries: u32, start: u32) -> Consumer {
        Consumer { geo: Geometry { off, entries }, tail: start, cached_head: start }
    }

    /// Entries available, re-reading the producer's head. Errors if the head is impossible.
    pub fn available(&mut self, r: &Region) -> Result<u32, RingError> {
        let head = r.atomic_u32(self.geo.head()).ok_or(RingError { head: 0, tail: self.tail })?;
        let h = head.load(Ordering::Acquire);
        let used = self.geo.check(h, self.tail)?;
        self.cached_head = h;
        Ok(used)
    }

    /// Copies the next entry out (once) without consuming it; `Ok(None)` if empty.
    pub fn peek(&mut self, r: &Region) -> Result<Option<Entry>, RingError> {
        if self.cached_head == self.tail && self.available(r)? == 0 {
            return Ok(None);
        }
        let mut e = [0u8; ENTRY_SIZE];
        if !r.read(self.geo.slot(self.tail), &mut e) {
            return Err(RingError { head: self.cached_head, tail: self.tail });
        }
        Ok(Some(e))
    }

    /// Consumes the entry last peeked, publishing the new tail (Release).
    pub fn advance(&mut self, r: &Region) -> Result<(), RingError> {
        self.tail = self.tail.wrapping_add(1);
        let tail = r.atomic_u32(self.geo.tail()).ok_or(RingError { head: 0, tail: self.tail })?;
        tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Copies the next entry out and consumes it locally without publishing the tail; call
    /// [`Consumer::release`] after a batch (the producer sees the space only then).
    pub fn pop_deferred(&mut self, r: &Region) -> Result<Option<Entry>, RingError> {
        let e = self.peek(r)?;
        if e.is_some() {
            self.tail = self.tail.wrapping_add(1);
        }
        Ok(e)
    }

    /// Publishes the local tail (Release): slots consumed so far may be reused.
    pub fn release(&self, r: &Region) -> Result<(), RingError> {
        let tail = r.atomic_u32(self.geo.tail()).ok_or(RingError { head: 0, tail: self.tail })?;
        tail.store(self.tail, Ordering::Release);
        Ok(())
    }

    /// Peeks and advances: the next entry, or `Ok(None)` if empty.
    pub fn pop(&mut self, r: &Region) -> Result<Option<Entry>, RingError> {
        let e = self.peek(r)?;
        if e.is_some() {
            self.advance(r)?;
        }
        Ok(e)
    }

    /// Whether the ring looks empty (cheap: re-reads `head`; a corrupt head counts as non-empty
    /// so that the caller goes and finds the error).
    pub fn is_empty(&mut self, r: &Region) -> bool {
        matches!(self.available(r), Ok(0))
    }

    /// This side's index (entries ever consumed, mod 2³²).
    pub fn tail(&self) -> u32 {
        self.tail
    }
}

/// Copies `dst.len()` bytes from a byte ring (`cap`, a power of two, bytes at `base`) starting at
/// stream position `pos`, wrapping. False if the ring lies outside the region or `dst` is
/// larger than the ring.
pub fn ring_read(r: &Region, base: usize, cap: usize, pos: u64, dst: &mut [u8]) -> bool {
    if dst.len() > cap {
        return false;
    }
    let at = (pos as usize) & (cap - 1);
    let first = dst.len().min(cap - at);
    let (a, b) = dst.split_at_mut(first);
    r.read(base + at, a) && r.read(base, b)
}

/// Copies `src` into a byte ring at stream position `pos`, wrapping. False if out of range.
pub fn ring_write(r: &Region, base: usize, cap: usize, pos: u64, src: &[u8]) -> bool {
    if src.len() > cap {
        return false;
    }
    let at = (pos as usize) & (cap - 1);
    let first = src.len().min(cap - at);
    let (a, b) = src.split_at(first);
    r.write(base + at, a) && r.write(base, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn entry(i: u64) -> Entry {
        let mut e = [0u8; ENTRY_SIZE];
        e[..8].copy_from_slice(&i.to_le_bytes());
        e[56..].copy_from_slice(&(!i).to_le_bytes());
        e
    }

    #[test]
    fn fill_drain_wrap() {
        let r = Region::create(c"ring", 4096).unwrap();
        let start = u32::MAX - 2; // wraps the u32 index on the way
        r.atomic_u32(0).unwrap().store(start, Ordering::Relaxed);
        r.atomic_u32(64).unwrap().store(start, Ordering::Relaxed);
        let mut p = Producer::new(0, 4, start);
        let mut c = Consumer::new(0, 4, start);
        for round in 0..10u64 {
            for i in 0..4 {
                assert!(p.push(&r, &entry(round * 4 + i)).unwrap());
            }
            assert!(!p.push(&r, &entry(99)).unwrap(), "full at 4");
            for i in 0..4 {
                assert_eq!(c.pop(&r).unwrap(), Some(entry(round * 4 + i)));
            }
            assert_eq!(c.pop(&r).unwrap(), None);
        }
    }

    #[test]
    fn deferred_release_and_cached_room() {
        let r = Region::create(c"ring", 4096).unwrap();
        let mut p = Producer::new(0, 4, 0);
        let mut c = Consumer::new(0, 4, 0);
        assert_eq!(p.room(&r).unwrap(), 4);
        for i in 0..4 {
            p.write_slot(&r, &entry(i)).unwrap();
        }
        assert_eq!(c.pop(&r).unwrap(), None, "nothing visible before publish");
        p.publish(&r).unwrap();
        assert_eq!(c.pop_deferred(&r).unwrap(), Some(entry(0)));
        assert_eq!(c.pop_deferred(&r).unwrap(), Some(entry(1)));
        assert_eq!(p.room(&r).unwrap(), 0, "tail not released yet");
        c.release(&r).unwrap();
        assert_eq!(p.room(&r).unwrap(), 2);
        assert_eq!(c.pop_deferred(&r).unwrap(), Some(entry(2)));
    }

    #[test]
    fn lying_indices_are_errors() {
        let r = Region::create(c"ring", 4096).unwrap();
        let mut c = Consumer::new(0, 4, 0);
        r.atomic_u32(0).unwrap().store(5, Ordering::Relaxed); // head 5 > tail 0 + 4
        assert_eq!(c.pop(&r), Err(RingError { head: 5, tail: 0 }));
        r.atomic_u32(0).unwrap().store(u32::MAX, Ordering::Relaxed); // "behind" the tail
        assert!(c.pop(&r).is_err());
        let mut p = Producer::new(0, 4, 0);
        r.atomic_u32(64).unwrap().store(1, Ordering::Relaxed); // tail ahead of head
        assert!(p.free(&r).is_err());
        let mut far = Producer::new(8192, 4, 0); // outside the region
        assert!(far.push(&r, &entry(0)).is_err());
    }

    #[test]
    fn byte_ring_wraps() {
        let r = Region::create(c"ring", 4096).unwrap();
        let data: Vec<u8> = (0..200u8).collect();
        assert!(ring_write(&r, 1024, 256, 200, &data));
        let mut out = vec![0u8; 200];
        assert!(ring_read(&r, 1024, 256, 200 + 256 * 7, &mut out));
        assert_eq!(out, data);
        assert!(!ring_write(&r, 1024, 256, 0, &[0; 257]));
        assert!(!ring_read(&r, 4000, 256, 0, &mut out));
    }

    /// 1M entries between two threads, in order, nothing lost or duplicated.
    #[test]
    fn spsc_two_threads_one_million_in_order() {
        const N: u64 = 1_000_000;
        let r = Arc::new(Region::create(c"ring", 128 + 256 * 64).unwrap());
        let r2 = Arc::clone(&r);
        let producer = std::thread::spawn(move || {
            let mut p = Producer::new(0, 256, 0);
            let mut i = 0;
            while i < N {
                if p.push(&r2, &entry(i)).unwrap() {
                    i += 1;
                } else {
                    std::hint::spin_loop();
                    std::thread::yield_now();
                }
            }
        });
        let mut c = Consumer::new(0, 256, 0);
        let mut next = 0;
        while next < N {
            match c.pop(&r).unwrap() {
                Some(e) => {
                    assert_eq!(e, entry(next));
                    next += 1;
                }
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(c.pop(&r).unwrap(), None);
    }
}
