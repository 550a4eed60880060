//! Property tests for the checksum, UDP and TCP wire formats.
#![allow(missing_docs)]

use joyride_ip::checksum::{self, fold, reference_sum, sum};
use joyride_ip::tcp::{SackBlock, TcpFlags, TcpOptionIter, TcpOptions, TcpPacket, TcpRepr};
use joyride_ip::udp::{UdpPacket, UdpRepr};
use joyride_ip::{Checksum, Ipv4Addr};
use proptest::prelude::*;

fn addr() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn sack_block() -> impl Strategy<Value = SackBlock> {
    (any::<u32>(), any::<u32>()).prop_map(|(left, right)| SackBlock { left, right })
}

/// Options whose Linux layout fits in 40 bytes (so emit drops no SACK block).
fn options() -> impl Strategy<Value = TcpOptions> {
    (
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
        any::<bool>(),
        proptest::collection::vec(sack_block(), 0..=4),
        proptest::option::of((any::<u32>(), any::<u32>())),
    )
        .prop_map(|(mss, window_scale, sack_permitted, sacks, timestamps)| {
            let mut sack_blocks = [SackBlock::default(); 4];
            sack_blocks[..sacks.len()].copy_from_slice(&sacks);
            TcpOptions {
                mss,
                window_scale,
                sack_permitted,
                sack_blocks,
                sack_len: sacks.len() as u8,
                timestamps,
            }
        })
        .prop_filter("fits in 40 option bytes", |o| o.emitted_sack_len() == usize::from(o.sack_len))
}

/// A header with arbitrary fields and options and no payload (tests set `payload`).
fn tcp_repr() -> impl Strategy<Value = TcpRepr<'static>> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
        any::<u16>(),
        any::<u16>(),
        options(),
    )
        .prop_map(|(src_port, dst_port, seq, ack, flags, window, urgent, options)| TcpRepr {
            src_port,
            dst_port,
            seq,
            ack,
            flags: TcpFlags::from_bits_retain(flags),
            window,
            urgent,
            options,
            payload: &[],
        })
}

