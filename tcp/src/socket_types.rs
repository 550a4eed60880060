//! The small public value types of the socket layer: ids, states, options, readiness, info.

use core::time::Duration;

use crate::config::CcAlgorithm;

/// A handle to one socket of a [`crate::TcpStack`]. Ids are never reused within a stack, so a
/// stale id yields [`crate::TcpError::BadSocket`] rather than another socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(pub(crate) u32);

impl SocketId {
    /// The raw number (for logs and tables).
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Which direction(s) `shutdown` closes (`SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// No more receiving.
    Read,
    /// No more sending: a FIN follows the queued data.
    Write,
    /// Both.
    Both,
}

/// The connection state, RFC 9293 §3.3.2 names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection (a fresh or bound socket, or a finished one).
    Closed,
    /// Waiting for connection requests.
    Listen,
    /// Our SYN sent, waiting for the peer's.
    SynSent,
    /// SYN received and SYN-ACK sent, waiting for the ACK.
    SynReceived,
    /// Open: data flows both ways.
    Established,
    /// We sent FIN, waiting for its ACK or the peer's FIN.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's FIN.
    FinWait2,
    /// Peer sent FIN; waiting for the application to close.
    CloseWait,
    /// Both sent FIN simultaneously; waiting for the ACK of ours.
    Closing,
    /// Peer's FIN seen, ours sent; waiting for its ACK.
    LastAck,
    /// Waiting 2·MSL so that stray segments of this connection die out.
    TimeWait,
}

impl State {
    /// The RFC 9293 name in upper case (`"SYN-RECEIVED"`); `sockstat` prints them with `_`.
    pub const fn name(self) -> &'static str {
        match self {
            State::Closed => "CLOSED",
            State::Listen => "LISTEN",
            State::SynSent => "SYN-SENT",
            State::SynReceived => "SYN-RECEIVED",
            State::Established => "ESTABLISHED",
            State::FinWait1 => "FIN-WAIT-1",
            State::FinWait2 => "FIN-WAIT-2",
            State::CloseWait => "CLOSE-WAIT",
            State::Closing => "CLOSING",
            State::LastAck => "LAST-ACK",
            State::TimeWait => "TIME-WAIT",
        }
    }
}

/// A socket option with its value (`setsockopt`/`getsockopt`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    /// `SO_REUSEADDR`.
    ReuseAddr(bool),
    /// `SO_KEEPALIVE`.
    KeepAlive(bool),
    /// `SO_LINGER`: `None` = off; `Some(ZERO)` = abortive close (RST).
    Linger(Option<Duration>),
    /// `SO_RCVBUF` in bytes (the receive buffer, hence the largest window).
    RecvBuffer(usize),
    /// `SO_SNDBUF` in bytes.
    SendBuffer(usize),
    /// `TCP_NODELAY`: disable Nagle (RFC 9293 §3.7.4).
    NoDelay(bool),
    /// `TCP_CORK`: hold partial segments until uncorked (or 200 ms).
    Cork(bool),
    /// `TCP_MAXSEG`: clamp our MSS (0 = the default).
    MaxSegment(u16),
    /// `TCP_KEEPIDLE`.
    KeepIdle(Duration),
    /// `TCP_KEEPINTVL`.
    KeepInterval(Duration),
    /// `TCP_KEEPCNT`.
    KeepCount(u32),
    /// `TCP_USER_TIMEOUT` (RFC 9293 §3.8.3; zero = off).
    UserTimeout(Duration),
    /// `TCP_CONGESTION`.
    Congestion(CcAlgorithm),
    /// `TCP_QUICKACK`: acknowledge at once instead of delaying (until the next read).
    QuickAck(bool),
}

/// The name of a [`SockOpt`], for `getsockopt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SockOptName {
    /// `SO_REUSEADDR`.
    ReuseAddr,
    /// `SO_KEEPALIVE`.
    KeepAlive,
    /// `SO_LINGER`.
    Linger,
    /// `SO_RCVBUF`.
    RecvBuffer,
    /// `SO_SNDBUF`.
    SendBuffer,
    /// `TCP_NODELAY`.
    NoDelay,
    /// `TCP_CORK`.
    Cork,
    /// `TCP_MAXSEG` (on a connected socket: the MSS in use).
    MaxSegment,
    /// `TCP_KEEPIDLE`.
    KeepIdle,
    /// `TCP_KEEPINTVL`.
    KeepInterval,
    /// `TCP_KEEPCNT`.
    KeepCount,
    /// `TCP_USER_TIMEOUT`.
    UserTimeout,
    /// `TCP_CONGESTION`.
    Congestion,
    /// `TCP_QUICKACK`.
    QuickAck,
}

impl SockOpt {
    /// This option's name.
    pub const fn name(&self) -> SockOptName {
        match self {
            SockOpt::ReuseAddr(_) => SockOptName::ReuseAddr,
            SockOpt::KeepAlive(_) => SockOptName::KeepAlive,
            SockOpt::Linger(_) => SockOptName::Linger,
            SockOpt::RecvBuffer(_) => SockOptName::RecvBuffer,
            SockOpt::SendBuffer(_) => SockOptName::SendBuffer,
            SockOpt::NoDelay(_) => SockOptName::NoDelay,
            SockOpt::Cork(_) => SockOptName::Cork,
            SockOpt::MaxSegment(_) => SockOptName::MaxSegment,
            SockOpt::KeepIdle(_) => SockOptName::KeepIdle,
            SockOpt::KeepInterval(_) => SockOptName::KeepInterval,
            SockOpt::KeepCount(_) => SockOptName::KeepCount,
            SockOpt::UserTimeout(_) => SockOptName::UserTimeout,
            SockOpt::Congestion(_) => SockOptName::Congestion,
            SockOpt::QuickAck(_) => SockOptName::QuickAck,
        }
    }
}

/// What an event loop may do with a socket now (the epoll bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Readiness {
    /// Data (or EOF, or a pending connection on a listener) can be read (`EPOLLIN`).
    pub readable: bool,
    /// Send buffer space is free on a connected socket (`EPOLLOUT`).
    pub writable: bool,
    /// Both directions are finished or the connection died (`EPOLLHUP`).
    pub hup: bool,
    /// The peer shut down its sending side (`EPOLLRDHUP`).
    pub rdhup: bool,
    /// An error is pending (`EPOLLERR`, read it with `take_error`).
    pub error: bool,
}

/// Connection statistics, after Linux's `struct tcp_info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// RFC 9293 state (`None` reads as CLOSED).
    pub state: Option<State>,
    /// Smoothed RTT.
    pub srtt: Duration,
    /// RTT variation.
    pub rttvar: Duration,
    /// Current retransmission timeout.
    pub rto: Duration,
    /// Congestion window in bytes.
    pub cwnd: u32,
    /// Slow-start threshold in bytes.
    pub ssthresh: u32,
    /// The MSS used for sending.
    pub snd_mss: u16,
    /// The MSS we advertised to the peer.
    pub rcv_mss: u16,
    /// Peer's window in bytes (scaled).
    pub snd_wnd: u32,
    /// Our advertised window in bytes.
    pub rcv_wnd: u32,
    /// Segments retransmitted over the connection's life.
    pub total_retrans: u64,
    /// Consecutive RTO expirations (backoff level).
    pub backoff: u32,
    /// Bytes sent (first transmissions, sequence space).
    pub bytes_sent: u64,
    /// Bytes acknowledged by the peer.
    pub bytes_acked: u64,
    /// Bytes received in order.
    pub bytes_received: u64,
    /// Segments sent.
    pub segs_out: u64,
    /// Segments received.
    pub segs_in: u64,
    /// Bytes still unacknowledged in flight.
    pub unacked: u32,
    /// Whether timestamps, SACK and window scaling were negotiated.
    pub ts_ok: bool,
    /// SACK negotiated.
    pub sack_ok: bool,
    /// Window scale shifts (send, receive); 0 when not negotiated.
    pub wscale: (u8, u8),
}

/// One connection of the table, for `sockstat`-like listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnEntry {
    /// The socket's id (orphans in FIN-WAIT/TIME-WAIT and embryonic connections not yet
    /// accepted are listed with their internal id, which the application never saw).
    pub id: SocketId,
    /// Local address.
    pub local: core::net::SocketAddrV4,
    /// Remote address (unspecified for listeners).
    pub remote: core::net::SocketAddrV4,
    /// The state.
    pub state: State,
}
