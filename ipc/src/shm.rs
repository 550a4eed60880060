//! The OS edge of `joyride-ipc`, and the only module with `unsafe` in it.
//!
//! - [`Region`]: a sealed `memfd` mapped `MAP_SHARED` (RAII: `munmap` + `close` on drop). The
//!   mapping is never handed out as a Rust reference to bytes: other code reads and writes it
//!   through bounds-checked accessors — `&AtomicU32`/`&AtomicU64` for control words (atomics
//!   have interior mutability, so a shared reference to one in shared memory is sound), and
//!   [`Region::read`]/[`Region::write`], which copy bytes between the mapping and ordinary
//!   memory with raw pointers.
//! - [`Doorbell`]: an `eventfd` (RAII) with [`ring`](Doorbell::ring),
//!   [`wait_timeout`](Doorbell::wait_timeout) and [`fd`](Doorbell::fd).
//! - [`send_fds`]/[`recv_fds`]: `sendmsg`/`recvmsg` with one `SCM_RIGHTS` control message.
//!
//! ## The mapping is foreign memory
//! The peer process may write any byte of the region at any time, concurrently with us. Bulk
//! copies ([`Region::read`]/[`Region::write`]) therefore see possibly torn data; every caller
//! copies a value out once and validates the copy (never the mapping) before acting on it. The
//! region is sealed against shrinking (`F_SEAL_SHRINK`), so a hostile application cannot
//! `ftruncate` it and make the service's next access raise `SIGBUS`.
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

/// Converts a `-1` return into the thread's `errno` as an [`io::Error`].
fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Takes ownership of a freshly returned file descriptor.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = cvt(fd)?;
    // SAFETY: `fd` was just returned by a successful syscall that creates a descriptor, so it is
    // open and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A shared-memory region: a sealed memfd mapped read-write and shared.
///
/// Both the service (which creates it with [`Region::create`]) and the application (which maps
/// the received fd with [`Region::from_fd`]) hold one. Dropping it unmaps and closes.
#[derive(Debug)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
    fd: OwnedFd,
}

// SAFETY: `Region` owns its mapping and descriptor; every access to the mapped bytes goes through
// atomics or raw-pointer copies that are valid from any thread (the memory is shared with
// another process anyway, so no access assumes exclusivity).
unsafe impl Send for Region {}
// SAFETY: as above: `&Region` only exposes atomics and copies, never `&[u8]`/`&mut [u8]`.
unsafe impl Sync for Region {}

