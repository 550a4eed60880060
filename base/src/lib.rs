//! # joyride-base — the bottom layer
//!
//! Small types every other Joyride crate shares, with no OS dependency at all:
//!
//! - [`Instant`]: a point in time as nanoseconds since an arbitrary epoch. Protocol code never
//!   reads a clock; time is handed to it as `now: Instant` (sans-IO, DESIGN.md §3). The service
//!   gets `now` from its one clock module, the simulator from its virtual clock.
//! - [`Rng`]: the source of randomness protocol code may use (ISNs, ephemeral ports, jitter),
//!   passed in so that simulations replay exactly from a seed; [`SplitMix64`] is the seeded one.
//! - [`IdHasher`]: a fast hasher for maps keyed by ids Joyride assigns itself.
//!
//! Guarantees: `#![forbid(unsafe_code)]`, no allocation, no panics on any input.
#![forbid(unsafe_code)]
#![no_std]

mod hash;
mod rng;
mod time;

pub use hash::{BuildIdHasher, IdHasher};
pub use rng::{Rng, SplitMix64};
pub use time::{Duration, Instant};
