//! ICMP for IPv4 (RFC 792): echo, destination unreachable (with RFC 1191's next-hop MTU) and
//! time exceeded.
//!
//! ```text
//!  0       1       2               4                               8
//! +-------+-------+---------------+-------------------------------+----------
//! | type  | code  |   checksum    | rest of header (ident/seq, MTU)| data ...
//! +-------+-------+---------------+-------------------------------+----------
//! ```
//!
//! A view covers the whole ICMP message, which is exactly the IPv4 payload
//! ([`crate::ipv4::Ipv4Packet::payload`]); the checksum covers all of it (RFC 792).

use crate::ethernet::{be16, put16};
use crate::ipv4::{Ipv4Packet, Ipv4Repr, HEADER_LEN as IPV4_HEADER_LEN};
use crate::{checksum, Checksum, Error, Result};

/// The ICMP message type (RFC 792; IANA ICMP type numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Icmpv4Message {
    /// Echo Reply (0).
    EchoReply,
    /// Destination Unreachable (3).
    DstUnreachable,
    /// Redirect (5).
    Redirect,
    /// Echo Request (8).
    EchoRequest,
    /// Time Exceeded (11).
    TimeExceeded,
    /// Parameter Problem (12).
    ParamProblem,
    /// Any other type, kept as sent.
    Unknown(u8),
}

impl From<u8> for Icmpv4Message {
    fn from(v: u8) -> Self {
        match v {
            0 => Icmpv4Message::EchoReply,
            3 => Icmpv4Message::DstUnreachable,
            5 => Icmpv4Message::Redirect,
            8 => Icmpv4Message::EchoRequest,
            11 => Icmpv4Message::TimeExceeded,
            12 => Icmpv4Message::ParamProblem,
            other => Icmpv4Message::Unknown(other),
        }
    }
}

impl From<Icmpv4Message> for u8 {
    fn from(v: Icmpv4Message) -> Self {
        match v {
            Icmpv4Message::EchoReply => 0,
            Icmpv4Message::DstUnreachable => 3,
            Icmpv4Message::Redirect => 5,
            Icmpv4Message::EchoRequest => 8,
            Icmpv4Message::TimeExceeded => 11,
            Icmpv4Message::ParamProblem => 12,
            Icmpv4Message::Unknown(other) => other,
        }
    }
}

/// Destination Unreachable codes: 0–5 from RFC 792, `mtu` from RFC 1191 §4, 6–15 from
/// RFC 1122 §3.2.2.1 and RFC 1812 §5.2.7.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DstUnreachableCode {
    /// 0: net unreachable.
    NetUnreachable,
    /// 1: host unreachable.
    HostUnreachable,
    /// 2: protocol unreachable.
    ProtoUnreachable,
    /// 3: port unreachable.
    PortUnreachable,
    /// 4: fragmentation needed and DF set, with the next-hop MTU (RFC 1191 §4; 0 from
    /// routers that predate it).
    FragRequired {
        /// Next-hop MTU.
        mtu: u16,
    },
    /// 5: source route failed.
    SrcRouteFailed,
    /// 6: destination network unknown.
    DstNetUnknown,
    /// 7: destination host unknown.
    DstHostUnknown,
    /// 8: source host isolated.
    SrcHostIsolated,
    /// 9: network administratively prohibited.
    NetProhibited,
    /// 10: host administratively prohibited.
    HostProhibited,
    /// 11: network unreachable for type of service.
    NetUnreachableTos,
    /// 12: host unreachable for type of service.
    HostUnreachableTos,
    /// 13: communication administratively prohibited (RFC 1812).
    CommProhibited,
    /// 14: host precedence violation (RFC 1812).
    HostPrecedenceViolation,
    /// 15: precedence cutoff in effect (RFC 1812).
    PrecedenceCutoff,
    /// Any other code (16–255), kept as sent.
    Unknown(u8),
}

