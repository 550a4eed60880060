//! Arbitrary bytes as an ICMPv4 message: no getter, parse or re-emit may panic, and
//! `parse(emit(parse(x))) == parse(x)`.
#![no_main]

use joyride_ip::icmpv4::{Icmpv4Packet, Icmpv4Repr};
use joyride_ip::Checksum;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let unchecked = Icmpv4Repr::parse(&Icmpv4Packet::new_unchecked(data), Checksum::Offloaded);
    let Ok(p) = Icmpv4Packet::new_checked(data) else {
        assert!(unchecked.is_err());
        return;
    };
    let _ = (p.msg_type(), p.msg_code(), p.checksum(), p.echo_ident(), p.echo_seq_no());
    let _ = (p.next_hop_mtu(), p.rest_of_header(), p.data(), p.verify_checksum());
    let software = Icmpv4Repr::parse(&p, Checksum::Software);
    if let Ok(repr) = Icmpv4Repr::parse(&p, Checksum::Offloaded) {
        assert_eq!(Ok(repr), unchecked);
        assert!(software.is_ok() || !p.verify_checksum());
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), Checksum::Software).unwrap();
        let again = Icmpv4Packet::new_checked(&buf[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&again, Checksum::Software), Ok(repr));
    } else {
        assert!(software.is_err());
    }
});
