//! In-process engine tests (no root, no namespaces): TCP looped back to our own address, and
//! two engines joined by a shared-memory wire through seeded faults.

use std::net::{Ipv4Addr, SocketAddrV4};

use joyride_base::Duration;
use joyride_drivers::fault::FaultProfile;
use joyride_drivers::loopback::Loopback;
use joyride_drivers::shm::ShmWire;
use joyride_tcp::{State, TcpError};

use super::*;
use crate::apps::{AppOutput, AppSpec};
use crate::backend::{make_pool, ObservedFaults};
use crate::config::FaultSpec;

const A: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 2);

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// An engine on one end of a shared-memory wire whose other end stays quiet, so that the idle
/// wait really sleeps (in `poll(2)` on the wire's doorbell) up to `max_sleep`; never spins.
fn quiet_engine(tag: &str, max_sleep: Duration) -> (Engine, ShmWire) {
    let clock = Clock::new();
    let path = std::env::temp_dir().join(format!("jrsvc-unit-{tag}-{}", std::process::id()));
    let pa = make_pool(1500, 256).unwrap();
    let wa = ShmWire::create(&path, 64, 1514, pa.clone()).unwrap();
    let peer = ShmWire::open(&path, make_pool(1500, 64).unwrap()).unwrap();
    let mut cfg = EngineConfig::new(A, 24);
    cfg.spin = Duration::ZERO;
    cfg.max_sleep = max_sleep;
    (Engine::new(Box::new(wa), pa, cfg, clock.now()).unwrap(), peer)
}

