//! IPv4 header (RFC 791 §3.1).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |   DSCP    |ECN|          Total Length         |
//! |         Identification        |Flags|     Fragment Offset     |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The TOS octet is split as RFC 2474 (DSCP) and RFC 3168 (ECN) define it.

use core::fmt;

use crate::arp::ipv4;
use crate::ethernet::{be16, put16};
use crate::{checksum, Checksum, Error, Ipv4Addr, Result};

/// The protocol carried in the payload (RFC 791 §3.1 "Protocol"; IANA protocol numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// ICMP (1).
    Icmp,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// Any other number, kept as sent.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        match v {
            1 => IpProtocol::Icmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        match v {
            IpProtocol::Icmp => 1,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Unknown(other) => other,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Unknown(v) => write!(f, "proto {v}"),
        }
    }
}

/// The ECN codepoint, the low two bits of the former TOS octet (RFC 3168 §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Ecn {
    /// 00: not ECN-capable transport.
    #[default]
    NotEct,
    /// 01: ECN-capable transport, ECT(1).
    Ect1,
    /// 10: ECN-capable transport, ECT(0).
    Ect0,
    /// 11: congestion experienced.
    Ce,
}

impl Ecn {
    /// From the two low bits of `v`.
    pub const fn from_bits(v: u8) -> Ecn {
        match v & 0b11 {
            0b00 => Ecn::NotEct,
            0b01 => Ecn::Ect1,
            0b10 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    /// The two-bit codepoint.
    pub const fn bits(self) -> u8 {
        match self {
            Ecn::NotEct => 0b00,
            Ecn::Ect1 => 0b01,
            Ecn::Ect0 => 0b10,
            Ecn::Ce => 0b11,
        }
    }
}

mod field {
    use core::ops::Range;
    pub(super) const VER_IHL: usize = 0;
    pub(super) const DSCP_ECN: usize = 1;
    pub(super) const TOTAL_LEN: Range<usize> = 2..4;
    pub(super) const IDENT: Range<usize> = 4..6;
    pub(super) const FLG_OFF: Range<usize> = 6..8;
    pub(super) const TTL: usize = 8;
    pub(super) const PROTOCOL: usize = 9;
    pub(super) const CHECKSUM: Range<usize> = 10..12;
    pub(super) const SRC: Range<usize> = 12..16;
    pub(super) const DST: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;
/// Largest header: IHL = 15.
pub const MAX_HEADER_LEN: usize = 60;
/// Largest total length the 16-bit field can express.
pub const MAX_PACKET_LEN: usize = 65535;

/// RFC 791 §3.1 flags: bit 1 "DF" and bit 2 "MF" of the 3-bit field (bit 0 reserved).
const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FLAG_RESERVED: u16 = 0x8000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view of an IPv4 packet.
///
/// After [`Self::check_len`] the buffer holds at least `total_len` bytes and
/// `20 ≤ header_len ≤ total_len`; bytes beyond `total_len` (Ethernet padding) are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it; getters may panic unless [`Self::check_len`] passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Validates the version and the length fields against each other and the buffer, in this
    /// order:
    ///
    /// - buffer < 20 bytes → [`Error::Truncated`];
    /// - version ≠ 4 → [`Error::BadVersion`];
    /// - IHL < 5 → [`Error::BadHeaderLen`];
    /// - total length < header length → [`Error::BadLength`];
    /// - total length > buffer (which includes header length > buffer) → [`Error::Truncated`].
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        // RFC 791 §3.1: "the minimum value for a correct header is 5".
        if self.header_len() < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        let total = usize::from(self.total_len());
        if total < self.header_len() {
            return Err(Error::BadLength);
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Checks only what a header quoted in an ICMP error needs (RFC 792): 20 bytes, version
    /// 4, IHL ≥ 5 and the whole header (with options) in the buffer. The total length may
    /// exceed the buffer, since only the first bytes of the payload are quoted; use
    /// [`Self::header`] rather than [`Self::payload`] on such a view.
    pub fn check_header_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::BadVersion);
        }
        if self.header_len() < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if self.header_len() > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services codepoint, 6 bits (RFC 2474 §3).
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// ECN codepoint (RFC 3168 §5).
    pub fn ecn(&self) -> Ecn {
        Ecn::from_bits(self.buffer.as_ref()[field::DSCP_ECN])
    }

    /// Total length: header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::TOTAL_LEN.start)
    }

    /// Identification (RFC 791 §3.1, RFC 6864).
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    fn flags_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    /// The reserved flag bit (RFC 791: "must be zero"); parsing ignores it.
    pub fn reserved_flag(&self) -> bool {
        self.flags_offset() & FLAG_RESERVED != 0
    }

