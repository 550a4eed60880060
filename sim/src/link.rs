//! A one-way link with seeded impairments: delay, jitter, bandwidth, loss, duplication,
//! reordering and bit corruption.
//!
//! Every random choice comes from the link's own [`SplitMix64`], so a run is fixed by its seed.
//! Frames are opaque bytes (an IPv4 packet or an Ethernet frame); the link never parses them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use joyride_base::{Duration, Instant, Rng, SplitMix64};

/// What a [`Link`] does to the frames it carries. Probabilities are per frame, in `0.0..=1.0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConfig {
    /// Propagation delay every frame pays.
    pub delay: Duration,
    /// Extra delay, uniform in `0..=jitter`, drawn per frame. Jitter alone never reorders:
    /// frames not picked for reordering leave in the order they entered.
    pub jitter: Duration,
    /// Bits per second; `0` means infinitely fast (no serialization delay, no queueing).
    pub bandwidth_bps: u64,
    /// Probability that a frame is dropped.
    pub loss: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back by up to `reorder_delay`, letting later frames
    /// overtake it.
    pub reorder: f64,
    /// The largest extra hold-back for a reordered frame.
    pub reorder_delay: Duration,
    /// Probability that one random bit of a frame is flipped.
    pub corrupt: f64,
    /// Frames waiting for the wire beyond this many are dropped (tail drop); `0` is unbounded.
    pub queue_limit: usize,
}

impl LinkConfig {
    /// A perfect link with the given one-way delay.
    pub const fn ideal(delay: Duration) -> Self {
        LinkConfig {
            delay,
            jitter: Duration::ZERO,
            bandwidth_bps: 0,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
            queue_limit: 0,
        }
    }
}

impl Default for LinkConfig {
    /// A perfect 1 ms link.
    fn default() -> Self {
        LinkConfig::ideal(Duration::from_millis(1))
    }
}

/// Counters of what a [`Link`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames handed to [`Link::send`].
    pub sent: u64,
    /// Frames handed out by [`Link::recv`] (duplicates included).
    pub delivered: u64,
    /// Frames dropped by `loss` or by the queue limit.
    pub dropped: u64,
    /// Extra copies made by `duplicate`.
    pub duplicated: u64,
    /// Frames held back by `reorder`.
    pub reordered: u64,
    /// Frames with a flipped bit.
    pub corrupted: u64,
    /// Frames with a flipped bit that have been handed out by [`Link::recv`].
    pub corrupted_delivered: u64,
}

/// A frame in flight: ordered by delivery time, then by entry order (so equal times are FIFO).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    order: u64,
    frame: Vec<u8>,
    corrupted: bool,
}

/// A one-way link. Put frames in with [`Link::send`]; take them out, when due, with
/// [`Link::recv`]; [`Link::next_delivery`] says when the next one is due.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    rng: SplitMix64,
    queue: BinaryHeap<Reverse<InFlight>>,
    /// When the transmitter finishes serializing what it has accepted so far.
    busy_until: Instant,
    /// The latest delivery time given to an in-order frame (keeps jitter FIFO).
    last_in_order: Instant,
    order: u64,
    stats: LinkStats,
}

impl Link {
    /// A link with `config` whose random choices all come from `seed`.
    pub fn new(config: LinkConfig, seed: u64) -> Self {
        Link {
            config,
            rng: SplitMix64::new(seed),
            queue: BinaryHeap::new(),
            busy_until: Instant::ZERO,
            last_in_order: Instant::ZERO,
            order: 0,
            stats: LinkStats::default(),
        }
    }

    /// The link's configuration.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Changes the configuration for frames sent from now on (frames in flight keep theirs).
    pub fn set_config(&mut self, config: LinkConfig) {
        self.config = config;
    }

