//! The typed errors of the TCP socket layer, each one a Linux errno.
//!
//! DESIGN.md rule 9: errors are typed and `Copy` on the hot path; they become an errno at
//! exactly one edge (`posix/`), through [`TcpError::errno`]. The numbers are Linux's, written
//! out here from `include/uapi/asm-generic/errno-base.h` (1–34) and
//! `include/uapi/asm-generic/errno.h` (35 and up) so that this crate needs no `libc`.

use core::fmt;

/// Why a socket call failed, or why a connection died (`SO_ERROR`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpError {
    /// The call would block: no data to read, no room to write, no connection to accept
    /// (`EAGAIN`/`EWOULDBLOCK`).
    WouldBlock,
    /// A non-blocking `connect` has started and will finish later (`EINPROGRESS`).
    InProgress,
    /// A `connect` is already under way on this socket (`EALREADY`).
    AlreadyInProgress,
    /// The socket is already connected (`EISCONN`).
    IsConnected,
    /// The socket is not connected (`ENOTCONN`).
    NotConnected,
    /// The local address (port) is already in use (`EADDRINUSE`).
    AddrInUse,
    /// The local address is not one of this host's, or no ephemeral port is free
    /// (`EADDRNOTAVAIL`).
    AddrNotAvailable,
    /// The peer answered the SYN with a RST (`ECONNREFUSED`).
    ConnectionRefused,
    /// The peer reset the connection (`ECONNRESET`).
    ConnectionReset,
    /// The connection was aborted locally, e.g. a pending connection dropped from the accept
    /// queue (`ECONNABORTED`).
    ConnectionAborted,
    /// Retransmissions, keepalives or the user timeout gave up (`ETIMEDOUT`).
    TimedOut,
    /// Writing after the send side was shut down or the connection closed (`EPIPE`).
    BrokenPipe,
    /// An argument is invalid for this socket or state (`EINVAL`).
    InvalidInput,
    /// No such socket (`EBADF`).
    BadSocket,
    /// `accept` on a socket that is not listening (`EINVAL` on Linux, as `accept(2)` says).
    NotListening,
    /// The operation is not supported on this socket (`EOPNOTSUPP`).
    NotSupported,
    /// The option is not known at this level (`ENOPROTOOPT`).
    NoProtocolOption,
    /// Too many sockets, or no memory for another connection's buffers (`ENOBUFS`).
    NoBuffers,
    /// No route to the destination / no local address to send from (`ENETUNREACH`).
    NetworkUnreachable,
}

impl TcpError {
    /// The Linux errno for this error (positive, as `errno` holds it).
    pub const fn errno(self) -> i32 {
        match self {
            // errno-base.h
            TcpError::BadSocket => 9,     // EBADF
            TcpError::WouldBlock => 11,   // EAGAIN == EWOULDBLOCK
            TcpError::InvalidInput => 22, // EINVAL
            TcpError::NotListening => 22, // EINVAL (accept(2) on a non-listening socket)
            TcpError::BrokenPipe => 32,   // EPIPE
            // errno.h
            TcpError::NoProtocolOption => 92,    // ENOPROTOOPT
            TcpError::NotSupported => 95,        // EOPNOTSUPP
            TcpError::AddrInUse => 98,           // EADDRINUSE
            TcpError::AddrNotAvailable => 99,    // EADDRNOTAVAIL
            TcpError::NetworkUnreachable => 101, // ENETUNREACH
            TcpError::ConnectionAborted => 103,  // ECONNABORTED
            TcpError::ConnectionReset => 104,    // ECONNRESET
            TcpError::NoBuffers => 105,          // ENOBUFS
            TcpError::IsConnected => 106,        // EISCONN
            TcpError::NotConnected => 107,       // ENOTCONN
            TcpError::TimedOut => 110,           // ETIMEDOUT
            TcpError::ConnectionRefused => 111,  // ECONNREFUSED
            TcpError::AlreadyInProgress => 114,  // EALREADY
            TcpError::InProgress => 115,         // EINPROGRESS
        }
    }

    /// The errno's symbolic name (`"ECONNRESET"`), as packetdrill scripts spell it.
    pub const fn errno_name(self) -> &'static str {
        match self {
            TcpError::BadSocket => "EBADF",
            TcpError::WouldBlock => "EAGAIN",
            TcpError::InvalidInput | TcpError::NotListening => "EINVAL",
            TcpError::BrokenPipe => "EPIPE",
            TcpError::NoProtocolOption => "ENOPROTOOPT",
            TcpError::NotSupported => "EOPNOTSUPP",
            TcpError::AddrInUse => "EADDRINUSE",
            TcpError::AddrNotAvailable => "EADDRNOTAVAIL",
            TcpError::NetworkUnreachable => "ENETUNREACH",
            TcpError::ConnectionAborted => "ECONNABORTED",
            TcpError::ConnectionReset => "ECONNRESET",
            TcpError::NoBuffers => "ENOBUFS",
            TcpError::IsConnected => "EISCONN",
            TcpError::NotConnected => "ENOTCONN",
            TcpError::TimedOut => "ETIMEDOUT",
            TcpError::ConnectionRefused => "ECONNREFUSED",
            TcpError::AlreadyInProgress => "EALREADY",
            TcpError::InProgress => "EINPROGRESS",
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpError::WouldBlock => "operation would block",
            TcpError::InProgress => "operation now in progress",
            TcpError::AlreadyInProgress => "operation already in progress",
            TcpError::IsConnected => "socket is already connected",
            TcpError::NotConnected => "socket is not connected",
            TcpError::AddrInUse => "address already in use",
            TcpError::AddrNotAvailable => "cannot assign requested address",
            TcpError::ConnectionRefused => "connection refused",
            TcpError::ConnectionReset => "connection reset by peer",
            TcpError::ConnectionAborted => "software caused connection abort",
            TcpError::TimedOut => "connection timed out",
            TcpError::BrokenPipe => "broken pipe",
            TcpError::InvalidInput => "invalid argument",
            TcpError::BadSocket => "bad socket",
            TcpError::NotListening => "socket is not listening",
            TcpError::NotSupported => "operation not supported",
            TcpError::NoProtocolOption => "protocol not available",
            TcpError::NoBuffers => "no buffer space available",
            TcpError::NetworkUnreachable => "network is unreachable",
        })
    }
}

impl core::error::Error for TcpError {}

/// A tunable name that [`crate::TcpConfig::set_tunable`] does not know, or a value it cannot
/// parse for a known name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownTunable;

impl fmt::Display for UnknownTunable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown tunable or bad value")
    }
}

impl core::error::Error for UnknownTunable {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_errnos() {
        assert_eq!(TcpError::WouldBlock.errno(), 11);
        assert_eq!(TcpError::InProgress.errno(), 115);
        assert_eq!(TcpError::ConnectionRefused.errno(), 111);
        assert_eq!(TcpError::ConnectionReset.errno(), 104);
        assert_eq!(TcpError::BrokenPipe.errno(), 32);
        assert_eq!(TcpError::ConnectionReset.errno_name(), "ECONNRESET");
    }
}
