//! IPv4 reassembly (RFC 791 §3.2 "Fragmentation and Reassembly"), with RFC 815's hole
//! descriptors, bounded in memory and in time.
//!
//! - **Memory**: [`ReasmConfig::slots`] datagrams at once, each in a buffer of
//!   [`MAX_DATAGRAM_PAYLOAD`] bytes allocated when the host is created; a fragment for a new
//!   datagram when every slot is busy evicts the oldest datagram. Each datagram keeps at most
//!   [`ReasmConfig::max_holes`] holes; a fragment that would split more is refused and its
//!   datagram dropped. So the total is `slots × 64 KiB` whatever a peer sends: a flood of
//!   distinct identifications only recycles slots.
//! - **Time**: a datagram not complete [`ReasmConfig::timeout`] after its first fragment
//!   (30 s, Linux `ipfrag_time`; RFC 791 suggests 15 s as a lower bound) is dropped, and
//!   reported so that the host can send an ICMP time exceeded (code 1) when fragment zero had
//!   arrived (RFC 792; RFC 1122 §3.3.2).
//! - **Overlaps**: a fragment that partly overlaps data already received, or covers it with
//!   different bytes, drops the whole datagram (the policy RFC 5722 §4 mandates for IPv6 and
//!   Linux applies to IPv4 since 2018); an exact re-send of data already held is ignored.

use alloc::vec;
use alloc::vec::Vec;

use joyride_base::{Duration, Instant};

use crate::ipv4::{IpProtocol, Ipv4Repr, HEADER_LEN, MAX_PACKET_LEN};
use crate::Ipv4Addr;

/// The largest payload a reassembled datagram may have: 65535 minus a 20-byte header
/// (RFC 791 §3.1: total length is 16 bits).
pub const MAX_DATAGRAM_PAYLOAD: usize = MAX_PACKET_LEN - HEADER_LEN;

/// "Infinity" for the end of the first hole (RFC 815 §3).
const INFINITY: u32 = 1 << 16;

/// Reassembly limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasmConfig {
    /// Datagrams reassembled at once (16 by default: 1 MiB of buffers).
    pub slots: usize,
    /// Time from the first fragment after which an incomplete datagram is dropped.
    pub timeout: Duration,
    /// Holes tracked per datagram (RFC 815 descriptors).
    pub max_holes: usize,
}

impl Default for ReasmConfig {
    fn default() -> Self {
        ReasmConfig { slots: 16, timeout: Duration::from_secs(30), max_holes: 64 }
    }
}

/// Why a fragment was not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReasmDrop {
    /// The fragment overlaps data already received (partly, or with different bytes): the
    /// datagram is dropped.
    Overlap,
    /// A fragment that is not the last carries a length that is not a multiple of 8, or no
    /// data (RFC 791 §3.2).
    BadLength,
    /// The fragment ends beyond 65535 bytes of datagram: the datagram is dropped.
    TooBig,
    /// Two last fragments disagree on the length, or data lies beyond the last one: the
    /// datagram is dropped.
    Inconsistent,
    /// The fragment would split the datagram into more than [`ReasmConfig::max_holes`] holes:
    /// the datagram is dropped.
    TooManyHoles,
    /// An exact copy of data already held: ignored, the datagram goes on.
    Duplicate,
}

/// What [`Reassembler::add`] did with a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasmResult {
    /// Stored; the datagram is not complete yet.
    Held,
    /// The datagram is complete: read it with [`Reassembler::datagram`].
    Complete(usize),
    /// Not stored.
    Dropped(ReasmDrop),
}

/// A timer consequence reported by [`Reassembler::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReasmTimeout {
    /// The header of fragment zero, when it had arrived (then an ICMP time exceeded is due).
    pub first: Option<Ipv4Repr>,
    /// The slot, whose buffer still holds fragment zero's first bytes until the next call.
    pub slot: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    ident: u16,
}

#[derive(Debug)]
struct Slot {
    key: Option<Key>,
    buf: Vec<u8>,
    holes: Vec<(u32, u32)>,
    total: Option<u32>,
    first: Option<Ipv4Repr>,
    started: Instant,
}

/// The reassembly table.
#[derive(Debug)]
pub struct Reassembler {
    config: ReasmConfig,
    slots: Vec<Slot>,
    /// A slot whose completed (or timed-out) datagram was handed out and is freed on the next
    /// call that may reuse it.
    lent: Option<usize>,
}

