//! Congestion control: RFC 5681/6582 NewReno and RFC 9438 CUBIC behind one enum.
//!
//! [`CongestionControl`] dispatches by `match` (no trait objects) to [`NewReno`] or [`Cubic`],
//! chosen per socket by [`CcAlgorithm`] (CUBIC by default, as in Linux and FreeBSD 14).
//! Shared pieces live here: the RFC 6928 initial window, slow start with RFC 3465 appropriate
//! byte counting (L = 2·SMSS), and the "is the sender cwnd-limited" test.
//!
//! The engine calls, all in bytes:
//! - [`CongestionControl::on_ack`] for every ACK that advances `SND.UNA` outside loss recovery
//!   (ACKs during recovery are ignored here: the window is governed by RFC 6675 `pipe`);
//! - [`CongestionControl::on_loss`] when it enters fast recovery (RFC 5681 §3.2 step 2,
//!   RFC 6675 §5 step 4) — once per window of data, not per lost segment;
//! - [`CongestionControl::on_recovery_exit`] when a cumulative ACK covers the recovery point;
//! - [`CongestionControl::on_rto`] when the retransmission timer fires.
//!
//! During recovery `cwnd == ssthresh` (no RFC 5681-style inflation); the engine's sending rule
//! is `pipe < cwnd` (RFC 6675 §5), and for a peer without SACK it estimates `pipe` by counting
//! duplicate ACKs as departed segments (RFC 6582 §3.2 step 4 in another form).

mod cubic;
mod newreno;

pub use cubic::Cubic;
pub use newreno::NewReno;

use core::time::Duration;
use joyride_base::Instant;

/// Which algorithm a socket uses (`TCP_CONGESTION`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CcAlgorithm {
    /// RFC 5681 congestion avoidance with RFC 6582 NewReno recovery.
    NewReno,
    /// RFC 9438 CUBIC (the default).
    #[default]
    Cubic,
}

/// A socket's congestion controller.
#[derive(Clone, Debug)]
pub enum CongestionControl {
    /// RFC 5681 / RFC 6582.
    NewReno(NewReno),
    /// RFC 9438.
    Cubic(Cubic),
}

macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            CongestionControl::NewReno($c) => $e,
            CongestionControl::Cubic($c) => $e,
        }
    };
}

impl CongestionControl {
    /// A controller for `algo` with sender MSS `mss` (bytes, > 0) and an initial window of
    /// `initial_window_segments` (10 for RFC 6928, see [`initial_window`]).
    pub fn new(algo: CcAlgorithm, mss: u32, initial_window_segments: u32) -> Self {
        match algo {
            CcAlgorithm::NewReno => Self::NewReno(NewReno::new(mss, initial_window_segments)),
            CcAlgorithm::Cubic => Self::Cubic(Cubic::new(mss, initial_window_segments)),
        }
    }

    /// Which algorithm this is.
    pub fn algorithm(&self) -> CcAlgorithm {
        match self {
            Self::NewReno(_) => CcAlgorithm::NewReno,
            Self::Cubic(_) => CcAlgorithm::Cubic,
        }
    }

    /// The congestion window, bytes.
    pub fn cwnd(&self) -> u32 {
        dispatch!(self, c => c.cwnd())
    }

    /// The slow-start threshold, bytes (`u32::MAX` until the first loss, RFC 5681 §3.1).
    pub fn ssthresh(&self) -> u32 {
        dispatch!(self, c => c.ssthresh())
    }

    /// The sender MSS in use, bytes.
    pub fn mss(&self) -> u32 {
        dispatch!(self, c => c.mss())
    }

    /// Whether the controller is in fast recovery (between `on_loss` and `on_recovery_exit`).
    pub fn in_recovery(&self) -> bool {
        dispatch!(self, c => c.in_recovery())
    }

    /// Whether `cwnd < ssthresh` (RFC 5681 §3.1 slow start).
    pub fn in_slow_start(&self) -> bool {
        self.cwnd() < self.ssthresh()
    }

    /// An ACK acknowledged `acked_bytes` new bytes; `in_flight_before` bytes were outstanding
    /// before it; `rtt` is the current smoothed RTT if known. Grows the window (slow start or
    /// congestion avoidance) unless in recovery or not cwnd-limited.
    pub fn on_ack(
        &mut self,
        now: Instant,
        acked_bytes: u32,
        in_flight_before: u32,
        rtt: Option<Duration>,
    ) {
        dispatch!(self, c => c.on_ack(now, acked_bytes, in_flight_before, rtt))
    }

    /// Loss detected by duplicate ACKs / SACK (RFC 5681 §3.2, RFC 6675 §5): reduce `ssthresh`
    /// and `cwnd` and enter recovery. `in_flight` is FlightSize at detection.
    pub fn on_loss(&mut self, now: Instant, in_flight: u32) {
        dispatch!(self, c => c.on_loss(now, in_flight))
    }

    /// Recovery ended (RFC 6582 §3.2 step 3 "full acknowledgment"): `cwnd = ssthresh`.
    pub fn on_recovery_exit(&mut self, now: Instant) {
        dispatch!(self, c => c.on_recovery_exit(now))
    }

