//! # joyride-sim — deterministic simulator (virtual clock, seeded links, pcap)
//!
//! Everything here runs in virtual time ([`clock::Clock`]); randomness comes from seeds, so any
//! run — a property-test case or a conformance script — replays exactly.
//!
//! - [`clock`]: the virtual clock.
//! - [`link`]: one-way links with seeded delay, jitter, bandwidth, loss, duplication,
//!   reordering and bit corruption.
//! - [`pcap`]: a classic libpcap writer, so a failing run opens in Wireshark.
#![forbid(unsafe_code)]

pub mod clock;
pub mod link;
pub mod net;
pub mod packetdrill;
pub mod pcap;
pub mod wire;

pub use clock::Clock;
pub use link::{Link, LinkConfig, LinkStats};
pub use pcap::{LinkType, PcapWriter};
