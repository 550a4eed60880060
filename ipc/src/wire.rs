//! Commands and completions: typed values with a hand-written, fixed 64-byte little-endian
//! encoding (no `#[repr(C)]` transmutes). Decoding checks every field, requires every reserved
//! or unused byte to be zero (so `encode(decode(b)) == b` whenever decode succeeds) and returns
//! a typed [`DecodeError`] for anything else. See `PROTOCOL.md` for the tables.

use crate::layout::{le32, le64, ENTRY_SIZE};
use core::fmt;

/// One ring entry's bytes.
pub type Entry = [u8; ENTRY_SIZE];

/// An application-chosen request id, echoed in the completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// A socket's index in the region's socket table (the "capability" an app holds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketIndex(pub u32);

/// The encoded "no socket" value (used by `Socket`, which has none yet).
const NO_SOCKET: u32 = u32::MAX;

/// An errno value, 1..=4095 (Linux's range), carried as a negative result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(u16);

impl Errno {
    /// `Some` for 1..=4095.
    pub fn new(e: i32) -> Option<Errno> {
        if (1..=4095).contains(&e) {
            Some(Errno(e as u16))
        } else {
            None
        }
    }

    /// The errno as libc spells it.
    pub fn get(self) -> i32 {
        i32::from(self.0)
    }

    /// `EINVAL`.
    pub const INVAL: Errno = Errno(libc::EINVAL as u16);
    /// `EBADF`.
    pub const BADF: Errno = Errno(libc::EBADF as u16);
}

/// Address family (`socket`'s `domain`). Values are Linux's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Domain {
    /// `AF_INET` (2).
    Inet,
    /// `AF_INET6` (10).
    Inet6,
}

/// Socket type, without the `SOCK_NONBLOCK`/`SOCK_CLOEXEC` bits (those stay in the shim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SockType {
    /// `SOCK_STREAM` (1).
    Stream,
    /// `SOCK_DGRAM` (2).
    Dgram,
}

/// Protocol (`socket`'s third argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// 0: the type's default.
    Default,
    /// `IPPROTO_TCP` (6).
    Tcp,
    /// `IPPROTO_UDP` (17).
    Udp,
}

/// `shutdown`'s `how`. Values are Linux's `SHUT_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Shutdown {
    /// `SHUT_RD` (0).
    Read,
    /// `SHUT_WR` (1).
    Write,
    /// `SHUT_RDWR` (2).
    Both,
}

/// Option level. Values are Linux's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OptLevel {
    /// `SOL_SOCKET` (1).
    Socket,
    /// `IPPROTO_IP` (0).
    Ip,
    /// `IPPROTO_TCP` (6).
    Tcp,
    /// `IPPROTO_IPV6` (41).
    Ipv6,
}

/// A socket option: level plus Linux option name (the service answers `ENOPROTOOPT` for names
/// it does not know).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockOpt {
    /// The level.
    pub level: OptLevel,
    /// The option name, as Linux numbers it at that level.
    pub name: u32,
}

/// Most bytes of an option value carried inline.
pub const OPT_MAX: usize = 32;

/// A small option value (`int`, `linger`, `timeval`…), at most [`OPT_MAX`] bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OptValue {
    len: u8,
    bytes: [u8; OPT_MAX],
}

impl OptValue {
    /// `None` if `v` is longer than [`OPT_MAX`].
    pub fn new(v: &[u8]) -> Option<OptValue> {
        let mut bytes = [0; OPT_MAX];
        bytes.get_mut(..v.len())?.copy_from_slice(v);
        Some(OptValue { len: v.len() as u8, bytes })
    }

    /// The value's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Flags of a `Send` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SendFlags(u32);

impl SendFlags {
    /// `MSG_MORE`/`TCP_CORK`-like: more data follows, the service may delay sending.
    pub const MORE: SendFlags = SendFlags(1);
    /// `MSG_OOB`: urgent data.
    pub const OOB: SendFlags = SendFlags(2);
    const ALL: u32 = 3;

