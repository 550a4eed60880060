//! ARP (RFC 826) for Ethernet hardware and IPv4 protocol addresses.
//!
//! ```text
//!  0        2        4     5     6        8
//! +--------+--------+-----+-----+--------+-----------+-----------+-----------+-----------+
//! | ar$hrd | ar$pro |ar$hln|ar$pln| ar$op | ar$sha    | ar$spa    | ar$tha    | ar$tpa    |
//! +--------+--------+-----+-----+--------+-----------+-----------+-----------+-----------+
//!                                          hln bytes   pln bytes   hln bytes   pln bytes
//! ```
//!
//! The view handles any address lengths; [`ArpRepr`] only Ethernet/IPv4 (the others are
//! [`Error::Unsupported`]).

use crate::ethernet::{be16, put16, EtherType, EthernetAddress};
use crate::{Error, Ipv4Addr, Result};

/// The `ar$hrd` value for Ethernet (RFC 826; IANA ARP parameters: 1 = Ethernet (10Mb)).
pub const HARDWARE_ETHERNET: u16 = 1;

/// The ARP opcode (RFC 826 `ar$op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// `ares_op$REQUEST` (1).
    Request,
    /// `ares_op$REPLY` (2).
    Reply,
    /// Any other opcode (RARP, InARP, ...), kept as sent.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(v: u16) -> Self {
        match v {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(v: ArpOperation) -> Self {
        match v {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(other) => other,
        }
    }
}

mod field {
    use core::ops::Range;
    pub(super) const HTYPE: Range<usize> = 0..2;
    pub(super) const PTYPE: Range<usize> = 2..4;
    pub(super) const HLEN: usize = 4;
    pub(super) const PLEN: usize = 5;
    pub(super) const OPER: Range<usize> = 6..8;
    /// Start of the variable-length address part.
    pub(super) const ADDRS: usize = 8;
}

/// Length of the fixed part (before the addresses).
pub const FIXED_LEN: usize = field::ADDRS;

/// Length of an Ethernet/IPv4 ARP packet: 8 + 2 × (6 + 4).
pub const ETHERNET_IPV4_LEN: usize = 28;

/// A read/write view of an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking it; getters may panic unless [`Self::check_len`] passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let p = Self::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    /// Checks that the buffer holds the fixed part and the four addresses whose lengths
    /// `ar$hln`/`ar$pln` announce. Bytes beyond them (Ethernet padding) are ignored.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < FIXED_LEN || len < self.packet_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `ar$hrd`: hardware address space ([`HARDWARE_ETHERNET`] for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        be16(self.buffer.as_ref(), field::HTYPE.start)
    }

    /// `ar$pro`: protocol address space, an EtherType ([`EtherType::Ipv4`] for IPv4).
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::PTYPE.start))
    }

    /// `ar$hln`: hardware address length in bytes.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// `ar$pln`: protocol address length in bytes.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// `ar$op`.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(be16(self.buffer.as_ref(), field::OPER.start))
    }

    /// The length the address-length fields imply: `8 + 2 × (hln + pln)`.
    pub fn packet_len(&self) -> usize {
        FIXED_LEN + 2 * (usize::from(self.hardware_len()) + usize::from(self.protocol_len()))
    }

    fn sha_range(&self) -> core::ops::Range<usize> {
        let start = field::ADDRS;
        start..start + usize::from(self.hardware_len())
    }

    fn spa_range(&self) -> core::ops::Range<usize> {
        let start = self.sha_range().end;
        start..start + usize::from(self.protocol_len())
    }

    fn tha_range(&self) -> core::ops::Range<usize> {
        let start = self.spa_range().end;
        start..start + usize::from(self.hardware_len())
    }

    fn tpa_range(&self) -> core::ops::Range<usize> {
        let start = self.tha_range().end;
        start..start + usize::from(self.protocol_len())
    }

    /// `ar$sha`: sender hardware address (`hln` bytes).
    pub fn source_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.sha_range()]
    }

    /// `ar$spa`: sender protocol address (`pln` bytes).
    pub fn source_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.spa_range()]
    }

    /// `ar$tha`: target hardware address (`hln` bytes).
    pub fn target_hardware_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tha_range()]
    }

    /// `ar$tpa`: target protocol address (`pln` bytes).
    pub fn target_protocol_addr(&self) -> &[u8] {
        &self.buffer.as_ref()[self.tpa_range()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets `ar$hrd`.
    pub fn set_hardware_type(&mut self, v: u16) {
        put16(self.buffer.as_mut(), field::HTYPE.start, v);
    }

    /// Sets `ar$pro`.
    pub fn set_protocol_type(&mut self, v: EtherType) {
        put16(self.buffer.as_mut(), field::PTYPE.start, v.into());
    }

    /// Sets `ar$hln` (set it before the address setters).
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets `ar$pln` (set it before the address setters).
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }

    /// Sets `ar$op`.
    pub fn set_operation(&mut self, v: ArpOperation) {
        put16(self.buffer.as_mut(), field::OPER.start, v.into());
    }

    /// Sets `ar$sha`; `addr` must be `hln` bytes long.
    pub fn set_source_hardware_addr(&mut self, addr: &[u8]) {
        let r = self.sha_range();
        self.buffer.as_mut()[r].copy_from_slice(addr);
    }

    /// Sets `ar$spa`; `addr` must be `pln` bytes long.
    pub fn set_source_protocol_addr(&mut self, addr: &[u8]) {
        let r = self.spa_range();
        self.buffer.as_mut()[r].copy_from_slice(addr);
    }

    /// Sets `ar$tha`; `addr` must be `hln` bytes long.
    pub fn set_target_hardware_addr(&mut self, addr: &[u8]) {
        let r = self.tha_range();
        self.buffer.as_mut()[r].copy_from_slice(addr);
    }

    /// Sets `ar$tpa`; `addr` must be `pln` bytes long.
    pub fn set_target_protocol_addr(&mut self, addr: &[u8]) {
        let r = self.tpa_range();
        self.buffer.as_mut()[r].copy_from_slice(addr);
    }
}

