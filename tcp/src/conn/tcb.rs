//! The transmission control block of the synchronized states (RFC 9293 §3.3.1 variables),
//! option negotiation and congestion state.

use core::time::Duration;

use joyride_base::Instant;
use joyride_ip::tcp::TcpRepr;

use super::{Conn, ConnOpts};
use crate::buffer::SendBuffer;
use crate::cc::CongestionControl;
use crate::config::TcpConfig;
use crate::rack::{Rack, SentLog};
use crate::rtt::{RttConfig, RttEstimator};
use crate::sack::{Scoreboard, DUP_THRESH};
use crate::seq::SeqNum;
use crate::socket_types::TcpInfo;

/// RFC 9293 §3.7.1: the MSS assumed when the peer sends none.
const DEFAULT_MSS: u16 = 536;
/// RFC 7323 §2.3: the largest shift.
const MAX_WSCALE: u8 = 14;

/// The control block of every synchronized state (and SYN-RECEIVED).
#[derive(Clone, Debug)]
pub(crate) struct Tcb {
    pub iss: SeqNum,
    pub irs: SeqNum,
    // --- send sequence space (RFC 9293 §3.3.1) ---
    pub snd_una: SeqNum,
    pub snd_nxt: SeqNum,
    /// Highest sequence number sent + 1 (snd_nxt can be rewound by an RTO).
    pub snd_max: SeqNum,
    /// Peer's window in bytes (already scaled).
    pub snd_wnd: u32,
    pub snd_wl1: SeqNum,
    pub snd_wl2: SeqNum,
    /// Largest window the peer ever offered (RFC 5961 §5 MAX.SND.WND).
    pub max_snd_wnd: u32,
    pub snd_wscale: u8,
    pub rcv_wscale: u8,
    /// Window scaling was negotiated (RFC 7323 §2.2: both SYNs carried the option).
    pub ws_ok: bool,
    // --- receive sequence space ---
    pub rcv_nxt: SeqNum,
    /// Right edge of the window we last advertised (never moved left, RFC 9293 §3.8.6.2.1).
    pub rcv_adv: SeqNum,
    /// Bytes of a simultaneous-open SYN's text held until ESTABLISHED (RCV.NXT then skips them).
    pub syn_data: u32,
    /// Our FIN from the peer's side: the FIN's sequence number once it was seen out of order.
    pub peer_fin_at: Option<SeqNum>,
    // --- negotiated options ---
    /// Payload bytes per full segment we send (peer MSS, clamped, minus option overhead).
    pub mss: u16,
    /// The MSS we advertised.
    pub adv_mss: u16,
    pub ts_ok: bool,
    pub ts_recent: u32,
    pub last_ack_sent: SeqNum,
    pub sack_ok: bool,
    // --- our SYN (SYN-RECEIVED / simultaneous open) and FIN ---
    /// Our SYN (in a SYN-ACK) is not yet acknowledged.
    pub syn_unacked: bool,
    /// Sequence number of our FIN once the application shut down writing.
    pub fin_seq: Option<SeqNum>,
    // --- loss recovery ---
    pub rtt: RttEstimator,
    /// RTT timing of one segment (Karn: cleared when anything is retransmitted).
    pub timed: Option<(SeqNum, Instant)>,
    pub cc: CongestionControl,
    pub dupacks: u32,
    /// In fast recovery until SND.UNA passes this (RFC 6582 "recover").
    pub recover: Option<SeqNum>,
    /// Send what loss recovery allows (RFC 6675 NextSeg / NewReno) at the next poll.
    pub rexmit_now: bool,
    /// Retransmit the segment at SND.UNA first (entering recovery, NewReno partial ACK).
    pub rexmit_first: bool,
    /// RFC 6675 HighRxt (exclusive): everything below was retransmitted in this recovery.
    pub high_rxt: SeqNum,
    /// The peer's SACK blocks above SND.UNA (RFC 6675 scoreboard).
    pub sb: Scoreboard,
    pub rto_at: Option<Instant>,
    // --- RFC 8985 RACK-TLP (only where `rack_on`) ---
    /// RACK detects losses (SACK negotiated and RACK enabled on the socket).
    pub rack_on: bool,
    /// TLP probes tail losses (RACK on and TLP enabled).
    pub tlp_on: bool,
    /// The per-segment transmission record (RFC 8985 §6.1).
    pub log: SentLog,
    /// RACK and TLP state (RFC 8985 §5.3, §7.1).
    pub rack: Rack,
    /// The RACK reordering timer (RFC 8985 §8).
    pub rack_at: Option<Instant>,
    /// The TLP probe timeout (RFC 8985 §7.2).
    pub tlp_at: Option<Instant>,
    /// In RTO recovery until SND.UNA passes this (RFC 8985 "RTO recovery": no second
    /// congestion response for losses RACK finds meanwhile).
    pub rto_recover: Option<SeqNum>,
    /// Consecutive retransmission timeouts.
    pub retries: u32,
    /// When the oldest unacknowledged data was first sent (TCP_USER_TIMEOUT).
    pub unacked_since: Option<Instant>,
    // --- receive-side ACK policy ---
    pub ack_now: bool,
    /// The pending ACK is an RFC 5961 challenge ACK (sent bare, `<SEQ=SND.NXT>`).
    pub challenge: bool,
    pub delack_at: Option<Instant>,
    /// Full-sized segments received since the last ACK.
    pub unacked_segs: u32,
    /// RFC 2883 D-SACK block to report once.
    pub dsack: Option<(SeqNum, SeqNum)>,
    /// A window update is due because the application read data.
    pub window_update: bool,
    // --- persist and keepalive ---
    pub persist_at: Option<Instant>,
    pub persist_backoff: u32,
    pub keep_probes: u32,
    pub keep_at: Option<Instant>,
    // --- statistics ---
    pub total_retrans: u64,
    pub bytes_sent: u64,
    pub bytes_acked: u64,
    pub bytes_received: u64,
    pub segs_out: u64,
    pub segs_in: u64,
}

