//! The service side of the application protocol (`ipc/PROTOCOL.md`): joyrided listens on a Unix
//! socket, hands every connecting process its own shared-memory region
//! ([`joyride_ipc::ServiceRegion`]), and on every engine iteration executes the processes'
//! commands against the engine's [`joyride_tcp::TcpStack`] and UDP sockets, moving data between
//! the stack and the regions' rings and publishing readiness.
//!
//! ```text
//!   app ─ Send{len} ─► tx ring ─(copy)─► TcpStack::send ─► segments
//!   segments ─► TcpStack::recv ─(copy)─► rx ring ─ readiness/seq/wake_seq ─► app
//! ```
//!
//! Conventions kept exactly as `posix/README.md` states them: `EPOLLIN|EPOLLRDHUP` for end of
//! stream only once every byte before the FIN is in the rx ring; a socket error is published
//! once and stays (the shim reports it once, like `sk_err`); the TCP state code is Linux's
//! `TCP_*` number.
//!
//! **Failure model.** A client process is watched through its Unix connection: when the process
//! exits (or crashes), the kernel closes its end and the service sees `POLLHUP`. Its sockets are
//! then closed as Linux closes them at process exit: bytes the app had written into its tx ring
//! are still sent, then FIN; a connection with data the app never read is reset (RFC 2525
//! §2.17, Linux `tcp_close`). A region whose ring indices are impossible is *poisoned*
//! (`ipc`): the service stops reading it, resets its connections and drops the client, without
//! touching any other region. Every command is validated by `ServiceRegion` before it gets here.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use joyride_base::{BuildIdHasher, Instant};
use joyride_ip::host::UdpHandle;
use joyride_ipc::{
    Command, Completion, Errno, OptLevel, OptValue, Payload, Readiness, RegionConfig, Request,
    ServiceError, ServiceRegion, SockAddr, SockType, SocketIndex, SocketStat,
};
use joyride_tcp::{Shutdown, SockOpt, SockOptName, SocketId, State, TcpError};
use rustix::event::{PollFd, PollFlags};

use crate::Engine;

mod sharing;
use sharing::{
    bind_reuse_port, exec_survivors, fork_ticket, inherit, inherit_after_exec, join_ticket,
    release_backing, running, spawned_from, Inherited, Shares, Ticket, CHILD_TO_COME,
    TICKET_TTL_MS,
};

/// Default path of the application socket.
pub const DEFAULT_SOCKET: &str = "/run/joyride/joyride.sock";

/// Commands taken from one region per iteration (bounds one app's share of a turn).
const CMD_BUDGET: usize = 256;
/// Scratch size for one copy between a ring and the stack.
const CHUNK: usize = 64 * 1024;
/// Bytes of a datagram record header in a datagram socket's rx ring (`PROTOCOL.md` §8).
const DGRAM_HDR: usize = 32;

/// The control socket next to the application socket: connecting to it asks for the
/// `joyride stat` listing, which the service writes and then closes.
pub fn control_path(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".ctl");
    PathBuf::from(s)
}

/// Counters of the application side, printed by `joyride stat` and on exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcCounters {
    /// Processes that connected.
    pub clients: u64,
    /// Processes gone (exited or dropped).
    pub clients_gone: u64,
    /// Regions poisoned by their app.
    pub poisoned: u64,
    /// Valid commands executed.
    pub commands: u64,
    /// Invalid commands answered with an error.
    pub invalid: u64,
    /// Sockets opened (socket + accept).
    pub sockets: u64,
    /// Sockets reclaimed after their process went away.
    pub reclaimed: u64,
    /// Bytes moved app → stack.
    pub tx_bytes: u64,
    /// Bytes moved stack → app.
    pub rx_bytes: u64,
}

/// What backs one Joyride socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Backing {
    Tcp(SocketId),
    Udp(UdpHandle),
}

/// Per-socket state the service keeps beside the stack's.
#[derive(Debug)]
struct Sock {
    backing: Backing,
    /// The stack returned end of stream and every byte before it is in the rx ring.
    eof: bool,
    /// First error seen (sticky, published as `SO_ERROR`/`EPOLLERR`).
    err: u32,
    /// `shutdown(SHUT_WR)` asked for while tx bytes were still in the ring.
    shut_wr_pending: bool,
    /// `IP_TOS` as set (stored and returned; not yet put on the wire).
    tos: u32,
    /// `SO_REUSEPORT` as set.
    reuse_port: bool,
    /// The rx ring position up to which a forked child (or exec'd image) got a copy of what
    /// was unread: on close, only what came after is handed to the next reader.
    given_upto: u64,
    /// A datagram that did not fit the rx ring yet (record bytes).
    carry: Vec<u8>,
    /// Last published (readiness, error, state).
    published: (u32, u32, u32),
}

impl Sock {
    fn new(backing: Backing) -> Sock {
        Sock {
            backing,
            eof: false,
            err: 0,
            shut_wr_pending: false,
            tos: 0,
            reuse_port: false,
            given_upto: 0,
            carry: Vec::new(),
            published: (u32::MAX, 0, 0),
        }
    }
}

/// One application process.
struct Client {
    /// Unique for the service's lifetime.
    id: u64,
    pid: u32,
    conn: UnixStream,
    region: ServiceRegion,
    socks: HashMap<u32, Sock, BuildIdHasher>,
    gone: bool,
}

/// A connection whose app closed it (or exited) while bytes it wrote were not yet in the stack:
/// they are fed as room opens, then the connection is closed — unless another process still
/// holds the socket (`close` false), which then keeps using it.
struct Orphan {
    id: SocketId,
    data: Vec<u8>,
    off: usize,
    close: bool,
}

/// What the commands of all processes share.
struct Common {
    counters: IpcCounters,
    orphans: Vec<Orphan>,
    shares: Shares,
    /// Fork tickets by number.
    tickets: HashMap<u64, Ticket>,
    /// Sockets of processes that `exec`ed, by pid: the ones whose fds survived the exec, held
    /// for the new image (as the kernel holds the fds) until it claims them or exits.
    execs: HashMap<u32, Vec<Inherited>>,
    /// TCP sockets bound with `SO_REUSEPORT`, by address (see [`bind_reuse_port`]).
    reuse_port: HashMap<SocketAddrV4, Backing>,
    /// Copy buffer between a ring and the stack.
    scratch: Vec<u8>,
}

