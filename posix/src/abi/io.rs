//! Data and descriptor calls: `read`, `write`, `readv`, `writev`, `send`, `recv`, `sendto`,
//! `recvfrom`, `sendmsg`, `recvmsg`, `sendfile`, `close`, `close_range`, `dup`/`dup2`/`dup3`,
//! `fcntl`, `ioctl`, and the fortify variants `__read_chk`, `__recv_chk`, `__recvfrom_chk`.
//!
//! ## `fcntl`/`ioctl` without `c_variadic`
//! Their C prototypes are variadic (`int fcntl(int, int, ...)`); stable Rust cannot define a
//! variadic function, so the shim exports them with a fixed third argument `arg: c_ulong`. On
//! x86_64 (System V ABI) variadic arguments travel in exactly the registers named arguments
//! would (`rdi`, `rsi`, `rdx`); the only extra is `al` = number of vector registers used,
//! which a non-variadic callee ignores. So the third argument, whether the caller passed an
//! `int`, a pointer or nothing, is whatever is in `rdx`: the shim reads it only for commands
//! that take one, truncates it to `int` for int commands (the upper half of `rdx` is undefined
//! after an `int`), and passes it on unchanged to the real (variadic) function otherwise.
//! The same holds on aarch64 Linux (AAPCS64 passes variadic arguments in `x0`–`x7` like named
//! ones; Apple's variant differs, but this is a Linux shim).

use super::{bytes, bytes_mut, edge, read_addr, to_ssize, write_addr};
use crate::errno::{Errno, Res};
use crate::fdtable::{self, route, Route, SockRef};
use crate::libc_next::{self as sys, next, variadic};
use crate::socket::{self, Route2};
use libc::{c_int, c_ulong, c_void, iovec, msghdr, off_t, size_t, sockaddr, socklen_t, ssize_t};

/// `SIOCATMARK` (`<linux/sockios.h>`): "at the urgent-data mark?".
const SIOCATMARK: c_ulong = 0x8905;

extern "C" {
    /// glibc's fortify failure ("buffer overflow detected"); never returns.
    fn __chk_fail() -> !;
}

/// `read(2)`.
///
/// # Safety
/// `buf` must point at `n` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: size_t) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract.
            let v = unsafe { recv_buf(&s, buf, n, 0) };
            recv_into(&s, v?, 0)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::read(fd, buf, n) },
    }
}

fn recv_into(s: &SockRef, b: &mut [u8], flags: c_int) -> Res<ssize_t> {
    socket::recv(s, b, flags).map(|(n, _)| to_ssize(n))
}

/// A receive buffer: like Linux, a NULL buffer only faults once there is data to copy (a
/// non-blocking receive with nothing queued is `EAGAIN`, not `EFAULT`).
///
/// # Safety
/// As [`bytes_mut`].
unsafe fn recv_buf<'a>(
    s: &SockRef,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
) -> Res<&'a mut [u8]> {
    if buf.is_null() && n > 0 {
        return Err(socket::null_buffer_error(s, flags));
    }
    // SAFETY: caller's contract.
    unsafe { bytes_mut(buf, n) }
}

/// `write(2)`.
///
/// # Safety
/// `buf` must point at `n` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: size_t) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract.
            let v = unsafe { bytes(buf, n) };
            socket::send(&s, v?, 0, None).map(to_ssize)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::write(fd, buf, n) },
    }
}

/// `recv(2)`.
///
/// # Safety
/// `buf` must point at `n` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract.
            let v = unsafe { recv_buf(&s, buf, n, flags) };
            recv_into(&s, v?, flags)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::recv(fd, buf, n, flags) },
    }
}

/// `send(2)`.
///
/// # Safety
/// `buf` must point at `n` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract.
            let v = unsafe { bytes(buf, n) };
            socket::send(&s, v?, flags, None).map(to_ssize)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::send(fd, buf, n, flags) },
    }
}

/// `sendto(2)`.
///
/// # Safety
/// `buf` must point at `n` readable bytes; `addr` null or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn sendto(
    fd: c_int,
    buf: *const c_void,
    n: size_t,
    flags: c_int,
    addr: *const sockaddr,
    len: socklen_t,
) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract.
            let data = unsafe { bytes(buf, n) }?;
            // Linux ignores the address of a sendto on a stream socket.
            let dest = if addr.is_null() || !s.has(crate::fdtable::flag::DGRAM) {
                None
            } else {
                // SAFETY: caller's contract.
                Some(unsafe { read_addr(addr, len, false) }?)
            };
            socket::send(&s, data, flags, dest).map(to_ssize)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::sendto(fd, buf, n, flags, addr, len) },
    }
}

