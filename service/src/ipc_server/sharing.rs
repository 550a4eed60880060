//! Sockets shared between processes: `fork` (tickets the child joins), `exec` (the sockets whose
//! fds survived, held for the new image), `vfork`/`posix_spawn` children (the parent's socket,
//! proven by the very same eventfd), `SO_REUSEPORT` (one listener shared), and the reference
//! counts and reader hand-over they all rest on (`ipc/PROTOCOL.md` §9b–§9c).

use std::collections::HashMap;
use std::net::SocketAddrV4;

use joyride_base::{BuildIdHasher, Instant};
use joyride_ipc::{Errno, SocketIndex};
use joyride_tcp::State;

use super::{abort_backing, libc_errno, Backing, Client, Common, Sock};
use crate::Engine;

/// How long a forked child has to present its parent's [`Command::Fork`] ticket.
pub(super) const TICKET_TTL_MS: u128 = 30_000;

/// A parent's snapshot at `fork`: its sockets, each holding one reference for the child.
pub(super) struct Ticket {
    pub(super) parent_pid: u32,
    pub(super) issued: Instant,
    pub(super) socks: Vec<Inherited>,
}

/// One socket of a [`Ticket`].
pub(super) struct Inherited {
    pub(super) slot: u32,
    pub(super) backing: Backing,
    pub(super) err: u32,
    pub(super) tos: u32,
    /// What the parent had not read yet: the child finds it in its own rx ring.
    pub(super) unread: Vec<u8>,
}

/// A slot in some client's region: (client id, slot index).
pub(super) type Holder = (u64, u32);

/// The reader of a socket whose process just forked: the child to come. Received bytes wait in
/// the stack until it joins (or the parent uses the socket again), so none land in the ring of
/// a parent that is about to close its copy (a pre-fork server's accepted connection).
pub(super) const CHILD_TO_COME: Holder = (0, 0);

/// Sockets shared between processes (after `fork`), like Linux files: how many region slots or
/// unclaimed tickets name each backing (it is closed when the last goes), and which slot gets
/// the received bytes — one queue cannot be split between rings, so the slot that last showed
/// interest in reading (any command but `Send`, including the empty `RecvWindow` the shim posts
/// before a `recv` sleeps; `Join`/`Inherit`: the child) reads it. Bytes left unread in the ring
/// of a holder that closes go to the next reader first.
#[derive(Default)]
pub(super) struct Shares(pub(super) HashMap<Backing, Share, BuildIdHasher>);

pub(super) struct Share {
    pub(super) refs: u32,
    pub(super) reader: Option<Holder>,
    /// Received bytes (records, for datagrams) a closed holder left unread.
    pub(super) pending: Vec<u8>,
}

impl Shares {
    pub(super) fn add(&mut self, b: Backing) {
        self.0.entry(b).or_insert(Share { refs: 0, reader: None, pending: Vec::new() }).refs += 1;
    }

    /// `who` used the socket (or, [`CHILD_TO_COME`], forked): it reads from now on.
    pub(super) fn touch(&mut self, b: Backing, who: Holder) {
        if let Some(s) = self.0.get_mut(&b) {
            s.reader = Some(who);
        }
    }

    /// Whether received bytes from the stack go to `who`'s ring now: `who` reads (the first to
    /// ask when no slot does), and what a previous reader left unread has all been handed to
    /// `write` (its ring) first.
    pub(super) fn reads(
        &mut self,
        b: Backing,
        who: Holder,
        write: impl FnOnce(&[u8]) -> usize,
    ) -> bool {
        let Some(s) = self.0.get_mut(&b) else { return true };
        if *s.reader.get_or_insert(who) != who {
            return false;
        }
        if !s.pending.is_empty() {
            let n = write(&s.pending);
            s.pending.drain(..n);
        }
        s.pending.is_empty()
    }

    /// Keeps bytes a closing holder left unread, for the next reader.
    pub(super) fn stash(&mut self, b: Backing, unread: Vec<u8>) {
        if let Some(s) = self.0.get_mut(&b) {
            s.pending.extend_from_slice(&unread);
        }
    }

    /// Drops one reference (of slot `who`, or of an unclaimed ticket); true if it was the last.
    pub(super) fn release(&mut self, b: Backing, who: Option<Holder>) -> bool {
        match self.0.get_mut(&b) {
            Some(s) if s.refs > 1 => {
                s.refs -= 1;
                if s.reader == Some(who.unwrap_or(CHILD_TO_COME)) {
                    s.reader = None;
                }
                false
            }
            _ => {
                self.0.remove(&b);
                true
            }
        }
    }
}

