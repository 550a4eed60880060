//! # joyride-tcp — the TCP engine (sans-IO)
//!
//! Layer: above `joyride-ip`. No clock (time arrives as `now`), no OS, `#![forbid(unsafe_code)]`.
//!
//! - [`TcpStack`] is the socket table of one host: POSIX-shaped calls (`socket`, `bind`,
//!   `listen`, `accept`, `connect`, `send`, `recv`, `shutdown`, `close`, options), inbound
//!   segments through [`TcpStack::handle_segment`], outbound through
//!   [`TcpStack::poll_transmit`], timers through [`TcpStack::poll_at`].
//! - `conn/` is one connection: one struct per RFC 9293 state (DESIGN.md rule 2).
//! - [`TcpConfig`] holds every tunable, with Linux-like and FreeBSD-like profiles.
//! - The algorithms (sequence numbers, buffers, reassembly, RTO, congestion control, SACK
//!   scoreboard, ISN, SYN cookies) live in their own modules.
#![forbid(unsafe_code)]

pub mod assembler;
pub mod buffer;
pub mod cc;
pub mod config;
mod conn;
pub mod error;
pub mod rack;
pub mod rtt;
pub mod sack;
pub mod seq;
mod socket;
mod socket_types;
pub mod syncookie;

pub use config::{CcAlgorithm, IsnPolicy, TcpConfig};
pub use error::{TcpError, UnknownTunable};
pub use joyride_base::{Duration, Instant};
pub use socket::TcpStack;
pub use socket_types::{
    ConnEntry, Readiness, Shutdown, SockOpt, SockOptName, SocketId, State, TcpInfo,
};
pub mod isn;