    /// No flags.
    pub const fn empty() -> SendFlags {
        SendFlags(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// `Some` if only known bits are set.
    pub const fn from_bits(b: u32) -> Option<SendFlags> {
        if b & !Self::ALL == 0 {
            Some(SendFlags(b))
        } else {
            None
        }
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: SendFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union.
    pub const fn union(self, other: SendFlags) -> SendFlags {
        SendFlags(self.0 | other.0)
    }
}

/// A socket address (IPv4 or IPv6), encoded in 28 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SockAddr {
    /// IPv4 address and port.
    V4 {
        /// Address octets, network order.
        addr: [u8; 4],
        /// Port, host value.
        port: u16,
    },
    /// IPv6 address, port, flow info and scope id.
    V6 {
        /// Address octets, network order.
        addr: [u8; 16],
        /// Port, host value.
        port: u16,
        /// `sin6_flowinfo`.
        flowinfo: u32,
        /// `sin6_scope_id`.
        scope_id: u32,
    },
}

/// Encoded size of a [`SockAddr`].
pub const ADDR_LEN: usize = 28;

impl SockAddr {
    fn encode(&self, b: &mut [u8]) {
        match *self {
            SockAddr::V4 { addr, port } => {
                b[0..2].copy_from_slice(&(libc::AF_INET as u16).to_le_bytes());
                b[2..4].copy_from_slice(&port.to_le_bytes());
                b[8..12].copy_from_slice(&addr);
            }
            SockAddr::V6 { addr, port, flowinfo, scope_id } => {
                b[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_le_bytes());
                b[2..4].copy_from_slice(&port.to_le_bytes());
                b[4..8].copy_from_slice(&flowinfo.to_le_bytes());
                b[8..24].copy_from_slice(&addr);
                b[24..28].copy_from_slice(&scope_id.to_le_bytes());
            }
        }
    }

    fn decode(b: &[u8]) -> Result<SockAddr, DecodeError> {
        let family = u16::from_le_bytes([b[0], b[1]]);
        let port = u16::from_le_bytes([b[2], b[3]]);
        if family == libc::AF_INET as u16 {
            if b[4..8].iter().chain(&b[12..28]).any(|&x| x != 0) {
                return Err(DecodeError::NonZeroReserved);
            }
            Ok(SockAddr::V4 { addr: [b[8], b[9], b[10], b[11]], port })
        } else if family == libc::AF_INET6 as u16 {
            let mut addr = [0; 16];
            addr.copy_from_slice(&b[8..24]);
            Ok(SockAddr::V6 { addr, port, flowinfo: le32(b, 4), scope_id: le32(b, 24) })
        } else {
            Err(DecodeError::BadFamily(family))
        }
    }
}

/// A command, app → service. Every variant but `Socket` names the socket it acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// `socket(domain, type, protocol)`: result is the new [`SocketIndex`].
    Socket {
        /// Address family.
        domain: Domain,
        /// Stream or datagram.
        ty: SockType,
        /// Protocol.
        proto: Protocol,
    },
    /// `bind`.
    Bind {
        /// The socket.
        sock: SocketIndex,
        /// Local address.
        addr: SockAddr,
    },
    /// `listen`.
    Listen {
        /// The socket.
        sock: SocketIndex,
        /// Backlog (0..=i32::MAX; the service clamps as Linux does).
        backlog: u32,
    },
    /// Non-blocking `accept`: result is the new [`SocketIndex`] (or `-EAGAIN`), payload the
    /// peer address.
    Accept {
        /// The listening socket.
        sock: SocketIndex,
    },
    /// Non-blocking `connect` (result 0, `-EINPROGRESS`, or an error).
    Connect {
        /// The socket.
        sock: SocketIndex,
        /// Remote address.
        addr: SockAddr,
    },
    /// `len` more bytes are in the socket's tx ring (posted: no completion unless invalid).
    /// For datagram sockets each `Send` is one datagram, `dest` its destination (`sendto`).
    Send {
        /// The socket.
        sock: SocketIndex,
        /// Bytes newly written after the previous tx head.
        len: u32,
        /// Flags.
        flags: SendFlags,
        /// Destination of a datagram, if given.
        dest: Option<SockAddr>,
    },
    /// The app consumed `consumed` bytes from the socket's rx ring (posted: no completion unless
    /// invalid); the service may reuse that space and open its receive window.
    RecvWindow {
        /// The socket.
        sock: SocketIndex,
        /// Bytes consumed since the previous update.
        consumed: u32,
    },
    /// `shutdown`.
    Shutdown {
        /// The socket.
        sock: SocketIndex,
        /// Which direction(s).
        how: Shutdown,
    },
    /// `close` of the last reference: the service releases the slot after completing.
    Close {
        /// The socket.
        sock: SocketIndex,
    },
    /// `setsockopt` with an inline value.
    SetOpt {
        /// The socket.
        sock: SocketIndex,
        /// Which option.
        opt: SockOpt,
        /// Its new value.
        value: OptValue,
    },
    /// `getsockopt`: payload is the value (at most `max_len` bytes).
    GetOpt {
        /// The socket.
        sock: SocketIndex,
        /// Which option.
        opt: SockOpt,
        /// Most bytes wanted (≤ [`OPT_MAX`]).
        max_len: u8,
    },
    /// `getsockname`: payload is the address.
    GetSockName {
        /// The socket.
        sock: SocketIndex,
    },
    /// `getpeername`: payload is the address.
    GetPeerName {
        /// The socket.
        sock: SocketIndex,
    },
    /// Socket statistics: payload is a [`SocketStat`].
    Stat {
        /// The socket.
        sock: SocketIndex,
    },
    /// The process is about to `fork`: the service snapshots every socket open in this region
    /// and holds a reference to each for the child; result is the ticket (> 0) the child
    /// presents with [`Command::Join`].
    Fork,
    /// First command of a forked child on its own, fresh region: attach the sockets of the
    /// parent's [`Command::Fork`] snapshot at the same slot indices (result 0).
    Join {
        /// The ticket the parent's `Fork` returned.
        ticket: u64,
    },
    /// From the new image of a process that `exec`ed (same pid): open, at the same index, the
    /// socket that was slot `slot` of the process's region before the exec and whose fd
    /// survived it. Result: [`inherited`] bits.
    Inherit {
        /// The slot index in the region the process had before `exec`.
        slot: u32,
    },
}

/// Result bits of [`Command::Inherit`]: what the new image's socket table needs to know.
pub mod inherited {
    /// A datagram socket.
    pub const DGRAM: u64 = 1;
    /// A listening stream socket.
    pub const LISTENING: u64 = 2;
    /// A connected (or connecting) stream socket, or a datagram socket with a peer.
    pub const CONNECTED: u64 = 4;

