//! Ethernet II frames (IEEE 802.3 §3.2, the "DIX" Ethernet II layout) with an optional
//! IEEE 802.1Q VLAN tag.
//!
//! ```text
//!  0      6      12          14 (or 18 when tagged)
//! +------+------+-----------+---------+
//! | dst  | src  | ethertype | payload |      untagged
//! +------+------+-----------+---------+
//! | dst  | src  | 0x8100 | TCI | ethertype | payload |   802.1Q tagged
//! ```
//!
//! The frame check sequence is not part of the view: NICs strip it on receive and append it
//! on transmit.

use core::fmt;

use crate::{Error, Result};

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// The address from the first 6 bytes of `bytes`.
    ///
    /// # Panics
    /// If `bytes` is shorter than 6 bytes.
    pub fn from_bytes(bytes: &[u8]) -> EthernetAddress {
        let mut a = [0u8; 6];
        a.copy_from_slice(&bytes[..6]);
        EthernetAddress(a)
    }

    /// The 6 octets in transmission order.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the all-ones broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the I/G bit is set (IEEE 802 §8.2: the least significant bit of the first
    /// octet marks a group address). Broadcast is a multicast address too.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether this is an individual (unicast) address: the I/G bit is clear.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// Whether the U/L bit is set (IEEE 802 §8.2: a locally administered address).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

/// The EtherType field: which protocol the payload holds (IEEE 802.3 §3.2.6; values from the
/// IEEE EtherType registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EtherType {
    /// IPv4 (0x0800).
    Ipv4,
    /// ARP (0x0806).
    Arp,
    /// IPv6 (0x86DD).
    Ipv6,
    /// An IEEE 802.1Q VLAN tag follows (TPID 0x8100).
    Vlan,
    /// Any other value (kept as sent). Values below 0x0600 are IEEE 802.3 length fields.
    Unknown(u16),
}

impl EtherType {
    /// The smallest value that is an EtherType rather than an 802.3 length (IEEE 802.3
    /// §3.2.6: values ≥ 1536 are types).
    pub const MIN_TYPE: u16 = 0x0600;
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        match v {
            0x0800 => EtherType::Ipv4,
            0x0806 => EtherType::Arp,
            0x86DD => EtherType::Ipv6,
            0x8100 => EtherType::Vlan,
            other => EtherType::Unknown(other),
        }
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        match v {
            EtherType::Ipv4 => 0x0800,
            EtherType::Arp => 0x0806,
            EtherType::Ipv6 => 0x86DD,
            EtherType::Vlan => 0x8100,
            EtherType::Unknown(other) => other,
        }
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::Unknown(v) => write!(f, "0x{v:04x}"),
        }
    }
}

/// An IEEE 802.1Q tag control information (TCI) field: priority, drop eligibility, VLAN id.
///
/// IEEE 802.1Q §9.6: `PCP (3 bits) | DEI (1 bit) | VID (12 bits)`. Out-of-range `pcp`/`vid`
/// bits are masked off on emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct VlanTag {
    /// Priority code point, 0..=7.
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier, 0..=4095 (0: priority-tagged frame, no VLAN; 4095 reserved).
    pub vid: u16,
}

impl VlanTag {
    /// The TPID that announces a tag (IEEE 802.1Q §9.5).
    pub const TPID: u16 = 0x8100;

    /// Decodes a TCI word (IEEE 802.1Q §9.6).
    pub const fn from_tci(tci: u16) -> VlanTag {
        VlanTag { pcp: (tci >> 13) as u8, dei: tci & 0x1000 != 0, vid: tci & 0x0fff }
    }

    /// Encodes the TCI word (IEEE 802.1Q §9.6).
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 0x7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0x0fff)
    }
}

mod field {
    use core::ops::Range;
    pub(super) const DST: Range<usize> = 0..6;
    pub(super) const SRC: Range<usize> = 6..12;
    pub(super) const ETHERTYPE: Range<usize> = 12..14;
    /// Only in a tagged frame: the TCI after the TPID at `ETHERTYPE`.
    pub(super) const TCI: Range<usize> = 14..16;
    /// Only in a tagged frame: the payload's EtherType.
    pub(super) const INNER_ETHERTYPE: Range<usize> = 16..18;
}

