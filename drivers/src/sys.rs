//! The syscall edge (DESIGN.md rule 8): every socket call, ioctl and `setns` the backends make is
//! one small function here with a safe signature. Memory mapping lives in `mmap`.

use std::fs::File;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn cvt_size(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// `struct ifreq` as the ioctls below use it: a name and 24 bytes of union (Linux, 64-bit).
#[repr(C)]
#[derive(Clone, Copy)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: [u8; 24],
}
const _: () = assert!(size_of::<IfReq>() == 40);

impl IfReq {
    fn new(name: &str) -> io::Result<IfReq> {
        let b = name.as_bytes();
        if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"));
        }
        let mut r = IfReq { name: [0; libc::IFNAMSIZ], data: [0; 24] };
        r.name[..b.len()].copy_from_slice(b);
        Ok(r)
    }

    fn name(&self) -> String {
        let end = self.name.iter().position(|&c| c == 0).unwrap_or(self.name.len());
        String::from_utf8_lossy(&self.name[..end]).into_owned()
    }
}

fn ioctl_ifreq(fd: BorrowedFd<'_>, req: libc::Ioctl, ifr: &mut IfReq) -> io::Result<()> {
    // SAFETY: `ifr` is a valid, writable, correctly sized `struct ifreq` for these requests.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), req, ifr as *mut IfReq) }).map(drop)
}

/// A new socket, close-on-exec.
pub(crate) fn socket(
    domain: libc::c_int,
    ty: libc::c_int,
    proto: libc::c_int,
) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory preconditions.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: `fd` is a freshly created descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `mkfifo(path, mode)` (the process umask applies).
pub(crate) fn mkfifo(path: &std::path::Path, mode: libc::mode_t) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: `c` is a valid NUL-terminated string borrowed for the call.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode) }).map(drop)
}

/// `setsockopt` with a plain-data option value.
pub(crate) fn setsockopt<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    val: &T,
) -> io::Result<()> {
    // SAFETY: `val` points to `size_of::<T>()` readable bytes for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (val as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// `PACKET_STATISTICS` of a TPACKET_V1/V2 socket (the kernel resets the counters on each read).
pub(crate) fn getsockopt_stats(fd: BorrowedFd<'_>) -> io::Result<libc::tpacket_stats> {
    let mut v = libc::tpacket_stats { tp_packets: 0, tp_drops: 0 };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `v` is a writable tpacket_stats and `len` its size, as PACKET_STATISTICS expects
    // for a TPACKET_V2 socket (the kernel writes at most `len` bytes).
    cvt(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut v as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    })?;
    Ok(v)
}

/// Interface index of `name` in the calling thread's network namespace.
pub(crate) fn if_index(ctl: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut r = IfReq::new(name)?;
    ioctl_ifreq(ctl, libc::SIOCGIFINDEX, &mut r)?;
    Ok(i32::from_ne_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]) as u32)
}

/// Hardware address of `name`.
pub(crate) fn if_hwaddr(ctl: BorrowedFd<'_>, name: &str) -> io::Result<[u8; 6]> {
    let mut r = IfReq::new(name)?;
    ioctl_ifreq(ctl, libc::SIOCGIFHWADDR, &mut r)?;
    let mut mac = [0; 6];
    mac.copy_from_slice(&r.data[2..8]); // struct sockaddr: family (2 bytes), then the address
    Ok(mac)
}

/// MTU of `name`.
pub(crate) fn if_mtu(ctl: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut r = IfReq::new(name)?;
    ioctl_ifreq(ctl, libc::SIOCGIFMTU, &mut r)?;
    Ok(i32::from_ne_bytes([r.data[0], r.data[1], r.data[2], r.data[3]]) as u32)
}

/// `IFF_*` flags of `name`.
pub(crate) fn if_flags(ctl: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut r = IfReq::new(name)?;
    ioctl_ifreq(ctl, libc::SIOCGIFFLAGS, &mut r)?;
    Ok(u32::from(u16::from_ne_bytes([r.data[0], r.data[1]])))
}

