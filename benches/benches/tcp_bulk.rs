//! Bulk TCP transfer between two stacks in one thread, joined by a lossless in-memory link:
//! Joyride's `TcpStack` pair against smoltcp (`Interface` + two `tcp::Socket`s over an
//! in-memory `phy::Device`, as in its loopback example) in the same run.
//!
//! Per segment both do the work a host does: the application's `send` copy, the engine's
//! output, IPv4 + TCP emit with software checksums, parse with checksum verification, the
//! engine's input, and the application's `recv` copy — sender and receiver together, on one
//! core. MTU 1500, no TCP timestamps on either side, so data segments carry 1460 bytes.
//!
//! Run: `cargo bench -p joyride-benches --bench tcp_bulk`. Throughput is reported per byte;
//! ns per 1460-byte segment = time per iteration / (`BYTES` / 1460).
//!
//! Instruction counts (repeatable where wall time is not):
//! `TCP_BULK_ONLY=joyride|joyride_idle|smoltcp valgrind --tool=callgrind --toggle-collect='*::transfer'
//! target/release/deps/tcp_bulk-<hash>` runs 16 iterations of one stack outside criterion
//! and prints the segment count; callgrind's total / segments is the cost per segment.
#![allow(missing_docs)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use criterion::{black_box, criterion_group, Criterion, Throughput};
use joyride_base::{Duration, Instant};
use joyride_ip::ipv4::{Ecn, IpProtocol, Ipv4Packet, Ipv4Repr};
use joyride_ip::tcp::{TcpPacket, TcpRepr};
use joyride_ip::{Checksum, Ipv4Addr};
use joyride_tcp::{SockOpt, SocketId, State, TcpConfig, TcpError, TcpStack};

/// Bytes moved per iteration (≈ 718 full segments).
const BYTES: usize = 1 << 20;
/// Socket buffer size on both sides (both stacks scale their windows to offer it).
const SOCK_BUF: usize = 1 << 20;
/// Idle connections beside the transfer in the `joyride_<IDLE>_idle` variant.
const IDLE: usize = 1000;
/// The application's read/write chunk.
const APP_CHUNK: usize = 64 * 1024;
const MTU: usize = 1500;
const SEG: usize = 1460;

/// A pool of frame buffers (no allocation or zeroing per packet once warm) and the frames in
/// flight one way, each with its length.
#[derive(Default)]
struct Frames {
    queue: VecDeque<(Vec<u8>, usize)>,
    pool: Rc<RefCell<Vec<Vec<u8>>>>,
    count: u64,
}

impl Frames {
    /// A buffer of `MTU` bytes (old contents: every user overwrites what it uses).
    fn buffer(&self) -> Vec<u8> {
        self.pool.borrow_mut().pop().unwrap_or_else(|| vec![0; MTU])
    }
    fn push(&mut self, b: Vec<u8>, len: usize) {
        self.count += 1;
        self.queue.push_back((b, len));
    }
}

// ---------------------------------------------------------------- Joyride

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// `seg` from `src` to `dst` as an IPv4 packet at the start of `buf`, checksums computed in
/// software; returns its length.
fn encode(src: Ipv4Addr, dst: Ipv4Addr, seg: &TcpRepr<'_>, buf: &mut [u8]) -> usize {
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
    let len = ip.total_len();
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..len]), Checksum::Software)
        .expect("IPv4 emit into total_len bytes");
    let h = ip.buffer_len();
    seg.emit(&mut TcpPacket::new_unchecked(&mut buf[h..len]), src, dst, Checksum::Software);
    len
}

/// Parse (checksums verified) and hand every queued frame to `stack`.
fn deliver(now: Instant, frames: &mut Frames, stack: &mut TcpStack) {
    while let Some((f, len)) = frames.queue.pop_front() {
        {
            let p = Ipv4Packet::new_checked(&f[..len]).expect("valid IPv4");
            let ip = Ipv4Repr::parse(&p, Checksum::Software).expect("IPv4 checksum");
            let h = p.header_len();
            let t = TcpPacket::new_checked(&f[h..h + ip.payload_len]).expect("valid TCP");
            let seg = TcpRepr::parse(&t, ip.src, ip.dst, Checksum::Software).expect("TCP checksum");
            stack.handle_segment(now, ip.src, ip.dst, &seg);
        }
        frames.pool.borrow_mut().push(f);
    }
}

fn transmit(now: Instant, stack: &mut TcpStack, frames: &mut Frames) {
    stack.poll_transmit(now, &mut |src, dst, seg| {
        let mut b = frames.buffer();
        let len = encode(src, dst, seg, &mut b);
        frames.push(b, len);
    });
}

