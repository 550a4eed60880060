//! Real frames captured from Linux, parsed by Joyride's wire formats.
//!
//! How they were captured (2026-11-25, Linux veth, as root; nothing left the machine):
//!
//! ```text
//! ip netns add jrcap1; ip netns add jrcap2
//! ip link add jrv1 netns jrcap1 type veth peer name jrv2 netns jrcap2
//! ip -n jrcap1 addr add 10.77.0.1/24 dev jrv1; ip -n jrcap2 addr add 10.77.0.2/24 dev jrv2
//! ip netns exec jrcapN ethtool -K jrvN tx off      # real checksums instead of CHECKSUM_PARTIAL
//! ip netns exec jrcapN sysctl net.ipv6.conf.all.disable_ipv6=1   # no IPv6 chatter
//! ip -n jrcapN link set jrvN up
//! ip netns exec jrcap1 tcpdump -i jrv1 -w cap.pcap -U -s 0 &
//! ip netns exec jrcap2 python3 srv.py &            # TCP listener on 10.77.0.2:7777, answers "pong"
//! ip netns exec jrcap1 ping -c 1 10.77.0.2
//! ip netns exec jrcap1 ping -c 1 -s 8000 10.77.0.2 # fragmented
//! ip netns exec jrcap1 python3 cli.py              # UDP 5353→9999 "hello joyride udp" (unanswered:
//!                                                  # port unreachable), TCP 40000→7777 "ping"
//! ip netns exec jrcap1 ping -c 1 -R 10.77.0.2      # (second capture) IPv4 Record Route option
//! ip netns del jrcap1; ip netns del jrcap2
//! ```
//!
//! The frames below are the pcap records' bytes verbatim, as hex. jrv1 (10.77.0.1) had MAC
//! 1e:9a:2d:c9:99:b6 and jrv2 (10.77.0.2) 42:ba:00:08:df:98 in the first capture. A VLAN
//! capture was not possible (no 8021q module in the capture host); 802.1Q is covered by the
//! unit tests in `ethernet.rs`. UDP and TCP are parsed with `joyride_ip::udp`/`tcp`.

use joyride_ip::arp::{ArpOperation, ArpPacket, ArpRepr};
use joyride_ip::checksum;
use joyride_ip::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
use joyride_ip::icmpv4::{DstUnreachableCode, Icmpv4Message, Icmpv4Packet, Icmpv4Repr};
use joyride_ip::ipv4::{Ecn, IpProtocol, Ipv4Packet, Ipv4Repr};
use joyride_ip::tcp::{TcpFlags, TcpPacket, TcpRepr};
use joyride_ip::udp::{UdpPacket, UdpRepr};
use joyride_ip::{Checksum, Error, Ipv4Addr};

/// ARP request, who-has 10.77.0.2 tell 10.77.0.1 (broadcast). 42 bytes.
const ARP_REQUEST: &str =
    "ffffffffffff1e9a2dc999b6080600010800060400011e9a2dc999b60a4d00010000000000000a4d0002";
/// ARP reply, 10.77.0.2 is-at 42:ba:00:08:df:98. 42 bytes.
const ARP_REPLY: &str =
    "1e9a2dc999b642ba0008df980806000108000604000242ba0008df980a4d00021e9a2dc999b60a4d0001";
