//! Advanced receive and transmit descriptors, identical on the 82599 (datasheet 331520 §7.1.6,
//! §7.2.3.2) and the 82576 (datasheet §7.1.5, §7.2.2.3). Layouts are pinned by `const` size
//! asserts; fields are read and written by offset through the ring's volatile accessors, never
//! through a Rust reference into DMA memory. Everything here is pure value arithmetic, so the
//! encoders are unit-tested without a device.

use std::mem::{offset_of, size_of};

use joyride_drivers::CsumRequest;

/// Bytes per descriptor (receive and transmit, both formats).
pub const DESC_LEN: usize = 16;

/// 82599 §7.1.6.1 / 82576 §7.1.5.1: advanced receive descriptor, read format (what the driver
/// posts).
#[repr(C)]
#[allow(dead_code)] // the layout is the contract; fields are written by offset
pub struct AdvRxRead {
    /// Packet buffer address.
    pkt_addr: u64,
    /// Header buffer address (0: no header split). Bit 0 overlaps DD of the write-back, so a
    /// posted descriptor never shows DD.
    hdr_addr: u64,
}
const _: () = assert!(size_of::<AdvRxRead>() == DESC_LEN);
pub(crate) const RX_PKT_ADDR: usize = offset_of!(AdvRxRead, pkt_addr);
pub(crate) const RX_HDR_ADDR: usize = offset_of!(AdvRxRead, hdr_addr);

/// 82599 §7.1.6.2 / 82576 §7.1.5.2: advanced receive descriptor, write-back format (what the
/// device returns).
#[repr(C)]
#[allow(dead_code)]
pub struct AdvRxWb {
    /// RSS type (3:0), packet type (16:4), header length (30:21), SPH (31).
    pkt_info: u32,
    /// RSS hash (RXCSUM.PCSD = 1) or fragment checksum.
    rss_hash: u32,
    /// Extended status (19:0) and extended errors (31:20).
    staterr: u32,
    /// Packet length in bytes.
    length: u16,
    /// VLAN tag.
    vlan: u16,
}
const _: () = assert!(size_of::<AdvRxWb>() == DESC_LEN);
pub(crate) const RXWB_RSS_HASH: usize = offset_of!(AdvRxWb, rss_hash);
pub(crate) const RXWB_STATERR: usize = offset_of!(AdvRxWb, staterr);
pub(crate) const RXWB_LENGTH: usize = offset_of!(AdvRxWb, length);
const _: () = assert!(RXWB_STATERR == RX_HDR_ADDR, "DD overlaps the header address");

/// Receive status: descriptor done (DD).
pub const RXD_STAT_DD: u32 = 1 << 0;
/// Receive status: end of packet (EOP).
pub const RXD_STAT_EOP: u32 = 1 << 1;
/// Receive status: UDP checksum computed (UDPCS).
pub const RXD_STAT_UDPCS: u32 = 1 << 4;
/// Receive status: L4 (TCP/UDP) checksum computed (L4CS / L4I).
pub const RXD_STAT_L4CS: u32 = 1 << 5;
/// Receive status: IPv4 checksum computed (IPCS).
pub const RXD_STAT_IPCS: u32 = 1 << 6;

/// The error bits of the write-back, which differ between the two parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxErrBits {
    /// Any frame error (CRC, length, symbol, …): the frame is dropped.
    pub frame: u32,
    /// IPv4 header checksum error (IPE).
    pub ipe: u32,
    /// TCP/UDP checksum error (TCPE).
    pub tcpe: u32,
}

/// 82599 §7.1.6.2: CE 24, LE 25, PE 27, OSE 28, USE 29; TCPE 30; IPE 31.
pub const ERR_82599: RxErrBits = RxErrBits { frame: 0x3b00_0000, ipe: 1 << 31, tcpe: 1 << 30 };
/// 82576 §7.1.5.2: CE 24, SE 25, SEQ 26, CXE 28, RXE 31; TCPE 29; IPE 30.
pub const ERR_82576: RxErrBits = RxErrBits { frame: 0x9700_0000, ipe: 1 << 30, tcpe: 1 << 29 };

