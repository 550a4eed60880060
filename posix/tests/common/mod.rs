//! Test support: an in-test Joyride service and a runner for C programs under `LD_PRELOAD`.
//!
//! [`TestService`] speaks the real ipc protocol (`joyride_ipc::ServiceRegion`) over a Unix
//! socket, one region per connecting process, and backs every Joyride socket with a
//! non-blocking **kernel** socket in the test process: TCP and UDP over loopback with Linux's
//! own semantics and errnos. It is a stand-in for `joyrided` (whose service side is wired to
//! the same protocol in the next step): what it exercises is the shim's ABI, fd table,
//! blocking, readiness and errno paths, end to end, in real processes.
#![allow(dead_code)]

use joyride_ipc::{
    Command, Completion, Errno, OptLevel, OptValue, Payload, Readiness, RegionConfig, Request,
    ServiceError, ServiceRegion, SockAddr, SockType, SocketIndex, SocketStat,
};
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

fn err(e: i32) -> Result<u64, Errno> {
    Err(Errno::new(e).unwrap_or(Errno::INVAL))
}

fn sockaddr_in(a: &SockAddr) -> Option<libc::sockaddr_in> {
    match *a {
        SockAddr::V4 { addr, port } => Some(libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(addr) },
            sin_zero: [0; 8],
        }),
        SockAddr::V6 { .. } => None,
    }
}

fn from_sockaddr_in(s: &libc::sockaddr_in) -> SockAddr {
    SockAddr::V4 { addr: s.sin_addr.s_addr.to_ne_bytes(), port: u16::from_be(s.sin_port) }
}

/// Counters the tests assert on (proof that a run really went through the service).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stats {
    /// Clients (processes) that connected.
    pub(crate) clients: u64,
    /// Sockets created (Socket + Accept).
    pub(crate) sockets: u64,
    /// Valid commands.
    pub(crate) commands: u64,
    /// Invalid commands.
    pub(crate) invalid: u64,
    /// Bytes carried app → kernel.
    pub(crate) tx_bytes: u64,
    /// Bytes carried kernel → app.
    pub(crate) rx_bytes: u64,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum St {
    Fresh,
    Connecting,
    Connected,
    Listening,
}

#[derive(Debug)]
struct Backing {
    fd: OwnedFd,
    dgram: bool,
    st: St,
    carry: Vec<u8>,
    eof: bool,
    err: u32,
    published: (u32, u32, u32),
}

struct Client {
    region: ServiceRegion,
    conn: UnixStream,
    socks: HashMap<u32, Backing>,
}

/// The in-test service. Stops (and joins its thread) on drop or [`TestService::stop`].
pub(crate) struct TestService {
    /// The Unix socket path to put in `JOYRIDE_SOCKET`.
    pub(crate) path: PathBuf,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Stats>>,
}