/// The application server: the listening sockets and every connected process.
pub struct IpcServer {
    path: PathBuf,
    listener: UnixListener,
    ctl: UnixListener,
    cfg: RegionConfig,
    clients: Vec<Client>,
    common: Common,
    last_reap: Option<Instant>,
    last_accept: Option<Instant>,
    sleeping: bool,
}

impl std::fmt::Debug for IpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpcServer")
            .field("path", &self.path)
            .field("clients", &self.clients.len())
            .field("counters", &self.common.counters)
            .finish_non_exhaustive()
    }
}

/// Binds `path`, replacing a stale socket file (one nobody answers on) but refusing to steal the
/// path from a live service.
fn bind_socket(path: &Path, mode: u32) -> io::Result<UnixListener> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("{} is in use by a running service", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let l = UnixListener::bind(path)?;
    l.set_nonblocking(true)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(l)
}

impl IpcServer {
    /// Listens on `path` (its directory is created, mode 0755; the socket is mode 0666 so
    /// unprivileged programs can use the network, as they can use the kernel's) and on the
    /// control socket beside it (mode 0600: `joyride stat` lists every process's sockets).
    pub fn bind(path: &Path, cfg: RegionConfig) -> io::Result<IpcServer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.exists() {
                std::fs::create_dir_all(dir)?;
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        let listener = bind_socket(path, 0o666)?;
        let ctl = bind_socket(&control_path(path), 0o600)?;
        Ok(IpcServer {
            path: path.to_path_buf(),
            listener,
            ctl,
            cfg,
            clients: Vec::new(),
            common: Common {
                counters: IpcCounters::default(),
                orphans: Vec::new(),
                shares: Shares::default(),
                tickets: HashMap::new(),
                execs: HashMap::new(),
                reuse_port: HashMap::new(),
                scratch: vec![0; CHUNK + DGRAM_HDR],
            },
            last_reap: None,
            last_accept: None,
            sleeping: false,
        })
    }

    /// The default region shape: 256 sockets, 256-entry rings, 256 KiB each way per socket.
    pub fn default_region() -> RegionConfig {
        RegionConfig {
            sockets: 256,
            cmd_entries: 256,
            cmp_entries: 256,
            rx_buf: 256 * 1024,
            tx_buf: 256 * 1024,
        }
    }

    /// The application socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counters.
    pub fn counters(&self) -> IpcCounters {
        self.common.counters
    }

    /// Connected processes.
    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// One turn: accept processes and `stat` requests, execute commands, move data, publish
    /// readiness, reclaim processes that went away. Returns whether anything happened.
    pub fn poll(&mut self, engine: &mut Engine, now: Instant) -> bool {
        let before = self.clients.len();
        // `accept4` on a listener with nothing queued still allocates and frees a socket inode
        // (~4% of the service's time when called every turn): look at most every 500 µs.
        let mut work = false;
        if self.last_accept.is_none_or(|t| now.saturating_duration_since(t).as_micros() >= 500) {
            self.last_accept = Some(now);
            work |= self.accept(engine);
        }
        // A new client may be the image its process `exec`ed into: the old image's hang-up is
        // already there to see; reap it first, so the new image finds its inherited sockets.
        let joined = self.clients.len() > before;
        if joined {
            work |= self.reap(engine, now);
        }
        work |= self.feed_orphans(engine, now);
        for i in 0..self.clients.len() {
            work |= self.serve(i, engine, now);
        }
        // Hang-ups are checked every 10 ms while busy (the idle wait watches them too).
        let due = self.last_reap.is_none_or(|t| now.saturating_duration_since(t).as_millis() >= 10);
        if due || self.clients.iter().any(|c| c.gone) {
            self.last_reap = Some(now);
            work |= self.reap(engine, now);
        }
        work
    }

