//! One TCP connection: the per-state structs (DESIGN.md rule 2) and the user calls.
//!
//! The state is an enum whose variants carry only what that state has: [`SynSent`] knows its
//! ISS and SYN retries but has no sequence-space control block; the synchronized states carry
//! a [`Tcb`]; [`TimeWait`] keeps the few numbers needed to answer a retransmitted FIN. Send and
//! receive buffers live beside the state because data outlives state changes (ESTABLISHED →
//! CLOSE-WAIT keeps unread bytes).
//!
//! Deviation from netstack3's "transitions return what to send": input and timers only record
//! *what is due* (an ACK now, a retransmission, a RST in the stack's reply queue); segments are
//! built in [`Conn::poll`] so that payload can be borrowed from the send buffer instead of being
//! copied into a returned value.

mod input;
mod output;
mod tcb;

use core::net::SocketAddrV4;
use core::time::Duration;

use joyride_base::Instant;
use joyride_ip::tcp::{TcpFlags, TcpRepr};

use crate::buffer::{RecvBuffer, SendBuffer};
use crate::config::{CcAlgorithm, TcpConfig};
use crate::error::TcpError;
use crate::seq::SeqNum;
use crate::socket_types::{Readiness, SocketId, State, TcpInfo};

pub(crate) use input::Ctl;
pub(crate) use tcb::Tcb;

/// Per-socket options a connection consults while running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ConnOpts {
    pub nodelay: bool,
    pub cork: bool,
    pub keepalive: bool,
    pub keep_idle: Duration,
    pub keep_intvl: Duration,
    pub keep_cnt: u32,
    pub user_timeout: Duration,
    pub linger: Option<Duration>,
    pub max_seg: u16,
    pub quickack: bool,
    pub congestion: CcAlgorithm,
    pub rcvbuf: usize,
    pub sndbuf: usize,
    pub reuseaddr: bool,
    /// RFC 8985 RACK-TLP (with SACK).
    pub rack: bool,
}

impl ConnOpts {
    /// The defaults of a new socket under `cfg`.
    pub(crate) fn new(cfg: &TcpConfig) -> Self {
        ConnOpts {
            nodelay: false,
            cork: false,
            keepalive: false,
            keep_idle: cfg.keepalive_idle,
            keep_intvl: cfg.keepalive_interval,
            keep_cnt: cfg.keepalive_count,
            user_timeout: Duration::ZERO,
            linger: None,
            max_seg: 0,
            quickack: false,
            congestion: cfg.congestion,
            rcvbuf: cfg.recv_buffer,
            sndbuf: cfg.send_buffer,
            reuseaddr: false,
            rack: cfg.rack,
        }
    }
}

/// SYN-SENT: our SYN is out (or due), nothing synchronized yet.
#[derive(Clone, Debug)]
pub(crate) struct SynSent {
    pub iss: SeqNum,
    /// SYN transmissions so far.
    pub tries: u32,
    /// When the next (re)transmission of the SYN is due.
    pub due: Instant,
    /// When the first SYN went out (RTT sample on SYN-ACK if never retransmitted).
    pub first_sent: Option<Instant>,
}

/// TIME-WAIT: only what is needed to re-ACK a retransmitted FIN (RFC 9293 §3.10.7.4).
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimeWait {
    pub snd_nxt: SeqNum,
    pub rcv_nxt: SeqNum,
    pub rcv_wscale: u8,
    pub ts: Option<u32>,
    pub expires: Instant,
    pub ack_now: bool,
}

/// The state, with per-state data (DESIGN.md rule 2).
#[derive(Debug)]
pub(crate) enum ConnState {
    SynSent(SynSent),
    SynRcvd(Tcb),
    Established(Tcb),
    FinWait1(Tcb),
    FinWait2(Tcb),
    CloseWait(Tcb),
    Closing(Tcb),
    LastAck(Tcb),
    TimeWait(TimeWait),
    Closed,
}