impl TestService {
    /// Starts a service on a fresh socket path.
    pub(crate) fn start() -> TestService {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("joyride-posix-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("joyride.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = std::thread::spawn(move || serve(listener, &s2));
        TestService { path, dir, stop, handle: Some(handle) }
    }

    /// Stops the service and returns its counters.
    pub(crate) fn stop(mut self) -> Stats {
        self.stop.store(true, Ordering::Release);
        self.handle.take().map(|h| h.join().unwrap()).unwrap_or_default()
    }
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve(listener: UnixListener, stop: &AtomicBool) -> Stats {
    let mut stats = Stats::default();
    let mut clients: Vec<Client> = Vec::new();
    let cfg = RegionConfig {
        sockets: 64,
        cmd_entries: 256,
        cmp_entries: 256,
        rx_buf: 65536,
        tx_buf: 65536,
    };
    while !stop.load(Ordering::Acquire) {
        while let Ok((conn, _)) = listener.accept() {
            let region = ServiceRegion::create(cfg).unwrap();
            region.send_handshake(conn.as_fd()).unwrap();
            stats.clients += 1;
            clients.push(Client { region, conn, socks: HashMap::new() });
        }
        let mut busy = false;
        for c in &mut clients {
            busy |= serve_client(c, &mut stats);
        }
        // Reap clients whose process went away.
        clients.retain(|c| !hung_up(c.conn.as_raw_fd()));
        if busy {
            continue;
        }
        // Sleep until a command, a kernel socket event, a new client, or 5 ms.
        let mut fds =
            vec![libc::pollfd { fd: listener.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        let mut slept = Vec::new();
        for (i, c) in clients.iter_mut().enumerate() {
            if !c.region.prepare_sleep() {
                fds.clear();
                break;
            }
            slept.push(i);
            fds.push(libc::pollfd {
                fd: c.region.command_doorbell().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
            fds.push(libc::pollfd { fd: c.conn.as_raw_fd(), events: 0, revents: 0 });
            for b in c.socks.values() {
                let mut ev = libc::POLLIN | libc::POLLRDHUP;
                if b.st == St::Connecting {
                    ev |= libc::POLLOUT;
                }
                fds.push(libc::pollfd { fd: b.fd.as_raw_fd(), events: ev, revents: 0 });
            }
        }
        if !fds.is_empty() {
            // SAFETY: valid pollfd array.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 5) };
        }
        for i in slept {
            clients[i].region.end_sleep();
        }
    }
    stats
}

fn hung_up(fd: RawFd) -> bool {
    let mut p = libc::pollfd { fd, events: 0, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & (libc::POLLHUP | libc::POLLERR) != 0 }
}

/// One pass over a client: commands, data, readiness. Returns whether anything happened.
fn serve_client(c: &mut Client, stats: &mut Stats) -> bool {
    let mut busy = false;
    loop {
        match c.region.next_command() {
            Ok(None) => break,
            Ok(Some(Request { id, command })) => {
                busy = true;
                stats.commands += 1;
                if let Some((result, payload)) = handle(c, command, stats) {
                    let _ = c.region.complete(Completion { id, result, payload });
                }
            }
            Err(ServiceError::Invalid { .. }) => stats.invalid += 1,
            Err(ServiceError::Poisoned(_)) => return false,
        }
    }
    let keys: Vec<u32> = c.socks.keys().copied().collect();
    for k in keys {
        busy |= pump(c, SocketIndex(k), stats);
        publish(c, SocketIndex(k));
    }
    c.region.flush();
    busy
}

fn new_socket(c: &mut Client, fd: OwnedFd, dgram: bool, st: St) -> Result<SocketIndex, i32> {
    let s = c.region.alloc_socket().ok_or(libc::EMFILE)?;
    c.socks.insert(
        s.0,
        Backing {
            fd,
            dgram,
            st,
            carry: Vec::new(),
            eof: false,
            err: 0,
            published: (u32::MAX, 0, 0),
        },
    );
    Ok(s)
}

fn handle(
    c: &mut Client,
    cmd: Command,
    stats: &mut Stats,
) -> Option<(Result<u64, Errno>, Payload)> {
    let none = Payload::None;
    let fd_of = |c: &Client, s: SocketIndex| c.socks.get(&s.0).map(|b| b.fd.as_raw_fd());
    Some(match cmd {
        Command::Socket { ty, .. } => {
            let (kty, dgram) = match ty {
                SockType::Stream => (libc::SOCK_STREAM, false),
                SockType::Dgram => (libc::SOCK_DGRAM, true),
            };
            // SAFETY: plain syscall.
            let fd = unsafe {
                libc::socket(libc::AF_INET, kty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0)
            };
            if fd < 0 {
                return Some((err(errno()), none));
            }
            // SAFETY: fresh descriptor.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            stats.sockets += 1;
            match new_socket(c, fd, dgram, St::Fresh) {
                Ok(s) => (Ok(u64::from(s.0)), none),
                Err(e) => (err(e), none),
            }
        }
        Command::Bind { sock, addr } => {
            let fd = fd_of(c, sock)?;
            let Some(sa) = sockaddr_in(&addr) else { return Some((err(libc::EAFNOSUPPORT), none)) };
            // SAFETY: valid sockaddr_in.
            let r = unsafe { libc::bind(fd, (&sa as *const libc::sockaddr_in).cast(), 16) };
            (if r < 0 { err(errno()) } else { Ok(0) }, none)
        }
        Command::Listen { sock, backlog } => {
            let fd = fd_of(c, sock)?;
            // SAFETY: plain syscall.
            let r = unsafe { libc::listen(fd, backlog.min(4096) as i32) };
            if r < 0 {
                return Some((err(errno()), none));
            }
            c.socks.get_mut(&sock.0)?.st = St::Listening;
            (Ok(0), none)
        }
        Command::Accept { sock } => {
            let fd = fd_of(c, sock)?;
            // SAFETY: zeroed sockaddr_in is valid.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            let mut len = 16 as libc::socklen_t;
            // SAFETY: valid out-pointers.
            let n = unsafe {
                libc::accept4(
                    fd,
                    (&mut sa as *mut libc::sockaddr_in).cast(),
                    &mut len,
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if n < 0 {
                return Some((err(errno()), none));
            }
            // SAFETY: fresh descriptor.
            let nfd = unsafe { OwnedFd::from_raw_fd(n) };
            stats.sockets += 1;
            match new_socket(c, nfd, false, St::Connected) {
                Ok(s) => (Ok(u64::from(s.0)), Payload::Addr(from_sockaddr_in(&sa))),
                Err(e) => (err(e), none),
            }
        }
        Command::Connect { sock, addr } => {
            let fd = fd_of(c, sock)?;
            let Some(sa) = sockaddr_in(&addr) else { return Some((err(libc::EAFNOSUPPORT), none)) };
            // SAFETY: valid sockaddr_in.
            let r = unsafe { libc::connect(fd, (&sa as *const libc::sockaddr_in).cast(), 16) };
            let e = errno();
            let b = c.socks.get_mut(&sock.0)?;
            let r = if r == 0 {
                b.st = St::Connected;
                Ok(0)
            } else {
                if e == libc::EINPROGRESS {
                    b.st = St::Connecting;
                }
                err(e)
            };
            // Publish the connecting state before the answer (as joyrided does), so the app
            // never takes a fresh socket's `OUT|HUP` for a finished connect.
            publish(c, sock);
            (r, none)
        }
        Command::Send { sock, len, dest, .. } => {
            let b = c.socks.get(&sock.0)?;
            if b.dgram {
                let fd = b.fd.as_raw_fd();
                let mut buf = vec![0u8; len as usize];
                let n = c.region.tx_take(sock, &mut buf);
                stats.tx_bytes += n as u64;
                let sa = dest.and_then(|d| sockaddr_in(&d));
                let (p, l) = match &sa {
                    Some(sa) => ((sa as *const libc::sockaddr_in).cast::<libc::sockaddr>(), 16),
                    None => (std::ptr::null(), 0),
                };
                // SAFETY: buffer and optional address are valid.
                let r =
                    unsafe { libc::sendto(fd, buf.as_ptr().cast(), n, libc::MSG_NOSIGNAL, p, l) };
                if r < 0 {
                    let e = errno();
                    c.socks.get_mut(&sock.0)?.err = e as u32;
                }
            }
            return None;
        }
        Command::RecvWindow { .. } => return None,
        Command::Shutdown { sock, how } => {
            let fd = fd_of(c, sock)?;
            let h = match how {
                joyride_ipc::Shutdown::Read => libc::SHUT_RD,
                joyride_ipc::Shutdown::Write => libc::SHUT_WR,
                joyride_ipc::Shutdown::Both => libc::SHUT_RDWR,
            };
            // Flush what the app already wrote before the FIN goes out.
            pump(c, sock, stats);
            // SAFETY: plain syscall.
            let r = unsafe { libc::shutdown(fd, h) };
            (if r < 0 { err(errno()) } else { Ok(0) }, none)
        }
        Command::Close { sock } => {
            pump(c, sock, stats);
            c.socks.remove(&sock.0);
            c.region.free_socket(sock);
            (Ok(0), none)
        }
        Command::SetOpt { sock, opt, value } => {
            let fd = fd_of(c, sock)?;
            let v = value.as_bytes();
            // SAFETY: value buffer valid for its length.
            let r = unsafe {
                libc::setsockopt(
                    fd,
                    level(opt.level),
                    opt.name as i32,
                    v.as_ptr().cast(),
                    v.len() as libc::socklen_t,
                )
            };
            (if r < 0 { err(errno()) } else { Ok(0) }, none)
        }
        Command::GetOpt { sock, opt, max_len } => {
            let fd = fd_of(c, sock)?;
            let mut v = [0u8; 32];
            let mut len = libc::socklen_t::from(max_len);
            // SAFETY: buffer valid for `len` bytes.
            let r = unsafe {
                libc::getsockopt(
                    fd,
                    level(opt.level),
                    opt.name as i32,
                    v.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            if r < 0 {
                return Some((err(errno()), none));
            }
            (Ok(0), Payload::Opt(OptValue::new(&v[..(len as usize).min(32)]).unwrap()))
        }
        Command::GetSockName { sock } | Command::GetPeerName { sock } => {
            let fd = fd_of(c, sock)?;
            // SAFETY: zeroed sockaddr_in is valid.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            let mut len = 16 as libc::socklen_t;
            let p = (&mut sa as *mut libc::sockaddr_in).cast();
            // SAFETY: valid out-pointers.
            let r = if matches!(cmd, Command::GetSockName { .. }) {
                // SAFETY: valid out-pointers.
                unsafe { libc::getsockname(fd, p, &mut len) }
            } else {
                // SAFETY: valid out-pointers.
                unsafe { libc::getpeername(fd, p, &mut len) }
            };
            if r < 0 {
                return Some((err(errno()), none));
            }
            (Ok(0), Payload::Addr(from_sockaddr_in(&sa)))
        }
        // fork and exec are tested against the real service (service/tests/compat.rs).
        Command::Fork | Command::Join { .. } | Command::Inherit { .. } => {
            (Err(Errno::new(libc::ENOSYS).unwrap()), none)
        }
        Command::Stat { sock } => {
            let fd = fd_of(c, sock)?;
            let st = SocketStat {
                state: tcp_state(fd),
                rx_queued: 0,
                tx_queued: c.region.tx_pending(sock) as u32,
                retransmits: 0,
            };
            (Ok(0), Payload::Stat(st))
        }
    })
}

fn level(l: OptLevel) -> i32 {
    match l {
        OptLevel::Socket => libc::SOL_SOCKET,
        OptLevel::Ip => libc::IPPROTO_IP,
        OptLevel::Tcp => libc::IPPROTO_TCP,
        OptLevel::Ipv6 => libc::IPPROTO_IPV6,
    }
}

fn tcp_state(fd: RawFd) -> u32 {
    let mut info = [0u8; 256];
    let mut len = 256 as libc::socklen_t;
    // SAFETY: buffer valid for `len` bytes.
    let r = unsafe {
        libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO, info.as_mut_ptr().cast(), &mut len)
    };
    if r < 0 {
        0
    } else {
        u32::from(info[0])
    }
}

/// Moves data between the rings and the kernel socket. Returns whether anything moved.
fn pump(c: &mut Client, s: SocketIndex, stats: &mut Stats) -> bool {
    let Some(b) = c.socks.get_mut(&s.0) else { return false };
    let fd = b.fd.as_raw_fd();
    let mut moved = false;
    if b.st == St::Connecting {
        let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 0) } == 1 {
            let mut e = 0i32;
            let mut len = 4 as libc::socklen_t;
            // SAFETY: valid out-pointers.
            unsafe {
                libc::getsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut e as *mut i32).cast(),
                    &mut len,
                )
            };
            if e == 0 {
                b.st = St::Connected;
            } else {
                b.err = e as u32;
                b.st = St::Fresh;
            }
            moved = true;
        }
    }
    let mut buf = vec![0u8; 65536];
    if b.dgram {
        if b.carry.is_empty() {
            // SAFETY: zeroed sockaddr_in is valid.
            let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            let mut len = 16 as libc::socklen_t;
            // SAFETY: valid buffers.
            let n = unsafe {
                libc::recvfrom(
                    fd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut sa as *mut libc::sockaddr_in).cast(),
                    &mut len,
                )
            };
            if n >= 0 {
                let n = n as usize;
                let mut rec = vec![0u8; 32 + n.div_ceil(8) * 8];
                rec[0..4].copy_from_slice(&(n as u32).to_le_bytes());
                rec[4..6].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
                rec[6..8].copy_from_slice(&u16::from_be(sa.sin_port).to_le_bytes());
                rec[12..16].copy_from_slice(&sa.sin_addr.s_addr.to_ne_bytes());
                rec[32..32 + n].copy_from_slice(&buf[..n]);
                b.carry = rec;
            }
        }
        if !b.carry.is_empty() && c.region.rx_space(s) >= b.carry.len() as u64 {
            let n = c.region.rx_write(s, &b.carry);
            stats.rx_bytes += n as u64;
            b.carry.clear();
            moved = true;
        }
        return moved;
    }
    if b.st != St::Connected {
        return moved;
    }
    // tx: ring → kernel
    let k = c.region.tx_peek(s, &mut buf);
    if k > 0 {
        // SAFETY: valid buffer.
        let n = unsafe {
            libc::send(fd, buf.as_ptr().cast(), k, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT)
        };
        if n > 0 {
            c.region.tx_consume(s, n as u64);
            stats.tx_bytes += n as u64;
            moved = true;
        } else if n < 0 && errno() != libc::EAGAIN {
            b.err = errno() as u32;
        }
    }
    // rx: kernel → ring
    if b.carry.is_empty() && !b.eof {
        let space = (c.region.rx_space(s) as usize).min(buf.len());
        if space > 0 {
            // SAFETY: valid buffer.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), space, libc::MSG_DONTWAIT) };
            if n == 0 {
                b.eof = true;
                moved = true;
            } else if n > 0 {
                b.carry.extend_from_slice(&buf[..n as usize]);
            } else if errno() != libc::EAGAIN {
                b.err = errno() as u32;
                b.eof = true;
                moved = true;
            }
        }
    }
    if !b.carry.is_empty() {
        let n = c.region.rx_write(s, &b.carry);
        b.carry.drain(..n);
        stats.rx_bytes += n as u64;
        moved |= n > 0;
    }
    moved
}

/// Publishes readiness (kernel poll bits, with `EPOLLIN`/`EPOLLRDHUP` from the rings: EOF only
/// after every byte is in the rx ring), the pending error and the TCP state, when changed.
fn publish(c: &mut Client, s: SocketIndex) {
    let Some(b) = c.socks.get_mut(&s.0) else { return };
    let fd = b.fd.as_raw_fd();
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLOUT | libc::POLLRDHUP | libc::POLLPRI,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 0) };
    let k = p.revents as u16 as u32;
    let (inb, out, err, hup, rdhup) = (0x1, 0x4, 0x8, 0x10, 0x2000);
    let rx_queued = c.region.rx_space(s) < 65536;
    let mut r = match (b.dgram, b.st) {
        (_, St::Listening) => k & inb,
        (true, _) => (k & out) | if rx_queued { inb } else { 0 },
        (false, St::Connected) => {
            let mut r = k & (out | hup | 0x2);
            if b.eof && b.carry.is_empty() {
                r |= inb | rdhup;
            }
            if rx_queued {
                r |= inb;
            }
            r
        }
        (false, _) => k & (out | hup),
    };
    if b.err != 0 {
        r |= err;
    }
    let state = if b.dgram { 0 } else { tcp_state(fd) };
    let now = (r, b.err, state);
    if now != b.published {
        b.published = now;
        let e = b.err;
        c.region.set_error(s, e);
        c.region.set_state(s, state);
        c.region.set_readiness(s, Readiness(r));
    }
}

// ---- running programs ----------------------------------------------------------------------

/// `libjoyride.so` built for this test run. `cargo test` builds the package's cdylib with the
/// rlib (one rustc invocation) into `deps/`, but only `cargo build` copies it up into the
/// profile directory, so the newer of the two is the current one.
pub(crate) fn lib_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(Path::parent).unwrap().to_path_buf();
    let candidates = [profile.join("deps").join("libjoyride.so"), profile.join("libjoyride.so")];
    candidates
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "libjoyride.so not found under {}: run `cargo build -p joyride-posix`",
                profile.display()
            )
        })
}