    fn accept(&mut self, engine: &mut Engine) -> bool {
        let mut work = false;
        while let Ok((conn, _)) = self.listener.accept() {
            work = true;
            let pid = rustix::net::sockopt::socket_peercred(&conn)
                .map(|c| c.pid.as_raw_nonzero().get() as u32)
                .unwrap_or(0);
            let region = match ServiceRegion::create(self.cfg) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(pid, error = %e, "cannot create a region for a client");
                    continue;
                }
            };
            if let Err(e) = conn.set_nonblocking(false).and_then(|()| {
                region.send_handshake(conn.as_fd())?;
                conn.set_nonblocking(true)
            }) {
                tracing::warn!(pid, error = %e, "hand-over failed");
                continue;
            }
            tracing::info!(pid, "application connected");
            self.common.counters.clients += 1;
            let id = self.common.counters.clients;
            self.clients.push(Client {
                id,
                pid,
                conn,
                region,
                socks: HashMap::default(),
                gone: false,
            });
        }
        while let Ok((mut conn, _)) = self.ctl.accept() {
            work = true;
            let text = self.stat_text(engine);
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_write_timeout(Some(std::time::Duration::from_secs(1)));
            let _ = conn.write_all(text.as_bytes());
        }
        work
    }

    /// Executes up to [`CMD_BUDGET`] commands of client `i`, then moves data and publishes.
    fn serve(&mut self, i: usize, engine: &mut Engine, now: Instant) -> bool {
        let mut work = false;
        let Self { clients, common, .. } = self;
        if clients[i].gone {
            return false;
        }
        for _ in 0..CMD_BUDGET {
            match clients[i].region.next_command() {
                Ok(None) => break,
                Ok(Some(Request { id, command })) => {
                    work = true;
                    common.counters.commands += 1;
                    let spawned = match command {
                        Command::Inherit { slot } => spawned_from(clients, i, slot, common),
                        _ => None,
                    };
                    let c = &mut clients[i];
                    let sock =
                        command.socket().filter(|_| !matches!(command, Command::Send { .. }));
                    if let Some(k) = sock.and_then(|s| c.socks.get(&s.0)) {
                        common.shares.touch(k.backing, (c.id, sock.map_or(0, |s| s.0)));
                    }
                    if let Some((result, payload)) =
                        execute(c, engine, now, command, common, spawned)
                    {
                        let _ = c.region.complete(Completion { id, result, payload });
                    }
                }
                Err(ServiceError::Invalid { id, error }) => {
                    work = true;
                    common.counters.invalid += 1;
                    tracing::debug!(pid = clients[i].pid, id = id.0, ?error, "invalid command");
                }
                Err(ServiceError::Poisoned(reason)) => {
                    let c = &mut clients[i];
                    tracing::warn!(pid = c.pid, ?reason, "region poisoned: dropping the client");
                    common.counters.poisoned += 1;
                    c.gone = true;
                    return true;
                }
            }
        }
        let c = &mut clients[i];
        let keys: Vec<u32> = c.socks.keys().copied().collect();
        for k in keys {
            work |= pump(c, SocketIndex(k), engine, now, common);
            publish(c, SocketIndex(k), engine);
        }
        c.region.flush();
        work
    }

    /// Feeds closed connections' leftover bytes to the stack; closes them when done.
    fn feed_orphans(&mut self, engine: &mut Engine, now: Instant) -> bool {
        let mut work = false;
        self.common.orphans.retain_mut(|o| {
            while o.off < o.data.len() {
                match engine.tcp().send(now, o.id, &o.data[o.off..]) {
                    Ok(n) if n > 0 => {
                        o.off += n;
                        work = true;
                    }
                    Ok(_) | Err(TcpError::WouldBlock) => return true,
                    Err(_) => break,
                }
            }
            if o.close {
                let _ = engine.tcp().close(now, o.id);
            }
            false
        });
        work
    }

    /// Drops clients whose process went away (hang-up on their Unix socket) or whose region
    /// was poisoned, reclaiming their sockets.
    fn reap(&mut self, engine: &mut Engine, now: Instant) -> bool {
        if !self.clients.is_empty() {
            let mut fds: Vec<PollFd<'_>> =
                self.clients.iter().map(|c| PollFd::new(&c.conn, PollFlags::empty())).collect();
            let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
            let hung: Vec<bool> = match rustix::event::poll(&mut fds, Some(&zero)) {
                Ok(_) => fds
                    .iter()
                    .map(|f| {
                        f.revents().intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::RDHUP)
                    })
                    .collect(),
                Err(_) => vec![false; fds.len()],
            };
            drop(fds);
            for (c, h) in self.clients.iter_mut().zip(hung) {
                c.gone |= h;
            }
        }
        let mut work = false;
        let mut i = 0;
        while i < self.clients.len() {
            if !self.clients[i].gone {
                i += 1;
                continue;
            }
            work = true;
            let mut c = self.clients.swap_remove(i);
            let poisoned = c.region.poisoned().is_some();
            let n = c.socks.len();
            // Gone but still running: it `exec`ed (its descriptors marked as sockets survived).
            let survivors = if poisoned { Vec::new() } else { exec_survivors(c.pid) };
            let keys: Vec<u32> = c.socks.keys().copied().collect();
            for k in keys {
                let head = c.region.rx_head(SocketIndex(k));
                if let Some(s) = c.socks.get_mut(&k).filter(|_| survivors.contains(&k)) {
                    // One more reference, held for the new image; the old slot then closes
                    // like a forked parent's copy (its unsent bytes still go out).
                    s.given_upto = head;
                    let s = &c.socks[&k];
                    let i = inherit(&c, k, s);
                    self.common.shares.add(s.backing);
                    self.common.shares.touch(s.backing, CHILD_TO_COME);
                    self.common.execs.entry(c.pid).or_default().push(i);
                }
                if poisoned {
                    // Nothing a hostile app left in its region is sent: reset (unless another
                    // process shares the socket).
                    if let Some(s) = c.socks.remove(&k) {
                        if self.common.shares.release(s.backing, Some((c.id, k))) {
                            abort_backing(engine, now, s.backing);
                        }
                    }
                } else {
                    close_sock(&mut c, SocketIndex(k), engine, now, &mut self.common);
                }
            }
            self.common.counters.reclaimed += n as u64;
            self.common.counters.clients_gone += 1;
            tracing::info!(
                pid = c.pid,
                sockets = n,
                poisoned,
                "application gone: sockets reclaimed"
            );
            c.region.shut_down();
        }
        // Sockets held for an exec'd image that has exited (or never claimed them).
        let dead: Vec<u32> = self.common.execs.keys().copied().filter(|&p| !running(p)).collect();
        for p in dead {
            for i in self.common.execs.remove(&p).unwrap_or_default() {
                release_backing(engine, now, i.backing, &mut self.common);
                work = true;
            }
        }
        // Tickets no child claimed in time (the child died first, or `fork` failed).
        let expired: Vec<u64> = self
            .common
            .tickets
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(t.issued).as_millis() >= TICKET_TTL_MS)
            .map(|(&n, _)| n)
            .collect();
        for n in expired {
            if let Some(t) = self.common.tickets.remove(&n) {
                tracing::debug!(
                    parent = t.parent_pid,
                    sockets = t.socks.len(),
                    "fork ticket expired"
                );
                for i in t.socks {
                    release_backing(engine, now, i.backing, &mut self.common);
                }
                work = true;
            }
        }
        work
    }

    /// Prepares every region for the engine's sleep (sets `svc_waiting`, re-checks the command
    /// rings). Returns false if some app has work, in which case nobody sleeps.
    pub fn prepare_sleep(&mut self) -> bool {
        for i in 0..self.clients.len() {
            if !self.clients[i].region.prepare_sleep() {
                for c in &mut self.clients[..i] {
                    c.region.end_sleep();
                }
                return false;
            }
        }
        self.sleeping = true;
        true
    }

    /// Ends the sleep begun by [`IpcServer::prepare_sleep`].
    pub fn end_sleep(&mut self) {
        if std::mem::take(&mut self.sleeping) {
            for c in &mut self.clients {
                c.region.end_sleep();
            }
        }
    }

    /// The descriptors the engine's idle wait must also watch: the listening sockets, every
    /// command doorbell and every client connection (its hang-up is the death signal).
    pub fn wait_fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut v = vec![self.listener.as_fd(), self.ctl.as_fd()];
        for c in &self.clients {
            v.push(c.region.command_doorbell());
            v.push(c.conn.as_fd());
        }
        v
    }

    /// Idles the engine (spin, then sleep) while also waking on applications.
    pub fn idle_wait(&mut self, engine: &mut Engine, clock: &crate::Clock, also: Option<Instant>) {
        if !engine.will_sleep(clock.now()) {
            return;
        }
        if !self.prepare_sleep() {
            engine.mark_busy(clock.now());
            return;
        }
        engine.idle_wait_with(clock, also, &self.wait_fds());
        self.end_sleep();
    }

    /// The `joyride stat` listing: one line per socket (like `ss -tanp`), then the counters.
    pub fn stat_text(&self, engine: &mut Engine) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<5} {:<12} {:>8} {:>8} {:<22} {:<22} {:>8} {:>6}",
            "Proto",
            "State",
            "Recv-Q",
            "Send-Q",
            "Local Address:Port",
            "Peer Address:Port",
            "Process",
            "Retrans"
        );
        for c in &self.clients {
            let mut keys: Vec<&u32> = c.socks.keys().collect();
            keys.sort();
            for k in keys {
                let sk = &c.socks[k];
                let idx = SocketIndex(*k);
                let ring_rx = u64::from(self.cfg.rx_buf) - c.region.rx_space(idx);
                let ring_tx = c.region.tx_pending(idx);
                let unspec = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
                let (proto, state, local, peer, rq, sq, rtx) = match sk.backing {
                    Backing::Tcp(id) => {
                        let tcp = engine.tcp();
                        let st = tcp.state(id).map_or("CLOSED", |s| s.name());
                        let info = tcp.info(id).unwrap_or_default();
                        // Unread: what waits in the app's rx ring.
                        let rq = ring_rx;
                        (
                            "tcp",
                            st.to_string(),
                            tcp.local_addr(id).unwrap_or(unspec),
                            tcp.peer_addr(id).unwrap_or(unspec),
                            rq,
                            ring_tx + u64::from(info.unacked),
                            info.total_retrans,
                        )
                    }
                    Backing::Udp(h) => {
                        let udp = engine.host().udp();
                        (
                            "udp",
                            "UNCONN".to_string(),
                            udp.local_addr(h).unwrap_or(unspec),
                            udp.peer_addr(h).unwrap_or(unspec),
                            ring_rx + udp.queued(h) as u64,
                            ring_tx,
                            0,
                        )
                    }
                };
                let _ = writeln!(
                    s,
                    "{:<5} {:<12} {:>8} {:>8} {:<22} {:<22} {:>8} {:>6}",
                    proto,
                    state,
                    rq,
                    sq,
                    local.to_string(),
                    peer.to_string(),
                    format!("pid={}", c.pid),
                    rtx
                );
            }
        }
        let orphans = engine.tcp().connections().count();
        let k = self.common.counters;
        let _ = writeln!(
            s,
            "apps: clients={} connected={} gone={} poisoned={} sockets={} reclaimed={} \
             commands={} invalid={} tx_bytes={} rx_bytes={} tcp_table={}",
            k.clients,
            self.clients.len(),
            k.clients_gone,
            k.poisoned,
            k.sockets,
            k.reclaimed,
            k.commands,
            k.invalid,
            k.tx_bytes,
            k.rx_bytes,
            orphans
        );
        let _ = writeln!(s, "{}", crate::engine::report(engine));
        s
    }
}

