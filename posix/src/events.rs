//! `poll`/`select`/`epoll` over sets that mix Joyride sockets and kernel fds.
//!
//! A Joyride socket's fd is an eventfd whose kernel readiness means nothing (counter 0: always
//! "writable", never "readable"), so every readiness call that names one is intercepted:
//!
//! - **poll/select**: Joyride entries are evaluated from the region ([`socket::events`]),
//!   kernel entries by a zero-timeout `ppoll`; if nothing is ready the thread sleeps (after the
//!   spin budget) in one `ppoll` on the kernel entries + the event doorbell + its bell, then
//!   re-evaluates. `select` is `poll` over the fds in its sets.
//! - **epoll**: the epoll fd stays a real kernel epoll. `epoll_ctl` on a Joyride fd is first
//!   done in the kernel on the backing eventfd with **no readiness bits** (only the
//!   `EPOLLET`/`EPOLLONESHOT`/`EPOLLEXCLUSIVE`/`EPOLLWAKEUP` flags, data = [`MARK`]), so the
//!   kernel validates the call and returns Linux's own errors (`EBADF`, `EINVAL`, `EEXIST`,
//!   `ENOENT`, `ELOOP`…) and drops the member when its last fd is closed; the eventfd never
//!   fires there. The shim then records the interest (events, data) in its own table for that
//!   epoll fd. `epoll_wait` reports ready Joyride interests first (rotating the start so no
//!   member starves), fills the rest from the kernel with a zero-timeout `epoll_wait`, and
//!   otherwise sleeps in `ppoll` on the epoll fd itself (readable when a kernel member is
//!   ready) + doorbell + bell.
//!
//! Semantics per interest, matching Linux:
//! - level-triggered: reported while `readiness & (events | EPOLLERR | EPOLLHUP) != 0`;
//! - edge-triggered: reported when a requested bit appears that was absent at the last look,
//!   or when new data arrived (rx stream position moved, for `EPOLLIN`), or tx space was freed
//!   (tx position moved, for `EPOLLOUT`), or a listener's slot changed — the events on which
//!   Linux's socket callbacks wake an ET waiter;
//! - `EPOLLONESHOT`: disarmed after one report until `EPOLL_CTL_MOD` re-arms it.
//!
//! **Nested epoll**: an epoll fd with Joyride members is readable (`EPOLLIN`) when one of them
//! is ready. In poll/select it is evaluated like a socket (plus its kernel readiness, which
//! covers its kernel members); added to an outer epoll it is registered there in the kernel
//! *with* its real events and data (its kernel members' readiness propagates as usual) and the
//! shim also records an interest that reports it when a Joyride member is ready.
//!
//! Limits: an epoll fd that gets its first Joyride member only after it was added to an outer
//! epoll is seen by the outer only through the kernel; a `dup` of a tracked epoll fd is not
//! tracked.

use crate::clock::Deadline;
use crate::conn;
use crate::errno::{Errno, Res};
use crate::fdtable::{self, flag, Route, SockRef};
use crate::libc_next as sys;
use crate::socket;
use libc::{epoll_event, pollfd, sigset_t};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The data word the shim registers its (silent) eventfds with in a kernel epoll.
pub(crate) const MARK: u64 = 0xffff_a5a5_4a52_4944;

const IN: u32 = libc::EPOLLIN as u32;
const OUT: u32 = libc::EPOLLOUT as u32;
const ERR: u32 = libc::EPOLLERR as u32;
const HUP: u32 = libc::EPOLLHUP as u32;
const ET: u32 = libc::EPOLLET as u32;
const ONESHOT: u32 = libc::EPOLLONESHOT as u32;
const FLAGS: u32 = ET | ONESHOT | libc::EPOLLEXCLUSIVE as u32 | libc::EPOLLWAKEUP as u32;

fn conn() -> Res<&'static conn::Conn> {
    conn::get().ok_or(Errno::NETDOWN)
}

// ---- poll / select ------------------------------------------------------------------------

/// Whether any entry names a Joyride socket or an epoll fd with Joyride members (cheap: one
/// load per fd, no allocation).
pub(crate) fn poll_has_joyride(fds: &[pollfd]) -> bool {
    fds.iter().any(|p| fdtable::is_ours(p.fd))
}

