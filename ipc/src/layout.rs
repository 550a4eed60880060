//! The region's byte layout (version 1): sizes, offsets and the header. Pure arithmetic.
//!
//! ```text
//! 0                 header (256 B, 4 cache lines)
//! cmd_ring_off      command ring:    head line (64 B) | tail line (64 B) | entries × 64 B
//! cmp_ring_off      completion ring: head line (64 B) | tail line (64 B) | entries × 64 B
//! sock_table_off    socket table: sockets × 128 B slots
//! data_off          data: per socket i, rx ring (rx_buf B) then tx ring (tx_buf B)
//! region_size
//! ```
//! Every section starts on a 64-byte line; `data_off` on a 4096-byte page. See `PROTOCOL.md`.

use core::fmt;

/// `b"JOYRIPC\0"` read as a little-endian u64: the region's first 8 bytes.
pub const MAGIC: u64 = u64::from_le_bytes(*b"JOYRIPC\0");
/// The layout version this crate reads and writes.
pub const VERSION: u32 = 2;
/// Bytes of header at the start of the region.
pub const HEADER_SIZE: usize = 256;
/// Bytes of the header's static part (written once by the service before hand-over).
pub const HEADER_STATIC: usize = 128;
/// Size of one command or completion ring entry.
pub const ENTRY_SIZE: usize = 64;
/// Size of one socket-table slot.
pub const SLOT_SIZE: usize = 128;
/// A cache line: producer- and consumer-written words never share one.
pub const CACHE_LINE: usize = 64;
/// Bytes before a ring's first entry: the head line and the tail line.
pub const RING_HEADER: usize = 2 * CACHE_LINE;
const PAGE: usize = 4096;

/// Byte offsets of header fields. Static part (service writes once, app reads):
pub mod hdr {
    /// u64: [`MAGIC`](super::MAGIC).
    pub const MAGIC: usize = 0;
    /// u32: [`VERSION`](super::VERSION).
    pub const VERSION: usize = 8;
    /// u32: [`HEADER_SIZE`](super::HEADER_SIZE).
    pub const HEADER_SIZE: usize = 12;
    /// u64: total region bytes.
    pub const REGION_SIZE: usize = 16;
    /// u32: [`ENTRY_SIZE`](super::ENTRY_SIZE).
    pub const ENTRY_SIZE: usize = 24;
    /// u32: command ring entries (power of two).
    pub const CMD_ENTRIES: usize = 28;
    /// u32: completion ring entries (power of two).
    pub const CMP_ENTRIES: usize = 32;
    /// u32: socket slots.
    pub const SOCKETS: usize = 36;
    /// u32: bytes of each socket's rx ring (power of two).
    pub const RX_BUF: usize = 40;
    /// u32: bytes of each socket's tx ring (power of two).
    pub const TX_BUF: usize = 44;
    /// u64: offset of the command ring.
    pub const CMD_RING_OFF: usize = 48;
    /// u64: offset of the completion ring.
    pub const CMP_RING_OFF: usize = 56;
    /// u64: offset of the socket table.
    pub const SOCK_TABLE_OFF: usize = 64;
    /// u64: offset of the data rings.
    pub const DATA_OFF: usize = 72;
    /// u32: [`SLOT_SIZE`](super::SLOT_SIZE).
    pub const SLOT_SIZE: usize = 80;
    /// Dynamic, service-written line: u32 status (0 running, 1 poisoned, 2 shut down).
    pub const STATUS: usize = 128;
    /// u32: [`PoisonReason`](crate::PoisonReason) code when status is poisoned.
    pub const POISON_REASON: usize = 132;
    /// u32: bumped (Release) after every batch of completions or readiness changes.
    pub const WAKE_SEQ: usize = 136;
    /// u32: non-zero while the service sleeps on the command doorbell.
    pub const SVC_WAITING: usize = 140;
    /// Dynamic, app-written line: u32 count of app threads sleeping on the event doorbell.
    pub const APP_WAITING: usize = 192;
}

