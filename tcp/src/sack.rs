//! Sender-side SACK scoreboard and the RFC 6675 loss-recovery helpers.
//!
//! [`Scoreboard`] remembers which octets above `SND.UNA` the peer reported in SACK blocks
//! (RFC 2018 §3), as at most [`MAX_RANGES`] disjoint, non-adjacent ranges of absolute sequence
//! numbers. On top of it sit the RFC 6675 §4 routines:
//! - [`Scoreboard::is_lost`] — `IsLost(SeqNum)`;
//! - [`Scoreboard::pipe`] — `SetPipe()`, the estimate of octets still in the network;
//! - [`Scoreboard::next_seg`] — `NextSeg()` rules 1–3, what to (re)transmit next.
//!
//! Conventions: `high_rxt` is **exclusive** — one past the highest octet retransmitted in the
//! current recovery (RFC 6675's `HighRxt` is the octet itself), so "S > HighRxt" reads
//! `s >= high_rxt`; `snd_una` is RFC 6675's `HighACK`, `snd_nxt` is `HighData + 1`.
//! D-SACK (RFC 2883) is out of scope: blocks at or below `SND.UNA` are ignored.

use crate::seq::SeqNum;

/// The most SACKed ranges remembered.
pub const MAX_RANGES: usize = 32;

/// RFC 6675 §2: "DupThresh ... the number of duplicate acknowledgments required to trigger a
/// retransmission", 3 (RFC 5681).
pub const DUP_THRESH: u32 = 3;

/// What [`Scoreboard::next_seg`] says to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextSeg {
    /// First sequence number of the segment.
    pub seq: SeqNum,
    /// Length in octets (≤ SMSS).
    pub len: u32,
    /// True for a retransmission (rules 1 and 3), false for new data (rule 2).
    pub retransmit: bool,
}

/// The SACKed ranges above `SND.UNA`, sorted, disjoint, non-adjacent; `[start, end)`.
#[derive(Clone, Debug)]
pub struct Scoreboard {
    ranges: [(SeqNum, SeqNum); MAX_RANGES],
    len: usize,
}

impl Default for Scoreboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Scoreboard {
    /// An empty scoreboard.
    pub const fn new() -> Self {
        Scoreboard { ranges: [(SeqNum::new(0), SeqNum::new(0)); MAX_RANGES], len: 0 }
    }

    /// Forget everything (e.g. after an RTO, RFC 6675 §5.1, or on reneging, RFC 2018 §8).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Whether nothing is SACKed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The SACKed ranges `[start, end)`, lowest first.
    pub fn ranges(&self) -> &[(SeqNum, SeqNum)] {
        &self.ranges[..self.len]
    }

    /// Total SACKed octets above `SND.UNA`.
    pub fn sacked_bytes(&self) -> u32 {
        self.ranges().iter().map(|(s, e)| e.distance(*s)).sum()
    }

    /// One past the highest SACKed octet, if any (RFC 6675's "highest octet covered by any
    /// received SACK", plus one).
    pub fn high_sacked(&self) -> Option<SeqNum> {
        self.ranges().last().map(|r| r.1)
    }

    /// Whether octet `seq` has been SACKed.
    pub fn is_sacked(&self, seq: SeqNum) -> bool {
        self.ranges().iter().any(|(s, e)| seq.in_range(*s, *e))
    }

    /// Process an ACK: drop what `snd_una` now covers cumulatively, then merge the ACK's SACK
    /// blocks `(left, right)` (right exclusive, RFC 2018 §3). Blocks not inside
    /// `(snd_una, snd_nxt]` — empty, stale, D-SACK below `SND.UNA`, or beyond anything sent —
    /// are ignored; a block straddling `snd_una` is clipped to it. When the scoreboard is full, a
    /// new disjoint range evicts the highest one if it lies below it (the ranges nearest
    /// `SND.UNA` decide retransmissions), otherwise it is dropped.
    pub fn update(&mut self, snd_una: SeqNum, snd_nxt: SeqNum, blocks: &[(SeqNum, SeqNum)]) {
        self.prune(snd_una);
        for &(left, right) in blocks {
            if !left.before(right) || !right.after(snd_una) || right.after(snd_nxt) {
                continue;
            }
            let left = left.max(snd_una);
            self.insert(snd_una, left, right);
        }
    }

