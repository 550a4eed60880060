//! The socket table: every TCP socket of one host, demultiplexing and the POSIX-shaped calls.
//!
//! [`TcpStack`] is sans-IO: inbound segments arrive through [`TcpStack::handle_segment`],
//! outbound ones leave through [`TcpStack::poll_transmit`], and [`TcpStack::poll_at`] tells the
//! caller when to poll next. Time is always passed in as `now`.

use core::net::{Ipv4Addr, SocketAddrV4};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::vec::Vec;

use joyride_base::{Instant, Rng, SplitMix64};
use joyride_ip::tcp::{TcpFlags, TcpRepr};

use crate::config::{IsnPolicy, TcpConfig};
use crate::conn::{Conn, ConnOpts, ConnState, Ctl};
use crate::error::TcpError;
use crate::isn::{siphash24, IsnGenerator};
use crate::seq::SeqNum;
use crate::socket_types::{
    ConnEntry, Readiness, Shutdown, SockOpt, SockOptName, SocketId, State, TcpInfo,
};
use crate::syncookie::SynCookies;

/// The first and last ephemeral port (IANA's dynamic range, RFC 6335 §6).
const EPHEMERAL: (u16, u16) = (49152, 65535);

/// A connection 4-tuple: (local, remote).
type FourTuple = (SocketAddrV4, SocketAddrV4);

/// The socket table's maps: ids are the table's own sequential numbers, never chosen by a peer,
/// so one multiplication spreads them (std's keyed SipHash costs ~100 instructions on each of the
/// several lookups per segment). Tables keyed by what peers send (the 4-tuple demultiplexer)
/// keep SipHash against hash flooding.
type IdMap<V> = HashMap<SocketId, V, joyride_base::BuildIdHasher>;

/// A listening socket's queues (RFC 9293 §3.10.1 passive OPEN with a backlog).
#[derive(Debug, Default)]
struct Listener {
    backlog: u32,
    /// Embryonic children (SYN-RECEIVED).
    syn_queue: usize,
    /// Established children waiting for `accept`.
    accept_queue: VecDeque<SocketId>,
}

#[derive(Debug)]
enum Kind {
    /// Fresh or bound, not yet listening or connecting.
    Idle,
    Listener(Listener),
    Conn(Box<Conn>),
}

#[derive(Debug)]
struct Socket {
    local: Option<SocketAddrV4>,
    opts: ConnOpts,
    kind: Kind,
    /// `close` was called: the id is gone for the application.
    closed: bool,
    /// The deadline registered for this socket in [`TcpStack::timers`] (the connection's
    /// `poll_at` when last looked at).
    timer: Option<Instant>,
}

/// The TCP sockets of one host (sans-IO).
#[derive(Debug)]
pub struct TcpStack {
    config: TcpConfig,
    secret: [u8; 16],
    isn_gen: IsnGenerator,
    cookies: SynCookies,
    rng: SplitMix64,
    local_addrs: Vec<Ipv4Addr>,
    sockets: IdMap<Socket>,
    next_id: u32,
    conns: HashMap<FourTuple, SocketId>,
    /// The last 4-tuple found in `conns` (a bulk flow's segments skip the keyed hash);
    /// cleared whenever an entry leaves `conns`.
    demux_cache: Option<(FourTuple, SocketId)>,
    listeners: HashMap<SocketAddrV4, SocketId>,
    ctl: Ctl,
    /// Copy space for segments whose payload wraps the send ring (allocated once).
    scratch: Vec<u8>,
    /// Every connection's next deadline, ordered: `poll_at` reads the first entry and
    /// `poll_transmit` visits only the due ones, instead of scanning every socket on each
    /// call. Kept exact by [`TcpStack::touch`] after anything that changes a connection.
    timers: BTreeSet<(Instant, u32)>,
    /// Reused list of the connections due in one `poll_transmit`.
    due: Vec<SocketId>,
}

