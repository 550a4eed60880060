//! UDP through two hosts joined by a virtual wire: echo both ways, datagrams larger than the
//! MTU, errors.

mod host_util;

use core::net::SocketAddrV4;

use host_util::*;
use joyride_ip::host::{Host, HostConfig, Inbound, UdpError, UDP_MAX_PAYLOAD};
use joyride_ip::ipv4::IpProtocol;
use joyride_ip::Ipv4Addr;

fn pair() -> (Host, Host) {
    let a = host(MAC_A, IP_A, HostConfig { seed: 1, ..HostConfig::default() });
    let b = host(MAC_B, IP_B, HostConfig { seed: 2, ..HostConfig::default() });
    (a, b)
}

/// Like [`pump`], but `b` echoes every datagram its socket receives back to the sender.
fn pump_echo(a: &mut Host, b: &mut Host, now: joyride_base::Instant) {
    for _ in 0..1000 {
        let fa = drain(a, now);
        let fb = drain(b, now);
        if fa.is_empty() && fb.is_empty() {
            return;
        }
        for f in &fa {
            if let Inbound::Udp(s) = b.handle_frame(now, f) {
                let mut buf = vec![0u8; 70_000];
                let m = b.udp_recv_from(s, &mut buf).unwrap();
                b.udp_send_to(now, s, Some(m.from), &buf[..m.len]).unwrap();
            }
        }
        for f in &fb {
            let _ = a.handle_frame(now, f);
        }
    }
    panic!("never quiet");
}

fn echo_sizes(a: &mut Host, b: &mut Host, sizes: &[usize]) {
    let server = b.udp().open().unwrap();
    b.udp().bind(server, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7)).unwrap();
    let client = a.udp().open().unwrap();
    let to = SocketAddrV4::new(b.addr(), 7);
    for (k, &n) in sizes.iter().enumerate() {
        let msg: Vec<u8> = (0..n).map(|i| (i * 31 + k) as u8).collect();
        assert_eq!(a.udp_send_to(ms(k as u64), client, Some(to), &msg), Ok(n));
        pump_echo(a, b, ms(k as u64));
        let mut buf = vec![0u8; 70_000];
        let m = a.udp_recv_from(client, &mut buf).unwrap();
        assert_eq!(m.from, to);
        assert_eq!(m.len, n);
        assert!(buf[..n] == msg[..], "echo of {n} bytes differs");
    }
    b.udp().close(server).unwrap();
    a.udp().close(client).unwrap();
}

#[test]
fn udp_echo_both_ways_including_larger_than_mtu() {
    let (mut a, mut b) = pair();
    pump(&mut a, &mut b, ms(0));
    let sizes = [0, 1, 1472, 1473, 3000, 8972, 20_000, UDP_MAX_PAYLOAD];
    echo_sizes(&mut a, &mut b, &sizes);
    echo_sizes(&mut b, &mut a, &sizes);
    for h in [&a, &b] {
        let c = h.counters();
        assert!(c.tx_fragmented >= 6 && c.reassembled >= 6, "{c:?}");
        assert_eq!(c.udp_delivered, 2 * sizes.len() as u64);
        assert_eq!(c.rx_frag_dropped + c.udp_rcvbuf_errors + c.rx_bad_checksum, 0);
        assert_accounted(h);
    }
}

#[test]
fn first_datagram_to_an_unresolved_neighbour_survives_fragmented() {
    let (mut a, mut b) = pair();
    // No announcements exchanged first: the whole 64 KiB datagram waits for ARP.
    let server = b.udp().open().unwrap();
    b.udp().bind(server, SocketAddrV4::new(IP_B, 9)).unwrap();
    let client = a.udp().open().unwrap();
    let msg = vec![0x5a; UDP_MAX_PAYLOAD];
    a.udp_send_to(ms(0), client, Some(SocketAddrV4::new(IP_B, 9)), &msg).unwrap();
    assert_eq!(a.arp().pending(), 45);
    pump(&mut a, &mut b, ms(0));
    let mut buf = vec![0u8; 70_000];
    let m = b.udp_recv_from(server, &mut buf).unwrap();
    assert_eq!(m.len, msg.len());
    assert_eq!(m.from.ip(), &IP_A);
}

