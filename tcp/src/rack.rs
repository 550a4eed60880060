//! RFC 8985 RACK-TLP: time-based loss detection.
//!
//! [`SentLog`] is the per-segment transmission record RACK needs (RFC 8985 §5.2: "the sender
//! stores the most recent transmission time of each segment"): one entry per segment sent
//! above `SND.UNA`, in sequence order, each with its last transmission time and whether it is
//! SACKed, marked lost, or retransmitted. It also keeps the byte counts from which the
//! engine's `pipe` is computed (RFC 6675 §4 SetPipe in RACK's terms: octets sent and not
//! acknowledged, less SACKed and lost ones, plus retransmitted ones).
//!
//! [`Rack`] is the RACK state of §5.3 (`RACK.xmit_ts`, `RACK.end_seq`, `RACK.rtt`,
//! `RACK.min_RTT`, `RACK.fack`, the reordering window) and the TLP state of §7.1
//! (`TLP.end_seq`, `TLP.is_retrans`).
//!
//! The engine (`conn/`) calls [`SentLog::on_send`] for every data segment it emits,
//! [`SentLog::on_ack`] for every ACK (which reports each newly delivered segment to
//! [`Rack::on_delivered`]), then [`Rack::detect_loss`]; it retransmits what
//! [`SentLog::next_lost`] returns while `pipe < cwnd`. Segments are never allocated on the
//! per-segment path once the log has grown to the flight size (a `VecDeque` reused).

use std::collections::VecDeque;

use core::time::Duration;
use joyride_base::Instant;

use crate::seq::SeqNum;

/// The most segments remembered; beyond this, new data extends the last entry (its time
/// becomes the latest transmission, which can only delay a loss verdict, never hasten it).
pub const MAX_SEGMENTS: usize = 1 << 16;

/// RFC 8985 §6.2 step 4: the reordering window may be inflated for at most 16 recoveries.
const REO_WND_PERSIST: u32 = 16;

/// RFC 6675 §2 DupThresh, used by RFC 8985 §6.2 step 4 ("RACK.segs_sacked >= DupThresh").
const DUP_THRESH: u32 = 3;

const SACKED: u8 = 1;
const LOST: u8 = 2;
/// Retransmitted since it was last marked lost (RFC 8985 "Segment.retransmitted"): counts in
/// `pipe` as a copy in flight.
const RETRANS: u8 = 4;
/// Retransmitted at least once (its ACK may be for an earlier copy: ambiguous RTT, and not
/// evidence of reordering).
const EVER_RETRANS: u8 = 8;

/// One transmitted segment `[start, end)` (sequence space: a FIN counts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// First sequence number.
    pub start: SeqNum,
    /// One past the last sequence number.
    pub end: SeqNum,
    /// Its most recent transmission (RFC 8985 `Segment.xmit_ts`).
    pub xmit: Instant,
    flags: u8,
}

impl Segment {
    fn len(&self) -> u32 {
        self.end.distance(self.start)
    }
    fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
    /// Whether it was ever retransmitted.
    pub fn retransmitted(&self) -> bool {
        self.has(EVER_RETRANS)
    }
}

/// The transmission record of the segments above `SND.UNA`.
#[derive(Clone, Debug, Default)]
pub struct SentLog {
    segs: VecDeque<Segment>,
    /// Bytes SACKed.
    sacked: u32,
    /// Segments SACKed (RFC 8985 `RACK.segs_sacked`).
    sacked_segs: u32,
    /// Bytes marked lost and not SACKed.
    lost: u32,
    /// Bytes marked lost, not SACKed and not yet retransmitted since.
    lost_pending: u32,
    /// Bytes retransmitted (since last marked lost) and not SACKed.
    retrans: u32,
    /// Segments ever retransmitted still in the log.
    rexmit_segs: u32,
}