impl DstUnreachableCode {
    /// Decodes `code`; `mtu` is used only for code 4.
    pub const fn new(code: u8, mtu: u16) -> Self {
        use DstUnreachableCode::*;
        match code {
            0 => NetUnreachable,
            1 => HostUnreachable,
            2 => ProtoUnreachable,
            3 => PortUnreachable,
            4 => FragRequired { mtu },
            5 => SrcRouteFailed,
            6 => DstNetUnknown,
            7 => DstHostUnknown,
            8 => SrcHostIsolated,
            9 => NetProhibited,
            10 => HostProhibited,
            11 => NetUnreachableTos,
            12 => HostUnreachableTos,
            13 => CommProhibited,
            14 => HostPrecedenceViolation,
            15 => PrecedenceCutoff,
            other => Unknown(other),
        }
    }

    /// The code octet.
    pub const fn code(&self) -> u8 {
        use DstUnreachableCode::*;
        match self {
            NetUnreachable => 0,
            HostUnreachable => 1,
            ProtoUnreachable => 2,
            PortUnreachable => 3,
            FragRequired { .. } => 4,
            SrcRouteFailed => 5,
            DstNetUnknown => 6,
            DstHostUnknown => 7,
            SrcHostIsolated => 8,
            NetProhibited => 9,
            HostProhibited => 10,
            NetUnreachableTos => 11,
            HostUnreachableTos => 12,
            CommProhibited => 13,
            HostPrecedenceViolation => 14,
            PrecedenceCutoff => 15,
            Unknown(other) => *other,
        }
    }
}

/// Time Exceeded codes (RFC 792).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeExceededCode {
    /// 0: time to live exceeded in transit.
    TtlExpired,
    /// 1: fragment reassembly time exceeded.
    FragReassembly,
    /// Any other code, kept as sent.
    Unknown(u8),
}

impl From<u8> for TimeExceededCode {
    fn from(v: u8) -> Self {
        match v {
            0 => TimeExceededCode::TtlExpired,
            1 => TimeExceededCode::FragReassembly,
            other => TimeExceededCode::Unknown(other),
        }
    }
}

impl From<TimeExceededCode> for u8 {
    fn from(v: TimeExceededCode) -> Self {
        match v {
            TimeExceededCode::TtlExpired => 0,
            TimeExceededCode::FragReassembly => 1,
            TimeExceededCode::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::Range;
    pub(super) const TYPE: usize = 0;
    pub(super) const CODE: usize = 1;
    pub(super) const CHECKSUM: Range<usize> = 2..4;
    pub(super) const ECHO_IDENT: Range<usize> = 4..6;
    pub(super) const ECHO_SEQNO: Range<usize> = 6..8;
    /// RFC 1191 §4: the low 16 bits of the second word.
    pub(super) const NEXT_HOP_MTU: Range<usize> = 6..8;
    pub(super) const REST: Range<usize> = 4..8;
    pub(super) const DATA: usize = 8;
}

/// Length of the ICMP header (type, code, checksum, rest of header).
pub const HEADER_LEN: usize = field::DATA;

/// How many payload bytes of the offending datagram an error quotes at least (RFC 792:
/// "the first 64 bits of the original datagram's data").
pub const QUOTED_PAYLOAD_LEN: usize = 8;

/// A read/write view of an ICMPv4 message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps `buffer` without checking it; getters may panic unless [`Self::check_len`] passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps `buffer` after [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the 8-byte header is present.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field as sent.
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Echo identifier (bytes 4–5; meaningful for echo messages).
    pub fn echo_ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_IDENT.start)
    }

    /// Echo sequence number (bytes 6–7; meaningful for echo messages).
    pub fn echo_seq_no(&self) -> u16 {
        be16(self.buffer.as_ref(), field::ECHO_SEQNO.start)
    }

    /// Next-hop MTU (bytes 6–7; meaningful for "fragmentation needed", RFC 1191 §4).
    pub fn next_hop_mtu(&self) -> u16 {
        be16(self.buffer.as_ref(), field::NEXT_HOP_MTU.start)
    }

    /// The 4-byte "rest of header" word.
    pub fn rest_of_header(&self) -> [u8; 4] {
        let b = &self.buffer.as_ref()[field::REST];
        [b[0], b[1], b[2], b[3]]
    }

    /// Everything after the 8-byte header.
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Whether the checksum over the whole message verifies (RFC 792).
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the type.
    pub fn set_msg_type(&mut self, v: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = v.into();
    }

    /// Sets the code.
    pub fn set_msg_code(&mut self, v: u8) {
        self.buffer.as_mut()[field::CODE] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::CHECKSUM.start, v);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_IDENT.start, v);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::ECHO_SEQNO.start, v);
    }

    /// Sets the next-hop MTU.
    pub fn set_next_hop_mtu(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::NEXT_HOP_MTU.start, v);
    }

    /// Sets the 4-byte "rest of header" word.
    pub fn set_rest_of_header(&mut self, v: [u8; 4]) {
        self.buffer.as_mut()[field::REST].copy_from_slice(&v);
    }

    /// Everything after the header, mutable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes and stores the checksum over the whole buffer (RFC 792: "the checksum field
    /// should be zero" while computing).
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let c = checksum::checksum(self.buffer.as_ref());
        self.set_checksum(c);
    }
}

