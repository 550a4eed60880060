//! The shim's one clock: deadlines for `SO_RCVTIMEO`/`SO_SNDTIMEO`, poll timeouts and the spin
//! budget. (Protocol code never reads a clock; this is the OS edge, like the service's clock
//! module.)

use std::time::{Duration, Instant};

/// Now, monotonic.
#[allow(clippy::disallowed_methods)] // the posix crate's single clock read
pub(crate) fn now() -> Instant {
    Instant::now()
}

/// A point in time after which a blocking call gives up (`None`: never).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// A deadline `d` from now (`None`: block forever).
    pub(crate) fn after(d: Option<Duration>) -> Deadline {
        Deadline(
            d.map(|d| now().checked_add(d).unwrap_or_else(|| now() + Duration::from_secs(1 << 30))),
        )
    }

    /// Time left (`None`: unlimited), saturating at zero.
    pub(crate) fn left(&self) -> Option<Duration> {
        self.0.map(|t| t.saturating_duration_since(now()))
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        self.left() == Some(Duration::ZERO)
    }

    /// Whether there is a deadline at all.
    pub(crate) fn is_some(&self) -> bool {
        self.0.is_some()
    }
}
