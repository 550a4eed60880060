//! ICMP in the host: echo (plain, against Linux's bytes, and 8 KB fragmented), errors and
//! their limits, reassembly bounds.

mod host_util;

use host_util::*;
use joyride_base::Rng;
use joyride_base::SplitMix64;
use joyride_ip::arp::{ArpOperation, ArpPacket, ArpRepr};
use joyride_ip::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use joyride_ip::host::{
    DropReason, Host, HostConfig, Interface, ReasmConfig, ReasmDrop, ReasmResult, Reassembler,
};
use joyride_ip::icmpv4::{DstUnreachableCode, Icmpv4Packet, Icmpv4Repr, TimeExceededCode};
use joyride_ip::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use joyride_ip::udp::{UdpPacket, UdpRepr};
use joyride_ip::{Checksum, Ipv4Addr};

/// Captured on Linux veth (see `frames_linux.rs`): `ping -c 1` from 10.77.0.1 to
/// 10.77.0.2, Linux's reply, a UDP datagram to a closed port and Linux's port unreachable.
const LINUX_ECHO_REQUEST: &str = concat!(
    "42ba0008df981e9a2dc999b6080045000054ec4c4000400139c00a4d00010a4d00020800327a0d35000114b4066b0000",
    "0000d05d0e0000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435",
    "3637",
);
const LINUX_ECHO_REPLY: &str = concat!(
    "1e9a2dc999b642ba0008df98080045000054ade200004001b82a0a4d00020a4d000100003a7a0d35000114b4066b0000",
    "0000d05d0e0000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435",
    "3637",
);
const LINUX_UDP: &str = concat!(
    "42ba0008df981e9a2dc999b608004500002d620f40004011c4140a4d00010a4d000214e9270f0019d36968656c6c6f20",
    "6a6f797269646520756470",
);
const LINUX_PORT_UNREACHABLE: &str = concat!(
    "1e9a2dc999b642ba0008df98080045c00049adf600004001b7610a4d00020a4d0001030311c4000000004500002d620f",
    "40004011c4140a4d00010a4d000214e9270f0019d36968656c6c6f206a6f797269646520756470",
);
const LINUX_ARP_REQUEST: &str =
    "ffffffffffff1e9a2dc999b6080600010800060400011e9a2dc999b60a4d00010000000000000a4d0002";

fn quiet_config() -> HostConfig {
    HostConfig { announcements: (0, Default::default()), ..HostConfig::default() }
}

/// The host as 10.77.0.2 on the captured link, having learned Linux's MAC.
fn linux_link_host() -> Host {
    let mac = EthernetAddress([0x42, 0xba, 0x00, 0x08, 0xdf, 0x98]);
    let iface = Interface::new(mac, Ipv4Addr::new(10, 77, 0, 2), 24, None, 1500).unwrap();
    let mut h = Host::new(ms(0), iface, quiet_config());
    h.handle_frame(ms(0), &hex(LINUX_ARP_REQUEST));
    drain(&mut h, ms(0));
    h
}

/// Host A that already knows the peer's MAC.
fn host_a() -> Host {
    host_a_with(quiet_config())
}

fn host_a_with(cfg: HostConfig) -> Host {
    let mut h = host(MAC_A, IP_A, cfg);
    let mut b = vec![0u8; 42];
    let eth = EthernetRepr {
        src: MAC_PEER,
        dst: EthernetAddress::BROADCAST,
        ethertype: EtherType::Arp,
        vlan: None,
    };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut b[..])).unwrap();
    ArpRepr {
        operation: ArpOperation::Request,
        source_hw: MAC_PEER,
        source_ip: IP_PEER,
        target_hw: EthernetAddress([0; 6]),
        target_ip: IP_A,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut b[14..]))
    .unwrap();
    h.handle_frame(ms(0), &b);
    drain(&mut h, ms(0));
    h
}

fn echo_request(ident: u16, seq_no: u16, data: &[u8]) -> Vec<u8> {
    icmp_bytes(&Icmpv4Repr::EchoRequest { ident, seq_no, data })
}

fn udp_bytes(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let r = UdpRepr { src_port: sport, dst_port: dport, payload: data };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut UdpPacket::new_unchecked(&mut b[..]), src, dst, Checksum::Software);
    b
}

