//! Errors inside the shim are [`Errno`] values (Linux's numbers); they become `-1` + `errno`
//! at exactly one place, `abi::edge`.

use joyride_ipc::ClientError;

/// A Linux errno value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

/// The shim's result type.
pub type Res<T> = Result<T, Errno>;

impl Errno {
    /// `EPERM`.
    pub const PERM: Errno = Errno(libc::EPERM);
    /// `EINTR`.
    pub const INTR: Errno = Errno(libc::EINTR);
    /// `EIO`.
    pub const IO: Errno = Errno(libc::EIO);
    /// `EBADF`.
    pub const BADF: Errno = Errno(libc::EBADF);
    /// `EAGAIN` (= `EWOULDBLOCK`).
    pub const AGAIN: Errno = Errno(libc::EAGAIN);
    /// `ENOMEM`.
    pub const NOMEM: Errno = Errno(libc::ENOMEM);
    /// `EFAULT`.
    pub const FAULT: Errno = Errno(libc::EFAULT);
    /// `EINVAL`.
    pub const INVAL: Errno = Errno(libc::EINVAL);
    /// `EMFILE`.
    pub const MFILE: Errno = Errno(libc::EMFILE);
    /// `ENOTTY`.
    pub const NOTTY: Errno = Errno(libc::ENOTTY);
    /// `EPIPE`.
    pub const PIPE: Errno = Errno(libc::EPIPE);
    /// `EDOM`.
    pub const DOM: Errno = Errno(libc::EDOM);
    /// `ENAMETOOLONG`.
    pub const NAMETOOLONG: Errno = Errno(libc::ENAMETOOLONG);
    /// `ENOSYS`.
    pub const NOSYS: Errno = Errno(libc::ENOSYS);
    /// `ENOTSOCK`.
    pub const NOTSOCK: Errno = Errno(libc::ENOTSOCK);
    /// `EDESTADDRREQ`.
    pub const DESTADDRREQ: Errno = Errno(libc::EDESTADDRREQ);
    /// `EMSGSIZE`.
    pub const MSGSIZE: Errno = Errno(libc::EMSGSIZE);
    /// `EPROTONOSUPPORT`.
    pub const PROTONOSUPPORT: Errno = Errno(libc::EPROTONOSUPPORT);
    /// `ENOPROTOOPT`.
    pub const NOPROTOOPT: Errno = Errno(libc::ENOPROTOOPT);
    /// `EOPNOTSUPP`.
    pub const OPNOTSUPP: Errno = Errno(libc::EOPNOTSUPP);
    /// `EAFNOSUPPORT`.
    pub const AFNOSUPPORT: Errno = Errno(libc::EAFNOSUPPORT);
    /// `ENETDOWN`: the Joyride service is absent or gone.
    pub const NETDOWN: Errno = Errno(libc::ENETDOWN);
    /// `ECONNRESET`.
    pub const CONNRESET: Errno = Errno(libc::ECONNRESET);
    /// `ENOTCONN`.
    pub const NOTCONN: Errno = Errno(libc::ENOTCONN);
    /// `ETIMEDOUT`.
    pub const TIMEDOUT: Errno = Errno(libc::ETIMEDOUT);
    /// `EINPROGRESS`.
    pub const INPROGRESS: Errno = Errno(libc::EINPROGRESS);
}

impl From<ClientError> for Errno {
    /// Protocol failures (service gone, region poisoned or corrupt) read as `ENETDOWN`, the
    /// failure model's "apps get errors, never a hang".
    fn from(e: ClientError) -> Errno {
        match e {
            ClientError::Interrupted => Errno::INTR,
            ClientError::Timeout => Errno::TIMEDOUT,
            ClientError::BadSocket => Errno::BADF,
            ClientError::Full => Errno::AGAIN,
            _ => Errno::NETDOWN,
        }
    }
}

impl From<joyride_ipc::Errno> for Errno {
    fn from(e: joyride_ipc::Errno) -> Errno {
        Errno(e.get())
    }
}
