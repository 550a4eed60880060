//! Arbitrary bytes as a sequence of operations on two `TcpStack`s joined by a wire: API calls
//! with arguments, inbound segments with arbitrary flags, seq/ack (relative to the live
//! connection), window, options and payload, wire faults (drop, reorder, corrupt), time
//! advances.
//!
//! Checked: nothing panics; after every operation each stack settles at the current instant
//! (`poll_at() <= now` must clear within a bounded number of `poll_transmit` calls: a timer
//! that stays in the past without progress is a livelock); every segment the engine emits
//! survives joyride-ip's emit → parse round trip unchanged and a RST carries no data.
//!
//! Build: `cd fuzz && cargo fuzz build -s none tcp_engine`;
//! run: `cargo fuzz run -s none tcp_engine -- -max_total_time=300`.
#![no_main]

use std::collections::VecDeque;
use std::net::SocketAddrV4;

use joyride_base::{Duration, Instant};
use joyride_ip::ipv4::{Ecn, IpProtocol, Ipv4Packet, Ipv4Repr};
use joyride_ip::tcp::{SackBlock, TcpFlags, TcpOptions, TcpPacket, TcpRepr};
use joyride_ip::{Checksum, Ipv4Addr};
use joyride_tcp::{CcAlgorithm, Shutdown, SockOpt, SockOptName, SocketId, TcpConfig, TcpStack};
use libfuzzer_sys::fuzz_target;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const PORT: u16 = 80;
/// Frames in flight per direction beyond this are dropped (a bounded wire).
const WIRE_LIMIT: usize = 2048;
/// `poll_transmit` calls at one instant within which a stack must stop asking to be polled.
const SETTLE_LIMIT: usize = 64;

/// The input, read front to back; zeros once exhausted.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// A sequence-space offset: mostly small, sometimes anywhere.
    fn offset(&mut self) -> u32 {
        match self.u8() % 4 {
            0 => 0,
            1 => u32::from(self.u8()),
            2 => (self.u16() as i16 as i32) as u32,
            _ => self.u32(),
        }
    }
}

/// The header fields of the last segment one stack emitted (to aim injected segments at the
/// live sequence space).
#[derive(Clone, Copy, Default)]
struct Last {
    src_port: u16,
    dst_port: u16,
    seq_end: u32,
    ack: u32,
}

struct Side {
    stack: TcpStack,
    addr: Ipv4Addr,
    /// Socket ids the application was given (from `socket` and `accept`), closed ones kept.
    socks: Vec<SocketId>,
    /// Frames this side sent, in flight to the other.
    wire: VecDeque<Vec<u8>>,
    last: Option<Last>,
}

fn encode(src: Ipv4Addr, dst: Ipv4Addr, seg: &TcpRepr<'_>) -> Vec<u8> {
    let ip = Ipv4Repr {
        src,
        dst,
        protocol: IpProtocol::Tcp,
        payload_len: seg.buffer_len(),
        ttl: 64,
        dscp: 0,
        ecn: Ecn::NotEct,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let mut buf = vec![0u8; ip.total_len()];
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), Checksum::Software)
        .expect("IPv4 emit of an engine segment");
    let h = ip.buffer_len();
    seg.emit(&mut TcpPacket::new_unchecked(&mut buf[h..]), src, dst, Checksum::Software);
    buf
}

fn decode(bytes: &[u8]) -> Option<(Ipv4Addr, Ipv4Addr, TcpRepr<'_>)> {
    let p = Ipv4Packet::new_checked(bytes).ok()?;
    let ip = Ipv4Repr::parse(&p, Checksum::Software).ok()?;
    let h = p.header_len();
    let t = TcpPacket::new_checked(bytes.get(h..h + ip.payload_len)?).ok()?;
    let seg = TcpRepr::parse(&t, ip.src, ip.dst, Checksum::Software).ok()?;
    Some((ip.src, ip.dst, seg))
}

