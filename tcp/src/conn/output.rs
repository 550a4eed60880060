//! Segment departure and timers: SYN/SYN-ACK, data (Nagle, cork, SWS avoidance), FIN,
//! retransmission (RTO, fast retransmit, SACK holes), ACKs (delayed, SACK/D-SACK), window
//! updates, persist and keepalive probes.

use joyride_base::Instant;
use joyride_ip::tcp::{SackBlock, TcpFlags, TcpOptions, TcpRepr};

use super::tcb::our_mss;
use super::{Conn, ConnState, Ctl, Tcb};
use crate::buffer::{RecvBuffer, SendBuffer};
use crate::config::TcpConfig;
use crate::error::TcpError;
use crate::seq::SeqNum;

/// What a poll hands to the caller.
pub(crate) type Emit<'e> = dyn FnMut(&TcpRepr<'_>) + 'e;

/// The window field for `rcv` under shift `ws` (RFC 7323 §2.3): the free buffer space, capped
/// at what the field can express, rounded down to the scale.
fn window_field(t: &Tcb, rcv: &RecvBuffer) -> (u16, SeqNum) {
    let max = 65_535u32 << t.rcv_wscale;
    let mut wnd = (rcv.window() as u32).min(max);
    // RFC 9293 §3.8.6.2.2 receiver SWS avoidance: do not offer a sliver of window (less than
    // min(RCV.BUFF/4, MSS), as FreeBSD does) ...
    if wnd < (rcv.capacity() as u32 / 4).min(u32::from(t.adv_mss)) {
        wnd = 0;
    }
    // ... but never move the right edge left of what was promised (§3.8.6.2.1).
    if t.rcv_adv.after(t.rcv_nxt) {
        wnd = wnd.max(t.rcv_adv.distance(t.rcv_nxt).min(max));
    }
    let field = wnd >> t.rcv_wscale;
    (field as u16, t.rcv_nxt + (field << t.rcv_wscale))
}

/// Options for a non-SYN segment: timestamps and SACK/D-SACK blocks.
fn seg_options(t: &Tcb, rcv: &RecvBuffer, ts_val: u32) -> TcpOptions {
    let mut o = TcpOptions::default();
    if t.ts_ok {
        o.timestamps = Some((ts_val, t.ts_recent));
    }
    if t.sack_ok {
        let max = if t.ts_ok { 3 } else { 4 };
        let mut n = 0usize;
        if let Some((l, r)) = t.dsack {
            // RFC 2883 §4: the D-SACK block goes first.
            o.sack_blocks[0] = SackBlock { left: l.get(), right: r.get() };
            n = 1;
        }
        // (Nothing held out of order, the usual case: no blocks to select.)
        let held = !rcv.assembler().is_empty();
        for (off, len) in held.then(|| rcv.assembler().sack_blocks(max - n)).into_iter().flatten() {
            if n >= max {
                break;
            }
            let l = t.rcv_nxt + off;
            o.sack_blocks[n] = SackBlock { left: l.get(), right: (l + len).get() };
            n += 1;
        }
        o.sack_len = n as u8;
    }
    o
}

impl Tcb {
    /// Bookkeeping after any segment carrying our ACK went out.
    fn after_ack_sent(&mut self, edge: SeqNum) {
        self.ack_now = false;
        self.challenge = false;
        self.delack_at = None;
        self.unacked_segs = 0;
        self.window_update = false;
        self.dsack = None;
        self.last_ack_sent = self.rcv_nxt;
        if edge.after(self.rcv_adv) {
            self.rcv_adv = edge;
        }
        self.segs_out += 1;
    }
}

/// Build and emit one segment of a synchronized connection, payload borrowed from `snd` (or
/// copied into `scratch` when it wraps the ring).
#[allow(clippy::too_many_arguments)]
fn emit_seg(
    t: &mut Tcb,
    snd: &SendBuffer,
    rcv: &RecvBuffer,
    ports: (u16, u16),
    ts_val: u32,
    seq: SeqNum,
    off: usize,
    len: usize,
    mut flags: TcpFlags,
    scratch: &mut [u8],
    emit: &mut Emit<'_>,
) {
    let (a, b) = snd.peek_at(off, len);
    let payload: &[u8] = if b.is_empty() {
        a
    } else {
        let n = snd.copy_at(off, &mut scratch[..len]);
        &scratch[..n]
    };
    if !payload.is_empty() && off + payload.len() == snd.len() {
        flags |= TcpFlags::PSH;
    }
    let (window, edge) = window_field(t, rcv);
    let seg = TcpRepr {
        src_port: ports.0,
        dst_port: ports.1,
        seq: seq.get(),
        ack: t.rcv_nxt.get(),
        flags: flags | TcpFlags::ACK,
        window,
        urgent: 0,
        options: seg_options(t, rcv, ts_val),
        payload,
    };
    emit(&seg);
    t.after_ack_sent(edge);
}

