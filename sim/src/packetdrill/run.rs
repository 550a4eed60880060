//! Runs a parsed script in virtual time against a [`TcpStack`] — the same socket layer the
//! service uses — and reports the first difference from what the script expects.
//!
//! # Model (after packetdrill's documented semantics)
//!
//! - The stack is the local host 192.168.0.1; the script plays the remote host 192.0.2.1,
//!   port [`REMOTE_PORT`]. `bind(fd, ..., ...)` binds [`LOCAL_PORT`] (8080); after `connect`
//!   the local port is learned from the stack's SYN.
//! - Sequence numbers in the script are relative. Inbound: `seq` is offset by a fixed remote
//!   ISN ([`REMOTE_ISN`]); `ack` and inbound SACK blocks by the local ISN, which is learned
//!   from the stack's first SYN or SYN-ACK (zero before that, which makes the RST answers of
//!   closed/listening sockets come out as the scripts write them). Outbound: the reverse.
//! - Times: `0.10` is absolute script time, `+0.10` is relative to the previous event's
//!   *actual* time (an outbound packet that arrived 20 ms late shifts the rest of the script by
//!   20 ms, as in packetdrill). `*` accepts an outbound packet at any time.
//! - An outbound line takes the stack's next unmatched packet; it must fall within
//!   `--tolerance_usecs` (default 4000) of the scheduled time and match flags, sequence
//!   numbers, payload length, `ack`, `win` (when written) and option *values* (MSS, window
//!   scale, SACK-permitted, SACK blocks, timestamps). `nop`/`eol` padding and option order are
//!   not compared: the engine's emitter picks the layout. Outbound TS val is compared after
//!   learning the offset between the script's clock and the stack's on the first one, within
//!   the tolerance.
//! - A packet the stack sends that no `>` line takes is a failure ("unexpected packet"),
//!   including packets still queued when the last event has run (stricter than packetdrill,
//!   which never looks at those; [`RunOptions::lenient_end`] turns this off). Time never runs
//!   past the last event, so later timers (retransmissions of a closed script) are not looked
//!   at.
//! - System calls run as non-blocking calls whatever the socket's `O_NONBLOCK` flag: an
//!   `accept`/`recv` that would block returns `-1 EAGAIN` rather than waiting (the scripts here
//!   only call them when they can complete), and a blocking `connect` reports `EINPROGRESS`.
//! - Backquoted `sysctl -w name=value` sets the stack tunable of that name; unknown tunables
//!   are reported as notes, not failures. `sockstat ... | grep -c STATE | grep N` checks how
//!   many connections are in STATE; `tcpdrop -s STATE` drops them (TcpStack::drop_connection).
//!   Other shell commands are reported and skipped.
//!   `%{ assert tcpi_state == TCPI_X }%` checks the state of the last socket used.
//! - `#ifdef` blocks are selected by the profile: `FreeBSD` for [`Profile::FreeBsd`], `Linux`
//!   for [`Profile::Linux`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use joyride_base::{Duration, Instant};
use joyride_ip::tcp::{SackBlock, TcpFlags, TcpOptions, TcpRepr};
use joyride_ip::Ipv4Addr;
use joyride_tcp::{SocketId, State, TcpConfig, TcpStack};

use super::ast::{Direction, Event, EventKind, PacketSpec, Script, TcpOptionSpec, TimeSpec};
use crate::clock::Clock;
use crate::pcap::{LinkType, PcapWriter};
use crate::wire;

/// The stack's address (packetdrill's default local address).
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
/// The script's address (packetdrill's default remote address).
pub const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The port `bind(fd, ..., ...)` binds.
pub const LOCAL_PORT: u16 = 8080;
/// The script's port.
pub const REMOTE_PORT: u16 = 54_321;
/// The absolute sequence number of the script's relative sequence number 0.
pub const REMOTE_ISN: u32 = 0x3b9a_ca00;
/// packetdrill's default `--tolerance_usecs`.
pub const DEFAULT_TOLERANCE_USECS: u64 = 4_000;
/// How long a `*` outbound line waits for its packet.
const ANY_TIME_LIMIT: Duration = Duration::from_secs(600);
/// Steps at one instant after which the stack is declared stuck in a timer loop.
const STUCK_STEPS: u32 = 10_000;