    /// The shim keeps `mark(slot)` in the counter of each socket's backing eventfd, so the
    /// image a process `exec`s into (and the service, from `/proc/PID/fdinfo`) can tell which
    /// of its descriptors are Joyride sockets, and which slot each was.
    pub fn mark(slot: u32) -> u64 {
        MARK | u64::from(slot)
    }

    /// The slot an eventfd counter marks, if it is a mark.
    pub fn slot_of(count: u64) -> Option<u32> {
        (count & !0xffff_ffff == MARK).then_some(count as u32)
    }

    const MARK: u64 = 0x4a52_4944 << 32; // "JRID"
}

/// Command opcodes (entry bytes 8..10).
mod op {
    pub(super) const SOCKET: u16 = 1;
    pub(super) const BIND: u16 = 2;
    pub(super) const LISTEN: u16 = 3;
    pub(super) const ACCEPT: u16 = 4;
    pub(super) const CONNECT: u16 = 5;
    pub(super) const SEND: u16 = 6;
    pub(super) const RECV_WINDOW: u16 = 7;
    pub(super) const SHUTDOWN: u16 = 8;
    pub(super) const CLOSE: u16 = 9;
    pub(super) const SET_OPT: u16 = 10;
    pub(super) const GET_OPT: u16 = 11;
    pub(super) const GET_SOCK_NAME: u16 = 12;
    pub(super) const GET_PEER_NAME: u16 = 13;
    pub(super) const STAT: u16 = 14;
    pub(super) const FORK: u16 = 15;
    pub(super) const JOIN: u16 = 16;
    pub(super) const INHERIT: u16 = 17;
}

/// Why an entry did not decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// Unknown command opcode or completion payload kind.
    BadOpcode(u16),
    /// A reserved or unused byte is not zero.
    NonZeroReserved,
    /// The socket field is wrong for the opcode (`Socket` must carry none, others one).
    BadSocketField,
    /// Unknown address family.
    BadFamily(u16),
    /// Unknown `domain`.
    BadDomain(u16),
    /// Unknown socket type.
    BadType(u16),
    /// Unknown protocol.
    BadProtocol(u32),
    /// Unknown `shutdown` direction.
    BadShutdown(u32),
    /// Unknown option level.
    BadOptLevel(u32),
    /// An option length above [`OPT_MAX`].
    BadOptLen(u32),
    /// Unknown `Send` flag bits.
    BadFlags(u32),
    /// A backlog above `i32::MAX`.
    BadBacklog(u32),
    /// A completion result below `-4095`.
    BadResult(i64),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadOpcode(v) => write!(f, "unknown opcode {v}"),
            DecodeError::NonZeroReserved => f.write_str("reserved bytes not zero"),
            DecodeError::BadSocketField => f.write_str("socket field wrong for opcode"),
            DecodeError::BadFamily(v) => write!(f, "unknown address family {v}"),
            DecodeError::BadDomain(v) => write!(f, "unknown domain {v}"),
            DecodeError::BadType(v) => write!(f, "unknown socket type {v}"),
            DecodeError::BadProtocol(v) => write!(f, "unknown protocol {v}"),
            DecodeError::BadShutdown(v) => write!(f, "unknown shutdown direction {v}"),
            DecodeError::BadOptLevel(v) => write!(f, "unknown option level {v}"),
            DecodeError::BadOptLen(v) => write!(f, "option length {v} too long"),
            DecodeError::BadFlags(v) => write!(f, "unknown send flags {v:#x}"),
            DecodeError::BadBacklog(v) => write!(f, "backlog {v} too large"),
            DecodeError::BadResult(v) => write!(f, "result {v} out of range"),
        }
    }
}

