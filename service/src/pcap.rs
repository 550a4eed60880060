//! A minimal pcap writer (the classic libpcap format, microsecond timestamps, Ethernet link
//! type): enough for `joyrided --pcap` and for tests to read back what was written.

use std::io::{self, Write};

/// Link type Ethernet (`LINKTYPE_ETHERNET`, tcpdump.org/linktypes.html).
const LINKTYPE_ETHERNET: u32 = 1;
/// Magic of the microsecond-resolution format.
const MAGIC_USEC: u32 = 0xa1b2_c3d4;

/// Writes frames to a pcap stream.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    snaplen: u32,
    frames: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header; frames longer than `snaplen` are truncated in the file.
    pub fn new(mut out: W, snaplen: u32) -> io::Result<Self> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&MAGIC_USEC.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes()); // version 2.4
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // thiszone and sigfigs stay zero.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out, snaplen, frames: 0 })
    }

    /// Appends one frame seen at `unix_nanos` (nanoseconds since the Unix epoch).
    pub fn write_frame(&mut self, unix_nanos: u64, frame: &[u8]) -> io::Result<()> {
        let caplen = frame.len().min(self.snaplen as usize);
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((unix_nanos / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((unix_nanos % 1_000_000_000 / 1000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(caplen as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&frame[..caplen])?;
        self.frames += 1;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_records() {
        let mut w = PcapWriter::new(Vec::new(), 8).unwrap();
        w.write_frame(1_500_000_123_456_789, &[1, 2, 3]).unwrap();
        w.write_frame(2_000_000_000, &[9; 20]).unwrap();
        assert_eq!(w.frames(), 2);
        let b = w.into_inner();
        assert_eq!(&b[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 1);
        // First record: seconds, microseconds, caplen 3, len 3, data.
        assert_eq!(u32::from_le_bytes(b[24..28].try_into().unwrap()), 1_500_000);
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_le_bytes(b[32..36].try_into().unwrap()), 3);
        assert_eq!(&b[40..43], &[1, 2, 3]);
        // Second record truncated to the snaplen but keeps the original length.
        let r = 43;
        assert_eq!(u32::from_le_bytes(b[r + 8..r + 12].try_into().unwrap()), 8);
        assert_eq!(u32::from_le_bytes(b[r + 12..r + 16].try_into().unwrap()), 20);
        assert_eq!(b.len(), r + 16 + 8);
    }
}