/// Which TCP flavour the stack is configured as, and which `#ifdef` blocks are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// [`TcpConfig::freebsd`], `#ifdef FreeBSD` (the default: the suite is FreeBSD's).
    #[default]
    FreeBsd,
    /// [`TcpConfig::linux`], `#ifdef Linux`.
    Linux,
}

impl Profile {
    /// The stack configuration of the profile.
    pub fn config(self) -> TcpConfig {
        match self {
            Profile::FreeBsd => TcpConfig::freebsd(),
            Profile::Linux => TcpConfig::linux(),
        }
    }

    /// The `#ifdef` names defined under the profile.
    pub fn defines(self) -> &'static [&'static str] {
        match self {
            Profile::FreeBsd => &["FreeBSD"],
            Profile::Linux => &["Linux"],
        }
    }
}

/// How to run a script.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// The stack profile.
    pub profile: Profile,
    /// Record a trace line per event in [`Outcome::trace`].
    pub verbose: bool,
    /// Capture every packet into [`Outcome::pcap`].
    pub capture: bool,
    /// Do not fail on packets still queued after the last event (packetdrill itself only
    /// looks at outbound packets when a `>` line asks for one, so it never sees them).
    pub lenient_end: bool,
}

/// Where and why a script failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// 1-based script line (0 when the script did not parse at all... it then has its line).
    pub line: usize,
    /// What differed.
    pub why: String,
}

/// The result of running one script.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// `None`: the script passed.
    pub failure: Option<Failure>,
    /// Things not checked (unknown tunables, skipped shell commands), one line each.
    pub notes: Vec<String>,
    /// With [`RunOptions::verbose`]: one line per event.
    pub trace: Vec<String>,
    /// With [`RunOptions::capture`]: every packet in and out, as a pcap file.
    pub pcap: Option<Vec<u8>>,
}

impl Outcome {
    /// Whether the script passed.
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Parses and runs `src`.
pub fn run_source(src: &str, opts: &RunOptions) -> Outcome {
    match super::parse(src, opts.profile.defines()) {
        Ok(script) => run_script(&script, opts),
        Err(e) => Outcome {
            failure: Some(Failure { line: e.line, why: format!("parse error: {}", e.msg) }),
            ..Outcome::default()
        },
    }
}

/// Runs a parsed script.
pub fn run_script(script: &Script, opts: &RunOptions) -> Outcome {
    let mut r = Runner::new(script, opts);
    let mut failure = None;
    let mut last_line = 0;
    for ev in &script.events {
        last_line = ev.line;
        if let Err(why) = r.event(ev) {
            failure = Some(Failure { line: ev.line, why });
            break;
        }
    }
    if failure.is_none() && !opts.lenient_end {
        // Whatever the last event caused must have been expected too.
        r.flush();
        if let Some(p) = r.queue.pop_front() {
            let desc = r.describe_bytes(&p.bytes);
            failure = Some(Failure {
                line: last_line,
                why: format!("unexpected packet after the last event: {desc}"),
            });
        }
    }
    Outcome { failure, notes: r.notes, trace: r.trace, pcap: r.pcap.map(|w| w.get_ref().clone()) }
}

/// One packet the stack sent, as IPv4 bytes, with its time.
#[derive(Debug)]
struct Sent {
    at: Instant,
    bytes: Vec<u8>,
}

/// An open descriptor.
#[derive(Clone, Copy, Debug)]
pub(super) struct Fd {
    pub id: SocketId,
    pub nonblock: bool,
}

/// The interpreter's state.
pub(super) struct Runner<'o> {
    pub opts: &'o RunOptions,
    pub stack: TcpStack,
    pub clock: Clock,
    start: Instant,
    tolerance: Duration,
    pub fds: BTreeMap<i64, Fd>,
    /// The descriptor of the last system call (for `tcpi_*` checks).
    pub last_fd: Option<i64>,
    pub local_port: u16,
    local_isn: Option<u32>,
    /// Stack TSval minus script TSval, learned from the first outbound timestamp.
    ts_offset: Option<u32>,
    queue: VecDeque<Sent>,
    /// Actual time of the previous event (base of relative times).
    last_event: Instant,
    pub notes: Vec<String>,
    trace: Vec<String>,
    pcap: Option<PcapWriter<Vec<u8>>>,
}

