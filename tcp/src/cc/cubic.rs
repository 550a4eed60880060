//! CUBIC congestion control (RFC 9438).
//!
//! Window growth in congestion avoidance follows `W_cubic(t) = C*(t-K)^3 + W_max` (§4.2,
//! C = 0.4, windows in segments, t in seconds since the congestion-avoidance epoch began, taken
//! from the `now` the engine passes in). It is concave below `W_max` (§4.4) and convex above
//! (§4.5), but never slower than the Reno-friendly estimate `W_est` (§4.3). On loss the window
//! shrinks by beta = 0.7 (§4.6) and `W_max` is lowered further when the flow is losing ground
//! (fast convergence, §4.7). Slow start is RFC 5681's with RFC 3465 byte counting (§4.10); HyStart
//! and spurious-loss undo (§4.9) are not implemented.

use super::Window;
use core::time::Duration;
use joyride_base::Instant;

/// RFC 9438 §5.1: C = 0.4.
const C: f64 = 0.4;
/// RFC 9438 §4.6: beta_cubic = 0.7.
const BETA: f64 = 0.7;
/// RFC 9438 §4.3: alpha_cubic = 3 * (1 - beta) / (1 + beta).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// RFC 9438 CUBIC state.
#[derive(Clone, Debug)]
pub struct Cubic {
    w: Window,
    /// Window before the last reduction, after fast convergence (segments).
    w_max: f64,
    /// `cwnd` just before the last reduction (segments), `cwnd_prior` in §4.6/§4.3.
    cwnd_prior: f64,
    /// Time for `W_cubic` to reach `W_max` (seconds).
    k: f64,
    /// Start of the current congestion-avoidance epoch; `None` until the first CA ACK.
    epoch_start: Option<Instant>,
    /// Reno-friendly window estimate (segments), §4.3.
    w_est: f64,
    /// The first CA epoch after an RTO uses K = 0, W_max = cwnd at its start (§4.8).
    after_rto: bool,
    /// Fractional bytes of window growth not yet applied.
    frac: f64,
    /// Last known smoothed RTT.
    rtt: Duration,
    /// Fast convergence (§4.7) enabled.
    fast_convergence: bool,
}

impl Cubic {
    /// Initial state: `cwnd` per RFC 6928 for `initial_window_segments`, `ssthresh` infinite.
    pub fn new(mss: u32, initial_window_segments: u32) -> Self {
        Cubic {
            w: Window::new(mss, initial_window_segments),
            w_max: 0.0,
            cwnd_prior: 0.0,
            k: 0.0,
            epoch_start: None,
            w_est: 0.0,
            after_rto: false,
            frac: 0.0,
            rtt: Duration::ZERO,
            fast_convergence: true,
        }
    }

    /// Turn RFC 9438 §4.7 fast convergence on or off (on by default).
    pub fn set_fast_convergence(&mut self, on: bool) {
        self.fast_convergence = on;
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

    /// `W_max` in segments (for tests and `TCP_INFO`-style statistics).
    pub fn w_max_segments(&self) -> f64 {
        self.w_max
    }

    /// `K` in seconds (for tests and statistics).
    pub fn k_seconds(&self) -> f64 {
        self.k
    }

    fn segs(&self, bytes: u32) -> f64 {
        f64::from(bytes) / f64::from(self.w.mss)
    }

    /// RFC 9438 §4.2 eq. 1: `W_cubic(t) = C*(t-K)^3 + W_max` (segments).
    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.k;
        C * d * d * d + self.w_max
    }

    /// See [`super::CongestionControl::on_ack`].
    pub fn on_ack(
        &mut self,
        now: Instant,
        acked: u32,
        in_flight_before: u32,
        rtt: Option<Duration>,
    ) {
        if let Some(r) = rtt {
            self.rtt = r;
        }
        if !self.w.ack_may_grow(acked, in_flight_before) {
            return;
        }
        let mut rest = acked;
        if self.w.cwnd < self.w.ssthresh {
            // RFC 9438 §4.10: slow start as in RFC 5681.
            rest = self.w.slow_start(acked);
            if rest == 0 {
                return;
            }
        }
        self.avoidance(now, rest);
    }

