//! # joyride-posix — `libjoyride.so`, the LD_PRELOAD shim
//!
//! Gives an unmodified, dynamically linked Linux program Joyride's AF_INET TCP and UDP sockets:
//! `LD_PRELOAD=libjoyride.so program`. The shim interposes the C socket ABI; AF_INET
//! `SOCK_STREAM`/`SOCK_DGRAM` sockets are served by the Joyride service (`joyrided`) through
//! the shared-memory protocol of `joyride-ipc`, and everything else (AF_UNIX, AF_INET6 for
//! now, files, pipes, every fd the shim does not own) goes to libc untouched.
//!
//! Layer: above `joyride-ipc` and `libc` only. The design is written out in `posix/README.md`;
//! the summary:
//!
//! - **Connection** (`conn.rs`): on the first AF_INET `socket()`, connect to the service's Unix
//!   socket (`JOYRIDE_SOCKET`, default [`DEFAULT_SOCKET`]) and receive the region and its
//!   doorbells. No service: with `JOYRIDE_FALLBACK=kernel` every socket goes to the kernel;
//!   otherwise one clear line on stderr and AF_INET `socket()` fails with `ENETDOWN` ("Network
//!   is down": what programs then print is true, and unlike `EAFNOSUPPORT` it does not make
//!   dual-stack programs silently retry another family or report a missing protocol).
//! - **fd numbers are real kernel fds** (`fdtable.rs`): each Joyride socket is backed by an
//!   eventfd the shim creates, so numbers never collide, survive `dup2`, fit `FD_SETSIZE` and
//!   carry `FD_CLOEXEC` in the kernel. A flat, lock-free array indexed by fd routes each call.
//!   Sockets are reference counted like Linux files (a `close` during a blocked `recv` on
//!   another thread leaves that `recv` running, exactly as Linux does).
//! - **Blocking without burning a core** (`Conn::block`): spin `JOYRIDE_SPIN_US`
//!   (default 50 µs with 4+ CPUs, else 0), then sleep on the service's event doorbell; signals give `EINTR`, with
//!   `SA_RESTART` honoured where Linux restarts (`conn::restart`); `SO_RCVTIMEO`/
//!   `SO_SNDTIMEO` bound the wait.
//! - **Readiness** (`events.rs`): poll/select/epoll sets may mix Joyride and kernel fds; epoll
//!   keeps a real kernel epoll fd and the shim reports Joyride members with Linux's LT/ET/
//!   ONESHOT semantics.
//! - **The C edge** (`abi`, exported only from the cdylib build): validate pointers, convert
//!   once, call safe code, map `Result` to `-1` + errno in one place; never panics into C.
//!
//! Tests: the C programs of `posix/tests/` against an in-test service that backs each Joyride
//! socket with a kernel socket, and the real `joyrided` in `service/tests/` (fork, exec,
//! readiness, CPython's `test_socket`, the application matrix; `posix/COMPAT.md`).
//!
//! ## unsafe
//! `#![deny(unsafe_code)]` everywhere except `abi/` (the exported `extern "C"` functions) and
//! `libc_next.rs` (the `dlsym(RTLD_NEXT)` table and the raw syscalls the shim makes); every
//! block carries a `// SAFETY:` comment, every `unsafe fn` a `# Safety` section, and there is
//! no `static mut`.
#![deny(unsafe_code)]
// Unit tests build without the `abi` exports (so the test harness's own libc calls are not
// interposed); the code only `abi` reaches is then unused.
#![cfg_attr(test, allow(dead_code))]

#[cfg(not(test))]
#[allow(unsafe_code)]
pub mod abi;
mod clock;
mod conn;
mod errno;
mod events;
mod fdtable;
mod libc_next;
mod socket;

pub use conn::DEFAULT_SOCKET;
pub use errno::{Errno, Res};
