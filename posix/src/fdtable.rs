//! The fd table: which descriptor numbers are Joyride sockets (or epoll sets with Joyride
//! members), readable lock-free on every call the shim interposes.
//!
//! ## Shape
//! - **Entries**: a flat array of `AtomicU64` indexed by fd, in lazily allocated chunks of
//!   [`CHUNK`] entries (so RLIMIT_NOFILE-sized tables cost memory only where Joyride fds live).
//!   0 means "not ours: go to libc". A socket entry is `KIND_SOCK | generation << 32 | object`;
//!   an epoll entry is `KIND_EPOLL | set`.
//! - **Objects** ([`Sock`]): one per open socket *description* (what `dup` shares), in a pool
//!   of chunks that are never freed, only recycled. Each has a `life` word
//!   `generation << 32 | references`: every fd entry naming it holds one reference, every call
//!   in flight holds one more ([`SockRef`]). The socket is closed in the service when the last
//!   reference goes, exactly like a Linux `struct file`: a `close` while another thread is
//!   blocked in `recv` leaves that `recv` running on the still-open socket, as Linux does.
//! - **Lock-free read path**: route = load entry; for a socket, CAS `refs + 1` on the object if
//!   its generation still matches and `refs > 0` (a recycled object has a new generation, so a
//!   stale entry can never reach a reused socket). Allocation and recycling take a mutex, once
//!   per socket lifetime.

use crate::errno::{Errno, Res};
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// Entries per chunk of the fd table.
pub(crate) const CHUNK: usize = 4096;
/// Chunks: the table covers fds below `CHUNK * CHUNKS` (4 Mi); larger fds are never Joyride.
const CHUNKS: usize = 1024;
/// Sockets per object chunk.
const OBJ_CHUNK: usize = 256;
/// Object chunks: at most `OBJ_CHUNK * OBJ_CHUNKS` (256 Ki) sockets open at once.
const OBJ_CHUNKS: usize = 1024;

const KIND_SOCK: u64 = 1 << 62;
const KIND_EPOLL: u64 = 2 << 62;
const KIND_MASK: u64 = 3 << 62;
const GEN_MASK: u32 = (1 << 30) - 1;
const REFS: u64 = 0xffff_ffff;

type FdChunk = [AtomicU64; CHUNK];
type ObjChunk = [Sock; OBJ_CHUNK];

// `OnceLock::get` is one Acquire load: the read path neither locks nor allocates.
static FDS: [OnceLock<Box<FdChunk>>; CHUNKS] = [const { OnceLock::new() }; CHUNKS];
static OBJS: [OnceLock<Box<ObjChunk>>; OBJ_CHUNKS] = [const { OnceLock::new() }; OBJ_CHUNKS];
static FREE: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static FRESH: AtomicU32 = AtomicU32::new(0);

/// Socket flag bits ([`Sock::flags`]).
pub(crate) mod flag {
    /// `SOCK_DGRAM`.
    pub(crate) const DGRAM: u32 = 1;
    /// `O_NONBLOCK` on the description.
    pub(crate) const NONBLOCK: u32 = 2;
    /// `listen` succeeded.
    pub(crate) const LISTENING: u32 = 4;
    /// Connected (stream: established or accepted; dgram: has a default peer).
    pub(crate) const CONNECTED: u32 = 8;
    /// A `connect` is in progress.
    pub(crate) const CONNECTING: u32 = 16;
    /// `shutdown(SHUT_RD)` done locally.
    pub(crate) const SHUT_RD: u32 = 32;
    /// `shutdown(SHUT_WR)` done locally.
    pub(crate) const SHUT_WR: u32 = 64;
}

/// One open Joyride socket (an open file description).
#[derive(Debug)]
pub(crate) struct Sock {
    life: AtomicU64,
    /// The socket's index in the region.
    pub(crate) index: AtomicU32,
    /// [`flag`] bits.
    pub(crate) flags: AtomicU32,
    /// `SO_RCVTIMEO` in µs (0: none).
    pub(crate) rcvtimeo_us: AtomicU64,
    /// `SO_SNDTIMEO` in µs (0: none).
    pub(crate) sndtimeo_us: AtomicU64,
    /// The pending error last reported to the app (so it is reported once, like Linux).
    pub(crate) err_seen: AtomicU32,
}

impl Sock {
    const fn new() -> Sock {
        Sock {
            life: AtomicU64::new(0),
            index: AtomicU32::new(0),
            flags: AtomicU32::new(0),
            rcvtimeo_us: AtomicU64::new(0),
            sndtimeo_us: AtomicU64::new(0),
            err_seen: AtomicU32::new(0),
        }
    }

    /// Whether all bits of `f` are set.
    pub(crate) fn has(&self, f: u32) -> bool {
        self.flags.load(Ordering::Acquire) & f == f
    }

    /// Sets bits.
    pub(crate) fn set(&self, f: u32) {
        self.flags.fetch_or(f, Ordering::AcqRel);
    }

