//! The application's end of a region: submits commands, collects completions, moves data
//! through the per-socket rings and waits with the spin-then-sleep protocol.
//!
//! The app trusts the service, but a bug (or the app scribbling on its own region) still
//! yields errors here, never a panic or an out-of-bounds access.

use crate::layout::{hdr, slot, status, Layout, LayoutError, HEADER_SIZE, HEADER_STATIC};
use crate::ring::{ring_read, ring_write, Consumer, Producer};
use crate::shm::{self, Doorbell, Region};
use crate::wire::{Command, Completion, DecodeError, Readiness, RequestId, SendFlags, SocketIndex};
use crate::{HANDSHAKE_LEN, HANDSHAKE_MAGIC};
use core::fmt;
use std::collections::VecDeque;
use std::io;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

/// Errors the application side sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The command ring is full (the service is behind): wait and retry.
    Full,
    /// A wait timed out.
    Timeout,
    /// A wait was interrupted by a signal (EINTR).
    Interrupted,
    /// The service poisoned the region (this process broke the protocol).
    Poisoned,
    /// The service shut the region down (it exited or reclaimed us).
    ShutDown,
    /// Ring indices or stream positions in the region are impossible.
    Corrupt,
    /// The socket index is out of range.
    BadSocket,
    /// A completion did not decode.
    Decode(DecodeError),
    /// The region's header is not one we can use.
    Layout(LayoutError),
    /// The hand-over message was malformed.
    BadHandshake,
    /// A system call failed.
    Io(io::ErrorKind),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::Interrupted {
            ClientError::Interrupted
        } else {
            ClientError::Io(e.kind())
        }
    }
}

/// How long to spin before sleeping. The shim adapts `spin` per socket (doubling while waits end
/// during the spin, halving when they do not, within bounds) and may set it to 0 on machines
/// with fewer cores than busy threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Condition re-checks (with `spin_loop` hints) before going to sleep.
    pub spin: u32,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy { spin: 2000 }
    }
}

/// How a [`ClientRegion::wait`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The condition holds.
    Ready,
    /// Something was published (or the doorbell rang) but the condition does not hold yet.
    Changed,
    /// The sleep ran its full timeout without a wake-up.
    TimedOut,
}

/// The application side of a region.
#[derive(Debug)]
pub struct ClientRegion {
    region: Region,
    layout: Layout,
    cmd: Producer,
    cmp: Consumer,
    cmd_bell: Doorbell,
    evt_bell: Doorbell,
    next_id: u64,
    stash: VecDeque<Completion>,
}

impl ClientRegion {
    /// Receives the hand-over message from the service and maps the region.
    pub fn receive(sock: BorrowedFd<'_>) -> Result<ClientRegion, ClientError> {
        let mut msg = [0u8; HANDSHAKE_LEN];
        let (n, fds) = shm::recv_fds(sock, &mut msg)?;
        let magic = u64::from_le_bytes(msg[..8].try_into().unwrap_or_default());
        if n != HANDSHAKE_LEN || magic != HANDSHAKE_MAGIC || fds.len() != 3 {
            return Err(ClientError::BadHandshake);
        }
        let version = u32::from_le_bytes(msg[8..12].try_into().unwrap_or_default());
        if version != crate::layout::VERSION {
            return Err(ClientError::Layout(LayoutError::BadVersion(version)));
        }
        let mut fds = fds.into_iter();
        let (Some(mem), Some(cmd), Some(evt)) = (fds.next(), fds.next(), fds.next()) else {
            return Err(ClientError::BadHandshake);
        };
        let region = Region::from_fd(mem, HEADER_SIZE)?;
        ClientRegion::attach(region, Doorbell::from_fd(cmd), Doorbell::from_fd(evt))
    }

    /// Attaches to an already mapped region: validates its header and resumes the ring indices
    /// found there (so a re-attach after `exec` continues where the process left off).
    pub fn attach(
        region: Region,
        cmd_bell: Doorbell,
        evt_bell: Doorbell,
    ) -> Result<ClientRegion, ClientError> {
        let mut h = [0u8; HEADER_STATIC];
        if !region.read(0, &mut h) {
            return Err(ClientError::Layout(LayoutError::Inconsistent));
        }
        let layout = Layout::decode_header(&h, region.len()).map_err(ClientError::Layout)?;
        let load = |off: usize| region.atomic_u32(off).map(|w| w.load(Ordering::Acquire));
        let (Some(cmd_head), Some(cmp_tail)) =
            (load(layout.cmd_ring_off), load(layout.cmp_ring_off + crate::layout::CACHE_LINE))
        else {
            return Err(ClientError::Corrupt);
        };
        let c = layout.config;
        Ok(ClientRegion {
            cmd: Producer::new(layout.cmd_ring_off, c.cmd_entries, cmd_head),
            cmp: Consumer::new(layout.cmp_ring_off, c.cmp_entries, cmp_tail),
            region,
            layout,
            cmd_bell,
            evt_bell,
            next_id: 1,
            stash: VecDeque::new(),
        })
    }