/// An ICMPv4 message as a value, borrowing its data from the packet buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Icmpv4Repr<'a> {
    /// Echo Request (RFC 792 type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data, echoed back by the peer.
        data: &'a [u8],
    },
    /// Echo Reply (RFC 792 type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Data.
        data: &'a [u8],
    },
    /// Destination Unreachable (RFC 792 type 3).
    DstUnreachable {
        /// Code (with the next-hop MTU for "fragmentation needed").
        code: DstUnreachableCode,
        /// The offending datagram's header.
        header: Ipv4Repr,
        /// The quoted bytes of the offending datagram's payload: at least its first 8
        /// (RFC 792), Linux quotes up to 576 bytes of message in all (RFC 1812 §4.3.2.3).
        data: &'a [u8],
    },
    /// Time Exceeded (RFC 792 type 11).
    TimeExceeded {
        /// Code.
        code: TimeExceededCode,
        /// The offending datagram's header.
        header: Ipv4Repr,
        /// The quoted bytes of the offending datagram's payload (see `DstUnreachable`).
        data: &'a [u8],
    },
}

/// The bytes of `payload` an error message about it quotes: the first 8 (RFC 792), or all of
/// a shorter payload.
pub fn quoted_payload(payload: &[u8]) -> &[u8] {
    &payload[..payload.len().min(QUOTED_PAYLOAD_LEN)]
}