/// `ping -c 1`: ICMP echo request, id 3381 seq 1, 56 data bytes; IPv4 id 60492, DF. 98 bytes.
const ECHO_REQUEST: &str = concat!(
    "42ba0008df981e9a2dc999b6080045000054ec4c4000400139c00a4d00010a4d00020800327a0d35000114b4066b0000",
    "0000d05d0e0000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435",
    "3637",
);
/// The echo reply; IPv4 id 44514, no DF. 98 bytes.
const ECHO_REPLY: &str = concat!(
    "1e9a2dc999b642ba0008df98080045000054ade200004001b82a0a4d00020a4d000100003a7a0d35000114b4066b0000",
    "0000d05d0e0000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435",
    "3637",
);
/// `ping -s 8000`: first fragment of the 8008-byte echo request, IPv4 id 60493, MF, offset 0. 1514 bytes.
const FRAG_FIRST: &str = concat!(
    "42ba0008df981e9a2dc999b60800450005dcec4d2000400154370a4d00010a4d00020800c0a70d37000114b4066b0000",
    "00000d850e0000000000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435",
    "363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465",
    "666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495",
    "969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5",
    "c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5",
    "f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425",
    "262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455",
    "565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485",
    "868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5",
    "b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5",
    "e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415",
    "161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445",
    "464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475",
    "767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5",
    "a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5",
    "d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405",
    "060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435",
    "363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465",
    "666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495",
    "969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5",
    "c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5",
    "f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425",
    "262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455",
    "565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485",
    "868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5",
    "b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5",
    "e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415",
    "161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445",
    "464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475",
    "767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5",
    "a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf",
);
/// Last (6th) fragment of the same datagram: offset 7400, no MF, 608 payload bytes. 642 bytes.
const FRAG_LAST: &str = concat!(
    "42ba0008df981e9a2dc999b6080045000274ec4d039d400174020a4d00010a4d0002e0e1e2e3e4e5e6e7e8e9eaebeced",
    "eeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d",
    "1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d",
    "4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d",
    "7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacad",
    "aeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdd",
    "dedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff000102030405060708090a0b0c0d",
    "0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d",
    "3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d",
    "6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d",
    "9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccd",
    "cecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfd",
    "feff000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d",
    "2e2f303132333435363738393a3b3c3d3e3f",
);
/// UDP 10.77.0.1:5353 → 10.77.0.2:9999, "hello joyride udp" (59 bytes: veth does not pad). 59 bytes.
const UDP: &str = concat!(
    "42ba0008df981e9a2dc999b608004500002d620f40004011c4140a4d00010a4d000214e9270f0019d36968656c6c6f20",
    "6a6f797269646520756470",
);
/// The ICMP port unreachable that UDP datagram drew (nothing listened on 9999); TOS 0xc0. 87 bytes.
const PORT_UNREACHABLE: &str = concat!(
    "1e9a2dc999b642ba0008df98080045c00049adf600004001b7610a4d00020a4d0001030311c4000000004500002d620f",
    "40004011c4140a4d00010a4d000214e9270f0019d36968656c6c6f206a6f797269646520756470",
);
/// TCP SYN 10.77.0.1:40000 → 10.77.0.2:7777, options mss 1460, sackOK, TS, nop, wscale 10. 74 bytes.
const TCP_SYN: &str = concat!(
    "42ba0008df981e9a2dc999b608004500003cc9f6400040065c290a4d00010a4d00029c401e61fa4b199c00000000a002",
    "faf04e4c0000020405b40402080ab63a655f000000000103030a",
);
/// The SYN-ACK (IPv4 id 0, DF). 74 bytes.
const TCP_SYN_ACK: &str = concat!(
    "1e9a2dc999b642ba0008df9808004500003c00004000400626200a4d00020a4d00011e619c40b1a13ebafa4b199da012",
    "fe88682a0000020405b40402080ada3e17deb63a655f0103030a",
);
/// First data segment, PSH|ACK, payload "ping", options nop nop TS. 70 bytes.
const TCP_DATA: &str = concat!(
    "42ba0008df981e9a2dc999b6080045000038c9f8400040065c2b0a4d00010a4d00029c401e61fa4b199db1a13ebb8018",
    "003fb66600000101080ab63a655fda3e17de70696e67",
);
/// `ping -R`: echo request with IPv4 options NOP + Record Route (length 39), IHL 15. 138 bytes.
const ECHO_RECORD_ROUTE: &str = concat!(
    "0efa38759e3e66a955ee58a708004f00007cb3064000400136810a4d00010a4d0002010727080a4d0001000000000000",
    "000000000000000000000000000000000000000000000000000008008e590d8c00011db4066b00000000772702000000",
    "0000101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f3031323334353637",
);