impl Conn {
    /// Emit everything due at `now`.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        ctl: &mut Ctl,
        scratch: &mut [u8],
        emit: &mut Emit<'_>,
    ) {
        let _ = ctl;
        let ts_val = self.ts_val(now);
        let ports = (self.local.port(), self.remote.port());
        match &mut self.state {
            ConnState::SynSent(ss) => {
                if now < ss.due {
                    return;
                }
                if ss.tries > cfg.syn_retries {
                    self.die(Some(TcpError::TimedOut));
                    return;
                }
                let mut o =
                    TcpOptions { mss: Some(our_mss(cfg, &self.opts)), ..Default::default() };
                o.window_scale = cfg.window_scale;
                o.sack_permitted = cfg.sack;
                if cfg.timestamps {
                    o.timestamps = Some((ts_val, 0));
                }
                let seg = TcpRepr {
                    src_port: ports.0,
                    dst_port: ports.1,
                    seq: ss.iss.get(),
                    ack: 0,
                    flags: TcpFlags::SYN,
                    // RFC 7323 §2.2: the SYN's window is never scaled.
                    window: self.rcv.window().min(65_535) as u16,
                    urgent: 0,
                    options: o,
                    payload: &[],
                };
                emit(&seg);
                ss.first_sent.get_or_insert(now);
                // RFC 6298 §5.5 backoff for SYN retransmissions.
                let rto = cfg.initial_rto.saturating_mul(1 << ss.tries.min(16)).min(cfg.max_rto);
                ss.tries += 1;
                ss.due = now + rto;
            }
            ConnState::TimeWait(tw) => {
                if tw.ack_now {
                    tw.ack_now = false;
                    let mut o = TcpOptions::default();
                    if let Some(ecr) = tw.ts {
                        o.timestamps = Some((ts_val, ecr));
                    }
                    let wnd = (self.rcv.window() as u32 >> tw.rcv_wscale).min(65_535) as u16;
                    emit(&TcpRepr {
                        src_port: ports.0,
                        dst_port: ports.1,
                        seq: tw.snd_nxt.get(),
                        ack: tw.rcv_nxt.get(),
                        flags: TcpFlags::ACK,
                        window: wnd,
                        urgent: 0,
                        options: o,
                        payload: &[],
                    });
                }
                if now >= tw.expires {
                    self.state = ConnState::Closed;
                }
            }
            ConnState::Closed => {}
            _ => self.poll_synced(now, cfg, ts_val, scratch, emit),
        }
    }

    fn poll_synced(
        &mut self,
        now: Instant,
        cfg: &TcpConfig,
        ts_val: u32,
        scratch: &mut [u8],
        emit: &mut Emit<'_>,
    ) {
        let ports = (self.local.port(), self.remote.port());
        let synrcvd = matches!(self.state, ConnState::SynRcvd(_));
        let can_send_data = matches!(
            self.state,
            ConnState::Established(_)
                | ConnState::CloseWait(_)
                | ConnState::FinWait1(_)
                | ConnState::Closing(_)
                | ConnState::LastAck(_)
        );
        let keepalive_state =
            matches!(self.state, ConnState::Established(_) | ConnState::CloseWait(_));
        let (opts, last_rx) = (self.opts, self.last_rx);
        let Conn { state, snd, rcv, .. } = self;
        let Some(t) = state.tcb_mut() else { return };

        // SYN-RECEIVED: (re)send the SYN-ACK.
        if synrcvd && t.syn_unacked {
            if t.rto_at.is_some_and(|d| d <= now) {
                if t.retries > cfg.synack_retries {
                    self.die(None);
                    return;
                }
                let mut o = TcpOptions { mss: Some(t.adv_mss), ..Default::default() };
                if t.ws_ok {
                    o.window_scale = Some(t.rcv_wscale);
                }
                o.sack_permitted = t.sack_ok;
                if t.ts_ok {
                    o.timestamps = Some((ts_val, t.ts_recent));
                }
                emit(&TcpRepr {
                    src_port: ports.0,
                    dst_port: ports.1,
                    seq: t.iss.get(),
                    ack: t.rcv_nxt.get(),
                    flags: TcpFlags::SYN | TcpFlags::ACK,
                    window: rcv.window().min(65_535) as u16,
                    urgent: 0,
                    options: o,
                    payload: &[],
                });
                t.after_ack_sent(t.rcv_nxt + rcv.window().min(65_535) as u32);
                if t.retries > 0 {
                    t.total_retrans += 1;
                    t.rtt.backoff();
                }
                t.retries += 1;
                t.snd_nxt = t.iss + 1;
                t.snd_max = t.iss + 1;
                t.rto_at = Some(now + t.rtt.rto());
            }
            if t.ack_now || t.window_update {
                let (a, b) = (t.snd_nxt, 0);
                emit_seg(t, snd, rcv, ports, ts_val, a, b, 0, TcpFlags::empty(), scratch, emit);
            }
            return;
        }

        // RFC 8985 §7.3: the PTO expired: send a loss probe (new data if the peer's window
        // allows, else the highest segment again), then re-arm the RTO, not the PTO.
        if t.tlp_at.is_some_and(|d| d <= now) {
            t.tlp_at = None;
            if can_send_data && t.tlp_allowed() && t.snd_una != t.snd_max {
                send_tlp(t, snd, rcv, ports, ts_val, now, scratch, emit);
                t.rto_at = Some(now + t.rtt.rto());
            }
        }
        // RFC 8985 §8: the reordering timer expired: run loss detection again.
        if t.rack_at.is_some_and(|d| d <= now) {
            t.rack_at = None;
            let flight = t.flight();
            t.rack_detect(now, flight);
        }

        // Retransmission timeout (RFC 6298 §5.4–5.6).
        if t.rto_at.is_some_and(|d| d <= now) {
            let user_to = opts.user_timeout > core::time::Duration::ZERO
                && t.unacked_since.is_some_and(|s| now - s >= opts.user_timeout);
            if t.retries >= cfg.max_retries || user_to {
                self.die(Some(TcpError::TimedOut));
                return;
            }
            t.retries += 1;
            t.rtt.backoff();
            let flight = t.flight();
            if t.snd_una != t.snd_max {
                t.cc.on_rto(now, flight);
            }
            t.recover = None;
            t.dupacks = 0;
            t.timed = None;
            if t.rack_on {
                // RFC 8985 §6.3 RACK_mark_losses_on_RTO: the segment at SND.UNA and every one
                // sent RACK.rtt + reo_wnd ago are lost; the recovery loop retransmits them
                // (SACKed ones are skipped, not resent by going back N) while pipe < cwnd.
                let srtt = t.rtt.srtt().unwrap_or(t.rack.rtt);
                let reo = t.rack.reo_wnd(true, t.log.sacked_segments(), srtt);
                if t.log.mark_losses_on_rto(now, t.rack.rtt + reo) {
                    t.sb.clear(); // the receiver reneged (RFC 2018 §8)
                }
                t.rto_recover = (t.snd_una != t.snd_max).then_some(t.snd_max);
                t.rexmit_now = true;
                t.rexmit_first = true;
                t.rack.tlp_end = None;
                t.tlp_at = None;
                t.rack_at = None;
            } else {
                // Go back N: resend from SND.UNA; the scoreboard is discarded (RFC 6675 §5.1).
                t.snd_nxt = t.snd_una;
                t.sb.clear();
                t.rexmit_now = false;
                t.rexmit_first = false;
            }
            t.rto_at = Some(now + t.rtt.rto());
            if t.unacked_since.is_none() {
                t.unacked_since = Some(now);
            }
        }
        if t.delack_at.is_some_and(|d| d <= now) {
            t.delack_at = None;
            t.ack_now = true;
        }
        let mss = usize::from(t.mss.max(1));
        let base = t.data_base();

        // Fast retransmit / recovery (RFC 5681 §3.2, RFC 6582, RFC 6675 §5).
        if core::mem::take(&mut t.rexmit_now) && can_send_data {
            let first = core::mem::take(&mut t.rexmit_first);
            // At most one window's worth per poll; each pass sends one segment.
            if t.rack_on {
                rack_retransmit(t, snd, rcv, ports, ts_val, now, first, scratch, emit);
            }
            // (With RACK the loss marks above decide; RFC 6675 NextSeg does not run.)
            let passes = if t.rack_on { 0 } else { 64 };
            for pass in 0..passes {
                let seg = if first && pass == 0 {
                    // Entering recovery / NewReno partial ACK: SND.UNA itself.
                    Some((t.snd_una, mss as u32))
                } else if t.sack_ok && t.recover.is_some() && !t.sb.is_empty() {
                    // RFC 6675 §5 step (C): "while pipe < cwnd", NextSeg() retransmissions
                    // (rules 1 and 3); new data (rule 2) goes through the loop below.
                    if t.pipe() >= t.cc.cwnd() {
                        None
                    } else {
                        let unsent = snd.len().saturating_sub(t.snd_max.distance(base) as usize);
                        let allowed = (unsent as u32).min(t.snd_wnd.saturating_sub(t.flight()));
                        t.sb.next_seg(t.snd_una, t.snd_max, t.high_rxt, mss as u32, allowed)
                            .filter(|n| n.retransmit)
                            .map(|n| (n.seq, n.len))
                    }
                } else {
                    None
                };
                let Some((s, slen)) = seg else { break };
                let off = s.distance(base) as usize;
                let len = (slen as usize).min(mss).min(snd.len().saturating_sub(off));
                let fin = t.fin_seq.is_some_and(|f| f == s + len as u32);
                if len == 0 && !fin {
                    break;
                }
                let flags = if fin { TcpFlags::FIN } else { TcpFlags::empty() };
                emit_seg(t, snd, rcv, ports, ts_val, s, off, len, flags, scratch, emit);
                t.total_retrans += 1;
                let end = s + len as u32 + u32::from(fin);
                if end.after(t.high_rxt) {
                    t.high_rxt = end;
                }
                if t.rto_at.is_none() {
                    t.rto_at = Some(now + t.rtt.rto());
                }
            }
        }

        // New data (and go-back-N retransmission after an RTO).
        let mut sent_new = false;
        while can_send_data {
            #![allow(clippy::while_immutable_condition)] // the loop ends by `break`
            let off = t.snd_nxt.distance(base) as usize;
            let unsent = snd.len().saturating_sub(off);
            let fin_pending = t.fin_seq.is_some_and(|f| !t.snd_nxt.after(f));
            // RFC 3042 limited transmit: one extra segment per each of the first two dupacks.
            let lt = if t.recover.is_none() && t.dupacks > 0 && t.dupacks < 3 {
                t.dupacks * t.mss as u32
            } else {
                0
            };
            let in_flight = t.pipe();
            // The peer's window bounds what lies beyond SND.UNA; cwnd bounds the pipe.
            let cwnd_room = t.cc.cwnd().saturating_add(lt).saturating_sub(in_flight);
            let rwnd_room = t.snd_wnd.saturating_sub(t.snd_nxt.distance(t.snd_una));
            let room = cwnd_room.min(rwnd_room) as usize;
            let room = if t.snd_wnd == 0 { 0 } else { room };
            let len = unsent.min(room).min(mss);
            let fin = fin_pending && t.fin_seq == Some(t.snd_nxt + len as u32);
            if len == 0 && !fin {
                break;
            }
            if len == 0 && fin && t.snd_wnd == 0 && unsent > 0 {
                break;
            }
            if len < mss && !fin {
                let retransmission = t.snd_nxt.before(t.snd_max);
                if len < unsent {
                    // RFC 9293 §3.8.6.2.1 sender SWS avoidance: a window-limited partial
                    // segment only if it is at least half the largest window seen.
                    if !retransmission && (len as u32) < t.max_snd_wnd / 2 {
                        break;
                    }
                } else if !retransmission {
                    // RFC 9293 §3.7.4 Nagle: hold a partial segment while data is in flight;
                    // TCP_CORK holds it regardless.
                    if opts.cork || (!opts.nodelay && t.snd_nxt != t.snd_una) {
                        break;
                    }
                }
            }
            let seq = t.snd_nxt;
            let flags = if fin { TcpFlags::FIN } else { TcpFlags::empty() };
            emit_seg(t, snd, rcv, ports, ts_val, seq, off, len, flags, scratch, emit);
            let seq_len = len as u32 + u32::from(fin);
            if t.rack_on {
                t.log.on_send(seq, seq + seq_len, now);
            }
            sent_new |= !seq.before(t.snd_max);
            if seq.before(t.snd_max) {
                t.total_retrans += 1;
                t.timed = None;
            } else {
                t.bytes_sent += len as u64;
                if t.timed.is_none() && !t.ts_ok {
                    t.timed = Some((seq, now));
                }
            }
            t.snd_nxt = seq + seq_len;
            if t.snd_nxt.after(t.snd_max) {
                t.snd_max = t.snd_nxt;
            }
            if t.rto_at.is_none() {
                t.rto_at = Some(now + t.rtt.rto());
                t.unacked_since.get_or_insert(now);
            }
            if fin {
                break;
            }
        }

        if sent_new {
            // RFC 8985 §7.2: (re)start the PTO after transmitting new data.
            t.schedule_tlp(now);
        }

        // Persist timer (RFC 9293 §3.8.6.1): probe a zero window with one byte; a window too
        // small for sender SWS avoidance gets what fits when the timer runs out (§3.8.6.2.1
        // "override timeout").
        if t.persist_wanted_parts(can_send_data, snd.len()) {
            match t.persist_at {
                None => t.persist_at = Some(now + t.rtt.rto()),
                Some(d) if d <= now => {
                    let off = t.snd_nxt.distance(base) as usize;
                    let unsent = snd.len().saturating_sub(off);
                    let len = (t.snd_wnd as usize).min(unsent).min(mss).max(1);
                    let seq = t.snd_nxt;
                    emit_seg(
                        t,
                        snd,
                        rcv,
                        ports,
                        ts_val,
                        seq,
                        off,
                        len,
                        TcpFlags::empty(),
                        scratch,
                        emit,
                    );
                    t.bytes_sent += len as u64;
                    if t.rack_on {
                        t.log.on_send(seq, seq + len as u32, now);
                    }
                    t.snd_nxt = seq + len as u32;
                    t.snd_max = t.snd_nxt;
                    t.rto_at = Some(now + t.rtt.rto());
                    t.persist_at = None;
                }
                Some(_) => {}
            }
        } else {
            t.persist_at = None;
        }

        // Keepalive (RFC 9293 §3.8.4, RFC 1122 §4.2.3.6): probe <SEQ=SND.UNA-1> when idle.
        if let Some(due) = t.keepalive_due(&opts, last_rx, keepalive_state, snd.len()) {
            if due <= now {
                if t.keep_probes >= opts.keep_cnt {
                    self.die(Some(TcpError::TimedOut));
                    return;
                }
                t.keep_probes += 1;
                let seq = t.snd_una - 1;
                emit_seg(t, snd, rcv, ports, ts_val, seq, 0, 0, TcpFlags::empty(), scratch, emit);
                t.keep_at = Some(now + opts.keep_intvl);
            } else {
                t.keep_at = Some(due);
            }
        } else {
            t.keep_at = None;
        }

        // A pure ACK or window update.
        if t.ack_now || t.window_update {
            let (mut seq, mut flags) = (t.snd_nxt, TcpFlags::empty());
            if cfg.ack_repeats_fin
                && !t.challenge
                && t.fin_seq == Some(t.snd_una)
                && t.snd_max.after(t.snd_una)
                && can_send_data
            {
                // BSD: while only our FIN is unacknowledged, an ACK carries it again.
                seq = t.snd_una;
                flags = TcpFlags::FIN;
            }
            emit_seg(t, snd, rcv, ports, ts_val, seq, 0, 0, flags, scratch, emit);
        }
    }
}

