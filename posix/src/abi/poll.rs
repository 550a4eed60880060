//! Readiness calls: `poll`, `ppoll`, `select`, `pselect`, `epoll_create`, `epoll_create1`,
//! `epoll_ctl`, `epoll_wait`, `epoll_pwait`, and the fortify variants `__poll_chk`,
//! `__ppoll_chk` (`__fdelt_chk`, used by `FD_SET` under fortify, is libc's own and untouched).

use super::edge;
use crate::errno::{Errno, Res};
use crate::events;
use crate::fdtable::{self, route, Route};
use crate::libc_next::next;
use libc::{c_int, epoll_event, fd_set, nfds_t, pollfd, sigset_t, size_t, timespec, timeval};
use std::time::Duration;

extern "C" {
    fn __chk_fail() -> !;
}

fn ms_timeout(ms: c_int) -> Option<Duration> {
    (ms >= 0).then(|| Duration::from_millis(ms as u64))
}

/// # Safety
/// `ts` null or valid.
unsafe fn ts_timeout(ts: *const timespec) -> Res<Option<Duration>> {
    if ts.is_null() {
        return Ok(None);
    }
    // SAFETY: non-null and valid per the caller's contract.
    let t = unsafe { ts.read() };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return Err(Errno::INVAL);
    }
    Ok(Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32)))
}

/// # Safety
/// `fds` must point at `n` valid `pollfd`s (or be null with `n == 0`).
unsafe fn pollfds<'a>(fds: *mut pollfd, n: nfds_t) -> Res<&'a mut [pollfd]> {
    if n == 0 {
        return Ok(&mut []);
    }
    if fds.is_null() {
        return Err(Errno::FAULT);
    }
    if n > 1 << 20 {
        return Err(Errno::INVAL);
    }
    // SAFETY: non-null, `n` valid entries per the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(fds, n as usize) })
}

/// # Safety
/// `fds` must point at `n` valid `pollfd`s.
unsafe fn has_joyride(fds: *const pollfd, n: nfds_t) -> bool {
    if fds.is_null() || n == 0 || n > 1 << 20 {
        return false;
    }
    // SAFETY: caller's contract; read-only view.
    events::poll_has_joyride(unsafe { std::slice::from_raw_parts(fds, n as usize) })
}

/// `poll(2)`.
///
/// # Safety
/// `fds` must point at `n` valid `pollfd`s.
#[no_mangle]
pub unsafe extern "C" fn poll(fds: *mut pollfd, n: nfds_t, timeout: c_int) -> c_int {
    // SAFETY: caller's contract.
    if !unsafe { has_joyride(fds, n) } {
        // SAFETY: forwarded unchanged.
        return unsafe { next::poll(fds, n, timeout) };
    }
    edge(|| {
        // SAFETY: caller's contract.
        let fds = unsafe { pollfds(fds, n) }?;
        events::poll(fds, ms_timeout(timeout), None).map(|k| k as c_int)
    })
}

/// `ppoll(2)`.
///
/// # Safety
/// `fds` must point at `n` valid `pollfd`s; `ts`, `mask` null or valid.
#[no_mangle]
pub unsafe extern "C" fn ppoll(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: caller's contract.
    if !unsafe { has_joyride(fds, n) } {
        // SAFETY: forwarded unchanged.
        return unsafe { next::ppoll(fds, n, ts, mask) };
    }
    edge(|| {
        // SAFETY: caller's contract.
        let t = unsafe { ts_timeout(ts) }?;
        // SAFETY: `mask` null or valid per the caller's contract.
        let m = unsafe { mask.as_ref() };
        // SAFETY: caller's contract.
        events::poll(unsafe { pollfds(fds, n) }?, t, m).map(|k| k as c_int)
    })
}

/// glibc `__poll_chk`.
///
/// # Safety
/// As `poll`; `fdslen` is the real size of `fds` in bytes.
#[no_mangle]
pub unsafe extern "C" fn __poll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    timeout: c_int,
    fdslen: size_t,
) -> c_int {
    if fdslen / std::mem::size_of::<pollfd>() < n as usize {
        // SAFETY: glibc's documented failure path.
        unsafe { __chk_fail() }
    }
    // SAFETY: caller's contract.
    unsafe { poll(fds, n, timeout) }
}

