//! The connection to the service: set up on the first `socket(AF_INET, …)`, then shared by all
//! threads. Commands go through one mutex-protected [`ClientRegion`]; readiness and stream
//! positions are read lock-free through a second mapping of the same region ([`View`]).
//!
//! ## Blocking: spin, then sleep on the doorbell
//! [`Conn::block`] re-checks the caller's condition for `JOYRIDE_SPIN_US` (default 50 µs with 4+ CPUs, else 0), then
//! follows the ipc wake-up protocol (`PROTOCOL.md` §9): increment `app_waiting`, SeqCst fence,
//! re-check (and compare `wake_seq`), then `ppoll` on the event doorbell together with the
//! caller's kernel fds and a private **bell** (an eventfd per sleeping thread).
//!
//! Several threads may sleep at once, but the doorbell is one eventfd that a woken thread must
//! drain (else it stays readable and every later sleep returns at once). A thread that drains it
//! therefore rings the bell of every other registered sleeper, so a sleeper that checked the
//! condition just before the drain and entered `ppoll` just after still wakes. Bells live in a
//! fixed table of [`BELLS`] slots and are never closed (a ring can never hit a reused fd).
//! `close`/`shutdown` ring all bells too, so sleepers re-check their sockets.

use crate::clock::{self, Deadline};
use crate::errno::{Errno, Res};
use crate::libc_next as sys;
use joyride_ipc::layout::{hdr, slot, status};
use joyride_ipc::{
    ClientRegion, Command, Completion, Layout, Region, SocketIndex, WaitPolicy, Wake,
};
use libc::{pollfd, sigset_t};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{fence, AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

/// Default path of the service's Unix socket.
pub const DEFAULT_SOCKET: &str = "/run/joyride/joyride.sock";

/// How the process uses the network, decided once at the first AF_INET `socket()`.
#[derive(Debug)]
pub(crate) enum Mode {
    /// Joyride sockets through the service.
    Service(Box<Conn>),
    /// No service, `JOYRIDE_FALLBACK=kernel`: everything goes to libc.
    Kernel,
    /// No service and no fallback: AF_INET `socket()` fails with this errno.
    Down(Errno),
}

static MODE: OnceLock<Mode> = OnceLock::new();

/// The mode, connecting to the service on first use.
pub(crate) fn mode() -> &'static Mode {
    MODE.get_or_init(init)
}

/// The connection if it is up (never initialises).
pub(crate) fn get() -> Option<&'static Conn> {
    match MODE.get() {
        Some(Mode::Service(c)) => Some(c),
        _ => None,
    }
}

fn init() -> Mode {
    let path = std::env::var_os("JOYRIDE_SOCKET")
        .map(|p| p.into_encoded_bytes())
        .unwrap_or_else(|| DEFAULT_SOCKET.as_bytes().to_vec());
    let fallback = std::env::var("JOYRIDE_FALLBACK").is_ok_and(|v| v == "kernel");
    // Spinning before a sleep only pays with cores to spare: on a 2-CPU machine a spinning app
    // takes the CPU the service needs to answer it (bench/README.md, app-throughput.sh).
    let default_spin =
        if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 4 { 50 } else { 0 };
    let spin_us =
        std::env::var("JOYRIDE_SPIN_US").ok().and_then(|v| v.parse().ok()).unwrap_or(default_spin);
    match Conn::connect(path.clone(), Duration::from_micros(spin_us)) {
        Ok(c) => {
            sys::at_fork(fork_prepare, fork_parent, fork_child);
            Mode::Service(Box::new(c))
        }
        Err(why) if fallback => {
            let _ = why;
            Mode::Kernel
        }
        Err(why) => {
            let msg = format!(
                "joyride: cannot reach the Joyride service at {} ({why}); AF_INET sockets fail \
                 with ENETDOWN. Start it (joyride up) or set JOYRIDE_FALLBACK=kernel to use \
                 the kernel's stack.\n",
                String::from_utf8_lossy(&path)
            );
            sys::stderr(msg.as_bytes());
            Mode::Down(Errno::NETDOWN)
        }
    }
}

/// What the service published for one socket, read lock-free.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SlotView {
    /// Readiness bits (`EPOLL*`).
    pub(crate) ready: u32,
    /// Change counter.
    pub(crate) seq: u32,
    /// Total bytes the service wrote into the rx ring.
    pub(crate) rx_head: u64,
    /// Bytes readable now.
    pub(crate) rx_avail: u64,
    /// Total bytes the service consumed from the tx ring.
    pub(crate) tx_tail: u64,
    /// Free bytes in the tx ring.
    pub(crate) tx_space: u64,
    /// Pending socket error.
    pub(crate) error: u32,
    /// Protocol state code.
    pub(crate) state: u32,
}