    /// Clears bits.
    pub(crate) fn clear(&self, f: u32) {
        self.flags.fetch_and(!f, Ordering::AcqRel);
    }

    /// The region socket index.
    pub(crate) fn idx(&self) -> joyride_ipc::SocketIndex {
        joyride_ipc::SocketIndex(self.index.load(Ordering::Acquire))
    }
}

fn fd_slot(fd: RawFd) -> Option<&'static AtomicU64> {
    let fd = usize::try_from(fd).ok()?;
    let chunk = FDS.get(fd / CHUNK)?.get()?;
    Some(&chunk[fd % CHUNK])
}

fn fd_slot_alloc(fd: RawFd) -> Res<&'static AtomicU64> {
    let u = usize::try_from(fd).map_err(|_| Errno::BADF)?;
    let cell = FDS.get(u / CHUNK).ok_or(Errno::MFILE)?;
    let chunk = cell.get_or_init(|| Box::new([const { AtomicU64::new(0) }; CHUNK]));
    Ok(&chunk[u % CHUNK])
}

fn obj(i: u32) -> Option<&'static Sock> {
    let i = i as usize;
    let chunk = OBJS.get(i / OBJ_CHUNK)?.get()?;
    Some(&chunk[i % OBJ_CHUNK])
}

/// A counted reference to a live socket; dropping it may close the socket (last reference).
#[derive(Debug)]
pub(crate) struct SockRef {
    obj: u32,
    sock: &'static Sock,
}

impl std::ops::Deref for SockRef {
    type Target = Sock;
    fn deref(&self) -> &Sock {
        self.sock
    }
}

impl SockRef {
    fn entry(&self) -> u64 {
        let gen = (self.sock.life.load(Ordering::Acquire) >> 32) as u32 & GEN_MASK;
        KIND_SOCK | u64::from(gen) << 32 | u64::from(self.obj)
    }

    /// Another reference (for a new fd entry or another in-flight use).
    fn add_ref(&self) {
        self.sock.life.fetch_add(1, Ordering::AcqRel);
    }
}

impl Clone for SockRef {
    fn clone(&self) -> SockRef {
        self.add_ref();
        SockRef { obj: self.obj, sock: self.sock }
    }
}

impl Drop for SockRef {
    fn drop(&mut self) {
        let before = self.sock.life.fetch_sub(1, Ordering::AcqRel);
        if before & REFS == 1 {
            // Last reference: nobody can acquire it now (refs == 0 refuses). Close it in the
            // service, then bump the generation and recycle the object.
            crate::socket::on_last_close(self.sock);
            let gen = ((before >> 32) as u32).wrapping_add(1) & GEN_MASK;
            self.sock.life.store(u64::from(gen) << 32, Ordering::Release);
            FREE.lock().unwrap_or_else(|p| p.into_inner()).push(self.obj);
        }
    }
}

/// Where a call on an fd goes.
#[derive(Debug)]
pub(crate) enum Route {
    /// Not ours: libc.
    Kernel,
    /// A Joyride socket (a counted reference for the duration of the call).
    Sock(SockRef),
    /// A kernel epoll fd that has Joyride members (set number).
    Epoll(u32),
}

/// Routes `fd` (lock-free).
pub(crate) fn route(fd: RawFd) -> Route {
    let Some(slot) = fd_slot(fd) else { return Route::Kernel };
    loop {
        let e = slot.load(Ordering::Acquire);
        match e & KIND_MASK {
            0 => return Route::Kernel,
            KIND_EPOLL => return Route::Epoll(e as u32),
            _ => {}
        }
        if let Some(r) = acquire(e) {
            return Route::Sock(r);
        }
        // The entry went stale under us (closed or replaced concurrently): re-read it.
        if slot.load(Ordering::Acquire) == e {
            std::hint::spin_loop();
        }
    }
}

/// Whether `fd` is a Joyride socket or tracked epoll fd (one load, no reference taken).
pub(crate) fn is_ours(fd: RawFd) -> bool {
    fd_slot(fd).is_some_and(|s| s.load(Ordering::Relaxed) != 0)
}

/// The raw entry for `fd` (0 if none): epoll sets use it to notice that a member was closed.
pub(crate) fn entry(fd: RawFd) -> u64 {
    fd_slot(fd).map_or(0, |s| s.load(Ordering::Acquire))
}

fn acquire(e: u64) -> Option<SockRef> {
    let gen = (e >> 32) as u32 & GEN_MASK;
    let o = e as u32;
    let sock = obj(o)?;
    let mut l = sock.life.load(Ordering::Acquire);
    loop {
        if (l >> 32) as u32 & GEN_MASK != gen || l & REFS == 0 {
            return None;
        }
        match sock.life.compare_exchange_weak(l, l + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some(SockRef { obj: o, sock }),
            Err(now) => l = now,
        }
    }
}

