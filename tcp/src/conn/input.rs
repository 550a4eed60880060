//! Segment arrival (RFC 9293 §3.10.7): SYN-SENT, the synchronized states, TIME-WAIT.

use core::net::Ipv4Addr;
use std::collections::VecDeque;

use joyride_base::Instant;
use joyride_ip::tcp::{TcpFlags, TcpRepr};

use super::{Conn, ConnState, Tcb, TimeWait};
use crate::config::TcpConfig;
use crate::error::TcpError;
use crate::seq::SeqNum;
use crate::socket::rst_for;

/// At most this many stateless replies wait for `poll_transmit`.
const MAX_REPLIES: usize = 1024;

/// Stack-wide state a connection needs while processing: the queue of replies that carry no
/// payload (RSTs), and the RFC 5961 §7 challenge-ACK rate limit.
#[derive(Debug)]
pub(crate) struct Ctl {
    replies: VecDeque<(Ipv4Addr, Ipv4Addr, TcpRepr<'static>)>,
    challenge_limit: u32,
    challenge_sent: u32,
    challenge_epoch: u64,
    /// SYNs dropped because a listen queue was full.
    pub stats_syn_dropped: u64,
    /// SYN-ACKs answered with a SYN cookie.
    pub stats_syncookies_sent: u64,
}

impl Ctl {
    pub(crate) fn new(cfg: &TcpConfig) -> Self {
        Ctl {
            replies: VecDeque::with_capacity(64),
            challenge_limit: cfg.challenge_ack_limit,
            challenge_sent: 0,
            challenge_epoch: 0,
            stats_syn_dropped: 0,
            stats_syncookies_sent: 0,
        }
    }

    pub(crate) fn reconfigure(&mut self, cfg: &TcpConfig) {
        self.challenge_limit = cfg.challenge_ack_limit;
    }

    /// Queue a payload-free segment (dropped when the queue is full: RSTs are best effort).
    pub(crate) fn push_reply(&mut self, src: Ipv4Addr, dst: Ipv4Addr, seg: TcpRepr<'static>) {
        if self.replies.len() < MAX_REPLIES {
            self.replies.push_back((src, dst, seg));
        }
    }

    pub(crate) fn pop_reply(&mut self) -> Option<(Ipv4Addr, Ipv4Addr, TcpRepr<'static>)> {
        self.replies.pop_front()
    }

    pub(crate) fn has_replies(&self) -> bool {
        !self.replies.is_empty()
    }

    /// RFC 5961 §7: "limit the number of challenge ACKs sent per second": true when one more
    /// may go out now.
    pub(crate) fn allow_challenge(&mut self, now: Instant) -> bool {
        let sec = now.as_millis() / 1000;
        if sec != self.challenge_epoch {
            self.challenge_epoch = sec;
            self.challenge_sent = 0;
        }
        if self.challenge_sent < self.challenge_limit {
            self.challenge_sent += 1;
            true
        } else {
            false
        }
    }
}

/// The sequence-space length of a segment (RFC 9293 §3.4: SYN and FIN count).
fn seg_len(seg: &TcpRepr<'_>) -> u32 {
    seg.payload.len() as u32
        + u32::from(seg.flags.contains(TcpFlags::SYN))
        + u32::from(seg.flags.contains(TcpFlags::FIN))
}

impl Conn {
    /// Process one segment for this connection.
    pub(crate) fn input(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        ctl: &mut Ctl,
        seg: &TcpRepr<'_>,
    ) {
        self.last_rx = now;
        match self.state {
            ConnState::SynSent(_) => self.input_syn_sent(now, cfg, ctl, seg),
            ConnState::TimeWait(_) => self.input_time_wait(now, cfg, seg),
            ConnState::Closed => {
                if let Some(r) = rst_for(seg) {
                    ctl.push_reply(*self.local.ip(), *self.remote.ip(), r);
                }
            }
            _ => self.input_synced(now, cfg, ctl, seg),
        }
    }

    fn reply_rst(&self, ctl: &mut Ctl, seg: &TcpRepr<'_>) {
        if let Some(r) = rst_for(seg) {
            ctl.push_reply(*self.local.ip(), *self.remote.ip(), r);
        }
    }