impl<'a> Icmpv4Repr<'a> {
    /// Parses a message. Under [`Checksum::Software`] the checksum over the whole message must
    /// verify ([`Error::BadChecksum`]). Echo messages with a non-zero code and error messages
    /// whose quoted header is not a valid IPv4 header are [`Error::Malformed`]; other message
    /// types are [`Error::Unsupported`].
    ///
    /// The quoted header's own checksum is not verified (RFC 1812 §4.3.2.3 lets a router
    /// quote a header it has already changed, e.g. with the TTL decremented).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &Icmpv4Packet<&'a T>,
        checksum: Checksum,
    ) -> Result<Icmpv4Repr<'a>> {
        packet.check_len()?;
        if checksum == Checksum::Software && !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        let buf: &'a [u8] = packet.buffer.as_ref();
        let data = &buf[field::DATA..];
        match packet.msg_type() {
            // RFC 792 "Echo or Echo Reply Message": code 0.
            Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply if packet.msg_code() != 0 => {
                Err(Error::Malformed)
            }
            Icmpv4Message::EchoRequest => Ok(Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Icmpv4Message::EchoReply => Ok(Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data,
            }),
            Icmpv4Message::DstUnreachable => {
                let (header, data) = parse_quote(data)?;
                let code = DstUnreachableCode::new(packet.msg_code(), packet.next_hop_mtu());
                Ok(Icmpv4Repr::DstUnreachable { code, header, data })
            }
            Icmpv4Message::TimeExceeded => {
                let (header, data) = parse_quote(data)?;
                let code = TimeExceededCode::from(packet.msg_code());
                Ok(Icmpv4Repr::TimeExceeded { code, header, data })
            }
            _ => Err(Error::Unsupported),
        }
    }

    /// The emitted length: 8-byte header, plus a 20-byte quoted header for error messages,
    /// plus the data.
    pub const fn buffer_len(&self) -> usize {
        match self {
            Icmpv4Repr::EchoRequest { data, .. } | Icmpv4Repr::EchoReply { data, .. } => {
                HEADER_LEN + data.len()
            }
            Icmpv4Repr::DstUnreachable { data, .. } | Icmpv4Repr::TimeExceeded { data, .. } => {
                HEADER_LEN + IPV4_HEADER_LEN + data.len()
            }
        }
    }

    /// Writes the message into the first [`Self::buffer_len`] bytes of `packet`'s buffer
    /// (which should be exactly that long: the checksum covers the whole buffer) and, under
    /// [`Checksum::Software`], its checksum. Quoted headers are emitted without options and
    /// with a fresh header checksum. [`Error::Truncated`] if the buffer is too short;
    /// [`Error::BadLength`] if a quoted header's `payload_len` is out of range.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Icmpv4Packet<T>,
        checksum: Checksum,
    ) -> Result<()> {
        if packet.buffer.as_ref().len() < self.buffer_len() {
            return Err(Error::Truncated);
        }
        match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, data }
            | Icmpv4Repr::EchoReply { ident, seq_no, data } => {
                let ty = if matches!(self, Icmpv4Repr::EchoRequest { .. }) {
                    Icmpv4Message::EchoRequest
                } else {
                    Icmpv4Message::EchoReply
                };
                packet.set_msg_type(ty);
                packet.set_msg_code(0);
                packet.set_echo_ident(ident);
                packet.set_echo_seq_no(seq_no);
                packet.data_mut()[..data.len()].copy_from_slice(data);
            }
            Icmpv4Repr::DstUnreachable { code, header, data } => {
                packet.set_msg_type(Icmpv4Message::DstUnreachable);
                packet.set_msg_code(code.code());
                // RFC 792: "unused" (zero); RFC 1191 §4: the low 16 bits carry the MTU.
                packet.set_rest_of_header([0; 4]);
                if let DstUnreachableCode::FragRequired { mtu } = code {
                    packet.set_next_hop_mtu(mtu);
                }
                emit_quote(packet, &header, data)?;
            }
            Icmpv4Repr::TimeExceeded { code, header, data } => {
                packet.set_msg_type(Icmpv4Message::TimeExceeded);
                packet.set_msg_code(code.into());
                packet.set_rest_of_header([0; 4]);
                emit_quote(packet, &header, data)?;
            }
        }
        match checksum {
            Checksum::Software => packet.fill_checksum(),
            Checksum::Offloaded => packet.set_checksum(0),
        }
        Ok(())
    }
}

/// Splits the data of an error message into the quoted IPv4 header and payload bytes.
fn parse_quote(data: &[u8]) -> Result<(Ipv4Repr, &[u8])> {
    let inner = Ipv4Packet::new_unchecked(data);
    inner.check_header_len().map_err(|_| Error::Malformed)?;
    let header =
        Ipv4Repr::parse_header(&inner, Checksum::Offloaded).map_err(|_| Error::Malformed)?;
    Ok((header, &data[inner.header_len()..]))
}