impl Reassembler {
    /// A table with all its buffers allocated now.
    pub fn new(config: ReasmConfig) -> Reassembler {
        let config = ReasmConfig {
            slots: config.slots.max(1),
            max_holes: config.max_holes.max(2),
            ..config
        };
        let slots = (0..config.slots)
            .map(|_| Slot {
                key: None,
                buf: vec![0; MAX_DATAGRAM_PAYLOAD],
                holes: Vec::with_capacity(config.max_holes),
                total: None,
                first: None,
                started: Instant::ZERO,
            })
            .collect();
        Reassembler { config, slots, lent: None }
    }

    /// The configuration.
    pub fn config(&self) -> &ReasmConfig {
        &self.config
    }

    /// Datagrams being reassembled now.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|s| s.key.is_some()).count()
    }

    /// Bytes of buffer this table holds (fixed at creation).
    pub fn memory(&self) -> usize {
        self.slots.iter().map(|s| s.buf.capacity() + s.holes.capacity() * 8).sum()
    }

    /// Frees the slot handed out by the last completion or timeout.
    pub fn release_lent(&mut self) {
        if let Some(i) = self.lent.take() {
            self.free(i);
        }
    }

    fn free(&mut self, i: usize) {
        let s = &mut self.slots[i];
        s.key = None;
        s.holes.clear();
        s.total = None;
        s.first = None;
    }

    /// Adds a fragment (`repr` from its header, `payload` its data) received at `now`.
    /// `evicted` is set when a datagram had to be dropped to make room.
    pub fn add(
        &mut self,
        now: Instant,
        repr: &Ipv4Repr,
        payload: &[u8],
        evicted: &mut bool,
    ) -> ReasmResult {
        self.release_lent();
        let key =
            Key { src: repr.src, dst: repr.dst, protocol: repr.protocol.into(), ident: repr.ident };
        let start = u32::from(repr.frag_offset);
        let end = start + payload.len() as u32;
        let existing = self.slots.iter().position(|s| s.key == Some(key));
        // RFC 791 §3.2: every fragment but the last carries a multiple of 8 octets.
        if repr.more_frags && (payload.is_empty() || !payload.len().is_multiple_of(8)) {
            return ReasmResult::Dropped(ReasmDrop::BadLength);
        }
        if end as usize > MAX_DATAGRAM_PAYLOAD {
            // An oversized datagram (the "ping of death") can never be delivered.
            if let Some(i) = existing {
                self.free(i);
            }
            return ReasmResult::Dropped(ReasmDrop::TooBig);
        }
        let i = match existing {
            Some(i) => i,
            None => {
                let i = match self.slots.iter().position(|s| s.key.is_none()) {
                    Some(i) => i,
                    None => {
                        *evicted = true;
                        let oldest = (0..self.slots.len())
                            .min_by_key(|&i| self.slots[i].started)
                            .unwrap_or(0);
                        self.free(oldest);
                        oldest
                    }
                };
                let s = &mut self.slots[i];
                s.key = Some(key);
                s.started = now;
                // RFC 815 §3: one hole from 0 to infinity.
                s.holes.push((0, INFINITY));
                i
            }
        };
        match self.insert(i, repr, payload, start, end) {
            Ok(()) => {}
            Err(ReasmDrop::Duplicate) => return ReasmResult::Dropped(ReasmDrop::Duplicate),
            Err(e) => {
                self.free(i);
                return ReasmResult::Dropped(e);
            }
        }
        let s = &self.slots[i];
        if s.holes.is_empty() && s.total.is_some() && s.first.is_some() {
            self.lent = Some(i);
            ReasmResult::Complete(i)
        } else {
            ReasmResult::Held
        }
    }

    fn insert(
        &mut self,
        i: usize,
        repr: &Ipv4Repr,
        payload: &[u8],
        start: u32,
        end: u32,
    ) -> Result<(), ReasmDrop> {
        let max_holes = self.config.max_holes;
        let s = &mut self.slots[i];
        if !repr.more_frags {
            // The last fragment fixes the length (RFC 815 §3 step 6 applies to the hole that
            // ran to infinity).
            if let Some(total) = s.total {
                if total != end {
                    return Err(ReasmDrop::Inconsistent);
                }
            } else {
                // Data already received beyond `end`: the open hole starts past it.
                let received_end = s.holes.iter().find(|h| h.1 == INFINITY).map_or(0, |h| h.0);
                if received_end > end {
                    return Err(ReasmDrop::Inconsistent);
                }
                s.total = Some(end);
                s.holes.retain_mut(|h| {
                    if h.1 == INFINITY {
                        h.1 = end;
                    }
                    h.0 < h.1
                });
            }
        } else if s.total.is_some_and(|t| end > t) {
            return Err(ReasmDrop::Inconsistent);
        }
        if start == end {
            return Ok(());
        }
        // RFC 815 §3 steps 1–5: find the hole that contains the fragment.
        if let Some(h) = s.holes.iter().position(|&(hs, he)| hs <= start && end <= he) {
            let (hs, he) = s.holes[h];
            let left = hs < start;
            let right = end < he;
            match (left, right) {
                (false, false) => {
                    s.holes.swap_remove(h);
                }
                (true, false) => s.holes[h] = (hs, start),
                (false, true) => s.holes[h] = (end, he),
                (true, true) => {
                    if s.holes.len() >= max_holes {
                        return Err(ReasmDrop::TooManyHoles);
                    }
                    s.holes[h] = (hs, start);
                    s.holes.push((end, he));
                }
            }
            s.buf[start as usize..end as usize].copy_from_slice(payload);
        } else if s.holes.iter().any(|&(hs, he)| start < he && hs < end) {
            // Partly over a hole, partly over data already held.
            return Err(ReasmDrop::Overlap);
        } else if s.buf[start as usize..end as usize] == *payload {
            return Err(ReasmDrop::Duplicate);
        } else {
            return Err(ReasmDrop::Overlap);
        }
        if start == 0 {
            s.first = Some(*repr);
        }
        Ok(())
    }

    /// The reassembled datagram in slot `i` after [`ReasmResult::Complete`]: its header (as
    /// fragment zero's, unfragmented, with the full payload length) and its payload. Valid
    /// until the next call that takes `&mut self`.
    pub fn datagram(&self, i: usize) -> Option<(Ipv4Repr, &[u8])> {
        let s = self.slots.get(i)?;
        let total = s.total? as usize;
        let mut repr = s.first?;
        repr.payload_len = total;
        repr.more_frags = false;
        repr.frag_offset = 0;
        Some((repr, &s.buf[..total]))
    }

    /// The first bytes of fragment zero held in slot `i` (for an ICMP quote), at most `n`.
    pub fn first_bytes(&self, i: usize, n: usize) -> &[u8] {
        match self.slots.get(i) {
            Some(s) => match s.first {
                Some(f) => &s.buf[..n.min(f.payload_len)],
                None => &[],
            },
            None => &[],
        }
    }

    /// Drops the datagrams whose time is up at `now`, reporting each.
    pub fn poll(&mut self, now: Instant, timeout: &mut dyn FnMut(&Self, ReasmTimeout)) {
        self.release_lent();
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.key.is_some() && now >= s.started + self.config.timeout {
                timeout(self, ReasmTimeout { first: s.first, slot: i });
                self.free(i);
            }
        }
    }

    /// The earliest instant a datagram times out.
    pub fn poll_at(&self) -> Option<Instant> {
        self.slots.iter().filter(|s| s.key.is_some()).map(|s| s.started + self.config.timeout).min()
    }

    /// Whether `protocol` datagrams from `src` with `ident` are being reassembled (for tests).
    pub fn contains(&self, src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, ident: u16) -> bool {
        let key = Key { src, dst, protocol: protocol.into(), ident };
        self.slots.iter().any(|s| s.key == Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::Ecn;
    use proptest::prelude::*;
    use std::vec::Vec;

    fn frag(ident: u16, offset: usize, len: usize, mf: bool) -> Ipv4Repr {
        Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::Udp,
            payload_len: len,
            ttl: 64,
            dscp: 0,
            ecn: Ecn::NotEct,
            ident,
            dont_frag: false,
            more_frags: mf,
            frag_offset: offset as u16,
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    fn add(
        r: &mut Reassembler,
        ident: u16,
        d: &[u8],
        off: usize,
        len: usize,
        mf: bool,
    ) -> ReasmResult {
        let mut ev = false;
        r.add(Instant::ZERO, &frag(ident, off, len, mf), &d[off..off + len], &mut ev)
    }

    #[test]
    fn in_order_and_duplicate() {
        let d = data(40);
        let mut r = Reassembler::new(ReasmConfig { slots: 2, ..Default::default() });
        assert_eq!(add(&mut r, 1, &d, 0, 16, true), ReasmResult::Held);
        assert_eq!(add(&mut r, 1, &d, 0, 16, true), ReasmResult::Dropped(ReasmDrop::Duplicate));
        assert_eq!(add(&mut r, 1, &d, 16, 16, true), ReasmResult::Held);
        let ReasmResult::Complete(i) = add(&mut r, 1, &d, 32, 8, false) else { panic!() };
        let (repr, payload) = r.datagram(i).unwrap();
        assert_eq!(payload, &d[..]);
        assert_eq!((repr.payload_len, repr.more_frags, repr.frag_offset), (40, false, 0));
        r.release_lent();
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn overlaps_and_bounds_drop_the_datagram() {
        let d = data(64);
        let mut r = Reassembler::new(ReasmConfig::default());
        add(&mut r, 1, &d, 0, 16, true);
        assert_eq!(add(&mut r, 1, &d, 8, 16, true), ReasmResult::Dropped(ReasmDrop::Overlap));
        assert_eq!(r.in_progress(), 0);
        // Same range, different bytes.
        add(&mut r, 2, &d, 0, 16, true);
        let mut ev = false;
        let other = [0xeeu8; 16];
        assert_eq!(
            r.add(Instant::ZERO, &frag(2, 0, 16, true), &other, &mut ev),
            ReasmResult::Dropped(ReasmDrop::Overlap)
        );
        assert_eq!(r.in_progress(), 0);
        assert_eq!(add(&mut r, 3, &d, 0, 12, true), ReasmResult::Dropped(ReasmDrop::BadLength));
        let big = frag(4, 65512, 8, false);
        assert_eq!(
            r.add(Instant::ZERO, &big, &d[..8], &mut ev),
            ReasmResult::Dropped(ReasmDrop::TooBig)
        );
        // Two different last fragments; data beyond the last.
        add(&mut r, 5, &d, 32, 8, false);
        assert_eq!(add(&mut r, 5, &d, 40, 8, false), ReasmResult::Dropped(ReasmDrop::Inconsistent));
        add(&mut r, 6, &d, 32, 16, true);
        assert_eq!(add(&mut r, 6, &d, 16, 8, false), ReasmResult::Dropped(ReasmDrop::Inconsistent));
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn holes_are_bounded() {
        let d = data(2048);
        let mut r = Reassembler::new(ReasmConfig { max_holes: 4, ..Default::default() });
        let mut last = ReasmResult::Held;
        for k in 0..8 {
            last = add(&mut r, 1, &d, 16 + k * 32, 8, true);
            if last != ReasmResult::Held {
                break;
            }
        }
        assert_eq!(last, ReasmResult::Dropped(ReasmDrop::TooManyHoles));
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn flood_recycles_slots_and_timeout_reports_fragment_zero() {
        let d = data(16);
        let mut r = Reassembler::new(ReasmConfig { slots: 4, ..Default::default() });
        let mem = r.memory();
        let mut evictions = 0;
        for id in 0..1000u16 {
            let mut ev = false;
            let t = Instant::from_millis(u64::from(id));
            r.add(t, &frag(id, 8, 8, true), &d[8..16], &mut ev);
            evictions += usize::from(ev);
        }
        assert_eq!((r.in_progress(), evictions, r.memory()), (4, 996, mem));
        let mut ev = false;
        r.add(Instant::from_millis(2000), &frag(7000, 0, 8, true), &d[..8], &mut ev);
        let mut seen = Vec::new();
        r.poll(Instant::from_millis(33_000), &mut |r, t| {
            seen.push((t.first.map(|f| f.ident), r.first_bytes(t.slot, 8).to_vec()))
        });
        assert_eq!(seen.len(), 4);
        assert!(seen.contains(&(Some(7000), d[..8].to_vec())));
        assert_eq!(seen.iter().filter(|s| s.0.is_none()).count(), 3);
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.poll_at(), None);
    }

    proptest! {
        #[test]
        fn any_order_any_duplicates_reassembles(
            len in 1usize..3000,
            chunk in 1usize..64,
            seed in any::<u64>(),
            dups in 0usize..10,
        ) {
            let d = data(len);
            let step = chunk * 8;
            let mut pieces: Vec<(usize, usize)> =
                (0..len).step_by(step).map(|o| (o, step.min(len - o))).collect();
            let n = pieces.len();
            for k in 0..dups {
                pieces.push(pieces[(seed as usize + k) % n]);
            }
            // Deterministic shuffle from the seed.
            let mut s = seed;
            for i in (1..pieces.len()).rev() {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                pieces.swap(i, (s >> 33) as usize % (i + 1));
            }
            // Enough holes for 8-byte pieces in any order (the default bounds real traffic).
            let mut r = Reassembler::new(ReasmConfig { max_holes: 8192, ..Default::default() });
            let mut done = 0;
            for (o, l) in pieces {
                let res = add(&mut r, 9, &d, o, l, o + l < len);
                if let ReasmResult::Complete(i) = res {
                    prop_assert_eq!(r.datagram(i).unwrap().1, &d[..]);
                    done += 1;
                }
            }
            // Duplicates after completion may start (and rarely finish) a new datagram.
            prop_assert!(done >= 1);
        }
    }
}
