//! Retransmission timeout computation (RFC 6298).
//!
//! [`RttEstimator`] keeps SRTT and RTTVAR (§2), turns them into an RTO clamped to
//! `[min_rto, max_rto]` (§2.4, §2.5) and doubles it on each timeout (§5.5).
//!
//! **Karn's rule (RFC 6298 §3) is the caller's job**: feed [`RttEstimator::on_sample`] only
//! with measurements from segments that were *not* retransmitted (or from the timestamp echo,
//! RFC 7323 §4, which is unambiguous). A sample taken from a retransmitted segment's ACK cannot
//! tell which transmission it acknowledges and must be dropped.

use core::time::Duration;

/// RFC 6298 §2.1: "Until a round-trip time (RTT) measurement has been made ... the sender
/// SHOULD set RTO <- 1 second".
pub const INITIAL_RTO: Duration = Duration::from_secs(1);
/// RFC 6298 §5.7: RTO used once data flows if the SYN or SYN-ACK had to be retransmitted.
pub const HANDSHAKE_LOSS_RTO: Duration = Duration::from_secs(3);
/// RFC 6298 §2.4: "RTO SHOULD be rounded up to 1 second".
pub const RFC_MIN_RTO: Duration = Duration::from_secs(1);
/// Linux's `TCP_RTO_MIN` (200 ms), a widely deployed deviation from §2.4's SHOULD.
pub const LINUX_MIN_RTO: Duration = Duration::from_millis(200);
/// RFC 6298 §2.5: "A maximum value MAY be placed on RTO provided it is at least 60 seconds."
pub const DEFAULT_MAX_RTO: Duration = Duration::from_secs(60);
/// Clock granularity G (§2): the engine measures time in nanoseconds, but timers fire at
/// roughly millisecond resolution.
pub const DEFAULT_GRANULARITY: Duration = Duration::from_millis(1);

/// RFC 6298 §2.3: alpha = 1/8, beta = 1/4 (as shifts), K = 4.
const ALPHA_SHIFT: u32 = 3;
const BETA_SHIFT: u32 = 2;
const K: u32 = 4;

/// Tunables of the RTO computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttConfig {
    /// Lower bound on the RTO (§2.4). RFC: 1 s; Linux: 200 ms.
    pub min_rto: Duration,
    /// Upper bound on the RTO, also on the backed-off RTO (§2.5: at least 60 s).
    pub max_rto: Duration,
    /// RTO before any sample (§2.1: 1 s).
    pub initial_rto: Duration,
    /// Clock granularity G (§2).
    pub granularity: Duration,
}

impl RttConfig {
    /// The values RFC 6298 recommends: min 1 s, max 60 s, initial 1 s, G = 1 ms.
    pub const fn rfc6298() -> Self {
        RttConfig {
            min_rto: RFC_MIN_RTO,
            max_rto: DEFAULT_MAX_RTO,
            initial_rto: INITIAL_RTO,
            granularity: DEFAULT_GRANULARITY,
        }
    }

    /// Linux-like values: min 200 ms (max 60 s rather than Linux's 120 s, per RFC 6298 §2.5
    /// either is allowed).
    pub const fn linux() -> Self {
        RttConfig { min_rto: LINUX_MIN_RTO, ..Self::rfc6298() }
    }
}

impl Default for RttConfig {
    fn default() -> Self {
        Self::rfc6298()
    }
}

/// SRTT/RTTVAR estimator and RTO timer value with exponential backoff.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    config: RttConfig,
    /// `(SRTT, RTTVAR)` once the first measurement was made.
    est: Option<(Duration, Duration)>,
    /// RTO before backoff.
    base_rto: Duration,
    /// Number of doublings applied (§5.5).
    backoff: u32,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self::new(RttConfig::default())
    }
}

impl RttEstimator {
    /// A fresh estimator: no samples, RTO = `config.initial_rto` (§2.1), clamped to the max.
    pub fn new(config: RttConfig) -> Self {
        RttEstimator {
            config,
            est: None,
            base_rto: config.initial_rto.min(config.max_rto),
            backoff: 0,
        }
    }

