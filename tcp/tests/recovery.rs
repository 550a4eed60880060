//! Loss recovery, flow control, keepalive and backlog behaviour over the in-memory pair.

mod common;

use std::cell::RefCell;
use std::net::SocketAddrV4;
use std::rc::Rc;

use common::*;
use joyride_base::{Rng, SplitMix64};
use joyride_tcp::{Duration, SockOpt, SocketId, State, TcpConfig, TcpError};
use proptest::prelude::*;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// Send `data` A→B, reading on B, until all arrived or `limit` passes.
fn pump(net: &mut Net, tx: SocketId, rx: SocketId, data: &[u8], limit: Duration) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    net.run_until(limit, |n| {
        while sent < data.len() {
            match n.a.send(n.now, tx, &data[sent..]) {
                Ok(k) => sent += k,
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        while let Ok(k) = n.b.recv(rx, &mut buf, false) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        got.len() == data.len()
    });
    got
}

/// Drop the first A→B data segment whose sequence number is the `nth` distinct one seen.
fn drop_nth_data_segment(nth: usize) -> Filter {
    let mut seen: Vec<u32> = Vec::new();
    let mut dropped = false;
    Box::new(move |s: &Seg| {
        if s.src == A && !s.payload.is_empty() && !dropped {
            if !seen.contains(&s.seq) {
                seen.push(s.seq);
            }
            if seen.len() == nth {
                dropped = true;
                return Fate::Drop;
            }
        }
        Fate::Deliver
    })
}

/// The delay between the first and second transmission of the same A→B sequence number.
fn retransmit_gap(net: &Net) -> Option<Duration> {
    let data: Vec<&Seg> = net.log.iter().filter(|s| s.src == A && !s.payload.is_empty()).collect();
    for (i, s) in data.iter().enumerate() {
        if let Some(r) = data[i + 1..].iter().find(|r| r.seq == s.seq) {
            return Some(r.at - s.at);
        }
    }
    None
}

#[test]
fn sack_fast_retransmit_recovers_a_lost_segment() {
    let mut net = Net::linux();
    let (c, _l, s) = net.connect_pair();
    net.filter = drop_nth_data_segment(3);
    let data = pattern(200_000);
    let got = pump(&mut net, c, s, &data, Duration::from_secs(10));
    assert!(got == data, "stream intact");
    let info = net.a.info(c).unwrap();
    assert!(info.total_retrans >= 1);
    let gap = retransmit_gap(&net).expect("a retransmission");
    // Fast retransmit: well before the 200 ms minimum RTO.
    assert!(gap < Duration::from_millis(100), "retransmitted after {gap:?}");
    // The receiver sent SACK blocks.
    assert!(net.log.iter().any(|g| g.src == B && g.options.sack_len > 0));
}

#[test]
fn newreno_fast_retransmit_without_sack() {
    let mut cfg = TcpConfig::linux();
    cfg.sack = false;
    let mut net = Net::new(cfg.clone(), cfg);
    let (c, _l, s) = net.connect_pair();
    assert!(!net.a.info(c).unwrap().sack_ok);
    net.filter = drop_nth_data_segment(4);
    let data = pattern(300_000);
    let got = pump(&mut net, c, s, &data, Duration::from_secs(10));
    assert!(got == data);
    let gap = retransmit_gap(&net).expect("a retransmission");
    assert!(gap < Duration::from_millis(100), "retransmitted after {gap:?}");
}

#[test]
fn tail_loss_is_recovered_by_rto_without_sack() {
    let mut cfg = TcpConfig::linux();
    cfg.sack = false;
    let mut net = Net::new(cfg.clone(), cfg);
    let (c, _l, s) = net.connect_pair();
    // A single segment: no duplicate ACKs can follow its loss.
    net.filter = drop_nth_data_segment(1);
    let data = pattern(1000);
    let got = pump(&mut net, c, s, &data, Duration::from_secs(10));
    assert!(got == data);
    let gap = retransmit_gap(&net).expect("a retransmission");
    assert!(gap >= Duration::from_millis(200), "RTO respects min_rto: {gap:?}");
    assert!(gap <= Duration::from_millis(1100), "RTO fired: {gap:?}");
    assert_eq!(net.a.info(c).unwrap().total_retrans, 1);
}

#[test]
fn zero_window_then_window_opens() {
    // No window scaling on B, and a buffer of exactly ten 1448-byte segments, so that the
    // window closes completely.
    let mut cfg_b = TcpConfig::linux();
    cfg_b.window_scale = None;
    let mut net = Net::new(TcpConfig::linux(), cfg_b);
    let l = net.b.socket().unwrap();
    net.b.set_option(l, SockOpt::RecvBuffer(14_480)).unwrap();
    net.b.bind(l, SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    net.b.listen(l, 4).unwrap();
    let c = net.a.socket().unwrap();
    let now = net.now;
    let _ = net.a.connect(now, c, SocketAddrV4::new(B, 80));
    let mut s = None;
    net.run_until(Duration::from_secs(5), |n| {
        s = s.or_else(|| n.b.accept(l).ok().map(|x| x.0));
        s.is_some()
    });
    let s = s.unwrap();
    assert_eq!(net.b.info(s).unwrap().rcv_wnd, 14_480);
    let data = pattern(100_000);
    let mut sent = 0;
    // Fill without reading on B.
    net.run_until(Duration::from_secs(5), |n| {
        while let Ok(k) = n.a.send(n.now, c, &data[sent..]) {
            sent += k;
        }
        false
    });
    let info = net.a.info(c).unwrap();
    assert_eq!(info.snd_wnd, 0, "peer window closed");
    assert_eq!(net.a.state(c), Ok(State::Established));
    // Zero-window probes were sent while the window was closed.
    let zero_at = net
        .log
        .iter()
        .find(|g| g.src == B && g.window == 0)
        .map(|g| g.at)
        .expect("B advertised zero window");
    let probes = net
        .log
        .iter()
        .filter(|g| {
            g.src == A && g.at > zero_at + Duration::from_millis(100) && g.payload.len() == 1
        })
        .count();
    assert!(probes >= 1, "persist probes sent");
    // Now read everything: the window opens and the transfer completes.
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    let ok = net.run_until(Duration::from_secs(60), |n| {
        while sent < data.len() {
            match n.a.send(n.now, c, &data[sent..]) {
                Ok(k) => sent += k,
                Err(_) => break,
            }
        }
        while let Ok(k) = n.b.recv(s, &mut buf, false) {
            if k == 0 {
                break;
            }
            got.extend_from_slice(&buf[..k]);
        }
        got.len() == data.len()
    });
    assert!(ok && got == data);
}

#[test]
fn keepalive_kills_a_dead_peer() {
    let mut net = Net::linux();
    let (c, _l, _s) = net.connect_pair();
    net.a.set_option(c, SockOpt::KeepAlive(true)).unwrap();
    net.a.set_option(c, SockOpt::KeepIdle(Duration::from_secs(10))).unwrap();
    net.a.set_option(c, SockOpt::KeepInterval(Duration::from_secs(1))).unwrap();
    net.a.set_option(c, SockOpt::KeepCount(3)).unwrap();
    // While the peer answers, keepalive keeps the connection up.
    net.run_for(Duration::from_secs(30));
    assert_eq!(net.a.state(c), Ok(State::Established));
    assert!(net
        .log
        .iter()
        .any(|g| g.src == A && g.payload.is_empty() && g.at > Instant0::at(&net)));
    // The peer vanishes.
    net.filter = Box::new(|_| Fate::Drop);
    let start = net.now;
    assert!(net.run_until(Duration::from_secs(60), |n| n.a.state(c) == Ok(State::Closed)));
    let took = net.now - start;
    assert!(took >= Duration::from_secs(3) && took <= Duration::from_secs(15), "{took:?}");
    assert_eq!(net.a.take_error(c), Some(TcpError::TimedOut));
}

/// Helper to express "after the handshake".
struct Instant0;
impl Instant0 {
    fn at(net: &Net) -> joyride_tcp::Instant {
        net.log.get(2).map(|g| g.at).unwrap_or(net.now)
    }
}

#[test]
fn listen_backlog_overflow_defers_connections() {
    let mut net = Net::linux();
    let l = net.b.socket().unwrap();
    net.b.bind(l, SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    net.b.listen(l, 1).unwrap();
    let now = net.now;
    let clients: Vec<SocketId> = (0..5)
        .map(|_| {
            let c = net.a.socket().unwrap();
            assert_eq!(net.a.connect(now, c, SocketAddrV4::new(B, 80)), Err(TcpError::InProgress));
            c
        })
        .collect();
    net.run_for(Duration::from_millis(500));
    let count = |n: &Net, st: State| n.b.connections().filter(|e| e.state == st).count();
    assert_eq!(count(&net, State::Established), 2, "accept queue holds backlog+1");
    assert_eq!(count(&net, State::SynReceived), 3, "the rest wait in the SYN queue");
    let est = |n: &Net| clients.iter().filter(|c| n.a.state(**c) == Ok(State::Established)).count();
    // Accepting makes room; SYN retransmissions get the rest in.
    let mut accepted = 0;
    let ok = net.run_until(Duration::from_secs(30), |n| {
        while n.b.accept(l).is_ok() {
            accepted += 1;
        }
        accepted == 5
    });
    assert!(ok, "all five eventually accepted ({accepted})");
    assert_eq!(est(&net), 5);
}

#[test]
fn rst_in_window_but_not_exact_draws_challenge_ack() {
    let mut net = Net::linux();
    let (c, _l, s) = net.connect_pair();
    // Forge a RST from B at RCV.NXT + 100 into A.
    let info_seq = net.log.iter().rev().find(|g| g.src == B).unwrap().seq;
    let local = net.a.local_addr(c).unwrap();
    let forged = Seg {
        src: B,
        dst: A,
        src_port: 80,
        dst_port: local.port(),
        seq: info_seq.wrapping_add(100),
        ack: 0,
        flags: joyride_ip::tcp::TcpFlags::RST,
        window: 0,
        options: Default::default(),
        payload: vec![],
        at: net.now,
    };
    let before = net.log.len();
    let now = net.now;
    net.a.handle_segment(now, B, A, &forged.repr());
    net.run_for(Duration::from_millis(50));
    assert_eq!(net.a.state(c), Ok(State::Established), "RFC 5961: not reset");
    assert!(net.log[before..]
        .iter()
        .any(|g| g.src == A && g.flags.contains(joyride_ip::tcp::TcpFlags::ACK)));
    assert_eq!(net.b.state(s), Ok(State::Established));
}

/// Case count: `JOYRIDE_PROPTEST_CASES` overrides the default (CI runs more).
fn cases(default: u32) -> u32 {
    std::env::var("JOYRIDE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), .. ProptestConfig::default() })]
    /// Random loss, reordering and duplication still deliver the whole stream exactly once,
    /// and both sides close.
    #[test]
    fn lossy_link_delivers_exactly_once(seed in any::<u64>(), loss in 0u32..20, sack in any::<bool>(), len in 1usize..120_000) {
        let mut cfg = TcpConfig::linux();
        cfg.sack = sack;
        let mut net = Net::new(cfg.clone(), cfg);
        net.keep_log = false;
        let (c, _l, s) = net.connect_pair();
        let rng = Rc::new(RefCell::new(SplitMix64::new(seed)));
        let r = rng.clone();
        net.filter = Box::new(move |_| {
            let mut r = r.borrow_mut();
            if r.chance(f64::from(loss) / 100.0) {
                Fate::Drop
            } else if r.chance(0.05) {
                Fate::Duplicate
            } else if r.chance(0.05) {
                Fate::Delay(Duration::from_millis(r.below(30)))
            } else {
                Fate::Deliver
            }
        });
        let data = pattern(len);
        let got = pump(&mut net, c, s, &data, Duration::from_secs(600));
        prop_assert_eq!(got.len(), data.len());
        prop_assert!(got == data);
        let now = net.now;
        net.a.close(now, c).unwrap();
        let mut buf = [0u8; 16];
        let closed = net.run_until(Duration::from_secs(600), |n| {
            if n.b.recv(s, &mut buf, false) == Ok(0) && n.b.state(s) == Ok(State::CloseWait) {
                let now = n.now;
                let _ = n.b.close(now, s);
            }
            n.b.connections().all(|e| e.state == State::Listen)
        });
        prop_assert!(closed, "B finished");
    }
}
