//! # joyride-sim — deterministic simulator (virtual clock, seeded links, pcap)
#![forbid(unsafe_code)]