impl std::error::Error for DecodeError {}

// Offsets shared by both entry kinds.
const ID: usize = 0;
const OPCODE: usize = 8;
const SOCK: usize = 12;
const ARG: usize = 16;

fn zeros(b: &[u8]) -> Result<(), DecodeError> {
    if b.iter().all(|&x| x == 0) {
        Ok(())
    } else {
        Err(DecodeError::NonZeroReserved)
    }
}

fn opt_level_code(l: OptLevel) -> u32 {
    match l {
        OptLevel::Socket => libc::SOL_SOCKET as u32,
        OptLevel::Ip => libc::IPPROTO_IP as u32,
        OptLevel::Tcp => libc::IPPROTO_TCP as u32,
        OptLevel::Ipv6 => libc::IPPROTO_IPV6 as u32,
    }
}

fn opt_level(v: u32) -> Result<OptLevel, DecodeError> {
    Ok(match v as i32 {
        libc::SOL_SOCKET => OptLevel::Socket,
        libc::IPPROTO_IP => OptLevel::Ip,
        libc::IPPROTO_TCP => OptLevel::Tcp,
        libc::IPPROTO_IPV6 => OptLevel::Ipv6,
        _ => return Err(DecodeError::BadOptLevel(v)),
    })
}

impl Command {
    /// The socket this command acts on (`None` for `Socket`, `Fork`, `Join` and `Inherit`).
    pub fn socket(&self) -> Option<SocketIndex> {
        match *self {
            Command::Bind { sock, .. }
            | Command::Listen { sock, .. }
            | Command::Accept { sock }
            | Command::Connect { sock, .. }
            | Command::Send { sock, .. }
            | Command::RecvWindow { sock, .. }
            | Command::Shutdown { sock, .. }
            | Command::Close { sock }
            | Command::SetOpt { sock, .. }
            | Command::GetOpt { sock, .. }
            | Command::GetSockName { sock }
            | Command::GetPeerName { sock }
            | Command::Stat { sock } => Some(sock),
            Command::Socket { .. }
            | Command::Fork
            | Command::Join { .. }
            | Command::Inherit { .. } => None,
        }
    }