/// The `revents` poll reports for a Joyride socket asked for `events`.
fn poll_revents(s: &SockRef, events: i16) -> i16 {
    let r = socket::events(s);
    let want = events as u16 as u32 | ERR | HUP;
    let mut out = r & want;
    if events & libc::POLLRDNORM != 0 && r & IN != 0 {
        out |= libc::POLLRDNORM as u32;
    }
    if events & libc::POLLWRNORM != 0 && r & OUT != 0 {
        out |= libc::POLLWRNORM as u32;
    }
    out as u16 as i16
}

/// `poll`/`ppoll` over a set with at least one Joyride fd.
pub(crate) fn poll(
    fds: &mut [pollfd],
    timeout: Option<Duration>,
    mask: Option<&sigset_t>,
) -> Res<usize> {
    let c = conn()?;
    let mut socks: Vec<Option<SockRef>> = Vec::with_capacity(fds.len());
    // Epoll fds with Joyride members: kernel entries whose Joyride part is added here.
    let mut nested: Vec<Option<Arc<EpSet>>> = Vec::with_capacity(fds.len());
    for p in fds.iter() {
        let (s, e) = match fdtable::route(p.fd) {
            Route::Sock(s) => (Some(s), None),
            Route::Epoll(i) => (None, get_set(i)),
            Route::Kernel => (None, None),
        };
        socks.push(s);
        nested.push(e);
    }
    let nested_in = |i: usize, events: i16| {
        nested[i].as_ref().is_some_and(|e| events & libc::POLLIN != 0 && e.any_ready())
    };
    // Kernel entries, compacted (indices into `fds` kept in `kidx`).
    let kidx: Vec<usize> = (0..fds.len()).filter(|&i| socks[i].is_none()).collect();
    let mut kfds: Vec<pollfd> = kidx.iter().map(|&i| fds[i]).collect();
    let deadline = Deadline::after(timeout);
    loop {
        if !kfds.is_empty() {
            sys::ppoll(&mut kfds, Some(Duration::ZERO), mask)?;
        }
        let mut n = 0;
        for (i, p) in fds.iter_mut().enumerate() {
            p.revents = match &socks[i] {
                Some(s) => poll_revents(s, p.events),
                None => 0,
            };
        }
        for (k, &i) in kidx.iter().enumerate() {
            fds[i].revents = kfds[k].revents;
            if nested_in(i, fds[i].events) {
                fds[i].revents |= libc::POLLIN;
            }
        }
        for p in fds.iter() {
            n += usize::from(p.revents != 0);
        }
        if n > 0 || deadline.expired() {
            return Ok(n);
        }
        let joy_ready = || {
            socks.iter().zip(fds.iter()).enumerate().any(|(i, (s, p))| match s {
                Some(s) => poll_revents(s, p.events) != 0,
                None => nested_in(i, p.events),
            })
        };
        c.block(&mut kfds, deadline, mask, joy_ready)?;
    }
}

/// `select`/`pselect` over bitmaps of `words` 64-bit words each (`None`: set not given).
/// Returns the number of bits left set, like Linux.
pub(crate) fn select(
    nfds: usize,
    sets: [Option<&mut [u64]>; 3],
    timeout: Option<Duration>,
    mask: Option<&sigset_t>,
) -> Res<usize> {
    let [mut r, mut w, mut e] = sets;
    let bit = |s: &Option<&mut [u64]>, fd: usize| {
        s.as_ref().is_some_and(|s| s.get(fd / 64).is_some_and(|x| x >> (fd % 64) & 1 != 0))
    };
    let mut fds = Vec::new();
    for fd in 0..nfds {
        let mut ev = 0i16;
        if bit(&r, fd) {
            ev |= libc::POLLIN;
        }
        if bit(&w, fd) {
            ev |= libc::POLLOUT;
        }
        if bit(&e, fd) {
            ev |= libc::POLLPRI;
        }
        if ev != 0 {
            fds.push(pollfd { fd: fd as RawFd, events: ev, revents: 0 });
        }
    }
    if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Err(Errno::BADF);
    }
    poll(&mut fds, timeout, mask)?;
    if fds.iter().any(|p| p.revents & libc::POLLNVAL != 0) {
        return Err(Errno::BADF);
    }
    for s in [&mut r, &mut w, &mut e].into_iter().flatten() {
        for x in s.iter_mut() {
            *x = 0;
        }
    }
    let mut n = 0;
    let mut put = |s: &mut Option<&mut [u64]>, fd: usize| {
        if let Some(word) = s.as_mut().and_then(|s| s.get_mut(fd / 64)) {
            *word |= 1 << (fd % 64);
            n += 1;
        }
    };
    for p in &fds {
        let fd = p.fd as usize;
        let rv = p.revents;
        if p.events & libc::POLLIN != 0 && rv & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
        {
            put(&mut r, fd);
        }
        if p.events & libc::POLLOUT != 0 && rv & (libc::POLLOUT | libc::POLLERR) != 0 {
            put(&mut w, fd);
        }
        if p.events & libc::POLLPRI != 0 && rv & libc::POLLPRI != 0 {
            put(&mut e, fd);
        }
    }
    Ok(n)
}