/// 82599 §7.2.3.2.4 / 82576 §7.2.2.3.x: advanced transmit data descriptor (read format).
#[repr(C)]
#[allow(dead_code)]
pub struct AdvTxData {
    /// Buffer address.
    addr: u64,
    /// DTALEN (15:0), DTYP (23:20), DCMD (31:24).
    cmd_type_len: u32,
    /// STA (3:0, DD on write-back), IDX (6:4), CC (7), POPTS (13:8), PAYLEN (31:14).
    olinfo_status: u32,
}
const _: () = assert!(size_of::<AdvTxData>() == DESC_LEN);
pub(crate) const TX_ADDR: usize = offset_of!(AdvTxData, addr);
pub(crate) const TX_CMD_TYPE_LEN: usize = offset_of!(AdvTxData, cmd_type_len);
pub(crate) const TX_OLINFO_STATUS: usize = offset_of!(AdvTxData, olinfo_status);

/// 82599 §7.2.3.2.3 / 82576 §7.2.2.3.x: advanced transmit context descriptor.
#[repr(C)]
#[allow(dead_code)]
pub struct AdvTxContext {
    /// IPLEN (8:0), MACLEN (15:9), VLAN (31:16).
    vlan_macip_lens: u32,
    /// 82599: FCoE SOF/EOF and sequence seed; 82576: reserved.
    seqnum_seed: u32,
    /// TUCMD (19:9), DTYP (23:20), DEXT (29).
    type_tucmd_mlhl: u32,
    /// IDX (7:4), L4LEN (15:8), MSS (31:16).
    mss_l4len_idx: u32,
}
const _: () = assert!(size_of::<AdvTxContext>() == DESC_LEN);

/// DTYP = 0011b: advanced data descriptor.
pub const TXD_DTYP_DATA: u32 = 0x3 << 20;
/// DTYP = 0010b: advanced context descriptor.
pub const TXD_DTYP_CTXT: u32 = 0x2 << 20;
/// DCMD.EOP: end of packet.
pub const TXD_CMD_EOP: u32 = 1 << 24;
/// DCMD.IFCS: insert the Ethernet FCS.
pub const TXD_CMD_IFCS: u32 = 1 << 25;
/// DCMD.RS: report status (write DD back).
pub const TXD_CMD_RS: u32 = 1 << 27;
/// DCMD.DEXT: descriptor extension (advanced format).
pub const TXD_CMD_DEXT: u32 = 1 << 29;
/// DCMD.TSE: TCP segmentation enable.
pub const TXD_CMD_TSE: u32 = 1 << 31;
/// STA.DD: descriptor done (write-back).
pub const TXD_STAT_DD: u32 = 1 << 0;
/// olinfo CC: check context (use the context at IDX).
pub const TXD_CC: u32 = 1 << 7;
/// POPTS.IXSM: insert the IPv4 header checksum.
pub const TXD_POPTS_IXSM: u32 = 1 << 8;
/// POPTS.TXSM: insert the TCP/UDP checksum.
pub const TXD_POPTS_TXSM: u32 = 1 << 9;
/// PAYLEN shift in olinfo_status.
pub const TXD_PAYLEN_SHIFT: u32 = 14;
/// TUCMD.IPV4 (context): the packet is IPv4.
pub const TUCMD_IPV4: u32 = 1 << 10;
/// TUCMD.L4T = 01b (context): TCP.
pub const TUCMD_L4T_TCP: u32 = 1 << 11;
/// TUCMD.L4T = 00b: UDP.
pub const TUCMD_L4T_UDP: u32 = 0;
/// Largest DTALEN (16 bits).
pub const MAX_DATA_LEN: usize = 0xffff;

/// A transmit data descriptor's words `(addr, cmd_type_len, olinfo_status)`: one buffer, one
/// packet (EOP), FCS inserted, status reported (RS).
pub fn tx_data(addr: u64, len: u16, olinfo: u32) -> (u64, u32, u32) {
    let cmd =
        u32::from(len) | TXD_DTYP_DATA | TXD_CMD_DEXT | TXD_CMD_EOP | TXD_CMD_IFCS | TXD_CMD_RS;
    (addr, cmd, olinfo)
}

