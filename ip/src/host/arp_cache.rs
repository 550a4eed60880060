//! The ARP translation table (RFC 826) with the timers RFC 1122 §2.3.2.1 asks for, and the
//! bounded queue of packets that wait for a resolution (RFC 1122 §2.3.2.2).
//!
//! Entries move through three states, after Linux's neighbour state machine, reduced:
//!
//! - `Incomplete`: a broadcast request is out; packets for the address queue on the entry (at
//!   most [`ArpConfig::queue_per_dest`], the oldest dropped first, RFC 1122 §2.3.2.2 "SHOULD
//!   save at least one (the latest) packet"). Requests repeat every
//!   [`ArpConfig::retransmit`] up to [`ArpConfig::max_tries`] times (RFC 1122 §2.3.2.1 asks
//!   for a rate limit of one per second per destination); then the entry and its queue are
//!   dropped.
//! - `Reachable`: the MAC is known until [`ArpConfig::reachable`] passes (RFC 1122 §2.3.2.1:
//!   entries MUST time out).
//! - `Probe`: a reachable entry that expired while in use is still used while unicast
//!   requests to its MAC re-confirm it (the same tries); unanswered, it is removed. An
//!   expired entry nobody used is removed at once.
//!
//! The table holds at most [`ArpConfig::capacity`] entries; a new one evicts the least
//! recently used, so a peer that makes the host resolve many addresses cannot grow memory.

use alloc::vec::Vec;

use joyride_base::{Duration, Instant};

use super::pool::{FramePool, SlotId, SlotList};
use crate::ethernet::EthernetAddress;
use crate::Ipv4Addr;

/// ARP cache limits and timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpConfig {
    /// Most entries in the table (Linux `gc_thresh3` is 1024; 256 here by default).
    pub capacity: usize,
    /// How long a confirmed entry is used before it is re-confirmed (60 s by default).
    pub reachable: Duration,
    /// Interval between requests for one address (RFC 1122 §2.3.2.1: at most one per second).
    pub retransmit: Duration,
    /// Requests sent for one resolution before it fails (Linux `mcast_solicit` = 3).
    pub max_tries: u8,
    /// Packets kept per unresolved address; older ones are dropped first.
    pub queue_per_dest: usize,
    /// A confirmed entry is not replaced by a different MAC within this time of its last
    /// update (Linux `locktime`, 1 s): the first answer wins against a racing forged one.
    pub locktime: Duration,
}

impl Default for ArpConfig {
    fn default() -> Self {
        ArpConfig {
            capacity: 256,
            reachable: Duration::from_secs(60),
            retransmit: Duration::from_secs(1),
            max_tries: 3,
            // One full-size UDP datagram (64 KiB) at a 1500-byte MTU is 45 fragments; keep
            // enough that the first datagram to a new neighbour is not cut.
            queue_per_dest: 48,
            locktime: Duration::from_secs(1),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Incomplete { tries: u8, next: Instant },
    Reachable { mac: EthernetAddress, until: Instant, used: bool },
    Probe { mac: EthernetAddress, tries: u8, next: Instant },
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    ip: Ipv4Addr,
    state: State,
    pending: SlotList,
    last_used: Instant,
    updated: Instant,
}

/// What a lookup found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The MAC to send to.
    Known(EthernetAddress),
    /// Not resolved (yet): queue the packet with `ArpCache::enqueue`.
    Unresolved,
}

/// The outcome of `ArpCache::enqueue`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Enqueued {
    /// A new resolution started: send a broadcast request for the address now.
    pub(crate) send_request: bool,
    /// Packets dropped to make room (the oldest of this address's queue, or the queue of an
    /// evicted entry).
    pub(crate) dropped: usize,
    /// An entry was evicted to make room.
    pub(crate) evicted: bool,
}

/// The outcome of [`ArpCache::learn`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Learned {
    /// The entry now holds the MAC; these packets waited for it and can go.
    Updated(SlotList),
    /// The entry was confirmed less than [`ArpConfig::locktime`] ago with another MAC: kept.
    Locked,
    /// No entry for the address and `create` was false: nothing changed.
    Absent,
}

