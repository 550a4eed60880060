//! SYN cookies (RFC 4987 §3.6): stateless SYN-ACKs for when the SYN queue overflows.
//!
//! Instead of keeping state for a half-open connection, the listener encodes what it needs into
//! the ISN of its SYN-ACK and recovers it from the ACK that completes the handshake
//! (`SEG.ACK - 1` is that ISN). The 32 bits hold:
//!
//! ```text
//!  31                                   3   2   1  0
//! +---------------------------------------+---+------+
//! |  keyed hash (29 bits)                 | t | mss  |
//! +---------------------------------------+---+------+
//! ```
//!
//! - `mss`: index into [`MSS_TABLE`] of the largest entry not above the peer's MSS;
//! - `t`: the low bit of a coarse time counter (64-second slots), which tells the decoder which
//!   of the two accepted slots (current or previous) to check, so one hash is computed per ACK;
//! - hash: SipHash-2-4 (shared with [`crate::isn`]) under the listener's secret of the 4-tuple,
//!   the client's ISN, the full time counter and the MSS index, so none of the fields can be
//!   altered without guessing 29 keyed bits.
//!
//! A cookie stays valid for 64–128 s. Options other than MSS (window scale, SACK-permitted,
//! timestamps) are not encoded: a connection accepted from a cookie runs without them, as
//! RFC 4987 §3.6 notes.

use crate::isn::{siphash24, tuple_bytes};
use crate::seq::SeqNum;
use core::net::SocketAddrV4;
use joyride_base::Instant;

/// The MSS values a cookie can carry (RFC 4987 §3.6: "a small set of commonly used MSS
/// values"); 536 is RFC 9293 §3.7.1's default, 1460 Ethernet's.
pub const MSS_TABLE: [u16; 4] = [536, 1300, 1440, 1460];

/// Length of one time slot.
pub const SLOT_MILLIS: u64 = 64_000;

/// Domain separation from the ISN function when the same secret is used for both.
const DOMAIN: u8 = b'C';

/// Encoder/decoder of SYN cookies, holding the secret.
#[derive(Clone)]
pub struct SynCookies {
    secret: [u8; 16],
}

impl core::fmt::Debug for SynCookies {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SynCookies { secret: <hidden> }")
    }
}

impl SynCookies {
    /// Cookies keyed with `secret` (random at start-up).
    pub fn new(secret: [u8; 16]) -> Self {
        SynCookies { secret }
    }

    fn slot(now: Instant) -> u64 {
        now.as_millis() / SLOT_MILLIS
    }

    /// The 29-bit keyed hash, shifted into place.
    fn mac(
        &self,
        slot: u64,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: SeqNum,
        mss_idx: u32,
    ) -> u32 {
        let mut msg = [0u8; 26];
        msg[0] = DOMAIN;
        msg[1..13].copy_from_slice(&tuple_bytes(local, remote));
        msg[13..17].copy_from_slice(&client_isn.get().to_be_bytes());
        msg[17..25].copy_from_slice(&slot.to_be_bytes());
        msg[25] = mss_idx as u8;
        (siphash24(&self.secret, &msg) as u32) & !0x7
    }

    /// The ISN for a SYN-ACK answering a SYN with sequence number `client_isn` and MSS option
    /// `mss` (536 if absent, RFC 9293 §3.7.1) from `remote` to `local`.
    pub fn encode(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: SeqNum,
        mss: u16,
    ) -> SeqNum {
        // The largest table entry not above the peer's MSS; the smallest if all are above.
        let idx = MSS_TABLE.iter().rposition(|&m| m <= mss).unwrap_or(0) as u32;
        let slot = Self::slot(now);
        let t = (slot & 1) as u32;
        SeqNum::new(self.mac(slot, local, remote, client_isn, idx) | (t << 2) | idx)
    }

