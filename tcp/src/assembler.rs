//! Bounded out-of-order segment tracker (RFC 9293 §3.10.7.4 "segments with higher beginning
//! sequence numbers ... should be held for later processing") and RFC 2018 §4 SACK block
//! generation.
//!
//! The [`Assembler`] knows *which* bytes beyond `RCV.NXT` have arrived, never the bytes
//! themselves: those live once, in place, in [`crate::buffer::RecvBuffer`]. Offsets are relative
//! to `RCV.NXT` (offset 0 is the next in-order byte). It keeps at most [`MAX_RANGES`] disjoint,
//! non-adjacent ranges in a fixed array; when full, a segment that would create a new range is
//! refused (the peer retransmits it later) so nothing a peer sends makes it grow without bound.
//! Segments that overlap or touch a known range are always accepted because merging never adds
//! a range, and a segment reaching offset 0 is always accepted because it is consumed at once.
//!
//! D-SACK (RFC 2883) is out of scope.

/// The most out-of-order ranges tracked at once.
pub const MAX_RANGES: usize = 32;

/// The most SACK blocks one segment carries (RFC 2018 §3: 4 without timestamps, 3 with).
pub const MAX_SACK_BLOCKS: usize = 4;

/// One out-of-order run: `[start, end)` relative to `RCV.NXT`, with the arrival stamp of the
/// segment that last touched it (for RFC 2018 §4 block ordering).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Range {
    start: usize,
    end: usize,
    stamp: u64,
}

/// Tracker of received byte ranges beyond `RCV.NXT`. Fixed size, no allocation.
#[derive(Clone, Debug)]
pub struct Assembler {
    /// Sorted by `start`, disjoint and non-adjacent (a gap of at least one byte between any two).
    ranges: [Range; MAX_RANGES],
    len: usize,
    /// Incremented on every accepted segment; a range's `stamp` says how recently it grew.
    clock: u64,
}

impl Default for Assembler {
    fn default() -> Self {
        Self::new()
    }
}

impl Assembler {
    /// An empty tracker: everything up to `RCV.NXT` received, nothing beyond.
    pub const fn new() -> Self {
        Assembler { ranges: [Range { start: 0, end: 0, stamp: 0 }; MAX_RANGES], len: 0, clock: 0 }
    }

    /// Whether no out-of-order data is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many disjoint out-of-order ranges are held (≤ [`MAX_RANGES`]).
    pub fn range_count(&self) -> usize {
        self.len
    }

    /// Whether the tracker is full: a segment disjoint from every held range would be refused.
    pub fn is_full(&self) -> bool {
        self.len == MAX_RANGES
    }

    /// Forget all out-of-order data (connection reset, or the receive buffer dropped it).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Total out-of-order bytes held.
    pub fn ooo_bytes(&self) -> usize {
        self.ranges[..self.len].iter().map(|r| r.end - r.start).sum()
    }

    /// The offset just past the highest out-of-order byte held, or 0 if none.
    pub fn high_offset(&self) -> usize {
        if self.len == 0 {
            0
        } else {
            self.ranges[self.len - 1].end
        }
    }

    /// Whether byte `offset` (relative to `RCV.NXT`) has been received out of order.
    pub fn contains(&self, offset: usize) -> bool {
        self.ranges[..self.len].iter().any(|r| r.start <= offset && offset < r.end)
    }