impl<'o> Runner<'o> {
    fn new(script: &Script, opts: &'o RunOptions) -> Self {
        let mut stack = TcpStack::new(opts.profile.config(), *b"joyride-pktdrill");
        stack.set_local_addrs(&[LOCAL_IP]);
        let tolerance = script
            .option("tolerance_usecs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_TOLERANCE_USECS);
        let start = Instant::from_millis(1_000);
        let mut notes = Vec::new();
        if let Some(v) = script.option("ip_version") {
            if v != "ipv4" {
                notes.push(format!("--ip_version={v} is not supported; running as ipv4"));
            }
        }
        Runner {
            opts,
            stack,
            clock: Clock::new(start),
            start,
            tolerance: Duration::from_micros(tolerance),
            fds: BTreeMap::new(),
            last_fd: None,
            local_port: LOCAL_PORT,
            local_isn: None,
            ts_offset: None,
            queue: VecDeque::new(),
            last_event: start,
            notes,
            trace: Vec::new(),
            pcap: if opts.capture { PcapWriter::new(Vec::new(), LinkType::Raw).ok() } else { None },
        }
    }

    pub(super) fn now(&self) -> Instant {
        self.clock.now()
    }

    fn script_time(&self, t: Instant) -> String {
        let us = (t - self.start).as_micros();
        format!("{}.{:06}", us / 1_000_000, us % 1_000_000)
    }

    fn log(&mut self, line: usize, what: impl AsRef<str>) {
        if self.opts.verbose {
            let t = self.script_time(self.now());
            self.trace.push(format!("{t} line {line}: {}", what.as_ref()));
        }
    }

    fn capture(&mut self, at: Instant, bytes: &[u8]) {
        if let Some(w) = self.pcap.as_mut() {
            // Writing into a Vec cannot fail.
            let _ = w.write_packet(at, bytes);
        }
    }

    /// Collects what the stack has to send now.
    pub(super) fn flush(&mut self) {
        let now = self.now();
        let mut out = Vec::new();
        self.stack.poll_transmit(now, &mut |src, dst, seg| {
            out.push(wire::encode_tcp(src, dst, seg));
        });
        for bytes in out {
            self.capture(now, &bytes);
            self.queue.push_back(Sent { at: now, bytes });
        }
    }

    /// Runs the stack's timers up to `until` (inclusive), collecting its packets, and stops
    /// early once a packet is queued if `stop_on_packet`. The clock ends at `until` unless it
    /// stopped early.
    fn advance(&mut self, until: Instant, stop_on_packet: bool) -> Result<(), String> {
        let mut same = 0u32;
        loop {
            if stop_on_packet && !self.queue.is_empty() {
                return Ok(());
            }
            match self.stack.poll_at() {
                Some(t) if t <= until => {
                    let before = self.now();
                    self.clock.advance_to(t);
                    self.flush();
                    if self.now() == before {
                        same += 1;
                        if same > STUCK_STEPS {
                            return Err(
                                "stack timer loop: poll_at stays at the current time".to_string()
                            );
                        }
                    } else {
                        same = 0;
                    }
                }
                _ => {
                    self.clock.advance_to(until);
                    return Ok(());
                }
            }
        }
    }

    /// The scheduled time window of an event: (earliest, latest), `None` for `*`.
    fn window(&self, time: &TimeSpec) -> Option<(Instant, Instant)> {
        let TimeSpec::At { relative, usecs, end } = *time else { return None };
        let base = if relative { self.last_event } else { self.start };
        let at = |base: Instant, us: i64| {
            if us >= 0 {
                base + Duration::from_micros(us as u64)
            } else {
                Instant::from_nanos(base.as_nanos().saturating_sub(us.unsigned_abs() * 1_000))
            }
        };
        let t0 = at(base, usecs);
        let t1 = match end {
            Some(e) => at(if e.relative { self.last_event } else { self.start }, e.usecs),
            None => t0,
        };
        Some((t0, t1.max(t0)))
    }

    fn event(&mut self, ev: &Event) -> Result<(), String> {
        let window = self.window(&ev.time);
        if let EventKind::Packet(p) = &ev.kind {
            if p.direction == Direction::Outbound {
                return self.outbound(ev.line, p, window);
            }
        }
        // Everything else happens at its (start) time.
        if let Some((t0, _)) = window {
            self.advance(t0, false)?;
        }
        match &ev.kind {
            EventKind::Packet(p) => self.inbound(ev.line, p)?,
            EventKind::Syscall(call) => {
                self.log(ev.line, format!("{}(...)", call.name));
                self.syscall(call)?;
            }
            EventKind::Command(cmd) => {
                self.log(ev.line, format!("`{cmd}`"));
                self.command(cmd)?;
            }
            EventKind::Code(code) => {
                self.log(ev.line, format!("%{{ {code} }}%"));
                self.code(code)?;
            }
        }
        self.flush();
        self.last_event = self.now();
        Ok(())
    }

    // ---- packets ------------------------------------------------------------------------

    fn local_isn(&self) -> u32 {
        self.local_isn.unwrap_or(0)
    }

    fn inbound(&mut self, line: usize, p: &PacketSpec) -> Result<(), String> {
        let seq = REMOTE_ISN.wrapping_add(p.seq.map_or(0, |s| s.start));
        let ack = p.ack.map_or(0, |a| self.local_isn().wrapping_add(a));
        let window = match p.win {
            Some(w) => u16::try_from(w).map_err(|_| format!("win {w} does not fit 16 bits"))?,
            None => 65_535,
        };
        let mut options = TcpOptions::default();
        for o in p.options.iter().flatten() {
            match o {
                TcpOptionSpec::Eol | TcpOptionSpec::Nop => {}
                TcpOptionSpec::Mss(m) => options.mss = Some(*m),
                TcpOptionSpec::WindowScale(s) => options.window_scale = Some(*s),
                TcpOptionSpec::SackPermitted => options.sack_permitted = true,
                TcpOptionSpec::Sack(blocks) => {
                    if blocks.len() > options.sack_blocks.len() {
                        return Err(format!("{} SACK blocks; at most 4 fit", blocks.len()));
                    }
                    for (i, (l, r)) in blocks.iter().enumerate() {
                        options.sack_blocks[i] = SackBlock {
                            left: self.local_isn().wrapping_add(*l),
                            right: self.local_isn().wrapping_add(*r),
                        };
                    }
                    options.sack_len = blocks.len() as u8;
                }
                TcpOptionSpec::Timestamp { val, ecr } => {
                    let ecr = ecr.wrapping_add(self.ts_offset.unwrap_or(0));
                    options.timestamps = Some((*val, ecr));
                }
                TcpOptionSpec::Other(name, _) => {
                    return Err(format!("TCP option `{name}` is not supported by the runner"))
                }
            }
        }
        let payload = vec![0u8; p.payload_len() as usize];
        let seg = TcpRepr {
            src_port: REMOTE_PORT,
            dst_port: self.local_port,
            seq,
            ack,
            flags: p.flags,
            window,
            urgent: p.urg.unwrap_or(0) as u16,
            options,
            payload: &payload,
        };
        let bytes = wire::encode_tcp(REMOTE_IP, LOCAL_IP, &seg);
        let now = self.now();
        self.capture(now, &bytes);
        let (src, dst, seg) =
            wire::decode_tcp(&bytes).map_err(|e| format!("injected packet does not parse: {e}"))?;
        let desc = self.describe(&seg);
        self.log(line, format!("< {desc}"));
        self.stack.handle_segment(now, src, dst, &seg);
        Ok(())
    }

    fn outbound(
        &mut self,
        line: usize,
        p: &PacketSpec,
        window: Option<(Instant, Instant)>,
    ) -> Result<(), String> {
        let (earliest, deadline) = match window {
            Some((t0, t1)) => (
                Instant::from_nanos(t0.as_nanos().saturating_sub(self.tolerance.as_nanos() as u64)),
                t1 + self.tolerance,
            ),
            None => (Instant::ZERO, self.now() + ANY_TIME_LIMIT),
        };
        if self.queue.is_empty() {
            self.advance(deadline, true)?;
        }
        let Some(sent) = self.queue.pop_front() else {
            return Err(format!(
                "expected packet `{}` by {}, the stack sent nothing",
                describe_spec(p),
                self.script_time(deadline)
            ));
        };
        let (_, _, seg) = wire::decode_tcp(&sent.bytes)
            .map_err(|e| format!("the stack sent a packet that does not parse: {e}"))?;
        // Learn the local ISN and port from the stack's SYN (before describing the packet).
        if seg.flags.contains(TcpFlags::SYN) {
            if let (Some(s), None) = (p.seq, self.local_isn) {
                self.local_isn = Some(seg.seq.wrapping_sub(s.start));
            }
            if !seg.flags.contains(TcpFlags::ACK) {
                self.local_port = seg.src_port;
            }
        }
        let desc = self.describe(&seg);
        self.log(line, format!("> {desc}"));
        if sent.at < earliest {
            return Err(format!(
                "packet `{desc}` sent at {}, script expects it at {} (tolerance {} us)",
                self.script_time(sent.at),
                self.script_time(window.map_or(sent.at, |w| w.0)),
                self.tolerance.as_micros()
            ));
        }
        self.match_outbound(p, &seg)
            .map_err(|what| format!("{what}: expected `{}`, got `{desc}`", describe_spec(p)))?;
        self.last_event = sent.at;
        Ok(())
    }

    /// Compares an outbound segment with the script's line; `Err` names the first field that
    /// differs.
    fn match_outbound(&mut self, p: &PacketSpec, seg: &TcpRepr<'_>) -> Result<(), String> {
        if seg.src_port != self.local_port || seg.dst_port != REMOTE_PORT {
            return Err(format!(
                "wrong ports {}->{} (expected {}->{})",
                seg.src_port, seg.dst_port, self.local_port, REMOTE_PORT
            ));
        }
        if seg.flags != p.flags {
            return Err("flags differ".into());
        }
        if seg.payload.len() as u32 != p.payload_len() {
            return Err("payload length differs".into());
        }
        if let Some(s) = p.seq {
            if seg.seq != self.local_isn().wrapping_add(s.start) {
                return Err("sequence number differs".into());
            }
        }
        if let Some(a) = p.ack {
            if seg.ack != REMOTE_ISN.wrapping_add(a) {
                return Err("ack differs".into());
            }
        }
        if let Some(w) = p.win {
            if u32::from(seg.window) != w {
                return Err("window differs".into());
            }
        }
        if let Some(u) = p.urg {
            if u32::from(seg.urgent) != u {
                return Err("urgent pointer differs".into());
            }
        }
        self.match_options(p.options.as_deref().unwrap_or(&[]), &seg.options)
    }

    fn match_options(&mut self, want: &[TcpOptionSpec], got: &TcpOptions) -> Result<(), String> {
        let mut mss = None;
        let mut ws = None;
        let mut sack_ok = false;
        let mut sack: Option<&[(u32, u32)]> = None;
        let mut ts = None;
        for o in want {
            match o {
                TcpOptionSpec::Eol | TcpOptionSpec::Nop => {}
                TcpOptionSpec::Mss(m) => mss = Some(*m),
                TcpOptionSpec::WindowScale(s) => ws = Some(*s),
                TcpOptionSpec::SackPermitted => sack_ok = true,
                TcpOptionSpec::Sack(b) => sack = Some(b),
                TcpOptionSpec::Timestamp { val, ecr } => ts = Some((*val, *ecr)),
                TcpOptionSpec::Other(name, _) => {
                    return Err(format!("option `{name}` is not supported by the runner"))
                }
            }
        }
        if got.mss != mss {
            return Err("MSS option differs".into());
        }
        if got.window_scale != ws {
            return Err("window scale option differs".into());
        }
        if got.sack_permitted != sack_ok {
            return Err("SACK-permitted option differs".into());
        }
        let got_sack = &got.sack_blocks[..usize::from(got.sack_len).min(got.sack_blocks.len())];
        let want_sack = sack.unwrap_or(&[]);
        let same_sack = got_sack.len() == want_sack.len()
            && got_sack.iter().zip(want_sack).all(|(g, (l, r))| {
                g.left == REMOTE_ISN.wrapping_add(*l) && g.right == REMOTE_ISN.wrapping_add(*r)
            });
        if !same_sack {
            return Err("SACK blocks differ".into());
        }
        match (got.timestamps, ts) {
            (None, None) => {}
            (Some((gv, ge)), Some((wv, we))) => {
                if ge != we {
                    return Err("TS ecr differs".into());
                }
                match self.ts_offset {
                    None => self.ts_offset = Some(gv.wrapping_sub(wv)),
                    Some(off) => {
                        let diff = gv.wrapping_sub(wv.wrapping_add(off)) as i32;
                        let slack = (self.tolerance.as_millis() as i64) + 1;
                        if i64::from(diff).abs() > slack {
                            return Err("TS val differs".into());
                        }
                    }
                }
            }
            _ => return Err("timestamp option differs".into()),
        }
        Ok(())
    }

    /// A segment in script notation (relative numbers).
    fn describe(&self, seg: &TcpRepr<'_>) -> String {
        let outbound = seg.src_port != REMOTE_PORT;
        let (seq_base, ack_base) =
            if outbound { (self.local_isn(), REMOTE_ISN) } else { (REMOTE_ISN, self.local_isn()) };
        let start = seg.seq.wrapping_sub(seq_base);
        let len = seg.payload.len() as u32;
        let mut s =
            format!("{} {}:{}({})", flag_string(seg.flags), start, start.wrapping_add(len), len);
        if seg.flags.contains(TcpFlags::ACK) {
            let _ = write!(s, " ack {}", seg.ack.wrapping_sub(ack_base));
        }
        let _ = write!(s, " win {}", seg.window);
        let o = &seg.options;
        let mut opts = Vec::new();
        if let Some(m) = o.mss {
            opts.push(format!("mss {m}"));
        }
        if o.sack_permitted {
            opts.push("sackOK".into());
        }
        if let Some(w) = o.window_scale {
            opts.push(format!("wscale {w}"));
        }
        if let Some((v, e)) = o.timestamps {
            let v = if outbound { v.wrapping_sub(self.ts_offset.unwrap_or(0)) } else { v };
            opts.push(format!("TS val {v} ecr {e}"));
        }
        let n = usize::from(o.sack_len).min(o.sack_blocks.len());
        if n > 0 {
            let blocks: Vec<String> = o.sack_blocks[..n]
                .iter()
                .map(|b| {
                    format!("{}:{}", b.left.wrapping_sub(ack_base), b.right.wrapping_sub(ack_base))
                })
                .collect();
            opts.push(format!("sack {}", blocks.join(" ")));
        }
        if !opts.is_empty() {
            let _ = write!(s, " <{}>", opts.join(","));
        }
        s
    }

    fn describe_bytes(&self, bytes: &[u8]) -> String {
        match wire::decode_tcp(bytes) {
            Ok((_, _, seg)) => self.describe(&seg),
            Err(e) => format!("(unparsable: {e})"),
        }
    }

    // ---- shell commands and code blocks ----------------------------------------------------

    fn command(&mut self, cmd: &str) -> Result<(), String> {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        match words.first().copied() {
            Some("sysctl") => {
                for assignment in words[1..].iter().filter(|w| !w.starts_with('-')) {
                    let Some((name, value)) = assignment.split_once('=') else { continue };
                    if self.stack.set_tunable(name, value).is_err() {
                        self.notes.push(format!("unknown tunable {name}={value} (ignored)"));
                    }
                }
                Ok(())
            }
            Some("sockstat") => self.sockstat(cmd),
            Some("tcpdrop") => self.tcpdrop(&words[1..], cmd),
            _ => {
                self.notes.push(format!("shell command not run: `{cmd}`"));
                Ok(())
            }
        }
    }

    /// `tcpdrop -s STATE` (FreeBSD tcpdrop(8)): drop every connection in STATE; `tcpdrop -a`:
    /// every connection. Dropped connections are deleted without a segment on the wire.
    fn tcpdrop(&mut self, args: &[&str], cmd: &str) -> Result<(), String> {
        let state = match args {
            ["-a"] => None,
            ["-s", state] => Some(state.replace("SYN_RCVD", "SYN_RECEIVED")),
            _ => {
                self.notes.push(format!("shell command not run: `{cmd}`"));
                return Ok(());
            }
        };
        let now = self.now();
        let victims: Vec<_> = self
            .stack
            .connections()
            .filter(|c| c.state != State::Listen)
            .filter(|c| state.as_ref().is_none_or(|s| c.state.name().replace('-', "_") == *s))
            .map(|c| (c.local, c.remote))
            .collect();
        for (local, remote) in victims {
            self.stack
                .drop_connection(now, local, remote)
                .map_err(|e| format!("tcpdrop {local} {remote}: {e}"))?;
        }
        Ok(())
    }

    /// `sockstat ... | grep -c STATE | grep N`: N connections in STATE.
    fn sockstat(&mut self, cmd: &str) -> Result<(), String> {
        let stages: Vec<Vec<&str>> =
            cmd.split('|').map(|s| s.split_whitespace().collect()).collect();
        let state =
            stages.iter().find(|s| s.len() == 3 && s[0] == "grep" && s[1] == "-c").map(|s| s[2]);
        let want = stages.last().filter(|s| s.len() == 2 && s[0] == "grep").map(|s| s[1]);
        let (Some(state), Some(want)) = (state, want.and_then(|w| w.parse::<usize>().ok())) else {
            self.notes.push(format!("shell command not run: `{cmd}`"));
            return Ok(());
        };
        let found = self
            .stack
            .connections()
            .filter(|c| {
                c.state.name().replace('-', "_") == state.replace("SYN_RCVD", "SYN_RECEIVED")
            })
            .count();
        if found == want {
            Ok(())
        } else {
            Err(format!("sockstat: expected {want} connection(s) in {state}, found {found}"))
        }
    }

    fn code(&mut self, code: &str) -> Result<(), String> {
        let words: Vec<&str> = code.split_whitespace().collect();
        if let ["assert", "tcpi_state", "==", name] = words[..] {
            let want = name.trim_start_matches("TCPI_").replace("SYN_RECEIVED", "SYN_RCVD");
            let fd =
                self.last_fd.and_then(|fd| self.fds.get(&fd)).ok_or("no socket for tcpi_state")?;
            let got = self.stack.state(fd.id).map_err(|e| format!("tcpi_state: {e}"))?;
            let got_name = got.name().replace('-', "_").replace("SYN_RECEIVED", "SYN_RCVD");
            if got_name == want {
                return Ok(());
            }
            return Err(format!("tcpi_state is {got_name}, script asserts {want}"));
        }
        self.notes.push(format!("code block not run: %{{ {code} }}%"));
        Ok(())
    }
}

/// Flags in script notation: `S`, `F.`, `.`, `P.`, `R`.
fn flag_string(f: TcpFlags) -> String {
    let mut s = String::new();
    for (bit, ch) in [
        (TcpFlags::SYN, 'S'),
        (TcpFlags::FIN, 'F'),
        (TcpFlags::RST, 'R'),
        (TcpFlags::PSH, 'P'),
        (TcpFlags::URG, 'U'),
        (TcpFlags::ECE, 'E'),
        (TcpFlags::CWR, 'W'),
    ] {
        if f.contains(bit) {
            s.push(ch);
        }
    }
    if f.contains(TcpFlags::ACK) {
        s.push('.');
    }
    s
}

/// A packet line as the script wrote it (for messages).
fn describe_spec(p: &PacketSpec) -> String {
    let mut s = flag_string(p.flags);
    match p.seq {
        Some(q) => {
            let _ = write!(s, " {}:{}({})", q.start, q.end, q.len);
        }
        None => {
            let _ = write!(s, " ...({})", p.any_len);
        }
    }
    if let Some(a) = p.ack {
        let _ = write!(s, " ack {a}");
    }
    if let Some(w) = p.win {
        let _ = write!(s, " win {w}");
    }
    if let Some(opts) = &p.options {
        let words: Vec<String> = opts
            .iter()
            .map(|o| match o {
                TcpOptionSpec::Eol => "eol".to_string(),
                TcpOptionSpec::Nop => "nop".to_string(),
                TcpOptionSpec::Mss(m) => format!("mss {m}"),
                TcpOptionSpec::WindowScale(w) => format!("wscale {w}"),
                TcpOptionSpec::SackPermitted => "sackOK".to_string(),
                TcpOptionSpec::Sack(b) => {
                    let b: Vec<String> = b.iter().map(|(l, r)| format!("{l}:{r}")).collect();
                    format!("sack {}", b.join(" "))
                }
                TcpOptionSpec::Timestamp { val, ecr } => format!("TS val {val} ecr {ecr}"),
                TcpOptionSpec::Other(n, _) => n.clone(),
            })
            .collect();
        let _ = write!(s, " <{}>", words.join(","));
    }
    s
}