impl TcpStack {
    /// A stack with `config`; `secret` keys ISNs (RFC 6528) and SYN cookies.
    pub fn new(config: TcpConfig, secret: [u8; 16]) -> Self {
        let seed = u64::from_le_bytes([
            secret[0], secret[1], secret[2], secret[3], secret[4], secret[5], secret[6], secret[7],
        ]) ^ u64::from_le_bytes([
            secret[8], secret[9], secret[10], secret[11], secret[12], secret[13], secret[14],
            secret[15],
        ]);
        TcpStack {
            ctl: Ctl::new(&config),
            config,
            secret,
            isn_gen: IsnGenerator::new(secret),
            cookies: SynCookies::new(secret),
            rng: SplitMix64::new(seed),
            local_addrs: Vec::new(),
            sockets: IdMap::default(),
            next_id: 1,
            conns: HashMap::new(),
            demux_cache: None,
            listeners: HashMap::new(),
            scratch: vec![0u8; 65536],
            timers: BTreeSet::new(),
            due: Vec::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &TcpConfig {
        &self.config
    }

    /// Replace the configuration (affects new sockets and connections; existing connections
    /// keep what they negotiated).
    pub fn set_config(&mut self, config: TcpConfig) {
        self.ctl.reconfigure(&config);
        self.config = config;
    }

    /// Set a tunable by its FreeBSD `sysctl` name (see [`TcpConfig::set_tunable`]).
    pub fn set_tunable(&mut self, name: &str, value: &str) -> Result<(), crate::UnknownTunable> {
        self.config.set_tunable(name, value)?;
        self.ctl.reconfigure(&self.config);
        Ok(())
    }

    /// The host's own IPv4 addresses: sources for `connect`, valid targets for `bind`.
    pub fn set_local_addrs(&mut self, addrs: &[Ipv4Addr]) {
        self.local_addrs = addrs.to_vec();
    }

    /// Add one local address.
    pub fn add_local_addr(&mut self, addr: Ipv4Addr) {
        if !self.local_addrs.contains(&addr) {
            self.local_addrs.push(addr);
        }
    }

    /// The host's IPv4 addresses.
    pub fn local_addrs(&self) -> &[Ipv4Addr] {
        &self.local_addrs
    }

    fn sock(&self, s: SocketId) -> Result<&Socket, TcpError> {
        self.sockets.get(&s).filter(|k| !k.closed).ok_or(TcpError::BadSocket)
    }

    fn sock_mut(&mut self, s: SocketId) -> Result<&mut Socket, TcpError> {
        self.sockets.get_mut(&s).filter(|k| !k.closed).ok_or(TcpError::BadSocket)
    }

    fn conn(&self, s: SocketId) -> Result<&Conn, TcpError> {
        match &self.sock(s)?.kind {
            Kind::Conn(c) => Ok(c),
            _ => Err(TcpError::NotConnected),
        }
    }

    fn conn_mut(&mut self, s: SocketId) -> Result<&mut Conn, TcpError> {
        match &mut self.sock_mut(s)?.kind {
            Kind::Conn(c) => Ok(c),
            _ => Err(TcpError::NotConnected),
        }
    }

    /// Re-register socket `id`'s deadline in the timer index after its connection changed.
    fn touch(&mut self, id: SocketId) {
        let Some(sock) = self.sockets.get_mut(&id) else { return };
        let new = match &sock.kind {
            Kind::Conn(c) => c.poll_at(),
            _ => None,
        };
        if sock.timer != new {
            if let Some(t) = sock.timer {
                self.timers.remove(&(t, id.0));
            }
            if let Some(t) = new {
                self.timers.insert((t, id.0));
            }
            sock.timer = new;
        }
    }

    /// Remove socket `id` and its timer entry.
    fn remove_socket(&mut self, id: SocketId) {
        if let Some(sock) = self.sockets.remove(&id) {
            if let Some(t) = sock.timer {
                self.timers.remove(&(t, id.0));
            }
        }
    }

    fn new_id(&mut self) -> SocketId {
        let id = SocketId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1).max(1);
        id
    }

    /// `socket(AF_INET, SOCK_STREAM, 0)`.
    pub fn socket(&mut self) -> Result<SocketId, TcpError> {
        let id = self.new_id();
        let opts = ConnOpts::new(&self.config);
        self.sockets
            .insert(id, Socket { local: None, opts, kind: Kind::Idle, closed: false, timer: None });
        Ok(id)
    }

    /// Whether `port` on `ip` is taken by another socket, under `SO_REUSEADDR` rules.
    fn port_in_use(&self, me: SocketId, ip: Ipv4Addr, port: u16, reuse: bool) -> bool {
        self.sockets.iter().any(|(id, k)| {
            let Some(l) = k.local else { return false };
            if *id == me || l.port() != port {
                return false;
            }
            let overlap = l.ip().is_unspecified() || ip.is_unspecified() || *l.ip() == ip;
            if !overlap {
                return false;
            }
            // SO_REUSEADDR on both lets a new socket share the port with connections (e.g. one
            // in TIME-WAIT), never with a listener.
            let listening = matches!(k.kind, Kind::Listener(_));
            !(reuse && (k.closed || (k.opts.reuseaddr && !listening)))
        })
    }

    fn pick_ephemeral(
        &mut self,
        me: SocketId,
        ip: Ipv4Addr,
        remote: Option<SocketAddrV4>,
    ) -> Result<u16, TcpError> {
        let span = u32::from(EPHEMERAL.1 - EPHEMERAL.0) + 1;
        let start = self.rng.below(u64::from(span)) as u32;
        for i in 0..span {
            let port = EPHEMERAL.0 + ((start + i) % span) as u16;
            let free = match remote {
                // RFC 6056: a port only needs to be unique per 4-tuple for connect.
                Some(r) => {
                    !self.conns.contains_key(&(SocketAddrV4::new(ip, port), r))
                        && !self.port_in_use(me, ip, port, true)
                }
                None => !self.port_in_use(me, ip, port, false),
            };
            if free {
                return Ok(port);
            }
        }
        Err(TcpError::AddrNotAvailable)
    }

    /// `bind(2)`: port 0 picks an ephemeral port; ip 0.0.0.0 means any local address.
    pub fn bind(&mut self, s: SocketId, local: SocketAddrV4) -> Result<(), TcpError> {
        let sock = self.sock(s)?;
        if sock.local.is_some() {
            return Err(TcpError::InvalidInput);
        }
        let reuse = sock.opts.reuseaddr;
        let ip = *local.ip();
        if !ip.is_unspecified() && !self.local_addrs.is_empty() && !self.local_addrs.contains(&ip) {
            return Err(TcpError::AddrNotAvailable);
        }
        let port = if local.port() == 0 {
            self.pick_ephemeral(s, ip, None)?
        } else if self.port_in_use(s, ip, local.port(), reuse) {
            return Err(TcpError::AddrInUse);
        } else {
            local.port()
        };
        self.sock_mut(s)?.local = Some(SocketAddrV4::new(ip, port));
        Ok(())
    }

    /// `listen(2)`: start accepting connections; `backlog` bounds the accept queue.
    pub fn listen(&mut self, s: SocketId, backlog: u32) -> Result<(), TcpError> {
        let backlog = backlog.clamp(1, self.config.max_backlog.max(1));
        if self.sock(s)?.local.is_none() {
            self.bind(s, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        }
        let sock = self.sock_mut(s)?;
        let local = sock.local.ok_or(TcpError::InvalidInput)?;
        match &mut sock.kind {
            Kind::Idle => {
                sock.kind = Kind::Listener(Listener { backlog, ..Default::default() });
            }
            Kind::Listener(l) => {
                l.backlog = backlog;
                return Ok(());
            }
            Kind::Conn(_) => return Err(TcpError::InvalidInput),
        }
        if self.listeners.contains_key(&local) {
            self.sock_mut(s)?.kind = Kind::Idle;
            return Err(TcpError::AddrInUse);
        }
        self.listeners.insert(local, s);
        Ok(())
    }

    /// `accept(2)`: the next established connection and its peer; `WouldBlock` when none.
    pub fn accept(&mut self, s: SocketId) -> Result<(SocketId, SocketAddrV4), TcpError> {
        let Kind::Listener(l) = &mut self.sock_mut(s)?.kind else {
            return Err(TcpError::NotListening);
        };
        let child = l.accept_queue.pop_front().ok_or(TcpError::WouldBlock)?;
        let sock = self.sockets.get_mut(&child).ok_or(TcpError::ConnectionAborted)?;
        let Kind::Conn(c) = &mut sock.kind else { return Err(TcpError::ConnectionAborted) };
        c.parent = None;
        Ok((child, c.remote))
    }

    /// `connect(2)`, non-blocking: sends a SYN; `Err(InProgress)` while it is under way.
    /// Completion shows as [`State::Established`] and `writable` readiness; failure as an error
    /// from [`TcpStack::take_error`].
    pub fn connect(
        &mut self,
        now: Instant,
        s: SocketId,
        remote: SocketAddrV4,
    ) -> Result<(), TcpError> {
        match &self.sock(s)?.kind {
            Kind::Listener(_) => return Err(TcpError::InvalidInput),
            Kind::Conn(c) => {
                return Err(match c.state {
                    ConnState::SynSent(_) | ConnState::SynRcvd(_) => TcpError::AlreadyInProgress,
                    ConnState::Closed => {
                        let mut c = c.error;
                        c.take().unwrap_or(TcpError::InvalidInput)
                    }
                    _ => TcpError::IsConnected,
                })
            }
            Kind::Idle => {}
        }
        if remote.port() == 0 || remote.ip().is_unspecified() {
            return Err(TcpError::InvalidInput);
        }
        let bound = self.sock(s)?.local;
        let src_ip = match bound {
            Some(l) if !l.ip().is_unspecified() => *l.ip(),
            _ => self.source_for(*remote.ip()).ok_or(TcpError::NetworkUnreachable)?,
        };
        let port = match bound {
            Some(l) if l.port() != 0 => l.port(),
            _ => self.pick_ephemeral(s, src_ip, Some(remote))?,
        };
        let local = SocketAddrV4::new(src_ip, port);
        if self.conns.contains_key(&(local, remote)) {
            return Err(TcpError::AddrNotAvailable);
        }
        let iss = self.isn(now, local, remote);
        let ts_offset = self.ts_offset(now, local, remote);
        let sock = self.sockets.get_mut(&s).ok_or(TcpError::BadSocket)?;
        sock.local = Some(local);
        let conn = Conn::new_active(now, &self.config, sock.opts, local, remote, iss, ts_offset);
        sock.kind = Kind::Conn(Box::new(conn));
        self.conns.insert((local, remote), s);
        self.demux_cache = None;
        self.touch(s);
        Err(TcpError::InProgress)
    }

    /// The source address for a connection to `dst`: the first local address (one subnet per
    /// host for now; a routing table picks later).
    fn source_for(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        if dst.is_loopback() {
            return Some(Ipv4Addr::LOCALHOST);
        }
        self.local_addrs.first().copied()
    }

    /// RFC 6528 ISN: a keyed hash of the 4-tuple plus a 4 µs clock.
    fn isn(&mut self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> SeqNum {
        match self.config.isn {
            IsnPolicy::Fixed(v) => SeqNum::new(v),
            // RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport, secretkey).
            IsnPolicy::Rfc6528 => self.isn_gen.isn(now, local, remote),
        }
    }

    /// RFC 7323 §5.4: a per-connection random TSval offset (or the configured first TSval).
    fn ts_offset(&mut self, now: Instant, local: SocketAddrV4, remote: SocketAddrV4) -> u32 {
        match self.config.ts_initial {
            Some(v) => v.wrapping_sub(now.as_millis() as u32),
            None => (keyed_hash(&self.secret, remote, local) >> 32) as u32,
        }
    }

    /// `send(2)`: queue bytes; `WouldBlock` when the send buffer is full.
    pub fn send(&mut self, now: Instant, s: SocketId, data: &[u8]) -> Result<usize, TcpError> {
        let _ = now;
        let r = self.conn_mut(s)?.send(data);
        self.touch(s);
        r
    }

    /// `recv(2)` (`peek` = `MSG_PEEK`): `Ok(0)` is end of stream; `WouldBlock` when no data.
    pub fn recv(&mut self, s: SocketId, buf: &mut [u8], peek: bool) -> Result<usize, TcpError> {
        let r = self.conn_mut(s)?.recv(buf, peek);
        self.touch(s);
        r
    }

    /// `shutdown(2)`.
    pub fn shutdown(&mut self, now: Instant, s: SocketId, how: Shutdown) -> Result<(), TcpError> {
        let _ = now;
        let sock = self.sock_mut(s)?;
        match &mut sock.kind {
            Kind::Conn(c) => {
                if matches!(c.state, ConnState::Closed | ConnState::SynSent(_)) && c.dead.is_none()
                {
                    return Err(TcpError::NotConnected);
                }
                if matches!(how, Shutdown::Read | Shutdown::Both) {
                    c.rd_shut = true;
                }
                if matches!(how, Shutdown::Write | Shutdown::Both) {
                    c.shutdown_write();
                }
                self.touch(s);
                Ok(())
            }
            Kind::Listener(_) => {
                self.close_listener(s);
                Ok(())
            }
            Kind::Idle => Err(TcpError::NotConnected),
        }
    }

    /// `close(2)`: a graceful FIN after queued data, or a RST when unread data remains or
    /// `SO_LINGER` is zero (RFC 9293 §3.10.4, RFC 2525 §2.17). The connection finishes on its
    /// own (FIN-WAIT, TIME-WAIT) after the id is gone.
    pub fn close(&mut self, now: Instant, s: SocketId) -> Result<(), TcpError> {
        let _ = now;
        let cfg = &self.config;
        let sock = self.sockets.get_mut(&s).filter(|k| !k.closed).ok_or(TcpError::BadSocket)?;
        sock.closed = true;
        match &mut sock.kind {
            Kind::Idle => {
                self.remove_socket(s);
            }
            Kind::Listener(_) => {
                self.close_listener(s);
                self.remove_socket(s);
            }
            Kind::Conn(c) => {
                c.orphan = true;
                if c.close_must_reset(cfg) {
                    if let Some(rst) = c.abort() {
                        self.ctl.push_reply(*c.local.ip(), *c.remote.ip(), rst);
                    }
                } else {
                    c.shutdown_write();
                }
                self.reap(s);
                self.touch(s);
            }
        }
        Ok(())
    }

    /// RFC 9293 §3.10.5 ABORT on the connection of `s`: a RST goes out when the connection is
    /// synchronized (none from SYN-SENT or TIME-WAIT), the connection is deleted at once, and
    /// the socket id stays valid: its next call reports [`TcpError::ConnectionAborted`]
    /// (FreeBSD's `tcp_drop(tp, ECONNABORTED)`). On a listener: stop listening, as `shutdown`.
    pub fn abort(&mut self, now: Instant, s: SocketId) -> Result<(), TcpError> {
        let _ = now;
        match &self.sock(s)?.kind {
            Kind::Conn(_) => {
                self.abort_conn(s);
                Ok(())
            }
            Kind::Listener(_) => {
                self.close_listener(s);
                Ok(())
            }
            Kind::Idle => Err(TcpError::NotConnected),
        }
    }

    /// FreeBSD's `tcpdrop local remote`: abort the connection with these addresses, whether or
    /// not the application still holds its socket (an orphan in FIN-WAIT or TIME-WAIT goes
    /// too). `NotConnected` when no such connection exists.
    pub fn drop_connection(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Result<(), TcpError> {
        let _ = now;
        let id = *self.conns.get(&(local, remote)).ok_or(TcpError::NotConnected)?;
        self.abort_conn(id);
        Ok(())
    }

    /// Reset and delete the connection of socket `id` (closed by the application or not).
    fn abort_conn(&mut self, id: SocketId) {
        let Some(Socket { kind: Kind::Conn(c), .. }) = self.sockets.get_mut(&id) else { return };
        let live = !c.is_closed();
        if let Some(rst) = c.abort() {
            self.ctl.push_reply(*c.local.ip(), *c.remote.ip(), rst);
        }
        if live {
            c.error = Some(TcpError::ConnectionAborted);
            c.dead = Some(TcpError::ConnectionAborted);
        }
        self.reap(id);
        self.touch(id);
    }

    /// Stop listening: unaccepted children are reset (RFC 9293 §3.10.4 for a listener
    /// "any outstanding RECEIVEs are returned"; Linux resets queued connections).
    fn close_listener(&mut self, s: SocketId) {
        let Some(sock) = self.sockets.get_mut(&s) else { return };
        let Kind::Listener(_) = &sock.kind else { return };
        if let Some(local) = sock.local {
            self.listeners.remove(&local);
        }
        sock.kind = Kind::Idle;
        let children: Vec<SocketId> = self
            .sockets
            .iter()
            .filter(|(_, k)| matches!(&k.kind, Kind::Conn(c) if c.parent == Some(s)))
            .map(|(id, _)| *id)
            .collect();
        for id in children {
            if let Some(Socket { kind: Kind::Conn(c), closed, .. }) = self.sockets.get_mut(&id) {
                *closed = true;
                c.orphan = true;
                // Embryonic connections vanish silently (FreeBSD's syncache, Linux's request
                // socks); established but unaccepted ones are reset.
                let embryonic = matches!(c.state, ConnState::SynRcvd(_));
                if let Some(rst) = c.abort() {
                    if !embryonic {
                        self.ctl.push_reply(*c.local.ip(), *c.remote.ip(), rst);
                    }
                }
            }
            self.reap(id);
            self.touch(id);
        }
    }

    /// Remove a finished connection from the demux table, and the socket if it is orphaned.
    fn reap(&mut self, s: SocketId) {
        let Some(sock) = self.sockets.get_mut(&s) else { return };
        let Kind::Conn(c) = &mut sock.kind else { return };
        if !c.is_closed() {
            return;
        }
        let key = (c.local, c.remote);
        let parent = c.parent.take();
        let was_queued = c.became_established;
        if self.conns.get(&key) == Some(&s) {
            self.conns.remove(&key);
            self.demux_cache = None;
        }
        if sock.closed || parent.is_some() {
            self.remove_socket(s);
        }
        if let Some(p) = parent {
            if let Some(Socket { kind: Kind::Listener(l), .. }) = self.sockets.get_mut(&p) {
                if was_queued {
                    l.accept_queue.retain(|c| *c != s);
                } else {
                    l.syn_queue = l.syn_queue.saturating_sub(1);
                }
            }
        }
    }

    /// Turns RFC 8985 RACK-TLP loss detection on or off for socket `s` (the default is
    /// [`TcpConfig::rack`]); it applies to a connection established afterwards (RACK also
    /// needs SACK, negotiated in the handshake).
    pub fn set_rack(&mut self, s: SocketId, on: bool) -> Result<(), TcpError> {
        let sock = self.sock_mut(s)?;
        sock.opts.rack = on;
        if let Kind::Conn(c) = &mut sock.kind {
            c.opts.rack = on;
        }
        Ok(())
    }

    /// Whether RACK-TLP is enabled on socket `s`.
    pub fn rack(&self, s: SocketId) -> Result<bool, TcpError> {
        Ok(self.sock(s)?.opts.rack)
    }

    /// `setsockopt(2)`.
    pub fn set_option(&mut self, s: SocketId, opt: SockOpt) -> Result<(), TcpError> {
        let max = self.config.max_buffer;
        let sock = self.sock_mut(s)?;
        let o = &mut sock.opts;
        match opt {
            SockOpt::ReuseAddr(v) => o.reuseaddr = v,
            SockOpt::KeepAlive(v) => o.keepalive = v,
            SockOpt::Linger(v) => o.linger = v,
            SockOpt::RecvBuffer(v) => o.rcvbuf = v.clamp(256, max),
            SockOpt::SendBuffer(v) => o.sndbuf = v.clamp(256, max),
            SockOpt::NoDelay(v) => o.nodelay = v,
            SockOpt::Cork(v) => o.cork = v,
            SockOpt::MaxSegment(v) => o.max_seg = v,
            SockOpt::KeepIdle(v) => o.keep_idle = v,
            SockOpt::KeepInterval(v) => o.keep_intvl = v,
            SockOpt::KeepCount(v) => o.keep_cnt = v,
            SockOpt::UserTimeout(v) => o.user_timeout = v,
            SockOpt::Congestion(v) => o.congestion = v,
            SockOpt::QuickAck(v) => o.quickack = v,
        }
        let opts = *o;
        if let Kind::Conn(c) = &mut sock.kind {
            c.set_opts(opts);
        }
        self.touch(s);
        Ok(())
    }

    /// `getsockopt(2)`.
    pub fn get_option(&self, s: SocketId, name: SockOptName) -> Result<SockOpt, TcpError> {
        let sock = self.sock(s)?;
        let o = match &sock.kind {
            Kind::Conn(c) => c.opts,
            _ => sock.opts,
        };
        Ok(match name {
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(o.reuseaddr),
            SockOptName::KeepAlive => SockOpt::KeepAlive(o.keepalive),
            SockOptName::Linger => SockOpt::Linger(o.linger),
            SockOptName::RecvBuffer => SockOpt::RecvBuffer(match &sock.kind {
                Kind::Conn(c) => c.rcv.capacity(),
                _ => o.rcvbuf,
            }),
            SockOptName::SendBuffer => SockOpt::SendBuffer(match &sock.kind {
                Kind::Conn(c) => c.snd.capacity(),
                _ => o.sndbuf,
            }),
            SockOptName::NoDelay => SockOpt::NoDelay(o.nodelay),
            SockOptName::Cork => SockOpt::Cork(o.cork),
            SockOptName::MaxSegment => SockOpt::MaxSegment(match &sock.kind {
                Kind::Conn(c) => c.state.tcb().map_or(self.config.mss, |t| t.mss),
                _ if o.max_seg != 0 => o.max_seg,
                _ => self.config.mss,
            }),
            SockOptName::KeepIdle => SockOpt::KeepIdle(o.keep_idle),
            SockOptName::KeepInterval => SockOpt::KeepInterval(o.keep_intvl),
            SockOptName::KeepCount => SockOpt::KeepCount(o.keep_cnt),
            SockOptName::UserTimeout => SockOpt::UserTimeout(o.user_timeout),
            SockOptName::Congestion => SockOpt::Congestion(o.congestion),
            SockOptName::QuickAck => SockOpt::QuickAck(o.quickack),
        })
    }

    /// `getsockname(2)`.
    pub fn local_addr(&self, s: SocketId) -> Result<SocketAddrV4, TcpError> {
        let sock = self.sock(s)?;
        match &sock.kind {
            Kind::Conn(c) => Ok(c.local),
            _ => Ok(sock.local.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))),
        }
    }

    /// `getpeername(2)`: `NotConnected` unless a connection exists.
    pub fn peer_addr(&self, s: SocketId) -> Result<SocketAddrV4, TcpError> {
        let c = self.conn(s)?;
        match c.state {
            ConnState::Closed | ConnState::SynSent(_) => Err(TcpError::NotConnected),
            _ => Ok(c.remote),
        }
    }

    /// The RFC 9293 state of the socket.
    pub fn state(&self, s: SocketId) -> Result<State, TcpError> {
        Ok(match &self.sock(s)?.kind {
            Kind::Idle => State::Closed,
            Kind::Listener(_) => State::Listen,
            Kind::Conn(c) => c.state(),
        })
    }

    /// The epoll bits of the socket (all clear for an unknown id, but `hup`/`error` set).
    pub fn readiness(&self, s: SocketId) -> Readiness {
        let Ok(sock) = self.sock(s) else {
            return Readiness { hup: true, error: true, ..Default::default() };
        };
        match &sock.kind {
            Kind::Idle => Readiness { hup: true, ..Default::default() },
            Kind::Listener(l) => {
                Readiness { readable: !l.accept_queue.is_empty(), ..Default::default() }
            }
            Kind::Conn(c) => c.readiness(),
        }
    }

    /// `SO_ERROR`: the pending error, cleared by reading it.
    pub fn take_error(&mut self, s: SocketId) -> Option<TcpError> {
        match &mut self.sock_mut(s).ok()?.kind {
            Kind::Conn(c) => c.error.take(),
            _ => None,
        }
    }

    /// `TCP_INFO`.
    pub fn info(&self, s: SocketId) -> Result<TcpInfo, TcpError> {
        match &self.sock(s)?.kind {
            Kind::Conn(c) => Ok(c.info()),
            Kind::Listener(_) => Ok(TcpInfo { state: Some(State::Listen), ..Default::default() }),
            Kind::Idle => Ok(TcpInfo { state: Some(State::Closed), ..Default::default() }),
        }
    }

    /// Every connection and listener in the table (for `sockstat`/`ss`-like listings and
    /// tests), orphans and embryonic connections included.
    pub fn connections(&self) -> impl Iterator<Item = ConnEntry> + '_ {
        let unspec = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
        self.sockets.iter().filter_map(move |(id, k)| match &k.kind {
            Kind::Conn(c) => {
                Some(ConnEntry { id: *id, local: c.local, remote: c.remote, state: c.state() })
            }
            Kind::Listener(_) => Some(ConnEntry {
                id: *id,
                local: k.local.unwrap_or(unspec),
                remote: unspec,
                state: State::Listen,
            }),
            Kind::Idle => None,
        })
    }

    /// Process one inbound segment from `src` to `dst` (already checksummed by the IP layer).
    pub fn handle_segment(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        seg: &TcpRepr<'_>,
    ) {
        let local = SocketAddrV4::new(dst, seg.dst_port);
        let remote = SocketAddrV4::new(src, seg.src_port);
        if self.config.drop_synfin && seg.flags.contains(TcpFlags::SYN | TcpFlags::FIN) {
            // FreeBSD `net.inet.tcp.drop_synfin`: such segments are dropped in every state.
            return;
        }
        if let Some(id) = self.demux(local, remote) {
            if self.accept_queue_full_for(id) && seg.flags.contains(TcpFlags::ACK) {
                // Linux (tcp_abort_on_overflow = 0): the handshake-completing ACK is dropped
                // while the accept queue is full; the SYN-ACK is retransmitted later and the
                // client's ACK for it completes the handshake once there is room.
                return;
            }
            let cfg = &self.config;
            let ctl = &mut self.ctl;
            let mut reap = false;
            let mut established = None;
            let mut reopen = false;
            if let Some(Socket { kind: Kind::Conn(c), .. }) = self.sockets.get_mut(&id) {
                let was = c.became_established;
                c.input(now, cfg, ctl, seg);
                if !was && c.became_established {
                    established = c.parent;
                }
                reap = c.is_closed();
                reopen = core::mem::take(&mut c.reopen);
            }
            if let Some(p) = established {
                self.promote(id, p);
            }
            if reap {
                self.reap(id);
            }
            self.touch(id);
            if !reopen {
                return;
            }
        }
        let listener = self
            .listeners
            .get(&local)
            .or_else(|| self.listeners.get(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, seg.dst_port)))
            .copied();
        match listener {
            Some(l) => self.listen_input(now, l, local, remote, seg),
            None => self.closed_input(dst, src, seg),
        }
    }

