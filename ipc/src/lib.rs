//! # joyride-ipc — the protocol between an application and `joyrided`
//!
//! Layer: above `joyride-base` only (plus `libc`). Used by the service (`service/`) and by the
//! application shim (`posix/`, `libjoyride.so`). The byte layout is versioned and documented,
//! offset by offset, in `ipc/PROTOCOL.md`; this page is the summary.
//!
//! ## Shape
//! The service creates one shared-memory [`Region`] per application process (a sealed memfd,
//! sized once) and hands it, with two eventfd [`Doorbell`]s, over a Unix stream socket with
//! `SCM_RIGHTS` ([`ServiceRegion::send_handshake`] / [`ClientRegion::receive`]). The region
//! holds, in order: a header; a **command ring** (app → service) and a **completion ring**
//! (service → app), both lock-free SPSC rings of 64-byte entries with `head`/`tail` on
//! separate cache lines ([`ring`]); a **socket table** of 128-byte slots (readiness bits in
//! `EPOLL*` values, a change counter, rx/tx stream positions, pending error); and **data rings**:
//! per socket an rx byte ring (written by the service) and a tx byte ring (written by the app).
//! Data crosses with one copy each way between the app's buffer and the region; a `Send`
//! command only says "`len` more bytes are in my tx ring", a `RecvWindow` "I consumed `n`".
//!
//! ## Trust
//! The app trusts the service; the service trusts nothing in the region. [`ServiceRegion`] keeps
//! its own [`Layout`] and its own copy of every ring index and data-ring position; it copies
//! each command entry out of shared memory once, decodes it ([`Command::decode`] validates every
//! field and rejects non-zero reserved bytes), checks it against its own state (socket index in
//! range and owned by this region, `Send` lengths within the tx ring, `RecvWindow` within what
//! was delivered) and only then hands a typed [`Request`] to the caller. Invalid commands are
//! answered with `-EINVAL`/`-EBADF` and counted. A ring index that cannot be true
//! (`head − tail > entries`) **poisons** the region: the service stops reading it, marks the
//! header, and reports [`ServiceError::Poisoned`] so the caller can reclaim the app's sockets.
//! Nothing an app writes can make the service panic or access memory outside the region (the
//! memfd is sealed against shrinking, so not even `SIGBUS`).
//!
//! ## Wake-ups (nothing lost, no spinning required)
//! Each direction has a "waiter sleeping" word in the header and an eventfd:
//! - **Publisher**: publish (Release store of the ring head / slot seq), then a SeqCst fence,
//!   then read the peer's waiting word; ring the doorbell only if it is non-zero.
//! - **Waiter**: spin for a short budget re-checking its condition; then increment its waiting
//!   word, SeqCst fence, re-check the condition (and the header's `wake_seq`); if still nothing,
//!   sleep on the eventfd ([`Doorbell::wait_timeout`]); on wake, decrement the word.
//!
//! The two fences order "publish → read flag" against "set flag → re-check", so either the
//! publisher sees the flag and rings or the waiter sees the data; an eventfd keeps a ring that
//! lands before the waiter sleeps. The service batches: [`ServiceRegion::flush`] bumps
//! `wake_seq` and rings at most once per engine iteration. The spin budget is adaptive in the
//! shim (grow while spinning pays off, shrink when it does not); this crate provides the
//! mechanism ([`ClientRegion::wait`], [`WaitPolicy`]).
//!
//! ## unsafe
//! `#![deny(unsafe_code)]` everywhere except [`shm`] (mmap, eventfd, `sendmsg`/`recvmsg`), where
//! every block carries a `// SAFETY:` comment and no reference to shared bytes is ever formed.
#![deny(unsafe_code)]

mod client;
pub mod layout;
pub mod ring;
mod service;
pub mod shm;
mod wire;

pub use client::{ClientError, ClientRegion, WaitPolicy, Wake};
pub use layout::{Layout, LayoutError, RegionConfig};
pub use service::{CommandError, PoisonReason, Request, ServiceError, ServiceRegion, ServiceStats};
pub use shm::{Doorbell, Region};
pub use wire::{
    inherited, Command, Completion, DecodeError, Domain, Entry, Errno, OptLevel, OptValue, Payload,
    Protocol, Readiness, RequestId, SendFlags, Shutdown, SockAddr, SockOpt, SockType, SocketIndex,
    SocketStat, ADDR_LEN, OPT_MAX,
};

/// Bytes of the hand-over message sent with the region's descriptors.
pub const HANDSHAKE_LEN: usize = 16;
/// `b"JOYRHELO"`: first 8 bytes of the hand-over message.
pub const HANDSHAKE_MAGIC: u64 = u64::from_le_bytes(*b"JOYRHELO");