    /// Check the ACK completing a handshake: `client_isn` is `SEG.SEQ - 1` of that ACK and
    /// `ack_minus_one` is `SEG.ACK - 1` (our cookie ISN). Returns the MSS to use if the cookie
    /// is genuine and from the current or the previous time slot.
    pub fn decode(
        &self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        client_isn: SeqNum,
        ack_minus_one: SeqNum,
    ) -> Option<u16> {
        let v = ack_minus_one.get();
        let idx = v & 0x3;
        let t = u64::from((v >> 2) & 1);
        let cur = Self::slot(now);
        // The slot with parity `t` among {cur, cur - 1}.
        let slot = if cur & 1 == t { cur } else { cur.checked_sub(1)? };
        (self.mac(slot, local, remote, client_isn, idx) == v & !0x7)
            .then(|| MSS_TABLE[idx as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;
    use proptest::prelude::*;

    fn ep(a: u8, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(192, 168, 0, a), port)
    }

    fn secs(s: u64) -> Instant {
        Instant::from_millis(s * 1000)
    }

    #[test]
    fn round_trip_and_mss_table() {
        let c = SynCookies::new([3; 16]);
        let (l, r, isn) = (ep(1, 80), ep(2, 40_000), SeqNum::new(12345));
        for (mss, want) in [(1460, 1460), (9000, 1460), (1400, 1300), (1440, 1440), (536, 536)] {
            let ck = c.encode(secs(100), l, r, isn, mss);
            assert_eq!(c.decode(secs(100), l, r, isn, ck), Some(want), "mss {mss}");
        }
        // Below the smallest entry: 536 anyway (the smallest the table offers).
        let ck = c.encode(secs(100), l, r, isn, 200);
        assert_eq!(c.decode(secs(100), l, r, isn, ck), Some(536));
    }

    #[test]
    fn valid_for_two_slots_only() {
        let c = SynCookies::new([9; 16]);
        let (l, r, isn) = (ep(1, 80), ep(2, 40_000), SeqNum::new(7));
        let t0 = secs(64 * 10 + 5);
        let ck = c.encode(t0, l, r, isn, 1460);
        assert_eq!(c.decode(secs(64 * 10 + 63), l, r, isn, ck), Some(1460));
        assert_eq!(c.decode(secs(64 * 11 + 63), l, r, isn, ck), Some(1460), "previous slot");
        assert_eq!(c.decode(secs(64 * 12), l, r, isn, ck), None, "expired");
        assert_eq!(c.decode(secs(64 * 9), l, r, isn, ck), None, "from the future");
    }

    #[test]
    fn bound_to_tuple_isn_and_secret() {
        let c = SynCookies::new([1; 16]);
        let (l, r, isn) = (ep(1, 80), ep(2, 40_000), SeqNum::new(99));
        let now = secs(1000);
        let ck = c.encode(now, l, r, isn, 1460);
        assert_eq!(c.decode(now, l, ep(2, 40_001), isn, ck), None);
        assert_eq!(c.decode(now, l, ep(3, 40_000), isn, ck), None);
        assert_eq!(c.decode(now, ep(1, 81), r, isn, ck), None);
        assert_eq!(c.decode(now, l, r, isn + 1, ck), None);
        assert_eq!(SynCookies::new([2; 16]).decode(now, l, r, isn, ck), None);
        // Tampering with the MSS bits invalidates the cookie.
        assert_eq!(c.decode(now, l, r, isn, SeqNum::new(ck.get() ^ 1)), None);
        assert_eq!(c.decode(now, l, r, isn, ck + 8), None);
    }

    proptest! {
        #[test]
        fn random_guesses_rejected(guess in any::<u32>(), port in any::<u16>(), isn in any::<u32>()) {
            let c = SynCookies::new([5; 16]);
            let (l, r) = (ep(1, 80), ep(2, port));
            let now = secs(5000);
            let real = c.encode(now, l, r, SeqNum::new(isn), 1460);
            prop_assume!(guess != real.get());
            // A forged guess passes with probability 2^-29 per try; over the test's cases a
            // false accept would point at a broken MAC.
            prop_assert_eq!(c.decode(now, l, r, SeqNum::new(isn), SeqNum::new(guess)), None);
        }

        #[test]
        fn round_trip_any(port in any::<u16>(), isn in any::<u32>(), mss in 536u16..=u16::MAX, t in 64u64..1 << 30) {
            let c = SynCookies::new([8; 16]);
            let (l, r) = (ep(1, 80), ep(2, port));
            let ck = c.encode(secs(t), l, r, SeqNum::new(isn), mss);
            let got = c.decode(secs(t + 60), l, r, SeqNum::new(isn), ck);
            prop_assert!(got.is_some_and(|m| m <= mss && MSS_TABLE.contains(&m)));
        }
    }
}