#[test]
fn connected_socket_gets_econnrefused_and_filters_peers() {
    let (mut a, mut b) = pair();
    pump(&mut a, &mut b, ms(0));
    let c = a.udp().open().unwrap();
    a.udp_connect(c, SocketAddrV4::new(IP_B, 4444)).unwrap();
    a.udp_send_to(ms(1), c, None, b"anyone?").unwrap();
    pump(&mut a, &mut b, ms(1));
    assert_eq!(b.counters().udp_no_port, 1);
    assert_eq!(a.counters().icmp_errors_rx, 1);
    let mut buf = [0u8; 16];
    assert_eq!(a.udp_recv_from(c, &mut buf), Err(UdpError::ConnectionRefused));
    assert_eq!(a.udp_recv_from(c, &mut buf), Err(UdpError::WouldBlock));
    // A datagram from another port of the peer does not reach the connected socket.
    let port = a.udp().local_addr(c).unwrap().port();
    let s = b.udp().open().unwrap();
    b.udp().bind(s, SocketAddrV4::new(IP_B, 5555)).unwrap();
    b.udp_send_to(ms(2), s, Some(SocketAddrV4::new(IP_A, port)), b"stranger").unwrap();
    pump(&mut a, &mut b, ms(2));
    assert_eq!(a.udp_recv_from(c, &mut buf), Err(UdpError::WouldBlock));
    assert_eq!(a.counters().udp_no_port, 1);
}

#[test]
fn send_errors() {
    let (mut a, _) = pair();
    let s = a.udp().open().unwrap();
    let far = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9);
    assert_eq!(a.udp_send_to(ms(0), s, Some(far), b"x"), Err(UdpError::NetworkUnreachable));
    assert_eq!(a.udp_connect(s, far), Err(UdpError::NetworkUnreachable));
    assert_eq!(UdpError::NetworkUnreachable.errno(), 101);
    assert_eq!(a.udp_send_to(ms(0), s, None, b"x"), Err(UdpError::DestAddrRequired));
    let big = vec![0u8; UDP_MAX_PAYLOAD + 1];
    let peer = SocketAddrV4::new(IP_B, 9);
    assert_eq!(a.udp_send_to(ms(0), s, Some(peer), &big), Err(UdpError::MessageTooLong));
    a.udp().close(s).unwrap();
    assert_eq!(a.udp_send_to(ms(0), s, Some(peer), b"x"), Err(UdpError::BadSocket));
    // Raw IPv4 sends report routing and size errors.
    let r = a.send_ipv4(ms(0), far.ip().to_owned(), IpProtocol::Udp, 1, |_| {});
    assert_eq!(r.unwrap_err().errno(), 101);
}

#[test]
fn loopback_to_own_address() {
    let (mut a, _) = pair();
    let s = a.udp().open().unwrap();
    a.udp().bind(s, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1234)).unwrap();
    a.udp_send_to(ms(0), s, Some(SocketAddrV4::new(IP_A, 1234)), b"me").unwrap();
    let mut buf = [0u8; 4];
    let m = a.udp_recv_from(s, &mut buf).unwrap();
    assert_eq!((&buf[..m.len], m.from), (&b"me"[..], SocketAddrV4::new(IP_A, 1234)));
}