/// Writes the quoted header and payload bytes after the ICMP header.
fn emit_quote<T: AsRef<[u8]> + AsMut<[u8]>>(
    packet: &mut Icmpv4Packet<T>,
    header: &Ipv4Repr,
    data: &[u8],
) -> Result<()> {
    let out = packet.data_mut();
    header.emit(&mut Ipv4Packet::new_unchecked(&mut out[..IPV4_HEADER_LEN]), Checksum::Software)?;
    out[IPV4_HEADER_LEN..IPV4_HEADER_LEN + data.len()].copy_from_slice(data);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4::tests::repr_strategy;
    use proptest::prelude::*;
    use std::vec;

    #[test]
    fn echo_request_fields() {
        let mut b = [8u8, 0, 0, 0, 0x0d, 0x35, 0, 1, b'h', b'i'];
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        let r = Icmpv4Repr::parse(&p, Checksum::Software).unwrap();
        assert_eq!(r, Icmpv4Repr::EchoRequest { ident: 3381, seq_no: 1, data: b"hi" });
    }

    #[test]
    fn rejections() {
        assert_eq!(
            Icmpv4Packet::new_checked(&[8u8, 0, 0, 0, 0, 0, 0][..]).unwrap_err(),
            Error::Truncated
        );
        let mut b = [8u8, 0, 0, 0, 0, 1, 0, 1];
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b[7] = 2; // sequence number changed after the checksum
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, Checksum::Software).unwrap_err(), Error::BadChecksum);
        assert!(Icmpv4Repr::parse(&p, Checksum::Offloaded).is_ok());
        // Echo with a non-zero code.
        let mut b = [8u8, 1, 0, 0, 0, 1, 0, 1];
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, Checksum::Software).unwrap_err(), Error::Malformed);
        // Timestamp request (13) is not handled.
        let mut b = [13u8, 0, 0, 0, 0, 1, 0, 1];
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, Checksum::Software).unwrap_err(), Error::Unsupported);
        // Port unreachable quoting only 12 bytes of a header.
        let mut b = [0u8; 20];
        b[0] = 3;
        b[1] = 3;
        b[8] = 0x45;
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(Icmpv4Repr::parse(&p, Checksum::Software).unwrap_err(), Error::Malformed);
    }

    #[test]
    fn quoted_payload_is_at_most_8_bytes() {
        assert_eq!(quoted_payload(b"0123456789"), b"01234567");
        assert_eq!(quoted_payload(b"abc"), b"abc");
    }

    fn dst_code_strategy() -> impl Strategy<Value = DstUnreachableCode> {
        (any::<u8>(), any::<u16>()).prop_map(|(c, mtu)| DstUnreachableCode::new(c, mtu))
    }

    fn time_code_strategy() -> impl Strategy<Value = TimeExceededCode> {
        any::<u8>().prop_map(TimeExceededCode::from)
    }

    proptest! {
        #[test]
        fn echo_round_trip(
            request in any::<bool>(), ident in any::<u16>(), seq_no in any::<u16>(),
            data in proptest::collection::vec(any::<u8>(), 0..200),
        ) {
            let repr = if request {
                Icmpv4Repr::EchoRequest { ident, seq_no, data: &data }
            } else {
                Icmpv4Repr::EchoReply { ident, seq_no, data: &data }
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), Checksum::Software).unwrap();
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            prop_assert_eq!(Icmpv4Repr::parse(&p, Checksum::Software).unwrap(), repr);
        }

        #[test]
        fn error_round_trip(
            unreachable in any::<bool>(),
            dst_code in dst_code_strategy(), time_code in time_code_strategy(),
            header in repr_strategy(1480),
            data in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let repr = if unreachable {
                Icmpv4Repr::DstUnreachable { code: dst_code, header, data: &data }
            } else {
                Icmpv4Repr::TimeExceeded { code: time_code, header, data: &data }
            };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]), Checksum::Software).unwrap();
            let p = Icmpv4Packet::new_checked(&buf[..]).unwrap();
            prop_assert!(p.verify_checksum());
            // The quoted header carries a valid checksum of its own.
            prop_assert!(Ipv4Packet::new_unchecked(p.data()).verify_checksum());
            prop_assert_eq!(Icmpv4Repr::parse(&p, Checksum::Software).unwrap(), repr);
        }

        #[test]
        fn code_round_trip(c in any::<u8>(), mtu in any::<u16>()) {
            prop_assert_eq!(DstUnreachableCode::new(c, mtu).code(), c);
            prop_assert_eq!(u8::from(TimeExceededCode::from(c)), c);
            prop_assert_eq!(u8::from(Icmpv4Message::from(c)), c);
        }
    }
}