/// The second mapping of the region: lock-free reads of what the service publishes.
#[derive(Debug)]
pub(crate) struct View {
    region: Region,
    layout: Layout,
}

impl View {
    fn u32(&self, off: usize) -> u32 {
        self.region.atomic_u32(off).map_or(0, |w| w.load(Ordering::Acquire))
    }

    fn u64(&self, off: usize) -> u64 {
        self.region.atomic_u64(off).map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// The socket's published state (all zero for an out-of-range index).
    pub(crate) fn slot(&self, s: SocketIndex) -> SlotView {
        let c = self.layout.config;
        if s.0 >= c.sockets {
            return SlotView::default();
        }
        let b = self.layout.slot_off(s.0);
        let seq = self.u32(b + slot::SEQ);
        let rx_head = self.u64(b + slot::RX_HEAD);
        let rx_tail = self.u64(b + slot::RX_TAIL);
        let tx_tail = self.u64(b + slot::TX_TAIL);
        let tx_head = self.u64(b + slot::TX_HEAD);
        let tx_used = tx_head.wrapping_sub(tx_tail).min(u64::from(c.tx_buf));
        SlotView {
            ready: self.u32(b + slot::READY),
            seq,
            rx_head,
            rx_avail: rx_head.wrapping_sub(rx_tail).min(u64::from(c.rx_buf)),
            tx_tail,
            tx_space: u64::from(c.tx_buf) - tx_used,
            error: self.u32(b + slot::ERROR),
            state: self.u32(b + slot::STATE),
        }
    }

    fn wake_seq(&self) -> u32 {
        self.u32(hdr::WAKE_SEQ)
    }

    fn running(&self) -> bool {
        self.u32(hdr::STATUS) == status::RUNNING
    }
}

/// Sleeping-thread bells (see the module docs).
const BELLS: usize = 128;

struct Bell {
    busy: AtomicBool,
    fd: AtomicI32,
}

static BELL_TABLE: [Bell; BELLS] =
    [const { Bell { busy: AtomicBool::new(false), fd: AtomicI32::new(-1) } }; BELLS];
static SLEEPERS: AtomicU32 = AtomicU32::new(0);
/// Threads waiting for a command's answer (`Conn::call_with`).
static CALLERS: AtomicU32 = AtomicU32::new(0);

/// One thread counted in [`CALLERS`] until dropped.
struct Caller;

impl Caller {
    fn enter() -> Caller {
        CALLERS.fetch_add(1, Ordering::SeqCst);
        Caller
    }
}

impl Drop for Caller {
    fn drop(&mut self) {
        CALLERS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A claimed bell slot; released (and drained) on drop.
struct BellGuard {
    slot: usize,
    fd: RawFd,
}

impl BellGuard {
    fn claim() -> Option<BellGuard> {
        for (i, b) in BELL_TABLE.iter().enumerate() {
            if b.busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                let mut fd = b.fd.load(Ordering::Acquire);
                if fd < 0 {
                    match sys::eventfd(true, true) {
                        Ok(f) => {
                            fd = f;
                            b.fd.store(f, Ordering::Release);
                        }
                        Err(_) => {
                            b.busy.store(false, Ordering::Release);
                            return None;
                        }
                    }
                }
                sys::drain(fd);
                SLEEPERS.fetch_add(1, Ordering::SeqCst);
                return Some(BellGuard { slot: i, fd });
            }
        }
        None
    }
}

impl Drop for BellGuard {
    fn drop(&mut self) {
        sys::drain(self.fd);
        SLEEPERS.fetch_sub(1, Ordering::SeqCst);
        BELL_TABLE[self.slot].busy.store(false, Ordering::Release);
    }
}

/// Rings the bell of every registered sleeper except `except` (so each re-checks).
pub(crate) fn poke_sleepers(except: RawFd) {
    if SLEEPERS.load(Ordering::SeqCst) == 0 {
        return;
    }
    for b in &BELL_TABLE {
        if b.busy.load(Ordering::Acquire) {
            let fd = b.fd.load(Ordering::Acquire);
            if fd >= 0 && fd != except {
                sys::ring(fd);
            }
        }
    }
}

/// How a [`Conn::block`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Woke {
    /// The condition held (or something changed): re-check.
    Check,
    /// The deadline passed.
    TimedOut,
}

/// The live connection.
#[derive(Debug)]
pub(crate) struct Conn {
    client: Mutex<ClientRegion>,
    view: View,
    /// The event doorbell's descriptor (changes once in a forked child).
    doorbell: AtomicI32,
    unix: OwnedFd,
    /// The service's socket path (a forked child connects again).
    path: Vec<u8>,
    /// A forked child that could not rejoin the service: every Joyride call fails.
    dead: AtomicBool,
    spin: Duration,
}

impl Conn {
    fn connect(path: Vec<u8>, spin: Duration) -> Result<Conn, String> {
        let (unix, client) = Self::hand_over(&path)?;
        let memfd = client.region().fd().try_clone_to_owned().map_err(|e| format!("{e}"))?;
        let region = Region::from_fd(memfd, client.layout().region_size)
            .map_err(|e| format!("mapping the region: {e}"))?;
        let view = View { region, layout: *client.layout() };
        let doorbell = AtomicI32::new(client.event_doorbell().as_raw_fd());
        let dead = AtomicBool::new(false);
        Ok(Conn { client: Mutex::new(client), view, doorbell, unix, path, dead, spin })
    }

