//! ARP in the host: answers, learning, resolution with a bounded queue, timeouts, spoofing.

mod host_util;

use host_util::*;
use joyride_ip::arp::{ArpOperation, ArpPacket, ArpRepr};
use joyride_ip::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use joyride_ip::host::{ArpConfig, DropReason, Host, HostConfig, Inbound, Interface};
use joyride_ip::ipv4::IpProtocol;
use joyride_ip::Ipv4Addr;

/// Linux 10.77.0.1 (1e:9a:2d:c9:99:b6) asking who has 10.77.0.2 (captured on veth, see
/// `frames_linux.rs`), and Linux 10.77.0.2's reply.
const LINUX_ARP_REQUEST: &str =
    "ffffffffffff1e9a2dc999b6080600010800060400011e9a2dc999b60a4d00010000000000000a4d0002";
const LINUX_ARP_REPLY: &str =
    "1e9a2dc999b642ba0008df980806000108000604000242ba0008df980a4d00021e9a2dc999b60a4d0001";

fn arp_frame(src_mac: EthernetAddress, dst_mac: EthernetAddress, repr: &ArpRepr) -> Vec<u8> {
    let mut b = vec![0u8; 42];
    let eth = EthernetRepr { src: src_mac, dst: dst_mac, ethertype: EtherType::Arp, vlan: None };
    eth.emit(&mut EthernetFrame::new_unchecked(&mut b[..])).unwrap();
    repr.emit(&mut ArpPacket::new_unchecked(&mut b[14..])).unwrap();
    b
}

fn parse_arp(frame: &[u8]) -> (EthernetRepr, ArpRepr) {
    let f = EthernetFrame::new_checked(frame).unwrap();
    let eth = EthernetRepr::parse(&f).unwrap();
    assert_eq!(eth.ethertype, EtherType::Arp);
    (eth, ArpRepr::parse(&ArpPacket::new_checked(f.payload()).unwrap()).unwrap())
}

fn request(from_mac: EthernetAddress, from_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        from_mac,
        EthernetAddress::BROADCAST,
        &ArpRepr {
            operation: ArpOperation::Request,
            source_hw: from_mac,
            source_ip: from_ip,
            target_hw: EthernetAddress([0; 6]),
            target_ip: target,
        },
    )
}

fn reply(
    from_mac: EthernetAddress,
    from_ip: Ipv4Addr,
    to_mac: EthernetAddress,
    to: Ipv4Addr,
) -> Vec<u8> {
    arp_frame(
        from_mac,
        to_mac,
        &ArpRepr {
            operation: ArpOperation::Reply,
            source_hw: from_mac,
            source_ip: from_ip,
            target_hw: to_mac,
            target_ip: to,
        },
    )
}

/// A host with no start-up announcements, so that tests see only what they cause.
fn quiet(mac: EthernetAddress, ip: Ipv4Addr) -> Host {
    host(mac, ip, HostConfig { announcements: (0, Default::default()), ..HostConfig::default() })
}

#[test]
fn answers_linux_request_byte_for_byte() {
    let mac = EthernetAddress([0x42, 0xba, 0x00, 0x08, 0xdf, 0x98]);
    let iface = Interface::new(mac, Ipv4Addr::new(10, 77, 0, 2), 24, None, 1500).unwrap();
    let mut h = Host::new(
        ms(0),
        iface,
        HostConfig { announcements: (0, Default::default()), ..Default::default() },
    );
    assert_eq!(h.handle_frame(ms(1), &hex(LINUX_ARP_REQUEST)), Inbound::Handled);
    let out = drain(&mut h, ms(1));
    assert_eq!(out, vec![hex(LINUX_ARP_REPLY)]);
    // RFC 826: the requester was learned from the request targeted at us.
    let linux = EthernetAddress([0x1e, 0x9a, 0x2d, 0xc9, 0x99, 0xb6]);
    assert_eq!(h.arp().get(Ipv4Addr::new(10, 77, 0, 1)), Some(linux));
    let c = h.counters();
    assert_eq!((c.arp_requests_rx, c.arp_replies_tx, c.arp_learned), (1, 1, 1));
    assert_accounted(&h);
}

#[test]
fn gratuitous_arp_at_start() {
    let mut h = host(MAC_A, IP_A, HostConfig::default());
    let first = drain(&mut h, ms(0));
    assert_eq!(first.len(), 1);
    let (eth, a) = parse_arp(&first[0]);
    assert_eq!(eth.dst, EthernetAddress::BROADCAST);
    // RFC 5227 §3: sender and target protocol addresses both ours.
    assert_eq!(
        (a.operation, a.source_ip, a.target_ip, a.source_hw),
        (ArpOperation::Request, IP_A, IP_A, MAC_A)
    );
    assert_eq!(h.poll_at(), Some(ms(2000)));
    assert!(drain(&mut h, ms(1999)).is_empty());
    assert_eq!(drain(&mut h, ms(2000)).len(), 1);
    assert_eq!(h.counters().arp_announcements_tx, 2);
    assert!(drain(&mut h, ms(10_000)).is_empty());
    assert_eq!(h.poll_at(), None);
}