impl SentLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget everything (the connection's send side is finished or reset).
    pub fn clear(&mut self) {
        *self = SentLog { segs: core::mem::take(&mut self.segs), ..Default::default() };
        self.segs.clear();
    }

    /// The segments, lowest first.
    pub fn segments(&self) -> impl Iterator<Item = &Segment> {
        self.segs.iter()
    }

    /// Bytes SACKed.
    pub fn sacked_bytes(&self) -> u32 {
        self.sacked
    }

    /// Segments SACKed.
    pub fn sacked_segments(&self) -> u32 {
        self.sacked_segs
    }

    /// Bytes marked lost and not yet retransmitted.
    pub fn lost_pending(&self) -> u32 {
        self.lost_pending
    }

    /// RFC 6675 §4 SetPipe in RACK's terms: of the `flight` bytes between `SND.UNA` and
    /// `SND.MAX`, those neither SACKed nor lost, plus those retransmitted (a second copy).
    pub fn pipe(&self, flight: u32) -> u32 {
        flight.saturating_sub(self.sacked + self.lost).saturating_add(self.retrans)
    }

    /// Index of the first segment whose end is after `seq`.
    fn find(&self, seq: SeqNum) -> usize {
        let base = match self.segs.front() {
            Some(s) => s.start,
            None => return 0,
        };
        let key = seq.distance(base);
        self.segs.partition_point(|s| s.end.distance(base) <= key)
    }

    fn uncount(&mut self, s: &Segment, len: u32) {
        if s.has(SACKED) {
            self.sacked -= len;
        } else {
            if s.has(LOST) {
                self.lost -= len;
                if !s.has(RETRANS) {
                    self.lost_pending -= len;
                }
            }
            if s.has(RETRANS) {
                self.retrans -= len;
            }
        }
    }

    /// Splits the segment at `i` at `at` (strictly inside it); the parts keep its state.
    fn split(&mut self, i: usize, at: SeqNum) {
        let s = self.segs[i];
        self.segs[i].end = at;
        self.segs.insert(i + 1, Segment { start: at, ..s });
        if s.has(SACKED) {
            self.sacked_segs += 1;
        }
        if s.has(EVER_RETRANS) {
            self.rexmit_segs += 1;
        }
    }

    /// RFC 8985 §6.1: record the transmission of `[start, end)` at `now`. Data beyond the
    /// last segment is new (appended); data inside the log is a retransmission: its segments
    /// take `now` as their transmission time and count as retransmitted.
    pub fn on_send(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        if !start.before(end) {
            return;
        }
        let last_end = self.segs.back().map(|s| s.end);
        match last_end {
            Some(e) if start.before(e) => {
                let top = if end.after(e) { e } else { end };
                self.retransmit(start, top, now);
                if end.after(e) {
                    self.append(e, end, now);
                }
            }
            _ => self.append(start, end, now),
        }
    }

    fn append(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        if self.segs.len() >= MAX_SEGMENTS {
            if let Some(last) = self.segs.back_mut() {
                if last.flags == 0 && last.end == start {
                    last.end = end;
                    last.xmit = now;
                    return;
                }
            }
        }
        self.segs.push_back(Segment { start, end, xmit: now, flags: 0 });
    }

    fn retransmit(&mut self, start: SeqNum, end: SeqNum, now: Instant) {
        let mut i = self.find(start);
        if i < self.segs.len() && self.segs[i].start.before(start) {
            self.split(i, start);
            i += 1;
        }
        while i < self.segs.len() && self.segs[i].start.before(end) {
            if self.segs[i].end.after(end) {
                self.split(i, end);
            }
            let s = self.segs[i];
            let len = s.len();
            if !s.has(SACKED) {
                let seg = &mut self.segs[i];
                seg.xmit = now;
                if !s.has(EVER_RETRANS) {
                    seg.flags |= EVER_RETRANS;
                    self.rexmit_segs += 1;
                }
                if !s.has(RETRANS) {
                    seg.flags |= RETRANS;
                    self.retrans += len;
                    if s.has(LOST) {
                        self.lost_pending -= len;
                    }
                }
            }
            i += 1;
        }
    }

    /// Process an ACK: `una` (the new `SND.UNA`) and the ACK's SACK blocks `[left, right)`.
    /// Calls `delivered` for each segment newly acknowledged, cumulatively or selectively
    /// (a segment only partly covered is trimmed or left alone, not reported).
    pub fn on_ack(
        &mut self,
        una: SeqNum,
        blocks: &[(SeqNum, SeqNum)],
        mut delivered: impl FnMut(&Segment),
    ) {
        while let Some(&s) = self.segs.front() {
            if s.end.after(una) {
                if s.start.before(una) {
                    // A cumulative ACK inside a segment: trim it.
                    let cut = una.distance(s.start);
                    self.uncount(&s, cut);
                    self.segs[0].start = una;
                }
                break;
            }
            self.segs.pop_front();
            self.uncount(&s, s.len());
            if s.has(SACKED) {
                self.sacked_segs -= 1;
            } else {
                delivered(&s);
            }
            if s.has(EVER_RETRANS) {
                self.rexmit_segs -= 1;
            }
        }
        for &(left, right) in blocks {
            if !left.before(right) || !right.after(una) {
                continue;
            }
            let mut i = self.find(left);
            while i < self.segs.len() && self.segs[i].start.before(right) {
                let s = self.segs[i];
                if !s.has(SACKED) && !s.start.before(left) && !s.end.after(right) {
                    self.uncount(&s, s.len());
                    self.segs[i].flags = (s.flags & EVER_RETRANS) | SACKED;
                    self.sacked += s.len();
                    self.sacked_segs += 1;
                    delivered(&self.segs[i]);
                }
                i += 1;
            }
        }
    }

    fn mark_lost(&mut self, i: usize) {
        let s = self.segs[i];
        let len = s.len();
        if s.has(RETRANS) {
            self.retrans -= len;
        }
        if !s.has(LOST) {
            self.lost += len;
        }
        if !s.has(LOST) || s.has(RETRANS) {
            self.lost_pending += len;
        }
        self.segs[i].flags = (s.flags & !RETRANS) | LOST;
    }

    /// The lowest segment marked lost and not yet retransmitted: what to retransmit next.
    pub fn next_lost(&self) -> Option<(SeqNum, SeqNum)> {
        if self.lost_pending == 0 {
            return None;
        }
        self.segs
            .iter()
            .find(|s| s.has(LOST) && !s.has(RETRANS) && !s.has(SACKED))
            .map(|s| (s.start, s.end))
    }

    /// The highest segment sent, for a tail loss probe's retransmission (RFC 8985 §7.3).
    pub fn last(&self) -> Option<(SeqNum, SeqNum)> {
        self.segs.back().map(|s| (s.start, s.end))
    }

    /// RFC 8985 §6.3 RACK_mark_losses_on_RTO: every unSACKed segment sent at least
    /// `rack_rtt + reo_wnd` ago is lost, and so is the one at `SND.UNA`. A SACKed segment at
    /// `SND.UNA` means the receiver reneged (RFC 2018 §8): every SACK mark is dropped (the
    /// caller clears its scoreboard when this returns true).
    pub fn mark_losses_on_rto(&mut self, now: Instant, window: Duration) -> bool {
        let reneged = self.segs.front().is_some_and(|s| s.has(SACKED));
        if reneged {
            for i in 0..self.segs.len() {
                let s = self.segs[i];
                if s.has(SACKED) {
                    self.sacked -= s.len();
                    self.segs[i].flags = s.flags & EVER_RETRANS;
                }
            }
            self.sacked_segs = 0;
        }
        for i in 0..self.segs.len() {
            let s = self.segs[i];
            if s.has(SACKED) {
                continue;
            }
            if i == 0 || s.xmit + window <= now {
                self.mark_lost(i);
            }
        }
        reneged
    }
}

