//! TCP segments ↔ IPv4 packet bytes, through joyride-ip's real `emit`/`parse`: checksums are
//! computed on the way out and verified on the way in, so a corrupted packet is rejected
//! exactly as the service would reject it.

use joyride_ip::ipv4::{Ecn, IpProtocol, Ipv4Packet, Ipv4Repr};
use joyride_ip::tcp::{TcpPacket, TcpRepr};
use joyride_ip::{Checksum, Error, Ipv4Addr};

/// An IPv4 packet carrying `tcp` from `src` to `dst`, checksums filled in.
pub fn encode_tcp(src: Ipv4Addr, dst: Ipv4Addr, tcp: &TcpRepr<'_>) -> Vec<u8> {
    let tcp_len = tcp.buffer_len();
    let ip = Ipv4Repr {
        src,
        dst,
        protocol: IpProtocol::Tcp,
        payload_len: tcp_len,
        ttl: 64,
        dscp: 0,
        ecn: Ecn::NotEct,
        ident: 0,
        dont_frag: true,
        more_frags: false,
        frag_offset: 0,
    };
    let mut buf = vec![0u8; ip.total_len()];
    let header_len = ip.buffer_len();
    // Lengths are derived from the reprs themselves; a failure here is a bug in joyride-ip.
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), Checksum::Software)
        .expect("IPv4 emit into a buffer of total_len bytes");
    tcp.emit(&mut TcpPacket::new_unchecked(&mut buf[header_len..]), src, dst, Checksum::Software);
    buf
}

/// Parses an IPv4 packet carrying TCP, verifying both checksums. Returns source, destination
/// and the segment (whose payload borrows from `bytes`).
pub fn decode_tcp(bytes: &[u8]) -> Result<(Ipv4Addr, Ipv4Addr, TcpRepr<'_>), Error> {
    let ip_packet = Ipv4Packet::new_checked(bytes)?;
    let ip = Ipv4Repr::parse(&ip_packet, Checksum::Software)?;
    if ip.protocol != IpProtocol::Tcp || ip.is_fragment() {
        return Err(Error::Unsupported);
    }
    let start = ip_packet.header_len();
    let end = start + ip.payload_len;
    let segment = bytes.get(start..end).ok_or(Error::Truncated)?;
    let tcp_packet = TcpPacket::new_checked(segment)?;
    let tcp = TcpRepr::parse(&tcp_packet, ip.src, ip.dst, Checksum::Software)?;
    Ok((ip.src, ip.dst, tcp))
}

#[cfg(test)]
mod tests {
    use super::*;
    use joyride_ip::tcp::{TcpFlags, TcpOptions};

    #[test]
    fn round_trip_and_corruption_is_rejected() {
        let options = TcpOptions { mss: Some(1460), sack_permitted: true, ..Default::default() };
        let payload = b"hello, world";
        let seg = TcpRepr {
            src_port: 40000,
            dst_port: 8080,
            seq: 0xdead_beef,
            ack: 7,
            flags: TcpFlags::SYN | TcpFlags::ACK,
            window: 65535,
            urgent: 0,
            options,
            payload,
        };
        let a = Ipv4Addr::new(192, 168, 0, 1);
        let b = Ipv4Addr::new(192, 0, 2, 1);
        let bytes = encode_tcp(a, b, &seg);
        let (src, dst, back) = decode_tcp(&bytes).unwrap();
        assert_eq!((src, dst), (a, b));
        assert_eq!(back, seg);
        // Every single-bit flip is caught by one of the checksums or a length check.
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            if let Ok((s, d, t)) = decode_tcp(&bad) {
                panic!("bit {bit} flipped yet accepted: {s} {d} {t:?}");
            }
        }
    }
}