    /// Posted commands (`Send`, `RecvWindow`) get no completion unless they are invalid.
    pub fn is_posted(&self) -> bool {
        matches!(self, Command::Send { .. } | Command::RecvWindow { .. })
    }

    /// Encodes with request id `id` into a 64-byte entry.
    pub fn encode(&self, id: RequestId) -> Entry {
        let mut b = [0u8; ENTRY_SIZE];
        b[ID..ID + 8].copy_from_slice(&id.0.to_le_bytes());
        let sock = self.socket().map_or(NO_SOCKET, |s| s.0);
        b[SOCK..SOCK + 4].copy_from_slice(&sock.to_le_bytes());
        let a = &mut b[ARG..];
        let opcode = match *self {
            Command::Socket { domain, ty, proto } => {
                let d = match domain {
                    Domain::Inet => libc::AF_INET,
                    Domain::Inet6 => libc::AF_INET6,
                } as u16;
                let t = match ty {
                    SockType::Stream => libc::SOCK_STREAM,
                    SockType::Dgram => libc::SOCK_DGRAM,
                } as u16;
                let p = match proto {
                    Protocol::Default => 0,
                    Protocol::Tcp => libc::IPPROTO_TCP,
                    Protocol::Udp => libc::IPPROTO_UDP,
                } as u32;
                a[0..2].copy_from_slice(&d.to_le_bytes());
                a[2..4].copy_from_slice(&t.to_le_bytes());
                a[4..8].copy_from_slice(&p.to_le_bytes());
                op::SOCKET
            }
            Command::Bind { addr, .. } => {
                addr.encode(&mut a[..ADDR_LEN]);
                op::BIND
            }
            Command::Listen { backlog, .. } => {
                a[0..4].copy_from_slice(&backlog.to_le_bytes());
                op::LISTEN
            }
            Command::Accept { .. } => op::ACCEPT,
            Command::Connect { addr, .. } => {
                addr.encode(&mut a[..ADDR_LEN]);
                op::CONNECT
            }
            Command::Send { len, flags, dest, .. } => {
                a[0..4].copy_from_slice(&len.to_le_bytes());
                a[4..8].copy_from_slice(&flags.bits().to_le_bytes());
                if let Some(d) = dest {
                    a[8] = 1;
                    d.encode(&mut a[12..12 + ADDR_LEN]);
                }
                op::SEND
            }
            Command::RecvWindow { consumed, .. } => {
                a[0..4].copy_from_slice(&consumed.to_le_bytes());
                op::RECV_WINDOW
            }
            Command::Shutdown { how, .. } => {
                let h = match how {
                    Shutdown::Read => libc::SHUT_RD,
                    Shutdown::Write => libc::SHUT_WR,
                    Shutdown::Both => libc::SHUT_RDWR,
                } as u32;
                a[0..4].copy_from_slice(&h.to_le_bytes());
                op::SHUTDOWN
            }
            Command::Close { .. } => op::CLOSE,
            Command::SetOpt { opt, value, .. } => {
                a[0..4].copy_from_slice(&opt_level_code(opt.level).to_le_bytes());
                a[4..8].copy_from_slice(&opt.name.to_le_bytes());
                a[8..12].copy_from_slice(&u32::from(value.len).to_le_bytes());
                a[12..12 + OPT_MAX].copy_from_slice(&value.bytes);
                op::SET_OPT
            }
            Command::GetOpt { opt, max_len, .. } => {
                a[0..4].copy_from_slice(&opt_level_code(opt.level).to_le_bytes());
                a[4..8].copy_from_slice(&opt.name.to_le_bytes());
                a[8..12].copy_from_slice(&u32::from(max_len).to_le_bytes());
                op::GET_OPT
            }
            Command::GetSockName { .. } => op::GET_SOCK_NAME,
            Command::GetPeerName { .. } => op::GET_PEER_NAME,
            Command::Stat { .. } => op::STAT,
            Command::Fork => op::FORK,
            Command::Join { ticket } => {
                a[0..8].copy_from_slice(&ticket.to_le_bytes());
                op::JOIN
            }
            Command::Inherit { slot } => {
                a[0..4].copy_from_slice(&slot.to_le_bytes());
                op::INHERIT
            }
        };
        b[OPCODE..OPCODE + 2].copy_from_slice(&opcode.to_le_bytes());
        b
    }