/// RFC 8985 §6.2 `RACK_sent_after(t1, seq1, t2, seq2)`.
fn sent_after(t1: Instant, seq1: SeqNum, t2: Instant, seq2: SeqNum) -> bool {
    t1 > t2 || (t1 == t2 && seq1.after(seq2))
}

/// The RACK (RFC 8985 §5.3) and TLP (§7.1) state of one connection.
#[derive(Clone, Debug, Default)]
pub struct Rack {
    /// `RACK.xmit_ts` and `RACK.end_seq`: the most recently sent segment delivered so far.
    pub latest: Option<(Instant, SeqNum)>,
    /// `RACK.rtt`: the RTT of that segment's delivery.
    pub rtt: Duration,
    /// `RACK.min_RTT`.
    pub min_rtt: Option<Duration>,
    /// `RACK.fack`: the highest end sequence delivered.
    pub fack: Option<SeqNum>,
    /// `RACK.reordering_seen`.
    pub reordering_seen: bool,
    /// `RACK.reo_wnd_mult`, at least 1.
    pub reo_wnd_mult: u32,
    /// `RACK.reo_wnd_persist`.
    pub reo_wnd_persist: u32,
    /// `RACK.dsack_round`.
    pub dsack_round: Option<SeqNum>,
    /// `TLP.end_seq`: a loss probe is in flight up to here.
    pub tlp_end: Option<SeqNum>,
    /// `TLP.is_retrans`: that probe was a retransmission.
    pub tlp_retrans: bool,
}