/// Binds a packet socket to interface `ifindex` for EtherType `proto` (host order).
pub(crate) fn bind_packet(fd: BorrowedFd<'_>, ifindex: u32, proto: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain integers; all-zero is a valid value.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_protocol = proto.to_be();
    sa.sll_ifindex = ifindex as i32;
    // SAFETY: `sa` is a valid sockaddr_ll and the length matches it.
    cvt(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// Asks the kernel to transmit every frame marked `SEND_REQUEST` in a packet socket's TX ring.
/// `EAGAIN`/`ENOBUFS` are not errors: the frames stay marked and go with the next kick.
pub(crate) fn kick_tx(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: a zero-length send with a null buffer is how TX rings are flushed; nothing is read.
    let r = unsafe {
        libc::sendto(fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT, std::ptr::null(), 0)
    };
    match cvt_size(r) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::ENOBUFS)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Opens `/dev/net/tun` and attaches it to (creating if needed) interface `name` with `flags`
/// (`IFF_TAP | IFF_NO_PI | ...`). Returns the fd and the name the kernel chose.
pub(crate) fn tun_open(name: &str, flags: libc::c_int) -> io::Result<(OwnedFd, String)> {
    let path = c"/dev/net/tun";
    // SAFETY: `path` is a NUL-terminated string.
    let fd = cvt(unsafe {
        libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK)
    })?;
    // SAFETY: `fd` is freshly opened and owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut r = IfReq::new(name)?;
    r.data[..2].copy_from_slice(&(flags as i16).to_ne_bytes());
    ioctl_ifreq(fd.as_fd(), libc::TUNSETIFF, &mut r)?;
    Ok((fd, r.name()))
}

/// `TUNSETVNETHDRSZ`: the size of the virtio-net header prepended to every frame.
pub(crate) fn tun_set_vnet_hdr_sz(fd: BorrowedFd<'_>, size: libc::c_int) -> io::Result<()> {
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size as *const libc::c_int) })
        .map(drop)
}

/// `TUNSETOFFLOAD`: which offloads the kernel may use in frames it hands us (`TUN_F_*`).
pub(crate) fn tun_set_offload(fd: BorrowedFd<'_>, flags: libc::c_uint) -> io::Result<()> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is accessed.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, flags as libc::c_ulong) })
        .map(drop)
}

/// `readv` into two buffers (a header and a body).
pub(crate) fn readv2(fd: BorrowedFd<'_>, a: &mut [u8], b: &mut [u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
        libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
    ];
    // SAFETY: both iovecs describe writable buffers borrowed for the duration of the call.
    cvt_size(unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), 2) })
}

/// `writev` from two buffers (a header and a body).
pub(crate) fn writev2(fd: BorrowedFd<'_>, a: &[u8], b: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec { iov_base: a.as_ptr() as *mut libc::c_void, iov_len: a.len() },
        libc::iovec { iov_base: b.as_ptr() as *mut libc::c_void, iov_len: b.len() },
    ];
    // SAFETY: both iovecs describe readable buffers borrowed for the call; writev only reads.
    cvt_size(unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) })
}

/// Waits up to `timeout_ms` for `fd` to become readable. `Ok(true)` if it is.
pub fn poll_readable(fd: RawFd, timeout_ms: i32) -> io::Result<bool> {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let n = cvt(unsafe { libc::poll(&mut p, 1, timeout_ms) })?;
    Ok(n > 0 && p.revents & libc::POLLIN != 0)
}

/// Waits up to `timeout` until any of `fds` is readable or hangs up. Returns how many are.
/// (The service's idle wait: the NIC's wait fd plus applications' doorbells and sockets.)
/// `ppoll(2)` with a timespec, so that a sub-millisecond timeout is kept, not rounded up to
/// `poll(2)`'s whole milliseconds.
pub fn poll_readable_many(fds: &[RawFd], timeout: std::time::Duration) -> io::Result<usize> {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i32::MAX as u64) as libc::time_t,
        tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
    };
    // SAFETY: `p` is a valid array of `p.len()` pollfds, borrowed mutably for the call; `ts`
    // is a valid timespec borrowed for the call; a null signal mask leaves the mask alone.
    let n = cvt(unsafe {
        libc::ppoll(p.as_mut_ptr(), p.len() as libc::nfds_t, &ts, std::ptr::null())
    })?;
    Ok(n as usize)
}

/// Moves the calling thread into the network namespace `ns` (an open `/run/netns/NAME` or
/// `/proc/PID/ns/net`). Only this thread changes namespace.
pub fn setns_net(ns: &File) -> io::Result<()> {
    // SAFETY: setns(2) on an owned, open namespace fd; no memory is passed.
    cvt(unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) }).map(drop)
}

/// Effective user id is 0.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}