impl Side {
    fn new(cfg: TcpConfig, secret: u8, addr: Ipv4Addr) -> Side {
        let mut stack = TcpStack::new(cfg, [secret; 16]);
        stack.add_local_addr(addr);
        Side { stack, addr, socks: Vec::new(), wire: VecDeque::new(), last: None }
    }

    /// Poll until nothing is due at `now`; panics on a livelock.
    fn settle(&mut self, now: Instant) {
        for _ in 0..SETTLE_LIMIT {
            match self.stack.poll_at() {
                Some(t) if t <= now => {}
                _ => return,
            }
            let (wire, last) = (&mut self.wire, &mut self.last);
            let me = self.addr;
            let table: Vec<_> = self.stack.connections().collect();
            self.stack.poll_transmit(now, &mut |src, dst, seg| {
                assert_eq!(src, me, "segment from a foreign address: {seg:?} to {dst}; {table:?}");
                if seg.flags.contains(TcpFlags::RST) {
                    assert!(seg.payload.is_empty(), "RST with data");
                }
                let bytes = encode(src, dst, seg);
                let (s2, d2, back) = decode(&bytes).expect("an emitted segment parses");
                assert_eq!((s2, d2), (src, dst));
                assert_eq!(back.payload, seg.payload);
                assert_eq!((back.seq, back.ack, back.flags), (seg.seq, seg.ack, seg.flags));
                let len = seg.payload.len() as u32
                    + u32::from(seg.flags.contains(TcpFlags::SYN))
                    + u32::from(seg.flags.contains(TcpFlags::FIN));
                *last = Some(Last {
                    src_port: seg.src_port,
                    dst_port: seg.dst_port,
                    seq_end: seg.seq.wrapping_add(len),
                    ack: seg.ack,
                });
                if wire.len() < WIRE_LIMIT {
                    wire.push_back(bytes);
                }
            });
        }
        let at = self.stack.poll_at();
        assert!(
            at.map_or(true, |t| t > now),
            "livelock: poll_at {at:?} <= now {now:?} after {SETTLE_LIMIT} polls"
        );
    }

    /// A socket id the application was given (closed ones included: stale ids are inputs
    /// too). Never empty: each side starts with one socket.
    fn pick(&self, input: &mut Input<'_>) -> SocketId {
        self.socks[usize::from(input.u8()) % self.socks.len()]
    }
}

/// Hand up to `max` frames `from` sent to `to` (frames that fail to parse or whose destination
/// is not `to`'s address are dropped, as the IP layer would: corruption that cancels out in
/// the checksums can rewrite the addresses).
fn deliver(now: Instant, from: &mut Side, to: &mut Side, max: usize) {
    for _ in 0..max {
        let Some(f) = from.wire.pop_front() else { return };
        if let Some((src, dst, seg)) = decode(&f).filter(|(_, dst, _)| *dst == to.addr) {
            to.stack.handle_segment(now, src, dst, &seg);
        }
    }
}

/// A segment aimed at `to`, built from what its peer last sent (or from scratch).
fn inject(
    now: Instant,
    input: &mut Input<'_>,
    peer_last: Option<Last>,
    to: &mut Side,
    from: Ipv4Addr,
) {
    let base = peer_last.unwrap_or(Last {
        src_port: input.u16(),
        dst_port: PORT,
        seq_end: input.u32(),
        ack: input.u32(),
    });
    let mode = input.u8();
    let (src_port, dst_port) = match mode % 4 {
        0 | 1 => (base.src_port, base.dst_port),
        2 => (input.u16(), PORT), // a new peer for the listener
        _ => (input.u16(), input.u16()),
    };
    let flags = TcpFlags::from_bits_truncate(input.u8());
    let seq = base.seq_end.wrapping_add(input.offset());
    let ack = base.ack.wrapping_add(input.offset());
    let window = input.u16();
    let opt = input.u8();
    let mut o = TcpOptions::default();
    if opt & 1 != 0 {
        o.mss = Some(input.u16());
    }
    if opt & 2 != 0 {
        o.window_scale = Some(input.u8() % 20);
    }
    if opt & 4 != 0 {
        o.sack_permitted = true;
    }
    if opt & 8 != 0 {
        o.timestamps = Some((input.u32(), input.u32()));
    }
    if opt & 16 != 0 {
        let n = usize::from(input.u8() % 4) + 1;
        for b in o.sack_blocks.iter_mut().take(n) {
            let l = base.ack.wrapping_add(input.offset());
            *b = SackBlock { left: l, right: l.wrapping_add(input.offset()) };
        }
        o.sack_len = n as u8;
    }
    let len = if opt & 32 != 0 { usize::from(input.u16() % 3000) } else { usize::from(input.u8()) };
    let payload = vec![input.u8(); len];
    let seg = TcpRepr {
        src_port,
        dst_port,
        seq,
        ack,
        flags,
        window,
        urgent: if opt & 64 != 0 { input.u16() } else { 0 },
        options: o,
        payload: &payload,
    };
    to.stack.handle_segment(now, from, to.addr, &seg);
}

