//! A fixed pool of frame buffers, allocated once, plus the intrusive lists that queue them.
//!
//! Every frame the host sends — ARP, ICMP, UDP, TCP segments handed down by the service, and
//! the packets parked while ARP resolves their next hop — lives in one slot of this pool from
//! the moment it is built until [`crate::host::Host::poll_transmit`] hands it out. The pool is
//! allocated when the host is created and never grows: when it is full a send fails (and is
//! counted), so nothing a peer does can make the host allocate.

use alloc::vec;
use alloc::vec::Vec;

/// The index of a slot.
pub(crate) type SlotId = u16;

/// "No slot": the end of an intrusive list.
pub(crate) const NIL: SlotId = SlotId::MAX;

/// `count` buffers of `slot_len` bytes each, a free list and one `next` link per slot.
#[derive(Debug)]
pub(crate) struct FramePool {
    bytes: Vec<u8>,
    lens: Vec<u16>,
    next: Vec<SlotId>,
    free: Vec<SlotId>,
    slot_len: usize,
}

impl FramePool {
    /// A pool of `count` slots (clamped to `1..NIL`) of `slot_len` bytes.
    pub(crate) fn new(count: usize, slot_len: usize) -> FramePool {
        let count = count.clamp(1, usize::from(NIL) - 1);
        FramePool {
            bytes: vec![0; count * slot_len],
            lens: vec![0; count],
            next: vec![NIL; count],
            // Reversed so that slot 0 is handed out first.
            free: (0..count as SlotId).rev().collect(),
            slot_len,
        }
    }

    /// How many slots are free.
    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    /// How many slots the pool has.
    pub(crate) fn capacity(&self) -> usize {
        self.lens.len()
    }

    /// Takes a free slot and sets its length to `len` (at most the slot size).
    pub(crate) fn alloc(&mut self, len: usize) -> Option<SlotId> {
        if len > self.slot_len {
            return None;
        }
        let id = self.free.pop()?;
        self.lens[usize::from(id)] = len as u16;
        self.next[usize::from(id)] = NIL;
        Some(id)
    }

    /// Returns a slot to the free list.
    pub(crate) fn release(&mut self, id: SlotId) {
        debug_assert!(!self.free.contains(&id));
        self.next[usize::from(id)] = NIL;
        self.free.push(id);
    }

    /// The slot's bytes (its current length).
    pub(crate) fn get(&self, id: SlotId) -> &[u8] {
        let start = usize::from(id) * self.slot_len;
        &self.bytes[start..start + usize::from(self.lens[usize::from(id)])]
    }

    /// The slot's bytes, mutable.
    pub(crate) fn get_mut(&mut self, id: SlotId) -> &mut [u8] {
        let start = usize::from(id) * self.slot_len;
        let len = usize::from(self.lens[usize::from(id)]);
        &mut self.bytes[start..start + len]
    }

    /// The link after `id` in whatever list it is on.
    pub(crate) fn next(&self, id: SlotId) -> SlotId {
        self.next[usize::from(id)]
    }

    fn set_next(&mut self, id: SlotId, next: SlotId) {
        self.next[usize::from(id)] = next;
    }
}

/// A FIFO of slots threaded through [`FramePool`]'s `next` links: no storage of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotList {
    head: SlotId,
    tail: SlotId,
    len: u16,
}

impl Default for SlotList {
    fn default() -> Self {
        SlotList { head: NIL, tail: NIL, len: 0 }
    }
}

impl SlotList {
    /// How many slots are queued.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Whether the list is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `id` (which must be on no other list).
    pub(crate) fn push_back(&mut self, pool: &mut FramePool, id: SlotId) {
        pool.set_next(id, NIL);
        if self.tail == NIL {
            self.head = id;
        } else {
            pool.set_next(self.tail, id);
        }
        self.tail = id;
        self.len += 1;
    }

    /// Removes and returns the first slot.
    pub(crate) fn pop_front(&mut self, pool: &mut FramePool) -> Option<SlotId> {
        if self.head == NIL {
            return None;
        }
        let id = self.head;
        self.head = pool.next(id);
        if self.head == NIL {
            self.tail = NIL;
        }
        pool.set_next(id, NIL);
        self.len -= 1;
        Some(id)
    }

    /// Moves every slot of `other` to the end of `self`, in order.
    pub(crate) fn append(&mut self, pool: &mut FramePool, other: &mut SlotList) {
        while let Some(id) = other.pop_front(pool) {
            self.push_back(pool, id);
        }
    }

    /// Releases every slot back to the pool; returns how many there were.
    pub(crate) fn release_all(&mut self, pool: &mut FramePool) -> usize {
        let mut n = 0;
        while let Some(id) = self.pop_front(pool) {
            pool.release(id);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_release_and_lists() {
        let mut p = FramePool::new(3, 10);
        assert_eq!(p.capacity(), 3);
        assert!(p.alloc(11).is_none());
        let a = p.alloc(4).unwrap();
        let b = p.alloc(10).unwrap();
        let c = p.alloc(1).unwrap();
        assert!(p.alloc(1).is_none());
        p.get_mut(a).copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(p.get(a), &[1, 2, 3, 4]);
        assert_eq!(p.get(b).len(), 10);
        let mut l = SlotList::default();
        l.push_back(&mut p, a);
        l.push_back(&mut p, b);
        let mut m = SlotList::default();
        m.push_back(&mut p, c);
        m.append(&mut p, &mut l);
        assert!(l.is_empty());
        assert_eq!(m.len(), 3);
        assert_eq!(m.pop_front(&mut p), Some(c));
        assert_eq!(m.release_all(&mut p), 2);
        assert_eq!(p.free_count(), 2);
        p.release(c);
        assert_eq!(p.free_count(), 3);
    }
}
