//! A classic libpcap file writer (the `.pcap` format Wireshark and tcpdump read), timestamped
//! with virtual time.
//!
//! Format (libpcap file format, "pcap-savefile"): a 24-byte global header — magic
//! `0xa1b2c3d4` (microsecond timestamps), version 2.4, zone 0, sigfigs 0, snaplen, link type —
//! then per packet a 16-byte record header (seconds, microseconds, captured length, original
//! length) and the bytes. Written little-endian; readers detect the byte order from the magic.

use std::io::{self, Write};

use joyride_base::Instant;

/// The link-layer header type of every packet in one capture file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1): IEEE 802.3 frames.
    Ethernet,
    /// `LINKTYPE_RAW` (101): bare IPv4/IPv6 packets, no link header.
    Raw,
}

impl LinkType {
    /// The number written into the file header.
    pub const fn code(self) -> u32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
        }
    }
}

/// Microsecond-resolution magic of the classic format.
const MAGIC: u32 = 0xa1b2_c3d4;
/// The largest packet kept whole; longer ones are truncated to this in the file.
pub const SNAPLEN: u32 = 262_144;

/// Writes packets into any [`Write`] as a pcap file.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    packets: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header for `link_type` and returns the writer.
    pub fn new(mut out: W, link_type: LinkType) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone (8..12) and sigfigs (12..16) stay zero.
        h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
        h[20..24].copy_from_slice(&link_type.code().to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, packets: 0 })
    }

    /// Appends one packet captured at virtual time `at`.
    pub fn write_packet(&mut self, at: Instant, data: &[u8]) -> io::Result<()> {
        let micros = at.as_micros();
        let secs = u32::try_from(micros / 1_000_000).unwrap_or(u32::MAX);
        let usecs = (micros % 1_000_000) as u32;
        let orig_len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let cap_len = orig_len.min(SNAPLEN);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&secs.to_le_bytes());
        h[4..8].copy_from_slice(&usecs.to_le_bytes());
        h[8..12].copy_from_slice(&cap_len.to_le_bytes());
        h[12..16].copy_from_slice(&orig_len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&data[..cap_len as usize])?;
        self.packets += 1;
        Ok(())
    }

    /// Packets written so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records_are_laid_out_as_libpcap_expects() {
        let mut w = PcapWriter::new(Vec::new(), LinkType::Raw).unwrap();
        w.write_packet(Instant::from_micros(3_000_123), &[0x45, 0, 0, 20]).unwrap();
        w.write_packet(Instant::from_nanos(999), &[1, 2]).unwrap();
        assert_eq!(w.packets(), 2);
        let b = w.into_inner().unwrap();
        assert_eq!(&b[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u16::from_le_bytes([b[4], b[5]]), 2);
        assert_eq!(u16::from_le_bytes([b[6], b[7]]), 4);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 101);
        let r = &b[24..];
        assert_eq!(u32::from_le_bytes(r[0..4].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 123);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 4);
        assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), 4);
        assert_eq!(&r[16..20], &[0x45, 0, 0, 20]);
        let r = &r[20..];
        assert_eq!(u32::from_le_bytes(r[0..4].try_into().unwrap()), 0);
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 2);
        assert_eq!(r.len(), 18);
        let e = PcapWriter::new(Vec::new(), LinkType::Ethernet).unwrap().into_inner().unwrap();
        assert_eq!(u32::from_le_bytes(e[20..24].try_into().unwrap()), 1);
    }
}
