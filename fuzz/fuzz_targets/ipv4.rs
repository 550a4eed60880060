//! Arbitrary bytes as an IPv4 packet: no getter, parse or re-emit may panic, and
//! `parse(emit(parse(x))) == parse(x)`.
#![no_main]

use joyride_ip::ipv4::{check_options, Ipv4Packet, Ipv4Repr};
use joyride_ip::Checksum;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Parse functions check lengths themselves: safe on unchecked views.
    let unchecked = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(data), Checksum::Offloaded);
    let _ = Ipv4Repr::parse_header(&Ipv4Packet::new_unchecked(data), Checksum::Software);
    if Ipv4Packet::new_unchecked(data).check_header_len().is_ok() {
        let quoted = Ipv4Packet::new_unchecked(data);
        let _ = (quoted.header(), quoted.options(), quoted.verify_checksum());
    }
    let Ok(p) = Ipv4Packet::new_checked(data) else {
        assert!(unchecked.is_err());
        return;
    };
    let _ = (p.version(), p.header_len(), p.dscp(), p.ecn(), p.total_len(), p.ident());
    let _ = (p.reserved_flag(), p.dont_frag(), p.more_frags(), p.frag_offset(), p.is_fragment());
    let _ = (p.ttl(), p.protocol(), p.checksum(), p.src_addr(), p.dst_addr());
    let _ = (p.header(), p.verify_checksum(), check_options(p.options()));
    assert_eq!(p.header_len() + p.payload().len(), usize::from(p.total_len()));
    let software = Ipv4Repr::parse(&p, Checksum::Software);
    if let Ok(repr) = Ipv4Repr::parse(&p, Checksum::Offloaded) {
        assert_eq!(Ok(repr), unchecked);
        assert!(software.is_ok() || !p.verify_checksum());
        let mut buf = vec![0u8; repr.total_len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), Checksum::Software).unwrap();
        let again = Ipv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&again, Checksum::Software), Ok(repr));
    } else {
        assert!(software.is_err());
    }
});