    /// RFC 9293 §3.10.7.3: SYN-SENT.
    fn input_syn_sent(&mut self, now: Instant, cfg: &TcpConfig, ctl: &mut Ctl, seg: &TcpRepr<'_>) {
        let ConnState::SynSent(ss) = &self.state else { return };
        let (iss, tries, first_sent) = (ss.iss, ss.tries, ss.first_sent);
        let f = seg.flags;
        let ack = SeqNum::new(seg.ack);
        if f.contains(TcpFlags::ACK) {
            // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the RST bit is set,
            // if so drop the segment and return) <SEQ=SEG.ACK><CTL=RST>".
            if ack.before_eq(iss) || ack.after(iss + 1) || tries == 0 {
                if !f.contains(TcpFlags::RST) {
                    self.reply_rst(ctl, seg);
                }
                return;
            }
        }
        if f.contains(TcpFlags::RST) {
            // "If the ACK was acceptable, then signal to the user 'error: connection reset',
            // drop the segment, enter CLOSED state". RFC 5961 §3 does not apply here (the ACK
            // check protects SYN-SENT). Without an ACK: "drop the segment and return".
            if f.contains(TcpFlags::ACK) {
                self.die(Some(TcpError::ConnectionRefused));
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            return;
        }
        if f.contains(TcpFlags::FIN) && cfg.drop_synfin {
            return;
        }
        let mut tcb = Tcb::from_synack(now, cfg, &self.opts, iss, seg);
        tcb.ts_recent = seg.options.timestamps.map_or(0, |t| t.0);
        if f.contains(TcpFlags::ACK) {
            // "If SND.UNA > ISS (our SYN has been ACKed), change the connection state to
            // ESTABLISHED, form an ACK segment <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK> and send it."
            tcb.snd_una = ack;
            tcb.snd_wl1 = SeqNum::new(seg.seq);
            tcb.snd_wl2 = ack;
            tcb.ack_now = true;
            if tries == 1 {
                // RFC 6298 §2: the SYN was not retransmitted, so its ACK is a valid sample.
                if let Some(t0) = first_sent {
                    tcb.rtt.on_sample(now - t0);
                }
            } else {
                // RFC 6298 §5.7: the SYN was retransmitted; start data with RTO ≥ 3 s.
                tcb.rtt.on_handshake_retransmitted();
            }
            self.state = ConnState::Established(tcb);
            self.round_rcvbuf(cfg);
            self.on_established(cfg);
            // "If there are other controls or text in the segment, then continue processing at
            // the sixth step below where the URG bit is checked" (data in a SYN-ACK, a FIN).
            if !seg.payload.is_empty() || f.contains(TcpFlags::FIN) {
                self.process_text_and_fin(now, cfg, seg, SeqNum::new(seg.seq) + 1);
            }
        } else {
            // Simultaneous open: "enter SYN-RECEIVED, form a SYN,ACK segment
            // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it".
            tcb.snd_nxt = iss;
            tcb.snd_max = iss;
            tcb.syn_unacked = true;
            tcb.rto_at = Some(now);
            self.state = ConnState::SynRcvd(tcb);
            self.round_rcvbuf(cfg);
            if !seg.payload.is_empty() {
                // RFC 9293 §3.10.7.3: text in the SYN is queued "for processing after the
                // ESTABLISHED state has been reached" (it becomes readable then).
                let n = self.rcv.write_at(0, seg.payload);
                if let Some(t) = self.state.tcb_mut() {
                    t.syn_data = n as u32;
                }
            }
        }
    }

    /// Once the MSS is known (a SYN arrived), FreeBSD rounds the receive buffer up to a
    /// multiple of it (`tcp_mss()`); `SO_RCVBUF` then reports the rounded size.
    pub(crate) fn round_rcvbuf(&mut self, cfg: &TcpConfig) {
        let Some(t) = self.state.tcb() else { return };
        if cfg.round_rcvbuf_to_mss {
            let mss = usize::from(t.mss.max(1));
            let cap = self.rcv.capacity();
            let rounded = cap.div_ceil(mss) * mss;
            if rounded != cap && rounded <= cfg.max_buffer.max(cap) {
                // Fails only when data is held, which cannot be at this point.
                let _ = self.rcv.set_capacity(rounded);
            }
        }
    }

    /// Entering ESTABLISHED: FreeBSD rounds the receive buffer up to a multiple of the MSS.
    fn on_established(&mut self, _cfg: &TcpConfig) {
        self.became_established = true;
        if let Some(t) = self.state.tcb_mut() {
            // Data that came with a simultaneous-open SYN becomes readable now.
            t.rcv_nxt += core::mem::take(&mut t.syn_data);
        }
        if self.wr_shut {
            // close()/shutdown() during SYN-RECEIVED: the FIN goes out now (RFC 9293 §3.10.4).
            let snd_len = self.snd.len();
            let state = core::mem::replace(&mut self.state, ConnState::Closed);
            self.state = match state {
                ConnState::Established(mut t) => {
                    if t.fin_seq.is_none() {
                        t.fin_seq = Some(t.data_base() + snd_len as u32);
                    }
                    ConnState::FinWait1(t)
                }
                other => other,
            };
        }
    }

    /// TIME-WAIT (RFC 9293 §3.10.7.4, with BSD's refinements): RSTs are ignored (RFC 1337,
    /// TIME-WAIT assassination); a SYN above RCV.NXT may open a new incarnation (RFC 9293
    /// §3.10.7.4 note / RFC 6191), which the socket table hands to the listener; segments
    /// without ACK are dropped; a retransmitted FIN restarts the 2·MSL timer; anything but an
    /// exact duplicate ACK is acknowledged.
    fn input_time_wait(&mut self, now: Instant, cfg: &TcpConfig, seg: &TcpRepr<'_>) {
        let ConnState::TimeWait(tw) = &mut self.state else { return };
        let f = seg.flags;
        let seq = SeqNum::new(seg.seq);
        if f.contains(TcpFlags::RST) {
            return;
        }
        if f.contains(TcpFlags::SYN) && !f.contains(TcpFlags::ACK) && seq.after(tw.rcv_nxt) {
            self.reopen = true;
            self.state = ConnState::Closed;
            return;
        }
        if !f.contains(TcpFlags::ACK) {
            return;
        }
        let len = seg.payload.len() as u32 + u32::from(f.contains(TcpFlags::SYN));
        if f.contains(TcpFlags::FIN) && (seq + len) + 1 == tw.rcv_nxt {
            // "TIME-WAIT STATE: Remain in the TIME-WAIT state. Acknowledge it, and restart the
            // 2 MSL timeout."
            tw.expires = now + cfg.msl * 2;
        }
        if f != TcpFlags::ACK
            || !seg.payload.is_empty()
            || seq != tw.rcv_nxt
            || SeqNum::new(seg.ack) != tw.snd_nxt
        {
            tw.ack_now = true;
        }
    }

    /// RFC 9293 §3.10.7.4: SYN-RECEIVED and the synchronized states.
    fn input_synced(&mut self, now: Instant, cfg: &TcpConfig, ctl: &mut Ctl, seg: &TcpRepr<'_>) {
        let ts_val = self.ts_val(now);
        let is_synrcvd = matches!(self.state, ConnState::SynRcvd(_));
        let free = self.rcv.window() as u32;
        let has_parent = self.parent.is_some();
        let Some(t) = self.state.tcb_mut() else { return };
        t.segs_in += 1;
        let f = seg.flags;
        let mut seq = SeqNum::new(seg.seq);
        let len = seg_len(seg);

        // RFC 7323 §5.3 PAWS: a segment whose TSval is older than TS.Recent is a duplicate.
        if t.ts_ok && !f.contains(TcpFlags::RST) {
            if let Some((tsval, _)) = seg.options.timestamps {
                if (tsval.wrapping_sub(t.ts_recent) as i32) < 0 {
                    t.ack_now = true;
                    return;
                }
            }
        }
        let _ = ts_val;

        // First: the sequence number (§3.10.7.4 acceptability table).
        // RCV.WND: the window we advertised (its right edge never moves left), or the free
        // buffer space when larger (BSD's `sbspace`; the FreeBSD scripts probe the right edge
        // of the buffer, 65700, not of the 16-bit field). An embryonic passive connection
        // (FreeBSD's syncache) only knows the advertised window.
        let adv = if t.rcv_adv.after(t.rcv_nxt) { t.rcv_adv.distance(t.rcv_nxt) } else { 0 };
        let passive_embryo = is_synrcvd && has_parent;
        let rcv_wnd = if passive_embryo { adv } else { adv.max(free) };
        let wnd_end = t.rcv_nxt + rcv_wnd;
        let acceptable = if len == 0 {
            if rcv_wnd == 0 {
                seq == t.rcv_nxt
            } else {
                seq.in_range(t.rcv_nxt, wnd_end)
            }
        } else if rcv_wnd == 0 {
            false
        } else {
            seq.in_range(t.rcv_nxt, wnd_end) || (seq + len - 1).in_range(t.rcv_nxt, wnd_end)
        };

        // Second: RST (RFC 5961 §3).
        if f.contains(TcpFlags::RST) {
            let in_window =
                if rcv_wnd == 0 { seq == t.rcv_nxt } else { seq.in_range(t.rcv_nxt, wnd_end) };
            if !in_window {
                return;
            }
            if seq != t.rcv_nxt && cfg.rfc5961_rst {
                // "If the RST bit is set and the sequence number does not exactly match the next
                // expected sequence value, yet is within the current receive window, TCP MUST
                // send an acknowledgment (challenge ACK)".
                if ctl.allow_challenge(now) {
                    t.ack_now = true;
                    t.challenge = true;
                }
                return;
            }
            let err = match self.state {
                // SYN-RECEIVED from a passive open: "return this connection to LISTEN" (the
                // listener never saw it); from an active open: "connection refused".
                ConnState::SynRcvd(_) => {
                    if self.parent.is_some() {
                        None
                    } else {
                        Some(TcpError::ConnectionRefused)
                    }
                }
                // RFC 9293 lists no error for CLOSING/LAST-ACK; FreeBSD reports ECONNRESET
                // for every synchronized state, as the conformance scripts expect.
                ConnState::Established(_)
                | ConnState::FinWait1(_)
                | ConnState::FinWait2(_)
                | ConnState::CloseWait(_)
                | ConnState::Closing(_)
                | ConnState::LastAck(_) => Some(TcpError::ConnectionReset),
                _ => None,
            };
            self.die(err);
            return;
        }

        // Third/fourth: SYN in a synchronized state (RFC 5961 §4, RFC 9293 §3.10.7.4).
        if f.contains(TcpFlags::SYN) {
            if is_synrcvd && self.parent.is_some() && seq == t.irs {
                // A retransmitted SYN: answer with the SYN-ACK again.
                t.rto_at = Some(now);
                t.snd_nxt = t.iss;
                return;
            }
            if cfg.rfc5961_syn || !acceptable {
                // "TCP MUST send an ACK (challenge ACK) to the remote peer".
                if ctl.allow_challenge(now) {
                    t.ack_now = true;
                    t.challenge = true;
                }
                return;
            }
            // RFC 793 behaviour (insecure_syn): an in-window SYN resets the connection.
            let rst = TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: t.snd_nxt.get(),
                ack: t.rcv_nxt.get(),
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                urgent: 0,
                options: Default::default(),
                payload: &[],
            };
            ctl.push_reply(*self.local.ip(), *self.remote.ip(), rst);
            let err = if is_synrcvd { None } else { Some(TcpError::ConnectionReset) };
            self.die(err);
            return;
        }

        let mut old_dup = false;
        if !acceptable {
            // "If an incoming segment is not acceptable, an acknowledgment should be sent in
            // reply (unless the RST bit is set ...)".
            t.ack_now = true;
            if !seq.before(t.rcv_nxt) {
                return;
            }
            if !seg.payload.is_empty() && cfg.dsack && t.sack_ok {
                // RFC 2883: report the duplicate.
                t.dsack = Some((seq, seq + seg.payload.len() as u32));
            }
            // An entirely old segment: its text and FIN are dropped, but (as BSD does, Stevens
            // vol. 2 p. 960) its ACK field is still processed, e.g. the ACK of our FIN.
            old_dup = true;
        }

        // Any acceptable segment shows the peer is alive (keepalive, RFC 1122 §4.2.3.6).
        t.keep_probes = 0;

        // Fifth: the ACK field.
        if !f.contains(TcpFlags::ACK) {
            return;
        }
        let ack = SeqNum::new(seg.ack);
        if is_synrcvd {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state ... If the segment
            // acknowledgment is not acceptable, form a reset segment <SEQ=SEG.ACK><CTL=RST>".
            if !(t.snd_una.before(ack) && ack.before_eq(t.snd_max)) || t.snd_max == t.iss {
                let r = rst_for(seg);
                if let Some(r) = r {
                    ctl.push_reply(*self.local.ip(), *self.remote.ip(), r);
                }
                return;
            }
            t.syn_unacked = false;
            t.snd_una = t.iss + 1;
            t.rto_at = None;
            // RFC 9293 §3.10.7.4: "set SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK".
            t.snd_wnd = u32::from(seg.window) << t.snd_wscale;
            t.max_snd_wnd = t.max_snd_wnd.max(t.snd_wnd);
            t.snd_wl1 = seq;
            t.snd_wl2 = ack;
            if t.retries > 0 {
                t.rtt.on_handshake_retransmitted();
            }
            t.retries = 0;
            t.timed = None;
            let ConnState::SynRcvd(tcb) = core::mem::replace(&mut self.state, ConnState::Closed)
            else {
                return;
            };
            self.state = ConnState::Established(tcb);
            self.on_established(cfg);
        }
        let Some(t) = self.state.tcb_mut() else { return };
        // RFC 5961 §5: "If the ACK value is acceptable only if it is in the range of
        // ((SND.UNA - MAX.SND.WND) =< SEG.ACK =< SND.NXT)"; otherwise send an ACK and drop.
        let lower = t.snd_una - t.max_snd_wnd.max(1);
        if ack.after(t.snd_max) || ack.before(lower) {
            if ctl.allow_challenge(now) {
                t.ack_now = true;
            }
            return;
        }
        // RFC 7323 §4.3: update TS.Recent when the segment covers Last.ACK.sent.
        if t.ts_ok {
            if let Some((tsval, _)) = seg.options.timestamps {
                if seq.before_eq(t.last_ack_sent) {
                    t.ts_recent = tsval;
                }
            }
        }
        let fin_acked_before = t.fin_acked();
        self.process_ack(now, cfg, seg);
        let Some(t) = self.state.tcb_mut() else { return };
        let fin_acked = !fin_acked_before && t.fin_acked();
        if fin_acked {
            let state = core::mem::replace(&mut self.state, ConnState::Closed);
            self.state = match state {
                // "FIN-WAIT-1: ... if the FIN segment is now acknowledged, then enter
                // FIN-WAIT-2 and continue processing in that state."
                ConnState::FinWait1(t) => ConnState::FinWait2(t),
                // "CLOSING: ... if the ACK acknowledges our FIN, then enter the TIME-WAIT state".
                // (The peer's FIN was acknowledged already: nothing more to send.)
                ConnState::Closing(t) => {
                    let mut tw = self.time_wait(now, cfg, &t);
                    if let ConnState::TimeWait(w) = &mut tw {
                        w.ack_now = false;
                    }
                    tw
                }
                // "LAST-ACK: ... If our FIN is now acknowledged, delete the TCB".
                ConnState::LastAck(_) => ConnState::Closed,
                other => other,
            };
            if matches!(self.state, ConnState::Closed | ConnState::TimeWait(_)) {
                return;
            }
        }
        // Sixth/seventh: URG is ignored (RFC 6093: urgent data is delivered inline); text.
        // Trim data before RCV.NXT (§3.10.7.4 "trim off any portion ... that lies outside
        // the window").
        let Some(t) = self.state.tcb_mut() else { return };
        if seq.before(t.rcv_nxt) && !seg.payload.is_empty() && !old_dup {
            let dup = t.rcv_nxt.distance(seq).min(seg.payload.len() as u32);
            // Duplicate data draws an immediate ACK (RFC 5681 §4.2), with a D-SACK block.
            t.ack_now = true;
            if dup > 0 && cfg.dsack && t.sack_ok {
                t.dsack = Some((seq, seq + dup));
            }
        }
        if seq.before(t.rcv_nxt) && seg.payload.is_empty() {
            seq = t.rcv_nxt;
        }
        if old_dup {
            return;
        }
        self.process_text_and_fin(now, cfg, seg, seq);
    }