/// A read/write view of an Ethernet II frame (FCS excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q-tagged header.
pub const TAGGED_HEADER_LEN: usize = 18;

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps `buffer` without checking it; getters may panic unless [`Self::check_len`] passed.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks that the buffer holds the whole header, including the 802.1Q tag when the
    /// EtherType field announces one. After this no getter panics.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if len < self.header_len() {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DST])
    }

    /// Source address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SRC])
    }

    /// The EtherType field at offset 12: [`EtherType::Vlan`] for a tagged frame (see
    /// [`Self::payload_ethertype`] for the type of the payload).
    pub fn ethertype(&self) -> EtherType {
        EtherType::from(be16(self.buffer.as_ref(), field::ETHERTYPE.start))
    }

    /// Whether the frame carries an 802.1Q tag.
    pub fn is_tagged(&self) -> bool {
        self.ethertype() == EtherType::Vlan
    }

    /// The 802.1Q tag, if the frame has one.
    pub fn vlan_tag(&self) -> Option<VlanTag> {
        if self.is_tagged() {
            Some(VlanTag::from_tci(be16(self.buffer.as_ref(), field::TCI.start)))
        } else {
            None
        }
    }

    /// The EtherType of the payload: the field after the tag in a tagged frame, else the one
    /// at offset 12.
    pub fn payload_ethertype(&self) -> EtherType {
        if self.is_tagged() {
            EtherType::from(be16(self.buffer.as_ref(), field::INNER_ETHERTYPE.start))
        } else {
            self.ethertype()
        }
    }

    /// The header length: 14, or 18 with an 802.1Q tag.
    pub fn header_len(&self) -> usize {
        if self.is_tagged() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// The payload: everything after the header (including any padding to the 60-byte
    /// minimum frame; the payload's own length field tells how much is real).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DST].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SRC].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType field at offset 12 (use [`EtherType::Vlan`] to announce a tag).
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        put16(self.buffer.as_mut(), field::ETHERTYPE.start, ethertype.into());
    }

    /// Writes an 802.1Q tag: TPID at offset 12 and the TCI after it. Set the payload's type
    /// with [`Self::set_payload_ethertype`] afterwards. The buffer must hold 18 bytes.
    pub fn set_vlan_tag(&mut self, tag: VlanTag) {
        self.set_ethertype(EtherType::Vlan);
        put16(self.buffer.as_mut(), field::TCI.start, tag.tci());
    }

    /// Sets the payload's EtherType (after the tag when the frame is tagged).
    pub fn set_payload_ethertype(&mut self, ethertype: EtherType) {
        let at =
            if self.is_tagged() { field::INNER_ETHERTYPE.start } else { field::ETHERTYPE.start };
        put16(self.buffer.as_mut(), at, ethertype.into());
    }

    /// The payload, mutable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

/// An Ethernet II header as a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src: EthernetAddress,
    /// Destination address.
    pub dst: EthernetAddress,
    /// The payload's EtherType (never [`EtherType::Vlan`]: the tag is in `vlan`).
    pub ethertype: EtherType,
    /// The 802.1Q tag, if any.
    pub vlan: Option<VlanTag>,
}

impl EthernetRepr {
    /// Parses a checked frame.
    ///
    /// Rejects with [`Error::Unsupported`] stacked tags (802.1ad QinQ: a second 0x8100 or
    /// 0x88A8 after the first tag) and IEEE 802.3 length/LLC frames (EtherType field below
    /// 0x0600, IEEE 802.3 §3.2.6), neither of which Joyride handles.
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<EthernetRepr> {
        frame.check_len()?;
        let ethertype = frame.payload_ethertype();
        let raw: u16 = ethertype.into();
        if raw < EtherType::MIN_TYPE || ethertype == EtherType::Vlan || raw == 0x88A8 {
            return Err(Error::Unsupported);
        }
        Ok(EthernetRepr {
            src: frame.src_addr(),
            dst: frame.dst_addr(),
            ethertype,
            vlan: frame.vlan_tag(),
        })
    }

    /// The header length this value emits: 14, or 18 with a tag.
    pub const fn header_len(&self) -> usize {
        if self.vlan.is_some() {
            TAGGED_HEADER_LEN
        } else {
            HEADER_LEN
        }
    }

    /// Same as [`Self::header_len`] (the payload is not part of this value).
    pub const fn buffer_len(&self) -> usize {
        self.header_len()
    }

    /// Writes the header into `frame`; the payload bytes are left as they are.
    /// [`Error::Truncated`] if the buffer is shorter than [`Self::header_len`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) -> Result<()> {
        if frame.buffer.as_ref().len() < self.header_len() {
            return Err(Error::Truncated);
        }
        frame.set_dst_addr(self.dst);
        frame.set_src_addr(self.src);
        match self.vlan {
            Some(tag) => frame.set_vlan_tag(tag),
            None => frame.set_ethertype(self.ethertype),
        }
        frame.set_payload_ethertype(self.ethertype);
        Ok(())
    }
}