#[test]
fn requests_for_others_are_not_answered_nor_learned() {
    let mut h = quiet(MAC_A, IP_A);
    let r = rx(&mut h, ms(0), &request(MAC_PEER, IP_PEER, Ipv4Addr::new(10, 0, 0, 77)));
    assert_eq!(r, Rx::Dropped(DropReason::NotForUs));
    assert!(drain(&mut h, ms(0)).is_empty());
    assert!(h.arp().is_empty());
    // An unsolicited reply for an unknown address does not create an entry either.
    let r = rx(&mut h, ms(0), &reply(MAC_PEER, IP_PEER, MAC_A, IP_A));
    assert_eq!(r, Rx::Handled);
    assert!(h.arp().is_empty());
    assert!(drain(&mut h, ms(0)).is_empty());
    assert_accounted(&h);
}

#[test]
fn resolution_flushes_the_queue_in_order() {
    let mut h = quiet(MAC_A, IP_A);
    for i in 0..3u8 {
        h.send_ipv4(ms(0), IP_PEER, IpProtocol::Udp, 4, |b| b.copy_from_slice(&[i; 4])).unwrap();
    }
    let out = drain(&mut h, ms(0));
    assert_eq!(out.len(), 1, "only the ARP request goes out");
    let (eth, a) = parse_arp(&out[0]);
    assert_eq!(
        (eth.dst, a.operation, a.target_ip, a.source_ip),
        (EthernetAddress::BROADCAST, ArpOperation::Request, IP_PEER, IP_A)
    );
    assert_eq!(h.arp().pending(), 3);
    assert_eq!(h.handle_frame(ms(5), &reply(MAC_PEER, IP_PEER, MAC_A, IP_A)), Inbound::Handled);
    let out = drain(&mut h, ms(5));
    assert_eq!(out.len(), 3);
    for (i, f) in out.iter().enumerate() {
        let (eth, ip, payload) = parse_ipv4(f);
        assert_eq!((eth.dst, eth.src, ip.dst), (MAC_PEER, MAC_A, IP_PEER));
        assert_eq!(payload, vec![i as u8; 4]);
    }
    // Later packets go straight out.
    h.send_ipv4(ms(6), IP_PEER, IpProtocol::Udp, 1, |b| b[0] = 9).unwrap();
    assert_eq!(drain(&mut h, ms(6)).len(), 1);
    assert_eq!(h.arp().pending(), 0);
}

#[test]
fn retransmits_then_fails_and_drops_the_queue() {
    let mut h = quiet(MAC_A, IP_A);
    h.send_ipv4(ms(0), IP_PEER, IpProtocol::Udp, 4, |_| {}).unwrap();
    h.send_ipv4(ms(0), IP_PEER, IpProtocol::Udp, 4, |_| {}).unwrap();
    let free_before = h.tx_capacity();
    let mut requests = drain(&mut h, ms(0)).len();
    for t in [999, 1000, 1500, 2000, 2999] {
        requests += drain(&mut h, ms(t)).len();
    }
    assert_eq!(requests, 3, "RFC 1122 §2.3.2.1: one request per second, three tries");
    assert_eq!(h.counters().arp_failed, 0);
    assert!(drain(&mut h, ms(3000)).is_empty());
    let c = h.counters();
    assert_eq!((c.arp_failed, c.arp_queue_dropped, c.arp_requests_tx), (1, 2, 3));
    assert!(h.arp().is_empty());
    assert_eq!(h.tx_free(), free_before, "every slot returned to the pool");
}

#[test]
fn queue_per_destination_and_total_are_bounded() {
    let cfg = HostConfig {
        arp: ArpConfig { queue_per_dest: 4, ..ArpConfig::default() },
        arp_pending_total: 10,
        tx_slots: 64,
        announcements: (0, Default::default()),
        ..HostConfig::default()
    };
    let mut h = host(MAC_A, IP_A, cfg);
    for i in 0..10u8 {
        h.send_ipv4(ms(0), IP_PEER, IpProtocol::Udp, 1, |b| b[0] = i).unwrap();
    }
    assert_eq!(h.arp().pending(), 4);
    assert_eq!(h.counters().arp_queue_dropped, 6);
    // More neighbours: the total cap holds.
    for n in 20..30u8 {
        for _ in 0..4 {
            h.send_ipv4(ms(0), Ipv4Addr::new(10, 0, 0, n), IpProtocol::Udp, 1, |_| {}).unwrap();
        }
    }
    assert!(h.arp().pending() <= 10);
    drain(&mut h, ms(0));
    // The newest four survived for the first neighbour (RFC 1122 §2.3.2.2: keep the latest).
    h.handle_frame(ms(1), &reply(MAC_PEER, IP_PEER, MAC_A, IP_A));
    let payloads: Vec<u8> = drain(&mut h, ms(1)).iter().map(|f| parse_ipv4(f).2[0]).collect();
    assert_eq!(payloads, [6, 7, 8, 9]);
}