/// An Ethernet/IPv4 ARP packet as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// `ar$op`.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub source_hw: EthernetAddress,
    /// Sender IPv4 address.
    pub source_ip: Ipv4Addr,
    /// Target hardware address (zero or ignored in a request, RFC 826 "Packet Generation").
    pub target_hw: EthernetAddress,
    /// Target IPv4 address.
    pub target_ip: Ipv4Addr,
}

impl ArpRepr {
    /// Parses a packet. [`Error::Unsupported`] unless it is Ethernet (`ar$hrd` = 1, `ar$hln`
    /// = 6) over IPv4 (`ar$pro` = 0x0800, `ar$pln` = 4); RFC 826 "Packet Reception": a
    /// receiver drops a packet whose `ar$hrd`/`ar$pro` it does not speak.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if packet.hardware_type() != HARDWARE_ETHERNET
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Unsupported);
        }
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hw: EthernetAddress::from_bytes(packet.source_hardware_addr()),
            source_ip: ipv4(packet.source_protocol_addr()),
            target_hw: EthernetAddress::from_bytes(packet.target_hardware_addr()),
            target_ip: ipv4(packet.target_protocol_addr()),
        })
    }

    /// The emitted length: 28 bytes.
    pub const fn buffer_len(&self) -> usize {
        ETHERNET_IPV4_LEN
    }

    /// Writes the packet. [`Error::Truncated`] if the buffer is shorter than 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) -> Result<()> {
        if packet.buffer.as_ref().len() < ETHERNET_IPV4_LEN {
            return Err(Error::Truncated);
        }
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hw.0);
        packet.set_source_protocol_addr(&self.source_ip.octets());
        packet.set_target_hardware_addr(&self.target_hw.0);
        packet.set_target_protocol_addr(&self.target_ip.octets());
        Ok(())
    }
}

/// The IPv4 address in the first 4 bytes of `b` (callers pass 4-byte slices).
pub(crate) fn ipv4(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An ARP request as Linux sends it (see `ip/tests/frames_linux.rs` for the capture).
    const REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x1e, 0x9a, 0x2d, 0xc9, 0x99, 0xb6, 10, 77,
        0, 1, 0, 0, 0, 0, 0, 0, 10, 77, 0, 2,
    ];

    #[test]
    fn parse_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(r.operation, ArpOperation::Request);
        assert_eq!(r.source_ip, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(r.target_ip, Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(r.source_hw, EthernetAddress([0x1e, 0x9a, 0x2d, 0xc9, 0x99, 0xb6]));
    }

    #[test]
    fn truncated() {
        assert_eq!(ArpPacket::new_checked(&REQUEST[..7]).unwrap_err(), Error::Truncated);
        assert_eq!(ArpPacket::new_checked(&REQUEST[..27]).unwrap_err(), Error::Truncated);
        // Address lengths of 255 claim 8 + 2*(255+255) bytes.
        let mut b = REQUEST;
        b[4] = 255;
        b[5] = 255;
        assert_eq!(ArpPacket::new_checked(&b[..]).unwrap_err(), Error::Truncated);
    }

    #[test]
    fn other_hardware_or_protocol_unsupported() {
        for (at, v) in [(1usize, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut b = [0u8; 64];
            b[..28].copy_from_slice(&REQUEST);
            b[at] = v;
            let p = ArpPacket::new_checked(&b[..]).unwrap();
            assert_eq!(ArpRepr::parse(&p).unwrap_err(), Error::Unsupported, "byte {at}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(
            op in prop_oneof![Just(1u16), Just(2), any::<u16>()],
            sha in any::<[u8; 6]>(), spa in any::<[u8; 4]>(),
            tha in any::<[u8; 6]>(), tpa in any::<[u8; 4]>(),
        ) {
            let repr = ArpRepr {
                operation: ArpOperation::from(op),
                source_hw: EthernetAddress(sha),
                source_ip: Ipv4Addr::from(spa),
                target_hw: EthernetAddress(tha),
                target_ip: Ipv4Addr::from(tpa),
            };
            // Ethernet pads ARP to 46 bytes; the padding must not matter.
            let mut buf = [0xeeu8; 46];
            repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..])).unwrap();
            let p = ArpPacket::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(ArpRepr::parse(&p).unwrap(), repr);
            prop_assert_eq!(u16::from(repr.operation), op);
        }
    }
}