impl Rack {
    /// A fresh state.
    pub fn new() -> Self {
        Rack { reo_wnd_mult: 1, ..Default::default() }
    }

    /// RFC 8985 §6.2 steps 1–3 for one newly delivered segment: RACK.min_RTT, RACK.rtt and
    /// RACK.xmit_ts/end_seq (step 2, skipping an ambiguous sample of a retransmitted segment
    /// delivered sooner than min_RTT after its last transmission), and reordering (step 3:
    /// an original segment delivered below RACK.fack was reordered).
    pub fn on_delivered(&mut self, now: Instant, seg: &Segment) {
        let rtt = now.saturating_duration_since(seg.xmit);
        let ambiguous = seg.retransmitted() && self.min_rtt.is_some_and(|m| rtt < m);
        if !ambiguous {
            // Step 1 ("RACK.min_RTT"): a plain minimum (Linux keeps a windowed one).
            if !seg.retransmitted() {
                self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
            }
            let newer = match self.latest {
                None => true,
                Some((t, e)) => sent_after(seg.xmit, seg.end, t, e),
            };
            if newer {
                self.rtt = rtt;
                self.latest = Some((seg.xmit, seg.end));
            }
        }
        // Step 3.
        match self.fack {
            Some(f) if !seg.end.after(f) => {
                if seg.end.before(f) && !seg.retransmitted() {
                    self.reordering_seen = true;
                }
            }
            _ => self.fack = Some(seg.end),
        }
    }

    /// RFC 8985 §6.2 step 4, the D-SACK part: an ACK with a D-SACK block inflates the
    /// reordering window (once per round trip, up to `snd_nxt`), for 16 recoveries.
    pub fn on_dsack(&mut self, snd_una: SeqNum, snd_nxt: SeqNum) {
        if self.dsack_round.is_some_and(|r| snd_una.after_eq(r)) {
            self.dsack_round = None;
        }
        if self.dsack_round.is_none() {
            self.dsack_round = Some(snd_nxt);
            self.reo_wnd_mult = self.reo_wnd_mult.saturating_add(1);
            self.reo_wnd_persist = REO_WND_PERSIST;
        }
    }

    /// RFC 8985 §6.2 step 4: "Else if exiting Fast or RTO recovery": the inflation decays.
    pub fn on_recovery_exit(&mut self) {
        self.reo_wnd_persist = self.reo_wnd_persist.saturating_sub(1);
        if self.reo_wnd_persist == 0 {
            self.reo_wnd_mult = 1;
        }
    }