const MAC1: EthernetAddress = EthernetAddress([0x1e, 0x9a, 0x2d, 0xc9, 0x99, 0xb6]);
const MAC2: EthernetAddress = EthernetAddress([0x42, 0xba, 0x00, 0x08, 0xdf, 0x98]);
const IP1: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const IP2: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);

fn hex(s: &str) -> Vec<u8> {
    assert_eq!(s.len() % 2, 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Parses the Ethernet header (untagged, as captured) and returns it with the payload.
fn eth(frame: &[u8], ethertype: EtherType) -> (EthernetRepr, &[u8]) {
    let f = EthernetFrame::new_checked(frame).unwrap();
    let r = EthernetRepr::parse(&f).unwrap();
    assert_eq!(r.ethertype, ethertype);
    assert_eq!(r.vlan, None);
    // Re-emitting the value reproduces the captured header byte for byte.
    let mut h = [0u8; 14];
    r.emit(&mut EthernetFrame::new_unchecked(&mut h[..])).unwrap();
    assert_eq!(h, frame[..14]);
    (r, &frame[14..])
}

/// Parses an IPv4 packet, checks its header checksum, and returns the view.
fn ip(payload: &[u8]) -> (Ipv4Repr, Ipv4Packet<&[u8]>) {
    let p = Ipv4Packet::new_checked(payload).unwrap();
    assert!(p.verify_checksum(), "captured header checksum must verify");
    let r = Ipv4Repr::parse(&p, Checksum::Software).unwrap();
    assert_eq!(r.payload_len, p.payload().len());
    (r, p)
}

fn arp(frame_hex: &str) -> (EthernetRepr, ArpRepr) {
    let frame = hex(frame_hex);
    let (e, payload) = eth(&frame, EtherType::Arp);
    let p = ArpPacket::new_checked(payload).unwrap();
    let r = ArpRepr::parse(&p).unwrap();
    let mut out = [0u8; 28];
    r.emit(&mut ArpPacket::new_unchecked(&mut out[..])).unwrap();
    assert_eq!(out[..], payload[..28], "ARP re-emit must match the capture");
    (e, r)
}

#[test]
fn arp_request_and_reply() {
    let (e, r) = arp(ARP_REQUEST);
    assert!(e.dst.is_broadcast());
    assert_eq!(e.src, MAC1);
    assert_eq!(r.operation, ArpOperation::Request);
    assert_eq!((r.source_hw, r.source_ip), (MAC1, IP1));
    assert_eq!((r.target_hw, r.target_ip), (EthernetAddress([0; 6]), IP2));

    let (e, r) = arp(ARP_REPLY);
    assert_eq!((e.src, e.dst), (MAC2, MAC1));
    assert!(e.dst.is_unicast());
    assert_eq!(r.operation, ArpOperation::Reply);
    assert_eq!((r.source_hw, r.source_ip), (MAC2, IP2));
    assert_eq!((r.target_hw, r.target_ip), (MAC1, IP1));
    assert_eq!(format!("{}", r.source_hw), "42:ba:00:08:df:98");
}

#[test]
fn ping_request_and_reply() {
    let req = hex(ECHO_REQUEST);
    let (e, payload) = eth(&req, EtherType::Ipv4);
    assert_eq!((e.src, e.dst), (MAC1, MAC2));
    let (ipr, p) = ip(payload);
    assert_eq!((ipr.src, ipr.dst, ipr.protocol), (IP1, IP2, IpProtocol::Icmp));
    assert_eq!((ipr.ident, ipr.ttl, ipr.dont_frag, ipr.is_fragment()), (60492, 64, true, false));
    assert_eq!((ipr.dscp, ipr.ecn, ipr.payload_len), (0, Ecn::NotEct, 64));
    // The header has no options, so re-emitting the value gives the captured bytes back.
    let mut h = [0u8; 20];
    ipr.emit(&mut Ipv4Packet::new_unchecked(&mut h[..]), Checksum::Software).unwrap();
    assert_eq!(h, p.header());

    let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
    assert!(icmp.verify_checksum());
    let r = Icmpv4Repr::parse(&icmp, Checksum::Software).unwrap();
    let Icmpv4Repr::EchoRequest { ident, seq_no, data } = r else { panic!("{r:?}") };
    assert_eq!((ident, seq_no, data.len()), (3381, 1, 56));
    // ping's pattern: after the 16-byte timestamp, bytes 0x10, 0x11, ...
    assert_eq!(data[16..20], [0x10, 0x11, 0x12, 0x13]);
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]), Checksum::Software).unwrap();
    assert_eq!(out, p.payload(), "ICMP re-emit (checksum included) must match the capture");

    let rep = hex(ECHO_REPLY);
    let (e, payload) = eth(&rep, EtherType::Ipv4);
    assert_eq!((e.src, e.dst), (MAC2, MAC1));
    let (ipr, p) = ip(payload);
    assert_eq!((ipr.src, ipr.dst, ipr.ident, ipr.dont_frag), (IP2, IP1, 44514, false));
    let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
    let Icmpv4Repr::EchoReply { ident, seq_no, data: reply_data } =
        Icmpv4Repr::parse(&icmp, Checksum::Software).unwrap()
    else {
        panic!("not an echo reply")
    };
    assert_eq!((ident, seq_no), (3381, 1));
    assert_eq!(reply_data, data, "the reply echoes the request's data");
}