    /// Decodes an entry already copied out of shared memory, checking every field.
    pub fn decode(b: &Entry) -> Result<(RequestId, Command), DecodeError> {
        let id = RequestId(le64(b, ID));
        let opcode = u16::from_le_bytes([b[OPCODE], b[OPCODE + 1]]);
        zeros(&b[OPCODE + 2..SOCK])?;
        let raw_sock = le32(b, SOCK);
        let a = &b[ARG..];
        // `used` = argument bytes this opcode defines; the rest must be zero.
        let sock = if matches!(opcode, op::SOCKET | op::FORK | op::JOIN | op::INHERIT) {
            if raw_sock != NO_SOCKET {
                return Err(DecodeError::BadSocketField);
            }
            SocketIndex(0)
        } else {
            if raw_sock == NO_SOCKET {
                return Err(DecodeError::BadSocketField);
            }
            SocketIndex(raw_sock)
        };
        let (cmd, used) = match opcode {
            op::SOCKET => {
                let d = u16::from_le_bytes([a[0], a[1]]);
                let t = u16::from_le_bytes([a[2], a[3]]);
                let p = le32(a, 4);
                let domain = match i32::from(d) {
                    libc::AF_INET => Domain::Inet,
                    libc::AF_INET6 => Domain::Inet6,
                    _ => return Err(DecodeError::BadDomain(d)),
                };
                let ty = match i32::from(t) {
                    libc::SOCK_STREAM => SockType::Stream,
                    libc::SOCK_DGRAM => SockType::Dgram,
                    _ => return Err(DecodeError::BadType(t)),
                };
                let proto = match p as i32 {
                    0 => Protocol::Default,
                    libc::IPPROTO_TCP => Protocol::Tcp,
                    libc::IPPROTO_UDP => Protocol::Udp,
                    _ => return Err(DecodeError::BadProtocol(p)),
                };
                (Command::Socket { domain, ty, proto }, 8)
            }
            op::BIND => (Command::Bind { sock, addr: SockAddr::decode(&a[..ADDR_LEN])? }, ADDR_LEN),
            op::LISTEN => {
                let backlog = le32(a, 0);
                if backlog > i32::MAX as u32 {
                    return Err(DecodeError::BadBacklog(backlog));
                }
                (Command::Listen { sock, backlog }, 4)
            }
            op::ACCEPT => (Command::Accept { sock }, 0),
            op::CONNECT => {
                (Command::Connect { sock, addr: SockAddr::decode(&a[..ADDR_LEN])? }, ADDR_LEN)
            }
            op::SEND => {
                let f = le32(a, 4);
                let flags = SendFlags::from_bits(f).ok_or(DecodeError::BadFlags(f))?;
                zeros(&a[9..12])?;
                let dest = match a[8] {
                    0 => None,
                    1 => Some(SockAddr::decode(&a[12..12 + ADDR_LEN])?),
                    _ => return Err(DecodeError::NonZeroReserved),
                };
                (
                    Command::Send { sock, len: le32(a, 0), flags, dest },
                    12 + ADDR_LEN * dest.is_some() as usize,
                )
            }
            op::RECV_WINDOW => (Command::RecvWindow { sock, consumed: le32(a, 0) }, 4),
            op::SHUTDOWN => {
                let h = le32(a, 0);
                let how = match h as i32 {
                    libc::SHUT_RD => Shutdown::Read,
                    libc::SHUT_WR => Shutdown::Write,
                    libc::SHUT_RDWR => Shutdown::Both,
                    _ => return Err(DecodeError::BadShutdown(h)),
                };
                (Command::Shutdown { sock, how }, 4)
            }
            op::CLOSE => (Command::Close { sock }, 0),
            op::SET_OPT | op::GET_OPT => {
                let opt = SockOpt { level: opt_level(le32(a, 0))?, name: le32(a, 4) };
                let len = le32(a, 8);
                if len as usize > OPT_MAX {
                    return Err(DecodeError::BadOptLen(len));
                }
                if opcode == op::GET_OPT {
                    (Command::GetOpt { sock, opt, max_len: len as u8 }, 12)
                } else {
                    let value = OptValue::new(&a[12..12 + len as usize])
                        .ok_or(DecodeError::BadOptLen(len))?;
                    (Command::SetOpt { sock, opt, value }, 12 + len as usize)
                }
            }
            op::GET_SOCK_NAME => (Command::GetSockName { sock }, 0),
            op::GET_PEER_NAME => (Command::GetPeerName { sock }, 0),
            op::STAT => (Command::Stat { sock }, 0),
            op::FORK => (Command::Fork, 0),
            op::JOIN => (Command::Join { ticket: le64(a, 0) }, 8),
            op::INHERIT => (Command::Inherit { slot: le32(a, 0) }, 4),
            _ => return Err(DecodeError::BadOpcode(opcode)),
        };
        zeros(&a[used..])?;
        Ok((id, cmd))
    }
}