/// A timer's consequence, reported by `ArpCache::poll`.
#[derive(Debug, PartialEq, Eq)]
pub enum ArpEvent {
    /// Send a request for `ip`: broadcast when `to` is `None`, else unicast to `to` (probe).
    Request {
        /// Address to resolve.
        ip: Ipv4Addr,
        /// Unicast target MAC for a re-confirmation probe.
        to: Option<EthernetAddress>,
    },
    /// Resolution of `ip` failed; `dropped` packets that waited for it were released.
    Failed {
        /// The address.
        ip: Ipv4Addr,
        /// Packets dropped.
        dropped: usize,
    },
    /// An entry timed out and was removed (unused, or its probes went unanswered).
    Expired {
        /// The address.
        ip: Ipv4Addr,
    },
}

/// The bounded ARP table.
#[derive(Debug)]
pub struct ArpCache {
    config: ArpConfig,
    entries: Vec<Entry>,
    /// Index of the last entry a lookup hit: most traffic goes to one neighbour (the gateway).
    last_hit: usize,
}

impl ArpCache {
    /// An empty table with room for `config.capacity` entries allocated now.
    pub fn new(config: ArpConfig) -> ArpCache {
        let capacity = config.capacity.max(1);
        ArpCache {
            config: ArpConfig { capacity, max_tries: config.max_tries.max(1), ..config },
            entries: Vec::with_capacity(capacity),
            last_hit: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ArpConfig {
        &self.config
    }

    /// How many entries the table holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many packets wait for resolution, over all entries.
    pub fn pending(&self) -> usize {
        self.entries.iter().map(|e| e.pending.len()).sum()
    }

    /// The MAC for `ip` if the table holds a usable one (reachable or being probed).
    pub fn get(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        let e = self.entries.iter().find(|e| e.ip == ip)?;
        match e.state {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some(mac),
            State::Incomplete { .. } => None,
        }
    }

    fn find(&mut self, ip: Ipv4Addr) -> Option<usize> {
        if self.entries.get(self.last_hit).is_some_and(|e| e.ip == ip) {
            return Some(self.last_hit);
        }
        let i = self.entries.iter().position(|e| e.ip == ip)?;
        self.last_hit = i;
        Some(i)
    }

    /// Looks `ip` up for sending a packet at `now`, marking the entry used.
    pub(crate) fn lookup(&mut self, now: Instant, ip: Ipv4Addr) -> Lookup {
        let Some(i) = self.find(ip) else { return Lookup::Unresolved };
        let e = &mut self.entries[i];
        e.last_used = now;
        match &mut e.state {
            State::Reachable { mac, until, used } if now < *until => {
                *used = true;
                Lookup::Known(*mac)
            }
            // Expired but not yet polled: still use it; the next poll starts a probe.
            State::Reachable { mac, used, .. } => {
                *used = true;
                Lookup::Known(*mac)
            }
            State::Probe { mac, .. } => Lookup::Known(*mac),
            State::Incomplete { .. } => Lookup::Unresolved,
        }
    }

    /// Parks `slot` (a frame for `ip` whose destination MAC is still to be filled in) until
    /// `ip` resolves, creating an `Incomplete` entry (and asking for a request) when there is
    /// none. Older packets beyond [`ArpConfig::queue_per_dest`] are released.
    pub(crate) fn enqueue(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        slot: SlotId,
        pool: &mut FramePool,
    ) -> Enqueued {
        let mut out = Enqueued::default();
        let i = match self.find(ip) {
            Some(i) => i,
            None => {
                if self.entries.len() >= self.config.capacity {
                    out.dropped += self.evict(pool);
                    out.evicted = true;
                }
                // RFC 826 / RFC 1122 §2.3.2.1: first request now, the next after the
                // retransmit interval.
                self.entries.push(Entry {
                    ip,
                    state: State::Incomplete { tries: 1, next: now + self.config.retransmit },
                    pending: SlotList::default(),
                    last_used: now,
                    updated: now,
                });
                out.send_request = true;
                self.entries.len() - 1
            }
        };
        let limit = self.config.queue_per_dest;
        let e = &mut self.entries[i];
        e.last_used = now;
        if limit == 0 {
            pool.release(slot);
            out.dropped += 1;
            return out;
        }
        e.pending.push_back(pool, slot);
        // RFC 1122 §2.3.2.2: keep the latest packets; drop the oldest beyond the limit.
        while e.pending.len() > limit {
            if let Some(old) = e.pending.pop_front(pool) {
                pool.release(old);
                out.dropped += 1;
            }
        }
        out
    }

    /// Removes the least recently used entry, releasing its queue; returns packets dropped.
    fn evict(&mut self, pool: &mut FramePool) -> usize {
        let Some((victim, _)) = self.entries.iter().enumerate().min_by_key(|(_, e)| e.last_used)
        else {
            return 0;
        };
        self.remove(victim, pool)
    }

    fn remove(&mut self, i: usize, pool: &mut FramePool) -> usize {
        let mut e = self.entries.swap_remove(i);
        self.last_hit = 0;
        e.pending.release_all(pool)
    }

    /// Records that `ip` is at `mac` (RFC 826 "Packet Reception"): an existing entry is
    /// updated (the merge flag), a missing one is created only when `create` is true (the
    /// packet was a request for our address). Returns the packets that waited, whose
    /// destination MAC the caller fills in before transmitting them.
    pub(crate) fn learn(
        &mut self,
        now: Instant,
        ip: Ipv4Addr,
        mac: EthernetAddress,
        create: bool,
        pool: &mut FramePool,
    ) -> Learned {
        let until = now + self.config.reachable;
        let Some(i) = self.find(ip) else {
            if !create {
                return Learned::Absent;
            }
            if self.entries.len() >= self.config.capacity {
                self.evict(pool);
            }
            self.entries.push(Entry {
                ip,
                state: State::Reachable { mac, until, used: false },
                pending: SlotList::default(),
                last_used: now,
                updated: now,
            });
            return Learned::Updated(SlotList::default());
        };
        let locktime = self.config.locktime;
        let e = &mut self.entries[i];
        let old = match e.state {
            State::Reachable { mac, .. } | State::Probe { mac, .. } => Some(mac),
            State::Incomplete { .. } => None,
        };
        // Linux `locktime`: within it of the last confirmation a different MAC is ignored.
        if old.is_some_and(|m| m != mac) && now < e.updated + locktime {
            return Learned::Locked;
        }
        e.state = State::Reachable { mac, until, used: false };
        e.updated = now;
        Learned::Updated(core::mem::take(&mut e.pending))
    }

    /// Runs the timers due at `now`, reporting each consequence to `event`.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        event: &mut dyn FnMut(ArpEvent),
    ) {
        let cfg = self.config;
        let mut i = 0;
        while i < self.entries.len() {
            let e = &mut self.entries[i];
            let ip = e.ip;
            match e.state {
                State::Incomplete { tries, next } if now >= next => {
                    if tries >= cfg.max_tries {
                        let dropped = self.remove(i, pool);
                        event(ArpEvent::Failed { ip, dropped });
                        continue;
                    }
                    e.state = State::Incomplete { tries: tries + 1, next: now + cfg.retransmit };
                    event(ArpEvent::Request { ip, to: None });
                }
                State::Reachable { mac, until, used } if now >= until => {
                    if !used {
                        self.remove(i, pool);
                        event(ArpEvent::Expired { ip });
                        continue;
                    }
                    e.state = State::Probe { mac, tries: 1, next: now + cfg.retransmit };
                    event(ArpEvent::Request { ip, to: Some(mac) });
                }
                State::Probe { mac, tries, next } if now >= next => {
                    if tries >= cfg.max_tries {
                        self.remove(i, pool);
                        event(ArpEvent::Expired { ip });
                        continue;
                    }
                    e.state = State::Probe { mac, tries: tries + 1, next: now + cfg.retransmit };
                    event(ArpEvent::Request { ip, to: Some(mac) });
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// The earliest instant `Self::poll` has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        self.entries
            .iter()
            .map(|e| match e.state {
                State::Incomplete { next, .. } | State::Probe { next, .. } => next,
                State::Reachable { until, .. } => until,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xa]);
    const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xb]);

    fn ip(n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, n)
    }

    fn secs(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    fn events(c: &mut ArpCache, now: Instant, pool: &mut FramePool) -> Vec<ArpEvent> {
        let mut v = Vec::new();
        c.poll(now, pool, &mut |e| v.push(e));
        v
    }

    #[test]
    fn resolve_then_expire_unused() {
        let mut pool = FramePool::new(8, 64);
        let mut c = ArpCache::new(ArpConfig::default());
        assert_eq!(c.lookup(secs(0), ip(1)), Lookup::Unresolved);
        let s = pool.alloc(10).unwrap();
        let q = c.enqueue(secs(0), ip(1), s, &mut pool);
        assert!(q.send_request && q.dropped == 0);
        let s2 = pool.alloc(10).unwrap();
        assert!(!c.enqueue(secs(0), ip(1), s2, &mut pool).send_request);
        assert_eq!(c.pending(), 2);
        let Learned::Updated(mut list) = c.learn(secs(0), ip(1), MAC_A, false, &mut pool) else {
            panic!("not updated")
        };
        assert_eq!(list.pop_front(&mut pool), Some(s));
        assert_eq!(list.pop_front(&mut pool), Some(s2));
        assert_eq!(c.lookup(secs(1), ip(1)), Lookup::Known(MAC_A));
        // Used after confirmation → probe on expiry (unicast), then removal.
        assert_eq!(c.poll_at(), Some(secs(60)));
        assert_eq!(
            events(&mut c, secs(60), &mut pool),
            [ArpEvent::Request { ip: ip(1), to: Some(MAC_A) }]
        );
        assert_eq!(c.get(ip(1)), Some(MAC_A));
        events(&mut c, secs(61), &mut pool);
        events(&mut c, secs(62), &mut pool);
        assert_eq!(events(&mut c, secs(63), &mut pool), [ArpEvent::Expired { ip: ip(1) }]);
        assert!(c.is_empty());
        // Unused entries go at once.
        c.learn(secs(100), ip(2), MAC_A, true, &mut pool);
        assert_eq!(events(&mut c, secs(160), &mut pool), [ArpEvent::Expired { ip: ip(2) }]);
    }

    #[test]
    fn retransmits_then_fails_dropping_the_queue() {
        let mut pool = FramePool::new(8, 64);
        let mut c = ArpCache::new(ArpConfig::default());
        let s = pool.alloc(1).unwrap();
        c.enqueue(secs(0), ip(1), s, &mut pool);
        assert!(events(&mut c, Instant::from_millis(999), &mut pool).is_empty());
        assert_eq!(events(&mut c, secs(1), &mut pool), [ArpEvent::Request { ip: ip(1), to: None }]);
        assert_eq!(events(&mut c, secs(2), &mut pool), [ArpEvent::Request { ip: ip(1), to: None }]);
        assert_eq!(
            events(&mut c, secs(3), &mut pool),
            [ArpEvent::Failed { ip: ip(1), dropped: 1 }]
        );
        assert_eq!(pool.free_count(), 8);
        assert!(c.is_empty() && c.poll_at().is_none());
    }

    #[test]
    fn queue_and_table_are_bounded() {
        let mut pool = FramePool::new(16, 64);
        let cfg = ArpConfig { capacity: 2, queue_per_dest: 3, ..ArpConfig::default() };
        let mut c = ArpCache::new(cfg);
        let mut dropped = 0;
        for _ in 0..5 {
            let s = pool.alloc(1).unwrap();
            dropped += c.enqueue(secs(0), ip(1), s, &mut pool).dropped;
        }
        assert_eq!((dropped, c.pending()), (2, 3));
        let s = pool.alloc(1).unwrap();
        c.enqueue(secs(1), ip(2), s, &mut pool);
        let s = pool.alloc(1).unwrap();
        let q = c.enqueue(secs(2), ip(3), s, &mut pool);
        // ip(1) was least recently used: evicted with its 3 packets.
        assert!(q.evicted && q.dropped == 3);
        assert_eq!(c.len(), 2);
        assert_eq!(pool.free_count(), 16 - 2);
    }

    #[test]
    fn locktime_and_merge() {
        let mut pool = FramePool::new(4, 64);
        let mut c = ArpCache::new(ArpConfig::default());
        assert_eq!(c.learn(secs(0), ip(1), MAC_A, false, &mut pool), Learned::Absent);
        assert!(c.is_empty());
        assert!(matches!(c.learn(secs(0), ip(1), MAC_A, true, &mut pool), Learned::Updated(_)));
        assert_eq!(
            c.learn(Instant::from_millis(500), ip(1), MAC_B, false, &mut pool),
            Learned::Locked
        );
        assert_eq!(c.get(ip(1)), Some(MAC_A));
        assert!(matches!(c.learn(secs(2), ip(1), MAC_B, false, &mut pool), Learned::Updated(_)));
        assert_eq!(c.get(ip(1)), Some(MAC_B));
    }
}