/// `recvfrom(2)`.
///
/// # Safety
/// `buf` must point at `n` writable bytes; `addr`/`len` as for `accept`.
#[no_mangle]
pub unsafe extern "C" fn recvfrom(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract.
            let b = unsafe { recv_buf(&s, buf, n, flags) }?;
            let (k, from) = socket::recv(&s, b, flags)?;
            if let Some(a) = from {
                // SAFETY: caller's contract.
                unsafe { write_addr(addr, len, &a) }?;
            } else if !addr.is_null() && !len.is_null() {
                // A stream socket reports no address (length 0), as Linux does.
                // SAFETY: caller's contract.
                unsafe { len.write(0) };
            }
            Ok(to_ssize(k))
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::recvfrom(fd, buf, n, flags, addr, len) },
    }
}

/// Copies the iovec array out.
///
/// # Safety
/// `iov` must point at `cnt` valid `iovec`s.
unsafe fn iovecs<'a>(iov: *const iovec, cnt: usize) -> Res<&'a [iovec]> {
    if cnt > 1024 {
        return Err(Errno::INVAL); // UIO_MAXIOV
    }
    if cnt == 0 {
        return Ok(&[]);
    }
    if iov.is_null() {
        return Err(Errno::FAULT);
    }
    // SAFETY: non-null, `cnt` valid entries per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(iov, cnt) })
}

/// Gathers the iovecs' bytes into one buffer (one datagram, or one stream write).
///
/// # Safety
/// Each iovec must describe readable memory.
unsafe fn gather(iov: &[iovec]) -> Res<Vec<u8>> {
    let mut v = Vec::new();
    for e in iov {
        // SAFETY: caller's contract for each iovec.
        v.extend_from_slice(unsafe { bytes(e.iov_base, e.iov_len) }?);
    }
    Ok(v)
}

/// Scatters `data` over the iovecs.
///
/// # Safety
/// Each iovec must describe writable memory.
unsafe fn scatter(iov: &[iovec], mut data: &[u8]) -> Res<()> {
    for e in iov {
        if data.is_empty() {
            break;
        }
        let k = e.iov_len.min(data.len());
        // SAFETY: caller's contract for each iovec.
        unsafe { bytes_mut(e.iov_base, k) }?.copy_from_slice(&data[..k]);
        data = &data[k..];
    }
    Ok(())
}

fn iov_total(iov: &[iovec]) -> Res<usize> {
    iov.iter()
        .try_fold(0usize, |a, e| a.checked_add(e.iov_len))
        .filter(|&t| t <= isize::MAX as usize)
        .ok_or(Errno::INVAL)
}

/// Largest temporary buffer one vectored receive uses (a stream read may return less).
const VEC_RECV_MAX: usize = 4 << 20;

/// A vectored receive: returns (the call's result, source, whether a datagram was truncated).
///
/// # Safety
/// `iov` must point at `cnt` iovecs describing writable memory.
unsafe fn recv_vec(
    s: &SockRef,
    iov: *const iovec,
    cnt: c_int,
    flags: c_int,
) -> Res<(usize, Option<joyride_ipc::SockAddr>, bool)> {
    // SAFETY: caller's contract.
    let iov = unsafe { iovecs(iov, usize::try_from(cnt).map_err(|_| Errno::INVAL)?) }?;
    let total = iov_total(iov)?;
    let mut tmp = vec![0u8; total.min(VEC_RECV_MAX)];
    let dgram = s.has(crate::fdtable::flag::DGRAM);
    // For a datagram ask for its full length, to report truncation (MSG_TRUNC in msg_flags).
    let f = if dgram { flags | libc::MSG_TRUNC } else { flags };
    let (n, from) = socket::recv(s, &mut tmp, f)?;
    let copied = n.min(tmp.len());
    // SAFETY: caller's contract.
    unsafe { scatter(iov, &tmp[..copied]) }?;
    let ret = if dgram && flags & libc::MSG_TRUNC == 0 { copied } else { n };
    Ok((ret, from, dgram && n > copied))
}

/// `readv(2)`.
///
/// # Safety
/// `iov` must point at `cnt` iovecs describing writable memory.
#[no_mangle]
pub unsafe extern "C" fn readv(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract.
            let v = unsafe { recv_vec(&s, iov, cnt, 0) };
            v.map(|(n, _, _)| to_ssize(n))
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::readv(fd, iov, cnt) },
    }
}

