//! Known vectors: segments Linux sent, captured with tcpdump on a veth pair between two private
//! network namespaces (10.199.0.1 ↔ 10.199.0.2, checksum offload off so the checksums on the
//! wire are the kernel's software ones). Each is the IPv4 packet; the test skips the 20-byte
//! IPv4 header by hand so it does not depend on the IPv4 parser.
#![allow(missing_docs)]

use joyride_ip::tcp::{TcpFlags, TcpOption, TcpPacket, TcpRepr};
use joyride_ip::{Checksum, Error, Ipv4Addr};

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 199, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 199, 0, 2);

/// Client SYN: `Flags [S], cksum 0x7e59 (correct), seq 2413754080, win 64240,
/// options [mss 1460,sackOK,TS val 4182601924 ecr 0,nop,wscale 10]`.
const SYN: &str = "4500003c63f540004006c1360ac700010ac70002a8c01f908fdef6e000000000a002faf0\
                   7e590000020405b40402080af94d70c4000000000103030a";
/// Server SYN-ACK: `Flags [S.], cksum 0xcad5, seq 2541569818, ack 2413754081, win 65160,
/// options [mss 1460,sackOK,TS val 2857903850 ecr 4182601924,nop,wscale 10]`.
const SYN_ACK: &str = "4500003c000040004006252c0ac700020ac700011f90a8c0977d471a8fdef6e1a012fe88\
                       cad50000020405b40402080aaa5826eaf94d70c40103030a";
/// Client data: `Flags [P.], cksum 0x01a1, seq 1:14, ack 1, win 63,
/// options [nop,nop,TS val 4182601924 ecr 2857903850], length 13` ("hello joyride").
const DATA: &str = "4500004163f740004006c12f0ac700010ac70002a8c01f908fdef6e1977d471b8018003f\
                    01a100000101080af94d70c4aa5826ea68656c6c6f206a6f7972696465";

fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The TCP segment inside a captured IPv4 packet (IHL 5 in all of these).
fn segment(ip_hex: &str) -> Vec<u8> {
    let ip = unhex(ip_hex);
    assert_eq!(ip[0], 0x45);
    assert_eq!(usize::from(u16::from_be_bytes([ip[2], ip[3]])), ip.len());
    ip[20..].to_vec()
}

/// Parsing and re-emitting reproduces Linux's bytes exactly (same option layout, same
/// checksum).
fn assert_reemits(seg: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> TcpRepr<'_> {
    let packet = TcpPacket::new_checked(seg).unwrap();
    assert!(packet.verify_checksum(src, dst));
    let repr = TcpRepr::parse(&packet, src, dst, Checksum::Software).unwrap();
    assert_eq!(repr.buffer_len(), seg.len());
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), src, dst, Checksum::Software);
    assert_eq!(out, seg);
    repr
}

#[test]
fn linux_syn() {
    let seg = segment(SYN);
    let packet = TcpPacket::new_checked(&seg[..]).unwrap();
    assert_eq!(packet.header_len(), 40);
    assert_eq!(packet.checksum(), 0x7e59);
    let kinds: Vec<TcpOption<'_>> = packet.options_iter().map(Result::unwrap).collect();
    assert_eq!(
        kinds,
        [
            TcpOption::MaxSegmentSize(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamps { tsval: 4_182_601_924, tsecr: 0 },
            TcpOption::NoOperation,
            TcpOption::WindowScale(10),
        ]
    );
    let repr = assert_reemits(&seg, CLIENT, SERVER);
    assert_eq!((repr.src_port, repr.dst_port), (43200, 8080));
    assert_eq!(repr.seq, 2_413_754_080);
    assert_eq!(repr.flags, TcpFlags::SYN);
    assert_eq!(repr.window, 64240);
    assert_eq!(repr.options.mss, Some(1460));
    assert!(repr.options.sack_permitted);
    assert_eq!(repr.options.timestamps, Some((4_182_601_924, 0)));
    assert_eq!(repr.options.window_scale, Some(10));
    assert_eq!(repr.options.sack_len, 0);
    assert!(repr.payload.is_empty());
    assert_eq!(repr.seg_len(), 1);
    // Another source address breaks the pseudo-header, so the checksum no longer verifies
    // (swapping source and destination would not: the one's-complement sum commutes).
    let other = Ipv4Addr::new(10, 199, 0, 3);
    assert_eq!(TcpRepr::parse(&packet, other, SERVER, Checksum::Software), Err(Error::BadChecksum));
    // ...unless the NIC is trusted to have verified it.
    assert!(TcpRepr::parse(&packet, other, SERVER, Checksum::Offloaded).is_ok());
}

#[test]
fn linux_syn_ack() {
    let seg = segment(SYN_ACK);
    let repr = assert_reemits(&seg, SERVER, CLIENT);
    assert_eq!(repr.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(repr.ack, 2_413_754_081);
    assert_eq!(repr.options.timestamps, Some((2_857_903_850, 4_182_601_924)));
    assert_eq!(repr.window, 65160);
}

#[test]
fn linux_data_segment() {
    let seg = segment(DATA);
    let repr = assert_reemits(&seg, CLIENT, SERVER);
    assert_eq!(repr.flags, TcpFlags::PSH | TcpFlags::ACK);
    assert_eq!(repr.payload, b"hello joyride");
    assert_eq!(repr.seg_len(), 13);
    assert_eq!(repr.options.mss, None);
    assert_eq!(repr.options.timestamps, Some((4_182_601_924, 2_857_903_850)));
    // Flip one payload bit: the checksum catches it.
    let mut bad = seg.clone();
    *bad.last_mut().unwrap() ^= 0x01;
    let packet = TcpPacket::new_checked(&bad[..]).unwrap();
    assert_eq!(
        TcpRepr::parse(&packet, CLIENT, SERVER, Checksum::Software),
        Err(Error::BadChecksum)
    );
}