impl Drop for IpcServer {
    fn drop(&mut self) {
        for c in &mut self.clients {
            c.region.shut_down();
        }
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(control_path(&self.path));
    }
}

fn err(e: i32) -> Result<u64, Errno> {
    Err(Errno::new(e).unwrap_or(Errno::INVAL))
}

fn tcp_err(e: TcpError) -> Result<u64, Errno> {
    err(e.errno())
}

fn v4(a: &SockAddr) -> Option<SocketAddrV4> {
    match *a {
        SockAddr::V4 { addr, port } => Some(SocketAddrV4::new(Ipv4Addr::from(addr), port)),
        SockAddr::V6 { .. } => None,
    }
}

fn addr(a: SocketAddrV4) -> SockAddr {
    SockAddr::V4 { addr: a.ip().octets(), port: a.port() }
}

/// Linux's `TCP_*` state numbers (`include/net/tcp_states.h`), as `TCP_INFO` reports them.
pub fn linux_state(s: State) -> u32 {
    match s {
        State::Established => 1,
        State::SynSent => 2,
        State::SynReceived => 3,
        State::FinWait1 => 4,
        State::FinWait2 => 5,
        State::TimeWait => 6,
        State::Closed => 7,
        State::CloseWait => 8,
        State::LastAck => 9,
        State::Listen => 10,
        State::Closing => 11,
    }
}

type Answer = Option<(Result<u64, Errno>, Payload)>;

fn new_sock(c: &mut Client, backing: Backing, x: &mut Common) -> Option<SocketIndex> {
    let s = c.region.alloc_socket()?;
    c.socks.insert(s.0, Sock::new(backing));
    x.shares.add(backing);
    x.shares.touch(backing, (c.id, s.0));
    x.counters.sockets += 1;
    Some(s)
}