impl ConnState {
    pub(crate) fn name(&self) -> State {
        match self {
            ConnState::SynSent(_) => State::SynSent,
            ConnState::SynRcvd(_) => State::SynReceived,
            ConnState::Established(_) => State::Established,
            ConnState::FinWait1(_) => State::FinWait1,
            ConnState::FinWait2(_) => State::FinWait2,
            ConnState::CloseWait(_) => State::CloseWait,
            ConnState::Closing(_) => State::Closing,
            ConnState::LastAck(_) => State::LastAck,
            ConnState::TimeWait(_) => State::TimeWait,
            ConnState::Closed => State::Closed,
        }
    }

    pub(crate) fn tcb(&self) -> Option<&Tcb> {
        match self {
            ConnState::SynRcvd(t)
            | ConnState::Established(t)
            | ConnState::FinWait1(t)
            | ConnState::FinWait2(t)
            | ConnState::CloseWait(t)
            | ConnState::Closing(t)
            | ConnState::LastAck(t) => Some(t),
            _ => None,
        }
    }

    pub(crate) fn tcb_mut(&mut self) -> Option<&mut Tcb> {
        match self {
            ConnState::SynRcvd(t)
            | ConnState::Established(t)
            | ConnState::FinWait1(t)
            | ConnState::FinWait2(t)
            | ConnState::CloseWait(t)
            | ConnState::Closing(t)
            | ConnState::LastAck(t) => Some(t),
            _ => None,
        }
    }
}

/// One connection.
#[derive(Debug)]
pub(crate) struct Conn {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub state: ConnState,
    pub snd: SendBuffer,
    pub rcv: RecvBuffer,
    pub opts: ConnOpts,
    /// The pending error (`SO_ERROR`), set when the connection dies.
    pub error: Option<TcpError>,
    /// The error the connection died of, returned by later calls (sticky, unlike `error`).
    pub dead: Option<TcpError>,
    /// `shutdown(SHUT_RD)` was called.
    pub rd_shut: bool,
    /// `shutdown(SHUT_WR)`/`close` was called: a FIN follows the queued data.
    pub wr_shut: bool,
    /// The peer's FIN was received (reads return EOF once the buffer is drained).
    pub peer_fin: bool,
    /// The application closed the socket; the connection finishes on its own.
    pub orphan: bool,
    /// The listener this connection was accepted from, until `accept` hands it out.
    pub parent: Option<SocketId>,
    /// Set once the connection reaches ESTABLISHED (the table moves it to the accept queue).
    pub became_established: bool,
    /// Offset added to `now` in milliseconds to form TSval (RFC 7323 §5.4 random offset).
    pub ts_offset: u32,
    /// Last time a segment arrived (keepalive idle time).
    pub last_rx: Instant,
    /// A SYN arrived in TIME-WAIT that may start a new incarnation: the table closes this
    /// connection and hands the SYN to the listener.
    pub reopen: bool,
}

impl Conn {
    /// A connection in SYN-SENT (active open), SYN due now.
    pub(crate) fn new_active(
        now: Instant,
        cfg: &TcpConfig,
        opts: ConnOpts,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        ts_offset: u32,
    ) -> Conn {
        Conn {
            local,
            remote,
            state: ConnState::SynSent(SynSent { iss, tries: 0, due: now, first_sent: None }),
            snd: SendBuffer::new(opts.sndbuf),
            rcv: RecvBuffer::new(opts.rcvbuf.min(cfg.max_buffer)),
            opts,
            error: None,
            dead: None,
            rd_shut: false,
            wr_shut: false,
            peer_fin: false,
            orphan: false,
            parent: None,
            became_established: false,
            ts_offset,
            last_rx: now,
            reopen: false,
        }
    }