/// RFC 8985 §6.2 / RFC 6675 §5 (C) with RACK's loss marks: retransmit the lowest segments RACK
/// marked lost while `pipe < cwnd` (the first one regardless, on entering recovery or after an
/// RTO: RFC 6675 §5 step 4.2 / RFC 6298 §5.4).
#[allow(clippy::too_many_arguments)]
fn rack_retransmit(
    t: &mut Tcb,
    snd: &SendBuffer,
    rcv: &RecvBuffer,
    ports: (u16, u16),
    ts_val: u32,
    now: Instant,
    first: bool,
    scratch: &mut [u8],
    emit: &mut Emit<'_>,
) {
    let base = t.data_base();
    let mss = usize::from(t.mss.max(1));
    for pass in 0..64 {
        if !(first && pass == 0) && t.pipe() >= t.cc.cwnd() {
            break;
        }
        let Some((s, e)) = t.log.next_lost() else { break };
        let (len, fin) = segment_of(t, snd, base, s, e, mss);
        if len == 0 && !fin {
            break;
        }
        let off = s.distance(base) as usize;
        let flags = if fin { TcpFlags::FIN } else { TcpFlags::empty() };
        emit_seg(t, snd, rcv, ports, ts_val, s, off, len, flags, scratch, emit);
        t.total_retrans += 1;
        let end = s + len as u32 + u32::from(fin);
        t.log.on_send(s, end, now);
        if end.after(t.high_rxt) {
            t.high_rxt = end;
        }
        if t.rto_at.is_none() {
            t.rto_at = Some(now + t.rtt.rto());
        }
    }
}

