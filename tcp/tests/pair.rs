//! End-to-end behaviour of two `TcpStack`s joined in memory.

mod common;

use common::*;
use joyride_tcp::{Duration, Shutdown, State, TcpConfig, TcpError};
use std::net::{Ipv4Addr, SocketAddrV4};

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Push `data` from `tx` on stack A to `rx` on stack B, returning what B read.
fn transfer(
    net: &mut Net,
    tx: joyride_tcp::SocketId,
    rx: joyride_tcp::SocketId,
    data: &[u8],
    limit: Duration,
) -> Vec<u8> {
    let mut sent = 0;
    let mut got = Vec::with_capacity(data.len());
    let mut buf = vec![0u8; 65536];
    net.run_until(limit, |n| {
        while sent < data.len() {
            match n.a.send(n.now, tx, &data[sent..]) {
                Ok(k) => sent += k,
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        loop {
            match n.b.recv(rx, &mut buf, false) {
                Ok(0) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        got.len() == data.len()
    });
    got
}

#[test]
fn handshake_negotiates_options() {
    let mut net = Net::linux();
    let (c, _l, s) = net.connect_pair();
    assert_eq!(net.b.state(s), Ok(State::Established));
    let info = net.a.info(c).unwrap();
    assert!(info.ts_ok && info.sack_ok);
    assert_eq!(info.wscale, (7, 7));
    assert_eq!(info.snd_mss, 1460 - 12);
    assert_eq!(net.b.peer_addr(s).unwrap(), net.a.local_addr(c).unwrap());
    // SYN, SYN-ACK, ACK.
    let syn = &net.log[0];
    assert!(syn.flags.contains(joyride_ip::tcp::TcpFlags::SYN));
    assert_eq!(syn.options.mss, Some(1460));
}

#[test]
fn bulk_transfer_one_mib_exact() {
    let mut net = Net::linux();
    net.keep_log = false;
    let (c, _l, s) = net.connect_pair();
    let data = random_bytes(1 << 20, 7);
    let got = transfer(&mut net, c, s, &data, Duration::from_secs(60));
    assert_eq!(got.len(), data.len());
    assert!(got == data, "payload differs");
    let info = net.a.info(c).unwrap();
    assert_eq!(info.total_retrans, 0);
    assert!(info.cwnd > 10 * 1448, "cwnd grew: {}", info.cwnd);
}

#[test]
fn connect_to_closed_port_is_refused() {
    let mut net = Net::linux();
    let c = net.a.socket().unwrap();
    let now = net.now;
    assert_eq!(net.a.connect(now, c, SocketAddrV4::new(B, 81)), Err(TcpError::InProgress));
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.a.state(c), Ok(State::Closed));
    assert_eq!(net.a.take_error(c), Some(TcpError::ConnectionRefused));
}

#[test]
fn active_close_reaches_time_wait_then_closed() {
    let mut net = Net::linux();
    let (c, _l, s) = net.connect_pair();
    let now = net.now;
    net.a.shutdown(now, c, Shutdown::Write).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.b.state(s) == Ok(State::CloseWait)));
    let mut buf = [0u8; 8];
    assert_eq!(net.b.recv(s, &mut buf, false), Ok(0), "EOF after FIN");
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c) == Ok(State::FinWait2)));
    let now = net.now;
    net.b.close(now, s).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c) == Ok(State::TimeWait)));
    // B's LAST-ACK connection is gone once our ACK arrives.
    assert!(net.run_until(Duration::from_secs(1), |n| n
        .b
        .connections()
        .all(|e| e.state == State::Listen)));
    // 2·MSL later A is closed.
    net.run_for(Duration::from_secs(61));
    assert_eq!(net.a.state(c), Ok(State::Closed));
}

#[test]
fn simultaneous_close() {
    let mut net = Net::linux();
    let (c, _l, s) = net.connect_pair();
    let now = net.now;
    net.a.shutdown(now, c, Shutdown::Write).unwrap();
    net.b.shutdown(now, s, Shutdown::Write).unwrap();
    let mut saw_closing = false;
    assert!(net.run_until(Duration::from_secs(2), |n| {
        saw_closing |= n.a.state(c) == Ok(State::Closing);
        n.a.state(c) == Ok(State::TimeWait) && n.b.state(s) == Ok(State::TimeWait)
    }));
    assert!(saw_closing);
}