/// `writev(2)`.
///
/// # Safety
/// `iov` must point at `cnt` iovecs describing readable memory.
#[no_mangle]
pub unsafe extern "C" fn writev(fd: c_int, iov: *const iovec, cnt: c_int) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract.
            let iov = unsafe { iovecs(iov, usize::try_from(cnt).map_err(|_| Errno::INVAL)?) }?;
            // SAFETY: caller's contract.
            let data = unsafe { gather(iov) }?;
            socket::send(&s, &data, 0, None).map(to_ssize)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::writev(fd, iov, cnt) },
    }
}

/// `sendmsg(2)` (control data is ignored: no ancillary message applies to these sockets yet).
///
/// # Safety
/// `msg` must point at a valid `msghdr` whose pointers obey `sendmsg`'s contract.
#[no_mangle]
pub unsafe extern "C" fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            if msg.is_null() {
                return Err(Errno::FAULT);
            }
            // SAFETY: non-null `msghdr` per the caller's contract; read by value.
            let m = unsafe { msg.read() };
            // SAFETY: caller's contract for the iovec array.
            let iov = unsafe { iovecs(m.msg_iov, m.msg_iovlen) }?;
            // SAFETY: caller's contract.
            let data = unsafe { gather(iov) }?;
            let dest = if m.msg_name.is_null() || !s.has(crate::fdtable::flag::DGRAM) {
                None
            } else {
                // SAFETY: caller's contract for `msg_name`/`msg_namelen`.
                Some(unsafe { read_addr(m.msg_name.cast(), m.msg_namelen, false) }?)
            };
            socket::send(&s, &data, flags, dest).map(to_ssize)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::sendmsg(fd, msg, flags) },
    }
}

/// `recvmsg(2)` (no control messages are produced: `msg_controllen` is set to 0).
///
/// # Safety
/// `msg` must point at a valid, writable `msghdr` whose pointers obey `recvmsg`'s contract.
#[no_mangle]
pub unsafe extern "C" fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) -> ssize_t {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            if msg.is_null() {
                return Err(Errno::FAULT);
            }
            // SAFETY: non-null `msghdr` per the caller's contract; read by value.
            let mut m = unsafe { msg.read() };
            // SAFETY: caller's contract.
            let (n, from, truncated) =
                unsafe { recv_vec(&s, m.msg_iov, m.msg_iovlen as c_int, flags) }?;
            m.msg_flags = if truncated { libc::MSG_TRUNC } else { 0 };
            m.msg_controllen = 0;
            match from {
                Some(a) if !m.msg_name.is_null() => {
                    let mut len = m.msg_namelen;
                    // SAFETY: caller's contract for `msg_name`/`msg_namelen`.
                    unsafe { write_addr(m.msg_name.cast(), &mut len, &a) }?;
                    m.msg_namelen = len;
                }
                _ => m.msg_namelen = 0,
            }
            // SAFETY: writing back the caller's `msghdr`.
            unsafe { msg.write(m) };
            Ok(to_ssize(n))
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::recvmsg(fd, msg, flags) },
    }
}

fn sendfile_into(s: &SockRef, inp: c_int, off: Option<&mut off_t>, n: usize) -> Res<ssize_t> {
    let mut buf = vec![0u8; n.min(1 << 16)];
    let mut done = 0usize;
    let mut pos = off.as_ref().map(|o| **o);
    while done < n {
        let want = (n - done).min(buf.len());
        let k = match pos {
            Some(p) => sys::pread(inp, &mut buf[..want], p)?,
            None => sys::read(inp, &mut buf[..want])?,
        };
        if k == 0 {
            break;
        }
        let sent = match socket::send(s, &buf[..k], 0, None) {
            Ok(m) => m,
            Err(e) if done > 0 && e == Errno::AGAIN => 0,
            Err(e) if done == 0 => return Err(e),
            Err(_) => 0,
        };
        done += sent;
        if let Some(p) = pos.as_mut() {
            *p += sent as off_t;
        }
        if sent < k {
            break; // non-blocking socket full: report what went
        }
    }
    if let (Some(o), Some(p)) = (off, pos) {
        *o = p;
    }
    Ok(to_ssize(done))
}