    /// Connects to the service and receives a region.
    fn hand_over(path: &[u8]) -> Result<(OwnedFd, ClientRegion), String> {
        let unix = sys::unix_connect(path).map_err(errno_text)?;
        let client = ClientRegion::receive(unix.as_fd()).map_err(|e| format!("{e}"))?;
        Ok((unix, client))
    }

    /// In a forked child (single-threaded, holding the command lock `cl`): a region of its
    /// own, its Unix connection and doorbell in place of the inherited ones, and the parent's
    /// sockets attached at the same indices with `Join` — so the fd table stays as it is.
    fn rejoin(&self, cl: &mut ClientRegion, ticket: u64) -> Result<(), String> {
        let (unix, client) = Self::hand_over(&self.path)?;
        if client.layout() != &self.view.layout {
            return Err("the service's region shape changed".into());
        }
        let memfd = client.region().fd().try_clone_to_owned().map_err(|e| format!("{e}"))?;
        // The inherited descriptors now name the child's own files (and the parent's are
        // closed here, so the service sees the parent's exit when it comes); CLOEXEC kept.
        let view_fd = self.view.region.fd().as_raw_fd();
        sys::dup3(memfd.as_raw_fd(), view_fd, libc::O_CLOEXEC).map_err(errno_text)?;
        self.view.region.remap().map_err(|e| format!("mapping the region: {e}"))?;
        sys::dup3(unix.as_raw_fd(), self.unix.as_raw_fd(), libc::O_CLOEXEC).map_err(errno_text)?;
        self.doorbell.store(client.event_doorbell().as_raw_fd(), Ordering::Release);
        *cl = client; // drops the inherited region: unmaps it, closes its doorbells
        let done = self.call_with(cl, &Command::Join { ticket }).map_err(errno_text)?;
        done.result.map_err(|e| errno_text(Errno::from(e))).map(drop)
    }

    /// The lock-free view.
    pub(crate) fn view(&self) -> &View {
        &self.view
    }

    /// The region's sizes.
    pub(crate) fn layout(&self) -> &Layout {
        &self.view.layout
    }