    /// RFC 6675 §5.1 / RFC 9293: a cumulative ACK removes scoreboard entries it covers.
    fn prune(&mut self, snd_una: SeqNum) {
        let drop = self.ranges().iter().take_while(|r| r.1.before_eq(snd_una)).count();
        self.ranges.copy_within(drop..self.len, 0);
        self.len -= drop;
        if self.len > 0 && self.ranges[0].0.before(snd_una) {
            self.ranges[0].0 = snd_una;
        }
    }

    fn insert(&mut self, base: SeqNum, left: SeqNum, right: SeqNum) {
        // Position relative to `base` turns modular order into integer order.
        let off = |s: SeqNum| s.distance(base);
        let (l, r) = (off(left), off(right));
        let n = self.len;
        let first = self.ranges[..n].partition_point(|x| off(x.1) < l);
        let last = first + self.ranges[first..n].partition_point(|x| off(x.0) <= r);
        if first < last {
            // Merge with the overlapping/adjacent run.
            let start = if off(self.ranges[first].0) < l { self.ranges[first].0 } else { left };
            let end =
                if off(self.ranges[last - 1].1) > r { self.ranges[last - 1].1 } else { right };
            self.ranges[first] = (start, end);
            self.ranges.copy_within(last..n, first + 1);
            self.len -= last - first - 1;
            return;
        }
        if n == MAX_RANGES {
            if first == n {
                return; // above everything held: drop
            }
            self.len -= 1; // evict the highest
        }
        self.ranges.copy_within(first..self.len, first + 1);
        self.ranges[first] = (left, right);
        self.len += 1;
    }

    /// `(octets, ranges)` SACKed strictly above `seq`.
    fn sacked_above(&self, seq: SeqNum) -> (u32, u32) {
        let mut bytes = 0;
        let mut count = 0;
        for &(s, e) in self.ranges() {
            if s.after(seq) {
                bytes += e.distance(s);
                count += 1;
            } else if e.after(seq + 1) {
                bytes += e.distance(seq + 1);
                count += 1;
            }
        }
        (bytes, count)
    }

    /// RFC 6675 §4 `IsLost(SeqNum)`: "returns true when either DupThresh discontiguous SACKed
    /// sequences have arrived above 'SeqNum' or more than (DupThresh - 1) * SMSS bytes with
    /// sequence numbers greater than 'SeqNum' have been SACKed." Discontiguous sequences are
    /// counted as SACKed ranges (contiguous SACKed segments merge, but then their octets count).
    pub fn is_lost(&self, seq: SeqNum, dupthresh: u32, mss: u32) -> bool {
        let (bytes, count) = self.sacked_above(seq);
        count >= dupthresh || bytes > dupthresh.saturating_sub(1).saturating_mul(mss)
    }

