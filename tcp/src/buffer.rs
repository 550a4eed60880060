//! Bounded send and receive byte rings (RFC 9293 §3.3.1 send/receive sequence space).
//!
//! - [`SendBuffer`] holds the bytes between `SND.UNA` and the end of what the application wrote:
//!   offset 0 is `SND.UNA`. Acknowledged bytes leave the front ([`SendBuffer::ack`]); bytes to
//!   (re)transmit are lent out as up to two slices ([`SendBuffer::peek_at`]) so a segment can be
//!   built by scatter-gather without an intermediate copy.
//! - [`RecvBuffer`] holds the in-order readable bytes *and*, beyond them, out-of-order bytes at
//!   their final position (offset 0 of [`RecvBuffer::write_at`] is `RCV.NXT`). An
//!   [`Assembler`] records which out-of-order bytes are present; when a hole fills they become
//!   readable without moving. The free space is the receive window (RFC 9293 §3.8.6.2).
//!
//! Both allocate once, at creation or on an explicit [`SendBuffer::set_capacity`] /
//! [`RecvBuffer::set_capacity`] (SO_SNDBUF/SO_RCVBUF), never per segment, and never grow from
//! anything a peer sends.

use crate::assembler::Assembler;
use std::boxed::Box;
use std::vec;

/// Why a buffer could not be resized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResizeError {
    /// The buffer holds more bytes than the requested capacity (or, for a receive buffer,
    /// out-of-order bytes that would have to move).
    InUse,
}

impl core::fmt::Display for ResizeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("buffer holds data that does not fit the requested capacity")
    }
}

impl std::error::Error for ResizeError {}

/// A fixed-capacity byte ring: `len` bytes starting at `head`.
#[derive(Clone, Debug)]
struct Ring {
    buf: Box<[u8]>,
    head: usize,
}

impl Ring {
    fn new(capacity: usize) -> Self {
        Ring { buf: vec![0u8; capacity].into_boxed_slice(), head: 0 }
    }

    fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Physical index of logical offset `off` (< capacity) from the head.
    fn idx(&self, off: usize) -> usize {
        let i = self.head + off;
        if i >= self.buf.len() {
            i - self.buf.len()
        } else {
            i
        }
    }

    /// Up to two slices covering logical `[off, off + n)`; requires `off + n <= capacity`.
    fn slices(&self, off: usize, n: usize) -> (&[u8], &[u8]) {
        if n == 0 {
            return (&[], &[]);
        }
        let start = self.idx(off);
        let first = n.min(self.buf.len() - start);
        (&self.buf[start..start + first], &self.buf[..n - first])
    }