/// Takes a fresh socket object for region socket `index` with `flags`, holding one reference
/// (the caller installs it into an fd with [`install`]).
pub(crate) fn alloc(index: u32, flags: u32) -> Res<SockRef> {
    let o = match FREE.lock().unwrap_or_else(|p| p.into_inner()).pop() {
        Some(o) => o,
        None => {
            let o = FRESH.fetch_add(1, Ordering::AcqRel);
            let cell = OBJS.get(o as usize / OBJ_CHUNK).ok_or(Errno::NOMEM)?;
            cell.get_or_init(|| Box::new([const { Sock::new() }; OBJ_CHUNK]));
            o
        }
    };
    let sock = obj(o).ok_or(Errno::NOMEM)?;
    sock.index.store(index, Ordering::Relaxed);
    sock.flags.store(flags, Ordering::Relaxed);
    sock.rcvtimeo_us.store(0, Ordering::Relaxed);
    sock.sndtimeo_us.store(0, Ordering::Relaxed);
    sock.err_seen.store(0, Ordering::Relaxed);
    let gen = sock.life.load(Ordering::Acquire) & !REFS;
    sock.life.store(gen | 1, Ordering::Release);
    Ok(SockRef { obj: o, sock })
}

/// Makes `fd` name `s` (taking a new reference for the entry). Whatever `fd` named before is
/// released (the kernel already replaced the file, e.g. by `dup2`).
pub(crate) fn install(fd: RawFd, s: &SockRef) -> Res<()> {
    let slot = fd_slot_alloc(fd)?;
    s.add_ref();
    let old = slot.swap(s.entry(), Ordering::AcqRel);
    release_entry(old);
    Ok(())
}

/// Marks `fd` as an epoll fd with Joyride members (set `set`).
pub(crate) fn install_epoll(fd: RawFd, set: u32) -> Res<()> {
    let slot = fd_slot_alloc(fd)?;
    let old = slot.swap(KIND_EPOLL | u64::from(set), Ordering::AcqRel);
    release_entry(old);
    Ok(())
}

/// Forgets `fd` (after the kernel closed or replaced it), releasing what it held. Returns
/// what the entry was.
pub(crate) fn forget(fd: RawFd) -> Route {
    let Some(slot) = fd_slot(fd) else { return Route::Kernel };
    let old = slot.swap(0, Ordering::AcqRel);
    match old & KIND_MASK {
        0 => Route::Kernel,
        KIND_EPOLL => Route::Epoll(old as u32),
        _ => {
            // Hand the entry's own reference to the caller, who drops it when done.
            let o = old as u32;
            obj(o).map_or(Route::Kernel, |sock| Route::Sock(SockRef { obj: o, sock }))
        }
    }
}

/// Forgets every tracked fd in `first..=last` (after `close_range`).
pub(crate) fn forget_range(first: u32, last: u32) {
    for (c, cell) in FDS.iter().enumerate() {
        if cell.get().is_none() {
            continue;
        }
        let lo = (c * CHUNK) as u64;
        let hi = lo + CHUNK as u64 - 1;
        let (a, b) = (u64::from(first).max(lo), u64::from(last).min(hi));
        for fd in a..=b {
            if is_ours(fd as RawFd) {
                drop(forget(fd as RawFd));
            }
        }
    }
}

fn release_entry(old: u64) {
    match old & KIND_MASK {
        0 => {}
        KIND_EPOLL => crate::events::forget_set(old as u32),
        _ => {
            if let Some(sock) = obj(old as u32) {
                drop(SockRef { obj: old as u32, sock });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(s: &Sock) -> u64 {
        s.life.load(Ordering::Acquire) & REFS
    }

    #[test]
    fn entries_route_count_references_and_recycle() {
        // A number far above anything the test process opens.
        let fd = 3_000_000;
        assert!(matches!(route(fd), Route::Kernel));
        let s = alloc(5, flag::DGRAM).unwrap();
        install(fd, &s).unwrap();
        install(fd + 1, &s).unwrap(); // a dup
        assert_eq!(count(&s), 3, "two fds and the allocation reference");
        let old_entry = entry(fd);
        drop(s);
        let Route::Sock(r) = route(fd) else { panic!("not routed") };
        assert_eq!(r.idx().0, 5);
        assert!(r.has(flag::DGRAM));
        drop(r);
        drop(forget(fd));
        assert!(matches!(route(fd), Route::Kernel));
        assert!(!is_ours(fd) && is_ours(fd + 1));
        // The last fd goes: the object is recycled with a new generation, so the old entry
        // can never reach whatever reuses it.
        drop(forget(fd + 1));
        assert!(acquire(old_entry).is_none());
        let again = alloc(6, 0).unwrap();
        assert!(acquire(old_entry).is_none());
        drop(again);
    }

    #[test]
    fn out_of_range_fds_are_never_ours() {
        assert!(matches!(route(-1), Route::Kernel));
        assert!(matches!(route(i32::MAX), Route::Kernel));
        assert!(install(i32::MAX, &alloc(1, 0).unwrap()).is_err());
    }
}
