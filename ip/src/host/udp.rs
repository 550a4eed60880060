//! A sans-IO UDP socket table (RFC 768; the socket semantics are Linux's `udp(7)`).
//!
//! The table binds ports, demultiplexes received datagrams to sockets and keeps a bounded
//! receive queue per socket; [`crate::host::Host`] builds and sends the datagrams. Errors are a
//! typed enum whose [`UdpError::errno`] gives Linux's number; the posix edge converts once.
//!
//! Memory: the table (`max_sockets` entries and a 64 Ki-entry port index) is allocated when
//! it is created; each socket's receive queue (`rcvbuf` bytes, at most `max_queued`
//! datagrams) when the socket is opened, and freed when it is closed. A peer can fill a queue,
//! never grow it: a datagram that does not fit is dropped and counted (Linux's
//! `UDP_MIB_RCVBUFERRORS`).

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::net::SocketAddrV4;
use core::ops::RangeInclusive;

use joyride_base::{Rng, SplitMix64};

use crate::Ipv4Addr;

/// The largest UDP payload over IPv4: 65535 − 20 (IPv4 header) − 8 (UDP header).
pub const MAX_PAYLOAD: usize = 65507;

/// Why a UDP socket call failed; each variant is one Linux errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UdpError {
    /// No such socket (`EBADF`).
    BadSocket,
    /// Nothing to receive, no room to send, or no free ephemeral port for an implicit bind
    /// (`EAGAIN`).
    WouldBlock,
    /// Invalid argument: binding a bound socket, sending to port 0 or to 0.0.0.0 (`EINVAL`).
    InvalidInput,
    /// Sending to a broadcast address without `SO_BROADCAST` (`EACCES`).
    PermissionDenied,
    /// No destination given on an unconnected socket (`EDESTADDRREQ`).
    DestAddrRequired,
    /// The datagram exceeds [`MAX_PAYLOAD`] (`EMSGSIZE`).
    MessageTooLong,
    /// The port is bound by another socket, or no ephemeral port is free (`EADDRINUSE`).
    AddrInUse,
    /// The address is not one of this host's (`EADDRNOTAVAIL`).
    AddrNotAvailable,
    /// No route to the destination (`ENETUNREACH`).
    NetworkUnreachable,
    /// The socket table is full (`ENOBUFS`).
    NoBuffers,
    /// The socket has no peer (`ENOTCONN`).
    NotConnected,
    /// An ICMP port unreachable came back for this connected socket (`ECONNREFUSED`).
    ConnectionRefused,
    /// An ICMP host/net unreachable came back for this connected socket (`EHOSTUNREACH`).
    HostUnreachable,
}

impl UdpError {
    /// The Linux errno, from `include/uapi/asm-generic/errno-base.h` (below 35) and
    /// `include/uapi/asm-generic/errno.h`.
    pub const fn errno(self) -> i32 {
        match self {
            UdpError::BadSocket => 9,            // EBADF
            UdpError::WouldBlock => 11,          // EAGAIN
            UdpError::PermissionDenied => 13,    // EACCES
            UdpError::InvalidInput => 22,        // EINVAL
            UdpError::DestAddrRequired => 89,    // EDESTADDRREQ
            UdpError::MessageTooLong => 90,      // EMSGSIZE
            UdpError::AddrInUse => 98,           // EADDRINUSE
            UdpError::AddrNotAvailable => 99,    // EADDRNOTAVAIL
            UdpError::NetworkUnreachable => 101, // ENETUNREACH
            UdpError::NoBuffers => 105,          // ENOBUFS
            UdpError::NotConnected => 107,       // ENOTCONN
            UdpError::ConnectionRefused => 111,  // ECONNREFUSED
            UdpError::HostUnreachable => 113,    // EHOSTUNREACH
        }
    }
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpError::BadSocket => "bad socket",
            UdpError::WouldBlock => "operation would block",
            UdpError::PermissionDenied => "broadcast not enabled",
            UdpError::InvalidInput => "invalid argument",
            UdpError::DestAddrRequired => "destination address required",
            UdpError::MessageTooLong => "message too long",
            UdpError::AddrInUse => "address in use",
            UdpError::AddrNotAvailable => "address not available",
            UdpError::NetworkUnreachable => "network unreachable",
            UdpError::NoBuffers => "no socket available",
            UdpError::NotConnected => "not connected",
            UdpError::ConnectionRefused => "connection refused",
            UdpError::HostUnreachable => "host unreachable",
        })
    }
}

