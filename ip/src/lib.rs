//! # joyride-ip — wire formats and the host's IP logic
//!
//! Layer: directly above `joyride-base`, below `joyride-tcp` and the service. No OS, no clock,
//! `#![forbid(unsafe_code)]`. The wire formats never allocate; [`host`] (ARP, IPv4 input and
//! output, reassembly, ICMP, UDP sockets) allocates its bounded tables when it is created.
//!
//! Every wire format follows one shape (DESIGN.md rule 1, after smoltcp's `wire/`):
//!
//! - a **byte view** `XxxPacket<T: AsRef<[u8]>>` over a buffer: `new_checked` validates lengths
//!   once, after which no getter panics (fuzz targets in `fuzz/` prove it); setters exist when
//!   `T: AsMut<[u8]>`;
//! - a **value** `XxxRepr` with `parse` (from a view, checking checksums and semantics),
//!   `buffer_len` and `emit` (into a view).
//!
//! Checksum offload is a value ([`Checksum`]) passed to `parse`/`emit`, never a global.
//! Malformed input yields a typed [`Error`], never a panic or an out-of-bounds read.
#![forbid(unsafe_code)]
#![no_std]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod host;
pub mod icmpv4;
pub mod ipv4;
pub mod tcp;
pub mod udp;

pub use core::net::Ipv4Addr;

use core::fmt;

/// Why a buffer was rejected. `Copy`, so the hot path can count and drop without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field inside it claims.
    Truncated,
    /// A length field is larger than the format allows or inconsistent with another one.
    BadLength,
    /// The version field is not the one this parser handles (IPv4 with version ≠ 4).
    BadVersion,
    /// A header-length field is below the minimum header size (IPv4 IHL < 5, TCP offset < 5).
    BadHeaderLen,
    /// The checksum does not verify.
    BadChecksum,
    /// An option or field is malformed (an option length that overruns its header, say).
    Malformed,
    /// Well-formed but not something Joyride handles (ARP for another hardware type, say).
    Unsupported,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::BadLength => "bad length field",
            Error::BadVersion => "wrong IP version",
            Error::BadHeaderLen => "bad header length",
            Error::BadChecksum => "bad checksum",
            Error::Malformed => "malformed header or option",
            Error::Unsupported => "unsupported protocol variant",
        })
    }
}

impl core::error::Error for Error {}

/// The result of parsing.
pub type Result<T> = core::result::Result<T, Error>;

/// Who handles a checksum: passed to `parse` and `emit` as a value (DESIGN.md rule 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Checksum {
    /// Software computes it on emit and verifies it on parse.
    #[default]
    Software,
    /// The NIC verified it (receive) or will fill it in (transmit): parse skips the check and
    /// emit leaves the field for the NIC (for TCP/UDP it holds the pseudo-header sum, as NICs
    /// with partial offload expect).
    Offloaded,
}