/// glibc `__ppoll_chk`.
///
/// # Safety
/// As `ppoll`; `fdslen` is the real size of `fds` in bytes.
#[no_mangle]
pub unsafe extern "C" fn __ppoll_chk(
    fds: *mut pollfd,
    n: nfds_t,
    ts: *const timespec,
    mask: *const sigset_t,
    fdslen: size_t,
) -> c_int {
    if fdslen / std::mem::size_of::<pollfd>() < n as usize {
        // SAFETY: glibc's documented failure path.
        unsafe { __chk_fail() }
    }
    // SAFETY: caller's contract.
    unsafe { ppoll(fds, n, ts, mask) }
}

/// The `fd_set` bitmaps as word slices covering `nfds` bits.
///
/// # Safety
/// Each non-null pointer must point at a bitmap of at least `nfds` bits (an `fd_set` when
/// `nfds <= FD_SETSIZE`).
unsafe fn sets<'a>(
    nfds: usize,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
) -> [Option<&'a mut [u64]>; 3] {
    let words = nfds.div_ceil(64);
    [r, w, e].map(|p| {
        // SAFETY: an `fd_set` is an array of `unsigned long` (u64 here) bits; the caller
        // provides at least `words` of them.
        (!p.is_null()).then(|| unsafe { std::slice::from_raw_parts_mut(p.cast::<u64>(), words) })
    })
}

/// # Safety
/// As `sets`.
unsafe fn select_has_joyride(nfds: usize, r: *mut fd_set, w: *mut fd_set, e: *mut fd_set) -> bool {
    // SAFETY: caller's contract.
    let s = unsafe { sets(nfds, r, w, e) };
    (0..nfds).any(|fd| {
        s.iter().flatten().any(|b| b[fd / 64] >> (fd % 64) & 1 != 0)
            && fdtable::is_ours(fd as c_int)
    })
}

/// `select(2)`; like Linux, a non-null `tv` is updated to the time not slept.
///
/// # Safety
/// Sets as for `FD_SET` with `nfds` bits; `tv` null or valid.
#[no_mangle]
pub unsafe extern "C" fn select(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    tv: *mut timeval,
) -> c_int {
    // SAFETY: caller's contract.
    if nfds < 0 || !unsafe { select_has_joyride(nfds as usize, r, w, e) } {
        // SAFETY: forwarded unchanged.
        return unsafe { next::select(nfds, r, w, e, tv) };
    }
    edge(|| {
        let t = if tv.is_null() {
            None
        } else {
            // SAFETY: non-null per the caller's contract.
            let t = unsafe { tv.read() };
            if t.tv_sec < 0 || t.tv_usec < 0 {
                return Err(Errno::INVAL);
            }
            Some(Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64))
        };
        let start = crate::clock::now();
        // SAFETY: caller's contract.
        let n = events::select(nfds as usize, unsafe { sets(nfds as usize, r, w, e) }, t, None)?;
        if let Some(t) = t {
            let left = t.saturating_sub(crate::clock::now().duration_since(start));
            let v = timeval {
                tv_sec: left.as_secs() as libc::time_t,
                tv_usec: left.subsec_micros() as libc::suseconds_t,
            };
            // SAFETY: non-null per the caller's contract.
            unsafe { tv.write(v) };
        }
        Ok(n as c_int)
    })
}

/// `pselect(2)`.
///
/// # Safety
/// Sets as for `select`; `ts`, `mask` null or valid.
#[no_mangle]
pub unsafe extern "C" fn pselect(
    nfds: c_int,
    r: *mut fd_set,
    w: *mut fd_set,
    e: *mut fd_set,
    ts: *const timespec,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: caller's contract.
    if nfds < 0 || !unsafe { select_has_joyride(nfds as usize, r, w, e) } {
        // SAFETY: forwarded unchanged.
        return unsafe { next::pselect(nfds, r, w, e, ts, mask) };
    }
    edge(|| {
        // SAFETY: caller's contract.
        let t = unsafe { ts_timeout(ts) }?;
        // SAFETY: caller's contract.
        let m = unsafe { mask.as_ref() };
        // SAFETY: caller's contract.
        events::select(nfds as usize, unsafe { sets(nfds as usize, r, w, e) }, t, m)
            .map(|n| n as c_int)
    })
}