/// Executes one validated command. `None`: no completion (posted commands).
fn execute(
    c: &mut Client,
    engine: &mut Engine,
    now: Instant,
    cmd: Command,
    x: &mut Common,
    spawned: Option<Inherited>,
) -> Answer {
    let none = Payload::None;
    let backing = |c: &Client, s: SocketIndex| c.socks.get(&s.0).map(|k| k.backing);
    Some(match cmd {
        Command::Socket { domain, ty, .. } => {
            if domain != joyride_ipc::Domain::Inet {
                return Some((err(libc_errno::EAFNOSUPPORT), none));
            }
            let b = match ty {
                SockType::Stream => engine.tcp().socket().map(Backing::Tcp).map_err(|e| e.errno()),
                SockType::Dgram => {
                    engine.host().udp().open().map(Backing::Udp).map_err(|e| e.errno())
                }
            };
            match b {
                Err(e) => (err(e), none),
                Ok(b) => match new_sock(c, b, x) {
                    Some(s) => (Ok(u64::from(s.0)), none),
                    None => {
                        abort_backing(engine, now, b);
                        (err(libc_errno::EMFILE), none)
                    }
                },
            }
        }
        Command::Bind { sock, addr: a } => {
            let Some(a) = v4(&a) else { return Some((err(libc_errno::EAFNOSUPPORT), none)) };
            let r = match backing(c, sock)? {
                Backing::Tcp(_) => bind_reuse_port(c, sock, a, engine, now, x),
                Backing::Udp(h) => engine.host().udp().bind(h, a).map_err(|e| e.errno()),
            };
            (r.map_or_else(err, |()| Ok(0)), none)
        }
        Command::Listen { sock, backlog } => match backing(c, sock)? {
            Backing::Tcp(id) => {
                (engine.tcp().listen(id, backlog).map_or_else(tcp_err, |()| Ok(0)), none)
            }
            Backing::Udp(_) => (err(libc_errno::EOPNOTSUPP), none),
        },
        Command::Accept { sock } => match backing(c, sock)? {
            Backing::Tcp(id) => match engine.tcp().accept(id) {
                Ok((child, peer)) => match new_sock(c, Backing::Tcp(child), x) {
                    Some(s) => (Ok(u64::from(s.0)), Payload::Addr(addr(peer))),
                    None => {
                        let _ = engine.tcp().abort(now, child);
                        let _ = engine.tcp().close(now, child);
                        (err(libc_errno::EMFILE), none)
                    }
                },
                Err(e) => (tcp_err(e), none),
            },
            Backing::Udp(_) => (err(libc_errno::EOPNOTSUPP), none),
        },
        Command::Connect { sock, addr: a } => {
            let Some(a) = v4(&a) else { return Some((err(libc_errno::EAFNOSUPPORT), none)) };
            match backing(c, sock)? {
                Backing::Tcp(id) => {
                    let r = engine.tcp().connect(now, id, a);
                    // Publish the connecting state before the app can see the answer, so it
                    // never mistakes a fresh socket's `OUT|HUP` for a finished connect.
                    publish(c, sock, engine);
                    (r.map_or_else(tcp_err, |()| Ok(0)), none)
                }
                Backing::Udp(h) => (
                    engine.host().udp().connect(h, a).map_or_else(|e| err(e.errno()), |()| Ok(0)),
                    none,
                ),
            }
        }
        Command::Send { sock, len, dest, .. } => {
            // Stream bytes are moved by `pump`; a datagram is sent here, whole.
            if let Some(Backing::Udp(h)) = backing(c, sock) {
                let n = (len as usize).min(x.scratch.len());
                let got = c.region.tx_take(sock, &mut x.scratch[..n]);
                // Bytes beyond the scratch (impossible for a well-behaved app: max 64 KiB
                // datagrams) are consumed and dropped.
                c.region.tx_consume(sock, u64::from(len).saturating_sub(got as u64));
                x.counters.tx_bytes += got as u64;
                let dst = dest.as_ref().and_then(v4);
                if let Err(e) = engine.host().udp_send_to(now, h, dst, &x.scratch[..got]) {
                    if let Some(k) = c.socks.get_mut(&sock.0) {
                        if k.err == 0 {
                            k.err = e.errno() as u32;
                        }
                    }
                }
            }
            return None;
        }
        Command::RecvWindow { .. } => return None,
        Command::Shutdown { sock, how } => match backing(c, sock)? {
            Backing::Tcp(id) => {
                pump(c, sock, engine, now, x);
                let state = engine.tcp().state(id);
                if matches!(state, Ok(State::Closed | State::SynSent | State::Listen))
                    && !matches!(state, Ok(State::Listen))
                    && engine.tcp().peer_addr(id).is_err()
                {
                    return Some((err(TcpError::NotConnected.errno()), none));
                }
                let (rd, wr) = match how {
                    joyride_ipc::Shutdown::Read => (true, false),
                    joyride_ipc::Shutdown::Write => (false, true),
                    joyride_ipc::Shutdown::Both => (true, true),
                };
                let mut r = Ok(0);
                if rd {
                    if let Err(e) = engine.tcp().shutdown(now, id, Shutdown::Read) {
                        r = tcp_err(e);
                    }
                }
                if wr && r.is_ok() {
                    if c.region.tx_pending(sock) > 0 {
                        // The FIN follows the bytes still in the ring (sent as room opens).
                        if let Some(k) = c.socks.get_mut(&sock.0) {
                            k.shut_wr_pending = true;
                        }
                    } else if let Err(e) = engine.tcp().shutdown(now, id, Shutdown::Write) {
                        r = tcp_err(e);
                    }
                }
                (r, none)
            }
            Backing::Udp(_) => (err(TcpError::NotConnected.errno()), none),
        },
        Command::Fork => (fork_ticket(c, now, x), none),
        Command::Inherit { slot } => (inherit_after_exec(c, slot, engine, x, spawned), none),
        Command::Join { ticket } => (join_ticket(c, ticket, x), none),
        Command::Close { sock } => {
            close_sock(c, sock, engine, now, x);
            (Ok(0), none)
        }
        Command::SetOpt { sock, opt, value } => {
            let b = backing(c, sock)?;
            let r = set_opt(c, sock, b, engine, opt, value.as_bytes());
            (r, none)
        }
        Command::GetOpt { sock, opt, max_len } => {
            let b = backing(c, sock)?;
            match get_opt(c, sock, b, engine, opt) {
                Ok(v) => {
                    let n = v.len().min(usize::from(max_len));
                    (Ok(0), Payload::Opt(OptValue::new(&v[..n]).unwrap_or(OptValue::new(&[])?)))
                }
                Err(e) => (err(e), none),
            }
        }
        Command::GetSockName { sock } => {
            let r = match backing(c, sock)? {
                Backing::Tcp(id) => engine.tcp().local_addr(id).map_err(|e| e.errno()),
                Backing::Udp(h) => engine.host().udp().local_addr(h).map_err(|e| e.errno()),
            };
            match r {
                Ok(a) => (Ok(0), Payload::Addr(addr(a))),
                Err(e) => (err(e), none),
            }
        }
        Command::GetPeerName { sock } => {
            let r = match backing(c, sock)? {
                Backing::Tcp(id) => engine.tcp().peer_addr(id).map_err(|e| e.errno()),
                Backing::Udp(h) => engine.host().udp().peer_addr(h).map_err(|e| e.errno()),
            };
            match r {
                Ok(a) => (Ok(0), Payload::Addr(addr(a))),
                Err(e) => (err(e), none),
            }
        }
        Command::Stat { sock } => {
            let ring_rx = u64::from(c.region.layout().config.rx_buf) - c.region.rx_space(sock);
            let ring_tx = c.region.tx_pending(sock);
            let st = match backing(c, sock)? {
                Backing::Tcp(id) => {
                    let info = engine.tcp().info(id).unwrap_or_default();
                    SocketStat {
                        state: info.state.map_or(7, linux_state),
                        rx_queued: ring_rx as u32,
                        tx_queued: (ring_tx + u64::from(info.unacked)) as u32,
                        retransmits: info.total_retrans as u32,
                    }
                }
                Backing::Udp(_) => SocketStat {
                    state: 7,
                    rx_queued: ring_rx as u32,
                    tx_queued: ring_tx as u32,
                    retransmits: 0,
                },
            };
            (Ok(0), Payload::Stat(st))
        }
    })
}