/// `sendfile(2)` to a Joyride socket: read from `inp`, send.
///
/// # Safety
/// `off` must be null or point at a valid `off_t`.
#[no_mangle]
pub unsafe extern "C" fn sendfile(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t {
    match (route(out), fdtable::is_ours(inp)) {
        (_, true) => edge(|| Err::<ssize_t, _>(Errno::INVAL)),
        (Route::Sock(s), false) => edge(|| {
            // SAFETY: `off` null or valid per the caller's contract.
            let v = unsafe { off.as_mut() };
            sendfile_into(&s, inp, v, n)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::sendfile(out, inp, off, n) },
    }
}

/// `sendfile64` (the same function on 64-bit Linux).
///
/// # Safety
/// As `sendfile`.
#[no_mangle]
pub unsafe extern "C" fn sendfile64(out: c_int, inp: c_int, off: *mut off_t, n: size_t) -> ssize_t {
    match (route(out), fdtable::is_ours(inp)) {
        (_, true) => edge(|| Err::<ssize_t, _>(Errno::INVAL)),
        (Route::Sock(s), false) => edge(|| {
            // SAFETY: `off` null or valid per the caller's contract.
            let v = unsafe { off.as_mut() };
            sendfile_into(&s, inp, v, n)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::sendfile64(out, inp, off, n) },
    }
}

/// `close(2)`.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn close(fd: c_int) -> c_int {
    if fdtable::is_ours(fd) && !sys::in_vfork_child() {
        edge(|| socket::close(fd).map(|()| 0))
    } else {
        // SAFETY: forwarded unchanged.
        unsafe { next::close(fd) }
    }
}

/// `close_range(2)`: the kernel closes, the shim forgets what it tracked in the range.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn close_range(
    first: libc::c_uint,
    last: libc::c_uint,
    flags: c_int,
) -> c_int {
    // SAFETY: forwarded unchanged.
    let r = unsafe { next::close_range(first, last, flags) };
    if r == 0 && flags & libc::CLOSE_RANGE_CLOEXEC as c_int == 0 && !sys::in_vfork_child() {
        fdtable::forget_range(first, last);
    }
    r
}

fn source(fd: c_int) -> Route2 {
    match route(fd) {
        Route::Sock(s) => Route2::Sock(s),
        _ => Route2::Kernel,
    }
}

/// `dup(2)`.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn dup(fd: c_int) -> c_int {
    if !fdtable::is_ours(fd) || sys::in_vfork_child() {
        // SAFETY: forwarded unchanged.
        return unsafe { next::dup(fd) };
    }
    edge(|| {
        let src = source(fd);
        let new = sys::dup(fd)?;
        socket::dup_installed(&src, new).inspect_err(|_| {
            let _ = sys::close(new);
        })?;
        Ok(new)
    })
}

fn dup_to(fd: c_int, to: c_int, flags: c_int) -> Res<c_int> {
    let src = source(fd);
    let new = sys::dup3(fd, to, flags)?;
    socket::dup_installed(&src, new)?;
    Ok(new)
}

/// `dup2(2)`.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn dup2(fd: c_int, to: c_int) -> c_int {
    if fd == to || !(fdtable::is_ours(fd) || fdtable::is_ours(to)) || sys::in_vfork_child() {
        // SAFETY: forwarded unchanged.
        return unsafe { next::dup2(fd, to) };
    }
    edge(|| dup_to(fd, to, 0))
}

/// `dup3(2)`.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn dup3(fd: c_int, to: c_int, flags: c_int) -> c_int {
    if fd == to || !(fdtable::is_ours(fd) || fdtable::is_ours(to)) || sys::in_vfork_child() {
        // SAFETY: forwarded unchanged.
        return unsafe { next::dup3(fd, to, flags) };
    }
    edge(|| dup_to(fd, to, flags))
}

fn fcntl_common(
    fd: c_int,
    cmd: c_int,
    arg: c_ulong,
    real: fn(c_int, c_int, c_ulong) -> c_int,
) -> c_int {
    match route(fd) {
        Route::Sock(s) => {
            // Integer commands take the low 32 bits of the register (see the module docs).
            let a = u64::from(arg as u32);
            match edge(|| Ok(socket::fcntl(fd, &s, cmd, a)?.unwrap_or(-2))) {
                -2 => real(fd, cmd, arg),
                r => r,
            }
        }
        _ => {
            // F_DUPFD onto a kernel fd never yields a Joyride number, but it may reuse one
            // the table still lists if it was closed behind the shim's back; forget it.
            let r = real(fd, cmd, arg);
            if r >= 0 && (cmd == libc::F_DUPFD || cmd == libc::F_DUPFD_CLOEXEC) {
                drop(fdtable::forget(r));
            }
            r
        }
    }
}