    /// Copy `data` to logical offset `off`; requires `off + data.len() <= capacity`.
    fn write(&mut self, off: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let start = self.idx(off);
        let first = data.len().min(self.buf.len() - start);
        self.buf[start..start + first].copy_from_slice(&data[..first]);
        self.buf[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Copy logical `[off, off + out.len())` into `out`.
    fn read(&self, off: usize, out: &mut [u8]) {
        let (a, b) = self.slices(off, out.len());
        out[..a.len()].copy_from_slice(a);
        out[a.len()..].copy_from_slice(b);
    }

    /// Drop `n` bytes from the front.
    fn advance(&mut self, n: usize) {
        if !self.buf.is_empty() {
            self.head = self.idx(n % self.buf.len());
        }
    }

    /// Re-allocate at `capacity`, keeping logical `[0, keep)` and moving the head to 0.
    fn resize(&mut self, capacity: usize, keep: usize) {
        let mut buf = vec![0u8; capacity].into_boxed_slice();
        self.read(0, &mut buf[..keep]);
        self.buf = buf;
        self.head = 0;
    }
}

/// The send buffer: unacknowledged plus not-yet-sent bytes, offset 0 = `SND.UNA`.
#[derive(Clone, Debug)]
pub struct SendBuffer {
    ring: Ring,
    len: usize,
}

impl SendBuffer {
    /// An empty buffer of `capacity` bytes (allocated now, once).
    pub fn new(capacity: usize) -> Self {
        SendBuffer { ring: Ring::new(capacity), len: 0 }
    }

    /// Append as much of `data` as fits; returns the bytes taken (0 when full).
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.ring.write(self.len, &data[..n]);
        self.len += n;
        n
    }

    /// Bytes held (unacknowledged, sent or not).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes that can still be written.
    pub fn free(&self) -> usize {
        self.ring.capacity() - self.len
    }

    /// Total size.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Drop `n` acknowledged bytes from the front (RFC 9293 §3.10.7.4: "Any segments on the
    /// retransmission queue that are thereby entirely acknowledged are removed"). `n` larger than
    /// [`SendBuffer::len`] drops everything.
    pub fn ack(&mut self, n: usize) {
        let n = n.min(self.len);
        self.ring.advance(n);
        self.len -= n;
        if self.len == 0 {
            self.ring.head = 0; // keep future writes contiguous
        }
    }

    /// The held bytes starting `offset` past `SND.UNA`, at most `max` of them, as up to two
    /// slices (the second is empty unless the range wraps the ring). An `offset` at or past the
    /// end gives two empty slices.
    pub fn peek_at(&self, offset: usize, max: usize) -> (&[u8], &[u8]) {
        if offset >= self.len {
            return (&[], &[]);
        }
        self.ring.slices(offset, max.min(self.len - offset))
    }

    /// Copy up to `out.len()` held bytes starting at `offset` into `out`; returns the count.
    pub fn copy_at(&self, offset: usize, out: &mut [u8]) -> usize {
        let (a, b) = self.peek_at(offset, out.len());
        out[..a.len()].copy_from_slice(a);
        out[a.len()..a.len() + b.len()].copy_from_slice(b);
        a.len() + b.len()
    }

    /// Resize to `capacity` (SO_SNDBUF). Re-allocates, keeping the held bytes; fails with
    /// [`ResizeError::InUse`] when more than `capacity` bytes are held.
    pub fn set_capacity(&mut self, capacity: usize) -> Result<(), ResizeError> {
        if self.len > capacity {
            return Err(ResizeError::InUse);
        }
        if capacity != self.capacity() {
            self.ring.resize(capacity, self.len);
        }
        Ok(())
    }
}

/// The receive buffer: readable in-order bytes, then the window, in which out-of-order bytes sit
/// at their final place. Offsets given to [`RecvBuffer::write_at`] are relative to `RCV.NXT`.
#[derive(Clone, Debug)]
pub struct RecvBuffer {
    ring: Ring,
    /// In-order bytes not yet read by the application.
    readable: usize,
    /// Out-of-order bytes present beyond `readable` (offsets relative to `RCV.NXT`).
    asm: Assembler,
}

impl RecvBuffer {
    /// An empty buffer of `capacity` bytes (allocated now, once).
    pub fn new(capacity: usize) -> Self {
        RecvBuffer { ring: Ring::new(capacity), readable: 0, asm: Assembler::new() }
    }

    /// Total size.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// In-order bytes the application can read.
    pub fn readable(&self) -> usize {
        self.readable
    }

    /// Free space past the readable bytes: the receive window to advertise, relative to
    /// `RCV.NXT` (RFC 9293 §3.8.6.2; out-of-order bytes lie inside it and do not shrink it).
    pub fn window(&self) -> usize {
        self.ring.capacity() - self.readable
    }

    /// The out-of-order tracker (for SACK blocks, RFC 2018 §4, via
    /// [`Assembler::sack_blocks`]).
    pub fn assembler(&self) -> &Assembler {
        &self.asm
    }

    /// Store segment data that starts `offset` bytes past `RCV.NXT`, clipped to the window
    /// (bytes beyond `RCV.NXT + window` are dropped, RFC 9293 §3.10.7.4 "trimmed"). Returns how
    /// many bytes became readable in order, i.e. **how far `RCV.NXT` advances** (0 for
    /// out-of-order data, or when the out-of-order tracker is full and refuses a new hole).
    /// The caller trims data before `RCV.NXT` off the front first.
    pub fn write_at(&mut self, offset: usize, data: &[u8]) -> usize {
        let window = self.window();
        if offset >= window || data.is_empty() {
            return 0;
        }
        let n = data.len().min(window - offset);
        // Copy first: if the tracker refuses the range the bytes lie in free space, unreferenced.
        self.ring.write(self.readable + offset, &data[..n]);
        let advance = self.asm.add(offset, n);
        self.readable += advance;
        advance
    }