    /// The connection with this 4-tuple, through the one-entry cache.
    fn demux(&mut self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<SocketId> {
        let key = (local, remote);
        match self.demux_cache {
            Some((k, id)) if k == key => Some(id),
            _ => {
                let id = *self.conns.get(&key)?;
                self.demux_cache = Some((key, id));
                Some(id)
            }
        }
    }

    /// Whether `id` is an embryonic child whose listener's accept queue is full.
    fn accept_queue_full_for(&self, id: SocketId) -> bool {
        let Some(Socket { kind: Kind::Conn(c), .. }) = self.sockets.get(&id) else { return false };
        if !matches!(c.state, ConnState::SynRcvd(_)) {
            return false;
        }
        let Some(p) = c.parent else { return false };
        match self.sockets.get(&p) {
            Some(Socket { kind: Kind::Listener(l), .. }) => {
                l.accept_queue.len() > l.backlog as usize
            }
            _ => false,
        }
    }

    /// A child of listener `p` reached ESTABLISHED: move it to the accept queue, or reset it
    /// when the queue is full.
    fn promote(&mut self, child: SocketId, p: SocketId) {
        let full = match self.sockets.get_mut(&p) {
            Some(Socket { kind: Kind::Listener(l), .. }) => {
                l.syn_queue = l.syn_queue.saturating_sub(1);
                if l.accept_queue.len() > l.backlog as usize {
                    true
                } else {
                    l.accept_queue.push_back(child);
                    false
                }
            }
            _ => true,
        };
        if full {
            if let Some(Socket { kind: Kind::Conn(c), closed, .. }) = self.sockets.get_mut(&child) {
                *closed = true;
                c.parent = None;
                if let Some(rst) = c.abort() {
                    self.ctl.push_reply(*c.local.ip(), *c.remote.ip(), rst);
                }
            }
            self.reap(child);
            self.touch(child);
        }
    }

    /// RFC 9293 §3.10.7.1: a segment for no connection and no listener.
    fn closed_input(&mut self, dst: Ipv4Addr, src: Ipv4Addr, seg: &TcpRepr<'_>) {
        if !self.config.rst_on_closed_port {
            return;
        }
        if let Some(rst) = rst_for(seg) {
            self.ctl.push_reply(dst, src, rst);
        }
    }

    /// RFC 9293 §3.10.7.2: a segment for a listener.
    fn listen_input(
        &mut self,
        now: Instant,
        l: SocketId,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr<'_>,
    ) {
        let f = seg.flags;
        // "First, check for a RST: An incoming RST segment could not be valid since it could not
        // have been sent in response to anything sent by this incarnation; ignore it."
        if f.contains(TcpFlags::RST) {
            return;
        }
        // "Second, check for an ACK: ... Any acknowledgment is bad if it arrives on a connection
        // still in the LISTEN state. An acceptable reset segment should be formed ...
        // <SEQ=SEG.ACK><CTL=RST>".
        if f.contains(TcpFlags::ACK | TcpFlags::SYN) {
            // A SYN-ACK to a listener is dropped without a reply (FreeBSD, as the
            // state-event-engine scripts pin it; RFC 9293 would answer with a RST).
            return;
        }
        if f.contains(TcpFlags::ACK) {
            if !f.contains(TcpFlags::SYN)
                && self.config.syncookies
                && self.cookie_accept(now, l, local, remote, seg)
            {
                return;
            }
            if let Some(rst) = rst_for(seg) {
                self.ctl.push_reply(*local.ip(), *remote.ip(), rst);
            }
            return;
        }
        if !f.contains(TcpFlags::SYN) {
            // "Fourth, other data or control: ... drop the segment and return."
            return;
        }
        if f.contains(TcpFlags::FIN) && self.config.drop_synfin {
            return;
        }
        let (backlog, syn_queued, accepted) = match self.sockets.get(&l) {
            Some(Socket { kind: Kind::Listener(q), .. }) => {
                (q.backlog as usize, q.syn_queue, q.accept_queue.len())
            }
            _ => return,
        };
        let syn_limit = (self.config.syn_backlog as usize).max(1).min(backlog.max(1) * 8 + 8);
        if accepted > backlog {
            // Accept queue overflow: drop the SYN (the peer retransmits), as Linux does.
            self.ctl.stats_syn_dropped += 1;
            return;
        }
        if syn_queued >= syn_limit {
            if self.config.syncookies {
                // RFC 4987 §3.6: answer statelessly with the state encoded in our ISN.
                let mss = seg.options.mss.unwrap_or(536);
                let iss = self.cookies.encode(now, local, remote, SeqNum::new(seg.seq), mss);
                let synack = TcpRepr {
                    src_port: local.port(),
                    dst_port: remote.port(),
                    seq: iss.get(),
                    ack: seg.seq.wrapping_add(1),
                    flags: TcpFlags::SYN | TcpFlags::ACK,
                    window: self.config.recv_buffer.min(65_535) as u16,
                    urgent: 0,
                    options: joyride_ip::tcp::TcpOptions {
                        mss: Some(self.config.mss),
                        ..Default::default()
                    },
                    payload: &[],
                };
                self.ctl.push_reply(*local.ip(), *remote.ip(), synack);
                self.ctl.stats_syncookies_sent += 1;
            } else {
                self.ctl.stats_syn_dropped += 1;
            }
            return;
        }
        // The listener's local address may be the wildcard: the connection uses the segment's
        // destination.
        let iss = self.isn(now, local, remote);
        let ts_offset = self.ts_offset(now, local, remote);
        let opts = match self.sockets.get(&l) {
            Some(s) => s.opts,
            None => return,
        };
        let conn =
            Conn::new_passive(now, &self.config, opts, local, remote, iss, ts_offset, seg, l);
        let id = self.new_id();
        self.sockets.insert(
            id,
            Socket {
                local: Some(local),
                opts,
                kind: Kind::Conn(Box::new(conn)),
                closed: false,
                timer: None,
            },
        );
        self.conns.insert((local, remote), id);
        self.demux_cache = None;
        if let Some(Socket { kind: Kind::Listener(q), .. }) = self.sockets.get_mut(&l) {
            q.syn_queue += 1;
        }
        self.touch(id);
    }

    /// An ACK for a listener that may complete a SYN-cookie handshake (RFC 4987 §3.6): when the
    /// cookie in `SEG.ACK - 1` is genuine, create the connection directly in ESTABLISHED.
    fn cookie_accept(
        &mut self,
        now: Instant,
        l: SocketId,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &TcpRepr<'_>,
    ) -> bool {
        let irs = SeqNum::new(seg.seq) - 1;
        let iss = SeqNum::new(seg.ack) - 1;
        let Some(mss) = self.cookies.decode(now, local, remote, irs, iss) else { return false };
        let opts = match self.sockets.get(&l) {
            Some(Socket { kind: Kind::Listener(q), opts, .. }) => {
                if q.accept_queue.len() > q.backlog as usize {
                    return true; // genuine but no room: drop, the client retransmits
                }
                *opts
            }
            _ => return false,
        };
        let ts_offset = self.ts_offset(now, local, remote);
        let mut conn = Conn::new_from_cookie(
            now,
            &self.config,
            opts,
            local,
            remote,
            iss,
            irs,
            mss,
            seg.window,
            ts_offset,
            l,
        );
        conn.input(now, &self.config, &mut self.ctl, seg);
        let id = self.new_id();
        self.sockets.insert(
            id,
            Socket {
                local: Some(local),
                opts,
                kind: Kind::Conn(Box::new(conn)),
                closed: false,
                timer: None,
            },
        );
        self.conns.insert((local, remote), id);
        self.demux_cache = None;
        if let Some(Socket { kind: Kind::Listener(q), .. }) = self.sockets.get_mut(&l) {
            q.syn_queue += 1; // promote() takes it off again
        }
        self.promote(id, l);
        self.touch(id);
        true
    }

    /// Emit everything due at `now`: data, ACKs, RSTs, retransmissions, probes.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        emit: &mut dyn FnMut(Ipv4Addr, Ipv4Addr, &TcpRepr<'_>),
    ) {
        while let Some((src, dst, rst)) = self.ctl.pop_reply() {
            emit(src, dst, &rst);
        }
        // The due connections, each polled once (a connection still due afterwards waits
        // for the next call, so a timer bug cannot spin here).
        let mut due = core::mem::take(&mut self.due);
        due.clear();
        while let Some(&(t, raw)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let id = SocketId(raw);
            if let Some(sock) = self.sockets.get_mut(&id) {
                sock.timer = None;
            }
            due.push(id);
        }
        for &id in &due {
            let Some(Socket { kind: Kind::Conn(c), .. }) = self.sockets.get_mut(&id) else {
                continue;
            };
            let (src, dst) = (*c.local.ip(), *c.remote.ip());
            let was = c.became_established;
            c.poll(now, &self.config, &mut self.ctl, &mut self.scratch, &mut |seg| {
                emit(src, dst, seg)
            });
            let promoted = (!was && c.became_established).then_some(c.parent).flatten();
            let closed = c.is_closed();
            if let Some(p) = promoted {
                self.promote(id, p);
            }
            if closed {
                self.reap(id);
            }
            self.touch(id);
            // A deadline at or before `now` right after the connection was polled at `now`
            // means a timer whose action was skipped: the caller would poll again at once,
            // forever (checked here in debug builds, and by sim/tests/timers.rs).
            debug_assert!(
                self.sockets.get(&id).and_then(|s| s.timer).is_none_or(|t| t > now),
                "connection {id:?} still due after poll_transmit({now:?})"
            );
        }
        self.due = due;
        while let Some((src, dst, rst)) = self.ctl.pop_reply() {
            emit(src, dst, &rst);
        }
    }