fn rtt_config(cfg: &TcpConfig) -> RttConfig {
    RttConfig {
        min_rto: cfg.min_rto,
        max_rto: cfg.max_rto,
        initial_rto: cfg.initial_rto,
        granularity: Duration::from_millis(1),
    }
}

/// The MSS we announce: the configured one, clamped by `TCP_MAXSEG`.
pub(crate) fn our_mss(cfg: &TcpConfig, opts: &ConnOpts) -> u16 {
    if opts.max_seg != 0 {
        opts.max_seg.min(cfg.mss).max(cfg.min_mss)
    } else {
        cfg.mss
    }
}

impl Tcb {
    /// A block for the options both SYNs agreed on.
    #[allow(clippy::too_many_arguments)]
    fn negotiated(
        now: Instant,
        cfg: &TcpConfig,
        opts: &ConnOpts,
        iss: SeqNum,
        syn: &TcpRepr<'_>,
        we_offered_ts: bool,
        we_offered_sack: bool,
        our_wscale: Option<u8>,
    ) -> Tcb {
        let _ = now;
        let irs = SeqNum::new(syn.seq);
        let o = &syn.options;
        // RFC 7323 §2.2: scaling is on only if both sides sent the option.
        let (snd_wscale, rcv_wscale, ws_ok) = match (o.window_scale, our_wscale) {
            (Some(theirs), Some(ours)) => (theirs.min(MAX_WSCALE), ours.min(MAX_WSCALE), true),
            _ => (0, 0, false),
        };
        let ts_ok = we_offered_ts && o.timestamps.is_some();
        let sack_ok = we_offered_sack && o.sack_permitted;
        let adv_mss = our_mss(cfg, opts);
        // RFC 9293 §3.7.1: send MSS = min(peer's MSS, ours), and RFC 6691: the MSS excludes
        // options, so the timestamp option's 12 bytes come out of each segment.
        let peer_mss = o.mss.unwrap_or(DEFAULT_MSS).max(cfg.min_mss);
        let mut mss = peer_mss.min(adv_mss);
        if ts_ok {
            mss = mss.saturating_sub(12).max(cfg.min_mss);
        }
        let rcv_nxt = irs + 1;
        Tcb {
            iss,
            irs,
            snd_una: iss,
            snd_nxt: iss + 1,
            snd_max: iss + 1,
            // RFC 7323 §2.2: the window of a SYN is never scaled.
            snd_wnd: u32::from(syn.window),
            snd_wl1: irs,
            snd_wl2: iss,
            max_snd_wnd: u32::from(syn.window),
            snd_wscale,
            rcv_wscale,
            ws_ok,
            rcv_nxt,
            rcv_adv: rcv_nxt,
            syn_data: 0,
            peer_fin_at: None,
            mss,
            adv_mss,
            ts_ok,
            ts_recent: o.timestamps.map_or(0, |t| t.0),
            last_ack_sent: rcv_nxt,
            sack_ok,
            syn_unacked: false,
            fin_seq: None,
            rtt: RttEstimator::new(rtt_config(cfg)),
            timed: None,
            cc: CongestionControl::new(opts.congestion, u32::from(mss.max(1)), cfg.initial_window),
            dupacks: 0,
            recover: None,
            rexmit_now: false,
            rexmit_first: false,
            high_rxt: iss,
            sb: Scoreboard::new(),
            rto_at: None,
            rack_on: opts.rack && sack_ok,
            tlp_on: opts.rack && cfg.tlp && sack_ok,
            log: SentLog::new(),
            rack: Rack::new(),
            rack_at: None,
            tlp_at: None,
            rto_recover: None,
            retries: 0,
            unacked_since: None,
            ack_now: false,
            challenge: false,
            delack_at: None,
            unacked_segs: 0,
            dsack: None,
            window_update: false,
            persist_at: None,
            persist_backoff: 0,
            keep_probes: 0,
            keep_at: None,
            total_retrans: 0,
            bytes_sent: 0,
            bytes_acked: 0,
            bytes_received: 0,
            segs_out: 0,
            segs_in: 1,
        }
    }

