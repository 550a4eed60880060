//! TCP header (RFC 9293 §3.1) with the options a modern peer sends: a byte view
//! [`TcpPacket`], an option iterator [`TcpOptionIter`] and a value [`TcpRepr`].
//!
//! The view covers exactly one segment as delivered by the IP layer (the IP payload, no
//! link-layer padding): the segment length used in the pseudo-header is the buffer length.
//!
//! Options are emitted in Linux's order and layout (`tcp_options_write`), so segments look
//! like the kernel's on the wire: MSS; `sackOK,TS` or `nop,nop,TS` (or `nop,nop,sackOK`
//! without timestamps); `nop,wscale`; `nop,nop,sack…`. Every group is a multiple of 4 bytes,
//! so no trailing padding is ever needed.

use bitflags::bitflags;

use crate::checksum;
use crate::{Checksum, Error, Ipv4Addr, Result};

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

/// Length of the TCP header without options (RFC 9293 §3.1: data offset 5).
pub const HEADER_LEN: usize = 20;

/// The largest header: data offset 15, i.e. 40 bytes of options (RFC 9293 §3.1).
pub const MAX_HEADER_LEN: usize = 60;

/// The most option bytes a header can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_HEADER_LEN - HEADER_LEN;

/// IP protocol number of TCP (IANA), used in the pseudo-header.
pub const PROTOCOL: u8 = 6;

mod field {
    use core::ops::Range;
    pub(super) const SRC_PORT: Range<usize> = 0..2;
    pub(super) const DST_PORT: Range<usize> = 2..4;
    pub(super) const SEQ_NUM: Range<usize> = 4..8;
    pub(super) const ACK_NUM: Range<usize> = 8..12;
    pub(super) const DATA_OFFSET: usize = 12;
    pub(super) const FLAGS: usize = 13;
    pub(super) const WINDOW: Range<usize> = 14..16;
    pub(super) const CHECKSUM: Range<usize> = 16..18;
    pub(super) const URGENT: Range<usize> = 18..20;
}

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    /// RFC 9293 §3.2: End of Option List.
    pub(super) const EOL: u8 = 0;
    /// RFC 9293 §3.2: No-Operation.
    pub(super) const NOP: u8 = 1;
    /// RFC 9293 §3.2: Maximum Segment Size, length 4.
    pub(super) const MSS: u8 = 2;
    /// RFC 7323 §2.2: Window Scale, length 3.
    pub(super) const WS: u8 = 3;
    /// RFC 2018 §2: SACK-Permitted, length 2.
    pub(super) const SACK_PERM: u8 = 4;
    /// RFC 2018 §3: SACK, length 2 + 8n.
    pub(super) const SACK: u8 = 5;
    /// RFC 7323 §3.2: Timestamps, length 10.
    pub(super) const TS: u8 = 8;
}

