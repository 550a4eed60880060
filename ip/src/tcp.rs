//! TCP header (RFC 9293 §3.1) with the options a modern peer sends.
//!
//! The interface below is fixed (the TCP engine codes against it); parse/emit are filled in
//! with the rest of the wire formats.

use bitflags::bitflags;

bitflags! {
    /// The TCP control bits (RFC 9293 §3.1; CWR/ECE from RFC 3168).
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct TcpFlags: u8 {
        /// No more data from sender.
        const FIN = 0x01;
        /// Synchronize sequence numbers.
        const SYN = 0x02;
        /// Reset the connection.
        const RST = 0x04;
        /// Push function.
        const PSH = 0x08;
        /// Acknowledgment field is significant.
        const ACK = 0x10;
        /// Urgent pointer field is significant.
        const URG = 0x20;
        /// ECN-Echo (RFC 3168).
        const ECE = 0x40;
        /// Congestion Window Reduced (RFC 3168).
        const CWR = 0x80;
    }
}

/// A SACK block (RFC 2018 §3): the left and right edge of a received run, raw sequence numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SackBlock {
    /// First sequence number of the block.
    pub left: u32,
    /// Sequence number just past the block.
    pub right: u32,
}

/// The options of one segment, as values. Unknown options are skipped by length when parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpOptions {
    /// Maximum segment size (RFC 9293 §3.7.1), SYN only.
    pub mss: Option<u16>,
    /// Window scale shift (RFC 7323 §2), SYN only; values above 14 are kept as sent (the engine
    /// clamps them to 14 as §2.3 requires).
    pub window_scale: Option<u8>,
    /// SACK-permitted (RFC 2018 §2), SYN only.
    pub sack_permitted: bool,
    /// SACK blocks (RFC 2018 §3), at most 4 (3 alongside timestamps); `sack_len` are valid.
    pub sack_blocks: [SackBlock; 4],
    /// How many of `sack_blocks` are present.
    pub sack_len: u8,
    /// Timestamps (RFC 7323 §3): (TSval, TSecr).
    pub timestamps: Option<(u32, u32)>,
}

/// A parsed TCP segment: header fields as values, payload borrowed from the packet buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number (raw; the engine wraps it in its `SeqNum`).
    pub seq: u32,
    /// Acknowledgment number (meaningful when `flags` has ACK).
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Window field as sent (not scaled).
    pub window: u16,
    /// Urgent pointer (meaningful when `flags` has URG).
    pub urgent: u16,
    /// Options.
    pub options: TcpOptions,
    /// Segment data.
    pub payload: &'a [u8],
}
