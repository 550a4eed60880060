//! The one module that reads the OS clock (and the one place the engine may sleep).
//!
//! Protocol code is sans-IO: time arrives as a [`joyride_base::Instant`] argument. The service
//! turns the monotonic OS clock into such instants, counted from the moment the [`Clock`] was
//! made, and remembers the wall-clock time of that moment for pcap timestamps.
#![allow(clippy::disallowed_methods)] // DESIGN.md §2: the service's single clock module.

use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

use joyride_base::{Duration, Instant};

/// A monotonic clock giving [`Instant`]s since its creation.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    start: StdInstant,
    unix_start_ns: u64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// Starts a clock at [`Instant::ZERO`] now.
    pub fn new() -> Clock {
        let unix_start_ns =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        Clock { start: StdInstant::now(), unix_start_ns }
    }

    /// The current instant (nanoseconds since the clock started).
    pub fn now(&self) -> Instant {
        Instant::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    /// Wall-clock time of `t`, in nanoseconds since the Unix epoch (for capture files).
    pub fn unix_nanos(&self, t: Instant) -> u64 {
        self.unix_start_ns.saturating_add(t.as_nanos())
    }

    /// Blocks the calling thread for `d` (the idle path of an engine without a wait fd).
    pub fn sleep(&self, d: Duration) {
        sleep(d);
    }
}

/// Blocks the calling thread for `d` (start-up retries, idle waits).
pub fn sleep(d: Duration) {
    std::thread::sleep(d);
}

/// A seed from the OS clock, for callers without a better entropy source.
pub fn clock_seed() -> u64 {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    (t as u64) ^ ((t >> 64) as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_sleeps() {
        let c = Clock::new();
        let a = c.now();
        c.sleep(Duration::from_millis(2));
        let b = c.now();
        assert!(b.saturating_duration_since(a) >= Duration::from_millis(2));
        assert!(c.unix_nanos(b) > 1_600_000_000_000_000_000);
    }
}