    /// Congestion avoidance, RFC 9438 §4.2–§4.5.
    fn avoidance(&mut self, now: Instant, acked: u32) {
        let cwnd = self.segs(self.w.cwnd);
        let epoch = match self.epoch_start {
            Some(e) => e,
            None => {
                // A new congestion-avoidance stage begins.
                self.epoch_start = Some(now);
                if self.after_rto || self.w_max <= cwnd {
                    // RFC 9438 §4.8: first CA stage after a timeout: K = 0 and W_max = cwnd at
                    // its start; likewise when cwnd already exceeds W_max (§4.2 note on K).
                    self.w_max = cwnd;
                    self.k = 0.0;
                } else {
                    // RFC 9438 §4.2 eq. 2: K = cubic_root((W_max - cwnd_epoch) / C).
                    self.k = ((self.w_max - cwnd) / C).cbrt();
                }
                self.after_rto = false;
                // RFC 9438 §4.3: W_est = cwnd_epoch at the start of the stage.
                self.w_est = cwnd;
                now
            }
        };
        let t = now.saturating_duration_since(epoch).as_secs_f64();
        let segs_acked = self.segs(acked);

        // RFC 9438 §4.3: W_est += alpha_cubic * segments_acked / cwnd; alpha_cubic becomes 1 once
        // W_est reaches cwnd_prior.
        let alpha = if self.w_est >= self.cwnd_prior { 1.0 } else { ALPHA };
        self.w_est += alpha * segs_acked / cwnd;

        let mss = f64::from(self.w.mss);
        if self.w_cubic(t) < self.w_est {
            // RFC 9438 §4.3: Reno-friendly region: "cwnd SHOULD be set to W_est".
            let target = (self.w_est * mss).min(f64::from(u32::MAX)) as u32;
            self.w.cwnd = self.w.cwnd.max(target);
            return;
        }
        // RFC 9438 §4.2: target = W_cubic(t + RTT), clamped to [cwnd, 1.5*cwnd].
        let target = self.w_cubic(t + self.rtt.as_secs_f64()).clamp(cwnd, 1.5 * cwnd);
        // RFC 9438 §4.4/§4.5: cwnd += (target - cwnd) / cwnd per acknowledged segment.
        self.frac += (target - cwnd) / cwnd * f64::from(acked);
        if self.frac >= 1.0 {
            let inc = self.frac.floor();
            self.frac -= inc;
            self.w.cwnd = self.w.cwnd.saturating_add(inc.min(f64::from(u32::MAX)) as u32);
        }
    }

    /// See [`super::CongestionControl::on_loss`].
    pub fn on_loss(&mut self, _now: Instant, in_flight: u32) {
        let cwnd = self.segs(self.w.cwnd);
        // RFC 9438 §4.7 fast convergence: a flow reducing below its previous W_max releases
        // bandwidth: W_max = cwnd * (1 + beta) / 2; otherwise W_max = cwnd.
        self.w_max = if self.fast_convergence && cwnd < self.w_max {
            cwnd * (1.0 + BETA) / 2.0
        } else {
            cwnd
        };
        // RFC 9438 §4.6: cwnd_prior = cwnd; ssthresh = flight_size * beta_cubic, at least
        // 2 segments; cwnd = ssthresh.
        self.cwnd_prior = cwnd;
        let ss = self.w.floor((f64::from(in_flight) * BETA) as u32);
        self.w.enter_recovery(ss);
        self.epoch_start = None;
        self.frac = 0.0;
    }

    /// See [`super::CongestionControl::on_recovery_exit`].
    pub fn on_recovery_exit(&mut self, _now: Instant) {
        self.w.exit_recovery();
    }

    /// See [`super::CongestionControl::on_rto`].
    pub fn on_rto(&mut self, _now: Instant, in_flight: u32) {
        // RFC 9438 §4.8: "CUBIC follows Reno to reduce cwnd [RFC5681], but sets ssthresh using
        // beta_cubic (same as in Section 4.6)".
        let ss = self.w.floor((f64::from(in_flight) * BETA) as u32);
        if self.w.rto(ss) {
            self.cwnd_prior = self.segs(in_flight);
        }
        self.after_rto = true;
        self.epoch_start = None;
        self.frac = 0.0;
    }