/// A byte view of a TCP segment (RFC 9293 §3.1 "Header Format").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; getters may panic until [`check_len`] succeeds.
    ///
    /// [`check_len`]: Self::check_len
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer and checks its lengths ([`check_len`](Self::check_len)); after this no
    /// getter panics.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the fixed header fits and that the data offset is sane and within the
    /// buffer.
    ///
    /// # Errors
    /// [`Error::Truncated`] if the buffer is shorter than 20 bytes or than the data offset;
    /// [`Error::BadHeaderLen`] if the data offset is below 5 words.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        // RFC 9293 §3.1: Data Offset is the header length in 32-bit words, at least 5.
        if header_len < HEADER_LEN {
            return Err(Error::BadHeaderLen);
        }
        if header_len > len {
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

    fn read_u32(&self, range: core::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[range];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The source port.
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    /// The destination port.
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// The sequence number (raw).
    pub fn seq_number(&self) -> u32 {
        self.read_u32(field::SEQ_NUM)
    }

    /// The acknowledgment number (raw; meaningful when ACK is set).
    pub fn ack_number(&self) -> u32 {
        self.read_u32(field::ACK_NUM)
    }

    /// The header length in bytes: the data offset field times 4 (RFC 9293 §3.1).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// The four reserved bits after the data offset (RFC 9293 §3.1: "must be zero" on send;
    /// receivers ignore them).
    pub fn reserved(&self) -> u8 {
        self.buffer.as_ref()[field::DATA_OFFSET] & 0x0F
    }

    /// The control bits.
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_retain(self.buffer.as_ref()[field::FLAGS])
    }

    /// The window field, unscaled.
    pub fn window_len(&self) -> u16 {
        self.read_u16(field::WINDOW)
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The urgent pointer (meaningful when URG is set).
    pub fn urgent_at(&self) -> u16 {
        self.read_u16(field::URGENT)
    }

    /// The raw option bytes (between the fixed header and the data offset).
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// An iterator over the options, see [`TcpOptionIter`].
    pub fn options_iter(&self) -> TcpOptionIter<'_> {
        TcpOptionIter::new(self.options())
    }

    /// The segment data (everything after the header).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// The segment length used in the pseudo-header: header plus data, i.e. the buffer length,
    /// saturated at `u16::MAX` (a longer buffer cannot be an IPv4 payload).
    pub fn segment_len(&self) -> u16 {
        u16::try_from(self.buffer.as_ref().len()).unwrap_or(u16::MAX)
    }

    /// Whether the checksum verifies against the IPv4 pseudo-header (RFC 9293 §3.1: the sum
    /// over pseudo-header, header and data, checksum field included, is all ones).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        let Ok(len) = u16::try_from(data.len()) else { return false };
        let s = checksum::combine(
            checksum::pseudo_header_v4(src, dst, PROTOCOL, len),
            checksum::sum(data),
        );
        checksum::fold(s) == 0xFFFF
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    fn write_u32(&mut self, range: core::ops::Range<usize>, value: u32) {
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

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, seq: u32) {
        self.write_u32(field::SEQ_NUM, seq);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, ack: u32) {
        self.write_u32(field::ACK_NUM, ack);
    }

    /// Sets the header length in bytes (a multiple of 4 from 20 to 60) and clears the
    /// reserved bits (RFC 9293 §3.1: reserved bits are sent as zero).
    pub fn set_header_len(&mut self, len: u8) {
        debug_assert!(len & 3 == 0 && (20..=60).contains(&len), "bad TCP header length {len}");
        self.buffer.as_mut()[field::DATA_OFFSET] = (len / 4) << 4;
    }

    /// Sets the control bits.
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.bits();
    }

    /// Sets the window field.
    pub fn set_window_len(&mut self, window: u16) {
        self.write_u16(field::WINDOW, window);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, urgent: u16) {
        self.write_u16(field::URGENT, urgent);
    }

    /// The option bytes, mutable (the header length must be set).
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The segment data, mutable (the header length must be set).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and stores the checksum over pseudo-header, header and data (the whole
    /// buffer is the segment).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.segment_len();
        // RFC 9293 §3.1: the checksum is the 16-bit one's complement of the one's complement
        // sum of pseudo-header, header and text, with the checksum field zero while summing.
        let s = checksum::combine(
            checksum::pseudo_header_v4(src, dst, PROTOCOL, len),
            checksum::sum(self.buffer.as_ref()),
        );
        self.set_checksum(!checksum::fold(s));
    }

    /// Stores the folded, uncomplemented pseudo-header sum in the checksum field, as NICs with
    /// partial checksum offload expect.
    pub fn fill_pseudo_header_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let len = self.segment_len();
        self.set_checksum(checksum::fold(checksum::pseudo_header_v4(src, dst, PROTOCOL, len)));
    }
}

/// One TCP option as seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0); the iterator stops after it (the rest is padding).
    EndOfList,
    /// No-operation (kind 1), used for alignment.
    NoOperation,
    /// Maximum segment size (kind 2, length 4; RFC 9293 §3.2).
    MaxSegmentSize(u16),
    /// Window scale shift (kind 3, length 3; RFC 7323 §2.2), as sent.
    WindowScale(u8),
    /// SACK permitted (kind 4, length 2; RFC 2018 §2).
    SackPermitted,
    /// SACK blocks (kind 5, length 2 + 8n, n in 1..=4; RFC 2018 §3): the first `len` of
    /// `blocks` are valid.
    Sack {
        /// The blocks, in the order sent.
        blocks: [SackBlock; 4],
        /// How many are valid.
        len: u8,
    },
    /// Timestamps (kind 8, length 10; RFC 7323 §3.2).
    Timestamps {
        /// TSval.
        tsval: u32,
        /// TSecr.
        tsecr: u32,
    },
    /// Any other option with a well-formed length: its kind and the bytes after the length.
    Unknown {
        /// The option kind.
        kind: u8,
        /// The option data (length − 2 bytes).
        data: &'a [u8],
    },
}

