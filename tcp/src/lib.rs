//! # joyride-tcp — the TCP engine (sans-IO)
//!
//! Layer: above `joyride-ip`. No clock (time arrives as `now`), no OS, `#![forbid(unsafe_code)]`.
#![forbid(unsafe_code)]

pub mod seq;
pub mod assembler;
pub mod buffer;
pub mod rtt;
pub mod cc;
pub mod sack;
