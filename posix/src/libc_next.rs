//! The one `dlsym(RTLD_NEXT)` table: the real libc functions behind every symbol the shim
//! interposes, plus the handful of plain system calls the shim itself makes (eventfds, `ppoll`,
//! `epoll_wait`, signals, the clock). This module and `abi/` are the only places with `unsafe`.
//!
//! Each entry is resolved on first use and cached in an `AtomicPtr` (no allocation, no lock, so
//! it works before `main` and inside other libraries' constructors). A symbol that cannot be
//! resolved makes the call fail with `ENOSYS` instead of crashing.
//!
//! The raw entries (`next::*`) keep the C signature and are `unsafe fn`s used by `abi/` for
//! pass-through. Below them, safe wrappers over slices and values serve the rest of the crate.
#![allow(unsafe_code)]

use crate::errno::{Errno, Res};
use libc::{c_int, c_void, epoll_event, pollfd, sigset_t};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::time::Duration;

/// Looks `name` (NUL-terminated) up in the libraries after ours, caching it in `slot`.
fn resolve(slot: &AtomicPtr<c_void>, name: &'static [u8]) -> *mut c_void {
    let p = slot.load(Ordering::Relaxed);
    if !p.is_null() {
        return p;
    }
    // SAFETY: `name` is a NUL-terminated static byte string (built by `concat!` below);
    // `dlsym` with RTLD_NEXT only reads it and returns a symbol address or null.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    slot.store(p, Ordering::Relaxed);
    p
}

fn enosys() {
    set_errno(Errno::NOSYS);
}

macro_rules! next_fns {
    ($( $name:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty ; )*) => {
        /// Raw pointers to the next definitions of the interposed functions.
        pub(crate) mod next {
            use super::*;
            $(
                #[doc = concat!("The real `", stringify!($name), "`.")]
                ///
                /// # Safety
                /// Exactly the contract of the C function of the same name.
                pub(crate) unsafe fn $name($($arg: $ty),*) -> $ret {
                    static SLOT: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
                    let p = resolve(&SLOT, concat!(stringify!($name), "\0").as_bytes());
                    if p.is_null() {
                        enosys();
                        return -1 as $ret;
                    }
                    // SAFETY: `p` is the address of the C function `$name`, whose signature is
                    // the one written in this table (checked against the glibc headers).
                    let f: unsafe extern "C" fn($($ty),*) -> $ret = unsafe { std::mem::transmute(p) };
                    // SAFETY: forwarded under the caller's contract.
                    unsafe { f($($arg),*) }
                }
            )*
        }
    };
}

use libc::{iovec, msghdr, nfds_t, off_t, size_t, sockaddr, socklen_t, ssize_t, timespec, timeval};