/// Linux errno numbers used here that the stack's error types do not produce.
mod libc_errno {
    pub(super) const EMFILE: i32 = 24;
    pub(super) const ENOENT: i32 = 2;
    pub(super) const EBADF: i32 = 9;
    pub(super) const EAGAIN: i32 = 11;
    pub(super) const EBUSY: i32 = 16;
    pub(super) const EINVAL: i32 = 22;
    pub(super) const ENOPROTOOPT: i32 = 92;
    pub(super) const EOPNOTSUPP: i32 = 95;
    pub(super) const EAFNOSUPPORT: i32 = 97;
}

fn abort_backing(engine: &mut Engine, now: Instant, b: Backing) {
    match b {
        Backing::Tcp(id) => {
            let _ = engine.tcp().set_option(id, SockOpt::Linger(Some(std::time::Duration::ZERO)));
            let _ = engine.tcp().close(now, id);
        }
        Backing::Udp(h) => {
            let _ = engine.host().udp().close(h);
        }
    }
}

/// `close` of a slot, or the process's exit. If another process still holds the socket (after
/// `fork`), only this slot goes: bytes in its tx ring are still sent, nothing is closed.
/// Otherwise this is the last reference: bytes in the tx ring still go out (then FIN); unread
/// bytes in the rx ring or in the stack turn the close into a RST, as Linux does (RFC 2525
/// §2.17).
fn close_sock(c: &mut Client, s: SocketIndex, engine: &mut Engine, now: Instant, x: &mut Common) {
    let Some(k) = c.socks.remove(&s.0) else { return };
    let last = x.shares.release(k.backing, Some((c.id, s.0)));
    if !last {
        let unread = c.region.rx_unread(s);
        let tail = c.region.rx_head(s) - unread.len() as u64;
        let given = (k.given_upto.saturating_sub(tail) as usize).min(unread.len());
        x.shares.stash(k.backing, unread[given..].to_vec());
    }
    if last && k.reuse_port {
        x.reuse_port.retain(|_, b| *b != k.backing);
    }
    match k.backing {
        Backing::Tcp(id) => {
            let unread = u64::from(c.region.layout().config.rx_buf) > c.region.rx_space(s);
            if last && unread {
                // Unread data, before or after the FIN: Linux resets.
                abort_backing(engine, now, k.backing);
            } else {
                let mut data = Vec::new();
                while c.region.tx_pending(s) > 0 {
                    let n = c.region.tx_take(s, &mut x.scratch);
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&x.scratch[..n]);
                }
                let mut off = 0;
                while off < data.len() {
                    match engine.tcp().send(now, id, &data[off..]) {
                        Ok(n) if n > 0 => off += n,
                        _ => break,
                    }
                }
                let blocked = off < data.len()
                    && matches!(
                        engine.tcp().state(id),
                        Ok(State::Established
                            | State::CloseWait
                            | State::SynSent
                            | State::SynReceived)
                    );
                if blocked {
                    x.orphans.push(Orphan { id, data, off, close: last });
                } else if last {
                    let _ = engine.tcp().close(now, id);
                }
            }
        }
        Backing::Udp(h) => {
            if last {
                let _ = engine.host().udp().close(h);
            }
        }
    }
    c.region.free_socket(s);
}

fn int_of(v: &[u8]) -> Result<i32, i32> {
    let b: [u8; 4] = v.get(..4).and_then(|b| b.try_into().ok()).ok_or(libc_errno::EINVAL)?;
    Ok(i32::from_ne_bytes(b))
}

/// Maps `(level, name)` to the stack's option (Linux numbers from `asm-generic/socket.h`,
/// `linux/tcp.h`).
fn opt_name(level: OptLevel, name: u32) -> Option<SockOptName> {
    Some(match (level, name) {
        (OptLevel::Socket, 2) => SockOptName::ReuseAddr,
        (OptLevel::Socket, 9) => SockOptName::KeepAlive,
        (OptLevel::Socket, 7) => SockOptName::SendBuffer,
        (OptLevel::Socket, 8) => SockOptName::RecvBuffer,
        (OptLevel::Socket, 13) => SockOptName::Linger,
        (OptLevel::Tcp, 1) => SockOptName::NoDelay,
        (OptLevel::Tcp, 2) => SockOptName::MaxSegment,
        (OptLevel::Tcp, 3) => SockOptName::Cork,
        (OptLevel::Tcp, 4) => SockOptName::KeepIdle,
        (OptLevel::Tcp, 5) => SockOptName::KeepInterval,
        (OptLevel::Tcp, 6) => SockOptName::KeepCount,
        (OptLevel::Tcp, 12) => SockOptName::QuickAck,
        (OptLevel::Tcp, 18) => SockOptName::UserTimeout,
        _ => return None,
    })
}