    /// RFC 8985 §6.2 step 4 `RACK.reo_wnd`: zero when no reordering was seen and either
    /// recovery is under way or DupThresh segments are SACKed; else
    /// min(reo_wnd_mult · min_RTT / 4, SRTT).
    pub fn reo_wnd(&self, in_recovery: bool, sacked_segs: u32, srtt: Duration) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_segs >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let min = self.min_rtt.unwrap_or(srtt);
        (min / 4).saturating_mul(self.reo_wnd_mult.max(1)).min(srtt)
    }

    /// RFC 8985 §6.2 step 5 `RACK_detect_loss`: a segment sent before the most recently
    /// delivered one (in time, ties by sequence) that is still unacknowledged after
    /// `RACK.rtt + reo_wnd` is lost. Marks them in `log`; returns whether any was newly
    /// marked and, for those not yet overdue, the time until the first is
    /// (`RACK.reo_wnd` timer, §8).
    pub fn detect_loss(
        &self,
        now: Instant,
        reo_wnd: Duration,
        log: &mut SentLog,
    ) -> (bool, Option<Duration>) {
        let Some((xmit, end)) = self.latest else { return (false, None) };
        // Nothing SACKed and nothing retransmitted: every segment left was sent after the
        // delivered ones (originals leave in sequence order), so none can be declared lost.
        if log.sacked_segs == 0 && log.rexmit_segs == 0 {
            return (false, None);
        }
        let mut marked = false;
        let mut timeout: Option<Duration> = None;
        for i in 0..log.segs.len() {
            let s = log.segs[i];
            if !s.has(EVER_RETRANS) && !sent_after(xmit, end, s.xmit, s.end) {
                // Originals are in transmission order: none later can qualify either (and a
                // retransmitted one above was sent later still).
                break;
            }
            if s.has(SACKED) || (s.has(LOST) && !s.has(RETRANS)) {
                continue;
            }
            if !sent_after(xmit, end, s.xmit, s.end) {
                continue;
            }
            let deadline = s.xmit + self.rtt + reo_wnd;
            if deadline <= now {
                log.mark_lost(i);
                marked = true;
            } else {
                let left = deadline.saturating_duration_since(now);
                timeout = Some(timeout.map_or(left, |t| t.max(left)));
            }
        }
        (marked, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u32) -> SeqNum {
        SeqNum::new(u32::MAX - 5000) + n
    }
    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Ten 1000-byte segments sent 1 ms apart.
    fn ten() -> SentLog {
        let mut log = SentLog::new();
        for i in 0..10 {
            log.on_send(s(i * 1000), s(i * 1000 + 1000), t(u64::from(i)));
        }
        log
    }

    #[test]
    fn pipe_counts_sacked_lost_and_retransmitted() {
        let mut log = ten();
        assert_eq!(log.pipe(10_000), 10_000);
        let mut got = Vec::new();
        log.on_ack(s(0), &[(s(1000), s(4000))], |seg| got.push(seg.start));
        assert_eq!(got, vec![s(1000), s(2000), s(3000)]);
        assert_eq!(log.pipe(10_000), 7000);
        // A repeated block reports nothing new.
        log.on_ack(s(0), &[(s(1000), s(4000))], |_| panic!("not new"));
        let mut rack = Rack::new();
        rack.on_delivered(t(20), &log.segs[3]);
        let (marked, _) = rack.detect_loss(t(20), Duration::ZERO, &mut log);
        assert!(marked);
        assert_eq!(log.next_lost(), Some((s(0), s(1000))));
        assert_eq!(log.pipe(10_000), 6000);
        log.on_send(s(0), s(1000), t(21));
        assert_eq!(log.next_lost(), None);
        assert_eq!(log.pipe(10_000), 7000);
        // The cumulative ACK of everything below 4000 takes the SACKed ones along.
        log.on_ack(s(4000), &[], |_| {});
        assert_eq!(log.pipe(6000), 6000);
        assert_eq!((log.sacked_bytes(), log.sacked_segments()), (0, 0));
    }

    #[test]
    fn reo_wnd_delays_the_verdict_and_reports_the_timer() {
        let mut log = ten();
        let mut rack = Rack::new();
        rack.min_rtt = Some(Duration::from_millis(40));
        rack.reordering_seen = true;
        log.on_ack(s(0), &[(s(1000), s(2000))], |seg| rack.on_delivered(t(41), seg));
        let reo = rack.reo_wnd(false, log.sacked_segments(), Duration::from_millis(40));
        assert_eq!(reo, Duration::from_millis(10));
        // Segment 0 sent at 0, RACK.rtt 40 ms: lost at 0 + 40 + 10 = 50 ms.
        let (marked, timeout) = rack.detect_loss(t(41), reo, &mut log);
        assert!(!marked);
        assert_eq!(timeout, Some(Duration::from_millis(9)));
        let (marked, timeout) = rack.detect_loss(t(50), reo, &mut log);
        assert!(marked && timeout.is_none());
    }

    #[test]
    fn lost_retransmission_is_detected() {
        let mut log = ten();
        let mut rack = Rack::new();
        log.on_ack(s(0), &[(s(1000), s(4000))], |seg| rack.on_delivered(t(20), seg));
        assert!(rack.detect_loss(t(20), Duration::ZERO, &mut log).0);
        // Retransmit 0 at 21 ms; it is lost again. New data 10..12 sent at 22, 23 is SACKed.
        log.on_send(s(0), s(1000), t(21));
        log.on_send(s(10_000), s(11_000), t(22));
        log.on_send(s(11_000), s(12_000), t(23));
        log.on_ack(s(0), &[(s(11_000), s(12_000))], |seg| rack.on_delivered(t(43), seg));
        // RACK.rtt is 20 ms (segment 11); the retransmission of 0 (21 ms) is overdue at 41.
        assert_eq!(rack.rtt, Duration::from_millis(20));
        assert!(rack.detect_loss(t(43), Duration::ZERO, &mut log).0);
        assert_eq!(log.next_lost(), Some((s(0), s(1000))), "the retransmission was lost");
        // Segment 10 (sent 22 ms, before 11) is lost too; nothing sent after 11 is.
        let lost: Vec<_> = log.segments().filter(|x| x.has(LOST)).map(|x| x.start).collect();
        assert_eq!(lost.first(), Some(&s(0)));
        assert!(lost.contains(&s(10_000)) && !lost.contains(&s(11_000)));
    }

    #[test]
    fn partial_retransmission_splits_and_rto_marks() {
        let mut log = ten();
        log.on_send(s(500), s(1500), t(30));
        let segs: Vec<_> = log.segments().map(|x| (x.start, x.end, x.retransmitted())).collect();
        assert_eq!(
            segs[..3],
            [(s(0), s(500), false), (s(500), s(1000), true), (s(1000), s(1500), true)]
        );
        assert_eq!(log.pipe(10_000), 11_000);
        // RTO at 31 ms with a 5 ms window: everything sent by 26 ms, and SND.UNA's segment.
        assert!(!log.mark_losses_on_rto(t(31), Duration::from_millis(5)));
        // All but the two halves retransmitted at 30 ms are lost; those count twice (the
        // original presumed in flight, and the copy: RFC 6675 SetPipe (a) and (b)).
        assert_eq!(log.pipe(10_000), 2000);
        assert_eq!(log.next_lost(), Some((s(0), s(500))));
        // Reneging: the segment at SND.UNA was SACKed.
        let mut log = ten();
        log.on_ack(s(0), &[(s(0), s(1000))], |_| {});
        assert!(log.mark_losses_on_rto(t(100), Duration::ZERO));
        assert_eq!(log.sacked_bytes(), 0);
        assert_eq!(log.next_lost(), Some((s(0), s(1000))));
    }

    #[test]
    fn reordering_inflates_the_window() {
        let log = ten();
        let mut rack = Rack::new();
        rack.on_delivered(t(20), &log.segs[5]);
        rack.on_delivered(t(21), &log.segs[2]);
        assert!(rack.reordering_seen);
        let srtt = Duration::from_millis(40);
        // min_RTT is 15 ms (segment 5, sent at 5 ms, delivered at 20 ms).
        assert_eq!(rack.reo_wnd(true, 5, srtt), Duration::from_micros(3750));
        rack.on_dsack(s(0), s(10_000));
        assert_eq!(rack.reo_wnd_mult, 2);
        rack.on_dsack(s(0), s(10_000));
        assert_eq!(rack.reo_wnd_mult, 2, "one inflation per round trip");
        for _ in 0..16 {
            rack.on_recovery_exit();
        }
        assert_eq!(rack.reo_wnd_mult, 1);
    }
}
