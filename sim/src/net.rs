//! Two TCP stacks joined by two impaired links, driven in virtual time.
//!
//! Each [`Pair`] side is a [`TcpStack`] with its own IPv4 address. Segments a stack emits are
//! turned into real IPv4 packets ([`crate::wire::encode_tcp`], checksums computed), carried by
//! a [`Link`] (which may drop, duplicate, delay, reorder or corrupt them), parsed again on
//! arrival ([`crate::wire::decode_tcp`], checksums verified: a corrupted packet is rejected
//! here exactly as the IP layer of the service rejects it) and handed to the other stack.
//!
//! Time advances only from event to event: the next link delivery or the next stack deadline
//! ([`TcpStack::poll_at`]). Application calls are made directly on [`Pair::a`] / [`Pair::b`]
//! with [`Pair::now`]; the next step transmits whatever they caused.

use std::fmt;

use joyride_base::{Duration, Instant, Rng, SplitMix64};
use joyride_ip::Ipv4Addr;
use joyride_tcp::{TcpConfig, TcpStack};

use crate::clock::Clock;
use crate::link::{Link, LinkConfig};
use crate::pcap::{LinkType, PcapWriter};
use crate::wire;

/// Why a run stopped before its goal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimError {
    /// The virtual-time limit passed with work still pending.
    TimeLimit,
    /// A stack kept asking to be polled at the current instant without making progress.
    Stuck,
}

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SimError::TimeLimit => f.write_str("virtual time limit reached"),
            SimError::Stuck => f.write_str("a stack asks to be polled now forever (timer loop)"),
        }
    }
}

impl std::error::Error for SimError {}

/// Counters of one [`Pair`] run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PairStats {
    /// Packets handed to a stack.
    pub delivered: u64,
    /// Packets rejected on arrival (bad checksum or malformed), never seen by a stack.
    pub rejected: u64,
    /// Events processed.
    pub steps: u64,
}

/// Which side of a [`Pair`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// [`Pair::a`].
    A,
    /// [`Pair::b`].
    B,
}

/// Two stacks, two links, one virtual clock, optional pcap capture of every packet sent.
pub struct Pair {
    /// The first host's stack (address [`Pair::addr_a`]).
    pub a: TcpStack,
    /// The second host's stack (address [`Pair::addr_b`]).
    pub b: TcpStack,
    /// The first host's address.
    pub addr_a: Ipv4Addr,
    /// The second host's address.
    pub addr_b: Ipv4Addr,
    /// Carries packets from `a` to `b`.
    pub a_to_b: Link,
    /// Carries packets from `b` to `a`.
    pub b_to_a: Link,
    clock: Clock,
    capture: Option<PcapWriter<Vec<u8>>>,
    stats: PairStats,
}

impl fmt::Debug for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair")
            .field("now", &self.clock.now())
            .field("addr_a", &self.addr_a)
            .field("addr_b", &self.addr_b)
            .field("a_to_b", &self.a_to_b.stats())
            .field("b_to_a", &self.b_to_a.stats())
            .field("stats", &self.stats)
            .finish()
    }
}

/// Guard against a stack whose `poll_at` stays in the past: this many steps at one instant.
const STUCK_STEPS: u32 = 100_000;

impl Pair {
    /// Two stacks (configs `a`, `b`, addresses 10.0.0.1 and 10.0.0.2) joined by links with
    /// `link` in both directions. All randomness (ISN secrets, link impairments) derives from
    /// `seed`. Virtual time starts at 1 s.
    pub fn new(a: TcpConfig, b: TcpConfig, link: LinkConfig, seed: u64) -> Self {
        Self::with_links(a, b, link, link, seed)
    }

