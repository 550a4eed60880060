//! Socket operations on Joyride sockets: safe Rust over values and slices, `Result<_, Errno>`.
//! `abi/` converts C arguments into these and the result back, once.
//!
//! Readiness contract with the service (what the shim reads from a socket slot):
//! - stream data sockets: readable = rx ring not empty, or `EPOLLRDHUP` (the service sets it
//!   only once every byte before the peer's FIN is in the rx ring, so EOF never overtakes
//!   data); writable = service `EPOLLOUT` and room in the tx ring;
//! - listeners: readable = service `EPOLLIN` (a connection is waiting);
//! - `EPOLLERR` = a pending error the app has not been told yet (reported once, like Linux's
//!   `sk_err`); `EPOLLHUP`/`EPOLLRDHUP`/`EPOLLPRI` as the service publishes them.

use crate::clock::Deadline;
use crate::conn::{self, Conn, Mode, SlotView, Woke};
use crate::errno::{Errno, Res};
use crate::fdtable::{self, flag, Sock, SockRef};
use crate::libc_next as sys;
use joyride_ipc::layout::slot;
use joyride_ipc::ring::{ring_read, ring_write};
use joyride_ipc::{
    Command, Domain, OptLevel, OptValue, Payload, Protocol, SendFlags, SockAddr, SockOpt, SockType,
    SocketIndex,
};
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::time::Duration;

const IN: u32 = libc::EPOLLIN as u32;
const PRI: u32 = libc::EPOLLPRI as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
const ERR: u32 = libc::EPOLLERR as u32;
const HUP: u32 = libc::EPOLLHUP as u32;
const RDHUP: u32 = libc::EPOLLRDHUP as u32;

/// Bytes of a datagram record header in the rx ring (`PROTOCOL.md` §8).
const DGRAM_HDR: usize = 32;
/// Largest UDP payload over IPv4.
const UDP_MAX: usize = 65507;

fn conn() -> Res<&'static Conn> {
    conn::get().ok_or(Errno::NETDOWN)
}

fn call(c: &Command) -> Res<joyride_ipc::Completion> {
    let done = conn()?.call(c)?;
    done.result.map_err(Errno::from)?;
    Ok(done)
}

// ---- addresses ---------------------------------------------------------------------------

/// Parses a `sockaddr` of `b.len()` bytes given to `bind`/`connect`/`sendto` on an AF_INET
/// socket, with Linux's checks (`EINVAL` for short, `EAFNOSUPPORT` for another family; `bind`
/// also takes `AF_UNSPEC` with `INADDR_ANY`).
pub(crate) fn parse_addr(b: &[u8], for_bind: bool) -> Res<SockAddr> {
    if b.len() < 16 {
        return Err(Errno::INVAL);
    }
    let family = i32::from(u16::from_ne_bytes([b[0], b[1]]));
    let addr = [b[4], b[5], b[6], b[7]];
    let ok = family == libc::AF_INET || (for_bind && family == libc::AF_UNSPEC && addr == [0; 4]);
    if !ok {
        return Err(Errno::AFNOSUPPORT);
    }
    Ok(SockAddr::V4 { addr, port: u16::from_be_bytes([b[2], b[3]]) })
}

/// A `sockaddr_in` for `a` (16 bytes; an IPv6 address from the service is reported as
/// `sockaddr_in6`, 28 bytes).
pub(crate) fn encode_addr(a: &SockAddr) -> ([u8; 28], usize) {
    let mut b = [0u8; 28];
    match *a {
        SockAddr::V4 { addr, port } => {
            b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&port.to_be_bytes());
            b[4..8].copy_from_slice(&addr);
            (b, 16)
        }
        SockAddr::V6 { addr, port, flowinfo, scope_id } => {
            b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            b[2..4].copy_from_slice(&port.to_be_bytes());
            b[4..8].copy_from_slice(&flowinfo.to_be_bytes());
            b[8..24].copy_from_slice(&addr);
            b[24..28].copy_from_slice(&scope_id.to_ne_bytes());
            (b, 28)
        }
    }
}

// ---- creation and teardown ----------------------------------------------------------------

