//! Every TCP tunable in one value, with a Linux-like and a FreeBSD-like profile.
//!
//! [`TcpConfig::linux`] is the default. [`TcpConfig::freebsd`] reproduces what FreeBSD's own TCP
//! test suite (`shared/tcp-testsuite/`) pins on the wire: receive space 65536 advertised as
//! `win 65535` (and rounded up to a multiple of the MSS once connected), window scale 6
//! (`kern.ipc.maxsockbuf` 2 MiB), a SYN-ACK that only echoes the options the peer offered,
//! delayed ACK 100 ms, 4 SACK blocks and D-SACK. [`TcpConfig::set_tunable`] maps the FreeBSD
//! `sysctl` names those scripts set onto the fields.

use core::time::Duration;

use crate::error::UnknownTunable;

pub use crate::cc::CcAlgorithm;

/// How initial sequence numbers are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IsnPolicy {
    /// RFC 6528: a keyed hash of the 4-tuple plus a 4 µs clock (the default).
    Rfc6528,
    /// Always this value (for reproducible tests and conformance scripts).
    Fixed(u32),
}

/// All tunables of a [`crate::TcpStack`]. Fields are public; build from a profile and adjust.
#[derive(Clone, Debug, PartialEq)]
pub struct TcpConfig {
    /// MSS announced in our SYN (RFC 9293 §3.7.1): the interface MTU minus 40.
    pub mss: u16,
    /// Smallest peer MSS accepted; a smaller announced MSS is clamped up to this (Linux's
    /// `tcp_min_snd_mss`, a guard against tiny-segment floods).
    pub min_mss: u16,
    /// Default receive buffer (`SO_RCVBUF`) in bytes.
    pub recv_buffer: usize,
    /// Default send buffer (`SO_SNDBUF`) in bytes.
    pub send_buffer: usize,
    /// Upper bound for `SO_RCVBUF`/`SO_SNDBUF` (`kern.ipc.maxsockbuf`, `net.core.rmem_max`).
    pub max_buffer: usize,
    /// Round the receive buffer up to a multiple of the MSS once connected (FreeBSD does).
    pub round_rcvbuf_to_mss: bool,
    /// Window scaling (RFC 7323 §2): the shift we offer, `None` to never offer it.
    pub window_scale: Option<u8>,
    /// Offer and accept timestamps (RFC 7323 §3).
    pub timestamps: bool,
    /// Offer and accept SACK (RFC 2018).
    pub sack: bool,
    /// Generate D-SACK blocks for duplicate segments (RFC 2883).
    pub dsack: bool,
    /// A SYN-ACK only carries options the peer's SYN offered (FreeBSD; Linux does the same for
    /// wscale/SACK/TS, so this only matters for ordering/padding choices of the emitter).
    pub echo_syn_options_only: bool,
    /// Delayed-ACK timeout (RFC 9293 §3.8.6.3 requires < 0.5 s).
    pub delayed_ack: Duration,
    /// ACK at least every this many full-sized segments (RFC 5681 §4.2: 2).
    pub ack_every: u8,
    /// Initial RTO before any RTT sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Lower bound of the RTO (RFC 6298 §2.4 says 1 s; Linux and FreeBSD use 200 ms / 30 ms).
    pub min_rto: Duration,
    /// Upper bound of the RTO (RFC 6298 §2.5: at least 60 s).
    pub max_rto: Duration,
    /// Maximum segment lifetime; TIME-WAIT lasts 2·MSL (RFC 9293 §3.4.2).
    pub msl: Duration,
    /// SYN retransmissions before `connect` fails with `ETIMEDOUT`.
    pub syn_retries: u32,
    /// SYN-ACK retransmissions before an embryonic connection is dropped.
    pub synack_retries: u32,
    /// Data retransmissions before the connection is aborted (Linux `tcp_retries2`).
    pub max_retries: u32,
    /// Keepalive: idle time before the first probe (RFC 1122 §4.2.3.6: ≥ 2 h by default).
    pub keepalive_idle: Duration,
    /// Keepalive: interval between unanswered probes.
    pub keepalive_interval: Duration,
    /// Keepalive: unanswered probes before the connection is dropped.
    pub keepalive_count: u32,
    /// Upper bound of the backlog passed to `listen` (`somaxconn`).
    pub max_backlog: u32,
    /// Size of a listener's SYN queue (embryonic connections) (`tcp_max_syn_backlog`).
    pub syn_backlog: u32,
    /// Answer with SYN cookies when the SYN queue is full.
    pub syncookies: bool,
    /// Congestion control for new sockets (RFC 9438 CUBIC by default).
    pub congestion: CcAlgorithm,
    /// Initial window in segments (RFC 6928: 10).
    pub initial_window: u32,
    /// RFC 8985 RACK: time-based loss detection (needs SACK; replaces RFC 6675's DupThresh
    /// rule on connections that negotiated SACK). New sockets take this;
    /// [`crate::TcpStack::set_rack`] changes it per socket before the connection is established.
    pub rack: bool,
    /// RFC 8985 TLP: a tail loss probe after ~2·SRTT of silence (only where RACK is on).
    pub tlp: bool,
    /// How ISNs are chosen.
    pub isn: IsnPolicy,
    /// RFC 5961 §3: a RST must match RCV.NXT exactly, else a challenge ACK is sent
    /// (FreeBSD `net.inet.tcp.insecure_rst=0`). `false` accepts any in-window RST.
    pub rfc5961_rst: bool,
    /// RFC 5961 §4: a SYN in a synchronized state draws a challenge ACK (FreeBSD
    /// `insecure_syn=0`). `false` resets the connection on an in-window SYN (RFC 793).
    pub rfc5961_syn: bool,
    /// RFC 5961 §7: at most this many challenge ACKs per second per stack (Linux 1000).
    pub challenge_ack_limit: u32,
    /// Drop segments with both SYN and FIN set (FreeBSD `net.inet.tcp.drop_synfin`).
    pub drop_synfin: bool,
    /// Answer segments for closed ports with RST (`blackhole=0`); `false` drops them silently.
    pub rst_on_closed_port: bool,
    /// Send a RST on `close` when unread data remains (RFC 9293 §3.10.4, RFC 2525 §2.17).
    pub rst_on_unread_close: bool,
    /// While only our FIN is unacknowledged, pure ACKs carry the FIN again (BSD
    /// `tcp_output`; the FreeBSD scripts expect `F.` in CLOSING).
    pub ack_repeats_fin: bool,
    /// Timestamp clock granularity (RFC 7323 §5.4: 1 ms to 1 s per tick).
    pub ts_granularity: Duration,
    /// The TSval of the first segment of a connection, for reproducible conformance runs
    /// (`None`: derived from `now` plus a per-connection offset).
    pub ts_initial: Option<u32>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self::linux()
    }
}