    /// What the link has done so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Frames in flight.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    fn uniform(&mut self, max: Duration) -> Duration {
        let max_ns = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if max_ns == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.rng.below(max_ns.saturating_add(1)))
    }

    /// Serialization time of `len` bytes at the configured bandwidth.
    fn serialization(&self, len: usize) -> Duration {
        if self.config.bandwidth_bps == 0 {
            return Duration::ZERO;
        }
        let bits = (len as u128) * 8;
        let nanos = bits * 1_000_000_000 / u128::from(self.config.bandwidth_bps);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Puts `frame` on the link at time `now`. The frame may be dropped, corrupted, duplicated
    /// or delayed according to the configuration.
    pub fn send(&mut self, now: Instant, frame: Vec<u8>) {
        self.stats.sent += 1;
        if self.config.queue_limit != 0 && self.queue.len() >= self.config.queue_limit {
            self.stats.dropped += 1;
            return;
        }
        if self.rng.chance(self.config.loss) {
            self.stats.dropped += 1;
            return;
        }
        // Bandwidth: the frame leaves the transmitter once everything before it has.
        let start = if self.busy_until > now { self.busy_until } else { now };
        self.busy_until = start + self.serialization(frame.len());
        let copies = if self.rng.chance(self.config.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut frame = frame.clone();
            let corrupted = !frame.is_empty() && self.rng.chance(self.config.corrupt);
            if corrupted {
                let bit = self.rng.below(frame.len() as u64 * 8);
                frame[(bit / 8) as usize] ^= 1 << (bit % 8);
                self.stats.corrupted += 1;
            }
            let jitter = self.config.jitter;
            let mut at = self.busy_until + self.config.delay + self.uniform(jitter);
            if self.rng.chance(self.config.reorder) {
                let extra = self.config.reorder_delay;
                at += self.uniform(extra);
                self.stats.reordered += 1;
            } else {
                if at < self.last_in_order {
                    at = self.last_in_order;
                }
                self.last_in_order = at;
            }
            self.order += 1;
            self.queue.push(Reverse(InFlight { at, order: self.order, frame, corrupted }));
        }
    }

    /// When the next frame is due, if any is in flight.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.at)
    }

    /// The next frame due at or before `now`, with its delivery time.
    pub fn recv(&mut self, now: Instant) -> Option<(Instant, Vec<u8>)> {
        if self.next_delivery()? > now {
            return None;
        }
        let Reverse(f) = self.queue.pop()?;
        self.stats.delivered += 1;
        self.stats.corrupted_delivered += u64::from(f.corrupted);
        Some((f.at, f.frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(link: &mut Link) -> Vec<(Instant, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(t) = link.next_delivery() {
            out.push(link.recv(t).unwrap());
        }
        out
    }

    #[test]
    fn ideal_link_delays_in_order() {
        let mut l = Link::new(LinkConfig::ideal(Duration::from_millis(3)), 1);
        for i in 0..10u8 {
            l.send(Instant::from_millis(u64::from(i)), vec![i]);
        }
        assert!(l.recv(Instant::from_millis(2)).is_none());
        let out = drain(&mut l);
        assert_eq!(out.len(), 10);
        for (i, (at, f)) in out.iter().enumerate() {
            assert_eq!(f, &vec![i as u8]);
            assert_eq!(*at, Instant::from_millis(i as u64 + 3));
        }
    }

    #[test]
    fn bandwidth_serializes() {
        // 1 Mb/s: 125 bytes take 1 ms on the wire.
        let cfg = LinkConfig { bandwidth_bps: 1_000_000, ..LinkConfig::ideal(Duration::ZERO) };
        let mut l = Link::new(cfg, 1);
        l.send(Instant::ZERO, vec![0; 125]);
        l.send(Instant::ZERO, vec![0; 125]);
        let out = drain(&mut l);
        assert_eq!(out[0].0, Instant::from_millis(1));
        assert_eq!(out[1].0, Instant::from_millis(2));
    }

    #[test]
    fn impairments_follow_probabilities_and_seed() {
        let cfg = LinkConfig {
            jitter: Duration::from_millis(2),
            loss: 0.2,
            duplicate: 0.1,
            reorder: 0.1,
            reorder_delay: Duration::from_millis(20),
            corrupt: 0.1,
            ..LinkConfig::ideal(Duration::from_millis(5))
        };
        let run = |seed| {
            let mut l = Link::new(cfg, seed);
            for i in 0..10_000u32 {
                l.send(Instant::from_micros(u64::from(i) * 100), i.to_be_bytes().to_vec());
            }
            (drain(&mut l), l.stats())
        };
        let (out, stats) = run(42);
        assert_eq!(run(42).0, out, "same seed, same run");
        assert_ne!(run(43).0, out);
        assert!((1_700..2_300).contains(&stats.dropped), "{stats:?}");
        assert!((600..1_000).contains(&stats.duplicated), "{stats:?}");
        assert!((600..1_100).contains(&stats.corrupted), "{stats:?}");
        assert_eq!(stats.delivered as usize, out.len());
        assert_eq!(out.len() as u64, stats.sent - stats.dropped + stats.duplicated);
        // Reordering happened, and delivery times never go backwards.
        let ids: Vec<u32> =
            out.iter().map(|(_, f)| u32::from_be_bytes([f[0], f[1], f[2], f[3]])).collect();
        assert!(ids.windows(2).any(|w| w[0] > w[1]));
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn corruption_flips_exactly_one_bit() {
        let cfg = LinkConfig { corrupt: 1.0, ..LinkConfig::ideal(Duration::ZERO) };
        let mut l = Link::new(cfg, 9);
        let original: Vec<u8> = (0..64).collect();
        for _ in 0..100 {
            l.send(Instant::ZERO, original.clone());
        }
        for (_, f) in drain(&mut l) {
            let bits: u32 = f.iter().zip(&original).map(|(a, b)| (a ^ b).count_ones()).sum();
            assert_eq!(bits, 1);
        }
        assert_eq!(l.stats().corrupted, 100);
        assert_eq!(l.stats().corrupted_delivered, 100);
    }

    #[test]
    fn queue_limit_tail_drops() {
        let cfg = LinkConfig {
            bandwidth_bps: 8_000,
            queue_limit: 3,
            ..LinkConfig::ideal(Duration::ZERO)
        };
        let mut l = Link::new(cfg, 7);
        for _ in 0..10 {
            l.send(Instant::ZERO, vec![0; 10]);
        }
        assert_eq!(l.in_flight(), 3);
        assert_eq!(l.stats().dropped, 7);
    }
}
