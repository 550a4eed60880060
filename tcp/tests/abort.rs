//! `TcpStack::abort` (RFC 9293 §3.10.5 ABORT) and `TcpStack::drop_connection` (FreeBSD's
//! `tcpdrop`).

mod common;

use common::*;
use joyride_ip::tcp::TcpFlags;
use joyride_tcp::{Duration, Shutdown, State, TcpError};

#[test]
fn abort_resets_the_peer_and_reports_econnaborted() {
    let mut net = Net::linux();
    let (c, _l, s) = net.connect_pair();
    net.log.clear();
    let now = net.now;
    net.a.abort(now, c).unwrap();
    assert_eq!(net.a.state(c), Ok(State::Closed));
    assert!(net.run_until(Duration::from_secs(1), |n| n.b.state(s) == Ok(State::Closed)));
    let rst: Vec<_> = net.log.iter().filter(|g| g.flags.contains(TcpFlags::RST)).collect();
    assert_eq!(rst.len(), 1, "exactly one RST: {:?}", net.log);
    assert_eq!(rst[0].src, A);
    assert_eq!(net.b.take_error(s), Some(TcpError::ConnectionReset));
    // The aborting socket stays valid: its pending error first, then EOF-like results.
    let mut buf = [0u8; 4];
    assert_eq!(net.a.recv(c, &mut buf, false), Err(TcpError::ConnectionAborted));
    assert_eq!(net.a.recv(c, &mut buf, false), Ok(0));
    assert_eq!(net.a.send(net.now, c, b"x"), Err(TcpError::BrokenPipe));
    assert!(net.a.connections().all(|e| e.state == State::Closed), "nothing left open");
    net.a.close(net.now, c).unwrap();
}

#[test]
fn abort_of_an_idle_socket_is_not_connected() {
    let mut net = Net::linux();
    let s = net.a.socket().unwrap();
    assert_eq!(net.a.abort(net.now, s), Err(TcpError::NotConnected));
}

#[test]
fn drop_connection_removes_an_orphan_in_time_wait_without_a_rst() {
    let mut net = Net::linux();
    let (c, _l, s) = net.connect_pair();
    let local = net.a.local_addr(c).unwrap();
    let remote = net.a.peer_addr(c).unwrap();
    let now = net.now;
    net.a.close(now, c).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n.b.state(s) == Ok(State::CloseWait)));
    net.b.shutdown(net.now, s, Shutdown::Write).unwrap();
    assert!(net.run_until(Duration::from_secs(1), |n| n
        .a
        .connections()
        .any(|e| e.state == State::TimeWait)));
    net.run_for(Duration::from_millis(10));
    net.log.clear();
    net.a.drop_connection(net.now, local, remote).unwrap();
    assert!(net.a.connections().next().is_none(), "TIME-WAIT entry dropped");
    net.run_for(Duration::from_millis(100));
    assert!(net.log.iter().all(|g| !g.flags.contains(TcpFlags::RST)), "{:?}", net.log);
    assert_eq!(net.a.drop_connection(net.now, local, remote), Err(TcpError::NotConnected));
}

#[test]
fn drop_connection_of_an_unaccepted_child_leaves_the_accept_queue() {
    let mut net = Net::linux();
    let (c, l, _s) = net.connect_pair();
    // A second connection that the server never accepts.
    let c2 = net.a.socket().unwrap();
    let _ = net.a.connect(net.now, c2, std::net::SocketAddrV4::new(B, 80));
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c2) == Ok(State::Established)));
    let local = net.a.local_addr(c2).unwrap();
    let server_side = std::net::SocketAddrV4::new(B, 80);
    net.b.drop_connection(net.now, server_side, local).unwrap();
    assert_eq!(net.b.accept(l), Err(TcpError::WouldBlock), "dropped child is not accepted");
    assert!(net.run_until(Duration::from_secs(1), |n| n.a.state(c2) == Ok(State::Closed)));
    assert_eq!(net.a.take_error(c2), Some(TcpError::ConnectionReset));
    assert_eq!(net.a.state(c), Ok(State::Established), "the other connection is untouched");
}