/// Offsets inside one socket-table slot.
pub mod slot {
    /// u32, service: bumped (Release) after every change to this slot's service line.
    pub const SEQ: usize = 0;
    /// u32, service: readiness bits ([`Readiness`](crate::Readiness), epoll values).
    pub const READY: usize = 4;
    /// u64, service: total bytes the service has written into the rx ring (its producer index).
    pub const RX_HEAD: usize = 8;
    /// u64, service: total bytes the service has consumed from the tx ring.
    pub const TX_TAIL: usize = 16;
    /// u32, service: pending socket error (errno, 0 none), as `SO_ERROR` reports it.
    pub const ERROR: usize = 24;
    /// u32, service: protocol state code (for `stat`), service-defined.
    pub const STATE: usize = 28;
    /// u64, app: total bytes the app has consumed from the rx ring. The service never reads it.
    pub const RX_TAIL: usize = 64;
    /// u64, app: total bytes the app has written into the tx ring. The service never reads it.
    pub const TX_HEAD: usize = 72;
}

/// Region status values in the header's status word.
pub mod status {
    /// The service is serving the region.
    pub const RUNNING: u32 = 0;
    /// The service caught the region lying and stopped reading it.
    pub const POISONED: u32 = 1;
    /// The service shut the region down (service exit or reclaim).
    pub const SHUT_DOWN: u32 = 2;
}

/// The sizes a region is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegionConfig {
    /// Socket slots (1..=65536).
    pub sockets: u32,
    /// Command ring entries (power of two, 2..=65536).
    pub cmd_entries: u32,
    /// Completion ring entries (power of two, 2..=65536).
    pub cmp_entries: u32,
    /// Bytes of each socket's rx ring (power of two, 256..=16 MiB).
    pub rx_buf: u32,
    /// Bytes of each socket's tx ring (power of two, 256..=16 MiB).
    pub tx_buf: u32,
}

impl Default for RegionConfig {
    /// 64 sockets, 256-entry rings, 64 KiB per direction per socket (≈ 8 MiB).
    fn default() -> Self {
        RegionConfig {
            sockets: 64,
            cmd_entries: 256,
            cmp_entries: 256,
            rx_buf: 65536,
            tx_buf: 65536,
        }
    }
}

/// Why a configuration or a received header was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A size is zero, not a power of two where one is required, or outside its limits.
    BadConfig,
    /// The header's magic is not [`MAGIC`].
    BadMagic,
    /// The header's version is not [`VERSION`].
    BadVersion(u32),
    /// The header's sizes or offsets disagree with the layout they imply or with the mapping.
    Inconsistent,
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::BadConfig => f.write_str("region sizes out of range"),
            LayoutError::BadMagic => f.write_str("not a Joyride region (bad magic)"),
            LayoutError::BadVersion(v) => write!(f, "region layout version {v} unsupported"),
            LayoutError::Inconsistent => f.write_str("region header inconsistent"),
        }
    }
}

impl std::error::Error for LayoutError {}

/// A validated layout: every offset the code uses is computed here, once.
///
/// The service keeps its own `Layout` and never re-reads the header; the app decodes the
/// header with [`Layout::decode_header`], which recomputes the layout and compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The sizes this layout was computed from.
    pub config: RegionConfig,
    /// Offset of the command ring.
    pub cmd_ring_off: usize,
    /// Offset of the completion ring.
    pub cmp_ring_off: usize,
    /// Offset of the socket table.
    pub sock_table_off: usize,
    /// Offset of the first data ring.
    pub data_off: usize,
    /// Total size of the region.
    pub region_size: usize,
}

fn pow2_in(v: u32, lo: u32, hi: u32) -> bool {
    v.is_power_of_two() && (lo..=hi).contains(&v)
}

fn align_up(v: u64, a: u64) -> Option<u64> {
    Some(v.checked_add(a - 1)? & !(a - 1))
}

