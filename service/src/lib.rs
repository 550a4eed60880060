//! # joyride-service — the engine loop and the `joyrided` binary
//!
//! Layer: the top of the stack (DESIGN.md §2). It may use every crate below it and is the only
//! place that reads the OS clock ([`clock`]). `#![forbid(unsafe_code)]`: syscalls happen in
//! `joyride-drivers`.
//!
//! - [`engine::Engine`]: one NIC queue, the IPv4 [`joyride_ip::host::Host`] and the TCP socket
//!   table [`joyride_tcp::TcpStack`], joined by [`engine::Engine::poll`]; an in-process socket
//!   API through [`engine::Engine::tcp`] and the UDP helpers. The shared-memory IPC for
//!   applications goes in front of it next.
//! - [`backend`]: opening AF_PACKET / TAP / shared-memory backends from a spec, with readable
//!   errors; the fault-injecting wrapper.
//! - [`apps`]: the built-in test applications (`--app echo:7`, `sink`, `source`, `http-get`,
//!   `udp-echo`, `udp-client`, `connect-loop`).
//! - [`ipc_server`]: the application side — the Unix socket `libjoyride.so` connects to, one
//!   shared-memory region per process, commands executed against the engine's sockets.
//! - [`config`]: command-line specs and the TOML file; [`pcap`]: capture files.
#![forbid(unsafe_code)]

pub mod apps;
pub mod backend;
pub mod clock;
pub mod config;
pub mod engine;
pub mod ipc_server;
pub mod pcap;

pub use clock::Clock;
pub use engine::{Engine, EngineConfig, EngineCounters, EngineError};
