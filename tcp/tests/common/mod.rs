//! Two `TcpStack`s joined by an in-memory link with a virtual clock (a tiny simulator for the
//! engine's own tests; the full one lives in `sim/`).
#![allow(dead_code, unreachable_pub)]

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};

use joyride_ip::tcp::{TcpFlags, TcpOptions, TcpRepr};
use joyride_tcp::{Duration, Instant, SocketId, State, TcpConfig, TcpStack};

pub const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// An owned copy of a segment in flight.
#[derive(Clone, Debug)]
pub struct Seg {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub options: TcpOptions,
    pub payload: Vec<u8>,
    pub at: Instant,
}

impl Seg {
    fn from(src: Ipv4Addr, dst: Ipv4Addr, r: &TcpRepr<'_>, at: Instant) -> Seg {
        Seg {
            src,
            dst,
            src_port: r.src_port,
            dst_port: r.dst_port,
            seq: r.seq,
            ack: r.ack,
            flags: r.flags,
            window: r.window,
            options: r.options,
            payload: r.payload.to_vec(),
            at,
        }
    }

    pub fn repr(&self) -> TcpRepr<'_> {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            urgent: 0,
            options: self.options,
            payload: &self.payload,
        }
    }
}

/// What the link does with a segment.
pub enum Fate {
    Deliver,
    Drop,
    /// Deliver after this extra delay (reordering).
    Delay(Duration),
    /// Deliver twice.
    Duplicate,
}

pub type Filter = Box<dyn FnMut(&Seg) -> Fate>;

pub struct Net {
    pub a: TcpStack,
    pub b: TcpStack,
    pub now: Instant,
    pub latency: Duration,
    pub queue: VecDeque<Seg>,
    pub filter: Filter,
    /// Every segment emitted (before the filter), for assertions.
    pub log: Vec<Seg>,
    pub keep_log: bool,
    stalls: u32,
    idle: bool,
}

impl Net {
    pub fn new(cfg_a: TcpConfig, cfg_b: TcpConfig) -> Net {
        let mut a = TcpStack::new(cfg_a, [1; 16]);
        a.set_local_addrs(&[A]);
        let mut b = TcpStack::new(cfg_b, [2; 16]);
        b.set_local_addrs(&[B]);
        Net {
            a,
            b,
            now: Instant::from_millis(1000),
            latency: Duration::from_millis(5),
            queue: VecDeque::new(),
            filter: Box::new(|_| Fate::Deliver),
            log: Vec::new(),
            keep_log: true,
            stalls: 0,
            idle: false,
        }
    }

    pub fn linux() -> Net {
        Net::new(TcpConfig::linux(), TcpConfig::linux())
    }

    fn collect(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        self.a.poll_transmit(now, &mut |s, d, r| out.push(Seg::from(s, d, r, now)));
        self.b.poll_transmit(now, &mut |s, d, r| out.push(Seg::from(s, d, r, now)));
        for mut seg in out {
            if self.keep_log {
                self.log.push(seg.clone());
            }
            seg.at = now + self.latency;
            match (self.filter)(&seg) {
                Fate::Deliver => self.queue.push_back(seg),
                Fate::Drop => {}
                Fate::Delay(d) => {
                    seg.at += d;
                    self.queue.push_back(seg);
                }
                Fate::Duplicate => {
                    self.queue.push_back(seg.clone());
                    self.queue.push_back(seg);
                }
            }
        }
    }

    fn deliver(&mut self) {
        let now = self.now;
        let mut i = 0;
        while i < self.queue.len() {
            if self.queue[i].at <= now {
                let seg = self.queue.remove(i).unwrap();
                let stack = if seg.dst == A { &mut self.a } else { &mut self.b };
                stack.handle_segment(now, seg.src, seg.dst, &seg.repr());
            } else {
                i += 1;
            }
        }
    }

    /// Advance: emit what is due, deliver what arrived, move the clock to the next event.
    /// Returns false when nothing is pending at all.
    pub fn step(&mut self) -> bool {
        let before = self.now;
        self.step_inner();
        if self.now == before {
            self.stalls += 1;
            assert!(
                self.stalls < 10_000,
                "livelock: poll_at stays at {:?} with nothing to do",
                self.now
            );
        } else {
            self.stalls = 0;
        }
        !self.idle
    }

    fn step_inner(&mut self) {
        self.collect();
        self.deliver();
        self.collect();
        let next = [self.queue.iter().map(|s| s.at).min(), self.a.poll_at(), self.b.poll_at()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) => {
                if t > self.now {
                    self.now = t;
                }
                self.idle = false;
            }
            None => self.idle = true,
        }
    }

    /// Step until `cond` holds or `limit` of virtual time passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut cond: impl FnMut(&mut Net) -> bool) -> bool {
        let end = self.now + limit;
        while self.now <= end {
            if cond(self) {
                return true;
            }
            if !self.step() {
                return cond(self);
            }
        }
        cond(self)
    }

    /// Run for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            if !self.step() {
                break;
            }
        }
        if self.now < end {
            self.now = end;
        }
    }

    /// A listener on B port 80 and a connection from A; returns (a_sock, b_listener, b_conn).
    pub fn connect_pair(&mut self) -> (SocketId, SocketId, SocketId) {
        let l = self.b.socket().unwrap();
        self.b.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
        self.b.listen(l, 16).unwrap();
        let c = self.a.socket().unwrap();
        let now = self.now;
        assert_eq!(
            self.a.connect(now, c, SocketAddrV4::new(B, 80)),
            Err(joyride_tcp::TcpError::InProgress)
        );
        let mut accepted = None;
        let ok = self.run_until(Duration::from_secs(30), |n| {
            if accepted.is_none() {
                accepted = n.b.accept(l).ok().map(|(s, _)| s);
            }
            accepted.is_some() && n.a.state(c) == Ok(State::Established)
        });
        assert!(ok, "handshake did not complete");
        (c, l, accepted.unwrap())
    }
}