    /// The tunables in force.
    pub fn config(&self) -> RttConfig {
        self.config
    }

    /// Change the tunables (e.g. a `sysctl`); the current RTO is recomputed.
    pub fn set_config(&mut self, config: RttConfig) {
        self.config = config;
        self.base_rto = match self.est {
            Some((srtt, rttvar)) => self.compute(srtt, rttvar),
            None => config.initial_rto.min(config.max_rto),
        };
    }

    /// Take one RTT measurement `rtt` from a segment that was **not retransmitted** (Karn's
    /// rule, §3, is the caller's job). Updates SRTT/RTTVAR and the RTO and clears the backoff
    /// (§5.7 note: the backed-off RTO is kept only "until an acknowledgment ... for data
    /// that was not retransmitted" yields a new RTO).
    pub fn on_sample(&mut self, rtt: Duration) {
        let (srtt, rttvar) = match self.est {
            // RFC 6298 §2.2: SRTT <- R, RTTVAR <- R/2.
            None => (rtt, rtt / 2),
            Some((srtt, rttvar)) => {
                // RFC 6298 §2.3: RTTVAR <- (1 - beta) * RTTVAR + beta * |SRTT - R'|, using the
                // old SRTT, then SRTT <- (1 - alpha) * SRTT + alpha * R'.
                let err = srtt.max(rtt) - srtt.min(rtt);
                let rttvar = rttvar - rttvar / (1 << BETA_SHIFT) + err / (1 << BETA_SHIFT);
                let srtt = srtt - srtt / (1 << ALPHA_SHIFT) + rtt / (1 << ALPHA_SHIFT);
                (srtt, rttvar)
            }
        };
        self.est = Some((srtt, rttvar));
        self.base_rto = self.compute(srtt, rttvar);
        self.backoff = 0;
    }

    /// RTO <- SRTT + max(G, K*RTTVAR) (§2.2/§2.3), then the §2.4 floor and §2.5 ceiling.
    fn compute(&self, srtt: Duration, rttvar: Duration) -> Duration {
        let var = (rttvar * K).max(self.config.granularity);
        (srtt + var).max(self.config.min_rto).min(self.config.max_rto)
    }

    /// The retransmission timeout to arm now, with backoff applied and capped at `max_rto`.
    pub fn rto(&self) -> Duration {
        // Cap the shift so the multiplication cannot overflow; max_rto caps the result anyway.
        let factor = 1u32 << self.backoff.min(20);
        self.base_rto.saturating_mul(factor).min(self.config.max_rto)
    }

    /// RFC 6298 §5.5: "The host MUST set RTO <- RTO * 2 ("back off the timer")", capped at
    /// `max_rto` (§2.5).
    pub fn backoff(&mut self) {
        if self.rto() < self.config.max_rto {
            self.backoff += 1;
        }
    }

    /// How many times the RTO was doubled since the last sample or reset.
    pub fn backoff_count(&self) -> u32 {
        self.backoff
    }

    /// Forget the backoff (e.g. an ACK advanced `SND.UNA` but no valid sample was taken).
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    /// RFC 6298 §5.7: "If the timer expires awaiting the ACK of a SYN segment and the TCP
    /// implementation is using an RTO less than 3 seconds, the RTO MUST be re-initialized to 3
    /// seconds when data transmission begins." Call when the handshake completes after a SYN
    /// retransmission; does nothing once a sample was taken.
    pub fn on_handshake_retransmitted(&mut self) {
        if self.est.is_none() {
            self.backoff = 0;
            self.base_rto = self.base_rto.max(HANDSHAKE_LOSS_RTO).min(self.config.max_rto);
        }
    }

    /// The smoothed RTT, once a sample was taken.
    pub fn srtt(&self) -> Option<Duration> {
        self.est.map(|(s, _)| s)
    }

