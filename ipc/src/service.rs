//! The service's end of a region: drains and validates commands, posts completions, moves data
//! through the per-socket rings and publishes readiness. Trusts nothing it reads back.

use crate::layout::{self, hdr, slot, status, Layout, RegionConfig};
use crate::ring::{ring_read, ring_write, Consumer, Producer};
use crate::shm::{self, Doorbell, Region};
use crate::wire::{
    Command, Completion, DecodeError, Errno, Payload, Readiness, RequestId, SocketIndex,
};
use crate::{HANDSHAKE_LEN, HANDSHAKE_MAGIC};
use core::fmt;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

/// Why a region was poisoned (also written, as a code, into the header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoisonReason {
    /// The command ring's head was impossible (`head − tail > entries`). Code 1.
    CommandRing,
    /// The completion ring's tail was impossible. Code 2.
    CompletionRing,
}

impl PoisonReason {
    /// The code stored at [`hdr::POISON_REASON`].
    pub fn code(self) -> u32 {
        match self {
            PoisonReason::CommandRing => 1,
            PoisonReason::CompletionRing => 2,
        }
    }
}

/// Why one command was refused (the region stays usable; the app gets an error completion).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CommandError {
    /// The entry did not decode.
    Decode(DecodeError),
    /// The socket index is not below the region's socket count.
    SocketOutOfRange(u32),
    /// The socket index is in range but not open in this region.
    SocketNotOwned(u32),
    /// A `Send` claims more bytes than the tx ring can hold beyond what is pending.
    TxOverrun {
        /// Bytes claimed.
        len: u32,
        /// Room the service's own accounting allows.
        room: u64,
    },
    /// A `RecvWindow` consumes more than the service has delivered and not yet seen consumed.
    RxOverrun {
        /// Bytes claimed consumed.
        consumed: u32,
        /// Bytes outstanding in the rx ring by the service's accounting.
        outstanding: u64,
    },
}

impl CommandError {
    /// The errno the app's completion carries.
    pub fn errno(self) -> Errno {
        match self {
            CommandError::SocketOutOfRange(_) | CommandError::SocketNotOwned(_) => Errno::BADF,
            _ => Errno::INVAL,
        }
    }
}

/// What [`ServiceRegion::next_command`] reports instead of a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServiceError {
    /// The region is poisoned: stop serving it and reclaim its sockets.
    Poisoned(PoisonReason),
    /// One command was invalid; it has been answered with an error completion.
    Invalid {
        /// Its request id (as read; may be garbage).
        id: RequestId,
        /// What was wrong.
        error: CommandError,
    },
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceError::Poisoned(r) => write!(f, "region poisoned: {r:?}"),
            ServiceError::Invalid { id, error } => write!(f, "invalid command {}: {error:?}", id.0),
        }
    }
}

impl std::error::Error for ServiceError {}

/// A validated command, ready for the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// Echo this in the completion.
    pub id: RequestId,
    /// The command; socket index (if any) is in range and owned, lengths are within bounds.
    pub command: Command,
}

/// Counters for `joyride stat` and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Valid commands handed out.
    pub commands: u64,
    /// Invalid commands answered with an error.
    pub invalid: u64,
    /// Completions posted.
    pub completions: u64,
    /// Completions dropped because the app made its completion ring look full.
    pub dropped_completions: u64,
    /// Times the event doorbell was rung.
    pub wakeups: u64,
}

/// The service's private copy of one socket's state (never read back from the region).
#[derive(Clone, Copy, Debug, Default)]
struct Shadow {
    owned: bool,
    /// Bytes written into the rx ring (published as `RX_HEAD`).
    rx_head: u64,
    /// Bytes the app has reported consumed (via `RecvWindow`).
    rx_tail: u64,
    /// Bytes the app has committed (via `Send`).
    tx_head: u64,
    /// Bytes the service has consumed (published as `TX_TAIL`).
    tx_tail: u64,
    /// Last published change counter.
    seq: u32,
}

/// The service side of one application's region.
#[derive(Debug)]
pub struct ServiceRegion {
    region: Region,
    layout: Layout,
    cmd: Consumer,
    cmp: Producer,
    /// Rung by the app when it submits and the service sleeps.
    cmd_bell: Doorbell,
    /// Rung by the service when completions or readiness changed and the app sleeps.
    evt_bell: Doorbell,
    socks: Vec<Shadow>,
    poisoned: Option<PoisonReason>,
    /// Commands handed out that still owe a completion.
    owed: u32,
    dirty: bool,
    wake_seq: u32,
    stats: ServiceStats,
}

