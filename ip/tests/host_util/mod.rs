//! Helpers shared by the `host_*` tests: building hosts and frames, a test-side fragmenter,
//! and a loop joining two hosts on a virtual wire.
#![allow(dead_code, unreachable_pub)]

use joyride_base::Instant;
use joyride_ip::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use joyride_ip::host::{Host, HostConfig, Inbound, Interface};
use joyride_ip::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use joyride_ip::ipv4::{Ecn, IpProtocol, Ipv4Packet, Ipv4Repr};
use joyride_ip::{Checksum, Ipv4Addr};

pub const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0a]);
pub const MAC_B: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x0b]);
pub const MAC_PEER: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x99]);
pub const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const IP_PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);

pub fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

pub fn ms(n: u64) -> Instant {
    Instant::from_millis(n)
}

pub fn host(mac: EthernetAddress, ip: Ipv4Addr, config: HostConfig) -> Host {
    let iface = Interface::new(mac, ip, 24, None, 1500).unwrap();
    Host::new(ms(0), iface, config)
}

/// Drains every frame the host has queued (running its timers at `now`).
pub fn drain(h: &mut Host, now: Instant) -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    h.poll_transmit(now, &mut |f| v.push(f.to_vec()));
    v
}

/// An Ethernet frame from `src` to `dst` around an IPv4 packet.
pub fn ipv4_frame(
    src: EthernetAddress,
    dst: EthernetAddress,
    ip: &Ipv4Repr,
    payload: &[u8],
) -> Vec<u8> {
    let eth = EthernetRepr { src, dst, ethertype: EtherType::Ipv4, vlan: None };
    let mut b = vec![0u8; 14 + 20 + payload.len()];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut b[..])).unwrap();
    let ip = Ipv4Repr { payload_len: payload.len(), ..*ip };
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut b[14..]), Checksum::Software).unwrap();
    b[34..].copy_from_slice(payload);
    b
}

pub fn ip_repr(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, ident: u16) -> Ipv4Repr {
    Ipv4Repr {
        src,
        dst,
        protocol,
        payload_len: 0,
        ttl: 64,
        dscp: 0,
        ecn: Ecn::NotEct,
        ident,
        dont_frag: false,
        more_frags: false,
        frag_offset: 0,
    }
}

/// The test's own fragmenter (RFC 791 §3.2): pieces of `piece` bytes (a multiple of 8).
pub fn fragment(ip: &Ipv4Repr, payload: &[u8], piece: usize) -> Vec<(Ipv4Repr, Vec<u8>)> {
    assert_eq!(piece % 8, 0);
    let mut v = Vec::new();
    let mut off = 0;
    while off < payload.len() {
        let len = piece.min(payload.len() - off);
        let r = Ipv4Repr {
            payload_len: len,
            frag_offset: off as u16,
            more_frags: off + len < payload.len(),
            ..*ip
        };
        v.push((r, payload[off..off + len].to_vec()));
        off += len;
    }
    v
}

/// An ICMP message's bytes.
pub fn icmp_bytes(m: &Icmpv4Repr<'_>) -> Vec<u8> {
    let mut b = vec![0u8; m.buffer_len()];
    m.emit(&mut Icmpv4Packet::new_unchecked(&mut b[..]), Checksum::Software).unwrap();
    b
}

/// Parses a frame the host sent: Ethernet header, IPv4 header and payload.
pub fn parse_ipv4(frame: &[u8]) -> (EthernetRepr, Ipv4Repr, Vec<u8>) {
    let f = EthernetFrame::new_checked(frame).unwrap();
    let eth = EthernetRepr::parse(&f).unwrap();
    assert_eq!(eth.ethertype, EtherType::Ipv4);
    let p = Ipv4Packet::new_checked(f.payload()).unwrap();
    let ip = Ipv4Repr::parse(&p, Checksum::Software).unwrap();
    (eth, ip, p.payload().to_vec())
}

/// Whether a frame is IPv4.
pub fn is_ipv4(frame: &[u8]) -> bool {
    frame.len() >= 14 && frame[12..14] == [0x08, 0x00]
}

/// Moves frames between `a` and `b` until neither has anything to send; returns how many
/// frames crossed. Inbound results are collected per side.
pub fn pump(a: &mut Host, b: &mut Host, now: Instant) -> usize {
    let mut n = 0;
    for _ in 0..1000 {
        let fa = drain(a, now);
        let fb = drain(b, now);
        if fa.is_empty() && fb.is_empty() {
            return n;
        }
        n += fa.len() + fb.len();
        for f in &fa {
            let _ = b.handle_frame(now, f);
        }
        for f in &fb {
            let _ = a.handle_frame(now, f);
        }
    }
    panic!("hosts never went quiet");
}

/// Feeds a frame and reports whether it was dropped.
pub fn feed(h: &mut Host, now: Instant, frame: &[u8]) -> String {
    format!("{:?}", h.handle_frame(now, frame))
}

/// Asserts the disposition counters add up.
pub fn assert_accounted(h: &Host) {
    let c = h.counters();
    assert_eq!(c.rx_accounted(), c.rx_frames, "{c:?}");
}

/// Whether an inbound result is a drop.
pub fn is_drop(r: &Inbound<'_>) -> bool {
    matches!(r, Inbound::Dropped(_))
}

/// [`Inbound`] with owned contents, for tests that keep the result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rx {
    Tcp(Vec<u8>),
    Udp(joyride_ip::host::UdpHandle),
    IcmpError,
    Handled,
    Dropped(joyride_ip::host::DropReason),
}

/// Feeds a frame, returning an owned summary of what happened.
pub fn rx(h: &mut Host, now: Instant, frame: &[u8]) -> Rx {
    match h.handle_frame(now, frame) {
        Inbound::Tcp { payload, .. } => Rx::Tcp(payload.to_vec()),
        Inbound::Udp(s) => Rx::Udp(s),
        Inbound::IcmpError(_) => Rx::IcmpError,
        Inbound::Handled => Rx::Handled,
        Inbound::Dropped(d) => Rx::Dropped(d),
    }
}