    /// The held ranges as `(offset, len)` in ascending order.
    pub fn ranges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.ranges[..self.len].iter().map(|r| (r.start, r.end - r.start))
    }

    /// Record that bytes `[offset, offset + len)` (relative to `RCV.NXT`) arrived and return by
    /// how much the contiguous prefix grew, i.e. how far `RCV.NXT` must advance. The held ranges
    /// are re-based to the new `RCV.NXT`. A segment that would need a new range while the tracker
    /// is full is dropped and 0 returned (see [`Assembler::try_add`] to tell the cases apart).
    pub fn add(&mut self, offset: usize, len: usize) -> usize {
        self.try_add(offset, len).unwrap_or(0)
    }

    /// Like [`Assembler::add`], but `None` when the segment was refused because the tracker is
    /// full and the segment is disjoint from every held range and from offset 0.
    pub fn try_add(&mut self, offset: usize, len: usize) -> Option<usize> {
        if len == 0 {
            return Some(0);
        }
        let end = offset.saturating_add(len);
        // Ranges overlapping or adjacent to [offset, end): indices first..last (exclusive).
        // Because ranges are sorted and non-adjacent, these form one consecutive run.
        let first = self.ranges[..self.len].partition_point(|r| r.end < offset);
        let last = first + self.ranges[first..self.len].partition_point(|r| r.start <= end);
        let (mut start, mut stop) = (offset, end);
        if first < last {
            start = start.min(self.ranges[first].start);
            stop = stop.max(self.ranges[last - 1].end);
        }
        if start == 0 {
            // The hole at RCV.NXT is filled: everything up to `stop` is now in order. Only the
            // range at index 0 can reach offset 0, so `first == 0`.
            self.remove(first, last);
            for r in &mut self.ranges[..self.len] {
                r.start -= stop;
                r.end -= stop;
            }
            return Some(stop);
        }
        if first == last && self.len == MAX_RANGES {
            // Bounded reassembly: refuse rather than grow.
            return None;
        }
        self.clock += 1;
        let merged = Range { start, end: stop, stamp: self.clock };
        if first == last {
            self.ranges.copy_within(first..self.len, first + 1);
            self.len += 1;
        } else {
            self.remove(first + 1, last);
        }
        self.ranges[first] = merged;
        Some(0)
    }

    /// Remove ranges `[from, to)`, keeping order.
    fn remove(&mut self, from: usize, to: usize) {
        if from < to {
            self.ranges.copy_within(to..self.len, from);
            self.len -= to - from;
        }
    }

    /// The SACK blocks to send (RFC 2018 §4), as `(offset, len)` relative to `RCV.NXT`, at most
    /// `max` (≤ [`MAX_SACK_BLOCKS`]; 3 when timestamps share the option space).
    ///
    /// RFC 2018 §4: "The first SACK block (i.e., the one immediately following the kind and
    /// length fields in the option) MUST specify the contiguous block of data containing the
    /// segment which triggered this ACK" — the range with the newest stamp; then "the SACK option
    /// SHOULD be filled out by repeating the most recently reported SACK blocks ... that are not
    /// subsets of a SACK block already included" — the other ranges by decreasing recency.
    /// Ranges are disjoint, so no block is a subset of another.
    pub fn sack_blocks(&self, max: usize) -> SackBlocks {
        let max = max.min(MAX_SACK_BLOCKS);
        let mut out = SackBlocks { blocks: [(0, 0); MAX_SACK_BLOCKS], len: 0, pos: 0 };
        // Selection of the `max` newest stamps; n ≤ 32, max ≤ 4: a few linear passes.
        let mut taken = 0u32; // bitmask of indices already emitted
        while out.len < max {
            let mut best: Option<usize> = None;
            for (i, r) in self.ranges[..self.len].iter().enumerate() {
                let newer = match best {
                    None => true,
                    Some(b) => r.stamp > self.ranges[b].stamp,
                };
                if taken & (1 << i) == 0 && newer {
                    best = Some(i);
                }
            }
            let Some(i) = best else { break };
            taken |= 1 << i;
            let r = self.ranges[i];
            // Offsets fit in u32: they lie within a window < 2^30 (RFC 7323 §2.3).
            out.blocks[out.len] = (r.start as u32, (r.end - r.start) as u32);
            out.len += 1;
        }
        out
    }
}

/// Iterator over up to [`MAX_SACK_BLOCKS`] `(offset, len)` SACK blocks relative to `RCV.NXT`,
/// first block first (see [`Assembler::sack_blocks`]).
#[derive(Clone, Copy, Debug)]
pub struct SackBlocks {
    blocks: [(u32, u32); MAX_SACK_BLOCKS],
    len: usize,
    pos: usize,
}

impl SackBlocks {
    /// The blocks as a slice, first block first.
    pub fn as_slice(&self) -> &[(u32, u32)] {
        &self.blocks[self.pos..self.len]
    }
}

impl Iterator for SackBlocks {
    type Item = (u32, u32);
    fn next(&mut self) -> Option<(u32, u32)> {
        if self.pos < self.len {
            self.pos += 1;
            Some(self.blocks[self.pos - 1])
        } else {
            None
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.len - self.pos, Some(self.len - self.pos))
    }
}

impl ExactSizeIterator for SackBlocks {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ranges(a: &Assembler) -> Vec<(usize, usize)> {
        a.ranges().collect()
    }

    #[test]
    fn in_order_advances() {
        let mut a = Assembler::new();
        assert_eq!(a.add(0, 10), 10);
        assert!(a.is_empty());
    }

    #[test]
    fn hole_then_fill() {
        let mut a = Assembler::new();
        assert_eq!(a.add(10, 5), 0);
        assert_eq!(a.add(20, 5), 0);
        assert_eq!(ranges(&a), vec![(10, 5), (20, 5)]);
        assert!(a.contains(12) && !a.contains(15) && !a.contains(9));
        // Fill [0,10): advances to 15, and the [20,25) range is re-based to [5,10).
        assert_eq!(a.add(0, 10), 15);
        assert_eq!(ranges(&a), vec![(5, 5)]);
        // Fill [0,5) bridging to it.
        assert_eq!(a.add(0, 5), 10);
        assert!(a.is_empty());
    }