#[test]
fn table_is_bounded_under_a_request_flood() {
    let cfg = HostConfig {
        arp: ArpConfig { capacity: 32, ..ArpConfig::default() },
        announcements: (0, Default::default()),
        ..HostConfig::default()
    };
    let mut h = host(MAC_A, IP_A, cfg);
    for i in 0..5000u32 {
        let ip = Ipv4Addr::new(10, 0, 0, 3 + (i % 250) as u8);
        let mac = EthernetAddress([2, 1, (i >> 16) as u8, (i >> 8) as u8, i as u8, 1]);
        h.handle_frame(ms(u64::from(i)), &request(mac, ip, IP_A));
        drain(&mut h, ms(u64::from(i)));
    }
    assert!(h.arp().len() <= 32);
    assert_eq!(h.counters().arp_replies_tx, 5000);
    assert_accounted(&h);
}

#[test]
fn spoof_of_our_address_is_dropped_and_defended_rate_limited() {
    let mut h = quiet(MAC_A, IP_A);
    let evil = EthernetAddress([2, 0xee, 0, 0, 0, 1]);
    for t in [0u64, 1000, 5000, 10_000] {
        let r = rx(&mut h, ms(t), &reply(evil, IP_A, EthernetAddress::BROADCAST, IP_A));
        assert_eq!(r, Rx::Dropped(DropReason::ArpSpoof));
    }
    let r = rx(&mut h, ms(10_001), &request(evil, IP_A, IP_PEER));
    assert_eq!(r, Rx::Dropped(DropReason::ArpSpoof));
    assert_eq!(h.counters().arp_spoof, 5);
    assert!(h.arp().get(IP_A).is_none());
    // RFC 5227 §2.4 (b): one defence per 10 s: at 0 and at 10 000 ms.
    let out = drain(&mut h, ms(10_001));
    assert_eq!(out.len(), 2);
    for f in &out {
        let (_, a) = parse_arp(f);
        assert_eq!((a.source_ip, a.target_ip, a.source_hw), (IP_A, IP_A, MAC_A));
    }
    assert_eq!(h.counters().arp_defends_tx, 2);
    assert_accounted(&h);
}

#[test]
fn forged_reply_cannot_replace_a_fresh_entry() {
    let mut h = quiet(MAC_A, IP_A);
    h.send_ipv4(ms(0), IP_PEER, IpProtocol::Udp, 1, |_| {}).unwrap();
    drain(&mut h, ms(0));
    h.handle_frame(ms(1), &reply(MAC_PEER, IP_PEER, MAC_A, IP_A));
    let evil = EthernetAddress([2, 0xee, 0, 0, 0, 1]);
    h.handle_frame(ms(2), &reply(evil, IP_PEER, MAC_A, IP_A));
    assert_eq!(h.arp().get(IP_PEER), Some(MAC_PEER));
    assert_eq!(h.counters().arp_locked, 1);
    // Group MACs are never learned.
    let r = rx(&mut h, ms(3), &request(EthernetAddress([1, 0, 0x5e, 0, 0, 1]), IP_PEER, IP_A));
    assert_eq!(r, Rx::Dropped(DropReason::Malformed));
}

#[test]
fn entries_time_out_and_are_reprobed_when_used() {
    let mut h = quiet(MAC_A, IP_A);
    h.handle_frame(ms(0), &request(MAC_PEER, IP_PEER, IP_A));
    drain(&mut h, ms(0));
    h.send_ipv4(ms(10), IP_PEER, IpProtocol::Udp, 1, |_| {}).unwrap();
    drain(&mut h, ms(10));
    // 60 s after confirmation: a unicast probe to the known MAC.
    let out = drain(&mut h, ms(60_000));
    assert_eq!(out.len(), 1);
    let (eth, a) = parse_arp(&out[0]);
    assert_eq!((eth.dst, a.target_ip), (MAC_PEER, IP_PEER));
    // The probe is answered: reachable again; without an answer the entry goes.
    h.handle_frame(ms(60_100), &reply(MAC_PEER, IP_PEER, MAC_A, IP_A));
    assert_eq!(h.arp().get(IP_PEER), Some(MAC_PEER));
    assert!(drain(&mut h, ms(120_099)).is_empty());
    // Unused since: removed at expiry.
    drain(&mut h, ms(120_100));
    assert!(h.arp().is_empty());
    assert_eq!(h.counters().arp_expired, 1);
}