/// `epoll_create(2)` (the kernel's; the shim tracks a set only once a Joyride fd joins).
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn epoll_create(size: c_int) -> c_int {
    // SAFETY: forwarded unchanged.
    let fd = unsafe { next::epoll_create(size) };
    if fd >= 0 {
        drop(fdtable::forget(fd)); // a stale entry for a number closed behind our back
    }
    fd
}

/// `epoll_create1(2)`.
///
/// # Safety
/// C ABI; no pointer arguments.
#[no_mangle]
pub unsafe extern "C" fn epoll_create1(flags: c_int) -> c_int {
    // SAFETY: forwarded unchanged.
    let fd = unsafe { next::epoll_create1(flags) };
    if fd >= 0 {
        drop(fdtable::forget(fd));
    }
    fd
}

/// `epoll_ctl(2)`.
///
/// # Safety
/// `ev` null or valid.
#[no_mangle]
pub unsafe extern "C" fn epoll_ctl(
    epfd: c_int,
    op: c_int,
    fd: c_int,
    ev: *mut epoll_event,
) -> c_int {
    let nested = match route(fd) {
        Route::Sock(_) => None,
        Route::Epoll(i) => Some(i),
        // SAFETY: forwarded unchanged.
        Route::Kernel => return unsafe { next::epoll_ctl(epfd, op, fd, ev) },
    };
    edge(|| {
        // SAFETY: `ev` null or valid per the caller's contract; read by value.
        let e = unsafe { ev.as_ref() }.copied();
        events::epoll_ctl(epfd, op, fd, nested, e).map(|()| 0)
    })
}

/// # Safety
/// `ev` must point at `max` writable events.
unsafe fn wait_common(
    epfd: c_int,
    ev: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    let Route::Epoll(set) = route(epfd) else {
        // SAFETY: forwarded unchanged.
        return unsafe { next::epoll_pwait(epfd, ev, max, timeout, mask) };
    };
    let r = edge(|| {
        if max <= 0 {
            return Err(Errno::INVAL);
        }
        if ev.is_null() {
            return Err(Errno::FAULT);
        }
        // SAFETY: non-null, `max` writable events per the caller's contract.
        let out = unsafe { std::slice::from_raw_parts_mut(ev, max as usize) };
        // SAFETY: `mask` null or valid per the caller's contract.
        let m = unsafe { mask.as_ref() };
        Ok(events::epoll_wait(set, out, ms_timeout(timeout), m)?.map_or(-2, |n| n as c_int))
    });
    if r == -2 {
        // SAFETY: forwarded unchanged.
        return unsafe { next::epoll_pwait(epfd, ev, max, timeout, mask) };
    }
    r
}

/// `epoll_wait(2)`.
///
/// # Safety
/// `ev` must point at `max` writable events.
#[no_mangle]
pub unsafe extern "C" fn epoll_wait(
    epfd: c_int,
    ev: *mut epoll_event,
    max: c_int,
    timeout: c_int,
) -> c_int {
    if !fdtable::is_ours(epfd) {
        // SAFETY: forwarded unchanged.
        return unsafe { next::epoll_wait(epfd, ev, max, timeout) };
    }
    // SAFETY: caller's contract.
    unsafe { wait_common(epfd, ev, max, timeout, std::ptr::null()) }
}

/// `epoll_pwait(2)`.
///
/// # Safety
/// `ev` must point at `max` writable events; `mask` null or valid.
#[no_mangle]
pub unsafe extern "C" fn epoll_pwait(
    epfd: c_int,
    ev: *mut epoll_event,
    max: c_int,
    timeout: c_int,
    mask: *const sigset_t,
) -> c_int {
    // SAFETY: caller's contract.
    unsafe { wait_common(epfd, ev, max, timeout, mask) }
}