    /// The un-SACKed holes in `[snd_una, snd_nxt)`, lowest first, each with whether it is lost
    /// (IsLost is the same for every octet of a hole: no SACKed octet lies inside it).
    fn holes(
        &self,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
        mss: u32,
    ) -> impl Iterator<Item = (SeqNum, SeqNum, bool)> + '_ {
        let n = self.len;
        (0..=n).filter_map(move |i| {
            let start = if i == 0 { snd_una } else { self.ranges[i - 1].1 };
            let end = if i == n { snd_nxt } else { self.ranges[i].0 };
            if !start.before(end) {
                return None;
            }
            Some((start, end, self.is_lost(start, DUP_THRESH, mss)))
        })
    }

    /// RFC 6675 §4 `SetPipe()`: octets between `snd_una` (HighACK) and `snd_nxt` not SACKed
    /// count once if not lost (a) and once more if already retransmitted, below `high_rxt` (b).
    /// Uses [`DUP_THRESH`].
    pub fn pipe(&self, snd_una: SeqNum, snd_nxt: SeqNum, high_rxt: SeqNum, mss: u32) -> u32 {
        let rxt_end = if high_rxt.after(snd_una) { high_rxt.min(snd_nxt) } else { snd_una };
        let mut pipe = 0u32;
        for (s, e, lost) in self.holes(snd_una, snd_nxt, mss) {
            // (a) "If IsLost (S1) returns false: Pipe is incremented by 1 octet."
            if !lost {
                pipe += e.distance(s);
            }
            // (b) "If S1 <= HighRxt: Pipe is incremented by 1 octet."
            if s.before(rxt_end) {
                pipe += e.min(rxt_end).distance(s);
            }
        }
        pipe
    }

    /// RFC 6675 §4 `NextSeg()` rules 1–3 (rule 4 is not implemented):
    /// 1. the lowest un-SACKed `S2 >= high_rxt`, below the highest SACKed octet, with
    ///    `IsLost(S2)` — a retransmission;
    /// 2. otherwise new data at `snd_nxt`, if the caller allows `new_data_allowed > 0` bytes
    ///    (unsent data exists and the receive window permits);
    /// 3. otherwise the lowest un-SACKed `S3` meeting 1's first two criteria, lost or not.
    ///
    /// The segment is at most `mss` octets and never runs into SACKed data.
    pub fn next_seg(
        &self,
        snd_una: SeqNum,
        snd_nxt: SeqNum,
        high_rxt: SeqNum,
        mss: u32,
        new_data_allowed: u32,
    ) -> Option<NextSeg> {
        let floor = if high_rxt.after(snd_una) { high_rxt } else { snd_una };
        let high = self.high_sacked().unwrap_or(snd_una);
        // (1.a) S > HighRxt and (1.b) S < highest SACKed octet: the first such un-SACKed octet.
        let candidate = self.holes(snd_una, high, mss).find_map(|(s, e, lost)| {
            let s = s.max(floor);
            s.before(e).then(|| NextSeg { seq: s, len: e.distance(s).min(mss), retransmit: lost })
        });
        match candidate {
            // Rule 1: (1.c) IsLost(S2).
            Some(seg) if seg.retransmit => Some(seg),
            // Rule 2: new data.
            _ if new_data_allowed > 0 => {
                Some(NextSeg { seq: snd_nxt, len: new_data_allowed.min(mss), retransmit: false })
            }
            // Rule 3: the not-yet-lost hole.
            Some(seg) => Some(NextSeg { retransmit: true, ..seg }),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MSS: u32 = 1000;

    /// Sequence numbers relative to a base near the wrap point.
    fn s(off: u32) -> SeqNum {
        SeqNum::new(u32::MAX - 2500) + off
    }

    fn sb(blocks: &[(u32, u32)], una: u32, nxt: u32) -> Scoreboard {
        let mut b = Scoreboard::new();
        let blocks: Vec<_> = blocks.iter().map(|&(l, r)| (s(l), s(r))).collect();
        b.update(s(una), s(nxt), &blocks);
        b
    }

    #[test]
    fn merge_and_validate() {
        let mut b = sb(&[(2000, 3000), (1000, 2000), (5000, 6000)], 0, 10_000);
        assert_eq!(b.ranges(), &[(s(1000), s(3000)), (s(5000), s(6000))]);
        assert_eq!(b.sacked_bytes(), 3000);
        assert_eq!(b.high_sacked(), Some(s(6000)));
        // Ignored: beyond SND.NXT, empty, below SND.UNA (D-SACK), inverted.
        b.update(s(0), s(10_000), &[(s(9000), s(11_000)), (s(7000), s(7000)), (s(0) - 500, s(0))]);
        b.update(s(0), s(10_000), &[(s(8000), s(7000))]);
        assert_eq!(b.ranges().len(), 2);
        // Bridging block merges all.
        b.update(s(0), s(10_000), &[(s(2500), s(5500))]);
        assert_eq!(b.ranges(), &[(s(1000), s(6000))]);
        assert!(b.is_sacked(s(3000)) && !b.is_sacked(s(6000)));
        // Cumulative ACK into the range clips it; past it removes it.
        b.update(s(2000), s(10_000), &[]);
        assert_eq!(b.ranges(), &[(s(2000), s(6000))]);
        b.update(s(6000), s(10_000), &[]);
        assert!(b.is_empty());
    }

    #[test]
    fn bounded_keeps_lowest() {
        let mut b = Scoreboard::new();
        for i in 0..(MAX_RANGES as u32 + 5) {
            let l = s(1000 + 2000 * i);
            b.update(s(0), s(200_000), &[(l, l + 1000)]);
        }
        assert_eq!(b.ranges().len(), MAX_RANGES);
        let top = b.high_sacked().unwrap();
        // A lower new range evicts the highest.
        b.update(s(0), s(200_000), &[(s(100), s(200))]);
        assert_eq!(b.ranges().len(), MAX_RANGES);
        assert_eq!(b.ranges()[0], (s(100), s(200)));
        assert!(b.high_sacked().unwrap().before(top));
    }

    /// RFC 6675 worked case: segment 0 of 10 lost, later segments SACKed one by one.
    #[test]
    fn single_loss_is_lost_after_dupthresh() {
        let b = sb(&[(1000, 2000)], 0, 10_000);
        assert!(!b.is_lost(s(0), 3, MSS));
        let b = sb(&[(1000, 3000)], 0, 10_000);
        assert!(!b.is_lost(s(0), 3, MSS), "2*SMSS is not more than (DupThresh-1)*SMSS");
        let b = sb(&[(1000, 4000)], 0, 10_000);
        assert!(b.is_lost(s(0), 3, MSS));
        assert!(!b.is_lost(s(4000), 3, MSS));
        // SetPipe: the lost hole [0,1000) is out; [4000,10000) is in flight.
        assert_eq!(b.pipe(s(0), s(10_000), s(0), MSS), 6000);
        // NextSeg rule 1: retransmit the hole.
        let seg = b.next_seg(s(0), s(10_000), s(0), MSS, 5000).unwrap();
        assert_eq!(seg, NextSeg { seq: s(0), len: 1000, retransmit: true });
        // After retransmitting it (HighRxt = 1000): pipe counts it (b), rule 2 sends new data.
        assert_eq!(b.pipe(s(0), s(10_000), s(1000), MSS), 7000);
        let seg = b.next_seg(s(0), s(10_000), s(1000), MSS, 5000).unwrap();
        assert_eq!(seg, NextSeg { seq: s(10_000), len: 1000, retransmit: false });
        assert_eq!(b.next_seg(s(0), s(10_000), s(1000), MSS, 0), None);
    }

    /// Three discontiguous SACKed segments make the lowest hole lost by the count rule only.
    #[test]
    fn discontiguous_count_rule_and_rule3() {
        let b = sb(&[(1000, 2000), (3000, 4000), (5000, 6000)], 0, 10_000);
        assert!(b.is_lost(s(0), 3, MSS), "3 discontiguous ranges above");
        assert!(!b.is_lost(s(2000), 3, MSS), "2 ranges, 2000 octets above");
        assert!(b.is_lost(s(2000), 2, MSS), "with DupThresh 2");
        // Byte count above a point inside a range counts only the part above it.
        // Above 1500: 499 + 1000 + 1000 octets in 3 ranges; with DupThresh 4 the byte rule
        // decides: lost iff 2499 > 3 * SMSS.
        assert!(b.is_lost(s(1500), 4, 832));
        assert!(!b.is_lost(s(1500), 4, 833));
        assert_eq!(b.pipe(s(0), s(10_000), s(0), MSS), 1000 + 1000 + 4000);
        assert_eq!(b.pipe(s(0), s(10_000), s(1000), MSS), 7000);
        let r1 = b.next_seg(s(0), s(10_000), s(0), MSS, 0).unwrap();
        assert_eq!(r1, NextSeg { seq: s(0), len: 1000, retransmit: true });
        // HighRxt past the first hole: the next hole is not lost; rule 2 wins if allowed...
        let r2 = b.next_seg(s(0), s(10_000), s(1000), MSS, 300).unwrap();
        assert_eq!(r2, NextSeg { seq: s(10_000), len: 300, retransmit: false });
        // ...otherwise rule 3 retransmits it anyway.
        let r3 = b.next_seg(s(0), s(10_000), s(1000), MSS, 0).unwrap();
        assert_eq!(r3, NextSeg { seq: s(2000), len: 1000, retransmit: true });
        // Above the highest SACKed octet nothing is retransmitted by rules 1/3.
        assert_eq!(b.next_seg(s(0), s(10_000), s(6000), MSS, 0), None);
    }

    #[test]
    fn next_seg_clips_to_hole_and_mss() {
        let b = sb(&[(2500, 9000)], 0, 10_000);
        let seg = b.next_seg(s(0), s(10_000), s(500), MSS, 0).unwrap();
        assert_eq!(seg, NextSeg { seq: s(500), len: 1000, retransmit: true });
        let seg = b.next_seg(s(0), s(10_000), s(2000), MSS, 0).unwrap();
        assert_eq!(seg, NextSeg { seq: s(2000), len: 500, retransmit: true });
    }

    proptest! {
        /// The scoreboard equals the set of SACKed octets in (snd_una, snd_nxt] as a bitmap
        /// model computes it, whatever blocks arrive and however snd_una advances.
        #[test]
        fn matches_bitmap_model(
            base in any::<u32>(),
            steps in prop::collection::vec(
                (0u32..50, prop::collection::vec((0u32..400, 0u32..60), 0..4)), 1..8),
        ) {
            let total = 400u32;
            let b0 = SeqNum::new(base);
            let nxt = b0 + total;
            let mut model = vec![false; total as usize];
            let mut una = 0u32;
            let mut sc = Scoreboard::new();
            for (adv, blocks) in steps {
                una = (una + adv).min(total);
                let bl: Vec<_> = blocks.iter().map(|&(l, n)| (b0 + l, b0 + l + n)).collect();
                sc.update(b0 + una, nxt, &bl);
                for &(l, n) in &blocks {
                    if n > 0 && l + n > una && l + n <= total {
                        for i in l.max(una)..l + n { model[i as usize] = true; }
                    }
                }
                let got: Vec<bool> = (0..total).map(|i| i >= una && sc.is_sacked(b0 + i)).collect();
                let want: Vec<bool> = (0..total).map(|i| i >= una && model[i as usize]).collect();
                prop_assert_eq!(&got, &want);
                // Disjoint, sorted, non-adjacent.
                for w in sc.ranges().windows(2) {
                    prop_assert!(w[0].1.before(w[1].0));
                }
                let sacked = want.iter().filter(|&&x| x).count() as u32;
                prop_assert_eq!(sc.sacked_bytes(), sacked);
                // Without retransmissions pipe is at most the un-SACKed outstanding octets and
                // at least those above the highest SACK (never lost).
                let pipe = sc.pipe(b0 + una, nxt, b0 + una, 100);
                prop_assert!(pipe <= total - una - sacked);
                let tail = sc.high_sacked().map_or(total - una, |h| nxt.distance(h));
                prop_assert!(pipe >= tail);
            }
        }
    }
}
