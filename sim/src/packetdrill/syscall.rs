//! System calls of a script, executed on the [`joyride_tcp::TcpStack`] socket layer.

use std::net::SocketAddrV4;

use joyride_base::Duration;
use joyride_ip::Ipv4Addr;
use joyride_tcp::{CcAlgorithm, Shutdown, SockOpt, SockOptName, TcpError};

use super::ast::{Expr, Syscall};
use super::consts;
use super::run::{Fd, Runner, LOCAL_IP, REMOTE_IP, REMOTE_PORT};

/// What a call returned: a value, or `-1` with an errno.
type CallResult = Result<i64, i32>;

fn errno(e: TcpError) -> i32 {
    e.errno()
}

impl Runner<'_> {
    /// Evaluates an integer expression (literal, constant name, `A|B`).
    fn int(&self, e: &Expr) -> Result<i64, String> {
        match e {
            Expr::Int(v) => Ok(*v),
            Expr::Symbol(s) => consts::constant(s, self.opts.profile)
                .or_else(|| consts::errno(s).map(i64::from))
                .ok_or_else(|| format!("unknown constant `{s}`")),
            Expr::Or(terms) => terms.iter().try_fold(0, |acc, t| Ok(acc | self.int(t)?)),
            Expr::List(items) if items.len() == 1 => self.int(&items[0]),
            Expr::Call(f, args) if (f == "htons" || f == "htonl") && args.len() == 1 => {
                self.int(&args[0])
            }
            other => Err(format!("expected an integer, found {other:?}")),
        }
    }

    fn arg<'e>(&self, call: &'e Syscall, i: usize) -> Result<&'e Expr, String> {
        call.args.get(i).ok_or_else(|| format!("{}: missing argument {}", call.name, i + 1))
    }

    /// The lowest free descriptor number (3 and up: 0–2 are stdio).
    fn new_fd(&mut self, id: joyride_tcp::SocketId) -> i64 {
        let mut n = 3;
        while self.fds.contains_key(&n) {
            n += 1;
        }
        self.fds.insert(n, Fd { id, nonblock: false });
        n
    }

    /// A `sockaddr_in` argument: `...` gives `default`; `{sin_port=htons(P), sin_addr=...}`
    /// overrides the fields given.
    fn sockaddr(&self, e: &Expr, default: SocketAddrV4) -> Result<SocketAddrV4, String> {
        let Expr::Struct(fields) = e else { return Ok(default) };
        let mut addr = default;
        for (name, value) in fields {
            match name.as_deref() {
                Some("sin_port") => {
                    addr.set_port(u16::try_from(self.int(value)?).map_err(|_| "bad port")?)
                }
                Some("sin_addr") => {
                    if let Expr::Call(_, args) = value {
                        if let Some(Expr::Str(s)) = args.first() {
                            let ip: Ipv4Addr = s.parse().map_err(|_| format!("bad address {s}"))?;
                            addr.set_ip(ip);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(addr)
    }

    pub(super) fn syscall(&mut self, call: &Syscall) -> Result<(), String> {
        let got = if call.name == "socket" {
            match self.stack.socket() {
                Ok(id) => {
                    let fd = self.new_fd(id);
                    self.last_fd = Some(fd);
                    Ok(fd)
                }
                Err(e) => Err(errno(e)),
            }
        } else {
            let n = self.int(self.arg(call, 0)?)?;
            self.last_fd = Some(n);
            match self.fds.get(&n).copied() {
                Some(fd) => self.call_on(call, n, fd)?,
                None => Err(9), // EBADF
            }
        };
        self.check_result(call, got)
    }

    /// A call on open descriptor `n`.
    fn call_on(&mut self, call: &Syscall, n: i64, fd: Fd) -> Result<CallResult, String> {
        let now = self.now();
        Ok(match call.name.as_str() {
            "bind" => {
                let addr = self.sockaddr(self.arg(call, 1)?, SocketAddrV4::new(LOCAL_IP, 8080))?;
                let r = self.stack.bind(fd.id, addr);
                if r.is_ok() {
                    self.local_port = addr.port();
                }
                r.map(|()| 0).map_err(errno)
            }
            "listen" => {
                let backlog = self.int(self.arg(call, 1)?)?.clamp(0, i64::from(u32::MAX)) as u32;
                self.stack.listen(fd.id, backlog).map(|()| 0).map_err(errno)
            }
            "accept" => match self.stack.accept(fd.id) {
                Ok((id, _peer)) => {
                    let new = self.new_fd(id);
                    self.last_fd = Some(new);
                    Ok(new)
                }
                Err(e) => Err(errno(e)),
            },
            "connect" => {
                let remote = SocketAddrV4::new(REMOTE_IP, REMOTE_PORT);
                let addr = self.sockaddr(self.arg(call, 1)?, remote)?;
                self.stack.connect(now, fd.id, addr).map(|()| 0).map_err(errno)
            }
            "read" | "recv" | "recvfrom" => {
                let len = self.int(self.arg(call, 2)?)?;
                let flags = match call.args.get(3) {
                    Some(f) => self.int(f)?,
                    None => 0,
                };
                let peek_bit = consts::constant("MSG_PEEK", self.opts.profile).unwrap_or(2);
                let mut buf = vec![0u8; usize::try_from(len).map_err(|_| "negative length")?];
                self.stack
                    .recv(fd.id, &mut buf, flags & peek_bit != 0)
                    .map(|n| n as i64)
                    .map_err(errno)
            }
            "write" | "send" | "sendto" => {
                let len = self.int(self.arg(call, 2)?)?;
                let buf = vec![0u8; usize::try_from(len).map_err(|_| "negative length")?];
                self.stack.send(now, fd.id, &buf).map(|n| n as i64).map_err(errno)
            }
            "shutdown" => {
                let how = match self.int(self.arg(call, 1)?)? {
                    0 => Shutdown::Read,
                    1 => Shutdown::Write,
                    _ => Shutdown::Both,
                };
                self.stack.shutdown(now, fd.id, how).map(|()| 0).map_err(errno)
            }
            "close" => {
                self.fds.remove(&n);
                self.stack.close(now, fd.id).map(|()| 0).map_err(errno)
            }
            "fcntl" => {
                let nonblock_bit = consts::constant("O_NONBLOCK", self.opts.profile).unwrap_or(0);
                let rdwr = consts::constant("O_RDWR", self.opts.profile).unwrap_or(2);
                match self.int(self.arg(call, 1)?)? {
                    3 => Ok(rdwr | if fd.nonblock { nonblock_bit } else { 0 }),
                    4 => {
                        let flags = self.int(self.arg(call, 2)?)?;
                        if let Some(f) = self.fds.get_mut(&n) {
                            f.nonblock = flags & nonblock_bit != 0;
                        }
                        Ok(0)
                    }
                    other => return Err(format!("fcntl command {other} is not supported")),
                }
            }
            "setsockopt" => {
                let name = symbol(self.arg(call, 2)?)?;
                let opt = self.sockopt(&name, self.arg(call, 3)?)?;
                self.stack.set_option(fd.id, opt).map(|()| 0).map_err(errno)
            }
            "getsockopt" => {
                let name = symbol(self.arg(call, 2)?)?;
                self.getsockopt(fd, &name, self.arg(call, 3)?)?
            }
            other => return Err(format!("system call `{other}` is not supported by the runner")),
        })
    }

    fn check_result(&self, call: &Syscall, got: CallResult) -> Result<(), String> {
        if call.result == Expr::Ellipsis {
            return Ok(());
        }
        let want = self.int(&call.result)?;
        let want_errno = match &call.errno {
            Some(name) => Some(consts::errno(name).ok_or_else(|| format!("unknown errno {name}"))?),
            None => None,
        };
        let show = |r: CallResult| match r {
            Ok(v) => v.to_string(),
            Err(e) => format!("-1 {}", errno_name(e)),
        };
        let ok = match (got, want_errno) {
            (Ok(v), None) => v == want,
            (Err(e), Some(we)) => want == -1 && e == we,
            (Err(_), None) => false,
            (Ok(_), Some(_)) => false,
        };
        if ok {
            Ok(())
        } else {
            let want_s = match &call.errno {
                Some(e) => format!("{want} {e}"),
                None => want.to_string(),
            };
            Err(format!("{}() returned {}, script expects {want_s}", call.name, show(got)))
        }
    }

    fn sockopt(&self, name: &str, value: &Expr) -> Result<SockOpt, String> {
        let v = || self.int(value);
        let secs = |v: i64| Duration::from_secs(v.max(0) as u64);
        Ok(match name {
            "SO_REUSEADDR" | "SO_REUSEPORT" => SockOpt::ReuseAddr(v()? != 0),
            "SO_KEEPALIVE" => SockOpt::KeepAlive(v()? != 0),
            "SO_RCVBUF" => SockOpt::RecvBuffer(v()?.max(0) as usize),
            "SO_SNDBUF" => SockOpt::SendBuffer(v()?.max(0) as usize),
            "SO_LINGER" => {
                let Expr::Struct(fields) = value else {
                    return Err("SO_LINGER takes {onoff, linger}".into());
                };
                let get = |i: usize, names: &[&str]| -> Result<i64, String> {
                    let f = fields
                        .iter()
                        .find(|(n, _)| n.as_deref().is_some_and(|n| names.contains(&n)))
                        .or_else(|| fields.get(i))
                        .ok_or("SO_LINGER takes {onoff, linger}")?;
                    self.int(&f.1)
                };
                let on = get(0, &["onoff", "l_onoff"])? != 0;
                let linger = get(1, &["linger", "l_linger"])?;
                SockOpt::Linger(on.then(|| secs(linger)))
            }
            "TCP_NODELAY" => SockOpt::NoDelay(v()? != 0),
            "TCP_CORK" | "TCP_NOPUSH" => SockOpt::Cork(v()? != 0),
            "TCP_MAXSEG" => SockOpt::MaxSegment(v()?.clamp(0, 65_535) as u16),
            "TCP_KEEPIDLE" => SockOpt::KeepIdle(secs(v()?)),
            "TCP_KEEPINTVL" => SockOpt::KeepInterval(secs(v()?)),
            "TCP_KEEPCNT" => SockOpt::KeepCount(v()?.max(0) as u32),
            "TCP_USER_TIMEOUT" => SockOpt::UserTimeout(Duration::from_millis(v()?.max(0) as u64)),
            "TCP_QUICKACK" => SockOpt::QuickAck(v()? != 0),
            "TCP_CONGESTION" => {
                let name = match value {
                    Expr::Str(s) => s.clone(),
                    Expr::Symbol(s) => s.clone(),
                    _ => return Err("TCP_CONGESTION takes a name".into()),
                };
                SockOpt::Congestion(match name.to_ascii_lowercase().as_str() {
                    "newreno" | "reno" => CcAlgorithm::NewReno,
                    "cubic" => CcAlgorithm::Cubic,
                    other => return Err(format!("congestion control `{other}` is not supported")),
                })
            }
            other => return Err(format!("socket option {other} is not supported by the runner")),
        })
    }

    /// `getsockopt`: the call's status, after comparing the value with the script's `[value]`.
    fn getsockopt(&mut self, fd: Fd, name: &str, want: &Expr) -> Result<CallResult, String> {
        let value: CallResult = if name == "SO_ERROR" {
            Ok(self.stack.take_error(fd.id).map_or(0, |e| i64::from(e.errno())))
        } else {
            let opt_name = match name {
                "SO_REUSEADDR" | "SO_REUSEPORT" => SockOptName::ReuseAddr,
                "SO_KEEPALIVE" => SockOptName::KeepAlive,
                "SO_RCVBUF" => SockOptName::RecvBuffer,
                "SO_SNDBUF" => SockOptName::SendBuffer,
                "SO_LINGER" => SockOptName::Linger,
                "TCP_NODELAY" => SockOptName::NoDelay,
                "TCP_CORK" | "TCP_NOPUSH" => SockOptName::Cork,
                "TCP_MAXSEG" => SockOptName::MaxSegment,
                "TCP_KEEPIDLE" => SockOptName::KeepIdle,
                "TCP_KEEPINTVL" => SockOptName::KeepInterval,
                "TCP_KEEPCNT" => SockOptName::KeepCount,
                "TCP_USER_TIMEOUT" => SockOptName::UserTimeout,
                "TCP_QUICKACK" => SockOptName::QuickAck,
                other => {
                    return Err(format!("socket option {other} is not supported by the runner"))
                }
            };
            match self.stack.get_option(fd.id, opt_name) {
                Ok(opt) => Ok(match opt {
                    SockOpt::ReuseAddr(b)
                    | SockOpt::KeepAlive(b)
                    | SockOpt::NoDelay(b)
                    | SockOpt::Cork(b)
                    | SockOpt::QuickAck(b) => i64::from(b),
                    SockOpt::RecvBuffer(n) | SockOpt::SendBuffer(n) => n as i64,
                    SockOpt::MaxSegment(m) => i64::from(m),
                    SockOpt::KeepIdle(d) | SockOpt::KeepInterval(d) => d.as_secs() as i64,
                    SockOpt::KeepCount(c) => i64::from(c),
                    SockOpt::UserTimeout(d) => d.as_millis() as i64,
                    SockOpt::Linger(l) => l.map_or(0, |_| 1),
                    SockOpt::Congestion(_) => 0,
                }),
                Err(e) => Err(e.errno()),
            }
        };
        if let (Ok(v), false) = (value, matches!(want, Expr::Ellipsis)) {
            let w = self.int(want)?;
            if v != w {
                let show = |x: i64| {
                    if name == "SO_ERROR" && x != 0 {
                        format!("{x} ({})", errno_name(x as i32))
                    } else {
                        x.to_string()
                    }
                };
                return Err(format!(
                    "getsockopt({name}) gave {}, script expects {}",
                    show(v),
                    show(w)
                ));
            }
        }
        Ok(value.map(|_| 0))
    }
}

fn symbol(e: &Expr) -> Result<String, String> {
    match e {
        Expr::Symbol(s) => Ok(s.clone()),
        other => Err(format!("expected an option name, found {other:?}")),
    }
}

/// The name of a Linux errno number (for messages).
fn errno_name(n: i32) -> &'static str {
    const NAMES: [&str; 24] = [
        "EBADF",
        "EAGAIN",
        "EINVAL",
        "EPIPE",
        "ENOPROTOOPT",
        "EOPNOTSUPP",
        "EADDRINUSE",
        "EADDRNOTAVAIL",
        "ENETUNREACH",
        "ECONNABORTED",
        "ECONNRESET",
        "ENOBUFS",
        "EISCONN",
        "ENOTCONN",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "EALREADY",
        "EINPROGRESS",
        "EHOSTUNREACH",
        "ENETDOWN",
        "EMSGSIZE",
        "ESHUTDOWN",
        "EFAULT",
        "ENOMEM",
    ];
    NAMES.iter().copied().find(|name| consts::errno(name) == Some(n)).unwrap_or("E?")
}