next_fns! {
    socket(domain: c_int, ty: c_int, proto: c_int) -> c_int;
    bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    listen(fd: c_int, backlog: c_int) -> c_int;
    accept4(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t, flags: c_int) -> c_int;
    connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int;
    getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int;
    shutdown(fd: c_int, how: c_int) -> c_int;
    close(fd: c_int) -> c_int;
    read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t;
    write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t;
    readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t;
    writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t;
    send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t;
    recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t;
    sendto(fd: c_int, buf: *const c_void, n: size_t, flags: c_int, addr: *const sockaddr, len: socklen_t) -> ssize_t;
    recvfrom(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> ssize_t;
    sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t;
    recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t;
    setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_void, len: socklen_t) -> c_int;
    getsockopt(fd: c_int, level: c_int, name: c_int, val: *mut c_void, len: *mut socklen_t) -> c_int;
    dup(fd: c_int) -> c_int;
    dup2(fd: c_int, to: c_int) -> c_int;
    dup3(fd: c_int, to: c_int, flags: c_int) -> c_int;
    epoll_create(size: c_int) -> c_int;
    epoll_create1(flags: c_int) -> c_int;
    epoll_ctl(epfd: c_int, op: c_int, fd: c_int, ev: *mut epoll_event) -> c_int;
    epoll_wait(epfd: c_int, ev: *mut epoll_event, max: c_int, timeout: c_int) -> c_int;
    epoll_pwait(epfd: c_int, ev: *mut epoll_event, max: c_int, timeout: c_int, mask: *const sigset_t) -> c_int;
    poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int;
    ppoll(fds: *mut pollfd, n: nfds_t, ts: *const timespec, mask: *const sigset_t) -> c_int;
    select(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, tv: *mut timeval) -> c_int;
    pselect(n: c_int, r: *mut libc::fd_set, w: *mut libc::fd_set, e: *mut libc::fd_set, ts: *const timespec, mask: *const sigset_t) -> c_int;
    sendfile(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t;
    sendfile64(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t;
    __read_chk(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t) -> ssize_t;
    __recv_chk(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t, flags: c_int) -> ssize_t;
    __recvfrom_chk(fd: c_int, buf: *mut c_void, n: size_t, buflen: size_t, flags: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> ssize_t;
    __poll_chk(fds: *mut pollfd, n: nfds_t, timeout: c_int, fdslen: size_t) -> c_int;
    __ppoll_chk(fds: *mut pollfd, n: nfds_t, ts: *const timespec, mask: *const sigset_t, fdslen: size_t) -> c_int;
    close_range(first: libc::c_uint, last: libc::c_uint, flags: c_int) -> c_int;
}

/// The variadic entries (`fcntl`, `ioctl`): the shim exports them with a fixed third argument
/// (see `abi/io.rs` for why that is ABI-safe on x86_64) and calls the real ones variadically.
pub(crate) mod variadic {
    use super::*;
    static FCNTL: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
    static FCNTL64: AtomicPtr<c_void> = AtomicPtr::new(null_mut());
    static IOCTL: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

    fn call_fcntl(p: *mut c_void, fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
        if p.is_null() {
            enosys();
            return -1;
        }
        // SAFETY: `p` is glibc's `fcntl`/`fcntl64`, declared `int (int, int, ...)`.
        let f: unsafe extern "C" fn(c_int, c_int, ...) -> c_int = unsafe { std::mem::transmute(p) };
        // SAFETY: the third argument is passed through as the caller gave it (an int or a
        // pointer, both one integer register); the kernel validates it.
        unsafe { f(fd, cmd, arg) }
    }

    /// The real `fcntl`.
    pub(crate) fn fcntl(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
        call_fcntl(resolve(&FCNTL, b"fcntl\0"), fd, cmd, arg)
    }

    /// The real `fcntl64`.
    pub(crate) fn fcntl64(fd: c_int, cmd: c_int, arg: libc::c_ulong) -> c_int {
        call_fcntl(resolve(&FCNTL64, b"fcntl64\0"), fd, cmd, arg)
    }

    /// The real `ioctl`.
    ///
    /// # Safety
    /// `arg` must be what `req` expects (often a pointer the kernel writes through).
    pub(crate) unsafe fn ioctl(fd: c_int, req: libc::c_ulong, arg: libc::c_ulong) -> c_int {
        let p = resolve(&IOCTL, b"ioctl\0");
        if p.is_null() {
            enosys();
            return -1;
        }
        // SAFETY: `p` is glibc's `int ioctl(int, unsigned long, ...)`.
        let f: unsafe extern "C" fn(c_int, libc::c_ulong, ...) -> c_int =
            unsafe { std::mem::transmute(p) };
        // SAFETY: forwarded under the caller's contract.
        unsafe { f(fd, req, arg) }
    }
}

// ---- errno -------------------------------------------------------------------------------

/// The calling thread's `errno`.
pub(crate) fn errno() -> Errno {
    // SAFETY: `__errno_location` has no preconditions.
    let p = unsafe { libc::__errno_location() };
    // SAFETY: it returns this thread's errno slot, always valid and aligned.
    Errno(unsafe { *p })
}

/// Sets the calling thread's `errno`.
pub(crate) fn set_errno(e: Errno) {
    // SAFETY: `__errno_location` has no preconditions.
    let p = unsafe { libc::__errno_location() };
    // SAFETY: this thread's errno slot; writing an int to it.
    unsafe { *p = e.0 };
}

fn cvt(r: c_int) -> Res<c_int> {
    if r < 0 {
        Err(errno())
    } else {
        Ok(r)
    }
}

// ---- safe wrappers the shim itself uses --------------------------------------------------

/// A new eventfd (the kernel fd that backs a Joyride socket, or a wake-up bell).
pub(crate) fn eventfd(cloexec: bool, nonblock: bool) -> Res<RawFd> {
    let mut flags = 0;
    if cloexec {
        flags |= libc::EFD_CLOEXEC;
    }
    if nonblock {
        flags |= libc::EFD_NONBLOCK;
    }
    // SAFETY: plain syscall with valid flags.
    cvt(unsafe { libc::eventfd(0, flags) })
}

/// Real `close` (never re-enters the shim's own `close`).
pub(crate) fn close(fd: RawFd) -> Res<()> {
    // SAFETY: closing a descriptor number; the caller owns it.
    cvt(unsafe { next::close(fd) }).map(drop)
}

/// Real `dup3`/`dup2` (flags 0 and `fd == to` handled by the caller).
pub(crate) fn dup3(fd: RawFd, to: RawFd, flags: c_int) -> Res<RawFd> {
    let r = if flags == 0 {
        // SAFETY: descriptor numbers only.
        unsafe { next::dup2(fd, to) }
    } else {
        // SAFETY: descriptor numbers only.
        unsafe { next::dup3(fd, to, flags) }
    };
    cvt(r)
}

/// Real `dup`.
pub(crate) fn dup(fd: RawFd) -> Res<RawFd> {
    // SAFETY: descriptor numbers only.
    cvt(unsafe { next::dup(fd) })
}

/// Real `fcntl` with an integer argument.
pub(crate) fn fcntl_int(fd: RawFd, cmd: c_int, arg: c_int) -> Res<c_int> {
    cvt(variadic::fcntl(fd, cmd, arg as libc::c_ulong))
}

/// Adds one to an eventfd counter (a saturated counter is already "rung").
pub(crate) fn ring(fd: RawFd) {
    add(fd, 1);
}

/// Adds `v` to an eventfd counter.
pub(crate) fn add(fd: RawFd, v: u64) {
    let b = v.to_ne_bytes();
    // SAFETY: writes 8 bytes from a live local buffer.
    let _ = unsafe { next::write(fd, b.as_ptr().cast(), 8) };
}

/// Resets an eventfd counter without blocking (the fd must be non-blocking); true if it was set.
pub(crate) fn drain(fd: RawFd) -> bool {
    let mut b = [0u8; 8];
    // SAFETY: reads at most 8 bytes into a live local buffer.
    unsafe { next::read(fd, b.as_mut_ptr().cast(), 8) == 8 }
}

fn timespec_of(d: Duration) -> timespec {
    timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos()),
    }
}

/// Real `ppoll` over `fds` (`None`: no timeout), with the caller's signal mask if any.
pub(crate) fn ppoll(
    fds: &mut [pollfd],
    t: Option<Duration>,
    mask: Option<&sigset_t>,
) -> Res<usize> {
    let ts = t.map(timespec_of);
    let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const timespec);
    let mp = mask.map_or(std::ptr::null(), |m| m as *const sigset_t);
    // SAFETY: `fds` is a live, writable slice of `pollfd`; `tsp`/`mp` are null or point at live
    // values for the duration of the call.
    cvt(unsafe { next::ppoll(fds.as_mut_ptr(), fds.len() as nfds_t, tsp, mp) }).map(|n| n as usize)
}

