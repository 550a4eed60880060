//! NewReno: RFC 5681 slow start and congestion avoidance (with RFC 3465 byte counting) and the
//! RFC 5681 §3.2 / RFC 6582 §3.2 window reduction on entering fast recovery.

use super::Window;
use core::time::Duration;
use joyride_base::Instant;

/// RFC 5681 / RFC 6582 congestion control state.
#[derive(Clone, Debug)]
pub struct NewReno {
    w: Window,
}

impl NewReno {
    /// Initial state: `cwnd` per RFC 6928 for `initial_window_segments`, `ssthresh` infinite.
    pub fn new(mss: u32, initial_window_segments: u32) -> Self {
        NewReno { w: Window::new(mss, initial_window_segments) }
    }

    /// Congestion window, bytes.
    pub fn cwnd(&self) -> u32 {
        self.w.cwnd
    }

    /// Slow-start threshold, bytes.
    pub fn ssthresh(&self) -> u32 {
        self.w.ssthresh
    }

    /// Sender MSS, bytes.
    pub fn mss(&self) -> u32 {
        self.w.mss
    }

    /// Whether in fast recovery.
    pub fn in_recovery(&self) -> bool {
        self.w.in_recovery
    }

    /// See [`super::CongestionControl::on_ack`].
    pub fn on_ack(
        &mut self,
        _now: Instant,
        acked: u32,
        in_flight_before: u32,
        _rtt: Option<Duration>,
    ) {
        if !self.w.ack_may_grow(acked, in_flight_before) {
            return;
        }
        let mut rest = acked;
        if self.w.cwnd < self.w.ssthresh {
            // RFC 5681 §3.1: slow start while cwnd < ssthresh.
            rest = self.w.slow_start(acked);
        }
        if rest > 0 {
            // RFC 5681 §3.1 congestion avoidance (eq. 3 via RFC 3465 byte counting).
            self.w.reno_avoidance(rest);
        }
    }

    /// See [`super::CongestionControl::on_loss`].
    pub fn on_loss(&mut self, _now: Instant, in_flight: u32) {
        // RFC 5681 §3.2 step 2 / RFC 6582 §3.2 step 2: ssthresh = max(FlightSize / 2, 2*SMSS)
        // (eq. 4); RFC 6675 §5 step 4: cwnd = ssthresh.
        let ss = self.w.floor(in_flight / 2);
        self.w.enter_recovery(ss);
    }

    /// See [`super::CongestionControl::on_recovery_exit`].
    pub fn on_recovery_exit(&mut self, _now: Instant) {
        self.w.exit_recovery();
    }

    /// See [`super::CongestionControl::on_rto`].
    pub fn on_rto(&mut self, _now: Instant, in_flight: u32) {
        // RFC 5681 §3.1 eq. 4 on the first timeout, then cwnd = LW.
        let ss = self.w.floor(in_flight / 2);
        self.w.rto(ss);
    }

    /// See [`super::CongestionControl::set_mss`].
    pub fn set_mss(&mut self, mss: u32) {
        self.w.set_mss(mss);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::one_rtt;
    use super::super::{CcAlgorithm, CongestionControl};
    use joyride_base::{Duration, Instant};

    #[test]
    fn loss_halves_then_linear_growth() {
        let mut cc = CongestionControl::new(CcAlgorithm::NewReno, 1000, 10);
        let mut now = Instant::ZERO;
        let rtt = Duration::from_millis(20);
        for _ in 0..3 {
            one_rtt(&mut cc, &mut now, rtt);
        }
        assert_eq!(cc.cwnd(), 80_000);
        cc.on_loss(now, 80_000);
        assert_eq!(cc.ssthresh(), 40_000);
        assert_eq!(cc.cwnd(), 40_000);
        assert!(cc.in_recovery());
        // ACKs during recovery do not grow the window.
        cc.on_ack(now, 1000, 40_000, Some(rtt));
        assert_eq!(cc.cwnd(), 40_000);
        cc.on_recovery_exit(now);
        assert!(!cc.in_recovery());
        // Congestion avoidance: +1 SMSS per RTT.
        for i in 1..=5 {
            one_rtt(&mut cc, &mut now, rtt);
            assert_eq!(cc.cwnd(), 40_000 + i * 1000);
        }
    }

    #[test]
    fn loss_floor_two_mss() {
        let mut cc = CongestionControl::new(CcAlgorithm::NewReno, 1000, 10);
        cc.on_loss(Instant::ZERO, 1000);
        assert_eq!(cc.ssthresh(), 2000);
        assert_eq!(cc.cwnd(), 2000);
    }

    #[test]
    fn slow_start_stops_at_ssthresh() {
        let mut cc = CongestionControl::new(CcAlgorithm::NewReno, 1000, 10);
        cc.on_rto(Instant::ZERO, 9000); // ssthresh 4500
        let mut now = Instant::ZERO;
        for _ in 0..4 {
            one_rtt(&mut cc, &mut now, Duration::from_millis(10));
        }
        assert!(!cc.in_slow_start());
        assert!(cc.cwnd() <= 4500 + 1000, "cwnd {} overshot ssthresh", cc.cwnd());
    }
}