fn to_io(e: layout::LayoutError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e)
}

impl ServiceRegion {
    /// Creates the memfd and both doorbells and writes the header.
    pub fn create(config: RegionConfig) -> io::Result<ServiceRegion> {
        let layout = Layout::new(config).map_err(to_io)?;
        let region = Region::create(c"joyride-ipc", layout.region_size)?;
        if !region.write(0, &layout.encode_header()) {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        let socks = vec![Shadow::default(); config.sockets as usize];
        Ok(ServiceRegion {
            cmd: Consumer::new(layout.cmd_ring_off, config.cmd_entries, 0),
            cmp: Producer::new(layout.cmp_ring_off, config.cmp_entries, 0),
            region,
            layout,
            cmd_bell: Doorbell::new()?,
            evt_bell: Doorbell::new()?,
            socks,
            poisoned: None,
            owed: 0,
            dirty: false,
            wake_seq: 0,
            stats: ServiceStats::default(),
        })
    }

    /// Sends the hand-over message (`HANDSHAKE_MAGIC`, version, 0) with three descriptors —
    /// region memfd, command doorbell, event doorbell — over a connected Unix stream socket.
    pub fn send_handshake(&self, sock: BorrowedFd<'_>) -> io::Result<()> {
        let mut msg = [0u8; HANDSHAKE_LEN];
        msg[..8].copy_from_slice(&HANDSHAKE_MAGIC.to_le_bytes());
        msg[8..12].copy_from_slice(&layout::VERSION.to_le_bytes());
        let fds = [self.region.fd(), self.cmd_bell.fd(), self.evt_bell.fd()];
        let n = shm::send_fds(sock, &msg, &fds)?;
        if n != HANDSHAKE_LEN {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(())
    }

    /// The service's own layout (never re-read from the header).
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The mapping (for tests and fuzzing, which act as a hostile app through it).
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The command doorbell, for the engine's epoll set.
    pub fn command_doorbell(&self) -> BorrowedFd<'_> {
        self.cmd_bell.fd()
    }

    /// `Some` once the region has been poisoned.
    pub fn poisoned(&self) -> Option<PoisonReason> {
        self.poisoned
    }

    /// Counters.
    pub fn stats(&self) -> ServiceStats {
        self.stats
    }

    fn word32(&self, off: usize) -> Option<&std::sync::atomic::AtomicU32> {
        self.region.atomic_u32(off)
    }

    fn set_status(&self, value: u32, reason: u32) {
        if let Some(w) = self.word32(hdr::POISON_REASON) {
            w.store(reason, Ordering::Relaxed);
        }
        if let Some(w) = self.word32(hdr::STATUS) {
            w.store(value, Ordering::Release);
        }
        let _ = self.evt_bell.ring();
    }

    fn poison(&mut self, reason: PoisonReason) -> ServiceError {
        if self.poisoned.is_none() {
            self.poisoned = Some(reason);
            self.set_status(status::POISONED, reason.code());
        }
        ServiceError::Poisoned(reason)
    }

    /// Whether a completion slot is free beyond those owed.
    fn credit(&mut self) -> Result<bool, ServiceError> {
        match self.cmp.free(&self.region) {
            Ok(free) => Ok(free > self.owed),
            Err(_) => Err(self.poison(PoisonReason::CompletionRing)),
        }
    }

    fn shadow(&self, s: SocketIndex) -> Result<&Shadow, CommandError> {
        let sh = self.socks.get(s.0 as usize).ok_or(CommandError::SocketOutOfRange(s.0))?;
        if sh.owned {
            Ok(sh)
        } else {
            Err(CommandError::SocketNotOwned(s.0))
        }
    }

    /// Checks a decoded command against the service's own state.
    fn validate(&self, c: &Command) -> Result<(), CommandError> {
        let Some(s) = c.socket() else { return Ok(()) };
        let sh = self.shadow(s)?;
        match *c {
            Command::Send { len, .. } => {
                let room = u64::from(self.layout.config.tx_buf) - (sh.tx_head - sh.tx_tail);
                if u64::from(len) > room {
                    return Err(CommandError::TxOverrun { len, room });
                }
            }
            Command::RecvWindow { consumed, .. } => {
                let outstanding = sh.rx_head - sh.rx_tail;
                if u64::from(consumed) > outstanding {
                    return Err(CommandError::RxOverrun { consumed, outstanding });
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The next valid command, `Ok(None)` if there is none or if the app has not left room for
    /// its answer in the completion ring. Each entry is copied out of shared memory exactly once
    /// before it is decoded and validated; an invalid one is answered here (`-EINVAL`/`-EBADF`)
    /// and reported as [`ServiceError::Invalid`]. Posted commands (`Send`, `RecvWindow`) update
    /// the service's accounting here and need no completion. Never panics.
    pub fn next_command(&mut self) -> Result<Option<Request>, ServiceError> {
        if let Some(p) = self.poisoned {
            return Err(ServiceError::Poisoned(p));
        }
        let entry = match self.cmd.peek(&self.region) {
            Ok(None) => return Ok(None),
            Ok(Some(e)) => e,
            Err(_) => return Err(self.poison(PoisonReason::CommandRing)),
        };
        // From here on only the private copy `entry` is looked at (no double fetch).
        let checked = Command::decode(&entry)
            .map_err(|e| (RequestId(layout::le64(&entry, 0)), CommandError::Decode(e)))
            .and_then(|(id, c)| self.validate(&c).map(|()| (id, c)).map_err(|e| (id, e)));
        match checked {
            Ok((id, command)) if command.is_posted() => {
                self.apply_posted(&command);
                self.consume_entry()?;
                self.stats.commands += 1;
                Ok(Some(Request { id, command }))
            }
            Ok((id, command)) => {
                if !self.credit()? {
                    return Ok(None);
                }
                self.consume_entry()?;
                self.owed += 1;
                self.stats.commands += 1;
                Ok(Some(Request { id, command }))
            }
            Err((id, error)) => {
                if !self.credit()? {
                    return Ok(None);
                }
                self.consume_entry()?;
                self.stats.invalid += 1;
                self.owed += 1;
                let c = Completion { id, result: Err(error.errno()), payload: Payload::None };
                self.complete(c)?;
                Err(ServiceError::Invalid { id, error })
            }
        }
    }

    fn consume_entry(&mut self) -> Result<(), ServiceError> {
        self.cmd.advance(&self.region).map_err(|_| self.poison(PoisonReason::CommandRing))
    }

    fn apply_posted(&mut self, c: &Command) {
        match *c {
            Command::Send { sock, len, .. } => {
                if let Some(sh) = self.socks.get_mut(sock.0 as usize) {
                    sh.tx_head += u64::from(len);
                }
            }
            Command::RecvWindow { sock, consumed } => {
                if let Some(sh) = self.socks.get_mut(sock.0 as usize) {
                    sh.rx_tail += u64::from(consumed);
                }
            }
            _ => {}
        }
    }

    /// Posts a completion. Call [`ServiceRegion::flush`] after a batch to wake the app.
    pub fn complete(&mut self, c: Completion) -> Result<(), ServiceError> {
        if let Some(p) = self.poisoned {
            return Err(ServiceError::Poisoned(p));
        }
        self.owed = self.owed.saturating_sub(1);
        match self.cmp.push(&self.region, &c.encode()) {
            Ok(true) => self.stats.completions += 1,
            Ok(false) => self.stats.dropped_completions += 1,
            Err(_) => return Err(self.poison(PoisonReason::CompletionRing)),
        }
        self.dirty = true;
        Ok(())
    }

    /// Publishes a batch: bumps `wake_seq` (Release), then — after a SeqCst fence — rings the
    /// event doorbell if an app thread says it sleeps. Returns whether it rang.
    pub fn flush(&mut self) -> bool {
        if !self.dirty {
            return false;
        }
        self.dirty = false;
        self.wake_seq = self.wake_seq.wrapping_add(1);
        if let Some(w) = self.word32(hdr::WAKE_SEQ) {
            w.store(self.wake_seq, Ordering::Release);
        }
        fence(Ordering::SeqCst);
        let waiting = self.word32(hdr::APP_WAITING).map_or(0, |w| w.load(Ordering::Relaxed));
        if waiting != 0 {
            let _ = self.evt_bell.ring();
            self.stats.wakeups += 1;
            return true;
        }
        false
    }

    /// Opens a free socket slot (for `Socket` or `Accept`), resetting its state and rings.
    pub fn alloc_socket(&mut self) -> Option<SocketIndex> {
        let i = self.socks.iter().position(|s| !s.owned)?;
        self.open_slot(i)
    }

    /// Opens slot `s` if it is free (a forked child's `Join` keeps its parent's indices).
    pub fn alloc_socket_at(&mut self, s: SocketIndex) -> Option<SocketIndex> {
        let i = s.0 as usize;
        if self.socks.get(i)?.owned {
            return None;
        }
        self.open_slot(i)
    }

    fn open_slot(&mut self, i: usize) -> Option<SocketIndex> {
        let seq = self.socks[i].seq.wrapping_add(1);
        self.socks[i] = Shadow { owned: true, seq, ..Shadow::default() };
        let base = self.layout.slot_off(i as u32);
        for (off, v) in
            [(slot::RX_HEAD, 0), (slot::TX_TAIL, 0), (slot::RX_TAIL, 0), (slot::TX_HEAD, 0)]
        {
            if let Some(w) = self.region.atomic_u64(base + off) {
                w.store(v, Ordering::Relaxed);
            }
        }
        for off in [slot::READY, slot::ERROR, slot::STATE] {
            if let Some(w) = self.word32(base + off) {
                w.store(0, Ordering::Relaxed);
            }
        }
        self.bump(SocketIndex(i as u32));
        Some(SocketIndex(i as u32))
    }

    /// Closes a slot: later commands naming it get `-EBADF`.
    pub fn free_socket(&mut self, s: SocketIndex) {
        if let Some(sh) = self.socks.get_mut(s.0 as usize) {
            sh.owned = false;
        }
    }

    /// Whether `s` is open in this region.
    pub fn is_owned(&self, s: SocketIndex) -> bool {
        self.shadow(s).is_ok()
    }

    /// The open sockets (to reclaim after poisoning or the app's exit).
    pub fn owned_sockets(&self) -> impl Iterator<Item = SocketIndex> + '_ {
        self.socks.iter().enumerate().filter(|(_, s)| s.owned).map(|(i, _)| SocketIndex(i as u32))
    }

    fn owned_mut(&mut self, s: SocketIndex) -> Option<&mut Shadow> {
        self.socks.get_mut(s.0 as usize).filter(|sh| sh.owned)
    }

    /// Bumps the slot's change counter (Release) so the app's waiters notice.
    fn bump(&mut self, s: SocketIndex) {
        let off = self.layout.slot_off(s.0) + slot::SEQ;
        let Some(sh) = self.socks.get_mut(s.0 as usize) else { return };
        sh.seq = sh.seq.wrapping_add(1);
        let seq = sh.seq;
        if let Some(w) = self.region.atomic_u32(off) {
            w.store(seq, Ordering::Release);
        }
        self.dirty = true;
    }

    /// Bytes the app has committed to the tx ring that the service has not consumed.
    pub fn tx_pending(&self, s: SocketIndex) -> u64 {
        self.shadow(s).map_or(0, |sh| sh.tx_head - sh.tx_tail)
    }

    /// Copies up to `dst.len()` pending tx bytes out (the one copy out of the region) without
    /// consuming them. The bytes may have been rewritten by a hostile app; they are just data.
    pub fn tx_peek(&self, s: SocketIndex, dst: &mut [u8]) -> usize {
        let Ok(sh) = self.shadow(s) else { return 0 };
        let n = dst.len().min((sh.tx_head - sh.tx_tail) as usize);
        let cap = self.layout.config.tx_buf as usize;
        if ring_read(&self.region, self.layout.tx_off(s.0), cap, sh.tx_tail, &mut dst[..n]) {
            n
        } else {
            0
        }
    }

    /// Consumes up to `n` pending tx bytes (frees ring space) and publishes `TX_TAIL`.
    pub fn tx_consume(&mut self, s: SocketIndex, n: u64) -> u64 {
        let off = self.layout.slot_off(s.0) + slot::TX_TAIL;
        let Some(sh) = self.owned_mut(s) else { return 0 };
        let n = n.min(sh.tx_head - sh.tx_tail);
        sh.tx_tail += n;
        let tail = sh.tx_tail;
        if let Some(w) = self.region.atomic_u64(off) {
            w.store(tail, Ordering::Release);
        }
        self.bump(s);
        n
    }

    /// [`tx_peek`](Self::tx_peek) then [`tx_consume`](Self::tx_consume) of what was copied.
    pub fn tx_take(&mut self, s: SocketIndex, dst: &mut [u8]) -> usize {
        let n = self.tx_peek(s, dst);
        self.tx_consume(s, n as u64);
        n
    }

    /// Free bytes in the socket's rx ring by the service's own accounting.
    pub fn rx_space(&self, s: SocketIndex) -> u64 {
        self.shadow(s)
            .map_or(0, |sh| u64::from(self.layout.config.rx_buf) - (sh.rx_head - sh.rx_tail))
    }

    /// Bytes ever written into the socket's rx ring (its stream position).
    pub fn rx_head(&self, s: SocketIndex) -> u64 {
        self.shadow(s).map_or(0, |sh| sh.rx_head)
    }

    /// A copy of the bytes in the rx ring that the app has not consumed (by the service's
    /// accounting): what a forked child inherits.
    pub fn rx_unread(&self, s: SocketIndex) -> Vec<u8> {
        let Ok(sh) = self.shadow(s) else { return Vec::new() };
        let mut v = vec![0; (sh.rx_head - sh.rx_tail) as usize];
        let (base, cap) = (self.layout.rx_off(s.0), self.layout.config.rx_buf as usize);
        if ring_read(&self.region, base, cap, sh.rx_tail, &mut v) {
            v
        } else {
            Vec::new()
        }
    }

    /// Copies as much of `src` as fits into the rx ring and publishes `RX_HEAD` (Release).
    pub fn rx_write(&mut self, s: SocketIndex, src: &[u8]) -> usize {
        let n = (self.rx_space(s) as usize).min(src.len());
        let Some(sh) = self.socks.get(s.0 as usize) else { return 0 };
        let (base, cap) = (self.layout.rx_off(s.0), self.layout.config.rx_buf as usize);
        if n == 0 || !ring_write(&self.region, base, cap, sh.rx_head, &src[..n]) {
            return 0;
        }
        let off = self.layout.slot_off(s.0) + slot::RX_HEAD;
        let Some(sh) = self.owned_mut(s) else { return 0 };
        sh.rx_head += n as u64;
        let head = sh.rx_head;
        if let Some(w) = self.region.atomic_u64(off) {
            w.store(head, Ordering::Release);
        }
        self.bump(s);
        n
    }

    /// Publishes readiness bits for `s` (after any data they describe).
    pub fn set_readiness(&mut self, s: SocketIndex, r: Readiness) {
        self.set_word(s, slot::READY, r.0);
    }

    /// Publishes the pending socket error (`SO_ERROR`), 0 for none.
    pub fn set_error(&mut self, s: SocketIndex, errno: u32) {
        self.set_word(s, slot::ERROR, errno);
    }

    /// Publishes the protocol state code shown by `stat`.
    pub fn set_state(&mut self, s: SocketIndex, state: u32) {
        self.set_word(s, slot::STATE, state);
    }

    fn set_word(&mut self, s: SocketIndex, field: usize, v: u32) {
        if !self.is_owned(s) {
            return;
        }
        if let Some(w) = self.word32(self.layout.slot_off(s.0) + field) {
            w.store(v, Ordering::Relaxed);
        }
        self.bump(s);
    }

    /// Whether there is a command the service could take now (non-empty ring and room for its
    /// answer). A corrupt ring counts as work, so the caller finds the error.
    fn has_work(&mut self) -> bool {
        if self.poisoned.is_some() {
            return false;
        }
        !self.cmd.is_empty(&self.region) && !matches!(self.credit(), Ok(false))
    }

    /// First half of sleeping: sets the header's `svc_waiting`, fences, and re-checks the
    /// command ring. Returns false (and clears the flag) if there is work; otherwise the caller
    /// may sleep on [`command_doorbell`](Self::command_doorbell) and must call
    /// [`end_sleep`](Self::end_sleep) when it wakes.
    pub fn prepare_sleep(&mut self) -> bool {
        if let Some(w) = self.word32(hdr::SVC_WAITING) {
            w.store(1, Ordering::Relaxed);
        }
        fence(Ordering::SeqCst);
        if self.has_work() {
            self.end_sleep();
            return false;
        }
        true
    }

    /// Clears `svc_waiting` and drains the command doorbell.
    pub fn end_sleep(&mut self) {
        if let Some(w) = self.word32(hdr::SVC_WAITING) {
            w.store(0, Ordering::Relaxed);
        }
        self.cmd_bell.drain();
    }

    /// Sleeps on this one region's command doorbell (at most `timeout`) unless there is work.
    /// Returns whether there may be work now. An engine serving many regions instead calls
    /// `prepare_sleep` on each and waits on all the doorbells with epoll.
    pub fn wait(&mut self, timeout: Option<Duration>) -> io::Result<bool> {
        if !self.prepare_sleep() {
            return Ok(true);
        }
        let r = self.cmd_bell.wait_timeout(timeout);
        self.end_sleep();
        r
    }

    /// Marks the region shut down and wakes the app (its calls then fail, never hang).
    pub fn shut_down(&mut self) {
        if self.poisoned.is_none() {
            self.set_status(status::SHUT_DOWN, 0);
        }
    }
}

impl Drop for ServiceRegion {
    fn drop(&mut self) {
        self.shut_down();
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
