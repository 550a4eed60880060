//! Rejection tests: truncated buffers, bad data offsets and lengths, malformed options, bad
//! checksums. Each starts from a valid packet and breaks one thing.
#![allow(missing_docs)]

use joyride_ip::tcp::{TcpFlags, TcpOption, TcpOptionIter, TcpOptions, TcpPacket, TcpRepr};
use joyride_ip::udp::{UdpPacket, UdpRepr};
use joyride_ip::{Checksum, Error, Ipv4Addr};

const SRC: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 1);
const DST: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 2);

fn valid_tcp() -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 1234,
        dst_port: 80,
        seq: 1,
        ack: 2,
        flags: TcpFlags::ACK | TcpFlags::PSH,
        window: 100,
        urgent: 0,
        options: TcpOptions { timestamps: Some((5, 6)), ..TcpOptions::default() },
        payload: b"data",
    };
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, Checksum::Software);
    assert!(TcpRepr::parse(
        &TcpPacket::new_checked(&buf[..]).unwrap(),
        SRC,
        DST,
        Checksum::Software
    )
    .is_ok());
    buf
}

/// A 20-byte header plus the given option bytes (data offset set to cover them), with a
/// correct checksum so only the options can be at fault.
fn tcp_with_options(options: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let mut buf = vec![0u8; 20 + options.len()];
    buf[20..].copy_from_slice(options);
    let mut p = TcpPacket::new_unchecked(&mut buf[..]);
    p.set_header_len((20 + options.len()) as u8);
    p.set_flags(TcpFlags::SYN);
    p.fill_checksum(SRC, DST);
    buf
}

fn parse_tcp(buf: &[u8]) -> Result<TcpRepr<'_>, Error> {
    TcpRepr::parse(&TcpPacket::new_checked(buf)?, SRC, DST, Checksum::Software)
}

#[test]
fn tcp_truncated() {
    let buf = valid_tcp();
    for len in 0..20 {
        assert_eq!(TcpPacket::new_checked(&buf[..len]).unwrap_err(), Error::Truncated, "{len}");
    }
    // The header is 32 bytes (timestamps); anything shorter cuts into the options.
    for len in 20..32 {
        assert_eq!(TcpPacket::new_checked(&buf[..len]).unwrap_err(), Error::Truncated, "{len}");
    }
    // Cutting the payload keeps the view valid but breaks the checksum.
    assert_eq!(parse_tcp(&buf[..33]).unwrap_err(), Error::BadChecksum);
}

#[test]
fn tcp_bad_data_offset() {
    let mut buf = valid_tcp();
    for offset in 0..5u8 {
        buf[12] = offset << 4;
        assert_eq!(TcpPacket::new_checked(&buf[..]).unwrap_err(), Error::BadHeaderLen);
    }
    buf[12] = 15 << 4; // 60 bytes > 36-byte buffer
    assert_eq!(TcpPacket::new_checked(&buf[..]).unwrap_err(), Error::Truncated);
}

#[test]
fn tcp_bad_checksum() {
    let good = valid_tcp();
    for i in 0..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x10;
        let err = parse_tcp(&bad).unwrap_err();
        // Byte 12 holds the data offset: flipping it may make the header length invalid first.
        assert!(err == Error::BadChecksum || i == 12, "byte {i}: {err:?}");
    }
    let mut bad = good.clone();
    bad[30] ^= 1;
    let p = TcpPacket::new_checked(&bad[..]).unwrap();
    assert!(TcpRepr::parse(&p, SRC, DST, Checksum::Offloaded).is_ok());
}