/// TCP `bind`, with `SO_REUSEPORT`: a socket bound with it to an address that another such
/// socket holds (another process's pre-forked listener, say) becomes a second reference to that
/// socket — one listener, one accept queue, each process accepting from it — instead of a
/// second listener with a hash-chosen queue of its own as on Linux. The effect applications
/// want (connections spread over the processes that accept) holds, and better: no connection
/// waits in the queue of a process that is busy.
pub(super) fn bind_reuse_port(
    c: &mut Client,
    s: SocketIndex,
    a: SocketAddrV4,
    engine: &mut Engine,
    now: Instant,
    x: &mut Common,
) -> Result<(), i32> {
    let Some(k) = c.socks.get_mut(&s.0) else { return Err(libc_errno::EBADF) };
    let Backing::Tcp(id) = k.backing else { return Err(libc_errno::EINVAL) };
    if k.reuse_port && a.port() != 0 {
        if let Some(&shared) = x.reuse_port.get(&a) {
            let Backing::Tcp(other) = shared else { return Err(libc_errno::EINVAL) };
            let alive = x.shares.0.contains_key(&shared)
                && engine.tcp().local_addr(other) == Ok(a)
                && engine.tcp().local_addr(id).is_ok_and(|l| l.port() == 0);
            if alive {
                if x.shares.release(k.backing, Some((c.id, s.0))) {
                    abort_backing(engine, now, k.backing);
                }
                k.backing = shared;
                x.shares.add(shared);
                x.shares.touch(shared, (c.id, s.0));
                return Ok(());
            }
        }
    }
    engine.tcp().bind(id, a).map_err(|e| e.errno())?;
    if k.reuse_port && a.port() != 0 {
        x.reuse_port.insert(a, k.backing);
    }
    Ok(())
}

/// `Fork`: snapshots the client's sockets into a ticket that holds a reference to each.
pub(super) fn fork_ticket(c: &mut Client, now: Instant, x: &mut Common) -> Result<u64, Errno> {
    for (&slot, k) in c.socks.iter_mut() {
        k.given_upto = c.region.rx_head(SocketIndex(slot));
    }
    let mut socks = Vec::with_capacity(c.socks.len());
    for (&slot, k) in &c.socks {
        x.shares.add(k.backing);
        x.shares.touch(k.backing, CHILD_TO_COME);
        socks.push(inherit(c, slot, k));
    }
    let ticket = loop {
        let mut b = [0u8; 8];
        if rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()) != Ok(8) {
            return Err(Errno::new(libc_errno::EAGAIN).unwrap_or(Errno::INVAL));
        }
        // Positive as an i64 result, never 0.
        let t = u64::from_le_bytes(b) >> 2;
        if t != 0 && !x.tickets.contains_key(&t) {
            break t;
        }
    };
    x.tickets.insert(ticket, Ticket { parent_pid: c.pid, issued: now, socks });
    Ok(ticket)
}

/// What a child (or the image a process execs into) gets of slot `slot`.
pub(super) fn inherit(c: &Client, slot: u32, k: &Sock) -> Inherited {
    let unread = c.region.rx_unread(SocketIndex(slot));
    Inherited { slot, backing: k.backing, err: k.err, tos: k.tos, unread }
}

/// The slots whose marked eventfds process `pid` still holds, if it is running (not a zombie):
/// after its Unix connection hung up, that means it `exec`ed and these fds survived (those with
/// `FD_CLOEXEC` are already closed: the kernel closes them all before the new image runs).
pub(super) fn exec_survivors(pid: u32) -> Vec<u32> {
    if pid == 0 || !running(pid) {
        return Vec::new();
    }
    marked_eventfds(pid).into_iter().map(|(slot, _)| slot).collect()
}

/// The Joyride-marked eventfds process `pid` holds: (slot, the eventfd's system-wide id).
pub(super) fn marked_eventfds(pid: u32) -> Vec<(u32, u64)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut slots = Vec::new();
    for e in dir.flatten() {
        let is_eventfd = std::fs::read_link(e.path())
            .is_ok_and(|l| l.as_os_str().as_encoded_bytes() == b"anon_inode:[eventfd]");
        if !is_eventfd {
            continue;
        }
        let info = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            e.file_name().to_string_lossy()
        ))
        .unwrap_or_default();
        let field = |k: &str| info.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        let count = field("eventfd-count:").and_then(|v| u64::from_str_radix(v, 16).ok());
        let id = field("eventfd-id:").and_then(|v| v.parse().ok()).unwrap_or(0);
        if let Some(slot) = count.and_then(joyride_ipc::inherited::slot_of) {
            slots.push((slot, id));
        }
    }
    slots
}

/// The parent of process `pid` (`PPid:` in `/proc/PID/status`).
pub(super) fn parent_pid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok())
}

/// `Inherit` from a process that did not exec from a client itself — a `vfork`/`posix_spawn`
/// child whose parent is client `clients[i]`'s parent: the socket at `slot` of that parent, if
/// the child holds the very eventfd (same system-wide `eventfd-id`) the parent holds for it.
pub(super) fn spawned_from(
    clients: &[Client],
    i: usize,
    slot: u32,
    x: &Common,
) -> Option<Inherited> {
    let c = &clients[i];
    if x.execs.get(&c.pid).is_some_and(|h| h.iter().any(|h| h.slot == slot)) {
        return None; // an exec'd image: its own held socket
    }
    let ppid = parent_pid(c.pid)?;
    let p = clients.iter().find(|p| p.pid == ppid && !p.gone && p.socks.contains_key(&slot))?;
    let id = |pid| marked_eventfds(pid).into_iter().find(|&(s, _)| s == slot).map(|(_, id)| id);
    let mine = id(c.pid)?;
    (id(ppid)? == mine).then(|| {
        let k = &p.socks[&slot];
        Inherited { slot, backing: k.backing, err: k.err, tos: k.tos, unread: Vec::new() }
    })
}