#[test]
fn echo_reply_matches_linux() {
    let mut h = linux_link_host();
    assert_eq!(rx(&mut h, ms(1), &hex(LINUX_ECHO_REQUEST)), Rx::Handled);
    let out = drain(&mut h, ms(1));
    assert_eq!(out.len(), 1);
    let ours = &out[0];
    let linux = hex(LINUX_ECHO_REPLY);
    assert_eq!(ours.len(), linux.len());
    // Ethernet header, and the whole ICMP message (checksum included), byte for byte.
    assert_eq!(ours[..14], linux[..14]);
    assert_eq!(ours[34..], linux[34..]);
    // IPv4: same TOS, length, flags (no DF, like Linux's ICMP socket), TTL, protocol,
    // addresses; the identification is ours.
    let (_, ip, _) = parse_ipv4(ours);
    let (_, lip, _) = parse_ipv4(&linux);
    assert_eq!(Ipv4Repr { ident: lip.ident, ..ip }, lip);
    assert_eq!(h.counters().icmp_echo_reply_tx, 1);
}

#[test]
fn port_unreachable_matches_linux() {
    let mut h = linux_link_host();
    assert_eq!(rx(&mut h, ms(1), &hex(LINUX_UDP)), Rx::Dropped(DropReason::UdpNoPort));
    let out = drain(&mut h, ms(1));
    assert_eq!(out.len(), 1);
    let linux = hex(LINUX_PORT_UNREACHABLE);
    assert_eq!(out[0][..14], linux[..14]);
    assert_eq!(out[0][34..], linux[34..], "ICMP message with the quoted header and payload");
    let (_, ip, _) = parse_ipv4(&out[0]);
    let (_, lip, _) = parse_ipv4(&linux);
    assert_eq!(Ipv4Repr { ident: lip.ident, ..ip }, lip);
    assert_eq!(h.counters().icmp_errors_tx, 1);
    assert_accounted(&h);
}

/// Reassembles the fragments a host sent (test side, with the library's reassembler).
fn reassemble(frames: &[Vec<u8>]) -> (Ipv4Repr, Vec<u8>) {
    let mut r = Reassembler::new(ReasmConfig::default());
    for f in frames {
        let (_, ip, payload) = parse_ipv4(f);
        if !ip.is_fragment() {
            return (ip, payload);
        }
        let mut ev = false;
        if let ReasmResult::Complete(i) = r.add(ms(0), &ip, &payload, &mut ev) {
            let (ip, data) = r.datagram(i).unwrap();
            return (ip, data.to_vec());
        }
    }
    panic!("incomplete");
}

