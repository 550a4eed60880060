//! The C ABI edge: every `#[no_mangle] pub unsafe extern "C"` symbol `libjoyride.so` exports.
//!
//! Each export does the same four things (DESIGN rule 10):
//! 1. route the fd through the lock-free fd table — not ours: call the real libc function
//!    from `libc_next` untouched (no allocation, no lock, errno as libc left it);
//! 2. validate and convert the C arguments once (`NULL` → `EFAULT`, lengths → slices);
//! 3. call safe code in `socket`/`events`;
//! 4. map the `Result` to the C return value in `edge`, the one place that sets `errno`
//!    (and catches a panic, which must never unwind into C: it becomes `EIO`).

use crate::errno::{Errno, Res};
use crate::libc_next::{errno, set_errno};
use joyride_ipc::SockAddr;
use libc::{c_void, sockaddr, socklen_t};
use std::panic::{catch_unwind, AssertUnwindSafe};

pub mod io;
pub mod poll;
pub mod sock;

/// Runs when the library is loaded (before `main`): an image that a Joyride process `exec`ed
/// into takes back the sockets whose fds survived the exec (`socket::inherit_after_exec`).
#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = at_load;

extern "C" fn at_load() {
    crate::libc_next::note_owner();
    let _ = catch_unwind(crate::socket::inherit_after_exec);
}

/// C return types: the value that means "failed, see errno".
trait CRet: Copy {
    const FAIL: Self;
}

impl CRet for libc::c_int {
    const FAIL: Self = -1;
}

impl CRet for libc::ssize_t {
    const FAIL: Self = -1;
}

/// The one `Result` → C mapping: `Ok(v)` returns `v` (errno untouched, as libc leaves it on
/// success), `Err(e)` sets errno = `e` and returns -1. A panic becomes `EIO`.
fn edge<T: CRet>(f: impl FnOnce() -> Res<T>) -> T {
    let saved = errno();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            set_errno(saved);
            v
        }
        Ok(Err(e)) => {
            set_errno(e);
            T::FAIL
        }
        Err(_) => {
            set_errno(Errno::IO);
            T::FAIL
        }
    }
}

fn to_ssize(n: usize) -> libc::ssize_t {
    libc::ssize_t::try_from(n).unwrap_or(libc::ssize_t::MAX)
}

/// A caller's read-only buffer.
///
/// # Safety
/// `p` must be null or point at `len` readable bytes that stay valid and unaliased by writes
/// for `'a` (the C caller's contract for the call).
unsafe fn bytes<'a>(p: *const c_void, len: usize) -> Res<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(Errno::FAULT);
    }
    if len > isize::MAX as usize {
        return Err(Errno::INVAL);
    }
    // SAFETY: non-null, `len` readable bytes per the caller's contract, `len <= isize::MAX`.
    Ok(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) })
}

/// A caller's writable buffer (its bytes are treated as initialised: C memory is opaque).
///
/// # Safety
/// `p` must be null or point at `len` writable bytes, not otherwise accessed during `'a`.
unsafe fn bytes_mut<'a>(p: *mut c_void, len: usize) -> Res<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(Errno::FAULT);
    }
    if len > isize::MAX as usize {
        return Err(Errno::INVAL);
    }
    // SAFETY: non-null, `len` writable bytes per the caller's contract, `len <= isize::MAX`.
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), len) })
}

/// Reads a `sockaddr` argument (`bind`/`connect`/`sendto`), with Linux's length checks.
///
/// # Safety
/// `p` must be null or point at `len` readable bytes.
unsafe fn read_addr(p: *const sockaddr, len: socklen_t, for_bind: bool) -> Res<SockAddr> {
    // Linux: a length above sizeof(struct sockaddr_storage) is EINVAL, NULL with a length
    // EFAULT.
    if len as usize > std::mem::size_of::<libc::sockaddr_storage>() {
        return Err(Errno::INVAL);
    }
    if p.is_null() {
        return Err(if len == 0 { Errno::INVAL } else { Errno::FAULT });
    }
    // SAFETY: forwarded caller contract.
    let b = unsafe { bytes(p.cast(), len as usize) }?;
    crate::socket::parse_addr(b, for_bind)
}

/// Writes an address result into `(p, len)` the way the kernel does: copies at most `*len`
/// bytes and stores the full size in `*len`. A null `p` skips it (accept's "don't care").
///
/// # Safety
/// `p` must be null or point at `*len` writable bytes; `len` null or valid for read/write.
unsafe fn write_addr(p: *mut sockaddr, len: *mut socklen_t, a: &SockAddr) -> Res<()> {
    if p.is_null() {
        return Ok(());
    }
    if len.is_null() {
        return Err(Errno::FAULT);
    }
    // SAFETY: `len` is non-null and valid per the caller's contract.
    let have = unsafe { len.read() } as i32;
    if have < 0 {
        return Err(Errno::INVAL);
    }
    let (b, n) = crate::socket::encode_addr(a);
    let k = n.min(have as usize);
    // SAFETY: `p` has `*len >= k` writable bytes per the caller's contract.
    let dst = unsafe { bytes_mut(p.cast(), k) }?;
    dst.copy_from_slice(&b[..k]);
    // SAFETY: as above.
    unsafe { len.write(n as socklen_t) };
    Ok(())
}
