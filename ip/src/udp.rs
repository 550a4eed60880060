//! UDP datagrams (RFC 768): a byte view [`UdpPacket`] and a value [`UdpRepr`].
//!
//! The view covers exactly one datagram as delivered by the IP layer (the IP payload); bytes
//! past the UDP length field (link-layer padding the IP layer did not strip) are ignored.

use crate::checksum;
use crate::{Checksum, Error, Ipv4Addr, Result};

/// Length of the UDP header in bytes (RFC 768).
pub const HEADER_LEN: usize = 8;

/// IP protocol number of UDP (IANA), used in the pseudo-header.
pub const PROTOCOL: u8 = 17;

mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const LENGTH: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
}

/// A byte view of a UDP datagram (RFC 768 "Format").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it; getters may panic until [`check_len`] succeeds.
    ///
    /// [`check_len`]: Self::check_len
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps a buffer and checks its lengths ([`check_len`](Self::check_len)); after this no
    /// getter panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header fits and that the length field is consistent with the buffer.
    ///
    /// # Errors
    /// [`Error::Truncated`] if the buffer is shorter than 8 bytes or than the length field;
    /// [`Error::BadLength`] if the length field is below 8 (RFC 768: "the minimum value of the
    /// length is eight").
    pub fn check_len(&self) -> Result<()> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let len = usize::from(self.len());
        if len < HEADER_LEN {
            return Err(Error::BadLength);
        }
        if len > buf.len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The source port (0 when unused, RFC 768).
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// The length field: header plus data, in bytes (RFC 768 "Length").
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// True when the length field says there is no data (a length of exactly 8).
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }

    /// The checksum field (0: the sender computed none, RFC 768).
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The datagram's data: the bytes after the header up to the length field.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// Whether the checksum verifies against the IPv4 pseudo-header. A zero checksum field
    /// means "none computed" for IPv4 (RFC 768) and verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            // RFC 768: "An all zero transmitted checksum value means that the transmitter
            // generated no checksum".
            return true;
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        // RFC 768: the checksum covers the pseudo-header, the UDP header and the data; a
        // correct one makes the whole sum 0xFFFF.
        let s = checksum::combine(
            checksum::pseudo_header_v4(src, dst, PROTOCOL, len),
            checksum::sum(data),
        );
        checksum::fold(s) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port.
    pub fn set_src_port(&mut self, port: u16) {
        self.write_u16(field::SRC_PORT, port);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, port: u16) {
        self.write_u16(field::DST_PORT, port);
    }

    /// Sets the length field (header plus data).
    pub fn set_len(&mut self, len: u16) {
        self.write_u16(field::LENGTH, len);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// The data, mutable: the bytes after the header up to the length field.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }

    /// Computes and stores the checksum over the pseudo-header, header and data (the length
    /// field must be set). A computed 0 is sent as `0xFFFF` (RFC 768: "If the computed
    /// checksum is zero, it is transmitted as all ones").
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        let s = checksum::combine(
            checksum::pseudo_header_v4(src, dst, PROTOCOL, len),
            checksum::sum(data),
        );
        let c = !checksum::fold(s);
        self.set_checksum(if c == 0 { 0xFFFF } else { c });
    }

    /// Stores the folded, uncomplemented pseudo-header sum in the checksum field, as NICs with
    /// partial checksum offload expect (they add the header and data and complement).
    pub fn fill_pseudo_header_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.len();
        self.set_checksum(checksum::fold(checksum::pseudo_header_v4(src, dst, PROTOCOL, len)));
    }
}

/// A UDP datagram as values. The payload is borrowed from the packet on parse and copied into
/// the packet on emit (a caller that built the data in place can use the view's setters and
/// [`UdpPacket::fill_checksum`] instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The data.
    pub payload: &'a [u8],
}

impl<'a> UdpRepr<'a> {
    /// Parses a checked view, verifying the checksum with the IPv4 pseudo-header unless
    /// `checksum` is [`Checksum::Offloaded`]. A zero checksum field means none was sent (IPv4,
    /// RFC 768) and is accepted.
    ///
    /// # Errors
    /// The length errors of [`UdpPacket::check_len`] and [`Error::BadChecksum`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &UdpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: Checksum,
    ) -> Result<UdpRepr<'a>> {
        packet.check_len()?;
        if checksum == Checksum::Software && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let buf: &'a [u8] = packet.buffer.as_ref();
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload: &buf[HEADER_LEN..usize::from(packet.len())],
        })
    }

    /// The header length (always 8).
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes needed to emit this datagram: header plus data.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }

    /// Writes the header and data into `packet` and fills the checksum: computed in software
    /// (0 sent as `0xFFFF`, RFC 768), or with [`Checksum::Offloaded`] the pseudo-header sum the
    /// NIC completes.
    ///
    /// # Panics
    /// If the packet buffer is shorter than [`buffer_len`](Self::buffer_len) or the datagram
    /// is longer than 65,535 bytes (the length field cannot say so).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: Checksum,
    ) {
        let len = u16::try_from(self.buffer_len()).expect("UDP datagram longer than 65535 bytes");
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(len);
        packet.payload_mut().copy_from_slice(self.payload);
        match checksum {
            Checksum::Software => {
                // RFC 768: pseudo-header, header (checksum zero) and data. The header words are
                // summed from the values and the data from `self.payload` rather than re-read
                // from the bytes just stored (which stalls on store-to-load forwarding); the
                // data starts at offset 8, so the partial sums combine.
                let s = checksum::combine(
                    checksum::pseudo_header_v4(src, dst, PROTOCOL, len)
                        + u32::from(self.src_port)
                        + u32::from(self.dst_port)
                        + u32::from(len),
                    checksum::sum(self.payload),
                );
                let c = !checksum::fold(s);
                // RFC 768: a computed zero is transmitted as all ones.
                packet.set_checksum(if c == 0 { 0xFFFF } else { c });
            }
            Checksum::Offloaded => packet.fill_pseudo_header_checksum(src, dst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    #[test]
    fn round_trip_and_verify() {
        let repr = UdpRepr { src_port: 5353, dst_port: 53, payload: b"hello" };
        let mut buf = [0u8; 13];
        let mut p = UdpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, SRC, DST, Checksum::Software);
        let p = UdpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(p.len(), 13);
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(SRC, Ipv4Addr::new(192, 168, 1, 3)));
        assert_eq!(UdpRepr::parse(&p, SRC, DST, Checksum::Software).unwrap(), repr);
    }

    #[test]
    fn length_checks() {
        assert_eq!(UdpPacket::new_checked(&[0u8; 7][..]).unwrap_err(), Error::Truncated);
        let mut hdr = [0u8; 10];
        hdr[5] = 7; // length 7 < 8
        assert_eq!(UdpPacket::new_checked(&hdr[..]).unwrap_err(), Error::BadLength);
        hdr[5] = 11; // length beyond the buffer
        assert_eq!(UdpPacket::new_checked(&hdr[..]).unwrap_err(), Error::Truncated);
        hdr[5] = 9; // padding after the datagram is ignored
        assert_eq!(UdpPacket::new_checked(&hdr[..]).unwrap().payload().len(), 1);
    }
}
