//! Joyride's own IOVA allocator. The device sees DMA memory at I/O virtual addresses we choose;
//! we never use process virtual addresses as IOVAs (ixy does; they do not fit a 39-bit guest
//! IOMMU — QEMU's intel-iommu defaults to `aw-bits=39`, and real IOMMUs have reserved ranges).
//!
//! First fit over a sorted list of free ranges, with merging on free. Allocations are rare
//! (start-up, pool creation), so a `Vec` is plenty.

/// A range of IOVA space `[start, start + len)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u64,
    len: u64,
}

/// Allocates aligned ranges of IOVA space within `[base, limit)`.
#[derive(Clone, Debug)]
pub struct IovaAllocator {
    free: Vec<Range>,
}

impl IovaAllocator {
    /// Space `[base, limit)`. The default for a guest IOMMU is `[1 MiB, 1 << 39)`: IOVA 0 stays
    /// unmapped so that a device DMA to address 0 faults instead of hitting our memory.
    pub fn new(base: u64, limit: u64) -> IovaAllocator {
        let free =
            if limit > base { vec![Range { start: base, len: limit - base }] } else { vec![] };
        IovaAllocator { free }
    }

    /// `len` bytes aligned to `align` (a power of two), or `None` when no free range fits.
    pub fn alloc(&mut self, len: u64, align: u64) -> Option<u64> {
        if len == 0 || !align.is_power_of_two() {
            return None;
        }
        for i in 0..self.free.len() {
            let r = self.free[i];
            let start = r.start.checked_add(align - 1)? & !(align - 1);
            let end = start.checked_add(len)?;
            if end > r.start + r.len {
                continue;
            }
            // Split r into [r.start, start) and [end, r.end).
            let tail = Range { start: end, len: r.start + r.len - end };
            let head = Range { start: r.start, len: start - r.start };
            self.free.remove(i);
            let mut at = i;
            if head.len > 0 {
                self.free.insert(at, head);
                at += 1;
            }
            if tail.len > 0 {
                self.free.insert(at, tail);
            }
            return Some(start);
        }
        None
    }

    /// Returns `[start, start + len)` (which must have come from [`IovaAllocator::alloc`]).
    pub fn free(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        let i = self.free.partition_point(|r| r.start < start);
        debug_assert!(i == 0 || self.free[i - 1].start + self.free[i - 1].len <= start);
        debug_assert!(i == self.free.len() || start + len <= self.free[i].start);
        self.free.insert(i, Range { start, len });
        // Merge with the next, then with the previous.
        if i + 1 < self.free.len() && start + len == self.free[i + 1].start {
            self.free[i].len += self.free[i + 1].len;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].start + self.free[i - 1].len == start {
            self.free[i - 1].len += self.free[i].len;
            self.free.remove(i);
        }
    }

    /// Free bytes in total.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|r| r.len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_disjoint_and_bounded() {
        let mut a = IovaAllocator::new(0x10_0000, 1 << 39);
        let x = a.alloc(4096, 4096).unwrap();
        let y = a.alloc(3 << 20, 2 << 20).unwrap();
        let z = a.alloc(100, 64).unwrap();
        assert_eq!(x, 0x10_0000);
        assert_eq!(y % (2 << 20), 0);
        assert!(y >= x + 4096);
        assert!(z >= x + 4096 && z + 100 <= y, "first fit reuses the alignment gap");
        assert!(a.alloc(1 << 39, 4096).is_none(), "beyond the 39-bit space");
        assert!(a.alloc(0, 4096).is_none());
        assert!(a.alloc(10, 3).is_none());
    }

    #[test]
    fn free_merges_back_to_one_range() {
        let total = (1u64 << 39) - 0x10_0000;
        let mut a = IovaAllocator::new(0x10_0000, 1 << 39);
        let v: Vec<(u64, u64)> = [(4096, 4096), (1 << 21, 1 << 21), (8192, 4096), (12288, 64)]
            .iter()
            .map(|&(l, al)| (a.alloc(l, al).unwrap(), l))
            .collect();
        assert!(a.free_bytes() < total);
        for &(s, l) in v.iter().rev().step_by(2).chain(v.iter().step_by(2)) {
            a.free(s, l);
        }
        assert_eq!(a.free_bytes(), total);
        assert_eq!(a.free.len(), 1, "every freed range merged: {:?}", a.free);
        assert_eq!(a.alloc(total, 4096), Some(0x10_0000));
    }
}