/// Whether process `pid` exists and is not exiting (`PF_EXITING` is set before an exiting
/// task closes its files, so a hang-up seen from an exiting process is never taken for `exec`).
pub(super) fn running(pid: u32) -> bool {
    const PF_EXITING: u64 = 4;
    let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The fields follow the parenthesised command name, which may itself hold ')':
    // state ppid pgrp session tty_nr tpgid flags …
    let Some(f) = s.rfind(')').map(|i| s[i + 1..].split_whitespace().collect::<Vec<_>>()) else {
        return false;
    };
    let flags = f.get(6).and_then(|v| v.parse::<u64>().ok()).unwrap_or(PF_EXITING);
    f.first().is_some_and(|st| *st != "Z" && *st != "X") && flags & PF_EXITING == 0
}

/// `Inherit`: the new image of a process that exec'd claims one of its surviving sockets, or
/// (`spawned`, see [`spawned_from`]) a spawned child shares one of its parent's.
pub(super) fn inherit_after_exec(
    c: &mut Client,
    slot: u32,
    engine: &mut Engine,
    x: &mut Common,
    spawned: Option<Inherited>,
) -> Result<u64, Errno> {
    let bad = |e| Err(Errno::new(e).unwrap_or(Errno::INVAL));
    let s = SocketIndex(slot);
    let held = x.execs.get_mut(&c.pid).and_then(|h| h.iter().position(|i| i.slot == slot));
    if (held.is_some() || spawned.is_some()) && c.region.alloc_socket_at(s).is_none() {
        return bad(libc_errno::EBUSY);
    }
    let i = match (held, spawned) {
        (Some(pos), _) => {
            let h = x.execs.get_mut(&c.pid).map(|h| (h.swap_remove(pos), h.is_empty()));
            let Some((i, empty)) = h else { return bad(libc_errno::ENOENT) };
            if empty {
                x.execs.remove(&c.pid);
            }
            i
        }
        (None, Some(i)) => {
            x.shares.add(i.backing);
            i
        }
        (None, None) => return bad(libc_errno::ENOENT),
    };
    let mut k = Sock::new(i.backing);
    (k.err, k.tos) = (i.err, i.tos);
    c.region.rx_write(s, &i.unread);
    let bits = match i.backing {
        Backing::Udp(h) => {
            use joyride_ipc::inherited::{CONNECTED, DGRAM};
            DGRAM | if engine.host().udp().peer_addr(h).is_ok() { CONNECTED } else { 0 }
        }
        Backing::Tcp(id) => match engine.tcp().state(id) {
            Ok(State::Listen) => joyride_ipc::inherited::LISTENING,
            Ok(State::Closed) if engine.tcp().peer_addr(id).is_err() => 0,
            _ => joyride_ipc::inherited::CONNECTED,
        },
    };
    c.socks.insert(slot, k);
    x.shares.touch(i.backing, (c.id, slot));
    Ok(bits)
}

/// `Join`: a forked child attaches the snapshot's sockets to its fresh region at the parent's
/// slot indices. The ticket is the capability: 62 random bits, single use, known only to the
/// parent's region and so to the child's copy of its memory. (The child's parent pid proves
/// nothing: after `daemon()` the forking process is already gone.)
pub(super) fn join_ticket(c: &mut Client, ticket: u64, x: &mut Common) -> Result<u64, Errno> {
    let bad = |e| Err(Errno::new(e).unwrap_or(Errno::INVAL));
    if !c.socks.is_empty() {
        return bad(libc_errno::EBUSY);
    }
    let Some(t) = x.tickets.remove(&ticket) else { return bad(libc_errno::EINVAL) };
    for i in t.socks {
        let s = SocketIndex(i.slot);
        if c.region.alloc_socket_at(s).is_some() {
            let mut k = Sock::new(i.backing);
            (k.err, k.tos) = (i.err, i.tos);
            c.region.rx_write(s, &i.unread);
            c.socks.insert(i.slot, k);
            x.shares.touch(i.backing, (c.id, i.slot));
        } else {
            // Impossible with one region shape; the reference is dropped, not leaked.
            x.shares.release(i.backing, None);
        }
    }
    Ok(0)
}

/// Drops one reference to `b` on behalf of a process that is gone without a slot (an expired
/// ticket); closes the socket if it was the last.
pub(super) fn release_backing(engine: &mut Engine, now: Instant, b: Backing, x: &mut Common) {
    if x.shares.release(b, None) {
        match b {
            Backing::Tcp(id) => {
                let _ = engine.tcp().close(now, id);
            }
            Backing::Udp(h) => {
                let _ = engine.host().udp().close(h);
            }
        }
    }
}