    /// A connection in SYN-RECEIVED for the SYN `syn` (passive open), SYN-ACK due now.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_passive(
        now: Instant,
        cfg: &TcpConfig,
        opts: ConnOpts,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        ts_offset: u32,
        syn: &TcpRepr<'_>,
        parent: SocketId,
    ) -> Conn {
        let mut c = Conn::new_active(now, cfg, opts, local, remote, iss, ts_offset);
        let mut tcb = Tcb::from_syn(now, cfg, &c.opts, iss, syn, c.rcv.capacity(), ts_offset);
        // The SYN-ACK is due at once.
        tcb.rto_at = Some(now);
        tcb.syn_unacked = true;
        c.state = ConnState::SynRcvd(tcb);
        c.parent = Some(parent);
        c.round_rcvbuf(cfg);
        c
    }

    /// A connection completed from a SYN cookie (RFC 4987 §3.6): ESTABLISHED at once, with the
    /// MSS the cookie carried and no other options (they were not encoded).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_from_cookie(
        now: Instant,
        cfg: &TcpConfig,
        opts: ConnOpts,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: SeqNum,
        irs: SeqNum,
        mss: u16,
        window: u16,
        ts_offset: u32,
        parent: SocketId,
    ) -> Conn {
        let mut c = Conn::new_active(now, cfg, opts, local, remote, iss, ts_offset);
        // The SYN we never kept, rebuilt from what the cookie proves.
        let syn = TcpRepr {
            src_port: remote.port(),
            dst_port: local.port(),
            seq: irs.get(),
            ack: 0,
            flags: TcpFlags::SYN,
            window,
            urgent: 0,
            options: joyride_ip::tcp::TcpOptions { mss: Some(mss), ..Default::default() },
            payload: &[],
        };
        let mut tcb = Tcb::from_syn(now, cfg, &c.opts, iss, &syn, c.rcv.capacity(), ts_offset);
        tcb.snd_una = iss + 1;
        tcb.snd_nxt = iss + 1;
        tcb.snd_max = iss + 1;
        tcb.snd_wl1 = irs;
        tcb.snd_wl2 = iss + 1;
        c.state = ConnState::Established(tcb);
        c.parent = Some(parent);
        c.became_established = true;
        c
    }

    /// Apply changed socket options (buffer sizes only before data flows).
    pub(crate) fn set_opts(&mut self, opts: ConnOpts) {
        if opts.rcvbuf != self.opts.rcvbuf {
            let _ = self.rcv.set_capacity(opts.rcvbuf);
        }
        if opts.sndbuf != self.opts.sndbuf {
            let _ = self.snd.set_capacity(opts.sndbuf.max(self.snd.len()));
        }
        if opts.quickack {
            if let Some(t) = self.state.tcb_mut() {
                t.ack_now |= t.delack_at.is_some();
            }
        }
        self.opts = opts;
    }

    /// The RFC 9293 state.
    pub(crate) fn state(&self) -> State {
        self.state.name()
    }

    /// Whether the connection is finished and can leave the demux table.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, ConnState::Closed)
    }

    /// Enter CLOSED because of `err` (None: a normal end).
    pub(crate) fn die(&mut self, err: Option<TcpError>) {
        if let Some(e) = err {
            self.error = Some(e);
            self.dead = Some(e);
        }
        self.state = ConnState::Closed;
        self.rcv.drop_out_of_order();
    }

    /// `send(2)`: queue as much of `data` as fits.
    pub(crate) fn send(&mut self, data: &[u8]) -> Result<usize, TcpError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.wr_shut {
            return Err(TcpError::BrokenPipe);
        }
        match self.state {
            ConnState::SynSent(_) | ConnState::SynRcvd(_) => return Err(TcpError::WouldBlock),
            ConnState::Established(_) | ConnState::CloseWait(_) => {}
            ConnState::Closed => {
                return Err(if self.dead.is_some() {
                    TcpError::BrokenPipe
                } else {
                    TcpError::NotConnected
                })
            }
            _ => return Err(TcpError::BrokenPipe),
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = self.snd.write(data);
        if n == 0 {
            return Err(TcpError::WouldBlock);
        }
        Ok(n)
    }

    /// `recv(2)`: copy (or peek) readable bytes; `Ok(0)` is EOF.
    pub(crate) fn recv(&mut self, buf: &mut [u8], peek: bool) -> Result<usize, TcpError> {
        if matches!(self.state, ConnState::SynSent(_) | ConnState::SynRcvd(_)) {
            return Err(TcpError::WouldBlock);
        }
        if self.rcv.readable() > 0 {
            let before = self.rcv.window();
            let n = if peek { self.rcv.peek(buf, 0) } else { self.rcv.read(buf) };
            if !peek {
                if let Some(t) = self.state.tcb_mut() {
                    t.on_app_read(before, self.rcv.window());
                }
            }
            return Ok(n);
        }
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if self.peer_fin || self.rd_shut {
            return Ok(0);
        }
        match self.state {
            ConnState::Closed => {
                if self.dead.is_some() {
                    Ok(0)
                } else {
                    Err(TcpError::NotConnected)
                }
            }
            _ => Err(TcpError::WouldBlock),
        }
    }

    /// `shutdown(SHUT_WR)` / the FIN half of `close`: RFC 9293 §3.10.4.
    pub(crate) fn shutdown_write(&mut self) {
        if self.wr_shut {
            return;
        }
        let state = core::mem::replace(&mut self.state, ConnState::Closed);
        self.state = match state {
            // RFC 9293 §3.10.4: SYN-SENT: "Delete the TCB"; no data was ever sent.
            ConnState::SynSent(_) => ConnState::Closed,
            ConnState::SynRcvd(t) => {
                // "If no SENDs have been issued and there is no pending data to send, then form
                // a FIN segment and send it, and enter FIN-WAIT-1 state"; we queue the FIN
                // after the handshake completes instead.
                self.wr_shut = true;
                ConnState::SynRcvd(t)
            }
            ConnState::Established(mut t) => {
                self.wr_shut = true;
                t.set_fin(&self.snd);
                ConnState::FinWait1(t)
            }
            ConnState::CloseWait(mut t) => {
                self.wr_shut = true;
                t.set_fin(&self.snd);
                ConnState::LastAck(t)
            }
            other => other,
        };
        self.wr_shut = true;
    }

    /// An abortive close (RST): RFC 9293 §3.10.5 ABORT. Returns the RST to send, if any.
    pub(crate) fn abort(&mut self) -> Option<TcpRepr<'static>> {
        let rst = match &self.state {
            ConnState::SynRcvd(t)
            | ConnState::Established(t)
            | ConnState::FinWait1(t)
            | ConnState::FinWait2(t)
            | ConnState::CloseWait(t) => Some(TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: t.snd_nxt.get(),
                ack: t.rcv_nxt.get(),
                flags: TcpFlags::RST | TcpFlags::ACK,
                window: 0,
                urgent: 0,
                options: Default::default(),
                payload: &[],
            }),
            _ => None,
        };
        self.die(None);
        rst
    }

    /// Whether the application's `close` must reset the connection (RFC 9293 §3.10.4 / RFC 2525
    /// §2.17: unread data, or `SO_LINGER` with a zero timeout).
    pub(crate) fn close_must_reset(&self, cfg: &TcpConfig) -> bool {
        (cfg.rst_on_unread_close && self.rcv.readable() > 0)
            || self.opts.linger == Some(Duration::ZERO)
    }

    /// The epoll bits.
    pub(crate) fn readiness(&self) -> Readiness {
        let closed = matches!(self.state, ConnState::Closed);
        let established = matches!(self.state, ConnState::Established(_) | ConnState::CloseWait(_));
        Readiness {
            readable: self.rcv.readable() > 0 || self.peer_fin || self.rd_shut || closed,
            writable: (established && !self.wr_shut && self.snd.free() > 0) || closed,
            hup: closed || (self.peer_fin && self.wr_shut),
            rdhup: self.peer_fin || closed,
            error: self.error.is_some(),
        }
    }

    /// TCP_INFO.
    pub(crate) fn info(&self) -> TcpInfo {
        let mut i = TcpInfo { state: Some(self.state()), ..Default::default() };
        if let Some(t) = self.state.tcb() {
            t.fill_info(&mut i);
        }
        i.rcv_wnd = self.rcv.window() as u32;
        i
    }

    /// Milliseconds-clock TSval for `now` (RFC 7323 §5.4).
    pub(crate) fn ts_val(&self, now: Instant) -> u32 {
        (now.as_millis() as u32).wrapping_add(self.ts_offset)
    }

    /// The earliest instant at which [`Conn::poll`] has something to do.
    pub(crate) fn poll_at(&self) -> Option<Instant> {
        match &self.state {
            ConnState::SynSent(s) => Some(s.due),
            ConnState::TimeWait(tw) => Some(if tw.ack_now { Instant::ZERO } else { tw.expires }),
            ConnState::Closed => None,
            _ => self.state.tcb().and_then(|t| t.poll_at(self)),
        }
    }
}