    /// The validated layout read from the header.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The mapping (tests use it to play a hostile app).
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The event doorbell: readable when the service published completions or readiness while
    /// a thread of ours was waiting. The shim puts it in epoll/poll sets that mix kernel fds.
    pub fn event_doorbell(&self) -> BorrowedFd<'_> {
        self.evt_bell.fd()
    }

    fn word(&self, off: usize) -> u32 {
        self.region.atomic_u32(off).map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// `Ok` while the service serves the region.
    pub fn status(&self) -> Result<(), ClientError> {
        match self.word(hdr::STATUS) {
            status::RUNNING => Ok(()),
            status::POISONED => Err(ClientError::Poisoned),
            _ => Err(ClientError::ShutDown),
        }
    }

    /// The service's batch counter: changes whenever completions or readiness were published.
    pub fn wake_seq(&self) -> u32 {
        self.word(hdr::WAKE_SEQ)
    }

    /// Rings the command doorbell if the service says it sleeps (after a SeqCst fence that
    /// orders our preceding publication before reading its flag).
    fn kick(&self) {
        fence(Ordering::SeqCst);
        if self.word(hdr::SVC_WAITING) != 0 {
            let _ = self.cmd_bell.ring();
        }
    }

    /// Submits a command with a fresh request id and wakes the service if it sleeps.
    pub fn submit(&mut self, c: &Command) -> Result<RequestId, ClientError> {
        self.status()?;
        let id = RequestId(self.next_id);
        match self.cmd.push(&self.region, &c.encode(id)) {
            Ok(true) => {}
            Ok(false) => return Err(ClientError::Full),
            Err(_) => return Err(ClientError::Corrupt),
        }
        self.next_id = self.next_id.wrapping_add(1);
        self.kick();
        Ok(id)
    }

    /// The next completion, if any (stashed ones first).
    pub fn poll_completion(&mut self) -> Result<Option<Completion>, ClientError> {
        if let Some(c) = self.stash.pop_front() {
            return Ok(Some(c));
        }
        self.pop_completion()
    }

    fn pop_completion(&mut self) -> Result<Option<Completion>, ClientError> {
        let e = self.cmp.pop(&self.region).map_err(|_| ClientError::Corrupt)?;
        let Some(e) = e else { return Ok(None) };
        // A freed completion slot may unblock a service that ran out of credit and sleeps.
        self.kick();
        Completion::decode(&e).map(Some).map_err(ClientError::Decode)
    }

    /// Spins per `policy` re-checking `ready`, then sleeps on the event doorbell at most once
    /// (for at most `timeout`; the caller keeps the clock). Follows the waiter half of the
    /// wake-up protocol: increment `APP_WAITING`, SeqCst fence, re-check, sleep, decrement.
    pub fn wait(
        &mut self,
        policy: WaitPolicy,
        timeout: Option<Duration>,
        mut ready: impl FnMut(&mut Self) -> bool,
    ) -> Result<Wake, ClientError> {
        for _ in 0..policy.spin {
            if ready(self) {
                return Ok(Wake::Ready);
            }
            self.status()?;
            std::hint::spin_loop();
        }
        let seq = self.wake_seq();
        let Some(waiting) = self.region.atomic_u32(hdr::APP_WAITING) else {
            return Err(ClientError::Corrupt);
        };
        waiting.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        let result = if ready(self) {
            Ok(Wake::Ready)
        } else if self.wake_seq() != seq {
            Ok(Wake::Changed)
        } else if let Err(e) = self.status() {
            Err(e)
        } else {
            match self.evt_bell.wait_timeout(timeout) {
                Ok(_) if ready(self) => Ok(Wake::Ready),
                Ok(true) => Ok(Wake::Changed),
                Ok(false) => Ok(Wake::TimedOut),
                Err(e) => Err(ClientError::from(e)),
            }
        };
        if let Some(w) = self.region.atomic_u32(hdr::APP_WAITING) {
            w.fetch_sub(1, Ordering::SeqCst);
        }
        result
    }

    /// Submits `c` and waits for its completion (others are stashed for `poll_completion`).
    /// Not for posted commands, which get no completion when valid. `timeout` bounds each
    /// sleep: a sleep that ends without any wake-up is [`ClientError::Timeout`].
    pub fn call(
        &mut self,
        c: &Command,
        policy: WaitPolicy,
        timeout: Option<Duration>,
    ) -> Result<Completion, ClientError> {
        let id = self.submit(c)?;
        let mut found = None;
        loop {
            let wake = self.wait(policy, timeout, |me| loop {
                match me.pop_completion() {
                    Ok(Some(done)) if done.id == id => {
                        found = Some(Ok(done));
                        return true;
                    }
                    Ok(Some(other)) => me.stash.push_back(other),
                    Ok(None) => return false,
                    Err(e) => {
                        found = Some(Err(e));
                        return true;
                    }
                }
            })?;
            if let Some(r) = found {
                return r;
            }
            if wake == Wake::TimedOut {
                self.status()?;
                return Err(ClientError::Timeout);
            }
        }
    }

    fn check(&self, s: SocketIndex) -> Result<usize, ClientError> {
        if s.0 < self.layout.config.sockets {
            Ok(self.layout.slot_off(s.0))
        } else {
            Err(ClientError::BadSocket)
        }
    }

    fn load64(&self, off: usize) -> Result<u64, ClientError> {
        self.region.atomic_u64(off).map(|w| w.load(Ordering::Acquire)).ok_or(ClientError::Corrupt)
    }

    fn store64(&self, off: usize, v: u64) -> Result<(), ClientError> {
        self.region
            .atomic_u64(off)
            .map(|w| w.store(v, Ordering::Release))
            .ok_or(ClientError::Corrupt)
    }

    /// Readiness bits and the slot's change counter (sleep until it changes to wait for an event).
    pub fn readiness(&self, s: SocketIndex) -> Result<(Readiness, u32), ClientError> {
        let base = self.check(s)?;
        let seq = self.word(base + slot::SEQ);
        Ok((Readiness(self.word(base + slot::READY)), seq))
    }

    /// The pending socket error the service published (errno, 0 for none).
    pub fn socket_error(&self, s: SocketIndex) -> Result<u32, ClientError> {
        Ok(self.word(self.check(s)? + slot::ERROR))
    }

    /// Free bytes in the socket's tx ring.
    pub fn tx_space(&self, s: SocketIndex) -> Result<usize, ClientError> {
        let base = self.check(s)?;
        let used =
            self.load64(base + slot::TX_HEAD)?.wrapping_sub(self.load64(base + slot::TX_TAIL)?);
        let cap = u64::from(self.layout.config.tx_buf);
        if used > cap {
            return Err(ClientError::Corrupt);
        }
        Ok((cap - used) as usize)
    }

    /// Copies as much of `data` as fits into the tx ring (the one copy) and submits `Send`.
    /// Returns the bytes accepted (0 when the ring is full: wait for `WRITABLE`).
    pub fn send(
        &mut self,
        s: SocketIndex,
        data: &[u8],
        flags: SendFlags,
    ) -> Result<usize, ClientError> {
        let base = self.check(s)?;
        let n = self.tx_space(s)?.min(data.len());
        if n == 0 {
            return Ok(0);
        }
        let head = self.load64(base + slot::TX_HEAD)?;
        let cap = self.layout.config.tx_buf as usize;
        if !ring_write(&self.region, self.layout.tx_off(s.0), cap, head, &data[..n]) {
            return Err(ClientError::Corrupt);
        }
        self.submit(&Command::Send { sock: s, len: n as u32, flags, dest: None })?;
        self.store64(base + slot::TX_HEAD, head + n as u64)?;
        Ok(n)
    }

    /// Bytes readable from the socket's rx ring.
    pub fn rx_available(&self, s: SocketIndex) -> Result<usize, ClientError> {
        let base = self.check(s)?;
        let n = self.load64(base + slot::RX_HEAD)?.wrapping_sub(self.load64(base + slot::RX_TAIL)?);
        if n > u64::from(self.layout.config.rx_buf) {
            return Err(ClientError::Corrupt);
        }
        Ok(n as usize)
    }

    /// Copies up to `buf.len()` received bytes out (the one copy) and submits `RecvWindow`.
    pub fn recv(&mut self, s: SocketIndex, buf: &mut [u8]) -> Result<usize, ClientError> {
        let base = self.check(s)?;
        let n = self.rx_available(s)?.min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        let tail = self.load64(base + slot::RX_TAIL)?;
        let cap = self.layout.config.rx_buf as usize;
        if !ring_read(&self.region, self.layout.rx_off(s.0), cap, tail, &mut buf[..n]) {
            return Err(ClientError::Corrupt);
        }
        self.submit(&Command::RecvWindow { sock: s, consumed: n as u32 })?;
        self.store64(base + slot::RX_TAIL, tail + n as u64)?;
        Ok(n)
    }
}