fn api(now: Instant, input: &mut Input<'_>, me: &mut Side, peer: Ipv4Addr, buf: &mut [u8]) {
    let s = me.pick(input);
    let st = &mut me.stack;
    match input.u8() % 20 {
        0 => {
            if let Ok(id) = st.socket() {
                if me.socks.len() < 32 {
                    me.socks.push(id);
                }
            }
        }
        1 => {
            let port = if input.bool() { PORT } else { input.u16() };
            let ip = if input.bool() { me.addr } else { Ipv4Addr::UNSPECIFIED };
            let _ = st.bind(s, SocketAddrV4::new(ip, port));
        }
        2 => {
            let _ = st.listen(s, u32::from(input.u8() % 8));
        }
        3 => {
            if let Ok((c, _)) = st.accept(s) {
                if me.socks.len() < 32 {
                    me.socks.push(c);
                }
            }
        }
        4 => {
            let port = if input.bool() { PORT } else { input.u16() };
            let _ = st.connect(now, s, SocketAddrV4::new(peer, port));
        }
        5 | 6 => {
            let n = usize::from(input.u16()) % buf.len();
            let _ = st.send(now, s, &buf[..n]);
        }
        7 | 8 => {
            let n = usize::from(input.u16()) % buf.len();
            let peek = input.u8() % 4 == 0;
            let _ = st.recv(s, &mut buf[..n], peek);
        }
        9 => {
            let how =
                [Shutdown::Read, Shutdown::Write, Shutdown::Both][usize::from(input.u8() % 3)];
            let _ = st.shutdown(now, s, how);
        }
        10 => {
            let _ = st.close(now, s);
        }
        11 => {
            let _ = st.abort(now, s);
        }
        12 | 13 => {
            let v = input.u32();
            let d = Duration::from_millis(u64::from(v % 100_000));
            let opt = match input.u8() % 15 {
                0 => SockOpt::ReuseAddr(v & 1 == 1),
                1 => SockOpt::KeepAlive(v & 1 == 1),
                2 => SockOpt::Linger(if v & 1 == 1 {
                    Some(Duration::from_secs(u64::from(v % 3)))
                } else {
                    None
                }),
                3 => SockOpt::RecvBuffer(v as usize % (1 << 22)),
                4 => SockOpt::SendBuffer(v as usize % (1 << 22)),
                5 => SockOpt::NoDelay(v & 1 == 1),
                6 => SockOpt::Cork(v & 1 == 1),
                7 => SockOpt::MaxSegment(v as u16),
                8 => SockOpt::KeepIdle(d),
                9 => SockOpt::KeepInterval(d),
                10 => SockOpt::KeepCount(v % 20),
                11 => SockOpt::UserTimeout(d),
                12 => SockOpt::Congestion(if v & 1 == 1 {
                    CcAlgorithm::Cubic
                } else {
                    CcAlgorithm::NewReno
                }),
                13 => SockOpt::QuickAck(v & 1 == 1),
                _ => SockOpt::NoDelay(false),
            };
            let _ = st.set_option(s, opt);
        }
        14 => {
            for name in [
                SockOptName::RecvBuffer,
                SockOptName::SendBuffer,
                SockOptName::MaxSegment,
                SockOptName::Congestion,
            ] {
                let _ = st.get_option(s, name);
            }
        }
        15 => {
            let _ = (st.readiness(s), st.info(s), st.state(s), st.take_error(s));
            let _ = (st.local_addr(s), st.peer_addr(s));
            let _ = st.connections().count();
        }
        16 => {
            // tcpdrop-style: drop a connection of the table by its addresses.
            let entries: Vec<_> = st.connections().collect();
            if !entries.is_empty() {
                let e = entries[usize::from(input.u8()) % entries.len()];
                let _ = st.drop_connection(now, e.local, e.remote);
            }
        }
        17 => {
            let name = [
                "net.inet.tcp.insecure_rst",
                "net.inet.tcp.insecure_syn",
                "net.inet.tcp.drop_synfin",
                "net.inet.tcp.sack.enable",
                "net.inet.tcp.rfc1323",
                "net.inet.tcp.syncookies",
            ][usize::from(input.u8()) % 6];
            let _ = st.set_tunable(name, &(input.u8() % 4).to_string());
        }
        _ => {
            let _ = st.send(now, s, &buf[..usize::from(input.u8())]);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let head = input.u8();
    let mut cfg = if head & 1 == 0 { TcpConfig::linux() } else { TcpConfig::freebsd() };
    cfg.timestamps = head & 2 == 0;
    cfg.sack = head & 4 == 0;
    if head & 8 != 0 {
        cfg.window_scale = None;
    }
    if head & 16 != 0 {
        // Small buffers reach window edges, zero windows and persist quickly.
        cfg.recv_buffer = 2048;
        cfg.send_buffer = 2048;
    }
    if head & 32 != 0 {
        cfg.syn_backlog = 1; // SYN cookies
    }
    let mut a = Side::new(cfg.clone(), 1, A);
    let mut b = Side::new(cfg, 2, B);
    let mut now = Instant::from_millis(1000);
    // A listener on a:80 and a client on b connecting to it.
    let l = a.stack.socket().unwrap();
    a.stack.bind(l, SocketAddrV4::new(A, PORT)).unwrap();
    a.stack.listen(l, 4).unwrap();
    a.socks.push(l);
    let c = b.stack.socket().unwrap();
    let _ = b.stack.connect(now, c, SocketAddrV4::new(A, PORT));
    b.socks.push(c);
    let mut buf = vec![0x5au8; 70_000];
    let mut ops = 0;
    while !input.is_empty() && ops < 2_000 {
        ops += 1;
        let (me, other) = if input.bool() { (&mut a, &mut b) } else { (&mut b, &mut a) };
        match input.u8() % 12 {
            0..=2 => {
                let max = usize::from(input.u8()) + 1;
                deliver(now, other, me, max);
                deliver(now, me, other, max);
            }
            3 => {
                other.wire.pop_front();
            }
            4 => {
                if let Some(f) = other.wire.pop_front() {
                    other.wire.push_back(f);
                }
            }
            5 => {
                if let Some(f) = other.wire.front_mut() {
                    let i = usize::from(input.u16()) % f.len();
                    f[i] ^= 1 << (input.u8() % 8);
                }
            }
            6 | 7 => {
                let (peer_last, from) = (other.last, other.addr);
                inject(now, &mut input, peer_last, me, from);
            }
            8 => {
                now = now
                    + match input.u8() % 4 {
                        0 => Duration::from_micros(u64::from(input.u16())),
                        1 => Duration::from_millis(u64::from(input.u16())),
                        2 => Duration::from_secs(u64::from(input.u16())),
                        _ => Duration::ZERO,
                    };
            }
            9 => {
                // Jump to the next deadline of either stack.
                let next = [a.stack.poll_at(), b.stack.poll_at()].into_iter().flatten().min();
                if let Some(t) = next {
                    if t > now && t < Instant::FAR_FUTURE {
                        now = t;
                    }
                }
            }
            _ => {
                let peer = other.addr;
                api(now, &mut input, me, peer, &mut buf);
            }
        }
        a.settle(now);
        b.settle(now);
    }
});