    /// The retransmission timer fired (RFC 5681 §3.1): `cwnd` = loss window (1 SMSS).
    pub fn on_rto(&mut self, now: Instant, in_flight: u32) {
        dispatch!(self, c => c.on_rto(now, in_flight))
    }

    /// The sender MSS changed (negotiation, PMTU): before any ACK or loss the initial window is
    /// recomputed; afterwards the window keeps its size in segments.
    pub fn set_mss(&mut self, mss: u32) {
        dispatch!(self, c => c.set_mss(mss))
    }
}

/// RFC 6928 §2: `IW = min(10*MSS, max(2*MSS, 14600))`, generalised to `n` segments as
/// `min(n*MSS, max(2*MSS, n*1460))` (n = 10 is the RFC's formula). `n` is at least 1.
pub fn initial_window(mss: u32, segments: u32) -> u32 {
    let n = segments.max(1);
    n.saturating_mul(mss).min((2 * mss).max(n.saturating_mul(1460)))
}

/// The window state every algorithm shares (bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) cwnd: u32,
    pub(crate) ssthresh: u32,
    pub(crate) mss: u32,
    iw_segments: u32,
    /// RFC 3465 §2.1 `bytes_acked` counter for congestion avoidance.
    ca_bytes: u32,
    pub(crate) in_recovery: bool,
    /// An RTO fired and no new data was acknowledged since (RFC 5681 §3.1: ssthresh is held
    /// on repeated timeouts).
    rto_pending: bool,
    /// Slow start following an RTO: RFC 3465 §2.3 uses L = 1*SMSS there.
    rto_slow_start: bool,
    /// No ACK or loss yet: `set_mss` recomputes the initial window.
    pristine: bool,
}

impl Window {
    pub(crate) fn new(mss: u32, iw_segments: u32) -> Self {
        let mss = mss.max(1);
        Window {
            cwnd: initial_window(mss, iw_segments),
            // RFC 5681 §3.1: "The initial value of ssthresh SHOULD be set arbitrarily high".
            ssthresh: u32::MAX,
            mss,
            iw_segments,
            ca_bytes: 0,
            in_recovery: false,
            rto_pending: false,
            rto_slow_start: false,
            pristine: true,
        }
    }

    /// Common ACK prologue: returns false when the window must not grow.
    pub(crate) fn ack_may_grow(&mut self, acked: u32, in_flight_before: u32) -> bool {
        if acked == 0 {
            return false;
        }
        self.pristine = false;
        self.rto_pending = false;
        if self.in_recovery {
            return false;
        }
        // Grow only when the window was actually used (RFC 7661 §4.1 "cwnd-limited"; Linux's
        // tcp_is_cwnd_limited): no room for another full segment, or in slow start at least
        // half the window outstanding.
        let slow = self.cwnd < self.ssthresh;
        in_flight_before.saturating_add(self.mss) > self.cwnd
            || (slow && in_flight_before.saturating_mul(2) >= self.cwnd)
    }

    /// Slow start step (RFC 5681 §3.1 with RFC 3465 §2.2 ABC, L = 2*SMSS, or 1*SMSS after an
    /// RTO per §2.3), capped at `ssthresh`. Returns the acked bytes left over for congestion
    /// avoidance (non-zero only when the cap was hit).
    pub(crate) fn slow_start(&mut self, acked: u32) -> u32 {
        let l = if self.rto_slow_start { self.mss } else { 2 * self.mss };
        let inc = acked.min(l);
        let room = self.ssthresh - self.cwnd;
        if inc < room {
            self.cwnd += inc;
            0
        } else {
            self.cwnd = self.ssthresh;
            self.rto_slow_start = false;
            acked - room.min(acked)
        }
    }

    /// RFC 5681 §3.1 congestion avoidance by RFC 3465 §2.1 byte counting: one SMSS per
    /// cwnd of acknowledged bytes.
    pub(crate) fn reno_avoidance(&mut self, acked: u32) {
        self.ca_bytes = self.ca_bytes.saturating_add(acked);
        if self.ca_bytes >= self.cwnd {
            self.ca_bytes -= self.cwnd;
            self.cwnd = self.cwnd.saturating_add(self.mss);
        }
    }

    /// Enter fast recovery with the given new ssthresh (already floored at 2*SMSS).
    pub(crate) fn enter_recovery(&mut self, ssthresh: u32) {
        self.pristine = false;
        self.ssthresh = ssthresh;
        self.cwnd = ssthresh;
        self.ca_bytes = 0;
        self.in_recovery = true;
        self.rto_slow_start = false;
    }

    /// RFC 6582 §3.2 step 3 option (2): "Set cwnd to ssthresh".
    pub(crate) fn exit_recovery(&mut self) {
        if self.in_recovery {
            self.in_recovery = false;
            self.cwnd = self.ssthresh;
        }
    }