#[test]
fn fragmented_ping() {
    let first = hex(FRAG_FIRST);
    let (_, payload) = eth(&first, EtherType::Ipv4);
    let (r1, p1) = ip(payload);
    assert_eq!((r1.ident, r1.more_frags, r1.frag_offset, r1.dont_frag), (60493, true, 0, false));
    assert!(r1.is_fragment() && p1.is_fragment());
    assert_eq!((p1.total_len(), r1.payload_len), (1500, 1480));
    // The ICMP header is in the first fragment; its checksum covers the whole 8008-byte
    // message, so only the offloaded parse can succeed on one fragment.
    let icmp = Icmpv4Packet::new_checked(p1.payload()).unwrap();
    assert_eq!(icmp.msg_type(), Icmpv4Message::EchoRequest);
    assert_eq!(Icmpv4Repr::parse(&icmp, Checksum::Software), Err(Error::BadChecksum));
    match Icmpv4Repr::parse(&icmp, Checksum::Offloaded).unwrap() {
        Icmpv4Repr::EchoRequest { ident, seq_no, data } => {
            assert_eq!((ident, seq_no, data.len()), (3383, 1, 1472));
        }
        other => panic!("{other:?}"),
    }

    let last = hex(FRAG_LAST);
    let (_, payload) = eth(&last, EtherType::Ipv4);
    let (r6, p6) = ip(payload);
    assert_eq!((r6.ident, r6.more_frags, r6.frag_offset), (60493, false, 7400));
    assert!(r6.is_fragment());
    assert_eq!(p6.payload().len(), 608);
    // 8 bytes of ICMP header + 8000 bytes of data, split 5 × 1480 + 608.
    assert_eq!(usize::from(r6.frag_offset) + r6.payload_len, 8008);
}