#[test]
fn close_with_unread_data_sends_rst() {
    let mut net = Net::linux();
    let (c, _l, s) = net.connect_pair();
    let now = net.now;
    net.a.send(now, c, b"hello").unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.b.readiness(s).readable));
    let now = net.now;
    net.b.close(now, s).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c) == Ok(State::Closed)));
    assert_eq!(net.a.take_error(c), Some(TcpError::ConnectionReset));
    assert!(net.log.iter().any(|g| g.flags.contains(joyride_ip::tcp::TcpFlags::RST)));
}

#[test]
fn bind_conflicts_and_ephemeral_ports() {
    let mut net = Net::linux();
    let a = net.b.socket().unwrap();
    net.b.bind(a, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    net.b.listen(a, 4).unwrap();
    let b = net.b.socket().unwrap();
    assert_eq!(net.b.bind(b, SocketAddrV4::new(B, 80)), Err(TcpError::AddrInUse));
    net.b.bind(b, SocketAddrV4::new(B, 0)).unwrap();
    assert!(net.b.local_addr(b).unwrap().port() >= 49152);
    assert_eq!(net.b.accept(b), Err(TcpError::NotListening));
    assert_eq!(net.b.accept(a), Err(TcpError::WouldBlock));
    let _ = TcpConfig::freebsd();
}

#[test]
fn syn_cookies_when_syn_queue_overflows() {
    let mut cfg = TcpConfig::linux();
    cfg.syn_backlog = 1;
    let mut net = Net::new(TcpConfig::linux(), cfg);
    let l = net.b.socket().unwrap();
    net.b.bind(l, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 80)).unwrap();
    net.b.listen(l, 16).unwrap();
    let now = net.now;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let c = net.a.socket().unwrap();
            assert_eq!(net.a.connect(now, c, SocketAddrV4::new(B, 80)), Err(TcpError::InProgress));
            c
        })
        .collect();
    let mut accepted = Vec::new();
    assert!(net.run_until(Duration::from_millis(200), |n| {
        while let Ok((s, _)) = n.b.accept(l) {
            accepted.push(s);
        }
        accepted.len() == 4
    }));
    // All four answered within one RTT: the overflowing three by cookie, which carry only MSS.
    let synacks: Vec<_> = net
        .log
        .iter()
        .filter(|g| g.src == B && g.flags.contains(joyride_ip::tcp::TcpFlags::SYN))
        .collect();
    assert_eq!(synacks.len(), 4);
    assert_eq!(synacks.iter().filter(|g| g.options.window_scale.is_none()).count(), 3);
    // A cookie connection carries data.
    let cookie: Vec<_> = clients.iter().filter(|c| !net.a.info(**c).unwrap().ts_ok).collect();
    assert_eq!(cookie.len(), 3, "cookie connections run without timestamps");
    let cookie_client = *cookie[0];
    let now = net.now;
    net.a.send(now, cookie_client, &[42u8; 5000]).unwrap();
    let peer = net.a.local_addr(cookie_client).unwrap();
    let server = *accepted.iter().find(|s| net.b.peer_addr(**s).unwrap() == peer).unwrap();
    let mut got = 0;
    let mut buf = [0u8; 8192];
    assert!(net.run_until(Duration::from_secs(2), |n| {
        while let Ok(k) = n.b.recv(server, &mut buf, false) {
            if k == 0 {
                break;
            }
            got += k;
        }
        got == 5000
    }));
}

#[test]
fn freebsd_profile_pins_wire_values() {
    let mut net = Net::new(TcpConfig::freebsd(), TcpConfig::freebsd());
    let (c, _l, s) = net.connect_pair();
    let syn = &net.log[0];
    assert_eq!(syn.window, 65535);
    assert_eq!(syn.options.mss, Some(1460));
    assert_eq!(syn.options.window_scale, Some(6));
    assert!(syn.options.sack_permitted && syn.options.timestamps.is_some());
    // Receive buffer rounded up to a multiple of the MSS in use once connected.
    let mss = net.a.info(c).unwrap().snd_mss as usize;
    let want = 65536usize.div_ceil(mss) * mss;
    assert_eq!(
        net.b.get_option(s, joyride_tcp::SockOptName::RecvBuffer),
        Ok(joyride_tcp::SockOpt::RecvBuffer(want))
    );
}

#[test]
fn sysctl_style_tunables_change_the_stack() {
    let mut net = Net::linux();
    net.a.set_tunable("net.inet.tcp.sack.enable", "0").unwrap();
    assert!(net.a.set_tunable("net.inet.tcp.no_such_thing", "1").is_err());
    let (c, _l, _s) = net.connect_pair();
    assert!(!net.a.info(c).unwrap().sack_ok);
}
