//! The virtual clock: simulated time that only moves when the simulator says so.

use joyride_base::{Duration, Instant};

/// Virtual time. Starts at a chosen instant and only moves forward, by [`Clock::advance_to`] or
/// [`Clock::advance`]; nothing in the simulator reads the OS clock, so every run replays exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    now: Instant,
}

impl Clock {
    /// A clock reading `start`.
    pub const fn new(start: Instant) -> Self {
        Clock { now: start }
    }

    /// The current virtual time.
    pub const fn now(&self) -> Instant {
        self.now
    }

    /// Moves to `t` if it is later than now; an earlier `t` leaves the clock unchanged (time
    /// never runs backwards). Returns the (possibly unchanged) current time.
    pub fn advance_to(&mut self, t: Instant) -> Instant {
        if t > self.now {
            self.now = t;
        }
        self.now
    }

    /// Moves forward by `d` (saturating at [`Instant::FAR_FUTURE`]).
    pub fn advance(&mut self, d: Duration) -> Instant {
        self.now += d;
        self.now
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new(Instant::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_only() {
        let mut c = Clock::new(Instant::from_millis(10));
        assert_eq!(c.advance_to(Instant::from_millis(5)), Instant::from_millis(10));
        assert_eq!(c.advance_to(Instant::from_millis(15)), Instant::from_millis(15));
        assert_eq!(c.advance(Duration::from_millis(5)), Instant::from_millis(20));
        assert_eq!(c.now(), Instant::from_millis(20));
    }
}