/// Compiles `tests/c/NAME.c` with `cc` (once per test binary run) and returns the executable.
pub(crate) fn compile(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("posix-c");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join(format!("{name}-{}", std::process::id()));
    if !out.exists() {
        let st = Process::new("cc")
            .args(["-O1", "-g", "-Wall", "-Werror", "-D_GNU_SOURCE", "-pthread", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("cc");
        assert!(st.success(), "compiling {}", src.display());
    }
    out
}

/// How to run a program.
pub(crate) enum Stack<'a> {
    /// Plain kernel sockets (no preload): the reference behaviour.
    Kernel,
    /// Under `libjoyride.so`, connected to this service.
    Joyride(&'a TestService),
    /// Under `libjoyride.so`, with these extra environment variables (no service given).
    Preload(&'a [(&'a str, &'a str)]),
}

/// Runs `bin` with `args` on `stack`, killing it after 30 s.
pub(crate) fn run(bin: &Path, args: &[&str], stack: Stack<'_>) -> Output {
    let mut cmd = Process::new(bin);
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.env_remove("JOYRIDE_FALLBACK").env_remove("JOYRIDE_SOCKET");
    match stack {
        Stack::Kernel => {}
        Stack::Joyride(svc) => {
            cmd.env("LD_PRELOAD", lib_path()).env("JOYRIDE_SOCKET", &svc.path);
        }
        Stack::Preload(env) => {
            cmd.env("LD_PRELOAD", lib_path());
            for (k, v) in env {
                cmd.env(k, v);
            }
        }
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let killer = std::thread::spawn(move || {
        for _ in 0..300 {
            if d2.load(Ordering::Acquire) {
                return;
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, Ordering::Release);
    killer.thread().unpark();
    let _ = killer.join();
    out
}

/// stdout as text.
pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts success and returns stdout, printing everything on failure.
pub(crate) fn ok(o: &Output, what: &str) -> String {
    let out = stdout(o);
    assert!(
        o.status.success(),
        "{what} failed: {:?}\n--- stdout\n{out}\n--- stderr\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    out
}