impl Layout {
    /// Computes the layout for `config`, or refuses sizes outside the documented limits.
    pub fn new(config: RegionConfig) -> Result<Layout, LayoutError> {
        let c = config;
        let ok = (1..=65536).contains(&c.sockets)
            && pow2_in(c.cmd_entries, 2, 65536)
            && pow2_in(c.cmp_entries, 2, 65536)
            && pow2_in(c.rx_buf, 256, 1 << 24)
            && pow2_in(c.tx_buf, 256, 1 << 24);
        if !ok {
            return Err(LayoutError::BadConfig);
        }
        let ring = |entries: u32| RING_HEADER as u64 + u64::from(entries) * ENTRY_SIZE as u64;
        let cmd = HEADER_SIZE as u64;
        let cmp = cmd + ring(c.cmd_entries);
        let table = cmp + ring(c.cmp_entries);
        let data = align_up(table + u64::from(c.sockets) * SLOT_SIZE as u64, PAGE as u64)
            .ok_or(LayoutError::BadConfig)?;
        let per_socket = u64::from(c.rx_buf) + u64::from(c.tx_buf);
        let total = data + u64::from(c.sockets) * per_socket; // ≤ 2^16 · 2^25 + small: no overflow
        let us = |v: u64| usize::try_from(v).map_err(|_| LayoutError::BadConfig);
        Ok(Layout {
            config,
            cmd_ring_off: us(cmd)?,
            cmp_ring_off: us(cmp)?,
            sock_table_off: us(table)?,
            data_off: us(data)?,
            region_size: us(total)?,
        })
    }

    /// The header's static part, as the service writes it.
    pub fn encode_header(&self) -> [u8; HEADER_STATIC] {
        let mut b = [0u8; HEADER_STATIC];
        let c = &self.config;
        put(&mut b, hdr::MAGIC, &MAGIC.to_le_bytes());
        put(&mut b, hdr::VERSION, &VERSION.to_le_bytes());
        put(&mut b, hdr::HEADER_SIZE, &(HEADER_SIZE as u32).to_le_bytes());
        put(&mut b, hdr::REGION_SIZE, &(self.region_size as u64).to_le_bytes());
        put(&mut b, hdr::ENTRY_SIZE, &(ENTRY_SIZE as u32).to_le_bytes());
        put(&mut b, hdr::CMD_ENTRIES, &c.cmd_entries.to_le_bytes());
        put(&mut b, hdr::CMP_ENTRIES, &c.cmp_entries.to_le_bytes());
        put(&mut b, hdr::SOCKETS, &c.sockets.to_le_bytes());
        put(&mut b, hdr::RX_BUF, &c.rx_buf.to_le_bytes());
        put(&mut b, hdr::TX_BUF, &c.tx_buf.to_le_bytes());
        put(&mut b, hdr::CMD_RING_OFF, &(self.cmd_ring_off as u64).to_le_bytes());
        put(&mut b, hdr::CMP_RING_OFF, &(self.cmp_ring_off as u64).to_le_bytes());
        put(&mut b, hdr::SOCK_TABLE_OFF, &(self.sock_table_off as u64).to_le_bytes());
        put(&mut b, hdr::DATA_OFF, &(self.data_off as u64).to_le_bytes());
        put(&mut b, hdr::SLOT_SIZE, &(SLOT_SIZE as u32).to_le_bytes());
        b
    }

    /// Parses a header's static part read from a mapping of `region_len` bytes: the sizes must
    /// give a valid layout whose every offset matches the header and which fits the mapping.
    pub fn decode_header(
        b: &[u8; HEADER_STATIC],
        region_len: usize,
    ) -> Result<Layout, LayoutError> {
        if le64(b, hdr::MAGIC) != MAGIC {
            return Err(LayoutError::BadMagic);
        }
        let version = le32(b, hdr::VERSION);
        if version != VERSION {
            return Err(LayoutError::BadVersion(version));
        }
        let config = RegionConfig {
            sockets: le32(b, hdr::SOCKETS),
            cmd_entries: le32(b, hdr::CMD_ENTRIES),
            cmp_entries: le32(b, hdr::CMP_ENTRIES),
            rx_buf: le32(b, hdr::RX_BUF),
            tx_buf: le32(b, hdr::TX_BUF),
        };
        let l = Layout::new(config).map_err(|_| LayoutError::Inconsistent)?;
        if l.encode_header() != *b || l.region_size > region_len {
            return Err(LayoutError::Inconsistent);
        }
        Ok(l)
    }