/// `socket()`: `Ok(None)` means "not Joyride's: pass it to libc".
pub(crate) fn socket(domain: i32, ty: i32, proto: i32) -> Res<Option<RawFd>> {
    if domain != libc::AF_INET {
        return Ok(None);
    }
    let extra = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC | 0xf);
    let base = ty & 0xf;
    if extra != 0 || (base != libc::SOCK_STREAM && base != libc::SOCK_DGRAM) {
        return Ok(None); // raw, seqpacket, bad flags: the kernel answers (and its errno)
    }
    let (sty, p) = match (base, proto) {
        (libc::SOCK_STREAM, 0) => (SockType::Stream, Protocol::Default),
        (libc::SOCK_STREAM, libc::IPPROTO_TCP) => (SockType::Stream, Protocol::Tcp),
        (libc::SOCK_DGRAM, 0) => (SockType::Dgram, Protocol::Default),
        (libc::SOCK_DGRAM, libc::IPPROTO_UDP) => (SockType::Dgram, Protocol::Udp),
        // Other protocols (UDP-Lite, SCTP, ICMP echo, MPTCP, …) are the kernel's, and so is the
        // errno of a bad pairing (`EPROTONOSUPPORT` for SOCK_STREAM + IPPROTO_UDP).
        _ => return Ok(None),
    };
    match conn::mode() {
        Mode::Kernel => Ok(None),
        Mode::Down(e) => Err(*e),
        Mode::Service(c) => {
            let nonblock = ty & libc::SOCK_NONBLOCK != 0;
            let fd = sys::eventfd(ty & libc::SOCK_CLOEXEC != 0, nonblock)?;
            let made = c
                .call(&Command::Socket { domain: Domain::Inet, ty: sty, proto: p })
                .and_then(|d| d.result.map_err(Errno::from));
            let index = match made {
                Ok(i) => i as u32,
                Err(e) => {
                    let _ = sys::close(fd);
                    return Err(e);
                }
            };
            let mut flags = if sty == SockType::Dgram { flag::DGRAM } else { 0 };
            if nonblock {
                flags |= flag::NONBLOCK;
            }
            adopt(fd, index, flags).map(Some)
        }
    }
}

/// Binds a new socket object for region socket `index` to kernel fd `fd`, and marks the
/// eventfd with the index (`joyride_ipc::inherited::mark`: what survives an `exec`).
fn adopt(fd: RawFd, index: u32, flags: u32) -> Res<RawFd> {
    sys::add(fd, joyride_ipc::inherited::mark(index));
    let s = match fdtable::alloc(index, flags) {
        Ok(s) => s,
        Err(e) => {
            let _ = sys::close(fd);
            let _ = call(&Command::Close { sock: SocketIndex(index) });
            return Err(e);
        }
    };
    let r = fdtable::install(fd, &s);
    drop(s); // the fd entry holds its own reference now
    r.map(|()| fd)
}