#[test]
fn udp_datagram_and_port_unreachable() {
    let frame = hex(UDP);
    let (_, payload) = eth(&frame, EtherType::Ipv4);
    let (udp_ip, p) = ip(payload);
    assert_eq!((udp_ip.src, udp_ip.dst, udp_ip.protocol), (IP1, IP2, IpProtocol::Udp));
    assert_eq!((udp_ip.ident, udp_ip.dont_frag, udp_ip.payload_len), (25103, true, 25));
    let u = UdpPacket::new_checked(p.payload()).unwrap();
    assert!(u.verify_checksum(IP1, IP2));
    let ur = UdpRepr::parse(&u, IP1, IP2, Checksum::Software).unwrap();
    assert_eq!((ur.src_port, ur.dst_port), (5353, 9999));
    assert_eq!(ur.payload, b"hello joyride udp");

    // The same frame padded to Ethernet's 60-byte minimum parses to the same values.
    let mut padded = frame.clone();
    padded.resize(60, 0);
    let (_, payload) = eth(&padded, EtherType::Ipv4);
    let (r, p_padded) = ip(payload);
    assert_eq!(r, udp_ip);
    assert_eq!(p_padded.payload(), p.payload());

    let unreach = hex(PORT_UNREACHABLE);
    let (e, payload) = eth(&unreach, EtherType::Ipv4);
    assert_eq!((e.src, e.dst), (MAC2, MAC1));
    let (ir, ip_unreach) = ip(payload);
    assert_eq!((ir.src, ir.dst, ir.protocol, ir.ident), (IP2, IP1, IpProtocol::Icmp, 44534));
    // TOS 0xc0: DSCP 48 (CS6, network control), not ECN-capable.
    assert_eq!((ir.dscp, ir.ecn), (48, Ecn::NotEct));
    let icmp = Icmpv4Packet::new_checked(ip_unreach.payload()).unwrap();
    let r = Icmpv4Repr::parse(&icmp, Checksum::Software).unwrap();
    let Icmpv4Repr::DstUnreachable { code, header, data } = r else { panic!("{r:?}") };
    assert_eq!(code, DstUnreachableCode::PortUnreachable);
    // The quoted header is the UDP datagram's, and Linux quoted the whole (short) datagram.
    assert_eq!(header, udp_ip);
    assert_eq!(data, p.payload());
    let mut out = vec![0u8; r.buffer_len()];
    r.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]), Checksum::Software).unwrap();
    assert_eq!(out, ip_unreach.payload(), "re-emit must reproduce Linux's message");
}

/// Parses a TCP segment with `TcpRepr` (software checksum) and cross-checks the checksum with
/// the pseudo-header computed here.
fn tcp(src: Ipv4Addr, dst: Ipv4Addr, seg: &[u8]) -> TcpRepr<'_> {
    let pseudo = checksum::pseudo_header_v4(src, dst, 6, seg.len() as u16);
    assert_eq!(
        checksum::fold(checksum::combine(pseudo, checksum::sum(seg))),
        0xffff,
        "TCP checksum must verify"
    );
    let p = TcpPacket::new_checked(seg).unwrap();
    TcpRepr::parse(&p, src, dst, Checksum::Software).unwrap()
}