/// The payload length (at most `mss`, within the send buffer) and FIN of a (re)transmission
/// of the logged segment `[s, e)`.
fn segment_of(
    t: &Tcb,
    snd: &SendBuffer,
    base: SeqNum,
    s: SeqNum,
    e: SeqNum,
    mss: usize,
) -> (usize, bool) {
    let has_fin = t.fin_seq.is_some_and(|f| f + 1 == e);
    let data_end = if has_fin { e - 1 } else { e };
    let off = s.distance(base) as usize;
    let len = (data_end.distance(s) as usize).min(mss).min(snd.len().saturating_sub(off));
    (len, has_fin && s + len as u32 == data_end)
}

/// RFC 8985 §7.3 "Sending a loss probe upon PTO expiration": one new segment if unsent data
/// exists and the receive window allows it (cwnd does not apply), else a retransmission of
/// the highest segment; `TLP.end_seq` becomes SND.NXT.
#[allow(clippy::too_many_arguments)]
fn send_tlp(
    t: &mut Tcb,
    snd: &SendBuffer,
    rcv: &RecvBuffer,
    ports: (u16, u16),
    ts_val: u32,
    now: Instant,
    scratch: &mut [u8],
    emit: &mut Emit<'_>,
) {
    let base = t.data_base();
    let mss = usize::from(t.mss.max(1));
    let off = t.snd_nxt.distance(base) as usize;
    let unsent = snd.len().saturating_sub(off);
    let wnd_room = t.snd_wnd.saturating_sub(t.snd_nxt.distance(t.snd_una)) as usize;
    if t.snd_nxt == t.snd_max && unsent > 0 && wnd_room > 0 {
        let len = unsent.min(mss).min(wnd_room);
        let seq = t.snd_nxt;
        let fin = t.fin_seq == Some(seq + len as u32);
        let flags = if fin { TcpFlags::FIN } else { TcpFlags::empty() };
        emit_seg(t, snd, rcv, ports, ts_val, seq, off, len, flags, scratch, emit);
        let end = seq + len as u32 + u32::from(fin);
        t.log.on_send(seq, end, now);
        t.bytes_sent += len as u64;
        t.snd_nxt = end;
        t.snd_max = end;
        t.rack.tlp_retrans = false;
    } else if let Some((s, e)) = t.log.last() {
        let (len, fin) = segment_of(t, snd, base, s, e, mss);
        if len == 0 && !fin {
            return;
        }
        let off = s.distance(base) as usize;
        let flags = if fin { TcpFlags::FIN } else { TcpFlags::empty() };
        emit_seg(t, snd, rcv, ports, ts_val, s, off, len, flags, scratch, emit);
        t.log.on_send(s, s + len as u32 + u32::from(fin), now);
        t.total_retrans += 1;
        t.rack.tlp_retrans = true;
    } else {
        return;
    }
    t.rack.tlp_end = Some(t.snd_max);
}