/// An iterator over the options of a header, yielding `Err(Error::Malformed)` once and then
/// stopping when an option is malformed: a length below 2, a length that overruns the header,
/// or a known option whose length is not the one its RFC fixes. Unknown options with a sane
/// length are yielded as [`TcpOption::Unknown`] (RFC 9293 §3.1, MUST-6: ignore options not
/// implemented, skipping them by their length).
#[derive(Clone, Debug)]
pub struct TcpOptionIter<'a> {
    rest: &'a [u8],
}

impl<'a> TcpOptionIter<'a> {
    /// Iterates over raw option bytes (what [`TcpPacket::options`] returns).
    pub const fn new(options: &'a [u8]) -> Self {
        TcpOptionIter { rest: options }
    }

    #[inline]
    fn parse_one(&mut self) -> Result<TcpOption<'a>> {
        let rest = self.rest;
        let kind = rest[0];
        match kind {
            // RFC 9293 §3.2: End of Option List; the remainder of the header is padding.
            kind::EOL => {
                self.rest = &[];
                return Ok(TcpOption::EndOfList);
            }
            // RFC 9293 §3.2: No-Operation, a single byte.
            kind::NOP => {
                self.rest = &rest[1..];
                return Ok(TcpOption::NoOperation);
            }
            _ => {}
        }
        // RFC 9293 §3.1 (MUST-7): handle an illegal option length (zero, or overrunning the
        // header) without crashing: the segment's options are malformed.
        let len = usize::from(*rest.get(1).ok_or(Error::Malformed)?);
        if len < 2 || len > rest.len() {
            return Err(Error::Malformed);
        }
        let data = &rest[2..len];
        self.rest = &rest[len..];
        let be16 = |d: &[u8]| u16::from_be_bytes([d[0], d[1]]);
        let be32 = |d: &[u8]| u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
        Ok(match (kind, data.len()) {
            (kind::MSS, 2) => TcpOption::MaxSegmentSize(be16(data)),
            (kind::WS, 1) => TcpOption::WindowScale(data[0]),
            (kind::SACK_PERM, 0) => TcpOption::SackPermitted,
            // RFC 2018 §3: a SACK option with n blocks has length 8n + 2; 40 option bytes
            // leave room for at most 4 blocks.
            (kind::SACK, n) if n & 7 == 0 && (8..=32).contains(&n) => {
                let mut blocks = [SackBlock::default(); 4];
                for (block, raw) in blocks.iter_mut().zip(data.chunks_exact(8)) {
                    *block = SackBlock { left: be32(&raw[..4]), right: be32(&raw[4..]) };
                }
                TcpOption::Sack { blocks, len: (n / 8) as u8 }
            }
            // RFC 7323 §3.2: Kind 8, Length 10, TSval, TSecr.
            (kind::TS, 8) => {
                TcpOption::Timestamps { tsval: be32(&data[..4]), tsecr: be32(&data[4..]) }
            }
            (kind::MSS | kind::WS | kind::SACK_PERM | kind::SACK | kind::TS, _) => {
                return Err(Error::Malformed)
            }
            (kind, _) => TcpOption::Unknown { kind, data },
        })
    }
}

impl<'a> Iterator for TcpOptionIter<'a> {
    type Item = Result<TcpOption<'a>>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = self.parse_one();
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

impl core::iter::FusedIterator for TcpOptionIter<'_> {}

impl TcpOptions {
    /// Parses raw option bytes into values. Unknown options are skipped; when an option kind
    /// repeats, the last one wins.
    ///
    /// # Errors
    /// [`Error::Malformed`] for a malformed option (see [`TcpOptionIter`]).
    // Inlined so the value is built in place: returned out of line, it was stored field by
    // field and re-read with wide loads, which stalls on store-to-load forwarding.
    #[inline]
    pub fn parse(raw: &[u8]) -> Result<TcpOptions> {
        let mut opts = TcpOptions::default();
        for option in TcpOptionIter::new(raw) {
            match option? {
                TcpOption::MaxSegmentSize(mss) => opts.mss = Some(mss),
                TcpOption::WindowScale(shift) => opts.window_scale = Some(shift),
                TcpOption::SackPermitted => opts.sack_permitted = true,
                TcpOption::Sack { blocks, len } => {
                    opts.sack_blocks = blocks;
                    opts.sack_len = len;
                }
                TcpOption::Timestamps { tsval, tsecr } => opts.timestamps = Some((tsval, tsecr)),
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
            }
        }
        Ok(opts)
    }