const SO_REUSEPORT: u32 = 15;
const IP_TOS: u32 = 1;

fn set_opt(
    c: &mut Client,
    s: SocketIndex,
    b: Backing,
    engine: &mut Engine,
    opt: joyride_ipc::SockOpt,
    v: &[u8],
) -> Result<u64, Errno> {
    use std::time::Duration as D;
    if (opt.level, opt.name) == (OptLevel::Socket, SO_REUSEPORT) {
        let on = int_of(v).map_err(|e| Errno::new(e).unwrap_or(Errno::INVAL))? != 0;
        if let Some(k) = c.socks.get_mut(&s.0) {
            k.reuse_port = on;
        }
        return Ok(0);
    }
    if (opt.level, opt.name) == (OptLevel::Ip, IP_TOS) {
        let t = int_of(v).map_err(|e| Errno::new(e).unwrap_or(Errno::INVAL))?;
        if let Some(k) = c.socks.get_mut(&s.0) {
            k.tos = (t as u32) & 0xfc;
        }
        return Ok(0);
    }
    let Backing::Tcp(id) = b else {
        // UDP: the options programs set blindly are accepted, the rest refused.
        return match (opt.level, opt.name) {
            (OptLevel::Socket, 2 | 7 | 8 | 6) => Ok(0),
            _ => err(libc_errno::ENOPROTOOPT),
        };
    };
    let Some(name) = opt_name(opt.level, opt.name) else {
        return err(libc_errno::ENOPROTOOPT);
    };
    let value = if name == SockOptName::Linger {
        if v.len() < 8 {
            return err(libc_errno::EINVAL);
        }
        let on = int_of(&v[..4]).unwrap_or(0) != 0;
        let secs = int_of(&v[4..8]).unwrap_or(0).max(0) as u64;
        SockOpt::Linger(on.then(|| D::from_secs(secs)))
    } else {
        let i = match int_of(v) {
            Ok(i) => i,
            Err(e) => return err(e),
        };
        let u = i.max(0) as u32;
        match name {
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(i != 0),
            SockOptName::KeepAlive => SockOpt::KeepAlive(i != 0),
            // Linux doubles the value for bookkeeping overhead (socket(7)).
            SockOptName::SendBuffer => SockOpt::SendBuffer((u as usize).max(2304) * 2),
            SockOptName::RecvBuffer => SockOpt::RecvBuffer((u as usize).max(1152) * 2),
            SockOptName::NoDelay => SockOpt::NoDelay(i != 0),
            SockOptName::Cork => SockOpt::Cork(i != 0),
            SockOptName::MaxSegment => SockOpt::MaxSegment(u.min(65535) as u16),
            SockOptName::KeepIdle if i < 1 => return err(libc_errno::EINVAL),
            SockOptName::KeepIdle => SockOpt::KeepIdle(D::from_secs(u64::from(u))),
            SockOptName::KeepInterval if i < 1 => return err(libc_errno::EINVAL),
            SockOptName::KeepInterval => SockOpt::KeepInterval(D::from_secs(u64::from(u))),
            SockOptName::KeepCount if i < 1 => return err(libc_errno::EINVAL),
            SockOptName::KeepCount => SockOpt::KeepCount(u),
            SockOptName::QuickAck => SockOpt::QuickAck(i != 0),
            SockOptName::UserTimeout if i < 0 => return err(libc_errno::EINVAL),
            SockOptName::UserTimeout => SockOpt::UserTimeout(D::from_millis(u64::from(u))),
            _ => return err(libc_errno::ENOPROTOOPT),
        }
    };
    engine.tcp().set_option(id, value).map_or_else(tcp_err, |()| Ok(0))
}

fn get_opt(
    c: &Client,
    s: SocketIndex,
    b: Backing,
    engine: &mut Engine,
    opt: joyride_ipc::SockOpt,
) -> Result<Vec<u8>, i32> {
    let int =
        |i: i64| (i.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32).to_ne_bytes().to_vec();
    if (opt.level, opt.name) == (OptLevel::Socket, SO_REUSEPORT) {
        return Ok(int(c.socks.get(&s.0).map_or(0, |k| i64::from(k.reuse_port))));
    }
    if (opt.level, opt.name) == (OptLevel::Ip, IP_TOS) {
        return Ok(int(c.socks.get(&s.0).map_or(0, |k| i64::from(k.tos))));
    }
    let Backing::Tcp(id) = b else {
        return match (opt.level, opt.name) {
            (OptLevel::Socket, 7 | 8) => Ok(int(212_992)),
            (OptLevel::Socket, 2 | 6) => Ok(int(0)),
            _ => Err(libc_errno::ENOPROTOOPT),
        };
    };
    let name = opt_name(opt.level, opt.name).ok_or(libc_errno::ENOPROTOOPT)?;
    let v = engine.tcp().get_option(id, name).map_err(|e| e.errno())?;
    Ok(match v {
        SockOpt::ReuseAddr(b)
        | SockOpt::KeepAlive(b)
        | SockOpt::NoDelay(b)
        | SockOpt::Cork(b)
        | SockOpt::QuickAck(b) => int(i64::from(b)),
        SockOpt::Linger(l) => {
            let mut v = int(i64::from(l.is_some()));
            v.extend(int(l.map_or(0, |d| d.as_secs() as i64)));
            v
        }
        SockOpt::RecvBuffer(n) | SockOpt::SendBuffer(n) => int(n as i64),
        SockOpt::MaxSegment(m) => int(i64::from(m)),
        SockOpt::KeepIdle(d) | SockOpt::KeepInterval(d) => int(d.as_secs() as i64),
        SockOpt::KeepCount(n) => int(i64::from(n)),
        SockOpt::UserTimeout(d) => int(d.as_millis() as i64),
        SockOpt::Congestion(_) => return Err(libc_errno::ENOPROTOOPT),
    })
}