proptest! {
    #[test]
    fn checksum_fast_equals_reference_any_alignment(
        buf in proptest::collection::vec(any::<u8>(), 16..9100),
        off in 0usize..16,
        len in 0usize..9084,
    ) {
        let len = len.min(buf.len() - off);
        let s = &buf[off..off + len];
        prop_assert_eq!(fold(sum(s)), fold(reference_sum(s)));
        prop_assert_eq!(checksum::checksum(s), !fold(reference_sum(s)));
    }

    #[test]
    fn checksum_of_filled_data_verifies(
        mut data in proptest::collection::vec(any::<u8>(), 2..400),
        at in 0usize..200,
    ) {
        // Storing the checksum in any even position makes the whole sum 0xFFFF (RFC 1071 §1);
        // all-zero data gets checksum 0xFFFF, which sums to 0xFFFF as well.
        let at = (at % (data.len() / 2)) * 2;
        data[at] = 0;
        data[at + 1] = 0;
        let c = checksum::checksum(&data);
        data[at..at + 2].copy_from_slice(&c.to_be_bytes());
        prop_assert_eq!(fold(sum(&data)), 0xFFFF);
    }

    #[test]
    fn incremental_update_equals_recompute(
        mut data in proptest::collection::vec(any::<u8>(), 20..60),
        at in 0usize..30,
        new in any::<u16>(),
    ) {
        data[0] = 0x45; // a real header never sums to zero
        let at = 2 + (at % (data.len() / 2 - 1)) * 2;
        let before = checksum::checksum(&data);
        let old = u16::from_be_bytes([data[at], data[at + 1]]);
        data[at..at + 2].copy_from_slice(&new.to_be_bytes());
        prop_assert_eq!(checksum::update(before, old, new), checksum::checksum(&data));
    }

    #[test]
    fn udp_round_trip(
        src_port in any::<u16>(), dst_port in any::<u16>(),
        payload in proptest::collection::vec(any::<u8>(), 0..1500),
        src in addr(), dst in addr(), padding in 0usize..8,
    ) {
        let repr = UdpRepr { src_port, dst_port, payload: &payload };
        let mut buf = vec![0xAA; repr.buffer_len() + padding];
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst, Checksum::Software);
        let packet = UdpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_ne!(packet.checksum(), 0);
        prop_assert!(packet.verify_checksum(src, dst));
        prop_assert_eq!(UdpRepr::parse(&packet, src, dst, Checksum::Software), Ok(repr));
    }

    #[test]
    fn udp_offloaded_completes_to_software(
        payload in proptest::collection::vec(any::<u8>(), 0..300), src in addr(), dst in addr(),
    ) {
        let repr = UdpRepr { src_port: 1, dst_port: 2, payload: &payload };
        let mut soft = vec![0; repr.buffer_len()];
        let mut off = soft.clone();
        repr.emit(&mut UdpPacket::new_unchecked(&mut soft[..]), src, dst, Checksum::Software);
        repr.emit(&mut UdpPacket::new_unchecked(&mut off[..]), src, dst, Checksum::Offloaded);
        // A NIC adds header and data to the pseudo-header sum it finds and complements.
        let nic = !fold(sum(&off));
        let nic = if nic == 0 { 0xFFFF } else { nic };
        prop_assert_eq!(&nic.to_be_bytes()[..], &soft[6..8]);
    }

    #[test]
    fn tcp_round_trip(
        header in tcp_repr(),
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        src in addr(), dst in addr(),
    ) {
        let repr = TcpRepr { payload: &payload, ..header };
        let mut buf = vec![0xAA; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, Checksum::Software);
        prop_assert_eq!(buf.len() % 4, repr.payload.len() % 4);
        let packet = TcpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(usize::from(packet.header_len()), repr.header_len());
        prop_assert!(packet.header_len() <= 60);
        prop_assert!(packet.options_iter().all(|o| o.is_ok()));
        prop_assert_eq!(TcpRepr::parse(&packet, src, dst, Checksum::Software), Ok(repr));
        // Offloaded: the field holds the pseudo-header sum; a NIC completes it to the same value.
        let mut off = vec![0; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut off[..]), src, dst, Checksum::Offloaded);
        prop_assert_eq!(&(!fold(sum(&off))).to_be_bytes()[..], &buf[16..18]);
    }

    #[test]
    fn tcp_too_many_sacks_are_dropped_not_overflowed(
        (repr, src, dst) in (tcp_repr(), addr(), addr()),
        extra in proptest::collection::vec(sack_block(), 4),
    ) {
        let mut repr = repr;
        repr.options.sack_blocks.copy_from_slice(&extra);
        repr.options.sack_len = 4;
        prop_assert!(repr.header_len() <= 60);
        let mut buf = vec![0; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, Checksum::Software);
        let parsed = TcpRepr::parse(&TcpPacket::new_checked(&buf[..]).unwrap(), src, dst,
                                    Checksum::Software).unwrap();
        let kept = repr.options.emitted_sack_len();
        prop_assert_eq!(parsed.options.sack(), &extra[..kept]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..100), src in addr(), dst in addr(),
    ) {
        if let Ok(p) = TcpPacket::new_checked(&data[..]) {
            let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.flags());
            let _ = (p.window_len(), p.checksum(), p.urgent_at(), p.payload().len());
            for _ in p.options_iter() {}
            let _ = TcpRepr::parse(&p, src, dst, Checksum::Offloaded);
        }
        if let Ok(p) = UdpPacket::new_checked(&data[..]) {
            let _ = (p.src_port(), p.dst_port(), p.len(), p.checksum(), p.payload().len());
            let _ = UdpRepr::parse(&p, src, dst, Checksum::Offloaded);
        }
        let n = TcpOptionIter::new(&data).count();
        prop_assert!(n <= data.len());
    }
}