impl Region {
    /// Creates a zero-filled memfd of `len` bytes named `name`, seals its size and maps it.
    pub fn create(name: &CStr, len: usize) -> io::Result<Region> {
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let size = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: `name` is a valid NUL-terminated string; the flags are valid memfd flags.
        let raw = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        let fd = owned(raw)?;
        // SAFETY: `fd` is an open memfd owned by us.
        cvt(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: F_ADD_SEALS on an open memfd created with MFD_ALLOW_SEALING.
        cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
        Self::map(fd, len)
    }

    /// Maps a region received from the peer; its length is the file's size, which must be at
    /// least `min_len`, and the file must be sealed against shrinking.
    pub fn from_fd(fd: OwnedFd, min_len: usize) -> io::Result<Region> {
        // SAFETY: all-zero bytes are a valid `libc::stat` (plain integers).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open; `st` is a valid, writable `stat`.
        cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        let len = usize::try_from(st.st_size).map_err(|_| io::ErrorKind::InvalidData)?;
        if len < min_len.max(1) {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        // SAFETY: F_GET_SEALS only reads the descriptor's seals.
        let seals = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> io::Result<Region> {
        // SAFETY: mapping a fresh address range (hint null) of `len` bytes of an open file whose
        // size is at least `len` (sealed against shrinking); no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(io::ErrorKind::Other)?;
        Ok(Region { ptr, len, fd })
    }

    /// Maps the region's descriptor again over the same addresses (`MAP_FIXED`). For a forked
    /// child that replaced the file behind the descriptor (`dup3` of its own new region onto
    /// the inherited number): afterwards this mapping shows the new file. Every address stays
    /// mapped throughout, so borrows handed out earlier stay valid (they see the new bytes).
    /// The file must be sealed against shrinking and at least as long as the mapping.
    pub fn remap(&self) -> io::Result<()> {
        // SAFETY: all-zero bytes are a valid `libc::stat` (plain integers).
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `self.fd` is open; `st` is a valid, writable `stat`.
        cvt(unsafe { libc::fstat(self.fd.as_raw_fd(), &mut st) })?;
        // SAFETY: F_GET_SEALS only reads the descriptor's seals.
        let seals = cvt(unsafe { libc::fcntl(self.fd.as_raw_fd(), libc::F_GET_SEALS) })?;
        if usize::try_from(st.st_size).unwrap_or(0) < self.len || seals & libc::F_SEAL_SHRINK == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        // SAFETY: replaces our own mapping `[ptr, ptr + len)` in place with shared pages of a
        // file at least `len` long that cannot shrink; the range never becomes unmapped, and
        // every access to it goes through atomics or raw copies that tolerate the bytes changing.
        let p = unsafe {
            libc::mmap(
                self.ptr.as_ptr().cast(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                self.fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The memfd, to hand to the peer.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Start of `[off, off + n)` if it lies inside the mapping and `off` is `align`-aligned.
    fn span(&self, off: usize, n: usize, align: usize) -> Option<*mut u8> {
        let end = off.checked_add(n)?;
        if end > self.len || !off.is_multiple_of(align) {
            return None;
        }
        // `wrapping_add` keeps this computation free of `unsafe`; the bound was checked above.
        Some(self.ptr.as_ptr().wrapping_add(off))
    }

    /// The 32-bit atomic word at byte offset `off` (4-aligned, inside the region), or `None`.
    pub fn atomic_u32(&self, off: usize) -> Option<&AtomicU32> {
        let p = self.span(off, 4, 4)?;
        // SAFETY: `p` is 4-aligned and the 4 bytes lie inside our live mapping, which outlives the
        // returned borrow of `self`. `AtomicU32` has the size and alignment of `u32` and interior
        // mutability, so concurrent writes by the peer through its own mapping are atomic
        // accesses, not data races.
        Some(unsafe { AtomicU32::from_ptr(p.cast::<u32>()) })
    }

    /// The 64-bit atomic word at byte offset `off` (8-aligned, inside the region), or `None`.
    pub fn atomic_u64(&self, off: usize) -> Option<&AtomicU64> {
        let p = self.span(off, 8, 8)?;
        // SAFETY: as in `atomic_u32`, for an 8-aligned 8-byte word inside the mapping.
        Some(unsafe { AtomicU64::from_ptr(p.cast::<u64>()) })
    }

    /// Copies `dst.len()` bytes starting at `off` out of the region; false (and nothing copied)
    /// if the range is not inside the region. The bytes may be torn by a concurrent writer.
    pub fn read(&self, off: usize, dst: &mut [u8]) -> bool {
        let Some(p) = self.span(off, dst.len(), 1) else { return false };
        // SAFETY: source range is inside the live mapping (checked by `span`); `dst` is a distinct
        // ordinary Rust buffer, so the ranges cannot overlap. No reference to the mapping is made.
        unsafe { std::ptr::copy_nonoverlapping(p.cast_const(), dst.as_mut_ptr(), dst.len()) };
        true
    }

    /// Copies `src` into the region at `off`; false (and nothing copied) if out of range.
    pub fn write(&self, off: usize, src: &[u8]) -> bool {
        let Some(p) = self.span(off, src.len(), 1) else { return false };
        // SAFETY: destination range is inside the live, writable mapping (checked by `span`);
        // `src` is a distinct Rust buffer, so the ranges cannot overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), p, src.len()) };
        true
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe the mapping made in `map`, unmapped exactly once here; no
        // borrow of it can outlive `self`. (The fd is closed by `OwnedFd`'s own drop.)
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A doorbell: an `eventfd` one side rings and the other waits on (or adds to its epoll set).
///
/// The counter makes a ring that arrives before the waiter sleeps stay pending, which is what
/// the flag-then-recheck wake-up protocol (see the crate docs) relies on.
#[derive(Debug)]
pub struct Doorbell {
    fd: OwnedFd,
}

impl Doorbell {
    /// A new non-blocking, close-on-exec eventfd.
    pub fn new() -> io::Result<Doorbell> {
        // SAFETY: plain syscall with valid flags; the result is checked by `owned`.
        let fd = owned(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        Ok(Doorbell { fd })
    }

    /// Wraps a descriptor received from the peer (it should be an eventfd; anything else just
    /// makes `ring`/`wait_timeout` return errors).
    pub fn from_fd(fd: OwnedFd) -> Doorbell {
        Doorbell { fd }
    }

    /// The descriptor, for `epoll_ctl` or to pass to the peer.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Rings: adds one to the counter. A saturated counter (`EAGAIN`) is already "rung".
    pub fn ring(&self) -> io::Result<()> {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live local buffer to an open descriptor.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::WouldBlock {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Resets the counter without blocking; true if it had been rung.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 8];
        // SAFETY: reads at most 8 bytes into a live local buffer from an open (non-blocking) fd.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        n == 8
    }

    /// Sleeps until rung or until `timeout` passes (`None`: no limit), then drains. Returns
    /// true if rung. `EINTR` comes back as [`io::ErrorKind::Interrupted`] so a caller can run
    /// signal semantics (EINTR / SA_RESTART).
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> io::Result<bool> {
        if self.drain() {
            return Ok(true);
        }
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(d.subsec_nanos()),
        });
        let tsp = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid `pollfd`; `tsp` is null or points at a live timespec; no sigmask.
        let n = cvt(unsafe { libc::ppoll(&mut pfd, 1, tsp, std::ptr::null()) })?;
        Ok(n > 0 && self.drain())
    }
}

/// The most descriptors one message carries.
pub const MAX_FDS: usize = 4;

/// Control-message buffer, aligned for `cmsghdr`, big enough for [`MAX_FDS`] descriptors.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Sends `data` (at least one byte) and `fds` (at most [`MAX_FDS`]) over a Unix stream socket in
/// one `sendmsg` with an `SCM_RIGHTS` message. Returns the bytes sent.
pub fn send_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    if data.is_empty() || fds.len() > MAX_FDS {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let payload = std::mem::size_of_val(raw.as_slice());
    let mut cbuf = CmsgBuf([0; 64]);
    let mut iov = libc::iovec { iov_base: data.as_ptr().cast_mut().cast(), iov_len: data.len() };
    // SAFETY: all-zero is a valid `msghdr` (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !raw.is_empty() {
        // SAFETY: CMSG_SPACE is a pure size computation.
        let space = unsafe { libc::CMSG_SPACE(payload as libc::c_uint) } as usize;
        debug_assert!(space <= cbuf.0.len());
        msg.msg_control = cbuf.0.as_mut_ptr().cast();
        msg.msg_controllen = space;
        // SAFETY: `msg_control` points at `space` writable, aligned bytes, so the first header
        // fits (CMSG_FIRSTHDR returns null only when it does not, which we check).
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        if cmsg.is_null() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // SAFETY: `cmsg` points at a header inside `cbuf` (checked non-null above).
        let len = unsafe { libc::CMSG_LEN(payload as libc::c_uint) } as usize;
        let hdr = libc::cmsghdr {
            cmsg_len: len,
            cmsg_level: libc::SOL_SOCKET,
            cmsg_type: libc::SCM_RIGHTS,
        };
        // SAFETY: `cmsg` is a valid, aligned, writable `cmsghdr` inside `cbuf`.
        unsafe { cmsg.write(hdr) };
        // SAFETY: CMSG_DATA only computes the address just past the header at `cmsg`.
        let data = unsafe { libc::CMSG_DATA(cmsg) };
        // SAFETY: `data` leaves `payload` bytes in `cbuf` (CMSG_SPACE(payload) <= 64); the source
        // is our live `raw` vector; the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(raw.as_ptr().cast::<u8>(), data, payload) };
    }
    loop {
        // SAFETY: `msg` points at live `iov`/`cbuf` for the duration of the call.
        let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Receives into `buf` and returns the byte count plus any descriptors that came with the
/// message (close-on-exec). A truncated control message is an error, and whatever descriptors
/// did arrive are closed.
pub fn recv_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut cbuf = CmsgBuf([0; 64]);
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: all-zero is a valid `msghdr`.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = cbuf.0.len();
    let n = loop {
        // SAFETY: `msg` points at live, writable `iov`/`cbuf` for the duration of the call.
        let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut fds = Vec::new();
    // SAFETY: `msg` was filled by the kernel; CMSG_FIRSTHDR reads its control fields only.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: the kernel wrote a complete header at `cmsg`, inside `cbuf`; read it by value
        // (unaligned read: `cbuf` is aligned, but this does not rely on it).
        let h = unsafe { cmsg.read_unaligned() };
        let (level, ty, len) = (h.cmsg_level, h.cmsg_type, h.cmsg_len);
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a pure size computation.
            let hdr = unsafe { libc::CMSG_LEN(0) } as usize;
            let count = len.saturating_sub(hdr) / std::mem::size_of::<RawFd>();
            // SAFETY: CMSG_DATA only computes the address just past the header at `cmsg`.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            for i in 0..count {
                let src = data.wrapping_add(i * std::mem::size_of::<RawFd>()).cast::<RawFd>();
                // SAFETY: the kernel put `count` descriptors after the header, inside `cbuf`
                // (`count` comes from `cmsg_len`, bounded by `msg_controllen`); the data may be
                // unaligned, hence the unaligned read.
                let fd = unsafe { src.read_unaligned() };
                if fd >= 0 {
                    // SAFETY: SCM_RIGHTS installed this descriptor in our table for us alone.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        // SAFETY: `cmsg` is a valid header of `msg`; CMSG_NXTHDR returns the next or null.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    if msg.msg_flags & libc::MSG_CTRUNC != 0 {
        drop(fds);
        return Err(io::Error::from(io::ErrorKind::InvalidData));
    }
    Ok((n, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn region_accessors_are_bounds_checked() {
        let r = Region::create(c"t", 4096).unwrap();
        assert_eq!(r.len(), 4096);
        assert!(r.atomic_u32(4092).is_some());
        assert!(r.atomic_u32(4093).is_none(), "misaligned");
        assert!(r.atomic_u32(4096).is_none());
        assert!(r.atomic_u64(4088).is_some());
        assert!(r.atomic_u64(4092).is_none());
        assert!(r.atomic_u32(usize::MAX - 1).is_none(), "overflowing offset");
        assert!(r.write(4090, &[1; 6]));
        assert!(!r.write(4091, &[1; 6]));
        let mut b = [0u8; 6];
        assert!(r.read(4090, &mut b));
        assert_eq!(b, [1; 6]);
        assert!(!r.read(usize::MAX, &mut b));
    }

    #[test]
    fn second_mapping_sees_writes_and_cannot_shrink() {
        let a = Region::create(c"t", 8192).unwrap();
        let fd = a.fd().try_clone_to_owned().unwrap();
        // SAFETY: test-only probe that the seal holds; `fd` is an open memfd.
        let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), 0) };
        assert_eq!(rc, -1, "F_SEAL_SHRINK must refuse to shrink");
        let b = Region::from_fd(fd, 8192).unwrap();
        a.atomic_u64(64).unwrap().store(0xdead_beef, std::sync::atomic::Ordering::Release);
        assert_eq!(
            b.atomic_u64(64).unwrap().load(std::sync::atomic::Ordering::Acquire),
            0xdead_beef
        );
        assert!(Region::from_fd(b.fd().try_clone_to_owned().unwrap(), 8193).is_err());
    }

    #[test]
    fn doorbell_counts_and_times_out() {
        let d = Doorbell::new().unwrap();
        assert!(!d.wait_timeout(Some(Duration::from_millis(1))).unwrap());
        d.ring().unwrap();
        d.ring().unwrap();
        assert!(d.wait_timeout(Some(Duration::ZERO)).unwrap());
        assert!(!d.drain(), "wait drains the counter");
    }

    #[test]
    fn fds_cross_a_socketpair() {
        let (a, b) = UnixStream::pair().unwrap();
        let bell = Doorbell::new().unwrap();
        let region = Region::create(c"t", 4096).unwrap();
        region.atomic_u32(0).unwrap().store(7, std::sync::atomic::Ordering::Relaxed);
        send_fds(a.as_fd(), b"hello", &[region.fd(), bell.fd()]).unwrap();
        let mut buf = [0u8; 16];
        let (n, mut fds) = recv_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..n], b"hello");
        assert_eq!(fds.len(), 2);
        let bell2 = Doorbell::from_fd(fds.pop().unwrap());
        let region2 = Region::from_fd(fds.pop().unwrap(), 4096).unwrap();
        assert_eq!(region2.atomic_u32(0).unwrap().load(std::sync::atomic::Ordering::Relaxed), 7);
        bell2.ring().unwrap();
        assert!(bell.drain(), "the received eventfd is the same object");
        // A message without descriptors.
        send_fds(a.as_fd(), b"x", &[]).unwrap();
        let (n, fds) = recv_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, fds.len()), (1, 0));
        assert!(send_fds(a.as_fd(), b"", &[]).is_err());
    }
}
