//! Socket creation, addressing and options: `socket`, `bind`, `listen`, `accept`, `accept4`,
//! `connect`, `getsockname`, `getpeername`, `shutdown`, `setsockopt`, `getsockopt`.

use super::{bytes, bytes_mut, edge, read_addr, write_addr};
use crate::errno::Errno;
use crate::fdtable::{route, Route};
use crate::libc_next::next;
use crate::socket;
use libc::{c_int, c_void, sockaddr, socklen_t};

/// `socket(2)`: AF_INET stream/datagram sockets are Joyride's (backed by a fresh eventfd);
/// everything else is libc's.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn socket(domain: c_int, ty: c_int, proto: c_int) -> c_int {
    if domain != libc::AF_INET {
        // SAFETY: forwarded unchanged.
        return unsafe { next::socket(domain, ty, proto) };
    }
    let mine = edge(|| Ok(socket::socket(domain, ty, proto)?.unwrap_or(-2)));
    if mine == -2 {
        // SAFETY: forwarded unchanged.
        return unsafe { next::socket(domain, ty, proto) };
    }
    mine
}

/// `bind(2)`.
///
/// # Safety
/// `addr` must be null or point at `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract, forwarded.
            let v = unsafe { read_addr(addr, len, true) };
            socket::bind(&s, v?).map(|()| 0)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::bind(fd, addr, len) },
    }
}

/// `listen(2)`.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| socket::listen(&s, backlog).map(|()| 0)),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::listen(fd, backlog) },
    }
}

/// `accept(2)`.
///
/// # Safety
/// `addr`/`len` as for `accept4`.
#[no_mangle]
pub unsafe extern "C" fn accept(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { accept4(fd, addr, len, 0) }
}

/// `accept4(2)`.
///
/// # Safety
/// `addr` must be null or point at `*len` writable bytes; `len` null or valid.
#[no_mangle]
pub unsafe extern "C" fn accept4(
    fd: c_int,
    addr: *mut sockaddr,
    len: *mut socklen_t,
    flags: c_int,
) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            if !addr.is_null() && len.is_null() {
                return Err(Errno::FAULT);
            }
            let (new, peer) = socket::accept(&s, flags)?;
            if let Some(p) = peer {
                // SAFETY: caller's contract for `addr`/`len`.
                if let Err(e) = unsafe { write_addr(addr, len, &p) } {
                    let _ = socket::close(new);
                    return Err(e);
                }
            }
            Ok(new)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::accept4(fd, addr, len, flags) },
    }
}

/// `connect(2)`.
///
/// # Safety
/// `addr` must be null or point at `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            // SAFETY: caller's contract, forwarded.
            let v = unsafe { read_addr(addr, len, false) };
            socket::connect(&s, v?).map(|()| 0)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::connect(fd, addr, len) },
    }
}

/// `getsockname(2)`.
///
/// # Safety
/// `addr` must point at `*len` writable bytes; `len` valid.
#[no_mangle]
pub unsafe extern "C" fn getsockname(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            if addr.is_null() || len.is_null() {
                return Err(Errno::FAULT);
            }
            let a = socket::name(&s, false)?;
            // SAFETY: caller's contract.
            unsafe { write_addr(addr, len, &a) }.map(|()| 0)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::getsockname(fd, addr, len) },
    }
}

/// `getpeername(2)`.
///
/// # Safety
/// `addr` must point at `*len` writable bytes; `len` valid.
#[no_mangle]
pub unsafe extern "C" fn getpeername(fd: c_int, addr: *mut sockaddr, len: *mut socklen_t) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            if addr.is_null() || len.is_null() {
                return Err(Errno::FAULT);
            }
            let a = socket::name(&s, true)?;
            // SAFETY: caller's contract.
            unsafe { write_addr(addr, len, &a) }.map(|()| 0)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::getpeername(fd, addr, len) },
    }
}

/// `shutdown(2)`.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn shutdown(fd: c_int, how: c_int) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| socket::shutdown(&s, how).map(|()| 0)),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::shutdown(fd, how) },
    }
}

/// `setsockopt(2)`.
///
/// # Safety
/// `val` must be null or point at `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *const c_void,
    len: socklen_t,
) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            if (len as i32) < 0 {
                return Err(Errno::INVAL);
            }
            // SAFETY: caller's contract.
            let v = unsafe { bytes(val, len as usize) }?;
            socket::setsockopt(&s, level, name, v).map(|()| 0)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::setsockopt(fd, level, name, val, len) },
    }
}

/// `getsockopt(2)`.
///
/// # Safety
/// `val` must point at `*len` writable bytes; `len` valid.
#[no_mangle]
pub unsafe extern "C" fn getsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    val: *mut c_void,
    len: *mut socklen_t,
) -> c_int {
    match route(fd) {
        Route::Sock(s) => edge(|| {
            if len.is_null() {
                return Err(Errno::FAULT);
            }
            // SAFETY: `len` is non-null and valid per the caller's contract.
            let have = unsafe { len.read() } as i32;
            if have < 0 {
                return Err(Errno::INVAL);
            }
            let v = socket::getsockopt(&s, level, name, have as usize)?;
            let k = v.len().min(have as usize);
            // SAFETY: `val` has `*len >= k` writable bytes per the caller's contract.
            unsafe { bytes_mut(val, k) }?.copy_from_slice(&v[..k]);
            // SAFETY: as above.
            unsafe { len.write(k as socklen_t) };
            Ok(0)
        }),
        // SAFETY: forwarded unchanged.
        _ => unsafe { next::getsockopt(fd, level, name, val, len) },
    }
}