    /// RFC 9293 §3.10.7.4 fifth step for ESTABLISHED and later: advance SND.UNA, update the
    /// window, sample RTT, grow cwnd, detect duplicate ACKs (RFC 5681 §3.2 / RFC 6582 / RFC
    /// 6675).
    fn process_ack(&mut self, now: Instant, cfg: &TcpConfig, seg: &TcpRepr<'_>) {
        let _ = cfg;
        let ts_now = self.ts_val(now);
        let Some(t) = self.state.tcb_mut() else { return };
        let ack = SeqNum::new(seg.ack);
        let seq = SeqNum::new(seg.seq);
        let wnd = u32::from(seg.window) << t.snd_wscale;
        let flight_before = t.flight();
        // Remember SACK blocks (RFC 2018 §3; RFC 6675 §5 "update the scoreboard").
        let sacked_before = t.sb.sacked_bytes();
        let mut blocks = [(ack, ack); 4];
        let nb = usize::from(seg.options.sack_len).min(4);
        for (d, b) in blocks.iter_mut().zip(&seg.options.sack_blocks[..nb]) {
            *d = (SeqNum::new(b.left), SeqNum::new(b.right));
        }
        let new_una = if ack.after(t.snd_una) { ack } else { t.snd_una };
        if t.sack_ok && (nb > 0 || !t.sb.is_empty()) {
            t.sb.update(new_una, t.snd_max, &blocks[..nb]);
        }
        let new_sack = t.sb.sacked_bytes() > sacked_before;
        // RFC 2883 §4: a first block below the cumulative ACK (or inside the second) is a
        // D-SACK: a duplicate arrived.
        let dsack = (nb > 0).then_some(blocks[0]).filter(|&(l, r)| {
            r.before_eq(ack) || (nb > 1 && l.after_eq(blocks[1].0) && r.before_eq(blocks[1].1))
        });
        if t.rack_on {
            // RFC 8985 §6.2 steps 1–3: each segment newly delivered, cumulatively or
            // selectively, updates RACK.min_RTT, RACK.rtt/xmit_ts/end_seq and RACK.fack.
            let rack = &mut t.rack;
            t.log.on_ack(new_una, &blocks[..nb], |seg| rack.on_delivered(now, seg));
            if dsack.is_some() {
                // §6.2 step 4: a D-SACK shows reordering (or a spurious retransmission).
                t.rack.on_dsack(new_una, t.snd_max);
            }
            tlp_process_ack(t, now, ack, dsack, nb, flight_before);
        }
        if ack.after(t.snd_una) {
            let acked = ack.distance(t.snd_una);
            // Data bytes acknowledged: the FIN's sequence number is not in the buffer.
            let data_end = t.data_base() + self.snd.len() as u32;
            let data_acked = ack.min(data_end).distance(t.data_base()) as usize;
            self.snd.ack(data_acked);
            t.bytes_acked += data_acked as u64;
            t.snd_una = ack;
            if t.snd_nxt.before(ack) {
                t.snd_nxt = ack;
            }
            // RTT: timestamps (RFC 7323 §4) or one timed segment (Karn, RFC 6298 §3).
            if let Some((_, ecr)) = seg.options.timestamps.filter(|_| t.ts_ok) {
                if ecr != 0 {
                    let ms = ts_now.wrapping_sub(ecr);
                    if ms < 60_000 {
                        t.rtt.on_sample(core::time::Duration::from_millis(u64::from(ms)));
                    }
                }
            } else if let Some((s, t0)) = t.timed {
                if ack.after(s) {
                    t.rtt.on_sample(now - t0);
                    t.timed = None;
                }
            }
            t.retries = 0;
            t.rtt.reset_backoff();
            t.keep_probes = 0;
            // Recovery bookkeeping (RFC 6582 §3.2 steps 3–5, RFC 6675 §5).
            match t.recover {
                Some(r) if ack.after_eq(r) => {
                    // Full acknowledgment: leave recovery, cwnd = ssthresh.
                    t.recover = None;
                    t.dupacks = 0;
                    t.cc.on_recovery_exit(now);
                    // RFC 8985 §6.2 step 4: "exiting Fast or RTO recovery".
                    t.rack.on_recovery_exit();
                }
                Some(_) => {
                    // RFC 6582 §3.2 step 5 partial ACK: retransmit the next unacknowledged
                    // segment at once (with SACK, RFC 6675 NextSeg picks it).
                    t.dupacks = 0;
                    t.rexmit_first = !t.sack_ok;
                    t.rexmit_now = true;
                }
                None => {
                    t.dupacks = 0;
                    let srtt = t.rtt.srtt();
                    t.cc.on_ack(now, acked, flight_before, srtt);
                }
            }
            if t.rto_recover.is_some_and(|r| ack.after_eq(r)) {
                t.rto_recover = None;
                t.rack.on_recovery_exit();
            }
            // RFC 6298 §5.2/5.3: stop the timer when all data is acknowledged, else restart it.
            if t.snd_una == t.snd_max {
                t.rto_at = None;
                t.unacked_since = None;
            } else {
                t.rto_at = Some(now + t.rtt.rto());
                t.unacked_since = Some(now);
            }
            // RFC 8985 §7.2: restart the PTO on an ACK of new data (or disarm it).
            t.schedule_tlp(now);
        } else if ack == t.snd_una
            && seg.payload.is_empty()
            && !seg.flags.contains(TcpFlags::FIN)
            && t.snd_max != t.snd_una
            && (wnd == t.snd_wnd || new_sack)
        {
            // RFC 5681 §2 duplicate ACK (RFC 6675 counts ACKs carrying new SACK information).
            t.dupacks += 1;
            if t.recover.is_some() {
                // Each further duplicate lets pipe shrink; send what RFC 6675 NextSeg allows.
                t.rexmit_now = true;
            } else if !t.rack_on && (t.dupacks >= 3 || (t.sack_ok && t.una_lost())) {
                // RFC 5681 §3.2 step 2–3 / RFC 6675 §5 step 4: enter fast recovery and
                // retransmit the first unacknowledged segment at once.
                t.cc.on_loss(now, flight_before);
                t.recover = Some(t.snd_max);
                t.high_rxt = t.snd_una;
                t.rexmit_first = true;
                t.rexmit_now = true;
                t.timed = None;
            }
            // RFC 3042 limited transmit: the first two duplicate ACKs each allow one new
            // segment beyond cwnd (the sender reads `dupacks`).
        } else if ack == t.snd_una && wnd == 0 && t.snd_wnd == 0 {
            // A zero-window probe was answered: the peer is alive (persist must not time out).
            t.retries = 0;
        }
        if t.rack_on {
            // RFC 8985 §6.2 step 5: detect losses (with SACK, RACK replaces RFC 6675's
            // DupThresh rule above, RFC 8985 §6.2 / §9.2).
            t.rack_detect(now, flight_before);
        }
        // RFC 9293 §3.10.7.4: "If SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK),
        // set SND.WND <- SEG.WND, set SND.WL1 <- SEG.SEQ, and set SND.WL2 <- SEG.ACK."
        if t.snd_wl1.before(seq) || (t.snd_wl1 == seq && t.snd_wl2.before_eq(ack)) {
            let opened = t.snd_wnd == 0 && wnd > 0;
            t.snd_wnd = wnd;
            t.snd_wl1 = seq;
            t.snd_wl2 = ack;
            t.max_snd_wnd = t.max_snd_wnd.max(wnd);
            if opened {
                t.persist_at = None;
                t.persist_backoff = 0;
            }
        }
    }