    /// Passive open: the block for a received SYN (we answer with the options it offered).
    pub(crate) fn from_syn(
        now: Instant,
        cfg: &TcpConfig,
        opts: &ConnOpts,
        iss: SeqNum,
        syn: &TcpRepr<'_>,
        rcv_cap: usize,
        ts_offset: u32,
    ) -> Tcb {
        let _ = (rcv_cap, ts_offset);
        let mut t =
            Tcb::negotiated(now, cfg, opts, iss, syn, cfg.timestamps, cfg.sack, cfg.window_scale);
        // SND.NXT stays at ISS until the SYN-ACK is actually sent.
        t.snd_nxt = iss;
        t.snd_max = iss;
        t
    }

    /// Active open: the block for the SYN-ACK (or, in a simultaneous open, the SYN) answering
    /// our SYN.
    pub(crate) fn from_synack(
        now: Instant,
        cfg: &TcpConfig,
        opts: &ConnOpts,
        iss: SeqNum,
        seg: &TcpRepr<'_>,
    ) -> Tcb {
        Tcb::negotiated(now, cfg, opts, iss, seg, cfg.timestamps, cfg.sack, cfg.window_scale)
    }

    /// The sequence number of buffer offset 0 (the first unacknowledged data byte).
    pub(crate) fn data_base(&self) -> SeqNum {
        if self.syn_unacked || self.snd_una == self.iss {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    /// Bytes in flight (sent, not acknowledged), in sequence space.
    pub(crate) fn flight(&self) -> u32 {
        self.snd_max.distance(self.snd_una)
    }

    /// Queue our FIN after all data now in `snd` (RFC 9293 §3.10.4 CLOSE).
    pub(crate) fn set_fin(&mut self, snd: &SendBuffer) {
        if self.fin_seq.is_none() {
            self.fin_seq = Some(self.data_base() + snd.len() as u32);
        }
    }

    /// Whether our FIN has been sent and acknowledged.
    pub(crate) fn fin_acked(&self) -> bool {
        self.fin_seq.is_some_and(|f| self.snd_una.after(f))
    }

    /// The application read data: a window update may be due (RFC 9293 §3.8.6.2.2 receiver
    /// SWS avoidance: only when the window grows by min(RCV.BUFF/2, MSS) or more).
    pub(crate) fn on_app_read(&mut self, before: usize, after: usize) {
        let adv = self.rcv_adv.distance(self.rcv_nxt) as usize;
        let threshold = (usize::from(self.adv_mss)).min(after.max(before) / 2).max(1);
        if after >= adv + threshold && after > before {
            self.window_update = true;
        }
    }

    /// RFC 6675 §4 IsLost(SND.UNA).
    pub(crate) fn una_lost(&self) -> bool {
        self.sb.is_lost(self.snd_una, DUP_THRESH, u32::from(self.mss.max(1)))
    }

    /// The estimate of bytes in the network (RFC 6675 §4 SetPipe with SACK; without it,
    /// FlightSize less one segment per duplicate ACK, RFC 6582 §3.2 step 4 in another form).
    pub(crate) fn pipe(&self) -> u32 {
        let mss = u32::from(self.mss.max(1));
        if self.rack_on {
            return self.log.pipe(self.flight());
        }
        if self.sack_ok && !self.sb.is_empty() {
            self.sb.pipe(self.snd_una, self.snd_max, self.high_rxt, mss)
        } else if self.recover.is_some() {
            self.snd_max.distance(self.snd_una).saturating_sub(self.dupacks.saturating_mul(mss))
        } else {
            self.snd_nxt.distance(self.snd_una)
        }
    }

    pub(crate) fn fill_info(&self, i: &mut TcpInfo) {
        i.srtt = self.rtt.srtt().unwrap_or_default();
        i.rttvar = self.rtt.rttvar().unwrap_or_default();
        i.rto = self.rtt.rto();
        i.cwnd = self.cc.cwnd();
        i.ssthresh = self.cc.ssthresh();
        i.snd_mss = self.mss;
        i.rcv_mss = self.adv_mss;
        i.snd_wnd = self.snd_wnd;
        i.total_retrans = self.total_retrans;
        i.backoff = self.retries;
        i.bytes_sent = self.bytes_sent;
        i.bytes_acked = self.bytes_acked;
        i.bytes_received = self.bytes_received;
        i.segs_out = self.segs_out;
        i.segs_in = self.segs_in;
        i.unacked = self.flight();
        i.ts_ok = self.ts_ok;
        i.sack_ok = self.sack_ok;
        i.wscale = (self.snd_wscale, self.rcv_wscale);
    }

    /// The earliest deadline of this block's timers, given its connection.
    pub(crate) fn poll_at(&self, c: &Conn) -> Option<Instant> {
        if self.ack_now || self.rexmit_now || self.window_update || self.has_new_data(c) {
            return Some(Instant::ZERO);
        }
        if self.persist_wanted(c) && self.persist_at.is_none() {
            // The persist timer must be armed (RFC 9293 §3.8.6.1).
            return Some(Instant::ZERO);
        }
        let idle_state =
            matches!(c.state, super::ConnState::Established(_) | super::ConnState::CloseWait(_));
        let keep = self.keepalive_due(&c.opts, c.last_rx, idle_state, c.snd.len());
        [self.rto_at, self.delack_at, self.persist_at, keep, self.rack_at, self.tlp_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the persist timer must run: data waits, nothing is in flight (so no ACK will
    /// come to reopen the window), and the peer's window is what stops us: zero (RFC 9293
    /// §3.8.6.1), or too small for the next segment under sender SWS avoidance (§3.8.6.2.1,
    /// whose "override timeout" this timer also is). Without it a lost window update after a
    /// small-window advertisement deadlocks both sides. `poll_at` and the sender share it.
    pub(crate) fn persist_wanted(&self, c: &Conn) -> bool {
        let sending = matches!(
            c.state,
            super::ConnState::Established(_)
                | super::ConnState::CloseWait(_)
                | super::ConnState::FinWait1(_)
                | super::ConnState::Closing(_)
                | super::ConnState::LastAck(_)
        );
        self.persist_wanted_parts(sending, c.snd.len())
    }

    /// [`Tcb::persist_wanted`] from its parts: whether the state sends data, and the send
    /// buffer's length.
    pub(crate) fn persist_wanted_parts(&self, sending: bool, snd_len: usize) -> bool {
        let unsent = snd_len.saturating_sub(self.snd_nxt.distance(self.data_base()) as usize);
        sending
            && unsent > 0
            && self.snd_una == self.snd_max
            && (self.snd_wnd as usize) < unsent.min(usize::from(self.mss.max(1)))
    }

    /// When the next keepalive probe is due (RFC 1122 §4.2.3.6: only on an idle connection with
    /// nothing outstanding or queued); `None` when keepalive does not apply. `poll_at` and the
    /// sender use this one rule, so a deadline never fires without an action.
    pub(crate) fn keepalive_due(
        &self,
        opts: &ConnOpts,
        last_rx: Instant,
        idle_state: bool,
        snd_len: usize,
    ) -> Option<Instant> {
        let unsent = snd_len > self.snd_nxt.distance(self.data_base()) as usize;
        (opts.keepalive && idle_state && self.snd_una == self.snd_max && !unsent)
            .then(|| last_rx + opts.keep_idle + opts.keep_intvl * self.keep_probes)
    }

    /// Whether new data (or our FIN) could be sent right now, window and Nagle permitting.
    pub(crate) fn has_new_data(&self, c: &Conn) -> bool {
        let sending = matches!(
            c.state,
            super::ConnState::Established(_)
                | super::ConnState::CloseWait(_)
                | super::ConnState::FinWait1(_)
                | super::ConnState::Closing(_)
                | super::ConnState::LastAck(_)
        );
        if self.syn_unacked || !sending {
            return false;
        }
        let sent = self.snd_nxt.distance(self.data_base()) as usize;
        let unsent = c.snd.len().saturating_sub(sent);
        if unsent == 0 {
            return self.fin_seq.is_some_and(|f| !self.snd_nxt.after(f) && self.snd_nxt == f);
        }
        let lt = if self.recover.is_none() && self.dupacks > 0 && self.dupacks < 3 {
            self.dupacks * u32::from(self.mss)
        } else {
            0
        };
        let cwnd_room = self.cc.cwnd().saturating_add(lt).saturating_sub(self.pipe());
        let rwnd_room = self.snd_wnd.saturating_sub(self.snd_nxt.distance(self.snd_una));
        let room = cwnd_room.min(rwnd_room) as usize;
        if room == 0 {
            return false;
        }
        let len = unsent.min(room).min(usize::from(self.mss));
        if len == usize::from(self.mss) {
            return true;
        }
        // Partial segment: only if it is all we have and Nagle/cork allow (RFC 9293 §3.7.4).
        if len < unsent {
            // RFC 9293 §3.8.6.2.1 sender SWS avoidance.
            return len as u32 >= self.max_snd_wnd / 2;
        }
        if c.opts.cork {
            return false;
        }
        c.opts.nodelay || self.snd_nxt == self.snd_una || self.fin_seq.is_some()
    }
}

/// RFC 8985 §7.2: "TLP.max_ack_delay", the peer's worst-case delayed-ACK time added to the PTO
/// when only one segment is in flight (its ACK may be delayed). 200 ms, as Linux.
const TLP_MAX_ACK_DELAY: Duration = Duration::from_millis(200);
/// The shortest PTO (Linux's old 10 ms floor): with sub-millisecond RTTs, 2·SRTT alone would
/// probe before a delayed ACK of the second-to-last segment could arrive.
const TLP_MIN_PTO: Duration = Duration::from_millis(10);

impl Tcb {
    /// RFC 8985 §7.2 "Scheduling a loss probe": (re)arm the PTO after new data was sent or
    /// new data was cumulatively acknowledged, unless in fast or RTO recovery, a probe is
    /// already in flight, or segments are SACKed (RACK will find the losses); else disarm it.
    pub(crate) fn schedule_tlp(&mut self, now: Instant) {
        let flight = self.flight();
        if !self.tlp_allowed() || flight == 0 {
            self.tlp_at = None;
            return;
        }
        // TLP_calc_PTO(): 2·SRTT (+ max_ack_delay for a single segment), 1 s without a
        // sample, and never later than the RTO would fire.
        let pto = match self.rtt.srtt() {
            Some(srtt) => {
                let mut p = srtt * 2;
                if flight <= u32::from(self.mss) {
                    p += TLP_MAX_ACK_DELAY;
                }
                p.max(TLP_MIN_PTO)
            }
            None => Duration::from_secs(1),
        };
        let mut at = now + pto;
        if let Some(rto) = self.rto_at {
            at = at.min(rto);
        }
        self.tlp_at = Some(at);
    }

    /// Whether a loss probe may be scheduled or sent now (RFC 8985 §7.2/§7.3 conditions).
    pub(crate) fn tlp_allowed(&self) -> bool {
        self.tlp_on
            && self.recover.is_none()
            && self.rto_recover.is_none()
            && self.rack.tlp_end.is_none()
            && self.log.sacked_segments() == 0
    }

    /// RFC 8985 §6.2 step 5 (and §8, the reordering timer): mark what RACK finds lost; the
    /// first loss outside recovery starts fast recovery, with one congestion response for the
    /// episode (RFC 6675 §5 step 4 / RFC 5681 §3.2). `flight` is FlightSize before the ACK.
    pub(crate) fn rack_detect(&mut self, now: Instant, flight: u32) {
        let in_recovery = self.recover.is_some() || self.rto_recover.is_some();
        let srtt = self.rtt.srtt().unwrap_or(self.rack.rtt);
        let reo = self.rack.reo_wnd(in_recovery, self.log.sacked_segments(), srtt);
        let (marked, timeout) = self.rack.detect_loss(now, reo, &mut self.log);
        self.rack_at = timeout.map(|d| now + d);
        if marked && !in_recovery {
            self.cc.on_loss(now, flight);
            self.recover = Some(self.snd_max);
            self.high_rxt = self.snd_una;
            self.rexmit_first = true;
            self.timed = None;
            self.tlp_at = None;
        }
        if self.log.lost_pending() > 0 {
            self.rexmit_now = true;
        }
    }
}