impl core::error::Error for UdpError {}

/// Socket-table limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UdpConfig {
    /// Sockets open at once (at most 65534).
    pub max_sockets: usize,
    /// Receive queue size in payload bytes per socket (Linux `rmem_default`, 212992).
    pub rcvbuf: usize,
    /// Datagrams queued per socket at most.
    pub max_queued: usize,
    /// Ports an implicit or port-0 bind picks from (Linux `ip_local_port_range`).
    pub ephemeral: RangeInclusive<u16>,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig { max_sockets: 1024, rcvbuf: 212_992, max_queued: 1024, ephemeral: 32768..=60999 }
    }
}

/// A socket's handle: a slot index and a generation, so a stale handle is `EBADF`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdpHandle {
    index: u16,
    generation: u16,
}

/// What [`UdpSockets::recv_from`] returns besides the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecvMeta {
    /// Bytes copied into the caller's buffer.
    pub len: usize,
    /// The datagram's full length (larger than `len` when it was truncated, `MSG_TRUNC`).
    pub datagram_len: usize,
    /// The sender.
    pub from: SocketAddrV4,
}

/// Where [`UdpSockets::deliver`] put a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued on this socket.
    Queued(UdpHandle),
    /// The socket's receive queue is full: dropped.
    QueueFull(UdpHandle),
    /// No socket is bound to the port (the host answers ICMP port unreachable).
    NoSocket,
}

#[derive(Debug)]
struct Socket {
    generation: u16,
    open: bool,
    local: Option<SocketAddrV4>,
    peer: Option<SocketAddrV4>,
    broadcast: bool,
    error: Option<UdpError>,
    next_on_port: u16,
    data: VecDeque<u8>,
    meta: VecDeque<(SocketAddrV4, u32)>,
    drops: u64,
}

/// The UDP socket table.
#[derive(Debug)]
pub struct UdpSockets {
    config: UdpConfig,
    local_ip: Ipv4Addr,
    broadcast_ip: Option<Ipv4Addr>,
    sockets: Vec<Socket>,
    free: Vec<u16>,
    /// `port_head[p]`: 1 + index of the first socket bound to port `p`, or 0.
    port_head: Vec<u16>,
    rng: SplitMix64,
}

const NONE: u16 = 0;

impl UdpSockets {
    /// An empty table for a host whose address is `local_ip` (and subnet broadcast
    /// `broadcast_ip`); `seed` randomizes ephemeral port choice (RFC 6056 §3.3.1).
    pub fn new(
        config: UdpConfig,
        local_ip: Ipv4Addr,
        broadcast_ip: Option<Ipv4Addr>,
        seed: u64,
    ) -> Self {
        let max = config.max_sockets.clamp(1, 65534);
        UdpSockets {
            config: UdpConfig { max_sockets: max, ..config },
            local_ip,
            broadcast_ip,
            sockets: Vec::with_capacity(max),
            free: Vec::with_capacity(max),
            port_head: vec![NONE; 65536],
            rng: SplitMix64::new(seed),
        }
    }

    /// How many sockets are open.
    pub fn len(&self) -> usize {
        self.sockets.iter().filter(|s| s.open).count()
    }