    /// Like [`Pair::new`] with a different configuration per direction.
    pub fn with_links(
        a: TcpConfig,
        b: TcpConfig,
        a_to_b: LinkConfig,
        b_to_a: LinkConfig,
        seed: u64,
    ) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut secret = || {
            let mut s = [0u8; 16];
            s[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            s[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            s
        };
        let addr_a = Ipv4Addr::new(10, 0, 0, 1);
        let addr_b = Ipv4Addr::new(10, 0, 0, 2);
        let mut stack_a = TcpStack::new(a, secret());
        let mut stack_b = TcpStack::new(b, secret());
        stack_a.set_local_addrs(&[addr_a]);
        stack_b.set_local_addrs(&[addr_b]);
        let seed_ab = rng.next_u64();
        let seed_ba = rng.next_u64();
        Pair {
            a: stack_a,
            b: stack_b,
            addr_a,
            addr_b,
            a_to_b: Link::new(a_to_b, seed_ab),
            b_to_a: Link::new(b_to_a, seed_ba),
            clock: Clock::new(Instant::from_millis(1_000)),
            capture: None,
            stats: PairStats::default(),
        }
    }

    /// The current virtual time.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Counters so far.
    pub fn stats(&self) -> PairStats {
        self.stats
    }

    /// The stack of `side`.
    pub fn stack(&mut self, side: Side) -> &mut TcpStack {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    /// Starts capturing every packet as it is put on a link (LINKTYPE_RAW, virtual time).
    pub fn start_capture(&mut self) {
        // Writing into a Vec cannot fail.
        self.capture = PcapWriter::new(Vec::new(), LinkType::Raw).ok();
    }

    /// The capture so far, as pcap file bytes (`None` if capture was never started).
    pub fn capture_bytes(&self) -> Option<Vec<u8>> {
        self.capture.as_ref().map(|w| w.get_ref().clone())
    }

    /// Sends whatever both stacks have due now onto the links.
    pub fn flush(&mut self) {
        let now = self.clock.now();
        let capture = &mut self.capture;
        for side in [Side::A, Side::B] {
            let (stack, link) = match side {
                Side::A => (&mut self.a, &mut self.a_to_b),
                Side::B => (&mut self.b, &mut self.b_to_a),
            };
            stack.poll_transmit(now, &mut |src, dst, seg| {
                let bytes = wire::encode_tcp(src, dst, seg);
                if let Some(w) = capture.as_mut() {
                    // Writing into a Vec cannot fail.
                    let _ = w.write_packet(now, &bytes);
                }
                link.send(now, bytes);
            });
        }
    }

    /// The time of the next event (link delivery or stack deadline), if any.
    pub fn next_event(&self) -> Option<Instant> {
        [
            self.a_to_b.next_delivery(),
            self.b_to_a.next_delivery(),
            self.a.poll_at(),
            self.b.poll_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Delivers every packet due now to its stack.
    fn deliver_due(&mut self) {
        let now = self.clock.now();
        while let Some((_, bytes)) = self.a_to_b.recv(now) {
            match wire::decode_tcp(&bytes) {
                Ok((src, dst, seg)) => {
                    self.stats.delivered += 1;
                    self.b.handle_segment(now, src, dst, &seg);
                }
                Err(_) => self.stats.rejected += 1,
            }
        }
        while let Some((_, bytes)) = self.b_to_a.recv(now) {
            match wire::decode_tcp(&bytes) {
                Ok((src, dst, seg)) => {
                    self.stats.delivered += 1;
                    self.a.handle_segment(now, src, dst, &seg);
                }
                Err(_) => self.stats.rejected += 1,
            }
        }
    }

    /// Processes the next event if it is due by `deadline`: advances the clock to it, delivers
    /// due packets, polls both stacks. `false` when nothing is due by `deadline`.
    pub fn step(&mut self, deadline: Instant) -> bool {
        self.flush();
        let Some(next) = self.next_event() else { return false };
        if next > deadline {
            return false;
        }
        self.clock.advance_to(next);
        self.deliver_due();
        self.flush();
        self.stats.steps += 1;
        true
    }

    /// Runs until no packet is in flight and no stack has a deadline, or `limit` of virtual
    /// time has passed ([`SimError::TimeLimit`]).
    pub fn run_until_idle(&mut self, limit: Duration) -> Result<(), SimError> {
        self.run_until(|_| false, limit).or_else(|e| {
            if e == SimError::TimeLimit && self.next_event().is_none() {
                Ok(())
            } else {
                Err(e)
            }
        })
    }

    /// Runs until `pred` holds (checked before each step), or the network is idle and `pred`
    /// still fails, or `limit` passes: `Err(TimeLimit)` in both of the latter cases.
    pub fn run_until(
        &mut self,
        mut pred: impl FnMut(&mut Pair) -> bool,
        limit: Duration,
    ) -> Result<(), SimError> {
        let deadline = self.clock.now() + limit;
        let mut same_instant = 0u32;
        loop {
            if pred(self) {
                return Ok(());
            }
            let before = self.clock.now();
            if !self.step(deadline) {
                if self.next_event().is_none() && pred(self) {
                    return Ok(());
                }
                return Err(SimError::TimeLimit);
            }
            if self.clock.now() == before {
                same_instant += 1;
                if same_instant > STUCK_STEPS {
                    return Err(SimError::Stuck);
                }
            } else {
                same_instant = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use joyride_tcp::{SocketId, State};
    use std::net::SocketAddrV4;

    /// Connects b → a:80 and returns (listener, server socket, client socket).
    fn connect(p: &mut Pair) -> (SocketId, SocketId, SocketId) {
        let l = p.a.socket().unwrap();
        p.a.bind(l, SocketAddrV4::new(p.addr_a, 80)).unwrap();
        p.a.listen(l, 8).unwrap();
        let c = p.b.socket().unwrap();
        let now = p.now();
        let _ = p.b.connect(now, c, SocketAddrV4::new(p.addr_a, 80));
        let mut server = None;
        p.run_until(
            |p| {
                if server.is_none() {
                    server = p.a.accept(l).ok().map(|(s, _)| s);
                }
                server.is_some() && p.b.state(c) == Ok(State::Established)
            },
            Duration::from_secs(30),
        )
        .unwrap();
        (l, server.unwrap(), c)
    }

    #[test]
    fn handshake_and_transfer_over_an_ideal_link() {
        let mut p = Pair::new(
            TcpConfig::linux(),
            TcpConfig::linux(),
            LinkConfig::ideal(Duration::from_millis(5)),
            1,
        );
        p.start_capture();
        let t0 = p.now();
        let (_, s, c) = connect(&mut p);
        // One RTT (10 ms) for the handshake.
        assert!(p.now() - t0 >= Duration::from_millis(10));
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let now = p.now();
        assert_eq!(p.b.send(now, c, &data), Ok(data.len()));
        let mut got = Vec::new();
        p.run_until(
            |p| {
                let mut buf = [0u8; 4096];
                while let Ok(n) = p.a.recv(s, &mut buf, false) {
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                got.len() >= data.len()
            },
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(got, data);
        assert_eq!(p.stats().rejected, 0);
        let pcap = p.capture_bytes().unwrap();
        assert!(pcap.len() > 24 + 10_000, "capture holds the packets");
    }
}