    /// See [`super::CongestionControl::set_mss`].
    pub fn set_mss(&mut self, mss: u32) {
        self.w.set_mss(mss);
        // Segment-denominated state (W_max, W_est) stays valid; restart the epoch.
        self.epoch_start = None;
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::one_rtt;
    use super::super::{CcAlgorithm, CongestionControl};
    use super::*;

    const MSS: u32 = 1000;

    /// A CUBIC controller that just lost at `segs` segments and left recovery.
    fn after_loss(segs: u32, now: Instant) -> CongestionControl {
        let mut cc = CongestionControl::new(CcAlgorithm::Cubic, MSS, segs);
        cc.on_loss(now, segs * MSS);
        cc.on_recovery_exit(now);
        cc
    }

    #[test]
    fn loss_reduces_by_beta() {
        let now = Instant::from_millis(10);
        let cc = after_loss(100, now);
        assert_eq!(cc.ssthresh(), 70_000);
        assert_eq!(cc.cwnd(), 70_000);
        let CongestionControl::Cubic(c) = &cc else { unreachable!() };
        assert_eq!(c.w_max_segments(), 100.0);
    }

    #[test]
    fn fast_convergence_lowers_w_max() {
        let now = Instant::ZERO;
        let mut cc = after_loss(100, now);
        // Lose again at 70 segments, below W_max = 100: W_max = 70 * 0.85 = 59.5.
        cc.on_loss(now, 70_000);
        let CongestionControl::Cubic(c) = &cc else { unreachable!() };
        assert!((c.w_max_segments() - 59.5).abs() < 1e-9);
        assert_eq!(cc.cwnd(), 49_000);
        let mut off = c.clone();
        off.set_fast_convergence(false);
        off.on_loss(now, 49_000);
        assert_eq!(off.w_max_segments(), 49.0);
    }

    #[test]
    fn never_below_two_mss_after_loss() {
        let mut cc = after_loss(2, Instant::ZERO);
        for _ in 0..5 {
            cc.on_loss(Instant::ZERO, MSS);
            assert_eq!(cc.cwnd(), 2 * MSS);
            assert_eq!(cc.ssthresh(), 2 * MSS);
        }
    }

    #[test]
    fn concave_then_convex_around_w_max() {
        // W_max = 100 segments, cwnd 70 after loss; K = cbrt(30 / 0.4) ≈ 4.22 s.
        let mut now = Instant::from_millis(1000);
        let mut cc = after_loss(100, now);
        let rtt = Duration::from_millis(100);
        let start = now;
        let mut samples = vec![(0.0, cc.cwnd() / MSS)]; // (t, cwnd segments)
                                                        // K is fixed when the congestion-avoidance epoch starts, at the first ACK.
        one_rtt(&mut cc, &mut now, rtt);
        let CongestionControl::Cubic(c) = &cc else { unreachable!() };
        let k = c.k_seconds();
        assert!((k - 75f64.cbrt()).abs() < 1e-3, "K = {k}");
        while now.saturating_duration_since(start).as_secs_f64() < 2.0 * k + 1.0 {
            one_rtt(&mut cc, &mut now, rtt);
            samples.push((now.saturating_duration_since(start).as_secs_f64(), cc.cwnd() / MSS));
        }
        let at = |t: f64| samples.iter().find(|s| s.0 >= t).unwrap().1 as i64;
        // Growth over one second early, around K, and late.
        let early = at(1.0) - at(0.0);
        let mid = at(k + 0.5) - at(k - 0.5);
        let late = at(2.0 * k + 0.5) - at(2.0 * k - 0.5);
        assert!(early > mid, "concave: early {early} > mid {mid}");
        assert!(late > mid, "convex: late {late} > mid {mid}");
        // It plateaus near W_max around t = K.
        let plateau = at(k);
        assert!((95..=106).contains(&plateau), "cwnd at K = {plateau}");
        // And never shrinks without a loss.
        assert!(samples.windows(2).all(|w| w[1].1 >= w[0].1));
    }

    #[test]
    fn reno_friendly_region_on_short_rtt() {
        // With a tiny W_max gap and a short RTT, the Reno estimate dominates: cwnd still grows
        // at least ~alpha segments per RTT.
        let mut now = Instant::ZERO;
        let mut cc = after_loss(20, now);
        let start = cc.cwnd();
        let rtt = Duration::from_millis(1);
        for _ in 0..50 {
            one_rtt(&mut cc, &mut now, rtt);
        }
        // 50 RTTs * 0.53 seg/RTT ≈ 26 segments (alpha 1 beyond cwnd_prior); cubic alone over
        // 50 ms would add well under one segment beyond W_max's pull.
        let grown = (cc.cwnd() - start) / MSS;
        assert!(grown >= 20, "grew only {grown} segments");
    }

    #[test]
    fn rto_then_epoch_with_k_zero() {
        let mut now = Instant::ZERO;
        let mut cc = after_loss(100, now);
        cc.on_rto(now, 70_000);
        assert_eq!(cc.cwnd(), MSS);
        assert_eq!(cc.ssthresh(), 49_000);
        while cc.in_slow_start() {
            one_rtt(&mut cc, &mut now, Duration::from_millis(10));
        }
        one_rtt(&mut cc, &mut now, Duration::from_millis(10));
        let CongestionControl::Cubic(c) = &cc else { unreachable!() };
        assert_eq!(c.k_seconds(), 0.0);
        assert!(c.w_max_segments() >= 49.0 && c.w_max_segments() < 60.0);
    }
}