    /// Seventh and eighth steps: segment text and FIN, for a segment starting at `seq`
    /// (already trimmed at the front when it overlapped RCV.NXT... its payload is `seg`'s).
    fn process_text_and_fin(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        seg: &TcpRepr<'_>,
        seq: SeqNum,
    ) {
        let receiving = matches!(
            self.state,
            ConnState::Established(_) | ConnState::FinWait1(_) | ConnState::FinWait2(_)
        );
        let Some(t) = self.state.tcb_mut() else { return };
        let orig = SeqNum::new(seg.seq) + u32::from(seg.flags.contains(TcpFlags::SYN));
        let mut payload = seg.payload;
        if receiving && !payload.is_empty() {
            // Trim what lies before RCV.NXT.
            let mut start = orig;
            if start.before(t.rcv_nxt) {
                let cut = (t.rcv_nxt.distance(start) as usize).min(payload.len());
                payload = &payload[cut..];
                start = t.rcv_nxt;
            }
            let _ = seq;
            if !payload.is_empty() {
                let offset = start.distance(t.rcv_nxt) as usize;
                let had_ooo = !self.rcv.assembler().is_empty();
                if t.dsack.is_none() && cfg.dsack && t.sack_ok {
                    // RFC 2883 §4: data that duplicates out-of-order data already held.
                    let end = offset + payload.len();
                    let dup = self.rcv.assembler().ranges().find_map(|(o, l)| {
                        let (a, b) = (o.max(offset), (o + l).min(end));
                        (a < b).then_some((a, b))
                    });
                    if let Some((a, b)) = dup {
                        t.dsack = Some((t.rcv_nxt + a as u32, t.rcv_nxt + b as u32));
                        t.ack_now = true;
                    }
                }
                let advance = self.rcv.write_at(offset, payload);
                t.rcv_nxt += advance as u32;
                t.bytes_received += advance as u64;
                let ooo = offset > 0 || !self.rcv.assembler().is_empty();
                if ooo || had_ooo || advance == 0 {
                    // RFC 5681 §4.2: "an immediate ACK SHOULD be generated when the segment
                    // fills in all or part of a gap" and for out-of-order segments.
                    t.ack_now = true;
                } else {
                    t.unacked_segs += 1;
                    if t.unacked_segs >= u32::from(cfg.ack_every.max(1))
                        || self.opts.quickack
                        || payload.len() < usize::from(t.adv_mss) / 2 && t.unacked_segs >= 2
                    {
                        // RFC 5681 §4.2: ACK at least every second full-sized segment.
                        t.ack_now = true;
                    } else if t.delack_at.is_none() {
                        // RFC 9293 §3.8.6.3: delay, but less than 0.5 s.
                        t.delack_at = Some(now + cfg.delayed_ack);
                    }
                }
            } else {
                t.ack_now = true;
            }
        } else if !payload.is_empty() {
            // Text after our peer's FIN or in a closing state: ignore, but acknowledge.
            t.ack_now = true;
        }
        // Eighth: FIN.
        if seg.flags.contains(TcpFlags::FIN) {
            let fin_at = orig + seg.payload.len() as u32;
            if fin_at.after_eq(t.rcv_nxt) {
                t.peer_fin_at = Some(fin_at);
            }
            t.ack_now = true;
        }
        if let Some(fin_at) = t.peer_fin_at {
            if fin_at == t.rcv_nxt && !self.peer_fin {
                // "advance RCV.NXT over the FIN, and send an acknowledgment for the FIN".
                t.rcv_nxt += 1;
                t.ack_now = true;
                t.delack_at = None;
                self.peer_fin = true;
                self.rcv.drop_out_of_order();
                let state = core::mem::replace(&mut self.state, ConnState::Closed);
                self.state = match state {
                    ConnState::SynRcvd(t) | ConnState::Established(t) => ConnState::CloseWait(t),
                    // "FIN-WAIT-1: If our FIN has been ACKed ... enter TIME-WAIT ...; otherwise,
                    // enter the CLOSING state."
                    ConnState::FinWait1(t) => {
                        if t.fin_acked() {
                            self.time_wait(now, cfg, &t)
                        } else {
                            ConnState::Closing(t)
                        }
                    }
                    ConnState::FinWait2(t) => self.time_wait(now, cfg, &t),
                    other => other,
                };
            }
        }
    }