impl TcpConfig {
    /// A Linux-like profile (the default).
    pub fn linux() -> Self {
        TcpConfig {
            mss: 1460,
            min_mss: 48,
            recv_buffer: 131_072,
            send_buffer: 16_384 * 4,
            max_buffer: 6 * 1024 * 1024,
            round_rcvbuf_to_mss: false,
            window_scale: Some(7),
            timestamps: true,
            sack: true,
            dsack: true,
            echo_syn_options_only: true,
            delayed_ack: Duration::from_millis(40),
            ack_every: 2,
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(120),
            msl: Duration::from_secs(30),
            syn_retries: 6,
            synack_retries: 5,
            max_retries: 15,
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_count: 9,
            max_backlog: 4096,
            syn_backlog: 1024,
            syncookies: true,
            congestion: CcAlgorithm::Cubic,
            initial_window: 10,
            rack: true,
            tlp: true,
            isn: IsnPolicy::Rfc6528,
            rfc5961_rst: true,
            rfc5961_syn: true,
            challenge_ack_limit: 1000,
            drop_synfin: false,
            rst_on_closed_port: true,
            rst_on_unread_close: true,
            ack_repeats_fin: false,
            ts_granularity: Duration::from_millis(1),
            ts_initial: None,
        }
    }

    /// A FreeBSD-like profile, matching what FreeBSD's TCP test suite pins on the wire.
    pub fn freebsd() -> Self {
        TcpConfig {
            recv_buffer: 65_536,
            send_buffer: 32_768,
            max_buffer: 2_097_152,
            round_rcvbuf_to_mss: true,
            // The smallest shift with 65535 << s ≥ kern.ipc.maxsockbuf (2 MiB).
            window_scale: Some(6),
            delayed_ack: Duration::from_millis(100),
            min_rto: Duration::from_millis(30),
            msl: Duration::from_secs(30),
            syn_retries: 6,
            synack_retries: 3,
            max_retries: 12,
            max_backlog: 128,
            syn_backlog: 512,
            congestion: CcAlgorithm::NewReno,
            // FreeBSD's default stack detects loss by DupThresh (RACK is the separate
            // `tcp_rack` stack); the conformance scripts pin its retransmissions.
            rack: false,
            tlp: false,
            drop_synfin: false,
            ack_repeats_fin: true,
            ..Self::linux()
        }
    }