#[test]
fn loopback_127_like_linux() {
    let (mut a, _) = pair();
    let lo = |p| SocketAddrV4::new(Ipv4Addr::LOCALHOST, p);
    // A socket bound to 127.0.0.1 (any 127/8 address binds) and a wildcard client.
    let srv = a.udp().open().unwrap();
    a.udp().bind(srv, lo(0)).unwrap();
    let port = a.udp().local_addr(srv).unwrap().port();
    let other = a.udp().open().unwrap();
    a.udp().bind(other, SocketAddrV4::new(Ipv4Addr::new(127, 1, 2, 3), 0)).unwrap();
    let cli = a.udp().open().unwrap();
    a.udp_send_to(ms(0), cli, Some(lo(port)), b"ping").unwrap();
    let mut buf = [0u8; 8];
    let m = a.udp_recv_from(srv, &mut buf).unwrap();
    // From 127.0.0.1 (the source Linux picks towards 127/8) and the client's ephemeral port.
    let cport = a.udp().local_addr(cli).unwrap().port();
    assert_eq!((&buf[..m.len], m.from), (&b"ping"[..], lo(cport)));
    // The bound socket answers from its own address.
    a.udp_send_to(ms(0), srv, Some(m.from), b"pong").unwrap();
    let m = a.udp_recv_from(cli, &mut buf).unwrap();
    assert_eq!((&buf[..m.len], m.from), (&b"pong"[..], lo(port)));
    // A socket bound to our own address does not get datagrams for 127.0.0.1: an unconnected
    // sender ignores the port unreachable (Linux without IP_RECVERR), a connected one gets
    // ECONNREFUSED at its next call.
    let mine = a.udp().open().unwrap();
    a.udp().bind(mine, SocketAddrV4::new(IP_A, 0)).unwrap();
    let mport = a.udp().local_addr(mine).unwrap().port();
    assert_eq!(a.udp_send_to(ms(0), cli, Some(lo(mport)), b"x"), Ok(1));
    assert_eq!(a.udp().take_error(cli), Ok(None));
    assert_eq!(a.udp().queued(mine), 0);
    let conn = a.udp().open().unwrap();
    a.udp_connect(conn, lo(mport)).unwrap();
    assert_eq!(a.udp_send_to(ms(0), conn, None, b"x"), Ok(1));
    assert_eq!(a.udp_recv_from(conn, &mut buf), Err(UdpError::ConnectionRefused));
    assert_eq!(a.udp_recv_from(conn, &mut buf), Err(UdpError::WouldBlock));
    // Connected to a loopback peer: getsockname shows 127.0.0.1.
    a.udp_connect(cli, lo(port)).unwrap();
    assert_eq!(a.udp().local_addr(cli).unwrap(), lo(cport));
    a.udp_send_to(ms(0), cli, None, b"again").unwrap();
    assert_eq!(a.udp_recv_from(srv, &mut buf).unwrap().from, lo(cport));
    // A loopback source never leaves the host (Linux: EINVAL); nothing reaches the wire.
    drain(&mut a, ms(0));
    let far = SocketAddrV4::new(IP_B, 9);
    assert_eq!(a.udp_send_to(ms(0), srv, Some(far), b"x"), Err(UdpError::InvalidInput));
    assert!(drain(&mut a, ms(0)).is_empty());
}

#[test]
fn pool_exhaustion_is_eagain_not_growth() {
    let cfg = HostConfig { tx_slots: 8, ..HostConfig::default() };
    let mut a = host(MAC_A, IP_A, cfg);
    let s = a.udp().open().unwrap();
    let to = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 255), 9);
    a.udp().set_broadcast(s, true).unwrap();
    let mut ok = 0;
    let mut again = 0;
    for _ in 0..20 {
        match a.udp_send_to(ms(0), s, Some(to), &[0u8; 4000]) {
            Ok(_) => ok += 1,
            Err(UdpError::WouldBlock) => again += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(ok >= 1 && again >= 1 && ok + again == 20);
    assert!(a.tx_queued() <= 8);
    let frames = drain(&mut a, ms(0));
    assert_eq!(frames.len(), ok * 3 + 1, "three fragments each, plus the announcement");
    assert_eq!(a.tx_free(), 8);
}