/// Two Joyride stacks, client on b sending to server on a.
struct Joyride {
    a: TcpStack,
    b: TcpStack,
    server: SocketId,
    client: SocketId,
    now: Instant,
    ab: Frames,
    ba: Frames,
    app: Vec<u8>,
    pattern: Vec<u8>,
    /// Pattern offset of the next byte the client writes / the server reads.
    written: usize,
    read: usize,
}

impl Joyride {
    /// The pair, plus `idle` other established connections between the two stacks that stay
    /// silent during the transfer (a host's many quiet sockets).
    fn new(idle: usize) -> Self {
        let mut cfg = TcpConfig::linux();
        // Like smoltcp's defaults: no timestamps, so a segment carries the full 1460 bytes.
        cfg.timestamps = false;
        cfg.recv_buffer = SOCK_BUF;
        cfg.send_buffer = SOCK_BUF;
        let mut a = TcpStack::new(cfg.clone(), [1; 16]);
        let mut b = TcpStack::new(cfg, [2; 16]);
        a.add_local_addr(A);
        b.add_local_addr(B);
        let l = a.socket().unwrap();
        a.bind(l, std::net::SocketAddrV4::new(A, 80)).unwrap();
        a.listen(l, idle as u32 + 8).unwrap();
        let client = b.socket().unwrap();
        for s in [l, client] {
            let st = if s == l { &mut a } else { &mut b };
            st.set_option(s, SockOpt::RecvBuffer(SOCK_BUF)).unwrap();
            st.set_option(s, SockOpt::SendBuffer(SOCK_BUF)).unwrap();
        }
        let mut j = Joyride {
            a,
            b,
            server: l,
            client,
            now: Instant::from_millis(1),
            ab: Frames::default(),
            ba: Frames::default(),
            app: vec![0; APP_CHUNK],
            pattern: pattern(),
            written: 0,
            read: 0,
        };
        let _ = j.b.connect(j.now, client, std::net::SocketAddrV4::new(A, 80));
        let mut server = None;
        for _ in 0..100 {
            j.round();
            if server.is_none() {
                server = j.a.accept(l).ok().map(|(s, _)| s);
            }
            if server.is_some() && j.b.state(client) == Ok(State::Established) {
                break;
            }
        }
        j.server = server.expect("handshake completes");
        let mut accepted = 0;
        for _ in 0..idle {
            let c = j.b.socket().unwrap();
            let _ = j.b.connect(j.now, c, std::net::SocketAddrV4::new(A, 80));
        }
        for _ in 0..1000 {
            if accepted == idle {
                break;
            }
            j.round();
            while j.a.accept(l).is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, idle, "idle connections established");
        j
    }

    /// One round trip of the pump: client → server, server → client; virtual time moves 1 µs
    /// or, when nothing is due now, to the next deadline.
    fn round(&mut self) {
        transmit(self.now, &mut self.b, &mut self.ab);
        deliver(self.now, &mut self.ab, &mut self.a);
        transmit(self.now, &mut self.a, &mut self.ba);
        deliver(self.now, &mut self.ba, &mut self.b);
        let next = [self.a.poll_at(), self.b.poll_at()].into_iter().flatten().min();
        self.now = match next {
            Some(t) if t > self.now => t.min(self.now + Duration::from_micros(1)),
            _ => self.now + Duration::from_micros(1),
        };
    }

    /// Move `BYTES` from client to server; returns the pattern checksum of what was read.
    #[inline(never)]
    fn transfer(&mut self) -> u64 {
        let target = self.read + BYTES;
        let mut sum = 0u64;
        while self.read < target {
            // The application writes (at most up to the target).
            while self.written < target {
                let n = (target - self.written).min(APP_CHUNK);
                match self.b.send(self.now, self.client, at(&self.pattern, self.written, n)) {
                    Ok(k) => self.written += k,
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("send: {e}"),
                }
            }
            transmit(self.now, &mut self.b, &mut self.ab);
            deliver(self.now, &mut self.ab, &mut self.a);
            loop {
                match self.a.recv(self.server, &mut self.app, false) {
                    Ok(0) => panic!("unexpected end of stream"),
                    Ok(n) => {
                        sum = sum.wrapping_add(u64::from(self.app[0]) + u64::from(self.app[n - 1]));
                        self.read += n;
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("recv: {e}"),
                }
            }
            transmit(self.now, &mut self.a, &mut self.ba);
            deliver(self.now, &mut self.ba, &mut self.b);
            let next = [self.a.poll_at(), self.b.poll_at()].into_iter().flatten().min();
            self.now = match next {
                Some(t) if t > self.now => t.min(self.now + Duration::from_micros(1)),
                _ => self.now + Duration::from_micros(1),
            };
        }
        sum
    }

    fn segments(&self) -> u64 {
        self.ab.count + self.ba.count
    }
}

/// The stream's byte pattern: byte `k` is `k % 251`.
fn fill(buf: &mut [u8], off: usize) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = ((off + i) % 251) as u8;
    }
}