    /// Copy readable bytes into `out`, consuming them; returns the count.
    pub fn read(&mut self, out: &mut [u8]) -> usize {
        let n = self.peek(out, 0);
        self.consume(n);
        n
    }

    /// Copy readable bytes into `out` after skipping `skip` of them, without consuming
    /// (MSG_PEEK); returns the count.
    pub fn peek(&self, out: &mut [u8], skip: usize) -> usize {
        if skip >= self.readable {
            return 0;
        }
        let n = out.len().min(self.readable - skip);
        self.ring.read(skip, &mut out[..n]);
        n
    }

    /// The readable bytes as up to two slices (for copying out without an intermediate buffer;
    /// follow with [`RecvBuffer::consume`]).
    pub fn readable_slices(&self) -> (&[u8], &[u8]) {
        self.ring.slices(0, self.readable)
    }

    /// Drop `n` readable bytes (at most [`RecvBuffer::readable`]).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.readable);
        self.ring.advance(n);
        self.readable -= n;
        if self.readable == 0 && self.asm.is_empty() {
            self.ring.head = 0;
        }
    }

    /// Forget out-of-order bytes (e.g. under memory pressure, RFC 2018 §8 reneging — the
    /// sender keeps SACKed data until cumulatively acknowledged, so this is safe).
    pub fn drop_out_of_order(&mut self) {
        self.asm.clear();
    }