// ---- epoll --------------------------------------------------------------------------------

/// What an interest watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A Joyride socket.
    Sock,
    /// An epoll fd with Joyride members (set number): nested epoll.
    Epoll(u32),
}

/// One Joyride member of an epoll set.
#[derive(Debug)]
struct Interest {
    fd: RawFd,
    target: Target,
    /// The fd-table entry when added: a different entry later means the fd was closed.
    entry: u64,
    events: u32,
    data: u64,
    armed: bool,
    last_bits: u32,
    last_rx: u64,
    last_tx: u64,
    last_seq: u32,
}

/// The Joyride members of one kernel epoll fd.
#[derive(Debug)]
struct EpSet {
    epfd: RawFd,
    list: Mutex<Vec<Interest>>,
    next: AtomicUsize,
}

static SETS: Mutex<Vec<Option<Arc<EpSet>>>> = Mutex::new(Vec::new());

fn sets() -> std::sync::MutexGuard<'static, Vec<Option<Arc<EpSet>>>> {
    SETS.lock().unwrap_or_else(|p| p.into_inner())
}

fn get_set(i: u32) -> Option<Arc<EpSet>> {
    sets().get(i as usize).cloned().flatten()
}

/// Drops set `i` (its epoll fd was closed or replaced).
pub(crate) fn forget_set(i: u32) {
    let old = sets().get_mut(i as usize).and_then(Option::take);
    drop(old);
}

impl Interest {
    /// A nested epoll member: `EPOLLIN` while one of its Joyride members is ready (ET: when that
    /// begins), with ONESHOT as for sockets.
    fn check_nested(&mut self, inner: &EpSet, commit: bool) -> u32 {
        if !self.armed {
            return 0;
        }
        let rep = if inner.any_ready() { IN & self.events } else { 0 };
        let fire = rep != 0 && (self.events & ET == 0 || self.last_bits & IN == 0);
        if commit {
            self.last_bits = rep;
            if fire && self.events & ONESHOT != 0 {
                self.armed = false;
            }
        }
        if fire {
            rep
        } else {
            0
        }
    }

    /// The events to report now, or 0; `commit` records the look (ET snapshot, ONESHOT).
    fn check(&mut self, s: &SockRef, commit: bool) -> u32 {
        if !self.armed {
            return 0;
        }
        let (bits, v) = socket::events_and_slot(s);
        let rep = bits & (self.events | ERR | HUP);
        let fire = if self.events & ET != 0 {
            let edge = rep & !self.last_bits != 0
                || (rep & IN != 0 && v.rx_head != self.last_rx)
                || (rep & OUT != 0 && v.tx_tail != self.last_tx)
                || (rep != 0 && s.has(flag::LISTENING) && v.seq != self.last_seq);
            if commit {
                self.last_bits = bits;
                self.last_rx = v.rx_head;
                self.last_tx = v.tx_tail;
                self.last_seq = v.seq;
            }
            edge
        } else {
            rep != 0
        };
        if fire && commit && self.events & ONESHOT != 0 {
            self.armed = false;
        }
        if fire {
            rep
        } else {
            0
        }
    }
}

impl EpSet {
    /// Fills `out` with ready Joyride members; drops members whose fd was closed.
    fn harvest(&self, out: &mut [epoll_event], commit: bool) -> usize {
        let mut list = self.list.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|it| fdtable::entry(it.fd) == it.entry);
        let len = list.len();
        if len == 0 {
            return 0;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % len;
        let mut n = 0;
        for k in 0..len {
            if n == out.len() {
                break;
            }
            let it = &mut list[(start + k) % len];
            let rep = match (it.target, fdtable::route(it.fd)) {
                (Target::Sock, Route::Sock(s)) => it.check(&s, commit),
                (Target::Epoll(i), Route::Epoll(j)) if i == j => match get_set(i) {
                    // The kernel rejects loops (`ELOOP`), so this recursion ends.
                    Some(inner) => it.check_nested(&inner, commit),
                    None => 0,
                },
                _ => 0,
            };
            if rep != 0 {
                out[n] = epoll_event { events: rep, u64: it.data };
                n += 1;
            }
        }
        n
    }

