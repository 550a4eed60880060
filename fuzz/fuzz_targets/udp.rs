//! Arbitrary bytes as a UDP datagram: the first 8 bytes pick the pseudo-header addresses, the
//! rest is the datagram. No getter, parse or re-emit may panic, and
//! `parse(emit(parse(x))) == parse(x)`.
#![no_main]

use joyride_ip::udp::{UdpPacket, UdpRepr};
use joyride_ip::{Checksum, Ipv4Addr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((addrs, data)) = input.split_first_chunk::<8>() else { return };
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    // parse checks lengths itself: safe on an unchecked view.
    let unchecked = UdpRepr::parse(&UdpPacket::new_unchecked(data), src, dst, Checksum::Offloaded);
    let Ok(p) = UdpPacket::new_checked(data) else {
        assert!(unchecked.is_err());
        return;
    };
    let _ = (p.src_port(), p.dst_port(), p.len(), p.is_empty(), p.checksum());
    assert_eq!(p.payload().len() + 8, usize::from(p.len()));
    let verified = p.verify_checksum(src, dst);
    let software = UdpRepr::parse(&p, src, dst, Checksum::Software);
    assert_eq!(software.is_ok(), verified);
    let repr = UdpRepr::parse(&p, src, dst, Checksum::Offloaded).expect("checked view parses");
    assert_eq!(Ok(repr), unchecked);
    for mode in [Checksum::Software, Checksum::Offloaded] {
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst, mode);
        let again = UdpPacket::new_checked(&buf[..]).expect("emitted datagram checks");
        assert_eq!(UdpRepr::parse(&again, src, dst, Checksum::Offloaded), Ok(repr));
        if mode == Checksum::Software {
            assert_eq!(UdpRepr::parse(&again, src, dst, Checksum::Software), Ok(repr));
        }
    }
});