/// `APP_CHUNK + 251` bytes of the pattern, so that the `n ≤ APP_CHUNK` bytes at any stream
/// offset are a slice of it (the application's writes cost no per-byte work beyond the copy).
fn pattern() -> Vec<u8> {
    let mut p = vec![0u8; APP_CHUNK + 251];
    fill(&mut p, 0);
    p
}

/// The pattern bytes at stream offset `off`, `n` of them.
fn at(p: &[u8], off: usize, n: usize) -> &[u8] {
    let s = off % 251;
    &p[s..s + n]
}

// ---------------------------------------------------------------- smoltcp

mod smol {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::{at, pattern, Frames, APP_CHUNK, BYTES, MTU, SOCK_BUF};
    use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
    use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
    use smoltcp::socket::tcp;
    use smoltcp::time::{Duration, Instant};
    use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

    /// An in-memory loopback `Device` like smoltcp's `phy::Loopback`, but with MTU 1500,
    /// software checksums both ways (`Loopback` skips them) and pooled frame buffers.
    pub(super) struct Wire(pub(super) Frames);

    /// A received frame; its buffer returns to the pool after `consume`.
    pub(super) struct Rx(Vec<u8>, usize, Rc<RefCell<Vec<Vec<u8>>>>);
    pub(super) struct Tx<'a>(&'a mut Frames);

    impl phy::RxToken for Rx {
        fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
            let r = f(&self.0[..self.1]);
            self.2.borrow_mut().push(self.0);
            r
        }
    }

    impl phy::TxToken for Tx<'_> {
        fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
            let mut b = self.0.buffer();
            if b.len() < len {
                b.resize(len, 0);
            }
            let r = f(&mut b[..len]);
            self.0.push(b, len);
            r
        }
    }

    impl Device for Wire {
        type RxToken<'a> = Rx;
        type TxToken<'a> = Tx<'a>;

        fn capabilities(&self) -> DeviceCapabilities {
            let mut c = DeviceCapabilities::default();
            c.medium = Medium::Ip;
            c.max_transmission_unit = MTU;
            c.checksum = ChecksumCapabilities::default();
            c
        }

        fn receive(&mut self, _now: Instant) -> Option<(Rx, Tx<'_>)> {
            let (f, len) = self.0.queue.pop_front()?;
            let pool = Rc::clone(&self.0.pool);
            Some((Rx(f, len, pool), Tx(&mut self.0)))
        }

        fn transmit(&mut self, _now: Instant) -> Option<Tx<'_>> {
            Some(Tx(&mut self.0))
        }
    }

    pub(super) struct Smol {
        pub(super) dev: Wire,
        iface: Interface,
        sockets: SocketSet<'static>,
        server: SocketHandle,
        client: SocketHandle,
        now: Instant,
        app: Vec<u8>,
        pattern: Vec<u8>,
        written: usize,
        pub(super) read: usize,
    }

    impl Smol {
        pub(super) fn new() -> Self {
            let mut dev = Wire(Frames::default());
            let now = Instant::from_millis(1);
            let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut dev, now);
            iface.update_ip_addrs(|a| {
                a.push(IpCidr::new(IpAddress::v4(10, 0, 0, 1), 24)).unwrap();
            });
            let sock = || {
                let rx = tcp::SocketBuffer::new(vec![0u8; SOCK_BUF]);
                let tx = tcp::SocketBuffer::new(vec![0u8; SOCK_BUF]);
                tcp::Socket::new(rx, tx)
            };
            let mut sockets = SocketSet::new(Vec::new());
            let server = sockets.add(sock());
            let client = sockets.add(sock());
            sockets.get_mut::<tcp::Socket<'_>>(server).listen(80).unwrap();
            let cx = iface.context();
            sockets
                .get_mut::<tcp::Socket<'_>>(client)
                .connect(cx, (IpAddress::v4(10, 0, 0, 1), 80), 49152)
                .unwrap();
            let mut s = Smol {
                dev,
                iface,
                sockets,
                server,
                client,
                now,
                app: vec![0; APP_CHUNK],
                pattern: pattern(),
                written: 0,
                read: 0,
            };
            for _ in 0..100 {
                s.iface.poll(s.now, &mut s.dev, &mut s.sockets);
                s.now += Duration::from_micros(1);
                if s.sockets.get::<tcp::Socket<'_>>(s.client).state() == tcp::State::Established
                    && s.sockets.get::<tcp::Socket<'_>>(s.server).state() == tcp::State::Established
                {
                    break;
                }
            }
            assert_eq!(s.sockets.get::<tcp::Socket<'_>>(s.server).state(), tcp::State::Established);
            s
        }

        #[inline(never)]
        pub(super) fn transfer(&mut self) -> u64 {
            let target = self.read + BYTES;
            let mut sum = 0u64;
            while self.read < target {
                let c = self.sockets.get_mut::<tcp::Socket<'_>>(self.client);
                while self.written < target {
                    let n = (target - self.written).min(APP_CHUNK);
                    let k = c.send_slice(at(&self.pattern, self.written, n)).expect("send");
                    if k == 0 {
                        break;
                    }
                    self.written += k;
                }
                self.iface.poll(self.now, &mut self.dev, &mut self.sockets);
                let s = self.sockets.get_mut::<tcp::Socket<'_>>(self.server);
                while s.can_recv() {
                    let n = s.recv_slice(&mut self.app).expect("recv");
                    if n == 0 {
                        break;
                    }
                    sum = sum.wrapping_add(u64::from(self.app[0]) + u64::from(self.app[n - 1]));
                    self.read += n;
                }
                let next = self.iface.poll_at(self.now, &self.sockets);
                let step = self.now + Duration::from_micros(1);
                self.now = match next {
                    Some(t) if t > self.now => t.min(step),
                    _ => step,
                };
            }
            sum
        }
    }
}