    /// Resize to `capacity` (SO_RCVBUF). Re-allocates; fails with [`ResizeError::InUse`] when
    /// out-of-order bytes are held or more than `capacity` bytes are readable. Shrinking below
    /// an already-advertised window is the caller's concern (RFC 9293 §3.8.6.2.1).
    pub fn set_capacity(&mut self, capacity: usize) -> Result<(), ResizeError> {
        if !self.asm.is_empty() || self.readable > capacity {
            return Err(ResizeError::InUse);
        }
        if capacity != self.capacity() {
            self.ring.resize(capacity, self.readable);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cat(s: (&[u8], &[u8])) -> Vec<u8> {
        [s.0, s.1].concat()
    }

    #[test]
    fn send_wraps_and_acks() {
        let mut b = SendBuffer::new(8);
        assert_eq!(b.write(b"abcdef"), 6);
        b.ack(4);
        assert_eq!(b.len(), 2);
        assert_eq!(b.write(b"ghijklmn"), 6); // fills to capacity, wrapping
        assert_eq!(b.free(), 0);
        let (x, y) = b.peek_at(0, 100);
        assert!(!y.is_empty(), "range wraps the ring");
        assert_eq!(cat((x, y)), b"efghijkl");
        assert_eq!(cat(b.peek_at(3, 2)), b"hi");
        assert_eq!(cat(b.peek_at(8, 2)), b"");
        let mut out = [0u8; 5];
        assert_eq!(b.copy_at(5, &mut out), 3);
        assert_eq!(&out[..3], b"jkl");
        b.ack(100);
        assert!(b.is_empty());
    }

    #[test]
    fn send_resize() {
        let mut b = SendBuffer::new(4);
        b.write(b"abcd");
        b.ack(2);
        b.write(b"ef");
        assert_eq!(b.set_capacity(3), Err(ResizeError::InUse));
        assert_eq!(b.set_capacity(16), Ok(()));
        assert_eq!(b.write(b"0123456789"), 10);
        assert_eq!(cat(b.peek_at(0, 100)), b"cdef0123456789");
        let mut z = SendBuffer::new(0);
        assert_eq!(z.write(b"x"), 0);
        z.ack(1);
    }

    #[test]
    fn recv_out_of_order_in_place() {
        let mut r = RecvBuffer::new(16);
        assert_eq!(r.write_at(4, b"efgh"), 0);
        assert_eq!(r.readable(), 0);
        assert_eq!(r.window(), 16, "out-of-order data does not shrink the window");
        assert_eq!(r.assembler().sack_blocks(4).as_slice(), &[(4, 4)]);
        assert_eq!(r.write_at(0, b"abcd"), 8, "filling the hole makes both readable");
        assert_eq!(r.window(), 8);
        let mut out = [0u8; 3];
        assert_eq!(r.peek(&mut out, 2), 3);
        assert_eq!(&out, b"cde");
        let mut out = [0u8; 16];
        assert_eq!(r.read(&mut out), 8);
        assert_eq!(&out[..8], b"abcdefgh");
        // Clipped to the window.
        assert_eq!(r.write_at(10, b"0123456789"), 0);
        assert_eq!(r.assembler().ranges().collect::<Vec<_>>(), vec![(10, 6)]);
        assert_eq!(r.write_at(16, b"x"), 0);
        assert_eq!(r.write_at(0, b"ABCDEFGHIJ"), 16);
        assert_eq!(r.window(), 0);
        let (a, b) = r.readable_slices();
        assert_eq!(cat((a, b)), b"ABCDEFGHIJ012345");
        r.consume(16);
        assert_eq!(r.set_capacity(4), Ok(()));
        assert_eq!(r.capacity(), 4);
    }

    proptest! {
        /// Writes and acks in any interleaving: the buffer always holds exactly the
        /// un-acked suffix of what was written, in order.
        #[test]
        fn send_model(cap in 1usize..64, ops in prop::collection::vec((any::<bool>(), 0usize..40), 1..100)) {
            let mut b = SendBuffer::new(cap);
            let mut model: std::collections::VecDeque<u8> = Default::default();
            let mut next = 0u8;
            for (w, n) in ops {
                if w {
                    let data: Vec<u8> = (0..n).map(|_| { next = next.wrapping_add(1); next }).collect();
                    let took = b.write(&data);
                    prop_assert_eq!(took, n.min(cap - model.len()));
                    model.extend(&data[..took]);
                    // Bytes not taken are regenerated next time: rewind the counter.
                    next = next.wrapping_sub((n - took) as u8);
                } else {
                    b.ack(n);
                    for _ in 0..n.min(model.len()) { model.pop_front(); }
                }
                prop_assert_eq!(b.len(), model.len());
                let all: Vec<u8> = model.iter().copied().collect();
                let off = n % (model.len() + 1);
                prop_assert_eq!(cat(b.peek_at(off, 7)), all[off..(off + 7).min(all.len())].to_vec());
            }
        }

        /// Segments of a stream delivered in any order, with overlaps and duplicates, and reads
        /// in between, come out exactly as the original stream.
        #[test]
        fn recv_reassembles(
            cap in 8usize..128,
            segs in prop::collection::vec((0usize..400, 1usize..60, 0usize..50), 1..150),
        ) {
            let total = 400usize;
            let stream: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
            let mut r = RecvBuffer::new(cap);
            let mut rcv_nxt = 0usize;
            let mut out = Vec::new();
            let mut tmp = vec![0u8; 64];
            // Append an in-order sweep so the whole stream is eventually delivered.
            let sweep = (0..total / 4 * 3).map(|i| (i * 4 % total, 4, 16));
            for (s, l, rd) in segs.into_iter().chain(sweep) {
                let e = (s + l).min(total);
                if e > rcv_nxt {
                    let s2 = s.max(rcv_nxt);
                    rcv_nxt += r.write_at(s2 - rcv_nxt, &stream[s2..e]);
                }
                let n = r.read(&mut tmp[..rd]);
                out.extend_from_slice(&tmp[..n]);
                prop_assert!(r.readable() + r.window() == cap);
                if out.len() == total { break; }
            }
            // Drain.
            loop {
                let n = r.read(&mut tmp);
                if n == 0 { break; }
                out.extend_from_slice(&tmp[..n]);
            }
            prop_assert_eq!(rcv_nxt, out.len());
            prop_assert_eq!(&out[..], &stream[..out.len()]);
            prop_assert_eq!(out.len(), total);
        }
    }
}