#[test]
fn tcp_handshake_and_data() {
    let syn = hex(TCP_SYN);
    let (_, payload) = eth(&syn, EtherType::Ipv4);
    let (r, p) = ip(payload);
    assert_eq!(
        (r.src, r.dst, r.protocol, r.ident, r.dont_frag),
        (IP1, IP2, IpProtocol::Tcp, 51702, true)
    );
    let t = tcp(IP1, IP2, p.payload());
    assert_eq!((t.src_port, t.dst_port, t.flags, t.window), (40000, 7777, TcpFlags::SYN, 64240));
    assert_eq!(t.payload, b"");
    // Linux's SYN options: MSS 1460, SACK-permitted, timestamps (TSecr 0), NOP, wscale 10.
    assert_eq!(t.options.mss, Some(1460));
    assert!(t.options.sack_permitted);
    assert_eq!(t.options.window_scale, Some(10));
    let (ts_syn, ecr) = t.options.timestamps.unwrap();
    assert_eq!(ecr, 0);

    let syn_ack = hex(TCP_SYN_ACK);
    let (_, payload) = eth(&syn_ack, EtherType::Ipv4);
    let (r, p) = ip(payload);
    assert_eq!((r.src, r.dst, r.ident), (IP2, IP1, 0));
    let sa = tcp(IP2, IP1, p.payload());
    assert_eq!((sa.src_port, sa.dst_port), (7777, 40000));
    assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(sa.ack, t.seq.wrapping_add(1), "SYN-ACK acknowledges the SYN");
    assert_eq!((sa.options.mss, sa.options.window_scale), (Some(1460), Some(10)));
    let (ts_syn_ack, ecr) = sa.options.timestamps.unwrap();
    assert_eq!(ecr, ts_syn, "the SYN-ACK echoes the SYN's TSval");

    let data = hex(TCP_DATA);
    let (_, payload) = eth(&data, EtherType::Ipv4);
    let (r, p) = ip(payload);
    assert_eq!(r.payload_len, 36);
    let d = tcp(IP1, IP2, p.payload());
    assert_eq!(d.flags, TcpFlags::PSH | TcpFlags::ACK);
    assert_eq!((d.seq, d.ack), (t.seq.wrapping_add(1), sa.seq.wrapping_add(1)));
    assert_eq!(d.window, 63, "window 63 << 10 after scaling");
    assert_eq!((d.options.mss, d.options.timestamps.map(|t| t.1)), (None, Some(ts_syn_ack)));
    assert_eq!(d.payload, b"ping");
}

#[test]
fn ipv4_options_record_route() {
    let frame = hex(ECHO_RECORD_ROUTE);
    let (_, payload) = eth(&frame, EtherType::Ipv4);
    let (r, p) = ip(payload);
    assert_eq!((p.header_len(), p.total_len(), r.payload_len), (60, 124, 64));
    // NOP, then Record Route: type 7, length 39, pointer 8 (after the first slot), 10.77.0.1.
    assert_eq!(p.options()[..8], [1, 7, 39, 8, 10, 77, 0, 1]);
    let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
    assert!(matches!(
        Icmpv4Repr::parse(&icmp, Checksum::Software),
        Ok(Icmpv4Repr::EchoRequest { seq_no: 1, .. })
    ));

    // The same header with the option length overrunning the header is rejected once the
    // checksum is made valid again.
    let mut bad = payload.to_vec();
    bad[22] = 40;
    Ipv4Packet::new_unchecked(&mut bad[..]).fill_checksum();
    let p = Ipv4Packet::new_checked(&bad[..]).unwrap();
    assert_eq!(Ipv4Repr::parse(&p, Checksum::Software), Err(Error::Malformed));
}

#[test]
fn corrupted_captures_are_rejected() {
    let frame = hex(ECHO_REQUEST);
    let ip_bytes = &frame[14..];
    // Truncated inside the header, and inside the payload the total length claims.
    assert_eq!(Ipv4Packet::new_checked(&ip_bytes[..19]).unwrap_err(), Error::Truncated);
    assert_eq!(Ipv4Packet::new_checked(&ip_bytes[..83]).unwrap_err(), Error::Truncated);
    // A flipped bit in the source address breaks the header checksum.
    let mut b = ip_bytes.to_vec();
    b[12] ^= 0x01;
    let p = Ipv4Packet::new_checked(&b[..]).unwrap();
    assert_eq!(Ipv4Repr::parse(&p, Checksum::Software), Err(Error::BadChecksum));
    // A flipped bit in the ICMP data breaks the ICMP checksum.
    let mut b = ip_bytes.to_vec();
    b[40] ^= 0x80;
    let p = Ipv4Packet::new_checked(&b[..]).unwrap();
    let icmp = Icmpv4Packet::new_checked(p.payload()).unwrap();
    assert_eq!(Icmpv4Repr::parse(&icmp, Checksum::Software), Err(Error::BadChecksum));
    // Version 6 in an IPv4 frame.
    let mut b = ip_bytes.to_vec();
    b[0] = 0x65;
    assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
}