/// Layer 4 protocol of a context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP (checksum field at +16).
    Tcp,
    /// UDP (checksum field at +6).
    Udp,
}

/// What a transmit context descriptor says (82599 §7.2.3.2.3): where the headers are, what to
/// checksum and, for TSO, how to segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxContext {
    /// Bytes of the MAC header (14, or 18 with one VLAN tag); 7 bits.
    pub maclen: u8,
    /// Bytes of the IP header(s); 9 bits.
    pub iplen: u16,
    /// IPv4 (else IPv6).
    pub ipv4: bool,
    /// TCP or UDP.
    pub l4: L4,
    /// TSO: segment size and TCP header length.
    pub tso: Option<(u16, u8)>,
}

impl TxContext {
    /// The four little-endian-to-be words of the descriptor, context index 0.
    pub fn encode(&self) -> [u32; 4] {
        let lens = u32::from(self.iplen & 0x1ff) | (u32::from(self.maclen & 0x7f) << 9);
        let mut tucmd = TXD_DTYP_CTXT | TXD_CMD_DEXT;
        if self.ipv4 {
            tucmd |= TUCMD_IPV4;
        }
        tucmd |= match self.l4 {
            L4::Tcp => TUCMD_L4T_TCP,
            L4::Udp => TUCMD_L4T_UDP,
        };
        let mss = match self.tso {
            Some((mss, l4len)) => (u32::from(mss) << 16) | (u32::from(l4len) << 8),
            None => 0,
        };
        [lens, 0, tucmd, mss]
    }

    /// The context for completing a [`CsumRequest`] on `frame` (Ethernet II, optionally one
    /// 802.1Q tag, IPv4 or IPv6): `None` when the request does not name a TCP (offset 16) or
    /// UDP (offset 6) checksum of a frame the device can parse, or the lengths do not fit the
    /// descriptor fields — the caller then completes it in software.
    pub fn for_csum(frame: &[u8], req: CsumRequest) -> Option<TxContext> {
        let (maclen, ethertype) = match u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]) {
            0x8100 => (18u16, u16::from_be_bytes([*frame.get(16)?, *frame.get(17)?])),
            t => (14, t),
        };
        let ipv4 = match ethertype {
            0x0800 => true,
            0x86dd => false,
            _ => return None,
        };
        let l4 = match req.offset {
            16 => L4::Tcp,
            6 => L4::Udp,
            _ => return None,
        };
        let iplen = req.start.checked_sub(maclen)?;
        if !(20..=0x1ff).contains(&iplen)
            || usize::from(req.start) + usize::from(req.offset) + 2 > frame.len()
        {
            return None;
        }
        Some(TxContext { maclen: maclen as u8, iplen, ipv4, l4, tso: None })
    }

    /// A TSO context (82599 §7.2.4): the headers `maclen + iplen + l4len` are replicated
    /// into every segment of at most `mss` payload bytes. `None` if a field does not fit.
    pub fn for_tso(maclen: u8, iplen: u16, ipv4: bool, l4len: u8, mss: u16) -> Option<TxContext> {
        if maclen > 0x7f || iplen > 0x1ff || l4len < 20 || mss == 0 {
            return None;
        }
        Some(TxContext { maclen, iplen, ipv4, l4: L4::Tcp, tso: Some((mss, l4len)) })
    }
}