    /// The valid SACK blocks (at most 4, whatever `sack_len` says).
    #[inline]
    pub fn sack(&self) -> &[SackBlock] {
        &self.sack_blocks[..usize::from(self.sack_len.min(4))]
    }

    /// Bytes of everything but SACK blocks, in the layout [`emit`](Self::emit) writes.
    #[inline]
    const fn fixed_len(&self) -> usize {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4; // MSS
        }
        if self.timestamps.is_some() {
            len += 12; // sackOK,TS or nop,nop,TS
        } else if self.sack_permitted {
            len += 4; // nop,nop,sackOK
        }
        if self.window_scale.is_some() {
            len += 4; // nop,wscale
        }
        len
    }

    /// How many SACK blocks [`emit`](Self::emit) writes: `sack_len`, reduced to what fits in
    /// the 40 option bytes beside the other options (as Linux does).
    #[inline]
    pub fn emitted_sack_len(&self) -> usize {
        let room = MAX_OPTIONS_LEN.saturating_sub(self.fixed_len());
        // nop,nop,kind,len then 8 bytes a block.
        let fit = room.saturating_sub(4) / 8;
        self.sack().len().min(fit)
    }

    /// Bytes [`emit`](Self::emit) writes: a multiple of 4, at most 40 (SACK blocks that do not
    /// fit are dropped). Panics in `emit` only if MSS, timestamps and window scale alone
    /// overflow 40 bytes, which they cannot (20 bytes).
    #[inline]
    pub fn buffer_len(&self) -> usize {
        let sacks = self.emitted_sack_len();
        self.fixed_len() + if sacks > 0 { 4 + 8 * sacks } else { 0 }
    }

    /// The partial one's-complement sum of the bytes [`emit`](Self::emit) writes, computed
    /// from the values (each group is 4-byte aligned, so words never straddle groups).
    #[inline]
    pub fn sum(&self) -> u32 {
        let word = |hi: u8, lo: u8| u32::from(u16::from_be_bytes([hi, lo]));
        let halves = |v: u32| (v >> 16) + (v & 0xFFFF);
        let mut s = 0u32;
        if let Some(mss) = self.mss {
            s += word(kind::MSS, 4) + u32::from(mss);
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            s += if self.sack_permitted {
                word(kind::SACK_PERM, 2)
            } else {
                word(kind::NOP, kind::NOP)
            };
            s += word(kind::TS, 10) + halves(tsval) + halves(tsecr);
        } else if self.sack_permitted {
            s += word(kind::NOP, kind::NOP) + word(kind::SACK_PERM, 2);
        }
        if let Some(shift) = self.window_scale {
            s += word(kind::NOP, kind::WS) + word(3, shift);
        }
        let sacks = self.emitted_sack_len();
        if sacks > 0 {
            s += word(kind::NOP, kind::NOP) + word(kind::SACK, (2 + 8 * sacks) as u8);
            for block in &self.sack()[..sacks] {
                s += halves(block.left) + halves(block.right);
            }
        }
        // At most 20 words of at most 0xFFFF each: no overflow.
        s
    }

