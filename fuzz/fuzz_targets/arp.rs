//! Arbitrary bytes as an ARP packet: no getter, parse or re-emit may panic, and
//! `parse(emit(parse(x))) == parse(x)`.
#![no_main]

use joyride_ip::arp::{ArpPacket, ArpRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let unchecked = ArpRepr::parse(&ArpPacket::new_unchecked(data));
    let Ok(p) = ArpPacket::new_checked(data) else {
        assert!(unchecked.is_err());
        return;
    };
    let _ = (p.hardware_type(), p.protocol_type(), p.hardware_len(), p.protocol_len());
    let _ = (p.operation(), p.packet_len());
    let _ = (p.source_hardware_addr(), p.source_protocol_addr());
    let _ = (p.target_hardware_addr(), p.target_protocol_addr());
    if let Ok(repr) = ArpRepr::parse(&p) {
        assert_eq!(Ok(repr), unchecked);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..])).unwrap();
        assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&buf[..]).unwrap()), Ok(repr));
        assert_eq!(buf[..], data[..repr.buffer_len()]);
    }
});