/// `olinfo_status` of the data descriptor that follows a context: checksum options, CC, and
/// PAYLEN (for TSO the payload after the headers; otherwise the whole frame).
pub fn tx_olinfo(ctx: Option<&TxContext>, frame_len: u32) -> u32 {
    match ctx {
        None => frame_len << TXD_PAYLEN_SHIFT,
        Some(c) => {
            let mut o = TXD_CC | TXD_POPTS_TXSM;
            if c.ipv4 && c.tso.is_some() {
                o |= TXD_POPTS_IXSM; // every segment gets a fresh IPv4 header checksum
            }
            let paylen = match c.tso {
                Some((_, l4len)) => frame_len
                    .saturating_sub(u32::from(c.maclen) + u32::from(c.iplen) + u32::from(l4len)),
                None => frame_len,
            };
            o | (paylen << TXD_PAYLEN_SHIFT)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, vlan: bool, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        if vlan {
            f[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
            f[16..18].copy_from_slice(&ethertype.to_be_bytes());
        } else {
            f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        }
        f
    }

    #[test]
    fn data_descriptor_bits() {
        let (a, cmd, ol) = tx_data(0x1234_5000, 60, tx_olinfo(None, 60));
        assert_eq!(a, 0x1234_5000);
        assert_eq!(cmd & 0xffff, 60);
        assert_eq!(cmd & (0xf << 20), 0x3 << 20, "DTYP data");
        for bit in [TXD_CMD_EOP, TXD_CMD_IFCS, TXD_CMD_RS, TXD_CMD_DEXT] {
            assert_ne!(cmd & bit, 0);
        }
        assert_eq!(cmd & TXD_CMD_TSE, 0);
        assert_eq!(ol >> TXD_PAYLEN_SHIFT, 60);
        assert_eq!(ol & 0x3fff, 0, "no options without a context");
    }

    #[test]
    fn checksum_context_from_request() {
        let f = eth(0x0800, false, 14 + 20 + 20);
        let c = TxContext::for_csum(&f, CsumRequest { start: 34, offset: 16 }).unwrap();
        assert_eq!((c.maclen, c.iplen, c.ipv4, c.l4), (14, 20, true, L4::Tcp));
        let w = c.encode();
        assert_eq!(w[0], 20 | (14 << 9));
        assert_eq!(w[2], TXD_DTYP_CTXT | TXD_CMD_DEXT | TUCMD_IPV4 | TUCMD_L4T_TCP);
        assert_eq!(w[3], 0, "IDX 0, no MSS");
        let ol = tx_olinfo(Some(&c), 54);
        assert_eq!(ol & (TXD_CC | TXD_POPTS_TXSM), TXD_CC | TXD_POPTS_TXSM);
        assert_eq!(ol & TXD_POPTS_IXSM, 0, "IPv4 header checksum is the stack's");
        assert_eq!(ol >> TXD_PAYLEN_SHIFT, 54);

        let f6 = eth(0x86dd, true, 18 + 40 + 8);
        let c = TxContext::for_csum(&f6, CsumRequest { start: 58, offset: 6 }).unwrap();
        assert_eq!((c.maclen, c.iplen, c.ipv4, c.l4), (18, 40, false, L4::Udp));
        assert_eq!(c.encode()[2] & (TUCMD_IPV4 | TUCMD_L4T_TCP), 0);

        // Not expressible: odd offset, ARP, start inside the MAC header, field past the end.
        assert!(TxContext::for_csum(&f, CsumRequest { start: 34, offset: 10 }).is_none());
        assert!(TxContext::for_csum(
            &eth(0x0806, false, 60),
            CsumRequest { start: 34, offset: 16 }
        )
        .is_none());
        assert!(TxContext::for_csum(&f, CsumRequest { start: 10, offset: 16 }).is_none());
        assert!(TxContext::for_csum(&f[..40], CsumRequest { start: 34, offset: 16 }).is_none());
    }

    #[test]
    fn tso_context_and_paylen() {
        let c = TxContext::for_tso(14, 20, true, 32, 1448).unwrap();
        let w = c.encode();
        assert_eq!(w[3] >> 16, 1448, "MSS");
        assert_eq!((w[3] >> 8) & 0xff, 32, "L4LEN");
        assert_eq!((w[3] >> 4) & 0xf, 0, "IDX");
        let total = 14 + 20 + 32 + 10 * 1448;
        let ol = tx_olinfo(Some(&c), total);
        assert_eq!(ol >> TXD_PAYLEN_SHIFT, 10 * 1448, "PAYLEN excludes the headers");
        assert_ne!(ol & TXD_POPTS_IXSM, 0);
        assert!(TxContext::for_tso(14, 20, true, 32, 0).is_none());
        assert!(TxContext::for_tso(200, 20, true, 32, 1448).is_none());
        assert!(TxContext::for_tso(14, 20, true, 8, 1448).is_none());
    }
}
