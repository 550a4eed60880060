//! When this host may send an ICMP error, and how often.

use joyride_base::{Duration, Instant};

use super::iface::{is_unicast, Interface};
use crate::icmpv4::Icmpv4Message;
use crate::ipv4::{IpProtocol, Ipv4Repr};

/// A token bucket for ICMP errors (RFC 1812 §4.3.2.8: rate-limit ICMP error messages; the
/// numbers are Linux's global limit, `icmp_msgs_per_sec` = 1000 and `icmp_msgs_burst` = 50).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Nanoseconds of credit one token costs; 0 disables the limit.
    cost: u64,
    /// Most credit held, in nanoseconds.
    cap: u64,
    credit: u64,
    last: Instant,
}

impl TokenBucket {
    /// `per_sec` tokens a second, up to `burst` at once; `per_sec == 0` means unlimited.
    pub fn new(per_sec: u32, burst: u32, now: Instant) -> TokenBucket {
        let cost = if per_sec == 0 { 0 } else { 1_000_000_000 / u64::from(per_sec) };
        let cap = cost.saturating_mul(u64::from(burst.max(1)));
        TokenBucket { cost, cap, credit: cap, last: now }
    }

    /// Takes a token at `now` if one is available.
    pub fn allow(&mut self, now: Instant) -> bool {
        if self.cost == 0 {
            return true;
        }
        let elapsed =
            u64::try_from(now.saturating_duration_since(self.last).as_nanos()).unwrap_or(u64::MAX);
        self.last = self.last.max(now);
        self.credit = self.credit.saturating_add(elapsed).min(self.cap);
        if self.credit >= self.cost {
            self.credit -= self.cost;
            true
        } else {
            false
        }
    }

    /// The span between tokens.
    pub fn interval(&self) -> Duration {
        Duration::from_nanos(self.cost)
    }
}

/// Whether RFC 1122 §3.2.2 allows an ICMP error about a datagram with header `orig` and
/// payload `payload` that arrived as a link-layer broadcast or not (`l2_broadcast`). An ICMP
/// error message MUST NOT be sent about:
///
/// - an ICMP error message (only queries — echo, timestamp, … — may be answered);
/// - a datagram sent to an IP broadcast or multicast address;
/// - a datagram sent as a link-layer broadcast;
/// - a non-initial fragment;
/// - a datagram whose source is not a single host (zero, loopback, broadcast, multicast).
pub fn error_allowed(
    iface: &Interface,
    orig: &Ipv4Repr,
    payload: &[u8],
    l2_broadcast: bool,
) -> bool {
    if orig.protocol == IpProtocol::Icmp {
        let is_query = matches!(
            payload.first().map(|&t| Icmpv4Message::from(t)),
            Some(Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply)
                | Some(Icmpv4Message::Unknown(13..=18))
        );
        if !is_query {
            return false;
        }
    }
    !(l2_broadcast
        || iface.is_broadcast(orig.dst)
        || orig.dst.is_multicast()
        || orig.frag_offset != 0
        || !is_unicast(orig.src)
        || iface.is_broadcast(orig.src))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ethernet::EthernetAddress;
    use crate::ipv4::Ecn;
    use crate::Ipv4Addr;

    #[test]
    fn bucket_bursts_then_refills() {
        let t0 = Instant::from_millis(1000);
        let mut b = TokenBucket::new(1000, 50, t0);
        assert_eq!((0..100).filter(|_| b.allow(t0)).count(), 50);
        assert!(!b.allow(t0));
        assert!(b.allow(t0 + Duration::from_millis(1)));
        assert!(!b.allow(t0 + Duration::from_millis(1)));
        assert_eq!((0..100).filter(|_| b.allow(t0 + Duration::from_secs(10))).count(), 50);
        let mut u = TokenBucket::new(0, 0, t0);
        assert!((0..1000).all(|_| u.allow(t0)));
    }

    #[test]
    fn rfc1122_exclusions() {
        let iface = Interface::new(
            EthernetAddress([2, 0, 0, 0, 0, 1]),
            Ipv4Addr::new(10, 0, 0, 2),
            24,
            None,
            1500,
        )
        .unwrap();
        let base = Ipv4Repr {
            src: Ipv4Addr::new(10, 0, 0, 9),
            dst: Ipv4Addr::new(10, 0, 0, 2),
            protocol: IpProtocol::Udp,
            payload_len: 8,
            ttl: 64,
            dscp: 0,
            ecn: Ecn::NotEct,
            ident: 1,
            dont_frag: false,
            more_frags: false,
            frag_offset: 0,
        };
        assert!(error_allowed(&iface, &base, &[0; 8], false));
        assert!(!error_allowed(&iface, &base, &[0; 8], true));
        let bcast = Ipv4Repr { dst: Ipv4Addr::new(10, 0, 0, 255), ..base };
        assert!(!error_allowed(&iface, &bcast, &[0; 8], false));
        let frag = Ipv4Repr { frag_offset: 8, ..base };
        assert!(!error_allowed(&iface, &frag, &[0; 8], false));
        let zero_src = Ipv4Repr { src: Ipv4Addr::UNSPECIFIED, ..base };
        assert!(!error_allowed(&iface, &zero_src, &[0; 8], false));
        let icmp = Ipv4Repr { protocol: IpProtocol::Icmp, ..base };
        assert!(!error_allowed(&iface, &icmp, &[3, 3, 0, 0], false));
        assert!(error_allowed(&iface, &icmp, &[8, 0, 0, 0], false));
        assert!(!error_allowed(&iface, &icmp, &[], false));
    }
}