#[test]
fn fragmented_8k_ping_in_random_order_with_duplicates_gets_one_reply() {
    let mut rng = SplitMix64::new(42);
    let data: Vec<u8> = (0..8000).map(|_| rng.next_u32() as u8).collect();
    let icmp = echo_request(0x1234, 7, &data);
    let ip = ip_repr(IP_PEER, IP_A, IpProtocol::Icmp, 999);
    let mut frags = fragment(&ip, &icmp, 1480);
    assert_eq!(frags.len(), 6);
    // Duplicates of three fragments, then a shuffle.
    for k in [0, 2, 5] {
        frags.push(frags[k].clone());
    }
    for i in (1..frags.len()).rev() {
        frags.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut h = host_a();
    let mut results = Vec::new();
    for (r, p) in &frags {
        results.push(rx(&mut h, ms(1), &ipv4_frame(MAC_PEER, MAC_A, r, p)));
    }
    let c = *h.counters();
    assert_eq!((c.fragments_rx, c.reassembled, c.icmp_echo_rx), (9, 1, 1));
    // Duplicates arriving after completion start a new datagram that never completes; the
    // ones before it are ignored.
    assert!(c.reasm_duplicates <= 3);
    let out = drain(&mut h, ms(1));
    assert!(out.len() >= 6, "the 8 KB reply is fragmented to the 1500-byte MTU");
    for f in &out {
        assert!(f.len() <= 1514);
        let (eth, ip, _) = parse_ipv4(f);
        assert_eq!(
            (eth.dst, ip.dst, ip.src, ip.protocol),
            (MAC_PEER, IP_PEER, IP_A, IpProtocol::Icmp)
        );
    }
    let (_, reply) = reassemble(&out);
    let p = Icmpv4Packet::new_checked(&reply[..]).unwrap();
    let parsed = Icmpv4Repr::parse(&p, Checksum::Software).unwrap();
    assert_eq!(parsed, Icmpv4Repr::EchoReply { ident: 0x1234, seq_no: 7, data: &data });
    assert_eq!(h.counters().icmp_echo_reply_tx, 1);
    assert_accounted(&h);
}

#[test]
fn overlapping_and_oversized_fragments_drop_the_datagram() {
    let mut h = host_a();
    let icmp = echo_request(1, 1, &[7u8; 3000]);
    let ip = ip_repr(IP_PEER, IP_A, IpProtocol::Icmp, 5);
    let frags = fragment(&ip, &icmp, 1480);
    rx(&mut h, ms(1), &ipv4_frame(MAC_PEER, MAC_A, &frags[0].0, &frags[0].1));
    // A fragment starting inside the first one with different bytes (a teardrop).
    let evil = Ipv4Repr { frag_offset: 1000, more_frags: true, ..frags[1].0 };
    let r = rx(&mut h, ms(1), &ipv4_frame(MAC_PEER, MAC_A, &evil, &[0xAA; 1480]));
    assert_eq!(r, Rx::Dropped(DropReason::Fragment(ReasmDrop::Overlap)));
    assert_eq!(h.reassembler().in_progress(), 0);
    for (r, p) in &frags[1..] {
        rx(&mut h, ms(1), &ipv4_frame(MAC_PEER, MAC_A, r, p));
    }
    assert_eq!(h.counters().reassembled, 0);
    assert!(drain(&mut h, ms(1)).iter().all(|f| !is_ipv4(f)), "no echo reply");
    // The ping of death: a last fragment ending past 65535.
    let big = Ipv4Repr { frag_offset: 65528, more_frags: false, ident: 6, ..frags[0].0 };
    let r = rx(&mut h, ms(2), &ipv4_frame(MAC_PEER, MAC_A, &big, &[0; 16]));
    assert_eq!(r, Rx::Dropped(DropReason::Fragment(ReasmDrop::TooBig)));
    assert_eq!(h.counters().reasm_overlaps, 1);
    assert_accounted(&h);
}

#[test]
fn fragment_flood_keeps_memory_bounded() {
    let mut h = host_a();
    let mem = h.reassembler().memory();
    let slots = h.reassembler().config().slots;
    for id in 0..10_000u32 {
        let ip = Ipv4Repr {
            frag_offset: 8,
            more_frags: true,
            ..ip_repr(IP_PEER, IP_A, IpProtocol::Udp, id as u16)
        };
        let src = Ipv4Repr { src: Ipv4Addr::new(10, 0, 0, 3 + (id >> 16) as u8), ..ip };
        rx(&mut h, ms(u64::from(id)), &ipv4_frame(MAC_PEER, MAC_A, &src, &[0; 64]));
    }
    let c = *h.counters();
    assert_eq!(c.fragments_rx, 10_000);
    assert_eq!(c.reasm_evicted, 10_000 - slots as u64);
    assert_eq!(h.reassembler().in_progress(), slots);
    assert_eq!(h.reassembler().memory(), mem);
    // All of them time out, and with no fragment zero, no ICMP is sent.
    let out = drain(&mut h, ms(60_000));
    assert!(out.is_empty());
    assert_eq!(h.counters().reasm_timeouts, slots as u64);
    assert_eq!(h.reassembler().in_progress(), 0);
    assert_accounted(&h);
}

#[test]
fn reassembly_timeout_sends_time_exceeded_only_with_fragment_zero() {
    let mut h = host_a();
    let udp = udp_bytes(IP_PEER, IP_A, 1000, 2000, &[5u8; 3000]);
    let ip = ip_repr(IP_PEER, IP_A, IpProtocol::Udp, 77);
    let frags = fragment(&ip, &udp, 1480);
    // Datagram 77: fragment zero only. Datagram 78: the last fragment only.
    rx(&mut h, ms(1000), &ipv4_frame(MAC_PEER, MAC_A, &frags[0].0, &frags[0].1));
    let last = Ipv4Repr { ident: 78, ..frags[2].0 };
    rx(&mut h, ms(1000), &ipv4_frame(MAC_PEER, MAC_A, &last, &frags[2].1));
    assert_eq!(h.poll_at(), Some(ms(31_000)));
    assert!(drain(&mut h, ms(30_999)).is_empty());
    let out = drain(&mut h, ms(31_000));
    assert_eq!(out.len(), 1);
    let (_, ipr, payload) = parse_ipv4(&out[0]);
    assert_eq!((ipr.dst, ipr.protocol), (IP_PEER, IpProtocol::Icmp));
    let p = Icmpv4Packet::new_checked(&payload[..]).unwrap();
    let Icmpv4Repr::TimeExceeded { code, header, data } =
        Icmpv4Repr::parse(&p, Checksum::Software).unwrap()
    else {
        panic!("not time exceeded")
    };
    // RFC 792: code 1, quoting fragment zero's header and first bytes (the UDP header).
    assert_eq!(code, TimeExceededCode::FragReassembly);
    assert_eq!((header.ident, header.more_frags, header.frag_offset), (77, true, 0));
    assert_eq!(&data[..8], &udp[..8]);
    assert_eq!(h.counters().reasm_timeouts, 2);
}

#[test]
fn no_icmp_errors_about_icmp_errors_or_broadcasts() {
    let mut h = host_a();
    // An ICMP error message, fragmented, whose fragment zero arrives alone.
    let quoted = ip_repr(IP_A, IP_PEER, IpProtocol::Udp, 1);
    let err = icmp_bytes(&Icmpv4Repr::DstUnreachable {
        code: DstUnreachableCode::HostUnreachable,
        header: Ipv4Repr { payload_len: 2000, ..quoted },
        data: &[0u8; 2000],
    });
    let ip = ip_repr(IP_PEER, IP_A, IpProtocol::Icmp, 9);
    let frags = fragment(&ip, &err, 1480);
    rx(&mut h, ms(0), &ipv4_frame(MAC_PEER, MAC_A, &frags[0].0, &frags[0].1));
    assert!(drain(&mut h, ms(40_000)).is_empty());
    assert_eq!(h.counters().reasm_timeouts, 1);
    // UDP to a closed port sent to the subnet broadcast, and as a link-layer broadcast.
    let bcast = Ipv4Addr::new(10, 0, 0, 255);
    let udp = udp_bytes(IP_PEER, bcast, 1, 2, b"x");
    let r = rx(
        &mut h,
        ms(40_001),
        &ipv4_frame(
            MAC_PEER,
            EthernetAddress::BROADCAST,
            &ip_repr(IP_PEER, bcast, IpProtocol::Udp, 3),
            &udp,
        ),
    );
    assert_eq!(r, Rx::Dropped(DropReason::UdpNoPort));
    assert!(drain(&mut h, ms(40_001)).is_empty());
    assert_eq!(h.counters().icmp_errors_tx, 0);
    // Echo to a broadcast address: ignored (Linux icmp_echo_ignore_broadcasts).
    let echo = echo_request(1, 1, b"hi");
    let r = rx(
        &mut h,
        ms(40_002),
        &ipv4_frame(
            MAC_PEER,
            EthernetAddress::BROADCAST,
            &ip_repr(IP_PEER, bcast, IpProtocol::Icmp, 4),
            &echo,
        ),
    );
    assert_eq!(r, Rx::Dropped(DropReason::Ignored));
    assert!(drain(&mut h, ms(40_002)).is_empty());
    assert_accounted(&h);
}

#[test]
fn icmp_errors_are_rate_limited() {
    let mut h = host_a();
    for i in 0..100u16 {
        let udp = udp_bytes(IP_PEER, IP_A, 1000, 3000 + i, b"x");
        rx(
            &mut h,
            ms(5),
            &ipv4_frame(MAC_PEER, MAC_A, &ip_repr(IP_PEER, IP_A, IpProtocol::Udp, i), &udp),
        );
    }
    let c = *h.counters();
    assert_eq!((c.udp_no_port, c.icmp_errors_tx, c.icmp_rate_limited), (100, 50, 50));
    assert_eq!(drain(&mut h, ms(5)).len(), 50);
    // 1000 per second: 10 ms later ten more tokens.
    for i in 0..20u16 {
        let udp = udp_bytes(IP_PEER, IP_A, 1000, 3000 + i, b"x");
        rx(
            &mut h,
            ms(15),
            &ipv4_frame(MAC_PEER, MAC_A, &ip_repr(IP_PEER, IP_A, IpProtocol::Udp, i), &udp),
        );
    }
    assert_eq!(h.counters().icmp_errors_tx, 60);
}

#[test]
fn unknown_protocol_gets_protocol_unreachable() {
    let mut h = host_a();
    let ip = ip_repr(IP_PEER, IP_A, IpProtocol::Unknown(253), 1);
    let r = rx(&mut h, ms(1), &ipv4_frame(MAC_PEER, MAC_A, &ip, b"experimental"));
    assert_eq!(r, Rx::Dropped(DropReason::UnknownProtocol));
    let out = drain(&mut h, ms(1));
    let (_, _, payload) = parse_ipv4(&out[0]);
    let p = Icmpv4Packet::new_checked(&payload[..]).unwrap();
    let m = Icmpv4Repr::parse(&p, Checksum::Software).unwrap();
    assert!(matches!(
        m,
        Icmpv4Repr::DstUnreachable {
            code: DstUnreachableCode::ProtoUnreachable,
            data: b"experimental",
            ..
        }
    ));
}

#[test]
fn malformed_ipv4_is_dropped_and_counted() {
    let mut h = host_a();
    let good = ipv4_frame(
        MAC_PEER,
        MAC_A,
        &ip_repr(IP_PEER, IP_A, IpProtocol::Icmp, 1),
        &echo_request(1, 1, b"abc"),
    );
    let mut bad_sum = good.clone();
    bad_sum[24] ^= 0xff;
    assert_eq!(rx(&mut h, ms(0), &bad_sum), Rx::Dropped(DropReason::BadChecksum));
    let mut v6 = good.clone();
    v6[14] = 0x65;
    assert_eq!(rx(&mut h, ms(0), &v6), Rx::Dropped(DropReason::BadVersion));
    assert_eq!(rx(&mut h, ms(0), &good[..30]), Rx::Dropped(DropReason::Truncated));
    let mut icmp_sum = good.clone();
    icmp_sum[40] ^= 1;
    assert_eq!(rx(&mut h, ms(0), &icmp_sum), Rx::Dropped(DropReason::BadChecksum));
    let mut other_mac = good.clone();
    other_mac[5] = 0x77;
    assert_eq!(rx(&mut h, ms(0), &other_mac), Rx::Dropped(DropReason::NotForUs));
    let other_ip =
        ipv4_frame(MAC_PEER, MAC_A, &ip_repr(IP_PEER, IP_B, IpProtocol::Icmp, 1), b"12345678");
    assert_eq!(rx(&mut h, ms(0), &other_ip), Rx::Dropped(DropReason::NotForUs));
    let martian = ipv4_frame(
        MAC_PEER,
        MAC_A,
        &ip_repr(Ipv4Addr::new(224, 0, 0, 1), IP_A, IpProtocol::Icmp, 1),
        b"12345678",
    );
    assert_eq!(rx(&mut h, ms(0), &martian), Rx::Dropped(DropReason::Martian));
    let mut ipv6 = good.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    assert_eq!(rx(&mut h, ms(0), &ipv6), Rx::Dropped(DropReason::Unsupported));
    assert_eq!(rx(&mut h, ms(0), &good), Rx::Handled);
    let c = h.counters();
    assert_eq!(
        (c.rx_bad_checksum, c.rx_bad_version, c.rx_truncated, c.rx_not_for_us, c.rx_martian),
        (2, 1, 1, 2, 1)
    );
    assert_accounted(&h);
    // TCP goes up untouched.
    let tcp =
        ipv4_frame(MAC_PEER, MAC_A, &ip_repr(IP_PEER, IP_A, IpProtocol::Tcp, 1), b"segment-bytes");
    assert_eq!(rx(&mut h, ms(0), &tcp), Rx::Tcp(b"segment-bytes".to_vec()));
    let _ = Ipv4Packet::new_checked(&tcp[14..]).unwrap();
}