/// Moves data between socket `s`'s rings and the stack. Returns whether anything moved.
fn pump(c: &mut Client, s: SocketIndex, engine: &mut Engine, now: Instant, x: &mut Common) -> bool {
    let Some(k) = c.socks.get_mut(&s.0) else { return false };
    let reads = x.shares.reads(k.backing, (c.id, s.0), |b| c.region.rx_write(s, b));
    let Common { counters, scratch, .. } = x;
    let mut moved = false;
    match k.backing {
        Backing::Udp(h) => {
            // A pending error (an ICMP port unreachable for a connected socket) first: the
            // receive below would consume it.
            if let Ok(Some(e)) = engine.host().udp().take_error(h) {
                if k.err == 0 {
                    k.err = e.errno() as u32;
                    moved = true;
                }
            }
            loop {
                if k.carry.is_empty() {
                    if !reads {
                        break;
                    }
                    let (hdr, body) = scratch.split_at_mut(DGRAM_HDR);
                    let Ok(meta) = engine.host().udp_recv_from(h, &mut body[..CHUNK]) else {
                        break;
                    };
                    hdr.fill(0);
                    hdr[0..4].copy_from_slice(&(meta.len as u32).to_le_bytes());
                    hdr[4..6].copy_from_slice(&2u16.to_le_bytes());
                    hdr[6..8].copy_from_slice(&meta.from.port().to_le_bytes());
                    hdr[12..16].copy_from_slice(&meta.from.ip().octets());
                    let total = DGRAM_HDR + meta.len.div_ceil(8) * 8;
                    k.carry.extend_from_slice(&scratch[..DGRAM_HDR + meta.len]);
                    k.carry.resize(total, 0);
                }
                if c.region.rx_space(s) < k.carry.len() as u64 {
                    break;
                }
                let n = c.region.rx_write(s, &k.carry);
                counters.rx_bytes += n as u64;
                k.carry.clear();
                moved = true;
            }
        }
        Backing::Tcp(id) => {
            // tx: ring → stack
            while c.region.tx_pending(s) > 0 {
                let n = c.region.tx_peek(s, &mut scratch[..CHUNK]);
                match engine.tcp().send(now, id, &scratch[..n]) {
                    Ok(0) | Err(TcpError::WouldBlock | TcpError::NotConnected) => break,
                    Ok(sent) => {
                        c.region.tx_consume(s, sent as u64);
                        counters.tx_bytes += sent as u64;
                        moved = true;
                    }
                    Err(e) => {
                        // The connection is gone: what the app wrote can never be sent.
                        let p = c.region.tx_pending(s);
                        c.region.tx_consume(s, p);
                        if k.err == 0 && !matches!(e, TcpError::BrokenPipe) {
                            k.err = e.errno() as u32;
                        }
                        moved = true;
                        break;
                    }
                }
            }
            if k.shut_wr_pending && c.region.tx_pending(s) == 0 {
                k.shut_wr_pending = false;
                let _ = engine.tcp().shutdown(now, id, Shutdown::Write);
                moved = true;
            }
            // rx: stack → ring
            while reads && !k.eof {
                let space = (c.region.rx_space(s) as usize).min(CHUNK);
                if space == 0 {
                    break;
                }
                match engine.tcp().recv(id, &mut scratch[..space], false) {
                    Ok(0) => {
                        k.eof = true;
                        moved = true;
                    }
                    Ok(n) => {
                        let w = c.region.rx_write(s, &scratch[..n]);
                        debug_assert_eq!(w, n);
                        counters.rx_bytes += w as u64;
                        moved = true;
                    }
                    Err(TcpError::WouldBlock | TcpError::NotConnected | TcpError::InvalidInput) => {
                        break
                    }
                    Err(e) => {
                        if k.err == 0 {
                            k.err = e.errno() as u32;
                        }
                        k.eof = true;
                        moved = true;
                    }
                }
            }
            if k.err == 0 {
                if let Some(e) = engine.tcp().take_error(id) {
                    k.err = e.errno() as u32;
                    moved = true;
                }
            }
        }
    }
    moved
}

/// Publishes readiness, pending error and state when they changed.
fn publish(c: &mut Client, s: SocketIndex, engine: &mut Engine) {
    let Some(k) = c.socks.get_mut(&s.0) else { return };
    let (inb, out, errb, hup, rdhup) = (
        Readiness::READABLE.0,
        Readiness::WRITABLE.0,
        Readiness::ERR.0,
        Readiness::HUP.0,
        Readiness::RDHUP.0,
    );
    let rx_queued = c.region.rx_space(s) < u64::from(c.region.layout().config.rx_buf);
    let (mut r, state) = match k.backing {
        Backing::Udp(_) => (out | if rx_queued || !k.carry.is_empty() { inb } else { 0 }, 7),
        Backing::Tcp(id) => {
            let tcp = engine.tcp();
            let st = tcp.state(id).unwrap_or(State::Closed);
            let rd = tcp.readiness(id);
            let mut r = 0;
            if st == State::Listen {
                if rd.readable {
                    r |= inb;
                }
            } else {
                if rx_queued || k.eof {
                    r |= inb;
                }
                if k.eof {
                    r |= rdhup;
                }
                let connected = matches!(st, State::Established | State::CloseWait);
                if rd.writable || connected {
                    r |= out;
                }
                // Hang-up (Linux: also writable, writes fail at once) for a fresh socket, a
                // dead connection, or both FINs — never ahead of data still to be delivered.
                if rd.hup && (k.eof || k.err != 0 || tcp.peer_addr(id).is_err()) {
                    r |= out | hup;
                }
            }
            (r, linux_state(st))
        }
    };
    if k.err != 0 {
        r |= errb;
    }
    let now = (r, k.err, state);
    if now != k.published {
        k.published = now;
        c.region.set_error(s, k.err);
        c.region.set_state(s, state);
        c.region.set_readiness(s, Readiness(r));
    }
}