    /// Offset of socket `index`'s slot (caller checks `index < sockets`).
    pub fn slot_off(&self, index: u32) -> usize {
        self.sock_table_off + index as usize * SLOT_SIZE
    }

    /// Offset of socket `index`'s rx ring.
    pub fn rx_off(&self, index: u32) -> usize {
        let per = self.config.rx_buf as usize + self.config.tx_buf as usize;
        self.data_off + index as usize * per
    }

    /// Offset of socket `index`'s tx ring.
    pub fn tx_off(&self, index: u32) -> usize {
        self.rx_off(index) + self.config.rx_buf as usize
    }
}

fn put(b: &mut [u8], off: usize, v: &[u8]) {
    b[off..off + v.len()].copy_from_slice(v);
}

pub(crate) fn le32(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le64(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_offsets() {
        let l = Layout::new(RegionConfig::default()).unwrap();
        assert_eq!(l.cmd_ring_off, 256);
        assert_eq!(l.cmp_ring_off, 256 + 128 + 256 * 64);
        assert_eq!(l.sock_table_off, l.cmp_ring_off + 128 + 256 * 64);
        assert_eq!(l.data_off % 4096, 0);
        assert!(l.data_off >= l.sock_table_off + 64 * 128);
        assert_eq!(l.region_size, l.data_off + 64 * 131072);
        assert_eq!(l.tx_off(1), l.data_off + 131072 + 65536);
        assert_eq!(l.cmd_ring_off % CACHE_LINE, 0);
        assert_eq!(l.cmp_ring_off % CACHE_LINE, 0);
    }

    #[test]
    fn header_round_trip_and_rejections() {
        let l = Layout::new(RegionConfig::default()).unwrap();
        let h = l.encode_header();
        assert_eq!(Layout::decode_header(&h, l.region_size), Ok(l));
        assert_eq!(Layout::decode_header(&h, l.region_size - 1), Err(LayoutError::Inconsistent));
        let mut bad = h;
        bad[0] ^= 1;
        assert_eq!(Layout::decode_header(&bad, l.region_size), Err(LayoutError::BadMagic));
        let mut bad = h;
        bad[hdr::VERSION] = 3;
        assert_eq!(Layout::decode_header(&bad, l.region_size), Err(LayoutError::BadVersion(3)));
        let mut bad = h;
        bad[hdr::DATA_OFF] ^= 0x40;
        assert_eq!(Layout::decode_header(&bad, l.region_size), Err(LayoutError::Inconsistent));
        let mut bad = h;
        bad[120] = 1; // reserved byte
        assert_eq!(Layout::decode_header(&bad, l.region_size), Err(LayoutError::Inconsistent));
    }

    #[test]
    fn config_limits() {
        let d = RegionConfig::default();
        for bad in [
            RegionConfig { sockets: 0, ..d },
            RegionConfig { sockets: 65537, ..d },
            RegionConfig { cmd_entries: 3, ..d },
            RegionConfig { cmp_entries: 1, ..d },
            RegionConfig { rx_buf: 128, ..d },
            RegionConfig { tx_buf: 1 << 25, ..d },
        ] {
            assert_eq!(Layout::new(bad), Err(LayoutError::BadConfig), "{bad:?}");
        }
        let max = RegionConfig {
            sockets: 65536,
            cmd_entries: 65536,
            cmp_entries: 65536,
            rx_buf: 1 << 24,
            tx_buf: 1 << 24,
        };
        assert_eq!(Layout::new(max).unwrap().region_size as u64 >> 40, 2, "2 TiB worst case");
    }

    #[test]
    fn random_headers_never_panic() {
        let mut rng = joyride_base::SplitMix64::new(7);
        for _ in 0..2000 {
            let mut h = Layout::new(RegionConfig::default()).unwrap().encode_header();
            let i = (joyride_base::Rng::next_u64(&mut rng) % 128) as usize;
            h[i] = joyride_base::Rng::next_u64(&mut rng) as u8;
            let _ = Layout::decode_header(&h, 1 << 30);
        }
    }
}