    /// The earliest instant at which [`TcpStack::poll_transmit`] has work (`None`: idle).
    pub fn poll_at(&self) -> Option<Instant> {
        if self.ctl.has_replies() {
            return Some(Instant::ZERO);
        }
        let next = self.timers.first().map(|&(t, _)| t);
        // The index must agree with a scan of every connection (checked in debug builds: the
        // tests, property runs and the fuzz target all exercise it).
        debug_assert_eq!(
            next,
            self.sockets
                .values()
                .filter_map(|k| match &k.kind {
                    Kind::Conn(c) => c.poll_at(),
                    _ => None,
                })
                .min(),
            "timer index out of date"
        );
        next
    }
}

/// RFC 9293 §3.10.7.1: the RST answering `seg` when no connection exists ("If the ACK bit is
/// off, sequence number zero is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; if the ACK
/// bit is on, <SEQ=SEG.ACK><CTL=RST>"). `None` for a RST ("An incoming segment containing a
/// RST is discarded").
pub(crate) fn rst_for(seg: &TcpRepr<'_>) -> Option<TcpRepr<'static>> {
    if seg.flags.contains(TcpFlags::RST) {
        return None;
    }
    let mut r = TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq: 0,
        ack: 0,
        flags: TcpFlags::RST,
        window: 0,
        urgent: 0,
        options: Default::default(),
        payload: &[],
    };
    if seg.flags.contains(TcpFlags::ACK) {
        r.seq = seg.ack;
    } else {
        let len = seg.payload.len() as u32
            + u32::from(seg.flags.contains(TcpFlags::SYN))
            + u32::from(seg.flags.contains(TcpFlags::FIN));
        r.ack = seg.seq.wrapping_add(len);
        r.flags |= TcpFlags::ACK;
    }
    Some(r)
}

/// A keyed 64-bit hash of a 4-tuple (SipHash-2-4, for per-connection secrets such as the
/// TSval offset).
fn keyed_hash(key: &[u8; 16], a: SocketAddrV4, b: SocketAddrV4) -> u64 {
    let mut m = [0u8; 13];
    m[0..4].copy_from_slice(&a.ip().octets());
    m[4..6].copy_from_slice(&a.port().to_be_bytes());
    m[6..10].copy_from_slice(&b.ip().octets());
    m[10..12].copy_from_slice(&b.port().to_be_bytes());
    m[12] = 0x75; // domain separation from the ISN function
    siphash24(key, &m)
}