    /// Don't Fragment.
    pub fn dont_frag(&self) -> bool {
        self.flags_offset() & FLAG_DF != 0
    }

    /// More Fragments.
    pub fn more_frags(&self) -> bool {
        self.flags_offset() & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units, RFC 791 §3.1).
    pub fn frag_offset(&self) -> u16 {
        (self.flags_offset() & OFFSET_MASK) << 3
    }

    /// Whether this is a fragment of a larger datagram: MF set or a non-zero offset
    /// (RFC 791 §3.2 "Fragmentation and Reassembly").
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Payload protocol.
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum field as sent.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::SRC])
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        ipv4(&self.buffer.as_ref()[field::DST])
    }

    /// The header bytes, options included.
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The options area (between byte 20 and the header length), padding included.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.header_len()]
    }

    /// Whether the header checksum verifies (RFC 791 §3.1: the one's complement sum of the
    /// header, checksum included, is all ones).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.header()) == 0
    }

    /// The payload: from the header's end to `total_len` (Ethernet padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version.
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60).
    pub fn set_header_len(&mut self, len: usize) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) as u8 & 0x0f);
    }

    /// Sets the DSCP (low 6 bits of `v`).
    pub fn set_dscp(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0b11) | (v << 2);
    }

    /// Sets the ECN codepoint.
    pub fn set_ecn(&mut self, v: Ecn) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & !0b11) | v.bits();
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::TOTAL_LEN.start, v);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::IDENT.start, v);
    }

    fn set_flags_offset(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::FLG_OFF.start, v);
    }

    /// Clears the flags and the fragment offset.
    pub fn clear_flags(&mut self) {
        self.set_flags_offset(0);
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, v: bool) {
        let old = self.flags_offset();
        self.set_flags_offset(if v { old | FLAG_DF } else { old & !FLAG_DF });
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, v: bool) {
        let old = self.flags_offset();
        self.set_flags_offset(if v { old | FLAG_MF } else { old & !FLAG_MF });
    }

    /// Sets the fragment offset in bytes (a multiple of 8; the low 3 bits are dropped).
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let old = self.flags_offset();
        self.set_flags_offset((old & !OFFSET_MASK) | (bytes >> 3));
    }

    /// Sets the TTL.
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, v: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = v.into();
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&a.octets());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&a.octets());
    }

    /// Computes and stores the header checksum over `header_len` bytes (RFC 791 §3.1: "for
    /// purposes of computing the checksum, the value of the checksum field is zero").
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.header());
        self.set_checksum(c);
    }

    /// The payload, mutable (header end to `total_len`).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        let end = usize::from(self.total_len());
        &mut self.buffer.as_mut()[start..end]
    }
}

/// Walks the options area (RFC 791 §3.1 "Options"): End of Option List (0) ends the walk (the
/// rest is padding), No Operation (1) is one byte, every other option has a length octet that
/// counts its type and length octets and must stay inside the area; otherwise
/// [`Error::Malformed`]. Joyride acts on no IPv4 option; they are checked and skipped.
pub fn check_options(options: &[u8]) -> Result<()> {
    let mut i = 0;
    while i < options.len() {
        match options[i] {
            0 => return Ok(()),
            1 => i += 1,
            _ => {
                let Some(&len) = options.get(i + 1) else {
                    return Err(Error::Malformed);
                };
                let len = usize::from(len);
                if len < 2 || i + len > options.len() {
                    return Err(Error::Malformed);
                }
                i += len;
            }
        }
    }
    Ok(())
}

/// An IPv4 header as a value (options are validated and dropped on parse; emit writes none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Payload protocol.
    pub protocol: IpProtocol,
    /// Payload length in bytes (total length minus header length); at most
    /// [`Ipv4Repr::MAX_PAYLOAD_LEN`] for emit.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DSCP, 6 bits (higher bits are dropped on emit).
    pub dscp: u8,
    /// ECN codepoint.
    pub ecn: Ecn,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
    /// More Fragments.
    pub more_frags: bool,
    /// Fragment offset in bytes, a multiple of 8 (low bits are dropped on emit).
    pub frag_offset: u16,
}

impl Ipv4Repr {
    /// The largest payload a 20-byte header can announce.
    pub const MAX_PAYLOAD_LEN: usize = MAX_PACKET_LEN - HEADER_LEN;