/// Per-socket statistics returned by `Stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SocketStat {
    /// Protocol state code (service-defined; the `joyride stat` tool names it).
    pub state: u32,
    /// Bytes queued for the app (received, unread).
    pub rx_queued: u32,
    /// Bytes queued for sending (written, unacknowledged).
    pub tx_queued: u32,
    /// Retransmitted segments.
    pub retransmits: u32,
}

/// What a completion carries besides its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    /// Nothing.
    None,
    /// An address (`Accept`'s peer, `GetSockName`, `GetPeerName`).
    Addr(SockAddr),
    /// An option value (`GetOpt`).
    Opt(OptValue),
    /// Statistics (`Stat`).
    Stat(SocketStat),
}

/// A completion, service → app.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Completion {
    /// The id of the command this answers.
    pub id: RequestId,
    /// `Ok(value)` (value ≤ `i64::MAX`) or the errno.
    pub result: Result<u64, Errno>,
    /// Inline payload.
    pub payload: Payload,
}

const RESULT: usize = 8;
const KIND: usize = 16;
const PAYLOAD: usize = 24;

impl Completion {
    /// Encodes into a 64-byte entry. An `Ok` value above `i64::MAX` is clamped to it.
    pub fn encode(&self) -> Entry {
        let mut b = [0u8; ENTRY_SIZE];
        b[ID..ID + 8].copy_from_slice(&self.id.0.to_le_bytes());
        let r: i64 = match self.result {
            Ok(v) => i64::try_from(v).unwrap_or(i64::MAX),
            Err(e) => -i64::from(e.get()),
        };
        b[RESULT..RESULT + 8].copy_from_slice(&r.to_le_bytes());
        let p = &mut b[PAYLOAD..];
        let kind: u16 = match self.payload {
            Payload::None => 0,
            Payload::Addr(a) => {
                a.encode(&mut p[..ADDR_LEN]);
                1
            }
            Payload::Opt(v) => {
                p[0..4].copy_from_slice(&u32::from(v.len).to_le_bytes());
                p[4..4 + OPT_MAX].copy_from_slice(&v.bytes);
                2
            }
            Payload::Stat(s) => {
                for (i, v) in [s.state, s.rx_queued, s.tx_queued, s.retransmits].iter().enumerate()
                {
                    p[4 * i..4 * i + 4].copy_from_slice(&v.to_le_bytes());
                }
                3
            }
        };
        b[KIND..KIND + 2].copy_from_slice(&kind.to_le_bytes());
        b
    }