#[test]
fn tcp_bad_option_lengths() {
    let cases: &[(&str, [u8; 4])] = &[
        ("length 0", [30, 0, 1, 1]),
        ("length 1", [30, 1, 1, 1]),
        ("overruns header", [30, 5, 1, 1]),
        ("kind without length byte", [1, 1, 1, 30]),
        ("MSS length 3", [2, 3, 0, 1]),
        ("MSS length 2", [2, 2, 1, 1]),
        ("wscale length 4", [3, 4, 7, 0]),
        ("sackOK length 3", [4, 3, 0, 1]),
        ("SACK without blocks", [5, 2, 1, 1]),
        ("TS length 4", [8, 4, 0, 0]),
    ];
    for (name, opts) in cases {
        let buf = tcp_with_options(opts);
        assert_eq!(parse_tcp(&buf).unwrap_err(), Error::Malformed, "{name}");
        let items: Vec<_> = TcpOptionIter::new(opts).collect();
        assert_eq!(items.last(), Some(&Err(Error::Malformed)), "{name}");
    }
    // SACK with a length that is not 2 + 8n, and with 5 blocks (42 bytes cannot fit anyway).
    let mut sack = [0u8; 12];
    sack[..2].copy_from_slice(&[5, 11]);
    assert_eq!(parse_tcp(&tcp_with_options(&sack)).unwrap_err(), Error::Malformed);
    let mut five = [0u8; 40];
    five[..2].copy_from_slice(&[5, 40]); // 38 bytes of blocks: not a multiple of 8
    assert_eq!(parse_tcp(&tcp_with_options(&five)).unwrap_err(), Error::Malformed);
}

#[test]
fn tcp_unknown_and_padding_options_accepted() {
    // Unknown kind 30 (MPTCP) length 4, then EOL and garbage padding after it.
    let buf = tcp_with_options(&[30, 4, 9, 9, 2, 4, 5, 0xb4, 0, 0xff, 0xff, 0xff]);
    let repr = parse_tcp(&buf).unwrap();
    assert_eq!(repr.options.mss, Some(1460));
    let p = TcpPacket::new_checked(&buf[..]).unwrap();
    let opts: Vec<_> = p.options_iter().map(Result::unwrap).collect();
    assert_eq!(
        opts,
        [
            TcpOption::Unknown { kind: 30, data: &[9, 9] },
            TcpOption::MaxSegmentSize(1460),
            TcpOption::EndOfList,
        ]
    );
}

#[test]
fn udp_rejections() {
    let repr = UdpRepr { src_port: 7, dst_port: 9, payload: b"abcdef" };
    let mut buf = vec![0; repr.buffer_len()];
    repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), SRC, DST, Checksum::Software);
    for len in 0..8 {
        assert_eq!(UdpPacket::new_checked(&buf[..len]).unwrap_err(), Error::Truncated);
    }
    for len in 8..buf.len() {
        // The length field (14) now exceeds the buffer.
        assert_eq!(UdpPacket::new_checked(&buf[..len]).unwrap_err(), Error::Truncated);
    }
    for field in 0..8u8 {
        let mut bad = buf.clone();
        bad[4..6].copy_from_slice(&u16::from(field).to_be_bytes());
        assert_eq!(UdpPacket::new_checked(&bad[..]).unwrap_err(), Error::BadLength);
    }
    for i in 0..buf.len() {
        if (4..6).contains(&i) {
            continue; // the length field; covered above
        }
        let mut bad = buf.clone();
        bad[i] ^= 0x01;
        let p = UdpPacket::new_checked(&bad[..]).unwrap();
        assert_eq!(UdpRepr::parse(&p, SRC, DST, Checksum::Software), Err(Error::BadChecksum));
        assert!(UdpRepr::parse(&p, SRC, DST, Checksum::Offloaded).is_ok());
    }
    // A zero checksum means "none" (RFC 768) and is accepted even over changed data.
    let mut none = buf.clone();
    none[6..8].copy_from_slice(&[0, 0]);
    none[10] ^= 0xff;
    let p = UdpPacket::new_checked(&none[..]).unwrap();
    assert_eq!(UdpRepr::parse(&p, SRC, DST, Checksum::Software).unwrap().payload[2], b'c' ^ 0xff);
}