    /// Writes the options in Linux's order and layout (`tcp_options_write`), every group
    /// 4-byte aligned; returns the bytes written ([`buffer_len`](Self::buffer_len)).
    ///
    /// # Panics
    /// If `buf` is shorter than [`buffer_len`](Self::buffer_len).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let total = self.buffer_len();
        let buf = &mut buf[..total];
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            buf[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.mss {
            // RFC 9293 §3.2: MSS, kind 2, length 4.
            let m = mss.to_be_bytes();
            put(&[kind::MSS, 4, m[0], m[1]]);
        }
        if let Some((tsval, tsecr)) = self.timestamps {
            // RFC 7323 Appendix A layout; Linux puts sackOK in the two leading pad bytes.
            if self.sack_permitted {
                put(&[kind::SACK_PERM, 2]);
            } else {
                put(&[kind::NOP, kind::NOP]);
            }
            put(&[kind::TS, 10]);
            put(&tsval.to_be_bytes());
            put(&tsecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[kind::NOP, kind::NOP, kind::SACK_PERM, 2]);
        }
        if let Some(shift) = self.window_scale {
            // RFC 7323 §2.2: kind 3, length 3, shift.cnt, aligned by a leading NOP.
            put(&[kind::NOP, kind::WS, 3, shift]);
        }
        let sacks = self.emitted_sack_len();
        if sacks > 0 {
            // RFC 2018 §3: kind 5, length 8n + 2, aligned by two leading NOPs.
            put(&[kind::NOP, kind::NOP, kind::SACK, (2 + 8 * sacks) as u8]);
            for block in &self.sack()[..sacks] {
                put(&block.left.to_be_bytes());
                put(&block.right.to_be_bytes());
            }
        }
        debug_assert_eq!(at, total);
        total
    }
}