    /// The RTT variation, once a sample was taken.
    pub fn rttvar(&self) -> Option<Duration> {
        self.est.map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn initial_and_first_sample() {
        let mut r = RttEstimator::new(RttConfig::rfc6298());
        assert_eq!(r.rto(), ms(1000));
        assert_eq!(r.srtt(), None);
        r.on_sample(ms(100));
        assert_eq!(r.srtt(), Some(ms(100)));
        assert_eq!(r.rttvar(), Some(ms(50)));
        // 100 + 4*50 = 300 ms, floored to the RFC's 1 s.
        assert_eq!(r.rto(), ms(1000));
        let mut l = RttEstimator::new(RttConfig::linux());
        l.on_sample(ms(100));
        assert_eq!(l.rto(), ms(300));
    }

    #[test]
    fn second_sample_uses_old_srtt() {
        let mut r = RttEstimator::new(RttConfig::linux());
        r.on_sample(ms(100)); // srtt 100, var 50
        r.on_sample(ms(200));
        // var = 3/4*50 + 1/4*|100-200| = 37.5 + 25 = 62.5; srtt = 7/8*100 + 1/8*200 = 112.5
        assert_eq!(r.rttvar(), Some(Duration::from_micros(62_500)));
        assert_eq!(r.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(r.rto(), Duration::from_micros(112_500 + 250_000));
    }

    #[test]
    fn granularity_floor() {
        let cfg = RttConfig { min_rto: Duration::ZERO, ..RttConfig::rfc6298() };
        let mut r = RttEstimator::new(cfg);
        for _ in 0..200 {
            r.on_sample(ms(10));
        }
        // RTTVAR decays to ~0, so RTO = SRTT + G.
        assert_eq!(r.rto(), ms(11));
    }

    #[test]
    fn backoff_doubles_capped_and_resets() {
        let mut r = RttEstimator::new(RttConfig::rfc6298());
        r.backoff();
        assert_eq!(r.rto(), ms(2000));
        r.backoff();
        assert_eq!(r.rto(), ms(4000));
        for _ in 0..100 {
            r.backoff();
        }
        assert_eq!(r.rto(), DEFAULT_MAX_RTO);
        assert!(r.backoff_count() < 10, "stops counting once capped");
        r.reset_backoff();
        assert_eq!(r.rto(), ms(1000));
        r.backoff();
        r.on_sample(ms(100));
        assert_eq!(r.rto(), ms(1000), "a new sample clears the backoff");
    }

    #[test]
    fn handshake_loss_gives_three_seconds() {
        let mut r = RttEstimator::default();
        r.backoff();
        r.on_handshake_retransmitted();
        assert_eq!(r.rto(), ms(3000));
        r.on_sample(ms(100));
        assert_eq!(r.rto(), ms(1000));
    }

    proptest! {
        #[test]
        fn rto_always_within_bounds(samples in prop::collection::vec(0u64..100_000, 1..50), backoffs in 0u32..40) {
            let mut r = RttEstimator::new(RttConfig::linux());
            for s in samples {
                r.on_sample(Duration::from_micros(s * 37));
                prop_assert!(r.rto() >= LINUX_MIN_RTO && r.rto() <= DEFAULT_MAX_RTO);
                prop_assert!(r.rto() >= r.srtt().unwrap());
            }
            let before = r.rto();
            for _ in 0..backoffs { r.backoff(); }
            prop_assert!(r.rto() >= before && r.rto() <= DEFAULT_MAX_RTO);
        }

        #[test]
        fn converges_to_constant_rtt(rtt in 1u64..10_000) {
            let mut r = RttEstimator::new(RttConfig::linux());
            r.on_sample(ms(rtt * 3));
            for _ in 0..300 { r.on_sample(ms(rtt)); }
            let err = r.srtt().unwrap().as_nanos().abs_diff(ms(rtt).as_nanos());
            prop_assert!(err < 1_000, "srtt {:?} vs {} ms", r.srtt(), rtt);
        }
    }
}