/// A fresh Joyride pair moves `BYTES` byte-exact (the timed loop only samples the bytes).
fn check_bytes_joyride() {
    let mut j = Joyride::new(0);
    let mut got = Vec::with_capacity(BYTES);
    let target = BYTES;
    while got.len() < target {
        while j.written < target {
            let n = (target - j.written).min(APP_CHUNK);
            fill(&mut j.app[..n], j.written);
            match j.b.send(j.now, j.client, &j.app[..n]) {
                Ok(k) => j.written += k,
                Err(_) => break,
            }
        }
        j.round();
        while let Ok(n) = j.a.recv(j.server, &mut j.app, false) {
            assert!(n > 0);
            got.extend_from_slice(&j.app[..n]);
        }
    }
    let mut want = vec![0u8; target];
    fill(&mut want, 0);
    assert!(got == want, "joyride bulk transfer corrupted the stream");
}

fn tcp_bulk(c: &mut Criterion) {
    check_bytes_joyride();
    let mut g = c.benchmark_group("tcp_bulk");
    g.throughput(Throughput::Bytes(BYTES as u64));
    let mut j = Joyride::new(0);
    j.transfer(); // warm the pools and open the congestion window
    g.bench_function("joyride", |bch| bch.iter(|| black_box(j.transfer())));
    let mut many = Joyride::new(IDLE);
    many.transfer();
    g.bench_function(format!("joyride_{IDLE}_idle"), |bch| bch.iter(|| black_box(many.transfer())));
    let mut s = smol::Smol::new();
    s.transfer();
    g.bench_function("smoltcp", |bch| bch.iter(|| black_box(s.transfer())));
    g.finish();
    eprintln!(
        "tcp_bulk: {} B per iteration = {} segments of {SEG} B; frames per iteration: \
         joyride {:.0}, smoltcp {:.0} (data + ACKs, both directions)",
        BYTES,
        BYTES / SEG,
        j.segments() as f64 / (j.read / BYTES) as f64,
        s.dev.0.count as f64 / (s.read / BYTES) as f64,
    );
}

/// Outside criterion, for callgrind: `TCP_BULK_ONLY=joyride|smoltcp`.
fn only(which: &str) {
    const ITERS: usize = 16;
    match which {
        "joyride" | "joyride_idle" => {
            let mut j = Joyride::new(if which == "joyride" { 0 } else { IDLE });
            j.transfer();
            let before = j.segments();
            for _ in 0..ITERS {
                black_box(j.transfer());
            }
            let data = (ITERS * BYTES / SEG) as u64;
            println!(
                "{which}: {ITERS} x {BYTES} B, {data} data segments, {} frames",
                j.segments() - before
            );
        }
        "smoltcp" => {
            let mut s = smol::Smol::new();
            s.transfer();
            let before = s.dev.0.count;
            for _ in 0..ITERS {
                black_box(s.transfer());
            }
            let data = (ITERS * BYTES / SEG) as u64;
            println!(
                "smoltcp: {ITERS} x {BYTES} B, {data} data segments, {} frames",
                s.dev.0.count - before
            );
        }
        other => panic!("TCP_BULK_ONLY={other}: want joyride, joyride_idle or smoltcp"),
    }
}

criterion_group!(benches, tcp_bulk);

fn main() {
    if let Ok(which) = std::env::var("TCP_BULK_ONLY") {
        only(&which);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
