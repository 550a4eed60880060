//! Arbitrary bytes as a TCP segment: the first 8 bytes pick the pseudo-header addresses, the
//! rest is the segment. No getter, option iterator, parse or re-emit may panic, and
//! `parse(emit(parse(x))) == parse(x)` (less SACK blocks that Linux's layout cannot fit).
#![no_main]

use joyride_ip::tcp::{SackBlock, TcpOptionIter, TcpOptions, TcpPacket, TcpRepr};
use joyride_ip::{Checksum, Error, Ipv4Addr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((addrs, data)) = input.split_first_chunk::<8>() else { return };
    let src = Ipv4Addr::new(addrs[0], addrs[1], addrs[2], addrs[3]);
    let dst = Ipv4Addr::new(addrs[4], addrs[5], addrs[6], addrs[7]);
    // The option iterator alone, over arbitrary bytes.
    let items = TcpOptionIter::new(data).count();
    assert!(items <= data.len());
    let _ = TcpOptions::parse(data);
    // parse checks lengths itself: safe on an unchecked view.
    let unchecked = TcpRepr::parse(&TcpPacket::new_unchecked(data), src, dst, Checksum::Offloaded);
    let Ok(p) = TcpPacket::new_checked(data) else {
        assert!(unchecked.is_err());
        return;
    };
    let _ = (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number(), p.reserved());
    let _ = (p.flags(), p.window_len(), p.checksum(), p.urgent_at(), p.segment_len());
    assert_eq!(usize::from(p.header_len()) + p.payload().len(), data.len());
    assert_eq!(p.options().len() + 20, usize::from(p.header_len()));
    let mut malformed = false;
    for option in p.options_iter() {
        malformed |= option == Err(Error::Malformed);
    }
    let verified = p.verify_checksum(src, dst);
    let software = TcpRepr::parse(&p, src, dst, Checksum::Software);
    let Ok(repr) = TcpRepr::parse(&p, src, dst, Checksum::Offloaded) else {
        assert!(malformed);
        assert!(software.is_err());
        return;
    };
    assert!(!malformed);
    assert_eq!(software.is_ok(), verified);
    assert_eq!(Ok(repr), unchecked);
    assert_eq!(repr.payload, p.payload());
    // Re-emit: Linux's layout may not fit every SACK block the peer packed in.
    let mut expected = repr;
    let kept = repr.options.emitted_sack_len();
    expected.options.sack_len = kept as u8;
    for block in &mut expected.options.sack_blocks[kept..] {
        *block = SackBlock::default();
    }
    let mut buf = vec![0u8; repr.buffer_len()];
    assert!(repr.header_len() <= 60);
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, Checksum::Software);
    let again = TcpPacket::new_checked(&buf[..]).expect("emitted segment checks");
    assert_eq!(TcpRepr::parse(&again, src, dst, Checksum::Software), Ok(expected));
});