/// At load time, in the image a process `exec`ed into: the fds that are eventfds marked by the
/// previous image (`joyride_ipc::inherited`) are sockets that survived the exec (no
/// `FD_CLOEXEC`); claim each from the service (which held them for this pid) at its old index.
/// Without any, nothing happens (no connection is made).
pub(crate) fn inherit_after_exec() {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else { return };
    let mut found = Vec::new();
    for e in dir.flatten() {
        let Some(fd) = e.file_name().to_str().and_then(|n| n.parse::<RawFd>().ok()) else {
            continue;
        };
        let is_eventfd = std::fs::read_link(e.path())
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes() == b"anon_inode:[eventfd]");
        if !is_eventfd {
            continue;
        }
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap_or_default();
        let count = info
            .lines()
            .find_map(|l| l.strip_prefix("eventfd-count:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok());
        if let Some(slot) = count.and_then(joyride_ipc::inherited::slot_of) {
            found.push((fd, slot));
        }
    }
    if found.is_empty() {
        return;
    }
    let Mode::Service(c) = conn::mode() else { return };
    for (fd, slot) in found {
        let Ok(done) = c.call(&Command::Inherit { slot }) else { return };
        let Ok(bits) = done.result else { continue };
        let mut f = 0;
        for (b, fl) in [
            (joyride_ipc::inherited::DGRAM, flag::DGRAM),
            (joyride_ipc::inherited::LISTENING, flag::LISTENING),
            (joyride_ipc::inherited::CONNECTED, flag::CONNECTED),
        ] {
            if bits & b != 0 {
                f |= fl;
            }
        }
        if sys::fcntl_int(fd, libc::F_GETFL, 0).is_ok_and(|v| v & libc::O_NONBLOCK != 0) {
            f |= flag::NONBLOCK;
        }
        if let Ok(s) = fdtable::alloc(slot, f) {
            let _ = fdtable::install(fd, &s);
        }
    }
}

/// Called when the last reference to a socket goes (every fd closed, no call in flight).
pub(crate) fn on_last_close(s: &Sock) {
    if let Some(c) = conn::get() {
        let _ = c.call(&Command::Close { sock: s.idx() });
    }
    conn::poke_sleepers(-1);
}

/// `close()` of a Joyride fd or tracked epoll fd: the kernel fd goes now, the socket when its
/// last reference does.
pub(crate) fn close(fd: RawFd) -> Res<()> {
    let was = fdtable::forget(fd);
    let r = sys::close(fd);
    drop(was);
    conn::poke_sleepers(-1);
    r
}

// ---- readiness ------------------------------------------------------------------------------

/// The socket's readiness as `EPOLL*` bits, computed from the slot and local state.
pub(crate) fn events(s: &Sock) -> u32 {
    match conn::get() {
        Some(c) => events_of(s, &c.view().slot(s.idx())),
        None => ERR | HUP,
    }
}

/// The socket's readiness plus the slot it was computed from.
pub(crate) fn events_and_slot(s: &Sock) -> (u32, SlotView) {
    match conn::get() {
        Some(c) => {
            let v = c.view().slot(s.idx());
            (events_of(s, &v), v)
        }
        None => (ERR | HUP, SlotView::default()),
    }
}

fn events_of(s: &Sock, v: &SlotView) -> u32 {
    let f = s.flags.load(Ordering::Acquire);
    let mut r = v.ready & (HUP | RDHUP | PRI);
    if pending_error(s, v).is_some() {
        r |= ERR;
    }
    if f & flag::LISTENING != 0 {
        return r | (v.ready & IN);
    }
    if v.rx_avail > 0 || v.ready & RDHUP != 0 || f & flag::SHUT_RD != 0 {
        r |= IN;
    }
    if f & flag::SHUT_RD != 0 {
        r |= RDHUP;
    }
    if v.ready & OUT != 0 && (v.tx_space > 0 || v.ready & HUP != 0 || f & flag::SHUT_WR != 0) {
        r |= OUT;
    }
    r
}

fn pending_error(s: &Sock, v: &SlotView) -> Option<u32> {
    (v.error != 0 && v.error != s.err_seen.load(Ordering::Acquire)).then_some(v.error)
}

/// Takes the pending error (reporting it consumes it, like Linux's `sock_error`).
fn take_error(s: &Sock, v: &SlotView) -> Option<Errno> {
    let e = pending_error(s, v)?;
    s.err_seen.store(e, Ordering::Release);
    Some(Errno(e as i32))
}

fn timeout_of(us: u64) -> Option<Duration> {
    (us != 0).then(|| Duration::from_micros(us))
}

/// Blocks until `cond(events, slot)` holds or the deadline passes. `EINTR` is turned into a
/// restart when Linux would restart ([`conn::restart`]).
fn wait_for(
    s: &Sock,
    deadline: Deadline,
    mut cond: impl FnMut(u32, &SlotView) -> bool,
) -> Res<Woke> {
    let c = conn()?;
    let mut none = Vec::new();
    loop {
        let r = c.block(&mut none, deadline, None, || {
            let (e, v) = events_and_slot(s);
            cond(e, &v)
        });
        match r {
            Err(Errno::INTR) if conn::restart(deadline.is_some()) => continue,
            other => return other,
        }
    }
}

fn nonblocking(s: &Sock, flags: i32) -> bool {
    flags & libc::MSG_DONTWAIT != 0 || s.has(flag::NONBLOCK)
}

// ---- connection management ------------------------------------------------------------------

/// `bind`.
pub(crate) fn bind(s: &SockRef, addr: SockAddr) -> Res<()> {
    call(&Command::Bind { sock: s.idx(), addr }).map(drop)
}

/// `listen`.
pub(crate) fn listen(s: &SockRef, backlog: i32) -> Res<()> {
    if s.has(flag::DGRAM) {
        return Err(Errno::OPNOTSUPP);
    }
    // Linux: a negative backlog is taken as unsigned and then clamped to somaxconn.
    let b = if backlog < 0 { i32::MAX as u32 } else { backlog as u32 };
    call(&Command::Listen { sock: s.idx(), backlog: b })?;
    s.set(flag::LISTENING);
    Ok(())
}

/// `accept4`: the new fd and the peer's address.
pub(crate) fn accept(s: &SockRef, flags: i32) -> Res<(RawFd, Option<SockAddr>)> {
    if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
        return Err(Errno::INVAL);
    }
    if s.has(flag::DGRAM) {
        return Err(Errno::OPNOTSUPP);
    }
    let deadline = Deadline::after(timeout_of(s.rcvtimeo_us.load(Ordering::Relaxed)));
    let done = loop {
        match conn()?.call(&Command::Accept { sock: s.idx() }) {
            Ok(d) => match d.result {
                Ok(_) => break d,
                Err(e) if e.get() == libc::EAGAIN && !s.has(flag::NONBLOCK) => {
                    if wait_for(s, deadline, |e, _| e & (IN | ERR | HUP) != 0)? == Woke::TimedOut {
                        return Err(Errno::AGAIN);
                    }
                }
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e),
        }
    };
    let index = done.result.map_err(Errno::from)? as u32;
    let peer = match done.payload {
        Payload::Addr(a) => Some(a),
        _ => None,
    };
    let nonblock = flags & libc::SOCK_NONBLOCK != 0;
    let fd = match sys::eventfd(flags & libc::SOCK_CLOEXEC != 0, nonblock) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = call(&Command::Close { sock: SocketIndex(index) });
            return Err(e);
        }
    };
    let f = flag::CONNECTED | if nonblock { flag::NONBLOCK } else { 0 };
    Ok((adopt(fd, index, f)?, peer))
}

