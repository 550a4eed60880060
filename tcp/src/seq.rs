//! TCP sequence numbers as a newtype with modular comparisons (RFC 9293 §3.4).
//!
//! Sequence space is a circle of 2^32 numbers, so `a < b` has no meaning on its own; what
//! matters is whether `b` lies less than half the circle ahead of `a`. [`SeqNum`] therefore has
//! no `PartialOrd`/`Ord` (DESIGN.md §4 rule 3, after netstack3's `SeqNum`); use
//! [`SeqNum::before`], [`SeqNum::after`] and friends, which are the RFC 9293 §3.4 comparisons
//! ("`<` means less than, modulo 2^32"), implemented as a signed look at the wrapping difference
//! (the same idea as RFC 1982 serial-number arithmetic).
//!
//! Two numbers exactly 2^31 apart are ambiguous; here `a.before(a + 2^31)` holds and so does
//! `(a + 2^31).before(a)` — callers never produce such pairs because windows are < 2^30
//! (RFC 7323 §2.3).

use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A 32-bit TCP sequence (or acknowledgment) number. Arithmetic wraps; order is modular.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(u32);

impl SeqNum {
    /// The sequence number `n`.
    pub const fn new(n: u32) -> Self {
        SeqNum(n)
    }

    /// The raw 32-bit value (for the wire).
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The signed distance `self - other` interpreted on the circle.
    #[inline]
    const fn diff(self, other: SeqNum) -> i32 {
        self.0.wrapping_sub(other.0) as i32
    }

    /// `self < other` modulo 2^32 (RFC 9293 §3.4).
    #[inline]
    pub const fn before(self, other: SeqNum) -> bool {
        self.diff(other) < 0
    }

    /// `self > other` modulo 2^32 (RFC 9293 §3.4).
    #[inline]
    pub const fn after(self, other: SeqNum) -> bool {
        self.diff(other) > 0
    }

    /// `self =< other` modulo 2^32 (RFC 9293 §3.4).
    #[inline]
    pub const fn before_eq(self, other: SeqNum) -> bool {
        self.diff(other) <= 0
    }

    /// `self >= other` modulo 2^32 (RFC 9293 §3.4).
    #[inline]
    pub const fn after_eq(self, other: SeqNum) -> bool {
        self.diff(other) >= 0
    }

    /// The number of sequence numbers from `earlier` up to `self` (wrapping difference). If
    /// `earlier` is in fact after `self` the result is the long way round (> 2^31).
    #[inline]
    pub const fn distance(self, earlier: SeqNum) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// `lo =< self < hi` modulo 2^32: `self` lies in the half-open window starting at `lo`.
    /// An empty window (`lo == hi`) contains nothing. Used for the RFC 9293 §3.10.7.4
    /// acceptability tests (`RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND`).
    #[inline]
    pub const fn in_range(self, lo: SeqNum, hi: SeqNum) -> bool {
        self.distance(lo) < hi.distance(lo)
    }

    /// The later of the two, modulo 2^32.
    #[inline]
    pub const fn max(self, other: SeqNum) -> SeqNum {
        if self.after(other) {
            self
        } else {
            other
        }
    }

    /// The earlier of the two, modulo 2^32.
    #[inline]
    pub const fn min(self, other: SeqNum) -> SeqNum {
        if self.before(other) {
            self
        } else {
            other
        }
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn add(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(n))
    }
}

impl AddAssign<u32> for SeqNum {
    #[inline]
    fn add_assign(&mut self, n: u32) {
        self.0 = self.0.wrapping_add(n);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    #[inline]
    fn sub(self, n: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(n))
    }
}

impl From<u32> for SeqNum {
    fn from(n: u32) -> Self {
        SeqNum(n)
    }
}

impl From<SeqNum> for u32 {
    fn from(s: SeqNum) -> u32 {
        s.0
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SeqNum({})", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_around() {
        let a = SeqNum::new(u32::MAX - 1);
        let b = a + 5;
        assert_eq!(b.get(), 3);
        assert!(a.before(b));
        assert!(b.after(a));
        assert!(!b.before(a));
        assert_eq!(b.distance(a), 5);
        assert_eq!(b - 5, a);
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
        let mut c = a;
        c += 5;
        assert_eq!(c, b);
    }

    #[test]
    fn in_range_half_open() {
        let lo = SeqNum::new(u32::MAX - 2);
        let hi = lo + 10;
        assert!(lo.in_range(lo, hi));
        assert!((lo + 9).in_range(lo, hi));
        assert!(!hi.in_range(lo, hi));
        assert!(!(lo - 1).in_range(lo, hi));
        assert!(!lo.in_range(lo, lo), "empty window contains nothing");
    }

    /// A base and an offset that keep two numbers within half the circle of each other.
    fn near() -> impl Strategy<Value = (u32, u32)> {
        // Bias bases towards the wrap point.
        let base = prop_oneof![any::<u32>(), (0u32..64).prop_map(|d| u32::MAX - d), 0u32..64];
        (base, 1u32..(1 << 31))
    }

    proptest! {
        #[test]
        fn strict_order_laws((base, off) in near()) {
            let a = SeqNum::new(base);
            let b = a + off;
            prop_assert!(a.before(b));
            prop_assert!(b.after(a));
            prop_assert!(!a.after(b));
            prop_assert!(!b.before(a));
            prop_assert!(a.before_eq(b) && !b.before_eq(a));
            prop_assert!(b.after_eq(a) && !a.after_eq(b));
            prop_assert_eq!(b.distance(a), off);
            prop_assert_eq!(a.max(b), b);
            prop_assert_eq!(a.min(b), a);
            prop_assert_eq!(b - off, a);
        }

        #[test]
        fn reflexive(x in any::<u32>()) {
            let a = SeqNum::new(x);
            prop_assert!(!a.before(a) && !a.after(a));
            prop_assert!(a.before_eq(a) && a.after_eq(a));
            prop_assert_eq!(a.distance(a), 0);
        }

        #[test]
        fn transitive_within_window((base, o1) in near(), o2 in 1u32..(1 << 30)) {
            // a < b < c with c - a < 2^31 ⇒ a < c.
            let o1 = o1 >> 1; // keep o1 + o2 < 2^31
            prop_assume!(o1 > 0);
            let a = SeqNum::new(base);
            let b = a + o1;
            let c = b + o2;
            prop_assert!(a.before(b) && b.before(c) && a.before(c));
        }

        #[test]
        fn in_range_matches_distance(x in any::<u32>(), lo in any::<u32>(), len in 0u32..(1 << 31)) {
            let (x, lo) = (SeqNum::new(x), SeqNum::new(lo));
            let hi = lo + len;
            let inside = x.in_range(lo, hi);
            prop_assert_eq!(inside, x.distance(lo) < len);
            if inside {
                prop_assert!(x.after_eq(lo) && x.before(hi));
            }
        }
    }
}
