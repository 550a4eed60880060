//! Symbolic constants a script may name: errno values and the flag words of the calls the
//! runner supports. Errno numbers are Linux's, because [`joyride_tcp::TcpError::errno`] returns
//! Linux numbers; comparisons are by number, so `EWOULDBLOCK` and `EAGAIN` are the same.

use super::run::Profile;

/// Linux errno numbers by name.
pub(super) fn errno(name: &str) -> Option<i32> {
    Some(match name {
        "EPERM" => 1,
        "ENOENT" => 2,
        "EINTR" => 4,
        "EIO" => 5,
        "EBADF" => 9,
        "EAGAIN" | "EWOULDBLOCK" => 11,
        "ENOMEM" => 12,
        "EACCES" => 13,
        "EFAULT" => 14,
        "EINVAL" => 22,
        "EPIPE" => 32,
        "ENOTSOCK" => 88,
        "EDESTADDRREQ" => 89,
        "EMSGSIZE" => 90,
        "EPROTOTYPE" => 91,
        "ENOPROTOOPT" => 92,
        "EPROTONOSUPPORT" => 93,
        "EOPNOTSUPP" | "ENOTSUP" => 95,
        "EAFNOSUPPORT" => 97,
        "EADDRINUSE" => 98,
        "EADDRNOTAVAIL" => 99,
        "ENETDOWN" => 100,
        "ENETUNREACH" => 101,
        "ECONNABORTED" => 103,
        "ECONNRESET" => 104,
        "ENOBUFS" => 105,
        "EISCONN" => 106,
        "ENOTCONN" => 107,
        "ESHUTDOWN" => 108,
        "ETIMEDOUT" => 110,
        "ECONNREFUSED" => 111,
        "EHOSTUNREACH" => 113,
        "EALREADY" => 114,
        "EINPROGRESS" => 115,
        _ => return None,
    })
}

/// The integer value of a flag or constant name under `profile` (file-status flags differ
/// between FreeBSD and Linux; the rest are the same on both for the names listed).
pub(super) fn constant(name: &str, profile: Profile) -> Option<i64> {
    let freebsd = profile == Profile::FreeBsd;
    Some(match name {
        "O_RDONLY" => 0,
        "O_WRONLY" => 1,
        "O_RDWR" => 2,
        "O_NONBLOCK" if freebsd => 0x4,
        "O_NONBLOCK" => 0x800,
        "F_GETFL" => 3,
        "F_SETFL" => 4,
        "MSG_OOB" => 0x1,
        "MSG_PEEK" => 0x2,
        "MSG_DONTWAIT" if freebsd => 0x80,
        "MSG_DONTWAIT" => 0x40,
        "MSG_WAITALL" if freebsd => 0x40,
        "MSG_WAITALL" => 0x100,
        "MSG_NOSIGNAL" if freebsd => 0x20000,
        "MSG_NOSIGNAL" => 0x4000,
        "SHUT_RD" => 0,
        "SHUT_WR" => 1,
        "SHUT_RDWR" => 2,
        "AF_INET" => 2,
        "PF_INET" => 2,
        "SOCK_STREAM" => 1,
        "IPPROTO_IP" => 0,
        "IPPROTO_TCP" => 6,
        "SOL_SOCKET" if freebsd => 0xffff,
        "SOL_SOCKET" => 1,
        "SOL_TCP" => 6,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use joyride_tcp::TcpError;

    #[test]
    fn errno_names_agree_with_the_engine() {
        for e in [
            TcpError::WouldBlock,
            TcpError::InProgress,
            TcpError::ConnectionRefused,
            TcpError::ConnectionReset,
            TcpError::NotConnected,
            TcpError::BrokenPipe,
            TcpError::InvalidInput,
            TcpError::AddrInUse,
            TcpError::TimedOut,
        ] {
            assert_eq!(errno(e.errno_name()), Some(e.errno()), "{e:?}");
        }
        assert_eq!(errno("EWOULDBLOCK"), errno("EAGAIN"));
        assert_eq!(errno("ENOSUCH"), None);
        assert_eq!(constant("O_NONBLOCK", Profile::FreeBsd), Some(4));
        assert_eq!(constant("O_NONBLOCK", Profile::Linux), Some(0x800));
    }
}