/// Big-endian `u16` at `at`.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Writes a big-endian `u16` at `at`.
pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::format;
    use std::vec;

    #[test]
    fn address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        let mcast = EthernetAddress([0x01, 0x00, 0x5e, 0, 0, 1]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast() && !mcast.is_unicast());
        let uni = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
        assert!(uni.is_unicast() && uni.is_local());
        assert_eq!(
            format!("{}", EthernetAddress([0xaa, 0xbb, 0xc, 0, 0xde, 0xff])),
            "aa:bb:0c:00:de:ff"
        );
    }

    #[test]
    fn truncated() {
        assert_eq!(EthernetFrame::new_checked(&[0u8; 13][..]).unwrap_err(), Error::Truncated);
        // A VLAN TPID but no room for the tag and inner type.
        let mut b = [0u8; 17];
        b[12] = 0x81;
        assert_eq!(EthernetFrame::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let mut b = [0u8; 18];
        b[12] = 0x81;
        assert!(EthernetFrame::new_checked(&b[..]).is_ok());
    }

    #[test]
    fn tagged_frame_fields() {
        // dst, src, TPID 0x8100, TCI pcp=5 dei=1 vid=42, IPv4, payload.
        let b = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x81, 0x00, 0xb0, 0x2a, 0x08,
            0x00, 0xde, 0xad,
        ];
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert_eq!(f.ethertype(), EtherType::Vlan);
        assert_eq!(f.vlan_tag(), Some(VlanTag { pcp: 5, dei: true, vid: 42 }));
        assert_eq!(f.payload_ethertype(), EtherType::Ipv4);
        assert_eq!(f.payload(), &[0xde, 0xad]);
        let r = EthernetRepr::parse(&f).unwrap();
        assert_eq!(r.ethertype, EtherType::Ipv4);
        assert_eq!(r.header_len(), 18);
    }

    #[test]
    fn stacked_tags_and_llc_unsupported() {
        let mut b = [0u8; 20];
        b[12] = 0x81;
        b[16] = 0x81;
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f).unwrap_err(), Error::Unsupported);
        let mut b = [0u8; 20];
        b[12] = 0x00;
        b[13] = 0x2e; // an 802.3 length of 46
        let f = EthernetFrame::new_checked(&b[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&f).unwrap_err(), Error::Unsupported);
    }

    #[test]
    fn emit_too_short() {
        let r = EthernetRepr {
            src: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst: EthernetAddress::BROADCAST,
            ethertype: EtherType::Arp,
            vlan: Some(VlanTag::default()),
        };
        let mut b = [0u8; 17];
        assert_eq!(r.emit(&mut EthernetFrame::new_unchecked(&mut b[..])), Err(Error::Truncated));
    }

    pub(crate) fn ethertype_strategy() -> impl Strategy<Value = EtherType> {
        prop_oneof![
            Just(EtherType::Ipv4),
            Just(EtherType::Arp),
            Just(EtherType::Ipv6),
            (0x0600u16..=0xffff)
                .prop_filter("not a named or tag value", |v| !matches!(
                    v,
                    0x0800 | 0x0806 | 0x86DD | 0x8100 | 0x88A8
                ))
                .prop_map(EtherType::Unknown),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            src in any::<[u8; 6]>(),
            dst in any::<[u8; 6]>(),
            ethertype in ethertype_strategy(),
            vlan in proptest::option::of((0u8..8, any::<bool>(), 0u16..4096)),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let repr = EthernetRepr {
                src: EthernetAddress(src),
                dst: EthernetAddress(dst),
                ethertype,
                vlan: vlan.map(|(pcp, dei, vid)| VlanTag { pcp, dei, vid }),
            };
            let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
            let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
            repr.emit(&mut frame).unwrap();
            frame.payload_mut().copy_from_slice(&payload);
            let frame = EthernetFrame::new_checked(&buf[..]).unwrap();
            prop_assert_eq!(EthernetRepr::parse(&frame).unwrap(), repr);
            prop_assert_eq!(frame.payload(), &payload[..]);
        }

        #[test]
        fn tci_round_trip(tci in any::<u16>()) {
            prop_assert_eq!(VlanTag::from_tci(tci).tci(), tci);
        }
    }
}