    /// Whether no socket is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn sock(&self, h: UdpHandle) -> Result<&Socket, UdpError> {
        match self.sockets.get(usize::from(h.index)) {
            Some(s) if s.open && s.generation == h.generation => Ok(s),
            _ => Err(UdpError::BadSocket),
        }
    }

    fn sock_mut(&mut self, h: UdpHandle) -> Result<&mut Socket, UdpError> {
        match self.sockets.get_mut(usize::from(h.index)) {
            Some(s) if s.open && s.generation == h.generation => Ok(s),
            _ => Err(UdpError::BadSocket),
        }
    }

    /// `socket(AF_INET, SOCK_DGRAM, 0)`: a new unbound socket, its receive queue allocated.
    pub fn open(&mut self) -> Result<UdpHandle, UdpError> {
        let cap = self.config.rcvbuf;
        let qcap = self.config.max_queued;
        let index = match self.free.pop() {
            Some(i) => i,
            None if self.sockets.len() < self.config.max_sockets => {
                self.sockets.push(Socket {
                    generation: 0,
                    open: false,
                    local: None,
                    peer: None,
                    broadcast: false,
                    error: None,
                    next_on_port: NONE,
                    data: VecDeque::new(),
                    meta: VecDeque::new(),
                    drops: 0,
                });
                (self.sockets.len() - 1) as u16
            }
            None => return Err(UdpError::NoBuffers),
        };
        let s = &mut self.sockets[usize::from(index)];
        s.generation = s.generation.wrapping_add(1);
        s.open = true;
        s.local = None;
        s.peer = None;
        s.broadcast = false;
        s.error = None;
        s.drops = 0;
        s.data = VecDeque::with_capacity(cap);
        s.meta = VecDeque::with_capacity(qcap);
        Ok(UdpHandle { index, generation: s.generation })
    }

    /// `close`: unbinds the socket and frees its queue.
    pub fn close(&mut self, h: UdpHandle) -> Result<(), UdpError> {
        self.sock(h)?;
        self.unlink_port(h.index);
        let s = &mut self.sockets[usize::from(h.index)];
        s.open = false;
        s.data = VecDeque::new();
        s.meta = VecDeque::new();
        self.free.push(h.index);
        Ok(())
    }

    /// Whether `port` can take a socket bound to `addr` (no `SO_REUSEADDR`: any socket on the
    /// port whose address is the same or a wildcard on either side conflicts).
    fn port_free_for(&self, port: u16, addr: Ipv4Addr) -> bool {
        let mut i = self.port_head[usize::from(port)];
        while i != NONE {
            let s = &self.sockets[usize::from(i - 1)];
            if let Some(l) = s.local {
                if l.ip().is_unspecified() || addr.is_unspecified() || *l.ip() == addr {
                    return false;
                }
            }
            i = s.next_on_port;
        }
        true
    }

    fn link_port(&mut self, index: u16, port: u16) {
        let head = self.port_head[usize::from(port)];
        self.sockets[usize::from(index)].next_on_port = head;
        self.port_head[usize::from(port)] = index + 1;
    }

    fn unlink_port(&mut self, index: u16) {
        let Some(local) = self.sockets[usize::from(index)].local else { return };
        let port = usize::from(local.port());
        let next = self.sockets[usize::from(index)].next_on_port;
        if self.port_head[port] == index + 1 {
            self.port_head[port] = next;
        } else {
            let mut i = self.port_head[port];
            while i != NONE {
                let n = self.sockets[usize::from(i - 1)].next_on_port;
                if n == index + 1 {
                    self.sockets[usize::from(i - 1)].next_on_port = next;
                    break;
                }
                i = n;
            }
        }
        self.sockets[usize::from(index)].next_on_port = NONE;
    }

    /// A free ephemeral port for `addr`: a random start in the range, then a linear walk
    /// (RFC 6056 §3.3.1, Algorithm 1's search).
    fn pick_port(&mut self, addr: Ipv4Addr) -> Option<u16> {
        let lo = *self.config.ephemeral.start();
        let hi = *self.config.ephemeral.end();
        if lo > hi || lo == 0 {
            return None;
        }
        let n = u32::from(hi - lo) + 1;
        let start = self.rng.below(u64::from(n)) as u32;
        (0..n).map(|k| lo + ((start + k) % n) as u16).find(|&p| self.port_free_for(p, addr))
    }

    /// `bind`: `addr` must be 0.0.0.0, the host's address, a loopback address (127.0.0.0/8,
    /// all local on Linux) or a broadcast address (`EADDRNOTAVAIL`); port 0 picks an
    /// ephemeral port. A bound socket cannot be rebound (`EINVAL`).
    pub fn bind(&mut self, h: UdpHandle, addr: SocketAddrV4) -> Result<(), UdpError> {
        if self.sock(h)?.local.is_some() {
            return Err(UdpError::InvalidInput);
        }
        let ip = *addr.ip();
        if !(ip.is_unspecified()
            || ip == self.local_ip
            || ip.is_loopback()
            || ip == Ipv4Addr::BROADCAST
            || Some(ip) == self.broadcast_ip)
        {
            return Err(UdpError::AddrNotAvailable);
        }
        let port = if addr.port() == 0 {
            self.pick_port(ip).ok_or(UdpError::AddrInUse)?
        } else if self.port_free_for(addr.port(), ip) {
            addr.port()
        } else {
            return Err(UdpError::AddrInUse);
        };
        self.sockets[usize::from(h.index)].local = Some(SocketAddrV4::new(ip, port));
        self.link_port(h.index, port);
        Ok(())
    }

    /// Binds an unbound socket to 0.0.0.0 and an ephemeral port (Linux `inet_autobind`:
    /// `EAGAIN` when none is free).
    fn autobind(&mut self, h: UdpHandle) -> Result<SocketAddrV4, UdpError> {
        if let Some(l) = self.sock(h)?.local {
            return Ok(l);
        }
        let port = self.pick_port(Ipv4Addr::UNSPECIFIED).ok_or(UdpError::WouldBlock)?;
        let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
        self.sockets[usize::from(h.index)].local = Some(local);
        self.link_port(h.index, port);
        Ok(local)
    }

    /// `connect`: sets the default destination and receives only from it from now on;
    /// binds the socket first if needed. The caller checked the route.
    pub fn connect(&mut self, h: UdpHandle, peer: SocketAddrV4) -> Result<(), UdpError> {
        if peer.ip().is_unspecified() {
            return Err(UdpError::InvalidInput);
        }
        self.autobind(h)?;
        let s = self.sock_mut(h)?;
        s.peer = Some(peer);
        s.error = None;
        Ok(())
    }

    /// `connect(AF_UNSPEC)`: forgets the peer.
    pub fn disconnect(&mut self, h: UdpHandle) -> Result<(), UdpError> {
        self.sock_mut(h)?.peer = None;
        Ok(())
    }

    /// `SO_BROADCAST`.
    pub fn set_broadcast(&mut self, h: UdpHandle, on: bool) -> Result<(), UdpError> {
        self.sock_mut(h)?.broadcast = on;
        Ok(())
    }

    /// `getsockname`: 0.0.0.0:0 when unbound; a connected wildcard socket reports the source
    /// address its peer is reached from (Linux fills it at connect): 127.0.0.1 for a loopback
    /// peer, else the host's address.
    pub fn local_addr(&self, h: UdpHandle) -> Result<SocketAddrV4, UdpError> {
        let s = self.sock(h)?;
        Ok(match (s.local, s.peer) {
            (Some(l), Some(p)) if l.ip().is_unspecified() => {
                let ip = if p.ip().is_loopback() { Ipv4Addr::LOCALHOST } else { self.local_ip };
                SocketAddrV4::new(ip, l.port())
            }
            (Some(l), _) => l,
            (None, _) => SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0),
        })
    }

    /// The address the socket is bound to (0.0.0.0 for the wildcard), `None` while unbound.
    pub fn bound_ip(&self, h: UdpHandle) -> Option<Ipv4Addr> {
        self.sock(h).ok()?.local.map(|l| *l.ip())
    }

    /// `getpeername`: `ENOTCONN` unless connected.
    pub fn peer_addr(&self, h: UdpHandle) -> Result<SocketAddrV4, UdpError> {
        self.sock(h)?.peer.ok_or(UdpError::NotConnected)
    }

    /// `SO_ERROR`: the pending asynchronous error, cleared.
    pub fn take_error(&mut self, h: UdpHandle) -> Result<Option<UdpError>, UdpError> {
        Ok(self.sock_mut(h)?.error.take())
    }

    /// Whether a datagram (or an error) is waiting: the socket is readable.
    pub fn readable(&self, h: UdpHandle) -> bool {
        self.sock(h).is_ok_and(|s| !s.meta.is_empty() || s.error.is_some())
    }

    /// Datagrams queued on the socket.
    pub fn queued(&self, h: UdpHandle) -> usize {
        self.sock(h).map_or(0, |s| s.meta.len())
    }

    /// Datagrams dropped because the socket's queue was full.
    pub fn drops(&self, h: UdpHandle) -> u64 {
        self.sock(h).map_or(0, |s| s.drops)
    }

    /// Checks a send of `len` bytes to `dst` (or the peer) and binds the socket if needed;
    /// returns the source port and the destination. A pending error is returned (and
    /// cleared) first, as Linux does.
    pub fn prepare_send(
        &mut self,
        h: UdpHandle,
        dst: Option<SocketAddrV4>,
        len: usize,
    ) -> Result<(u16, SocketAddrV4), UdpError> {
        let broadcast_ip = self.broadcast_ip;
        let s = self.sock_mut(h)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        if len > MAX_PAYLOAD {
            return Err(UdpError::MessageTooLong);
        }
        let dst = match dst.or(s.peer) {
            Some(d) => d,
            None => return Err(UdpError::DestAddrRequired),
        };
        // Linux udp_sendmsg: a zero destination port is EINVAL.
        if dst.port() == 0 || dst.ip().is_unspecified() {
            return Err(UdpError::InvalidInput);
        }
        let is_bcast = *dst.ip() == Ipv4Addr::BROADCAST || Some(*dst.ip()) == broadcast_ip;
        if is_bcast && !s.broadcast {
            return Err(UdpError::PermissionDenied);
        }
        let local = self.autobind(h)?;
        Ok((local.port(), dst))
    }

    /// `recvfrom`: the oldest datagram into `buf` (the rest of a longer one is discarded,
    /// `MSG_TRUNC`); a pending error first; `EAGAIN` when the queue is empty.
    pub fn recv_from(&mut self, h: UdpHandle, buf: &mut [u8]) -> Result<RecvMeta, UdpError> {
        let s = self.sock_mut(h)?;
        if let Some(e) = s.error.take() {
            return Err(e);
        }
        let Some((from, len)) = s.meta.pop_front() else { return Err(UdpError::WouldBlock) };
        let len = len as usize;
        let n = len.min(buf.len());
        for (d, b) in buf[..n].iter_mut().zip(s.data.drain(..len)) {
            *d = b;
        }
        Ok(RecvMeta { len: n, datagram_len: len, from })
    }

    /// Finds the socket for a datagram from `src` to `dst` and queues `payload` on it. The
    /// best match wins (Linux `compute_score`): a connected socket whose peer is `src` before
    /// an unconnected one, an exact local address before the wildcard.
    pub fn deliver(&mut self, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Delivery {
        let mut best: Option<(u16, u8)> = None;
        let mut i = self.port_head[usize::from(dst.port())];
        while i != NONE {
            let s = &self.sockets[usize::from(i - 1)];
            let mut score = 0u8;
            let ok = match s.local {
                Some(l) if l.ip().is_unspecified() => true,
                Some(l) if l.ip() == dst.ip() => {
                    score += 1;
                    true
                }
                _ => false,
            } && match s.peer {
                None => true,
                Some(p) if p == src => {
                    score += 2;
                    true
                }
                Some(_) => false,
            };
            if ok && best.is_none_or(|(_, b)| score > b) {
                best = Some((i - 1, score));
            }
            i = s.next_on_port;
        }
        let Some((index, _)) = best else { return Delivery::NoSocket };
        let (rcvbuf, max_queued) = (self.config.rcvbuf, self.config.max_queued);
        let s = &mut self.sockets[usize::from(index)];
        let h = UdpHandle { index, generation: s.generation };
        if s.data.len() + payload.len() > rcvbuf || s.meta.len() >= max_queued {
            s.drops += 1;
            return Delivery::QueueFull(h);
        }
        s.data.extend(payload);
        s.meta.push_back((src, payload.len() as u32));
        Delivery::Queued(h)
    }

    /// An ICMP error about a datagram this host sent from `local_port` to `remote`: a
    /// connected socket whose peer is `remote` gets `error` as its pending error (Linux
    /// `__udp4_lib_err`; unconnected sockets ignore it without `IP_RECVERR`). Returns whether
    /// a socket took it.
    pub fn icmp_error(&mut self, local_port: u16, remote: SocketAddrV4, error: UdpError) -> bool {
        let mut i = self.port_head[usize::from(local_port)];
        while i != NONE {
            let s = &mut self.sockets[usize::from(i - 1)];
            if s.peer == Some(remote) {
                s.error = Some(error);
                return true;
            }
            i = s.next_on_port;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn table() -> UdpSockets {
        UdpSockets::new(UdpConfig::default(), ME, Some(Ipv4Addr::new(10, 0, 0, 255)), 1)
    }

    fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(ip, port)
    }

    #[test]
    fn bind_rules() {
        let mut t = table();
        let a = t.open().unwrap();
        let b = t.open().unwrap();
        t.bind(a, sa(Ipv4Addr::UNSPECIFIED, 5000)).unwrap();
        assert_eq!(t.bind(a, sa(ME, 5001)), Err(UdpError::InvalidInput));
        assert_eq!(t.bind(b, sa(ME, 5000)), Err(UdpError::AddrInUse));
        assert_eq!(t.bind(b, sa(Ipv4Addr::new(10, 0, 0, 3), 1)), Err(UdpError::AddrNotAvailable));
        t.bind(b, sa(ME, 0)).unwrap();
        let p = t.local_addr(b).unwrap().port();
        assert!((32768..=60999).contains(&p));
        t.close(a).unwrap();
        assert_eq!(t.close(a), Err(UdpError::BadSocket));
        assert_eq!(t.local_addr(a), Err(UdpError::BadSocket));
        let c = t.open().unwrap();
        t.bind(c, sa(ME, 5000)).unwrap();
        assert_eq!(t.peer_addr(c), Err(UdpError::NotConnected));
        for (e, n) in [
            (UdpError::BadSocket, 9),
            (UdpError::WouldBlock, 11),
            (UdpError::InvalidInput, 22),
            (UdpError::DestAddrRequired, 89),
            (UdpError::MessageTooLong, 90),
            (UdpError::AddrInUse, 98),
            (UdpError::AddrNotAvailable, 99),
            (UdpError::NotConnected, 107),
        ] {
            assert_eq!(e.errno(), n);
        }
    }

    #[test]
    fn ephemeral_exhaustion_and_table_full() {
        let cfg = UdpConfig { ephemeral: 40000..=40002, max_sockets: 5, ..Default::default() };
        let mut t = UdpSockets::new(cfg, ME, None, 7);
        let mut ports = Vec::new();
        for _ in 0..3 {
            let h = t.open().unwrap();
            t.bind(h, sa(Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            ports.push(t.local_addr(h).unwrap().port());
        }
        ports.sort();
        assert_eq!(ports, [40000, 40001, 40002]);
        let h = t.open().unwrap();
        assert_eq!(t.bind(h, sa(Ipv4Addr::UNSPECIFIED, 0)), Err(UdpError::AddrInUse));
        assert_eq!(t.prepare_send(h, Some(sa(ME, 9)), 1), Err(UdpError::WouldBlock));
        t.open().unwrap();
        assert_eq!(t.open(), Err(UdpError::NoBuffers));
    }

    #[test]
    fn send_checks() {
        let mut t = table();
        let h = t.open().unwrap();
        let peer = sa(Ipv4Addr::new(10, 0, 0, 9), 7);
        assert_eq!(t.prepare_send(h, None, 1), Err(UdpError::DestAddrRequired));
        assert_eq!(t.prepare_send(h, Some(peer), MAX_PAYLOAD + 1), Err(UdpError::MessageTooLong));
        assert_eq!(t.prepare_send(h, Some(sa(ME, 0)), 1), Err(UdpError::InvalidInput));
        let bc = sa(Ipv4Addr::BROADCAST, 9);
        assert_eq!(t.prepare_send(h, Some(bc), 1), Err(UdpError::PermissionDenied));
        t.set_broadcast(h, true).unwrap();
        assert!(t.prepare_send(h, Some(bc), 1).is_ok());
        t.connect(h, peer).unwrap();
        let (port, dst) = t.prepare_send(h, None, MAX_PAYLOAD).unwrap();
        assert_eq!(dst, peer);
        assert_eq!(t.local_addr(h).unwrap(), sa(ME, port));
    }

    #[test]
    fn delivery_filters_queue_limits_and_errors() {
        let cfg = UdpConfig { rcvbuf: 10, max_queued: 3, ..Default::default() };
        let mut t = UdpSockets::new(cfg, ME, None, 1);
        let wild = t.open().unwrap();
        t.bind(wild, sa(Ipv4Addr::UNSPECIFIED, 53)).unwrap();
        let peer = sa(Ipv4Addr::new(10, 0, 0, 9), 1000);
        let other = sa(Ipv4Addr::new(10, 0, 0, 8), 1000);
        let dst = sa(ME, 53);
        assert_eq!(t.deliver(peer, dst, b"abcd"), Delivery::Queued(wild));
        assert_eq!(t.deliver(peer, dst, b"efghij"), Delivery::Queued(wild));
        assert_eq!(t.deliver(peer, dst, b"k"), Delivery::QueueFull(wild));
        assert_eq!(t.drops(wild), 1);
        let mut buf = [0u8; 2];
        let m = t.recv_from(wild, &mut buf).unwrap();
        assert_eq!((m.len, m.datagram_len, m.from, &buf), (2, 4, peer, b"ab"));
        let mut buf = [0u8; 16];
        let m = t.recv_from(wild, &mut buf).unwrap();
        assert_eq!(&buf[..m.len], b"efghij");
        assert_eq!(t.recv_from(wild, &mut buf), Err(UdpError::WouldBlock));
        assert_eq!(t.deliver(peer, sa(ME, 54), b"x"), Delivery::NoSocket);
        // A connected socket only hears from its peer and gets its ICMP errors.
        let c = t.open().unwrap();
        t.connect(c, peer).unwrap();
        let cport = t.local_addr(c).unwrap().port();
        assert_eq!(t.deliver(other, sa(ME, cport), b"x"), Delivery::NoSocket);
        assert_eq!(t.deliver(peer, sa(ME, cport), b"x"), Delivery::Queued(c));
        assert!(t.icmp_error(cport, peer, UdpError::ConnectionRefused));
        assert!(!t.icmp_error(cport, other, UdpError::ConnectionRefused));
        assert!(t.readable(c));
        assert_eq!(t.recv_from(c, &mut buf), Err(UdpError::ConnectionRefused));
        assert_eq!(t.recv_from(c, &mut buf).unwrap().len, 1);
    }
}