    fn any_ready(&self) -> bool {
        let mut one = [epoll_event { events: 0, u64: 0 }];
        self.harvest(&mut one, false) > 0
    }
}

/// `epoll_ctl` for a Joyride member: a socket, or (`nested`: its set number) an epoll fd with
/// Joyride members.
pub(crate) fn epoll_ctl(
    epfd: RawFd,
    op: i32,
    fd: RawFd,
    nested: Option<u32>,
    ev: Option<epoll_event>,
) -> Res<()> {
    let (events, data) = match (op, ev) {
        (libc::EPOLL_CTL_DEL, _) => (0, 0),
        (_, Some(e)) => (e.events, e.u64),
        (_, None) => return Err(Errno::FAULT),
    };
    // A socket's silent eventfd carries only the flags; a nested epoll fd its real interest.
    let kev = (op != libc::EPOLL_CTL_DEL).then_some(match nested {
        None => epoll_event { events: events & FLAGS, u64: MARK },
        Some(_) => epoll_event { events, u64: data },
    });
    sys::epoll_ctl(epfd, op, fd, kev)?;
    let target = nested.map_or(Target::Sock, Target::Epoll);
    let set = match fdtable::route(epfd) {
        Route::Epoll(i) => get_set(i),
        _ => None,
    };
    let set = match set {
        Some(set) => set,
        None => {
            let set =
                Arc::new(EpSet { epfd, list: Mutex::new(Vec::new()), next: AtomicUsize::new(0) });
            let i = {
                let mut all = sets();
                let i = all.iter().position(Option::is_none).unwrap_or(all.len());
                if i == all.len() {
                    all.push(None);
                }
                all[i] = Some(set.clone());
                i as u32
            };
            fdtable::install_epoll(epfd, i)?;
            set
        }
    };
    let entry = fdtable::entry(fd);
    let mut list = set.list.lock().unwrap_or_else(|p| p.into_inner());
    list.retain(|it| fdtable::entry(it.fd) == it.entry);
    let pos = list.iter().position(|it| it.fd == fd);
    match op {
        libc::EPOLL_CTL_ADD | libc::EPOLL_CTL_MOD => {
            let it = Interest {
                fd,
                target,
                entry,
                events,
                data,
                armed: true,
                last_bits: 0,
                last_rx: 0,
                last_tx: 0,
                last_seq: 0,
            };
            match pos {
                Some(p) => list[p] = it,
                None => list.push(it),
            }
        }
        _ => {
            if let Some(p) = pos {
                list.remove(p);
            }
        }
    }
    drop(list);
    conn::poke_sleepers(-1);
    Ok(())
}

/// `epoll_wait`/`epoll_pwait` on a tracked epoll fd (set `i`). `Ok(None)`: the set is gone,
/// pass the call to the kernel.
pub(crate) fn epoll_wait(
    i: u32,
    out: &mut [epoll_event],
    timeout: Option<Duration>,
    mask: Option<&sigset_t>,
) -> Res<Option<usize>> {
    let Some(set) = get_set(i) else { return Ok(None) };
    let c = conn()?;
    let deadline = Deadline::after(timeout);
    let mut kfds = vec![pollfd { fd: set.epfd, events: libc::POLLIN, revents: 0 }];
    loop {
        let mut n = set.harvest(out, true);
        if n < out.len() {
            let joy = n;
            let k = sys::epoll_harvest(set.epfd, &mut out[n..])?;
            // Drop anything carrying our mark (the silent eventfds should never fire), and a
            // nested epoll fd the shim already reported for its Joyride members (same data).
            let mut w = n;
            for r in n..n + k {
                let e = out[r];
                if e.u64 != MARK && !out[..joy].iter().any(|j| j.u64 == e.u64) {
                    out[w] = e;
                    w += 1;
                }
            }
            n = w;
        }
        if n > 0 || deadline.expired() {
            return Ok(Some(n));
        }
        c.block(&mut kfds, deadline, mask, || set.any_ready())?;
    }
}