    /// Parses a checked packet: verifies the header checksum under [`Checksum::Software`]
    /// ([`Error::BadChecksum`]) and walks the options ([`check_options`]).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>, checksum: Checksum) -> Result<Ipv4Repr> {
        packet.check_len()?;
        Self::parse_header(packet, checksum)
    }

    /// [`Self::parse`] for a view that passed only [`Ipv4Packet::check_header_len`], as the
    /// quoted header in an ICMP error: `payload_len` is what the header's total length claims,
    /// not what the buffer holds.
    pub fn parse_header<T: AsRef<[u8]>>(
        packet: &Ipv4Packet<T>,
        checksum: Checksum,
    ) -> Result<Ipv4Repr> {
        packet.check_header_len()?;
        let total = usize::from(packet.total_len());
        if total < packet.header_len() {
            return Err(Error::BadLength);
        }
        // RFC 791 §3.1 "Header Checksum"; RFC 1122 §3.2.1.2: a host MUST verify it and
        // silently discard a datagram that fails.
        if checksum == Checksum::Software && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        check_options(packet.options())?;
        Ok(Ipv4Repr {
            src: packet.src_addr(),
            dst: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: total - packet.header_len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
            more_frags: packet.more_frags(),
            frag_offset: packet.frag_offset(),
        })
    }

    /// Whether this describes a fragment (MF set or a non-zero offset).
    pub const fn is_fragment(&self) -> bool {
        self.more_frags || self.frag_offset != 0
    }

    /// The emitted header length: 20 (no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload length.
    pub const fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (no options) and, unless `checksum` is
    /// [`Checksum::Offloaded`], its checksum (offloaded: the field is left zero for the NIC).
    ///
    /// [`Error::BadLength`] if `payload_len` exceeds [`Self::MAX_PAYLOAD_LEN`];
    /// [`Error::Truncated`] if the buffer is shorter than 20 bytes. The payload is not written.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        checksum: Checksum,
    ) -> Result<()> {
        if self.payload_len > Self::MAX_PAYLOAD_LEN {
            return Err(Error::BadLength);
        }
        if packet.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN);
        packet.set_dscp(self.dscp);
        packet.set_ecn(self.ecn);
        packet.set_total_len(self.total_len() as u16);
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_dont_frag(self.dont_frag);
        packet.set_more_frags(self.more_frags);
        packet.set_frag_offset(self.frag_offset);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src);
        packet.set_dst_addr(self.dst);
        match checksum {
            Checksum::Software => packet.fill_checksum(),
            Checksum::Offloaded => packet.set_checksum(0),
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec;

    /// An ICMP echo request header from Linux (`ip/tests/frames_linux.rs` has the capture):
    /// 10.77.0.1 → 10.77.0.2, id 60492, DF, TTL 64, 84 bytes.
    const ECHO_HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0xec, 0x4c, 0x40, 0x00, 0x40, 0x01, 0x39, 0xc0, 10, 77, 0, 1, 10,
        77, 0, 2,
    ];

    fn packet(payload_len: usize) -> std::vec::Vec<u8> {
        let mut b = vec![0u8; 20 + payload_len];
        b[..20].copy_from_slice(&ECHO_HDR);
        b[2..4].copy_from_slice(&((20 + payload_len) as u16).to_be_bytes());
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn linux_header_checksum_verifies() {
        let mut b = [0u8; 84];
        b[..20].copy_from_slice(&ECHO_HDR);
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Ipv4Repr::parse(&p, Checksum::Software).unwrap();
        assert_eq!(r.ident, 0xec4c);
        assert!(r.dont_frag && !r.is_fragment());
        assert_eq!(r.payload_len, 64);
    }

    #[test]
    fn rejections() {
        let good = packet(8);
        assert_eq!(Ipv4Packet::new_checked(&good[..19]).unwrap_err(), Error::Truncated);
        let mut b = good.clone();
        b[0] = 0x65; // version 6
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadVersion);
        let mut b = good.clone();
        b[0] = 0x44; // IHL 4
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadHeaderLen);
        let mut b = good.clone();
        b[0] = 0x48; // IHL 8: a 32-byte header inside a 28-byte total length
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        let mut b = good.clone();
        b[3] = 19; // total length below the header
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::BadLength);
        let mut b = good.clone();
        b[3] = 29; // one byte more than the buffer
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = good.clone();
        b[0] = 0x4f; // 60-byte header, total length also claims 60: beyond the 28-byte buffer
        b[3] = 60;
        assert_eq!(Ipv4Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = good.clone();
        b[8] ^= 1; // TTL changed, checksum stale
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&p, Checksum::Software).unwrap_err(), Error::BadChecksum);
        assert!(Ipv4Repr::parse(&p, Checksum::Offloaded).is_ok());
    }

    #[test]
    fn padding_beyond_total_len_is_ignored() {
        let mut b = packet(4);
        b[20..24].copy_from_slice(b"data");
        b.extend_from_slice(&[0u8; 22]); // Ethernet pads to the 46-byte minimum payload
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), b"data");
        assert_eq!(Ipv4Repr::parse(&p, Checksum::Software).unwrap().payload_len, 4);
    }

    fn with_options(opts: &[u8]) -> std::vec::Vec<u8> {
        let hl = 20 + opts.len();
        let mut b = vec![0u8; hl];
        b[..20].copy_from_slice(&ECHO_HDR);
        b[0] = 0x40 | (hl / 4) as u8;
        b[2..4].copy_from_slice(&(hl as u16).to_be_bytes());
        b[20..].copy_from_slice(opts);
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn options_walk() {
        // NOP, NOP, router alert (type 148, len 4), then EOL padding.
        let ok = with_options(&[1, 1, 148, 4, 0, 0, 0, 0]);
        let p = Ipv4Packet::new_checked(&ok[..]).unwrap();
        assert_eq!(p.options().len(), 8);
        assert!(Ipv4Repr::parse(&p, Checksum::Software).is_ok());
        // After EOL anything goes (it is padding).
        let ok = with_options(&[0, 7, 0xff, 3]);
        assert!(
            Ipv4Repr::parse(&Ipv4Packet::new_checked(&ok[..]).unwrap(), Checksum::Software).is_ok()
        );
        for bad in [[148, 1, 0, 0], [148, 0, 0, 0], [1, 1, 1, 7], [7, 5, 0, 0], [1, 1, 1, 148]] {
            let b = with_options(&bad);
            let p = Ipv4Packet::new_checked(&b[..]).unwrap();
            assert_eq!(
                Ipv4Repr::parse(&p, Checksum::Software).unwrap_err(),
                Error::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn emit_errors() {
        let mut r =
            Ipv4Repr::parse(&Ipv4Packet::new_checked(&packet(0)[..]).unwrap(), Checksum::Software)
                .unwrap();
        let mut b = [0u8; 20];
        assert_eq!(
            r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..19]), Checksum::Software),
            Err(Error::Truncated)
        );
        r.payload_len = Ipv4Repr::MAX_PAYLOAD_LEN + 1;
        assert_eq!(
            r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]), Checksum::Software),
            Err(Error::BadLength)
        );
        r.payload_len = 0;
        r.emit(&mut Ipv4Packet::new_unchecked(&mut b[..]), Checksum::Offloaded).unwrap();
        assert_eq!(Ipv4Packet::new_unchecked(&b[..]).checksum(), 0);
    }

    pub(crate) fn protocol_strategy() -> impl Strategy<Value = IpProtocol> {
        prop_oneof![
            Just(IpProtocol::Icmp),
            Just(IpProtocol::Tcp),
            Just(IpProtocol::Udp),
            any::<u8>()
                .prop_filter("unnamed", |v| !matches!(v, 1 | 6 | 17))
                .prop_map(IpProtocol::Unknown),
        ]
    }

    pub(crate) fn ecn_strategy() -> impl Strategy<Value = Ecn> {
        (0u8..4).prop_map(Ecn::from_bits)
    }

    prop_compose! {
        /// Any valid `Ipv4Repr` with a payload of at most `max_payload` bytes.
        pub(crate) fn repr_strategy(max_payload: usize)(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
            protocol in protocol_strategy(),
            payload_len in 0..=max_payload,
            ttl in any::<u8>(), dscp in 0u8..64, ecn in ecn_strategy(),
            ident in any::<u16>(), dont_frag in any::<bool>(), more_frags in any::<bool>(),
            frag_units in 0u16..=0x1fff,
        ) -> Ipv4Repr {
            Ipv4Repr {
                src: Ipv4Addr::from(src), dst: Ipv4Addr::from(dst), protocol, payload_len, ttl,
                dscp, ecn, ident, dont_frag, more_frags, frag_offset: frag_units * 8,
            }
        }
    }

    proptest! {
        #[test]
        fn round_trip(repr in repr_strategy(2000), pad in 0usize..8) {
            let mut buf = vec![0u8; repr.total_len() + pad];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), Checksum::Software).unwrap();
            let p = Ipv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(p.payload().len(), repr.payload_len);
            prop_assert_eq!(p.is_fragment(), repr.is_fragment());
            prop_assert_eq!(Ipv4Repr::parse(&p, Checksum::Software).unwrap(), repr);
        }

        #[test]
        fn any_single_bit_flip_in_header_is_caught(repr in repr_strategy(16), bit in 0usize..160) {
            let mut buf = vec![0u8; repr.total_len()];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), Checksum::Software).unwrap();
            buf[bit / 8] ^= 1 << (bit % 8);
            // Either a length/version check or the checksum rejects it; never a panic or Ok.
            let r = Ipv4Packet::new_checked(&buf[..]).and_then(|p| Ipv4Repr::parse(&p, Checksum::Software));
            prop_assert!(r.is_err());
        }
    }
}