/// Connects to `dst` on one engine, sends 1 MiB through a listener of the same engine. With
/// `idle`, the engine never spins and runs its idle wait after every turn, as joyrided does.
fn local_transfer(dst: Ipv4Addr, idle: bool) {
    let clock = Clock::new();
    let (mut e, _peer) = if idle {
        let (e, p) = quiet_engine("tcp-idle", Duration::from_secs(2));
        (e, Some(p))
    } else {
        let pool = make_pool(1500, 256).unwrap();
        let nic = Box::new(Loopback::new(64, 1500));
        (Engine::new(nic, pool, EngineConfig::new(A, 24), clock.now()).unwrap(), None)
    };
    let now = clock.now();
    let l = e.tcp().socket().unwrap();
    e.tcp().bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    e.tcp().listen(l, 4).unwrap();
    let c = e.tcp().socket().unwrap();
    assert_eq!(e.tcp().connect(now, c, SocketAddrV4::new(dst, 7)), Err(TcpError::InProgress));
    let data = pattern(1 << 20);
    let (mut sent, mut got, mut server) = (0, Vec::new(), None);
    let mut buf = vec![0u8; 65536];
    let t0 = clock.now();
    while got.len() < data.len() {
        let now = clock.now();
        assert!(now.saturating_duration_since(t0) < Duration::from_secs(30), "stalled");
        e.poll(now);
        if server.is_none() {
            server = e.tcp().accept(l).ok().map(|(s, _)| s);
        }
        if e.tcp().state(c) == Ok(State::Established) && sent < data.len() {
            sent += e.tcp().send(now, c, &data[sent..]).unwrap_or(0);
        }
        if let Some(s) = server {
            while let Ok(n) = e.tcp().recv(s, &mut buf, false) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        if idle {
            e.idle_wait(&clock, None);
        }
    }
    assert!(got == data);
    let c = *e.counters();
    // Looped-back segments are pending work, not a timer stuck without progress: no 1 ms
    // guard waits (297 of them in 3 s of sockperf before they were told apart).
    assert_eq!(c.stuck_deadlines, 0, "{c:?}");
    assert!(c.tcp_looped > 0 && c.tcp_looped == c.tcp_rx_segments, "{c:?}");
    // Nothing went to the wire but the gratuitous ARP announcements.
    assert!(c.tx_frames <= 2, "{c:?}");
    assert_eq!(c.tcp_bad_checksum, 0);
}

#[test]
fn tcp_to_our_own_address_is_looped_back() {
    local_transfer(A, false);
}

#[test]
fn tcp_to_localhost_is_looped_back() {
    local_transfer(Ipv4Addr::LOCALHOST, false);
}

#[test]
fn tcp_looped_back_never_waits_as_if_stuck() {
    let clock = Clock::new();
    local_transfer(A, true);
    // A missed wake-up costs a 2 s sleep here.
    let took = clock.now().saturating_duration_since(Instant::ZERO);
    assert!(took < Duration::from_secs(20), "{took:?}");
}

#[test]
fn udp_to_our_own_address_is_pending_work_until_the_next_poll() {
    let clock = Clock::new();
    let (mut e, _peer) = quiet_engine("udp-idle", Duration::from_millis(500));
    let a = e.udp_bind(1000).unwrap();
    let b = e.udp_bind(2000).unwrap();
    e.poll(clock.now());
    // Truly idle: it sleeps (here until `also_at`).
    let s0 = e.counters().sleeps;
    e.idle_wait(&clock, Some(clock.now() + Duration::from_millis(2)));
    assert_eq!(e.counters().sleeps, s0 + 1);
    // An app sends to our own address after the poll (as the IPC server does while it executes
    // a command): the datagram is queued on `b`, whose reader may already have been served in
    // this pass. The next pass must come at once, whatever the spin budget says.
    e.poll(clock.now());
    let me = SocketAddrV4::new(A, 2000);
    assert_eq!(e.host().udp_send_to(clock.now(), a, Some(me), b"ping"), Ok(4));
    assert!(e.has_pending_work());
    assert_eq!(e.poll_at(), Some(Instant::ZERO));
    assert!(!e.will_sleep(clock.now()));
    let t = clock.now();
    e.idle_wait(&clock, None);
    let waited = clock.now().saturating_duration_since(t);
    assert!(waited < Duration::from_millis(100), "slept {waited:?} on a pending datagram");
    assert_eq!(e.counters().sleeps, s0 + 1);
    // The next poll hands the pass to the layer above; then the engine is idle again even
    // though nobody has read the datagram (a full reader must not make it spin).
    e.poll(clock.now());
    assert!(!e.has_pending_work());
    e.idle_wait(&clock, Some(clock.now() + Duration::from_millis(2)));
    assert_eq!(e.counters().sleeps, s0 + 2);
    let mut buf = [0u8; 16];
    let m = e.udp_recv_from(b, &mut buf).unwrap();
    assert_eq!((&buf[..m.len], m.from), (&b"ping"[..], SocketAddrV4::new(A, 1000)));
    assert_eq!(e.host_counters().udp_looped, 1);
}

#[test]
fn two_engines_over_a_faulty_shm_wire() {
    let clock = Clock::new();
    let path = std::env::temp_dir().join(format!("jrsvc-unit-wire-{}", std::process::id()));
    let pa = make_pool(1500, 2048).unwrap();
    let pb = make_pool(1500, 2048).unwrap();
    let wa = ShmWire::create(&path, 256, 1514, pa.clone()).unwrap();
    let wb = ShmWire::open(&path, pb.clone()).unwrap();
    let spec = FaultSpec {
        profile: FaultProfile { drop: 0.02, duplicate: 0.01, reorder: 0.02, corrupt: 0.01 },
        seed: 5,
        ..Default::default()
    };
    let (fa, stats) = ObservedFaults::wrap(Box::new(wa), &spec, pa.clone(), 32);
    let mut ea = Engine::new(Box::new(fa), pa, EngineConfig::new(A, 24), clock.now()).unwrap();
    let mut eb = Engine::new(Box::new(wb), pb, EngineConfig::new(B, 24), clock.now()).unwrap();
    let mut sink = AppSpec::Sink { port: 9, conns: 1 }.start(&mut ea).unwrap();
    let mut echo = AppSpec::UdpEcho { port: 7 }.start(&mut ea).unwrap();
    let src = AppSpec::Source { peer: SocketAddrV4::new(A, 9), bytes: 2 << 20, seed: 4 };
    let mut source = src.start(&mut eb).unwrap();
    let udp = AppSpec::UdpClient { peer: SocketAddrV4::new(A, 7), sizes: vec![100, 3000] };
    let mut udp = udp.start(&mut eb).unwrap();
    let (mut oa, mut ob) = (AppOutput::default(), AppOutput::default());
    let t0 = clock.now();
    while !(sink.done() && source.done() && udp.done()) {
        let now = clock.now();
        assert!(now.saturating_duration_since(t0) < Duration::from_secs(60), "stalled");
        ea.poll(now);
        eb.poll(now);
        sink.poll(&mut ea, &mut oa);
        echo.poll(&mut ea, &mut oa);
        source.poll(&mut eb, &mut ob);
        udp.poll(&mut eb, &mut ob);
    }
    for app in [&sink, &source, &udp] {
        assert_eq!(app.failure(), None);
    }
    let hash =
        |l: &str| l.split_whitespace().find(|f| f.starts_with("sha256=")).unwrap().to_string();
    let s = oa.lines.iter().find(|l| l.starts_with("sink:")).unwrap();
    let t = ob.lines.iter().find(|l| l.starts_with("source:")).unwrap();
    assert_eq!(hash(s), hash(t));
    assert!(s.contains("bytes=2097152"), "{s}");
    assert_eq!(ob.lines.iter().filter(|l| l.starts_with("udp-client:")).count(), 2);
    let f = stats.get();
    assert!(f.rx.corrupted + f.tx.corrupted > 0 && f.rx.dropped + f.tx.dropped > 0, "{f:?}");
    // Corrupted frames were caught by a checksum somewhere (IPv4 header, TCP or UDP) or
    // by a header check, never delivered: the hashes above match.
    let (ca, cb) = (ea.counters(), eb.counters());
    let bad = ca.tcp_bad_checksum
        + cb.tcp_bad_checksum
        + ea.host_counters().rx_bad_checksum
        + eb.host_counters().rx_bad_checksum;
    assert!(bad > 0, "{ca:?} {cb:?}");
}
