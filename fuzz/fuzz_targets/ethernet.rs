//! Arbitrary bytes as an Ethernet II / 802.1Q frame: no getter, parse or re-emit may panic, and
//! `parse(emit(parse(x))) == parse(x)`.
#![no_main]

use joyride_ip::ethernet::{EthernetFrame, EthernetRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Parse checks lengths itself, so it must be safe on an unchecked view too.
    let unchecked = EthernetRepr::parse(&EthernetFrame::new_unchecked(data));
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        assert!(unchecked.is_err());
        return;
    };
    let _ = (frame.dst_addr(), frame.src_addr(), frame.ethertype(), frame.is_tagged());
    let _ = (frame.vlan_tag(), frame.payload_ethertype(), frame.header_len());
    assert_eq!(frame.header_len() + frame.payload().len(), data.len());
    let _ = frame.dst_addr().is_multicast() || frame.src_addr().is_broadcast();
    if let Ok(repr) = EthernetRepr::parse(&frame) {
        assert_eq!(Ok(repr), unchecked);
        let mut buf = vec![0u8; repr.buffer_len()];
        repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..])).unwrap();
        let again = EthernetFrame::new_checked(&buf[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&again), Ok(repr));
        assert_eq!(buf[..], data[..repr.buffer_len()]);
    }
});