/// `connect`.
pub(crate) fn connect(s: &SockRef, addr: SockAddr) -> Res<()> {
    match call(&Command::Connect { sock: s.idx(), addr }) {
        Ok(_) => {
            s.set(flag::CONNECTED);
            Ok(())
        }
        Err(Errno::INPROGRESS) => {
            s.set(flag::CONNECTING);
            if s.has(flag::NONBLOCK) {
                return Err(Errno::INPROGRESS);
            }
            let deadline = Deadline::after(timeout_of(s.sndtimeo_us.load(Ordering::Relaxed)));
            // `Woke::Check` only means "look again" (another thread's wake-up, a poke): the
            // connect is over only once the slot shows its outcome.
            let done = |e: u32, v: &SlotView| {
                e & (OUT | ERR | HUP) != 0 || v.ready & (OUT | ERR | HUP) != 0
            };
            loop {
                if wait_for(s, deadline, done)? == Woke::TimedOut {
                    return Err(Errno::INPROGRESS);
                }
                let (e, v) = events_and_slot(s);
                if done(e, &v) {
                    break;
                }
            }
            let (_, v) = events_and_slot(s);
            s.clear(flag::CONNECTING);
            if let Some(e) = take_error(s, &v) {
                return Err(e);
            }
            s.set(flag::CONNECTED);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Settles a non-blocking connect once the slot shows its outcome (for send/recv checks).
fn settle_connect(s: &Sock, v: &SlotView) {
    if s.has(flag::CONNECTING) && v.ready & OUT != 0 && v.error == 0 {
        s.clear(flag::CONNECTING);
        s.set(flag::CONNECTED);
    }
}

/// `shutdown`.
pub(crate) fn shutdown(s: &SockRef, how: i32) -> Res<()> {
    let (h, f) = match how {
        libc::SHUT_RD => (joyride_ipc::Shutdown::Read, flag::SHUT_RD),
        libc::SHUT_WR => (joyride_ipc::Shutdown::Write, flag::SHUT_WR),
        libc::SHUT_RDWR => (joyride_ipc::Shutdown::Both, flag::SHUT_RD | flag::SHUT_WR),
        _ => return Err(Errno::INVAL),
    };
    call(&Command::Shutdown { sock: s.idx(), how: h })?;
    s.set(f);
    conn::poke_sleepers(-1);
    Ok(())
}

/// `getsockname` (`peer == false`) or `getpeername`.
pub(crate) fn name(s: &SockRef, peer: bool) -> Res<SockAddr> {
    let c = if peer {
        Command::GetPeerName { sock: s.idx() }
    } else {
        Command::GetSockName { sock: s.idx() }
    };
    match call(&c)?.payload {
        Payload::Addr(a) => Ok(a),
        _ => Err(Errno::IO),
    }
}

// ---- data -------------------------------------------------------------------------------------

/// Receive flags the shim implements.
const RECV_FLAGS: i32 = libc::MSG_PEEK
    | libc::MSG_DONTWAIT
    | libc::MSG_WAITALL
    | libc::MSG_TRUNC
    | libc::MSG_NOSIGNAL
    | libc::MSG_CMSG_CLOEXEC;

/// `recv`/`recvfrom`/`read`: bytes received and, for datagrams, the source.
pub(crate) fn recv(s: &SockRef, buf: &mut [u8], flags: i32) -> Res<(usize, Option<SockAddr>)> {
    if flags & libc::MSG_OOB != 0 {
        return Err(Errno::INVAL); // no urgent data is ever queued inline here
    }
    if flags & !RECV_FLAGS != 0 {
        return Err(Errno::OPNOTSUPP);
    }
    if s.has(flag::DGRAM) {
        return recv_dgram(s, buf, flags);
    }
    if s.has(flag::LISTENING) || !(s.has(flag::CONNECTED) || s.has(flag::CONNECTING)) {
        return Err(Errno::NOTCONN);
    }
    let c = conn()?;
    let deadline = Deadline::after(timeout_of(s.rcvtimeo_us.load(Ordering::Relaxed)));
    let peek = flags & libc::MSG_PEEK != 0;
    let waitall = flags & libc::MSG_WAITALL != 0 && !peek;
    let mut got = 0usize;
    loop {
        if got == buf.len() {
            return Ok((got, None));
        }
        let v = c.view().slot(s.idx());
        settle_connect(s, &v);
        if v.rx_avail > 0 {
            let n = if peek {
                peek_stream(c, s.idx(), &mut buf[got..])?
            } else {
                match c.client().recv(s.idx(), &mut buf[got..]) {
                    Ok(n) => n,
                    Err(joyride_ipc::ClientError::Full) => 0,
                    Err(e) => return Err(e.into()),
                }
            };
            got += n;
            if (!waitall || got == buf.len()) && n > 0 {
                return Ok((got, None));
            }
            continue;
        }
        if got > 0 && !waitall {
            return Ok((got, None));
        }
        if let Some(e) = take_error(s, &v) {
            return if got > 0 { Ok((got, None)) } else { Err(e) };
        }
        if v.ready & RDHUP != 0 || s.has(flag::SHUT_RD) {
            return Ok((got, None));
        }
        c.alive().map_err(|_| Errno::CONNRESET)?;
        if nonblocking(s, flags) {
            return if got > 0 { Ok((got, None)) } else { Err(Errno::AGAIN) };
        }
        want_data(c, s);
        let r = c.block(&mut Vec::new(), deadline, None, || {
            let v = c.view().slot(s.idx());
            v.rx_avail > 0
                || v.ready & (RDHUP | HUP) != 0
                || pending_error(s, &v).is_some()
                || s.has(flag::SHUT_RD)
        });
        match r {
            Ok(Woke::TimedOut) => {
                return if got > 0 { Ok((got, None)) } else { Err(Errno::AGAIN) };
            }
            Ok(Woke::Check) => {}
            Err(Errno::INTR) if got > 0 => return Ok((got, None)),
            Err(Errno::INTR) if conn::restart(deadline.is_some()) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Before a `recv` sleeps: an empty `RecvWindow` tells the service this process wants the
/// socket's bytes (for a socket shared with other processes since a `fork`, the received bytes
/// go to the process that last asked; `ipc/PROTOCOL.md` §9b).
fn want_data(c: &conn::Conn, s: &SockRef) {
    let _ = c.client().submit(&Command::RecvWindow { sock: s.idx(), consumed: 0 });
}

/// The error a receive into a NULL buffer gets: `EAGAIN` when it would not block-and-copy
/// (non-blocking, nothing queued), else `EFAULT`.
pub(crate) fn null_buffer_error(s: &SockRef, flags: i32) -> Errno {
    let (e, _) = events_and_slot(s);
    if e & (IN | ERR) == 0 && nonblocking(s, flags) {
        Errno::AGAIN
    } else {
        Errno::FAULT
    }
}

/// Copies readable stream bytes without consuming them (`MSG_PEEK`).
fn peek_stream(c: &Conn, s: SocketIndex, buf: &mut [u8]) -> Res<usize> {
    let cl = c.client();
    let n = cl.rx_available(s)?.min(buf.len());
    let l = cl.layout();
    let tail = load64(cl.region(), l.slot_off(s.0) + slot::RX_TAIL)?;
    if ring_read(cl.region(), l.rx_off(s.0), l.config.rx_buf as usize, tail, &mut buf[..n]) {
        Ok(n)
    } else {
        Err(Errno::NETDOWN)
    }
}

fn load64(r: &joyride_ipc::Region, off: usize) -> Res<u64> {
    r.atomic_u64(off).map(|w| w.load(Ordering::Acquire)).ok_or(Errno::NETDOWN)
}

fn store64(r: &joyride_ipc::Region, off: usize, v: u64) -> Res<()> {
    r.atomic_u64(off).map(|w| w.store(v, Ordering::Release)).ok_or(Errno::NETDOWN)
}

/// One datagram out of the rx ring: a 32-byte record header (u32 length, 28-byte address),
/// the payload, padding to 8 bytes.
fn recv_dgram(s: &SockRef, buf: &mut [u8], flags: i32) -> Res<(usize, Option<SockAddr>)> {
    let c = conn()?;
    let deadline = Deadline::after(timeout_of(s.rcvtimeo_us.load(Ordering::Relaxed)));
    loop {
        let v = c.view().slot(s.idx());
        if v.rx_avail >= DGRAM_HDR as u64 {
            return take_datagram(c, s.idx(), buf, flags);
        }
        if let Some(e) = take_error(s, &v) {
            return Err(e);
        }
        if s.has(flag::SHUT_RD) {
            return Ok((0, None));
        }
        if nonblocking(s, flags) {
            return Err(Errno::AGAIN);
        }
        want_data(c, s);
        match wait_for(s, deadline, |e, v| v.rx_avail >= DGRAM_HDR as u64 || e & ERR != 0)? {
            Woke::TimedOut => return Err(Errno::AGAIN),
            Woke::Check => {}
        }
    }
}

fn take_datagram(
    c: &Conn,
    s: SocketIndex,
    buf: &mut [u8],
    flags: i32,
) -> Res<(usize, Option<SockAddr>)> {
    let mut cl = c.client();
    let l = *cl.layout();
    let cap = l.config.rx_buf as usize;
    let base = l.slot_off(s.0);
    let tail = load64(cl.region(), base + slot::RX_TAIL)?;
    let mut hdr = [0u8; DGRAM_HDR];
    if !ring_read(cl.region(), l.rx_off(s.0), cap, tail, &mut hdr) {
        return Err(Errno::NETDOWN);
    }
    let len = u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]) as usize;
    let total = DGRAM_HDR + len.div_ceil(8) * 8;
    if total as u64 > cl.rx_available(s)? as u64 {
        return Err(Errno::NETDOWN); // a record the service did not finish writing: corrupt
    }
    let n = len.min(buf.len());
    if !ring_read(cl.region(), l.rx_off(s.0), cap, tail + DGRAM_HDR as u64, &mut buf[..n]) {
        return Err(Errno::NETDOWN);
    }
    let from = addr_from_record(&hdr[4..]);
    if flags & libc::MSG_PEEK == 0 {
        cl.submit(&Command::RecvWindow { sock: s, consumed: total as u32 })?;
        store64(cl.region(), base + slot::RX_TAIL, tail + total as u64)?;
    }
    let reported = if flags & libc::MSG_TRUNC != 0 { len } else { n };
    Ok((reported, from))
}

fn addr_from_record(b: &[u8]) -> Option<SockAddr> {
    let family = u16::from_le_bytes([b[0], b[1]]);
    let port = u16::from_le_bytes([b[2], b[3]]);
    (i32::from(family) == libc::AF_INET)
        .then(|| SockAddr::V4 { addr: [b[8], b[9], b[10], b[11]], port })
}

/// `send`/`sendto`/`write`: bytes accepted. `EPIPE` raises `SIGPIPE` unless `MSG_NOSIGNAL`.
pub(crate) fn send(s: &SockRef, data: &[u8], flags: i32, dest: Option<SockAddr>) -> Res<usize> {
    let r = send_inner(s, data, flags, dest);
    if r == Err(Errno::PIPE) && flags & libc::MSG_NOSIGNAL == 0 {
        sys::raise_sigpipe();
    }
    r
}

fn send_inner(s: &SockRef, data: &[u8], flags: i32, dest: Option<SockAddr>) -> Res<usize> {
    if flags & libc::MSG_OOB != 0 && s.has(flag::DGRAM) {
        return Err(Errno::OPNOTSUPP);
    }
    if s.has(flag::DGRAM) {
        return send_dgram(s, data, flags, dest);
    }
    let c = conn()?;
    {
        let v = c.view().slot(s.idx());
        settle_connect(s, &v);
    }
    if !(s.has(flag::CONNECTED) || s.has(flag::CONNECTING)) {
        return Err(Errno::PIPE);
    }
    let mut sf = SendFlags::empty();
    if flags & libc::MSG_MORE != 0 {
        sf = sf.union(SendFlags::MORE);
    }
    if flags & libc::MSG_OOB != 0 {
        sf = sf.union(SendFlags::OOB);
    }
    let deadline = Deadline::after(timeout_of(s.sndtimeo_us.load(Ordering::Relaxed)));
    let mut sent = 0usize;
    loop {
        let v = c.view().slot(s.idx());
        if let Some(e) = take_error(s, &v) {
            return if sent > 0 { Ok(sent) } else { Err(e) };
        }
        if s.has(flag::SHUT_WR) || v.ready & HUP != 0 {
            return if sent > 0 { Ok(sent) } else { Err(Errno::PIPE) };
        }
        c.alive().map_err(|_| Errno::PIPE)?;
        if sent == data.len() {
            return Ok(sent);
        }
        if v.tx_space > 0 && !s.has(flag::CONNECTING) {
            match c.client().send(s.idx(), &data[sent..], sf) {
                Ok(n) => sent += n,
                Err(joyride_ipc::ClientError::Full) => {}
                Err(e) => return Err(e.into()),
            }
            if sent == data.len() {
                return Ok(sent);
            }
        }
        if nonblocking(s, flags) {
            return if sent > 0 { Ok(sent) } else { Err(Errno::AGAIN) };
        }
        let r = c.block(&mut Vec::new(), deadline, None, || {
            let v = c.view().slot(s.idx());
            (v.tx_space > 0 && v.ready & OUT != 0)
                || v.ready & (HUP | ERR) != 0
                || pending_error(s, &v).is_some()
        });
        match r {
            Ok(Woke::TimedOut) => return if sent > 0 { Ok(sent) } else { Err(Errno::AGAIN) },
            Ok(Woke::Check) => {}
            Err(Errno::INTR) if sent > 0 => return Ok(sent),
            Err(Errno::INTR) if conn::restart(deadline.is_some()) => {}
            Err(e) => return Err(e),
        }
    }
}

/// One datagram into the tx ring and a `Send{len, dest}`.
fn send_dgram(s: &SockRef, data: &[u8], flags: i32, dest: Option<SockAddr>) -> Res<usize> {
    let c = conn()?;
    if dest.is_none() && !s.has(flag::CONNECTED) {
        return Err(Errno::DESTADDRREQ);
    }
    if data.len() > UDP_MAX || data.len() > c.layout().config.tx_buf as usize {
        return Err(Errno::MSGSIZE);
    }
    if s.has(flag::SHUT_WR) {
        return Err(Errno::PIPE);
    }
    let deadline = Deadline::after(timeout_of(s.sndtimeo_us.load(Ordering::Relaxed)));
    loop {
        let v = c.view().slot(s.idx());
        if let Some(e) = take_error(s, &v) {
            return Err(e);
        }
        if v.tx_space >= data.len() as u64 {
            let mut cl = c.client();
            let l = *cl.layout();
            let idx = s.idx();
            let off = l.slot_off(idx.0) + slot::TX_HEAD;
            let head = load64(cl.region(), off)?;
            let cap = l.config.tx_buf as usize;
            if !ring_write(cl.region(), l.tx_off(idx.0), cap, head, data) {
                return Err(Errno::NETDOWN);
            }
            let cmd = Command::Send {
                sock: idx,
                len: data.len() as u32,
                flags: SendFlags::empty(),
                dest,
            };
            match cl.submit(&cmd) {
                Ok(_) => {
                    store64(cl.region(), off, head + data.len() as u64)?;
                    return Ok(data.len());
                }
                Err(joyride_ipc::ClientError::Full) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if nonblocking(s, flags) {
            return Err(Errno::AGAIN);
        }
        let n = data.len() as u64;
        match wait_for(s, deadline, |e, v| v.tx_space >= n || e & ERR != 0)? {
            Woke::TimedOut => return Err(Errno::AGAIN),
            Woke::Check => {}
        }
    }
}

/// Bytes readable now (`FIONREAD`): the stream bytes queued, or the next datagram's size.
pub(crate) fn readable_bytes(s: &SockRef) -> Res<usize> {
    let c = conn()?;
    if s.has(flag::LISTENING) {
        return Err(Errno::INVAL);
    }
    if !s.has(flag::DGRAM) {
        return Ok(c.view().slot(s.idx()).rx_avail as usize);
    }
    let cl = c.client();
    if cl.rx_available(s.idx())? < DGRAM_HDR {
        return Ok(0);
    }
    let l = cl.layout();
    let tail = load64(cl.region(), l.slot_off(s.idx().0) + slot::RX_TAIL)?;
    let mut hdr = [0u8; 4];
    ring_read(cl.region(), l.rx_off(s.idx().0), l.config.rx_buf as usize, tail, &mut hdr);
    Ok(u32::from_le_bytes(hdr) as usize)
}

// ---- options ------------------------------------------------------------------------------

fn level(l: i32) -> Res<OptLevel> {
    match l {
        libc::SOL_SOCKET => Ok(OptLevel::Socket),
        libc::IPPROTO_IP => Ok(OptLevel::Ip),
        libc::IPPROTO_TCP => Ok(OptLevel::Tcp),
        libc::IPPROTO_IPV6 => Ok(OptLevel::Ipv6),
        _ => Err(Errno::NOPROTOOPT),
    }
}

fn is_timeo(level: i32, name: i32) -> Option<bool> {
    const RCV_NEW: i32 = 66; // SO_RCVTIMEO_NEW: same layout as the old one on 64-bit
    const SND_NEW: i32 = 67;
    if level != libc::SOL_SOCKET {
        return None;
    }
    match name {
        libc::SO_RCVTIMEO | RCV_NEW => Some(true),
        libc::SO_SNDTIMEO | SND_NEW => Some(false),
        _ => None,
    }
}

/// `setsockopt` with the value's bytes.
pub(crate) fn setsockopt(s: &SockRef, lvl: i32, name: i32, val: &[u8]) -> Res<()> {
    if let Some(rcv) = is_timeo(lvl, name) {
        if val.len() < 16 {
            return Err(Errno::INVAL);
        }
        let sec = i64::from_ne_bytes(val[0..8].try_into().map_err(|_| Errno::INVAL)?);
        let usec = i64::from_ne_bytes(val[8..16].try_into().map_err(|_| Errno::INVAL)?);
        if !(0..1_000_000).contains(&usec) {
            return Err(Errno::DOM);
        }
        // Linux: negative seconds mean "return at once" (stored as 1 µs here), zero "never".
        let us = if sec < 0 {
            1
        } else {
            (sec as u64).saturating_mul(1_000_000).saturating_add(usec as u64)
        };
        let slot = if rcv { &s.rcvtimeo_us } else { &s.sndtimeo_us };
        slot.store(us, Ordering::Relaxed);
        return Ok(());
    }
    let opt = SockOpt { level: level(lvl)?, name: name as u32 };
    let value = OptValue::new(val).ok_or(Errno::INVAL)?;
    call(&Command::SetOpt { sock: s.idx(), opt, value }).map(drop)
}

fn int_bytes(v: i32) -> Vec<u8> {
    v.to_ne_bytes().to_vec()
}

/// `getsockopt`: the value's bytes (the caller truncates to the user's length).
pub(crate) fn getsockopt(s: &SockRef, lvl: i32, name: i32, max: usize) -> Res<Vec<u8>> {
    if let Some(rcv) = is_timeo(lvl, name) {
        let us = if rcv { &s.rcvtimeo_us } else { &s.sndtimeo_us }.load(Ordering::Relaxed);
        let mut b = (us / 1_000_000).to_ne_bytes().to_vec();
        b.extend_from_slice(&(us % 1_000_000).to_ne_bytes());
        return Ok(b);
    }
    if lvl == libc::SOL_SOCKET {
        match name {
            libc::SO_TYPE => {
                let t = if s.has(flag::DGRAM) { libc::SOCK_DGRAM } else { libc::SOCK_STREAM };
                return Ok(int_bytes(t));
            }
            libc::SO_DOMAIN => return Ok(int_bytes(libc::AF_INET)),
            libc::SO_PROTOCOL => {
                let p = if s.has(flag::DGRAM) { libc::IPPROTO_UDP } else { libc::IPPROTO_TCP };
                return Ok(int_bytes(p));
            }
            libc::SO_ACCEPTCONN => return Ok(int_bytes(i32::from(s.has(flag::LISTENING)))),
            libc::SO_ERROR => {
                let (_, v) = events_and_slot(s);
                let e = take_error(s, &v).map_or(0, |e| e.0);
                return Ok(int_bytes(e));
            }
            _ => {}
        }
    }
    if lvl == libc::IPPROTO_TCP && name == libc::TCP_INFO && !s.has(flag::DGRAM) {
        // `struct tcp_info`: the state (Linux TCP_* numbering, as the service publishes it)
        // and the queue sizes the shim knows; counters the service does not export are 0.
        let mut b = vec![0u8; std::mem::size_of::<libc::tcp_info>()];
        let (_, v) = events_and_slot(s);
        b[0] = v.state as u8;
        return Ok(b);
    }
    let opt = SockOpt { level: level(lvl)?, name: name as u32 };
    let max_len = max.min(joyride_ipc::OPT_MAX) as u8;
    match call(&Command::GetOpt { sock: s.idx(), opt, max_len })?.payload {
        Payload::Opt(v) => Ok(v.as_bytes().to_vec()),
        _ => Err(Errno::IO),
    }
}

// ---- descriptor control ----------------------------------------------------------------------

/// `fcntl` on a Joyride fd. `Ok(None)`: let the kernel do it on the backing eventfd (and
/// record nothing).
pub(crate) fn fcntl(fd: RawFd, s: &SockRef, cmd: i32, arg: u64) -> Res<Option<i32>> {
    match cmd {
        libc::F_GETFL => {
            let mut fl = libc::O_RDWR;
            if s.has(flag::NONBLOCK) {
                fl |= libc::O_NONBLOCK;
            }
            Ok(Some(fl))
        }
        libc::F_SETFL => {
            let nb = arg as i32 & libc::O_NONBLOCK != 0;
            set_nonblocking(fd, s, nb)?;
            Ok(Some(0))
        }
        libc::F_DUPFD | libc::F_DUPFD_CLOEXEC => {
            let new = sys::fcntl_int(fd, cmd, arg as i32)?;
            fdtable::install(new, s).inspect_err(|_| {
                let _ = sys::close(new);
            })?;
            Ok(Some(new))
        }
        _ => Ok(None),
    }
}

/// `O_NONBLOCK` on the description (mirrored onto the eventfd so `F_GETFL` from anything that
/// bypasses the shim agrees).
pub(crate) fn set_nonblocking(fd: RawFd, s: &Sock, on: bool) -> Res<()> {
    if on {
        s.set(flag::NONBLOCK);
    } else {
        s.clear(flag::NONBLOCK);
    }
    let fl = sys::fcntl_int(fd, libc::F_GETFL, 0)?;
    let fl = if on { fl | libc::O_NONBLOCK } else { fl & !libc::O_NONBLOCK };
    sys::fcntl_int(fd, libc::F_SETFL, fl).map(drop)
}

/// `dup`/`dup2`/`dup3`/`F_DUPFD` bookkeeping after the kernel made `new` a copy of `old`.
pub(crate) fn dup_installed(old: &Route2, new: RawFd) -> Res<()> {
    match old {
        Route2::Sock(s) => fdtable::install(new, s),
        Route2::Kernel => {
            drop(fdtable::forget(new));
            Ok(())
        }
    }
}

/// What a `dup` source was.
#[derive(Debug)]
pub(crate) enum Route2 {
    /// A Joyride socket.
    Sock(SockRef),
    /// Anything else.
    Kernel,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sin(family: u16, port: u16, addr: [u8; 4]) -> Vec<u8> {
        let mut b = vec![0u8; 16];
        b[0..2].copy_from_slice(&family.to_ne_bytes());
        b[2..4].copy_from_slice(&port.to_be_bytes());
        b[4..8].copy_from_slice(&addr);
        b
    }

    #[test]
    fn addresses_parse_with_linux_checks() {
        let a = sin(libc::AF_INET as u16, 8080, [127, 0, 0, 1]);
        assert_eq!(parse_addr(&a, false), Ok(SockAddr::V4 { addr: [127, 0, 0, 1], port: 8080 }));
        assert_eq!(parse_addr(&a[..15], false), Err(Errno::INVAL));
        let six = sin(libc::AF_INET6 as u16, 1, [0; 4]);
        assert_eq!(parse_addr(&six, true), Err(Errno::AFNOSUPPORT));
        // bind accepts AF_UNSPEC only with INADDR_ANY; connect never.
        let unspec = sin(libc::AF_UNSPEC as u16, 9, [0; 4]);
        assert_eq!(parse_addr(&unspec, true), Ok(SockAddr::V4 { addr: [0; 4], port: 9 }));
        assert_eq!(parse_addr(&unspec, false), Err(Errno::AFNOSUPPORT));
        let unspec_lo = sin(libc::AF_UNSPEC as u16, 9, [127, 0, 0, 1]);
        assert_eq!(parse_addr(&unspec_lo, true), Err(Errno::AFNOSUPPORT));
    }

    #[test]
    fn addresses_encode_as_sockaddr_in() {
        let (b, n) = encode_addr(&SockAddr::V4 { addr: [10, 1, 2, 3], port: 443 });
        assert_eq!(n, 16);
        assert_eq!(parse_addr(&b[..n], false), Ok(SockAddr::V4 { addr: [10, 1, 2, 3], port: 443 }));
        assert!(b[8..16].iter().all(|&x| x == 0), "sin_zero");
        let v6 = SockAddr::V6 { addr: [1; 16], port: 80, flowinfo: 0, scope_id: 3 };
        assert_eq!(encode_addr(&v6).1, 28);
    }
}