    /// Decodes an entry copied out of shared memory, checking every field.
    pub fn decode(b: &Entry) -> Result<Completion, DecodeError> {
        let id = RequestId(le64(b, ID));
        let r = le64(b, RESULT) as i64;
        let result = if r >= 0 {
            Ok(r as u64)
        } else {
            let e = r.checked_neg().and_then(|x| i32::try_from(x).ok()).and_then(Errno::new);
            Err(e.ok_or(DecodeError::BadResult(r))?)
        };
        let kind = u16::from_le_bytes([b[KIND], b[KIND + 1]]);
        zeros(&b[KIND + 2..PAYLOAD])?;
        let p = &b[PAYLOAD..];
        let (payload, used) = match kind {
            0 => (Payload::None, 0),
            1 => (Payload::Addr(SockAddr::decode(&p[..ADDR_LEN])?), ADDR_LEN),
            2 => {
                let len = le32(p, 0);
                if len as usize > OPT_MAX {
                    return Err(DecodeError::BadOptLen(len));
                }
                let v =
                    OptValue::new(&p[4..4 + len as usize]).ok_or(DecodeError::BadOptLen(len))?;
                (Payload::Opt(v), 4 + len as usize)
            }
            3 => {
                let s = SocketStat {
                    state: le32(p, 0),
                    rx_queued: le32(p, 4),
                    tx_queued: le32(p, 8),
                    retransmits: le32(p, 12),
                };
                (Payload::Stat(s), 16)
            }
            _ => return Err(DecodeError::BadOpcode(kind)),
        };
        zeros(&p[used..])?;
        Ok(Completion { id, result, payload })
    }
}

/// Readiness bits published per socket. Values equal Linux's `EPOLL*` bits so the shim can
/// hand them to `epoll`/`poll` callers unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Readiness(pub u32);

impl Readiness {
    /// `EPOLLIN`: data (or a connection to accept, or EOF) is readable.
    pub const READABLE: Readiness = Readiness(libc::EPOLLIN as u32);
    /// `EPOLLPRI`: urgent data.
    pub const PRI: Readiness = Readiness(libc::EPOLLPRI as u32);
    /// `EPOLLOUT`: tx ring space is available / connect finished.
    pub const WRITABLE: Readiness = Readiness(libc::EPOLLOUT as u32);
    /// `EPOLLERR`: a socket error is pending (`SO_ERROR`).
    pub const ERR: Readiness = Readiness(libc::EPOLLERR as u32);
    /// `EPOLLHUP`: both directions are shut.
    pub const HUP: Readiness = Readiness(libc::EPOLLHUP as u32);
    /// `EPOLLRDHUP`: the peer shut its sending side.
    pub const RDHUP: Readiness = Readiness(libc::EPOLLRDHUP as u32);

    /// Whether every bit of `o` is set.
    pub const fn contains(self, o: Readiness) -> bool {
        self.0 & o.0 == o.0
    }

    /// The union.
    pub const fn union(self, o: Readiness) -> Readiness {
        Readiness(self.0 | o.0)
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