/// `fcntl(2)` (declared with a fixed third argument; see the module docs).
///
/// # Safety
/// `arg` must be what `cmd` expects.
#[no_mangle]
pub unsafe extern "C" fn fcntl(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    fcntl_common(fd, cmd, arg, variadic::fcntl)
}

/// `fcntl64` (glibc's name for `fcntl` under 64-bit `off_t`).
///
/// # Safety
/// As `fcntl`.
#[no_mangle]
pub unsafe extern "C" fn fcntl64(fd: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    fcntl_common(fd, cmd, arg, variadic::fcntl64)
}

/// `ioctl(2)`: `FIONBIO`, `FIONREAD`, `SIOCATMARK`, `FIOCLEX`/`FIONCLEX` on Joyride sockets;
/// other requests are `ENOTTY` there, as on a Linux socket that does not know them.
///
/// # Safety
/// `arg` must be what `req` expects.
#[no_mangle]
pub unsafe extern "C" fn ioctl(fd: c_int, req: c_ulong, arg: c_ulong) -> c_int {
    let Route::Sock(s) = route(fd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { variadic::ioctl(fd, req, arg) };
    };
    edge(|| {
        let p = arg as usize as *mut c_int;
        match req {
            libc::FIONBIO => {
                if p.is_null() {
                    return Err(Errno::FAULT);
                }
                // SAFETY: FIONBIO's argument is an `int *` per the caller's contract.
                let on = unsafe { p.read() } != 0;
                socket::set_nonblocking(fd, &s, on).map(|()| 0)
            }
            libc::FIONREAD | SIOCATMARK => {
                if p.is_null() {
                    return Err(Errno::FAULT);
                }
                let v = if req == libc::FIONREAD { socket::readable_bytes(&s)? } else { 0 };
                // SAFETY: the argument is an `int *` per the caller's contract.
                unsafe { p.write(c_int::try_from(v).unwrap_or(c_int::MAX)) };
                Ok(0)
            }
            libc::FIOCLEX | libc::FIONCLEX => {
                // SAFETY: these take no argument; applied to the backing eventfd.
                let r = unsafe { variadic::ioctl(fd, req, 0) };
                if r < 0 {
                    Err(sys::errno())
                } else {
                    Ok(r)
                }
            }
            _ => Err(Errno::NOTTY),
        }
    })
}

/// glibc `__read_chk`: `read` with a destination-size check.
///
/// # Safety
/// As `read`; `buflen` is the real size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __read_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
) -> ssize_t {
    if !fdtable::is_ours(fd) {
        // SAFETY: forwarded unchanged.
        return unsafe { next::__read_chk(fd, buf, n, buflen) };
    }
    if n > buflen {
        // SAFETY: glibc's documented failure path.
        unsafe { __chk_fail() }
    }
    // SAFETY: caller's contract.
    unsafe { read(fd, buf, n) }
}

/// glibc `__recv_chk`.
///
/// # Safety
/// As `recv`; `buflen` is the real size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __recv_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
) -> ssize_t {
    if !fdtable::is_ours(fd) {
        // SAFETY: forwarded unchanged.
        return unsafe { next::__recv_chk(fd, buf, n, buflen, flags) };
    }
    if n > buflen {
        // SAFETY: glibc's documented failure path.
        unsafe { __chk_fail() }
    }
    // SAFETY: caller's contract.
    unsafe { recv(fd, buf, n, flags) }
}

/// glibc `__recvfrom_chk`.
///
/// # Safety
/// As `recvfrom`; `buflen` is the real size of `buf`.
#[no_mangle]
pub unsafe extern "C" fn __recvfrom_chk(
    fd: c_int,
    buf: *mut c_void,
    n: size_t,
    buflen: size_t,
    flags: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
) -> ssize_t {
    if !fdtable::is_ours(fd) {
        // SAFETY: forwarded unchanged.
        return unsafe { next::__recvfrom_chk(fd, buf, n, buflen, flags, addr, len) };
    }
    if n > buflen {
        // SAFETY: glibc's documented failure path.
        unsafe { __chk_fail() }
    }
    // SAFETY: caller's contract.
    unsafe { recvfrom(fd, buf, n, flags, addr, len) }
}