    /// Build the TIME-WAIT state from a control block (RFC 9293 §3.10.7.4: 2·MSL timer); the
    /// final ACK is due at once.
    pub(crate) fn time_wait(&self, now: Instant, cfg: &TcpConfig, t: &Tcb) -> ConnState {
        ConnState::TimeWait(TimeWait {
            snd_nxt: t.snd_max,
            rcv_nxt: t.rcv_nxt,
            rcv_wscale: t.rcv_wscale,
            ts: if t.ts_ok { Some(t.ts_recent) } else { None },
            expires: now + cfg.msl * 2,
            ack_now: true,
        })
    }
}

/// RFC 8985 §7.4.2 "Detecting losses repaired by the loss probe": once the probe is
/// acknowledged, a retransmitted probe whose original was not also delivered (no D-SACK for
/// it) repaired a loss, which costs one congestion response outside recovery.
fn tlp_process_ack(
    t: &mut Tcb,
    now: Instant,
    ack: SeqNum,
    dsack: Option<(SeqNum, SeqNum)>,
    nb: usize,
    flight: u32,
) {
    let Some(end) = t.rack.tlp_end else { return };
    if ack.before(end) {
        return;
    }
    // A probe of new data: RACK sees any loss it reveals. A D-SACK of the probe: the
    // original and the probe both arrived.
    let repaired = if !t.rack.tlp_retrans || dsack.is_some_and(|(_, r)| r == end) {
        false
    } else if ack.after(end) || (nb == 0 && ack == t.snd_una) {
        true // the probe alone filled the hole (a later ACK, or a duplicate ACK)
    } else {
        return; // wait for the D-SACK or a later ACK
    };
    t.rack.tlp_end = None;
    if repaired && t.recover.is_none() && t.rto_recover.is_none() {
        t.cc.on_loss(now, flight);
        t.cc.on_recovery_exit(now);
    }
}