    /// Sets a tunable by its FreeBSD `sysctl` name, as the conformance scripts do
    /// (`sysctl -w net.inet.tcp.sack.enable=1`). Names that only flush state
    /// (`net.inet.tcp.hostcache.purgenow`) or select features Joyride does not have in that form
    /// (`net.inet.tcp.ecn.enable`) are accepted and ignored.
    pub fn set_tunable(&mut self, name: &str, value: &str) -> Result<(), UnknownTunable> {
        let num = || value.trim().parse::<u64>().map_err(|_| UnknownTunable);
        let on = || num().map(|v| v != 0);
        match name {
            "net.inet.tcp.rfc1323" => {
                // 1 = scaling + timestamps, 2 = scaling only, 3 = timestamps only.
                let v = num()?;
                self.timestamps = v == 1 || v == 3;
                self.window_scale = if v == 1 || v == 2 { Some(6) } else { None };
            }
            "net.inet.tcp.sack.enable" => self.sack = on()?,
            "net.inet.tcp.recvspace" => self.recv_buffer = num()? as usize,
            "net.inet.tcp.sendspace" => self.send_buffer = num()? as usize,
            "kern.ipc.maxsockbuf" => {
                self.max_buffer = num()? as usize;
                if self.window_scale.is_some() {
                    // FreeBSD: the smallest shift with TCP_MAXWIN << shift ≥ sb_max.
                    let mut s = 0u8;
                    while s < 14 && (65_535usize << s) < self.max_buffer {
                        s += 1;
                    }
                    self.window_scale = Some(s);
                }
            }
            "net.inet.tcp.delacktime" => self.delayed_ack = Duration::from_millis(num()?),
            "net.inet.tcp.rexmit_initial" => self.initial_rto = Duration::from_millis(num()?),
            "net.inet.tcp.rexmit_min" => self.min_rto = Duration::from_millis(num()?),
            "net.inet.tcp.msl" => self.msl = Duration::from_millis(num()?),
            "net.inet.tcp.insecure_rst" => self.rfc5961_rst = !on()?,
            "net.inet.tcp.insecure_syn" => self.rfc5961_syn = !on()?,
            "net.inet.tcp.drop_synfin" => self.drop_synfin = on()?,
            "net.inet.tcp.blackhole" => self.rst_on_closed_port = num()? < 2,
            "net.inet.tcp.syncookies" => self.syncookies = on()?,
            "net.inet.tcp.mssdflt"
            | "net.inet.tcp.ecn.enable"
            | "net.inet.tcp.hostcache.purgenow" => {
                num()?;
            }
            "net.inet.tcp.keepidle" => self.keepalive_idle = Duration::from_millis(num()?),
            "net.inet.tcp.keepintvl" => self.keepalive_interval = Duration::from_millis(num()?),
            "net.inet.tcp.keepcnt" => self.keepalive_count = num()? as u32,
            _ => return Err(UnknownTunable),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunables_map_onto_fields() {
        let mut c = TcpConfig::freebsd();
        c.set_tunable("net.inet.tcp.sack.enable", "0").unwrap();
        assert!(!c.sack);
        c.set_tunable("net.inet.tcp.insecure_rst", "1").unwrap();
        assert!(!c.rfc5961_rst);
        c.set_tunable("net.inet.tcp.delacktime", "40").unwrap();
        assert_eq!(c.delayed_ack, Duration::from_millis(40));
        c.set_tunable("kern.ipc.maxsockbuf", "2097152").unwrap();
        assert_eq!(c.window_scale, Some(6));
        c.set_tunable("net.inet.tcp.hostcache.purgenow", "1").unwrap();
        assert_eq!(c.set_tunable("net.inet.tcp.nonsense", "1"), Err(UnknownTunable));
        assert_eq!(c.set_tunable("net.inet.tcp.recvspace", "x"), Err(UnknownTunable));
    }
}