impl<'a> TcpRepr<'a> {
    /// Parses a checked view: header fields, options, and the checksum against the IPv4
    /// pseudo-header unless `checksum` is [`Checksum::Offloaded`].
    ///
    /// # Errors
    /// The errors of [`TcpPacket::check_len`], [`Error::BadChecksum`], and
    /// [`Error::Malformed`] for malformed options.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: Checksum,
    ) -> Result<TcpRepr<'a>> {
        packet.check_len()?;
        if checksum == Checksum::Software && !packet.verify_checksum(src, dst) {
            return Err(Error::BadChecksum);
        }
        let options = TcpOptions::parse(packet.options())?;
        let buf: &'a [u8] = packet.buffer.as_ref();
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options,
            payload: &buf[usize::from(packet.header_len())..],
        })
    }

    /// The header length emit writes: 20 bytes plus the options (see
    /// [`TcpOptions::buffer_len`]).
    #[inline]
    pub fn header_len(&self) -> usize {
        HEADER_LEN + self.options.buffer_len()
    }

    /// Bytes needed to emit this segment: header plus data.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// The partial sum of the header as [`emit`](Self::emit) writes it (checksum field zero),
    /// computed from the values.
    #[inline]
    fn header_sum(&self, header_len: u8) -> u32 {
        let hi = |v: u32| v >> 16;
        let lo = |v: u32| v & 0xFFFF;
        u32::from(self.src_port)
            + u32::from(self.dst_port)
            + hi(self.seq)
            + lo(self.seq)
            + hi(self.ack)
            + lo(self.ack)
            // Data offset (high nibble of byte 12, reserved bits zero) and flags (byte 13).
            + (u32::from(header_len / 4) << 12 | u32::from(self.flags.bits()))
            + u32::from(self.window)
            + u32::from(self.urgent)
            + self.options.sum()
    }

    /// The sequence space the segment occupies: data plus one for SYN and one for FIN
    /// (RFC 9293 §3.4, SEG.LEN).
    #[inline]
    pub fn seg_len(&self) -> usize {
        self.payload.len()
            + usize::from(self.flags.contains(TcpFlags::SYN))
            + usize::from(self.flags.contains(TcpFlags::FIN))
    }

    /// Writes header, options and data into `packet` and fills the checksum: computed in
    /// software, or with [`Checksum::Offloaded`] the pseudo-header sum the NIC completes.
    /// The packet buffer is the segment: its length must equal
    /// [`buffer_len`](Self::buffer_len) (slice it first).
    ///
    /// # Panics
    /// If the packet buffer's length is not [`buffer_len`](Self::buffer_len), or (software
    /// checksum) the segment is longer than 65,535 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        checksum: Checksum,
    ) {
        let header_len = self.header_len();
        let total = header_len + self.payload.len();
        assert_eq!(
            packet.buffer.as_ref().len(),
            total,
            "TCP emit buffer length must equal buffer_len()"
        );
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq);
        packet.set_ack_number(self.ack);
        packet.set_header_len(header_len as u8);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window);
        packet.set_urgent_at(self.urgent);
        self.options.emit(packet.options_mut());
        packet.payload_mut().copy_from_slice(self.payload);
        match checksum {
            Checksum::Software => {
                // RFC 9293 §3.1: pseudo-header, header with a zero checksum field, and data.
                // Header and options are summed from the values and the data from
                // `self.payload`, not re-read from the bytes just stored (which stalls on
                // store-to-load forwarding); every part starts at an even offset.
                let len = u16::try_from(total).expect("TCP segment longer than 65535 bytes");
                let s = checksum::combine(
                    checksum::pseudo_header_v4(src, dst, PROTOCOL, len)
                        + self.header_sum(header_len as u8),
                    checksum::sum(self.payload),
                );
                packet.set_checksum(!checksum::fold(s));
            }
            Checksum::Offloaded => packet.fill_pseudo_header_checksum(src, dst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn syn() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: 0x0102_0304,
            ack: 0,
            flags: TcpFlags::SYN,
            window: 64240,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some((1, 0)),
                ..TcpOptions::default()
            },
            payload: &[],
        }
    }

    #[test]
    fn linux_syn_layout() {
        let repr = syn();
        assert_eq!(repr.header_len(), 40);
        let mut buf = [0u8; 40];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, Checksum::Software);
        // mss 1460, sackOK, TS 1 0, nop, wscale 7: what Linux sends.
        assert_eq!(&buf[20..], &[2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]);
        let p = TcpPacket::new_checked(&buf[..]).unwrap();
        assert!(p.verify_checksum(SRC, DST));
        assert_eq!(TcpRepr::parse(&p, SRC, DST, Checksum::Software).unwrap(), repr);
        assert_eq!(repr.seg_len(), 1);
    }

    #[test]
    fn sack_blocks_clamped_to_fit() {
        let mut repr = syn();
        repr.options.sack_len = 4;
        // MSS + TS + WS = 20 bytes leave room for 2 blocks.
        assert_eq!(repr.options.emitted_sack_len(), 2);
        assert_eq!(repr.header_len(), 60);
        repr.options.mss = None;
        repr.options.window_scale = None;
        assert_eq!(repr.options.emitted_sack_len(), 3);
        repr.options.timestamps = None;
        repr.options.sack_permitted = false;
        assert_eq!(repr.options.emitted_sack_len(), 4);
        assert_eq!(repr.header_len(), 56);
    }

    proptest::proptest! {
        #[test]
        fn options_sum_matches_bytes(mss: Option<u16>, ws: Option<u8>, perm: bool,
                                     ts: Option<(u32, u32)>, n in 0u8..=4,
                                     edges: [u32; 8]) {
            let mut o = TcpOptions { mss, window_scale: ws, sack_permitted: perm,
                                     timestamps: ts, sack_len: n, ..TcpOptions::default() };
            for (b, e) in o.sack_blocks.iter_mut().zip(edges.chunks_exact(2)) {
                *b = SackBlock { left: e[0], right: e[1] };
            }
            let mut buf = [0u8; MAX_OPTIONS_LEN];
            let len = o.emit(&mut buf);
            proptest::prop_assert_eq!(
                checksum::fold(o.sum()),
                checksum::fold(checksum::reference_sum(&buf[..len]))
            );
        }
    }

    #[test]
    fn offloaded_leaves_pseudo_sum() {
        let repr = TcpRepr { payload: b"abc", flags: TcpFlags::ACK, ..syn() };
        let mut buf = [0u8; 43];
        let mut p = TcpPacket::new_unchecked(&mut buf[..]);
        repr.emit(&mut p, SRC, DST, Checksum::Offloaded);
        let pseudo = checksum::fold(checksum::pseudo_header_v4(SRC, DST, PROTOCOL, 43));
        assert_eq!(p.checksum(), pseudo);
        // Completing it like a NIC yields the software checksum.
        let nic = !checksum::fold(checksum::sum(&buf));
        let mut soft = [0u8; 43];
        repr.emit(&mut TcpPacket::new_unchecked(&mut soft[..]), SRC, DST, Checksum::Software);
        assert_eq!(nic.to_be_bytes(), soft[16..18]);
    }
}