    /// Locks the command side. A panic never happens while it is held (so poisoning is
    /// ignored).
    pub(crate) fn client(&self) -> MutexGuard<'_, ClientRegion> {
        self.client.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Errors out if the service no longer serves us.
    pub(crate) fn alive(&self) -> Res<()> {
        if self.view.running() && !self.dead.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Errno::NETDOWN)
        }
    }

    /// Submits `c` and waits for its completion; returns the value or the service's errno.
    /// Holds the command lock throughout (commands are answered in microseconds). A service
    /// that stops answering and hangs up its socket yields `ENETDOWN`, never a hang.
    pub(crate) fn call(&self, c: &Command) -> Res<Completion> {
        let mut cl = self.client();
        let result = self.call_with(&mut cl, c);
        drop(cl);
        // `ClientRegion::wait` may have drained the doorbell: let other sleepers re-check.
        poke_sleepers(-1);
        result
    }

    /// [`Conn::call`] with the command lock already held.
    fn call_with(&self, cl: &mut ClientRegion, c: &Command) -> Res<Completion> {
        if self.dead.load(Ordering::Acquire) {
            return Err(Errno::NETDOWN);
        }
        let id = loop {
            match cl.submit(c) {
                Ok(id) => break id,
                Err(joyride_ipc::ClientError::Full) => {
                    // The service is behind; give it a moment (its completions wake us).
                    let _ =
                        cl.wait(WaitPolicy { spin: 100 }, Some(Duration::from_millis(1)), |_| {
                            false
                        });
                    self.check_hangup()?;
                }
                Err(e) => return Err(e.into()),
            }
        };
        let policy = WaitPolicy { spin: 2000 };
        let _waiting = Caller::enter();
        loop {
            let mut found = None;
            let w = cl.wait(policy, Some(Duration::from_millis(500)), |me| loop {
                match me.poll_completion() {
                    Ok(Some(done)) if done.id == id => {
                        found = Some(Ok(done));
                        return true;
                    }
                    Ok(Some(_orphan)) => {} // an error answer to a posted command: dropped
                    Ok(None) => return false,
                    Err(e) => {
                        found = Some(Err(Errno::from(e)));
                        return true;
                    }
                }
            });
            if let Some(r) = found {
                break r;
            }
            match w {
                Err(joyride_ipc::ClientError::Interrupted) | Ok(_) => {}
                Err(e) => break Err(e.into()),
            }
            if w == Ok(Wake::TimedOut) {
                if let Err(e) = self.check_hangup() {
                    break Err(e);
                }
            }
        }
    }

    fn check_hangup(&self) -> Res<()> {
        if sys::hung_up(self.unix.as_raw_fd()) {
            Err(Errno::NETDOWN)
        } else {
            self.alive()
        }
    }

    /// Sleeps until `ready()` may hold: spins for the budget re-checking `ready()` (so a kernel
    /// fd in `kfds` is noticed at most one budget late), then sleeps on the doorbell, the thread's bell and `kfds` (whose `revents` the
    /// kernel fills) until the deadline. `Err(EINTR)` when a signal arrived.
    pub(crate) fn block(
        &self,
        kfds: &mut Vec<pollfd>,
        deadline: Deadline,
        mask: Option<&sigset_t>,
        mut ready: impl FnMut() -> bool,
    ) -> Res<Woke> {
        if !self.spin.is_zero() {
            let start = clock::now();
            while clock::now().duration_since(start) < self.spin {
                if ready() {
                    return Ok(Woke::Check);
                }
                self.alive()?;
                std::hint::spin_loop();
            }
        }
        if deadline.expired() {
            return Ok(Woke::TimedOut);
        }
        let seq = self.view.wake_seq();
        let doorbell = self.doorbell.load(Ordering::Acquire);
        let bell = BellGuard::claim();
        let waiting = self.view.region.atomic_u32(hdr::APP_WAITING);
        if let Some(w) = waiting {
            w.fetch_add(1, Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
        let result = if ready() || self.view.wake_seq() != seq {
            Ok(Woke::Check)
        } else if !self.view.running() {
            Err(Errno::NETDOWN)
        } else {
            let base = kfds.len();
            kfds.push(pollfd { fd: doorbell, events: libc::POLLIN, revents: 0 });
            let bell_fd = bell.as_ref().map_or(-1, |b| b.fd);
            kfds.push(pollfd { fd: bell_fd, events: libc::POLLIN, revents: 0 });
            // The service's Unix socket: its hang-up (the service died without shutting the
            // region down) ends the sleep, so no wait outlives the service.
            kfds.push(pollfd { fd: self.unix.as_raw_fd(), events: 0, revents: 0 });
            // Without a bell (more than BELLS sleepers) cap the sleep so a missed ring costs
            // at most 2 ms.
            let mut t = deadline.left();
            if bell.is_none() {
                t = Some(t.map_or(Duration::from_millis(2), |t| t.min(Duration::from_millis(2))));
            }
            let r = sys::ppoll(kfds, t, mask);
            let rang = kfds[base].revents != 0;
            let hung = kfds[base + 2].revents & (libc::POLLHUP | libc::POLLERR) != 0;
            kfds.truncate(base);
            if hung {
                if let Some(w) = waiting {
                    w.fetch_sub(1, Ordering::SeqCst);
                }
                return Err(Errno::NETDOWN);
            }
            if rang && sys::drain(doorbell) {
                poke_sleepers(bell_fd);
                // A thread waiting for a command's answer sleeps on the doorbell alone (no
                // bell): give it back the ring this thread may have taken from it.
                if CALLERS.load(Ordering::SeqCst) > 0 {
                    sys::ring(doorbell);
                }
            }
            match r {
                Ok(0) if deadline.expired() => Ok(Woke::TimedOut),
                Ok(_) => Ok(Woke::Check),
                Err(e) => Err(e),
            }
        };
        if let Some(w) = waiting {
            w.fetch_sub(1, Ordering::SeqCst);
        }
        drop(bell);
        result
    }
}

// ---- fork ------------------------------------------------------------------------------------
//
// A forked child must not touch its parent's region (its rings are single-producer), nor keep
// the parent's Unix connection open (the service would never see the parent exit). So, from
// `pthread_atfork` handlers (which glibc also runs for `daemon()`):
// - prepare (parent): take the command lock (no other thread can be mid-command at the fork,
//   and the child's copy of the lock is then held by the forking thread, not a vanished one)
//   and send `Fork`: the service snapshots the parent's sockets into a ticket;
// - parent: release the lock;
// - child: connect again, receive a fresh region of the same shape, put it behind the
//   inherited descriptor numbers and mapping, and `Join` the ticket: the parent's sockets appear
//   at the same slot indices, so the fd table and every socket object stay valid as they are.
// Sockets are then shared like Linux files: each process's `close` drops its reference; the
// connection closes with the last one. `vfork` and `posix_spawn` run no handlers (the child
// only execs), and need none.

/// What `fork_prepare` leaves for the handler that runs after the fork, on the same thread.
struct Forking {
    lock: MutexGuard<'static, ClientRegion>,
    ticket: Res<u64>,
}

thread_local! {
    static FORKING: std::cell::RefCell<Option<Forking>> = const { std::cell::RefCell::new(None) };
}

extern "C" fn fork_prepare() {
    let _ = std::panic::catch_unwind(|| {
        let Some(conn) = get() else { return };
        let mut lock = conn.client();
        let ticket =
            conn.call_with(&mut lock, &Command::Fork).and_then(|d| d.result.map_err(Errno::from));
        FORKING.with(|f| *f.borrow_mut() = Some(Forking { lock, ticket }));
    });
}

extern "C" fn fork_parent() {
    let _ = std::panic::catch_unwind(|| {
        drop(FORKING.with(|f| f.borrow_mut().take()));
    });
}

extern "C" fn fork_child() {
    let _ = std::panic::catch_unwind(|| {
        sys::note_owner();
        let Some(conn) = get() else { return };
        let Some(Forking { mut lock, ticket }) = FORKING.with(|f| f.borrow_mut().take()) else {
            return;
        };
        forget_bells();
        let r = ticket.map_err(errno_text).and_then(|t| conn.rejoin(&mut lock, t));
        if let Err(why) = r {
            conn.dead.store(true, Ordering::Release);
            let msg = format!(
                "joyride: this forked process could not rejoin the Joyride service ({why}); \
                 its AF_INET sockets fail with ENETDOWN\n"
            );
            sys::stderr(msg.as_bytes());
        }
    });
}

/// In a forked child: the bells are the parent's eventfds (shared files) and their sleepers
/// are the parent's threads; start with none.
fn forget_bells() {
    for b in &BELL_TABLE {
        let fd = b.fd.swap(-1, Ordering::AcqRel);
        if fd >= 0 {
            let _ = sys::close(fd);
        }
        b.busy.store(false, Ordering::Release);
    }
    SLEEPERS.store(0, Ordering::SeqCst);
    CALLERS.store(0, Ordering::SeqCst);
}

fn errno_text(e: Errno) -> String {
    std::io::Error::from_raw_os_error(e.0).to_string()
}

/// After a blocking socket call was interrupted by a signal: restart it (true) or fail with
/// `EINTR` (false)?
///
/// Linux restarts socket calls when the handler has `SA_RESTART`, except calls with a timeout
/// (`SO_RCVTIMEO`/`SO_SNDTIMEO`), which always return `EINTR`. Which signal interrupted the
/// wait is not knowable from user space after the fact, so the shim restarts only if *every*
/// installed handler has `SA_RESTART` (the common `signal()`/BSD case) and returns `EINTR` as
/// soon as any handler lacks it (programs that install such handlers expect `EINTR`).
pub(crate) fn restart(has_timeout: bool) -> bool {
    !has_timeout && sys::all_handlers_restart()
}