/// Real `epoll_ctl`; `ev` is `None` for `EPOLL_CTL_DEL`.
pub(crate) fn epoll_ctl(epfd: RawFd, op: c_int, fd: RawFd, ev: Option<epoll_event>) -> Res<()> {
    let mut ev = ev;
    let p = ev.as_mut().map_or(null_mut(), |e| e as *mut epoll_event);
    // SAFETY: `p` is null (DEL) or points at a live local event.
    cvt(unsafe { next::epoll_ctl(epfd, op, fd, p) }).map(drop)
}

/// Real `epoll_wait` with a zero timeout into `out`.
pub(crate) fn epoll_harvest(epfd: RawFd, out: &mut [epoll_event]) -> Res<usize> {
    if out.is_empty() {
        return Ok(0);
    }
    let max = c_int::try_from(out.len()).unwrap_or(c_int::MAX);
    // SAFETY: `out` is a live, writable slice of at least `max` events.
    cvt(unsafe { next::epoll_wait(epfd, out.as_mut_ptr(), max, 0) }).map(|n| n as usize)
}

/// Real `read` into a slice.
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> Res<usize> {
    // SAFETY: `buf` is live and writable for its length.
    let n = unsafe { next::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// `pread` into a slice.
pub(crate) fn pread(fd: RawFd, buf: &mut [u8], off: i64) -> Res<usize> {
    // SAFETY: `buf` is live and writable for its length.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// Sends `SIGPIPE` to the calling thread, as Linux does on a write to a broken stream.
pub(crate) fn raise_sigpipe() {
    // SAFETY: `raise` delivers a signal to the calling thread.
    unsafe { libc::raise(libc::SIGPIPE) };
}

/// Whether every signal with a handler installed has `SA_RESTART` (see `conn::restart`).
pub(crate) fn all_handlers_restart() -> bool {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: all-zero is a valid `sigaction` (plain integers and a null handler).
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: querying (new action null) into a live local struct.
        if unsafe { libc::sigaction(sig, std::ptr::null(), &mut sa) } != 0 {
            continue;
        }
        let h = sa.sa_sigaction;
        if h != libc::SIG_DFL && h != libc::SIG_IGN && sa.sa_flags & libc::SA_RESTART == 0 {
            return false;
        }
    }
    true
}

/// Connects a Unix stream socket to `path` with the real `socket`/`connect`.
pub(crate) fn unix_connect(path: &[u8]) -> Res<OwnedFd> {
    // SAFETY: all-zero is a valid `sockaddr_un`.
    let mut sa: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if path.is_empty() || path.len() >= sa.sun_path.len() || path.contains(&0) {
        return Err(Errno::NAMETOOLONG);
    }
    sa.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in sa.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    // SAFETY: plain syscall.
    let fd =
        cvt(unsafe { next::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: `fd` was just created and is owned by nothing else.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let len = std::mem::size_of::<libc::sockaddr_un>() as socklen_t;
    // SAFETY: `sa` is a live, initialised `sockaddr_un` of `len` bytes.
    cvt(unsafe { next::connect(fd, (&sa as *const libc::sockaddr_un).cast(), len) })?;
    Ok(owned)
}

/// The process whose memory this is: set at load and in a forked child.
static OWNER: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Records the calling process as the owner of the shim's state (load time, forked child).
pub(crate) fn note_owner() {
    // SAFETY: plain syscall.
    OWNER.store(unsafe { libc::getpid() }, std::sync::atomic::Ordering::Relaxed);
}

/// True in a child that runs in its parent's memory (`vfork`, or the `clone(CLONE_VM)` of
/// `posix_spawn` and Python's `subprocess`) until it execs: the fd table there is the
/// parent's, so its `close`/`dup2` must reach the kernel only (the new image claims what it
/// inherits from the kernel fds' marks).
pub(crate) fn in_vfork_child() -> bool {
    let owner = OWNER.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: plain syscall.
    owner != 0 && owner != unsafe { libc::getpid() }
}

/// Registers fork handlers (`pthread_atfork`; it fails only for lack of memory, which the
/// shim's first `socket()` cannot survive anyway).
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: the handlers are plain `extern "C" fn()` that live as long as the library (it is
    // never unloaded: LD_PRELOAD objects stay until exit).
    let _ = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}

/// Writes `msg` to standard error with the real `write` (no allocation, no locks).
pub(crate) fn stderr(msg: &[u8]) {
    // SAFETY: writes from a live slice.
    let _ = unsafe { next::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// An empty signal set check helper: true if `fd` reports `POLLHUP`/`POLLERR` right now.
pub(crate) fn hung_up(fd: RawFd) -> bool {
    let mut p = [pollfd { fd, events: libc::POLLIN, revents: 0 }];
    matches!(ppoll(&mut p, Some(Duration::ZERO), None), Ok(1))
        && p[0].revents & (libc::POLLHUP | libc::POLLERR) != 0
}