    #[test]
    fn merges_overlaps_and_adjacent() {
        let mut a = Assembler::new();
        a.add(10, 5);
        a.add(30, 5);
        a.add(15, 5); // adjacent to [10,15)
        assert_eq!(ranges(&a), vec![(10, 10), (30, 5)]);
        a.add(18, 14); // overlaps both
        assert_eq!(ranges(&a), vec![(10, 25)]);
        a.add(12, 3); // duplicate
        assert_eq!(ranges(&a), vec![(10, 25)]);
        assert_eq!(a.ooo_bytes(), 25);
        assert_eq!(a.high_offset(), 35);
    }

    #[test]
    fn bounded_when_full() {
        let mut a = Assembler::new();
        for i in 0..MAX_RANGES {
            assert_eq!(a.try_add(10 + 10 * i, 5), Some(0));
        }
        assert!(a.is_full());
        // A new disjoint range is refused...
        assert_eq!(a.try_add(1000, 5), None);
        assert_eq!(a.range_count(), MAX_RANGES);
        // ...but one touching a held range is merged,
        assert_eq!(a.try_add(15, 5), Some(0));
        assert_eq!(a.range_count(), MAX_RANGES - 1);
        // and one at RCV.NXT is always consumed.
        let mut b = a.clone();
        assert_eq!(b.try_add(0, 10), Some(25));
    }

    #[test]
    fn sack_block_order_rfc2018() {
        // RFC 2018 §5 style: segments arrive out of order; the first block is always the one
        // holding the newest segment, then the others by recency.
        let mut a = Assembler::new();
        a.add(500, 100); // block A
        a.add(1000, 100); // block B
        a.add(1500, 100); // block C
        let got: Vec<_> = a.sack_blocks(4).collect();
        assert_eq!(got, vec![(1500, 100), (1000, 100), (500, 100)]);
        // A segment extending A makes A first.
        a.add(600, 100);
        let got: Vec<_> = a.sack_blocks(4).collect();
        assert_eq!(got, vec![(500, 200), (1500, 100), (1000, 100)]);
        // Only 3 blocks when timestamps are on; the oldest is dropped.
        a.add(2000, 100);
        assert_eq!(a.sack_blocks(3).as_slice(), &[(2000, 100), (500, 200), (1500, 100)]);
        assert_eq!(a.sack_blocks(9).len(), 4);
    }

    proptest! {
        /// Random segments of a stream (overlaps, duplicates, any order) advance RCV.NXT to
        /// exactly the stream length once every byte was delivered at least once, and the held
        /// ranges always equal the set of received bytes beyond RCV.NXT.
        #[test]
        fn reassembles_any_order(
            total in 1usize..600,
            segs in prop::collection::vec((0usize..600, 1usize..80), 1..120),
        ) {
            let mut a = Assembler::new();
            let mut got = vec![false; total];
            let mut rcv_nxt = 0usize;
            // Make sure the whole stream gets covered at the end.
            let cover: Vec<(usize, usize)> = (0..total).step_by(50).map(|s| (s, 50)).collect();
            for (s, l) in segs.into_iter().chain(cover) {
                let s = s % total;
                let e = (s + l).min(total);
                if e <= rcv_nxt { continue; }
                let s = s.max(rcv_nxt); // the engine trims the already-received prefix
                let before = a.range_count();
                let r = a.try_add(s - rcv_nxt, e - s);
                match r {
                    Some(adv) => {
                        for b in &mut got[s..e] { *b = true; }
                        rcv_nxt += adv;
                    }
                    None => prop_assert_eq!(before, MAX_RANGES),
                }
                // RCV.NXT sits at the first hole.
                let first_hole = got.iter().position(|b| !b).unwrap_or(total);
                prop_assert_eq!(rcv_nxt, first_hole);
                // The tracker describes exactly the received bytes beyond RCV.NXT.
                let mut want = vec![];
                let mut i = rcv_nxt;
                while i < total {
                    if got[i] {
                        let j = (i..total).find(|&j| !got[j]).unwrap_or(total);
                        want.push((i - rcv_nxt, j - i));
                        i = j;
                    } else { i += 1; }
                }
                prop_assert_eq!(ranges(&a), want);
                prop_assert!(a.range_count() <= MAX_RANGES);
            }
            prop_assert_eq!(rcv_nxt, total);
            prop_assert!(a.is_empty());
        }
    }
}