    /// RFC 5681 §3.1: on RTO, ssthresh per `new_ssthresh` unless this is a repeated timeout
    /// of the same data ("ssthresh is held constant"), then `cwnd = LW = 1 SMSS`. Returns
    /// whether ssthresh was updated.
    pub(crate) fn rto(&mut self, new_ssthresh: u32) -> bool {
        self.pristine = false;
        let first = !self.rto_pending;
        if first {
            self.ssthresh = new_ssthresh;
        }
        self.rto_pending = true;
        self.rto_slow_start = true;
        self.in_recovery = false;
        self.ca_bytes = 0;
        // RFC 5681 §3.1: "the congestion window MUST be set to no more than the loss window,
        // LW, which equals 1 full-sized segment".
        self.cwnd = self.mss;
        first
    }

    pub(crate) fn set_mss(&mut self, mss: u32) {
        let mss = mss.max(1);
        if self.pristine {
            self.cwnd = initial_window(mss, self.iw_segments);
        } else {
            let segs = (self.cwnd / self.mss).max(1);
            self.cwnd = segs.saturating_mul(mss);
        }
        self.mss = mss;
    }

    /// RFC 5681 eq. 4 floor: never below 2*SMSS after a loss.
    pub(crate) fn floor(&self, bytes: u32) -> u32 {
        bytes.max(2 * self.mss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_window_rfc6928() {
        assert_eq!(initial_window(1460, 10), 14600);
        assert_eq!(initial_window(536, 10), 5360);
        assert_eq!(initial_window(9000, 10), 18000); // max(2*MSS, 14600) = 18000
        assert_eq!(initial_window(4000, 10), 14600);
        assert_eq!(initial_window(1460, 4), 5840);
        assert_eq!(initial_window(4000, 4), 8000);
        assert_eq!(initial_window(1460, 0), 1460);
    }

    /// Deliver one window of ACKs (one per MSS), the sender keeping the window full (each ACK
    /// releases new data, so a full window is in flight before each), and advance time by `rtt`.
    pub(crate) fn one_rtt(cc: &mut CongestionControl, now: &mut Instant, rtt: Duration) {
        let mss = cc.mss();
        let segs = cc.cwnd() / mss;
        let step = rtt / segs.max(1);
        for _ in 0..segs {
            let in_flight = cc.cwnd() / mss * mss;
            cc.on_ack(*now, mss, in_flight, Some(rtt));
            *now += step;
        }
    }

    #[test]
    fn slow_start_doubles_per_rtt_both() {
        for algo in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
            let mut cc = CongestionControl::new(algo, 1000, 10);
            let mut now = Instant::from_millis(1);
            assert_eq!(cc.cwnd(), 10_000);
            one_rtt(&mut cc, &mut now, Duration::from_millis(50));
            assert_eq!(cc.cwnd(), 20_000, "{algo:?}");
            one_rtt(&mut cc, &mut now, Duration::from_millis(50));
            assert_eq!(cc.cwnd(), 40_000, "{algo:?}");
            assert!(cc.in_slow_start());
        }
    }

    #[test]
    fn abc_limit_two_segments() {
        let mut cc = CongestionControl::new(CcAlgorithm::NewReno, 1000, 10);
        // A stretch ACK of 8 segments grows cwnd by at most 2 SMSS (RFC 3465 L = 2).
        cc.on_ack(Instant::ZERO, 8000, 10_000, None);
        assert_eq!(cc.cwnd(), 12_000);
    }

    #[test]
    fn not_cwnd_limited_no_growth() {
        let mut cc = CongestionControl::new(CcAlgorithm::Cubic, 1000, 10);
        cc.on_ack(Instant::ZERO, 1000, 2000, None);
        assert_eq!(cc.cwnd(), 10_000, "application-limited sender must not grow cwnd");
    }

    #[test]
    fn rto_gives_one_mss_and_holds_ssthresh() {
        for algo in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
            let mut cc = CongestionControl::new(algo, 1000, 10);
            cc.on_rto(Instant::ZERO, 10_000);
            assert_eq!(cc.cwnd(), 1000, "{algo:?}");
            let ss = cc.ssthresh();
            assert!((2000..10_000).contains(&ss), "{algo:?} {ss}");
            // Repeated timeout of the same data: ssthresh held (RFC 5681 §3.1).
            cc.on_rto(Instant::ZERO, 1000);
            assert_eq!(cc.ssthresh(), ss);
            assert_eq!(cc.cwnd(), 1000);
            // After an RTO slow start grows by 1 SMSS per ACK (RFC 3465 §2.3).
            cc.on_ack(Instant::ZERO, 3000, 1000, None);
            assert_eq!(cc.cwnd(), 2000);
            assert_eq!(cc.algorithm(), algo);
        }
    }

    #[test]
    fn set_mss_before_and_after_traffic() {
        let mut cc = CongestionControl::new(CcAlgorithm::Cubic, 536, 10);
        cc.set_mss(1460);
        assert_eq!(cc.cwnd(), 14_600);
        cc.on_loss(Instant::ZERO, 14_600);
        let segs = cc.cwnd() / 1460;
        cc.set_mss(1000);
        assert_eq!(cc.cwnd(), segs * 1000);
        assert_eq!(cc.mss(), 1000);
    }
}
