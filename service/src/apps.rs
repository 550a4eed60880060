//! Built-in test applications that run inside the engine loop over the in-process socket API
//! (`joyrided --app …`): servers and clients for the peer tests and the benchmarks.
//!
//! Each app is a small state machine polled once per loop turn; it never blocks. Results are
//! lines of text (`sink: bytes=… sha256=…`) that the binary prints on stdout and the tests
//! parse; a failure makes the binary exit non-zero.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use joyride_base::{Duration, Instant, Rng, SplitMix64};
use joyride_ip::host::UdpHandle;
use joyride_tcp::{Shutdown, SockOpt, SocketId, State, TcpError};
use sha2::{Digest, Sha256};

use crate::engine::Engine;

/// What an app reports after a poll.
#[derive(Debug, Default)]
pub struct AppOutput {
    /// Result lines to print.
    pub lines: Vec<String>,
}

/// A built-in application.
pub trait App {
    /// Advances the app; returns whether it did anything.
    fn poll(&mut self, eng: &mut Engine, out: &mut AppOutput) -> bool;
    /// Whether it has finished (servers that run forever never are).
    fn done(&self) -> bool;
    /// Why it failed, if it did.
    fn failure(&self) -> Option<&str>;
    /// The next instant it needs to be polled at even without network activity.
    fn wake_at(&self) -> Option<Instant> {
        None
    }
}

/// A parsed `--app` argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppSpec {
    /// `echo:PORT`: TCP echo server, forever.
    Echo {
        /// Port to listen on.
        port: u16,
    },
    /// `sink:PORT[:CONNS]`: reads everything, prints bytes and SHA-256 per connection; done
    /// after `conns` connections (default 1).
    Sink {
        /// Port to listen on.
        port: u16,
        /// Connections to serve before being done.
        conns: u32,
    },
    /// `source:IP:PORT:BYTES[:SEED]`: connects, sends `bytes` seeded pseudo-random bytes,
    /// prints their SHA-256, waits for the peer to close.
    Source {
        /// Server.
        peer: SocketAddrV4,
        /// Bytes to send (suffixes K, M, G: powers of 1024).
        bytes: u64,
        /// Seed of the byte stream.
        seed: u64,
    },
    /// `http-get:IP:PORT:/PATH:OUTFILE`: HTTP/1.0 GET, body written to `OUTFILE`.
    HttpGet {
        /// Server.
        peer: SocketAddrV4,
        /// Request path.
        path: String,
        /// Where the body goes.
        outfile: String,
    },
    /// `udp-echo:PORT`: UDP echo server, forever.
    UdpEcho {
        /// Port to bind.
        port: u16,
    },
    /// `udp-client:IP:PORT:SIZE,SIZE,…`: sends one datagram of each size to an echo server and
    /// checks each echo (retrying a lost one).
    UdpClient {
        /// Echo server.
        peer: SocketAddrV4,
        /// Datagram sizes.
        sizes: Vec<usize>,
    },
    /// `connect-loop:IP:PORT:N`: N connections in a row to an echo server, each sending a
    /// line, half-closing, and checking the echo.
    ConnectLoop {
        /// Echo server.
        peer: SocketAddrV4,
        /// Connections.
        count: u32,
    },
}

/// Why an `--app` argument was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad app spec {spec:?}: {why}")]
pub struct AppSpecError {
    spec: String,
    why: &'static str,
}

/// Parses a byte count with an optional K/M/G suffix (powers of 1024).
pub fn parse_bytes(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last()? {
        (i, 'k' | 'K') => (&s[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&s[..i], 1 << 20),
        (i, 'g' | 'G') => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mul)
}

impl FromStr for AppSpec {
    type Err = AppSpecError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let err = |why| AppSpecError { spec: spec.to_string(), why };
        let (kind, rest) = spec.split_once(':').ok_or_else(|| err("expected KIND:ARGS"))?;
        let port = |s: &str| s.parse::<u16>().map_err(|_| err("bad port"));
        let peer = |ip: &str, p: &str| -> Result<SocketAddrV4, AppSpecError> {
            let ip = ip.parse::<Ipv4Addr>().map_err(|_| err("bad IPv4 address"))?;
            Ok(SocketAddrV4::new(ip, port(p)?))
        };
        let parts: Vec<&str> = rest.split(':').collect();
        Ok(match (kind, parts.as_slice()) {
            ("echo", [p]) => AppSpec::Echo { port: port(p)? },
            ("sink", [p]) => AppSpec::Sink { port: port(p)?, conns: 1 },
            ("sink", [p, n]) => {
                AppSpec::Sink { port: port(p)?, conns: n.parse().map_err(|_| err("bad count"))? }
            }
            ("source", [ip, p, b, rest @ ..]) if rest.len() <= 1 => AppSpec::Source {
                peer: peer(ip, p)?,
                bytes: parse_bytes(b).ok_or_else(|| err("bad byte count"))?,
                seed: match rest {
                    [s] => s.parse().map_err(|_| err("bad seed"))?,
                    _ => 1,
                },
            },
            ("http-get", [ip, p, path, out]) if path.starts_with('/') => AppSpec::HttpGet {
                peer: peer(ip, p)?,
                path: path.to_string(),
                outfile: out.to_string(),
            },
            ("udp-echo", [p]) => AppSpec::UdpEcho { port: port(p)? },
            ("udp-client", [ip, p, sizes]) => AppSpec::UdpClient {
                peer: peer(ip, p)?,
                sizes: sizes
                    .split(',')
                    .map(|s| s.parse::<usize>().map_err(|_| err("bad size")))
                    .collect::<Result<_, _>>()?,
            },
            ("connect-loop", [ip, p, n]) => AppSpec::ConnectLoop {
                peer: peer(ip, p)?,
                count: n.parse().map_err(|_| err("bad count"))?,
            },
            _ => return Err(err("unknown kind or wrong number of fields")),
        })
    }
}

impl fmt::Display for AppSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppSpec::Echo { port } => write!(f, "echo:{port}"),
            AppSpec::Sink { port, conns } => write!(f, "sink:{port}:{conns}"),
            AppSpec::Source { peer, bytes, seed } => write!(f, "source:{peer}:{bytes}:{seed}"),
            AppSpec::HttpGet { peer, path, outfile } => {
                write!(f, "http-get:{peer}:{path}:{outfile}")
            }
            AppSpec::UdpEcho { port } => write!(f, "udp-echo:{port}"),
            AppSpec::UdpClient { peer, sizes } => {
                let s: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
                write!(f, "udp-client:{peer}:{}", s.join(","))
            }
            AppSpec::ConnectLoop { peer, count } => write!(f, "connect-loop:{peer}:{count}"),
        }
    }
}

impl AppSpec {
    /// Starts the app on `eng` (binds/listens/connects now).
    pub fn start(&self, eng: &mut Engine) -> Result<Box<dyn App>, String> {
        Ok(match self {
            AppSpec::Echo { port } => Box::new(Echo::new(eng, *port)?),
            AppSpec::Sink { port, conns } => Box::new(Sink::new(eng, *port, *conns)?),
            AppSpec::Source { peer, bytes, seed } => {
                Box::new(Source::new(eng, *peer, *bytes, *seed)?)
            }
            AppSpec::HttpGet { peer, path, outfile } => {
                Box::new(HttpGet::new(eng, *peer, path, outfile)?)
            }
            AppSpec::UdpEcho { port } => Box::new(UdpEcho::new(eng, *port)?),
            AppSpec::UdpClient { peer, sizes } => Box::new(UdpClient::new(eng, *peer, sizes)?),
            AppSpec::ConnectLoop { peer, count } => Box::new(ConnectLoop::new(eng, *peer, *count)),
        })
    }
}

const CHUNK: usize = 64 * 1024;
/// Socket buffers the apps ask for (bulk transfers need more than the 64 KiB default).
const APP_BUFFER: usize = 4 * 1024 * 1024;

fn listen(eng: &mut Engine, port: u16) -> Result<SocketId, String> {
    let tcp = eng.tcp();
    let s = tcp.socket().map_err(|e| e.to_string())?;
    let _ = tcp.set_option(s, SockOpt::ReuseAddr(true));
    let _ = tcp.set_option(s, SockOpt::RecvBuffer(APP_BUFFER));
    let _ = tcp.set_option(s, SockOpt::SendBuffer(APP_BUFFER));
    tcp.bind(s, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
        .map_err(|e| format!("bind port {port}: {e}"))?;
    tcp.listen(s, 128).map_err(|e| format!("listen port {port}: {e}"))?;
    Ok(s)
}

fn connect(eng: &mut Engine, peer: SocketAddrV4) -> Result<SocketId, String> {
    let now = eng.now();
    let tcp = eng.tcp();
    let s = tcp.socket().map_err(|e| e.to_string())?;
    let _ = tcp.set_option(s, SockOpt::RecvBuffer(APP_BUFFER));
    let _ = tcp.set_option(s, SockOpt::SendBuffer(APP_BUFFER));
    match tcp.connect(now, s, peer) {
        Ok(()) | Err(TcpError::InProgress) => Ok(s),
        Err(e) => Err(format!("connect {peer}: {e}")),
    }
}

/// Connection progress of a client socket: `Ok(true)` established, `Ok(false)` still under
/// way, `Err` failed.
fn connected(eng: &mut Engine, s: SocketId) -> Result<bool, String> {
    if let Some(e) = eng.tcp().take_error(s) {
        return Err(e.to_string());
    }
    match eng.tcp().state(s) {
        Ok(State::SynSent | State::SynReceived) => Ok(false),
        Ok(State::Closed) => Err("connection closed during handshake".into()),
        Ok(_) => Ok(true),
        Err(e) => Err(e.to_string()),
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seeded pseudo-random bytes (the `source` stream).
#[derive(Debug)]
pub struct ByteStream {
    rng: SplitMix64,
}

impl ByteStream {
    /// A stream for `seed`.
    pub fn new(seed: u64) -> Self {
        ByteStream { rng: SplitMix64::new(seed) }
    }

    /// Fills `buf` with the next bytes (lengths that are multiples of 8 keep streams equal
    /// however they are chunked).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.rng.next_u64().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

// ---------------------------------------------------------------------------------------------

struct EchoConn {
    s: SocketId,
    buf: Vec<u8>,
    eof: bool,
}

/// TCP echo server.
struct Echo {
    listener: SocketId,
    conns: Vec<EchoConn>,
    scratch: Vec<u8>,
    served: u64,
}

impl Echo {
    fn new(eng: &mut Engine, port: u16) -> Result<Echo, String> {
        Ok(Echo {
            listener: listen(eng, port)?,
            conns: Vec::new(),
            scratch: vec![0; CHUNK],
            served: 0,
        })
    }
}

impl App for Echo {
    fn poll(&mut self, eng: &mut Engine, _out: &mut AppOutput) -> bool {
        let mut work = false;
        while let Ok((s, _)) = eng.tcp().accept(self.listener) {
            self.conns.push(EchoConn { s, buf: Vec::new(), eof: false });
            work = true;
        }
        let now = eng.now();
        for c in &mut self.conns {
            loop {
                if !c.buf.is_empty() {
                    match eng.tcp().send(now, c.s, &c.buf) {
                        Ok(n) => {
                            c.buf.drain(..n);
                            work |= n > 0;
                        }
                        Err(TcpError::WouldBlock) => {}
                        Err(_) => c.eof = true,
                    }
                }
                if c.eof || c.buf.len() >= APP_BUFFER {
                    break;
                }
                match eng.tcp().recv(c.s, &mut self.scratch, false) {
                    Ok(0) => c.eof = true,
                    Ok(n) => {
                        c.buf.extend_from_slice(&self.scratch[..n]);
                        work = true;
                        continue;
                    }
                    Err(TcpError::WouldBlock) => {}
                    Err(_) => c.eof = true,
                }
                break;
            }
        }
        let before = self.conns.len();
        self.conns.retain(|c| {
            if c.eof && c.buf.is_empty() {
                let _ = eng.tcp().close(now, c.s);
                false
            } else {
                true
            }
        });
        self.served += (before - self.conns.len()) as u64;
        work
    }
    fn done(&self) -> bool {
        false
    }
    fn failure(&self) -> Option<&str> {
        None
    }
}

// ---------------------------------------------------------------------------------------------

struct SinkConn {
    s: SocketId,
    peer: SocketAddrV4,
    bytes: u64,
    hash: Sha256,
    start: Instant,
}

/// Reads everything, hashes it.
struct Sink {
    listener: SocketId,
    conns: Vec<SinkConn>,
    want: u32,
    finished: u32,
    scratch: Vec<u8>,
    failed: Option<String>,
}

impl Sink {
    fn new(eng: &mut Engine, port: u16, want: u32) -> Result<Sink, String> {
        Ok(Sink {
            listener: listen(eng, port)?,
            conns: Vec::new(),
            want: want.max(1),
            finished: 0,
            scratch: vec![0; CHUNK],
            failed: None,
        })
    }
}

fn rate(bytes: u64, d: Duration) -> (f64, f64) {
    let secs = d.as_secs_f64().max(1e-9);
    (secs, bytes as f64 * 8.0 / secs / 1e9)
}

impl App for Sink {
    fn poll(&mut self, eng: &mut Engine, out: &mut AppOutput) -> bool {
        let now = eng.now();
        let mut work = false;
        while let Ok((s, peer)) = eng.tcp().accept(self.listener) {
            self.conns.push(SinkConn { s, peer, bytes: 0, hash: Sha256::new(), start: now });
            work = true;
        }
        let mut i = 0;
        while i < self.conns.len() {
            let c = &mut self.conns[i];
            let mut finished = false;
            loop {
                match eng.tcp().recv(c.s, &mut self.scratch, false) {
                    Ok(0) => finished = true,
                    Ok(n) => {
                        c.bytes += n as u64;
                        c.hash.update(&self.scratch[..n]);
                        work = true;
                        continue;
                    }
                    Err(TcpError::WouldBlock) => {}
                    Err(e) => {
                        self.failed = Some(format!("sink: connection from {}: {e}", c.peer));
                        finished = true;
                    }
                }
                break;
            }
            if finished {
                let c = self.conns.swap_remove(i);
                let _ = eng.tcp().close(now, c.s);
                let (secs, gbps) = rate(c.bytes, now.saturating_duration_since(c.start));
                out.lines.push(format!(
                    "sink: peer={} bytes={} sha256={} secs={secs:.3} gbps={gbps:.3}",
                    c.peer,
                    c.bytes,
                    hex(&c.hash.finalize())
                ));
                self.finished += 1;
                work = true;
            } else {
                i += 1;
            }
        }
        work
    }
    fn done(&self) -> bool {
        self.finished >= self.want || self.failed.is_some()
    }
    fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

// ---------------------------------------------------------------------------------------------

/// Connects and sends a seeded byte stream.
struct Source {
    s: SocketId,
    peer: SocketAddrV4,
    total: u64,
    sent: u64,
    stream: ByteStream,
    chunk: Vec<u8>,
    off: usize,
    hash: Sha256,
    established: Option<Instant>,
    shut: bool,
    finished: bool,
    failed: Option<String>,
    scratch: Vec<u8>,
}

impl Source {
    fn new(eng: &mut Engine, peer: SocketAddrV4, total: u64, seed: u64) -> Result<Source, String> {
        Ok(Source {
            s: connect(eng, peer)?,
            peer,
            total,
            sent: 0,
            stream: ByteStream::new(seed),
            chunk: Vec::with_capacity(CHUNK),
            off: 0,
            hash: Sha256::new(),
            established: None,
            shut: false,
            finished: false,
            failed: None,
            scratch: vec![0; 4096],
        })
    }
}

impl App for Source {
    fn poll(&mut self, eng: &mut Engine, out: &mut AppOutput) -> bool {
        if self.finished {
            return false;
        }
        let now = eng.now();
        if self.established.is_none() {
            match connected(eng, self.s) {
                Ok(true) => self.established = Some(now),
                Ok(false) => return false,
                Err(e) => {
                    self.failed = Some(format!("source: connect {}: {e}", self.peer));
                    self.finished = true;
                    return true;
                }
            }
        }
        let mut work = false;
        while self.sent < self.total || self.off < self.chunk.len() {
            if self.off == self.chunk.len() {
                let n = (self.total - self.sent).min(CHUNK as u64) as usize;
                self.chunk.resize(n, 0);
                self.stream.fill(&mut self.chunk);
                self.hash.update(&self.chunk);
                self.sent += n as u64;
                self.off = 0;
            }
            match eng.tcp().send(now, self.s, &self.chunk[self.off..]) {
                Ok(n) if n > 0 => {
                    self.off += n;
                    work = true;
                }
                Ok(_) | Err(TcpError::WouldBlock) => break,
                Err(e) => {
                    self.failed = Some(format!("source: send: {e}"));
                    self.finished = true;
                    return true;
                }
            }
        }
        if self.sent == self.total && self.off == self.chunk.len() && !self.shut {
            let _ = eng.tcp().shutdown(now, self.s, Shutdown::Write);
            self.shut = true;
            work = true;
        }
        if self.shut {
            // The peer closes once it has read everything.
            match eng.tcp().recv(self.s, &mut self.scratch, false) {
                Ok(0) => {
                    let _ = eng.tcp().close(now, self.s);
                    let start = self.established.unwrap_or(now);
                    let (secs, gbps) = rate(self.total, now.saturating_duration_since(start));
                    let h = std::mem::take(&mut self.hash);
                    out.lines.push(format!(
                        "source: peer={} bytes={} sha256={} secs={secs:.3} gbps={gbps:.3}",
                        self.peer,
                        self.total,
                        hex(&h.finalize())
                    ));
                    self.finished = true;
                    work = true;
                }
                Ok(_) | Err(TcpError::WouldBlock) => {}
                Err(e) => {
                    self.failed = Some(format!("source: waiting for the peer's close: {e}"));
                    self.finished = true;
                }
            }
        }
        work
    }
    fn done(&self) -> bool {
        self.finished
    }
    fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

// ---------------------------------------------------------------------------------------------

/// A minimal HTTP/1.0 GET client.
struct HttpGet {
    s: SocketId,
    peer: SocketAddrV4,
    request: Vec<u8>,
    req_off: usize,
    head: Vec<u8>,
    body: Option<BufWriter<File>>,
    outfile: String,
    bytes: u64,
    hash: Sha256,
    start: Instant,
    finished: bool,
    failed: Option<String>,
    scratch: Vec<u8>,
}

impl HttpGet {
    fn new(
        eng: &mut Engine,
        peer: SocketAddrV4,
        path: &str,
        outfile: &str,
    ) -> Result<Self, String> {
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {peer}\r\nUser-Agent: joyrided\r\nAccept: */*\r\n\r\n"
        )
        .into_bytes();
        Ok(HttpGet {
            s: connect(eng, peer)?,
            peer,
            request,
            req_off: 0,
            head: Vec::new(),
            body: None,
            outfile: outfile.to_string(),
            bytes: 0,
            hash: Sha256::new(),
            start: eng.now(),
            finished: false,
            failed: None,
            scratch: vec![0; CHUNK],
        })
    }

    fn fail(&mut self, why: String) {
        self.failed = Some(format!("http-get {}: {why}", self.peer));
        self.finished = true;
    }

    fn body_bytes(&mut self, data: &[u8]) -> Result<(), String> {
        self.bytes += data.len() as u64;
        self.hash.update(data);
        match self.body.as_mut() {
            Some(f) => f.write_all(data).map_err(|e| format!("{}: {e}", self.outfile)),
            None => Ok(()),
        }
    }
}

impl App for HttpGet {
    fn poll(&mut self, eng: &mut Engine, out: &mut AppOutput) -> bool {
        if self.finished {
            return false;
        }
        let now = eng.now();
        match connected(eng, self.s) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                self.fail(e);
                return true;
            }
        }
        let mut work = false;
        if self.req_off < self.request.len() {
            match eng.tcp().send(now, self.s, &self.request[self.req_off..]) {
                Ok(n) => {
                    self.req_off += n;
                    work = n > 0;
                }
                Err(TcpError::WouldBlock) => {}
                Err(e) => {
                    self.fail(format!("send: {e}"));
                    return true;
                }
            }
        }
        loop {
            let n = match eng.tcp().recv(self.s, &mut self.scratch, false) {
                Ok(n) => n,
                Err(TcpError::WouldBlock) => break,
                Err(e) => {
                    self.fail(format!("recv: {e}"));
                    return true;
                }
            };
            work = true;
            if n == 0 {
                let _ = eng.tcp().close(now, self.s);
                if self.body.is_none() {
                    self.fail("connection closed before the end of the headers".into());
                    return true;
                }
                if let Some(Err(e)) = self.body.take().map(|mut f| f.flush()) {
                    self.fail(format!("{}: {e}", self.outfile));
                    return true;
                }
                let (secs, gbps) = rate(self.bytes, now.saturating_duration_since(self.start));
                let h = std::mem::take(&mut self.hash);
                out.lines.push(format!(
                    "http-get: peer={} bytes={} sha256={} secs={secs:.3} gbps={gbps:.3}",
                    self.peer,
                    self.bytes,
                    hex(&h.finalize())
                ));
                self.finished = true;
                return true;
            }
            let data = std::mem::take(&mut self.scratch);
            let r = if self.body.is_some() {
                self.body_bytes(&data[..n])
            } else {
                self.head.extend_from_slice(&data[..n]);
                match self.head.windows(4).position(|w| w == b"\r\n\r\n") {
                    None if self.head.len() > 64 * 1024 => Err("headers too long".into()),
                    None => Ok(()),
                    Some(end) => {
                        let status = String::from_utf8_lossy(&self.head[..end]).to_string();
                        let line = status.lines().next().unwrap_or("").to_string();
                        if !line.starts_with("HTTP/1.") || line.split(' ').nth(1) != Some("200") {
                            Err(format!("status line {line:?}"))
                        } else {
                            match File::create(&self.outfile) {
                                Ok(f) => {
                                    self.body = Some(BufWriter::with_capacity(1 << 20, f));
                                    let rest = self.head.split_off(end + 4);
                                    self.body_bytes(&rest)
                                }
                                Err(e) => Err(format!("{}: {e}", self.outfile)),
                            }
                        }
                    }
                }
            };
            self.scratch = data;
            if let Err(e) = r {
                let _ = eng.tcp().close(now, self.s);
                self.fail(e);
                return true;
            }
        }
        work
    }
    fn done(&self) -> bool {
        self.finished
    }
    fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
}

// ---------------------------------------------------------------------------------------------

/// UDP echo server.
struct UdpEcho {
    h: UdpHandle,
    buf: Vec<u8>,
}

impl UdpEcho {
    fn new(eng: &mut Engine, port: u16) -> Result<UdpEcho, String> {
        let h = eng.udp_bind(port).map_err(|e| format!("udp bind {port}: {e}"))?;
        Ok(UdpEcho { h, buf: vec![0; 65536] })
    }
}

impl App for UdpEcho {
    fn poll(&mut self, eng: &mut Engine, _out: &mut AppOutput) -> bool {
        let mut work = false;
        while let Ok(m) = eng.udp_recv_from(self.h, &mut self.buf) {
            work = true;
            if let Err(e) = eng.udp_send_to(self.h, m.from, &self.buf[..m.len]) {
                tracing::debug!(error = %e, to = %m.from, "udp echo reply not sent");
            }
        }
        work
    }
    fn done(&self) -> bool {
        false
    }
    fn failure(&self) -> Option<&str> {
        None
    }
}

/// Sends datagrams of given sizes to an echo server and checks the echoes.
struct UdpClient {
    h: UdpHandle,
    peer: SocketAddrV4,
    sizes: Vec<usize>,
    next: usize,
    payload: Vec<u8>,
    sent_at: Option<Instant>,
    tries: u32,
    buf: Vec<u8>,
    failed: Option<String>,
}

const UDP_RETRY: Duration = Duration::from_millis(300);
/// A 20,000-byte datagram is 14 fragments each way; through 5 % loss on both directions one
/// try succeeds with probability 0.95^28 ≈ 0.24, so 10 tries failed ≈ 6 % of runs. With 40 the
/// chance that all fail is 0.76^40 ≈ 2·10⁻⁵.
const UDP_TRIES: u32 = 40;

impl UdpClient {
    fn new(eng: &mut Engine, peer: SocketAddrV4, sizes: &[usize]) -> Result<UdpClient, String> {
        let h = eng.udp_bind(0).map_err(|e| format!("udp bind: {e}"))?;
        Ok(UdpClient {
            h,
            peer,
            sizes: sizes.to_vec(),
            next: 0,
            payload: Vec::new(),
            sent_at: None,
            tries: 0,
            buf: vec![0; 65536],
            failed: None,
        })
    }
}

impl App for UdpClient {
    fn poll(&mut self, eng: &mut Engine, out: &mut AppOutput) -> bool {
        if self.done() {
            return false;
        }
        let now = eng.now();
        let mut work = false;
        while let Ok(m) = eng.udp_recv_from(self.h, &mut self.buf) {
            work = true;
            if self.sent_at.is_some()
                && m.from == self.peer
                && self.buf[..m.len] == self.payload[..]
            {
                out.lines.push(format!("udp-client: size={} ok tries={}", m.len, self.tries));
                self.next += 1;
                self.sent_at = None;
                self.tries = 0;
                if self.next == self.sizes.len() {
                    return true;
                }
            }
        }
        let due = match self.sent_at {
            None => true,
            Some(t) => now >= t + UDP_RETRY,
        };
        if due && self.next < self.sizes.len() {
            if self.tries >= UDP_TRIES {
                self.failed = Some(format!(
                    "udp-client: no echo of {} bytes from {} after {UDP_TRIES} tries",
                    self.sizes[self.next], self.peer
                ));
                return true;
            }
            if self.sent_at.is_none() {
                let size = self.sizes[self.next];
                self.payload.resize(size, 0);
                ByteStream::new(size as u64).fill(&mut self.payload);
            }
            match eng.udp_send_to(self.h, self.peer, &self.payload) {
                Ok(_) | Err(joyride_ip::host::UdpError::WouldBlock) => {}
                Err(e) => {
                    self.failed = Some(format!("udp-client: send to {}: {e}", self.peer));
                    return true;
                }
            }
            self.tries += 1;
            self.sent_at = Some(now);
            work = true;
        }
        work
    }
    fn done(&self) -> bool {
        self.next >= self.sizes.len() || self.failed.is_some()
    }
    fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
    fn wake_at(&self) -> Option<Instant> {
        self.sent_at.map(|t| t + UDP_RETRY)
    }
}

// ---------------------------------------------------------------------------------------------

/// The connection of a [`ConnectLoop`] under way: socket, message, echo so far, whether the
/// message went out, and when it started.
type LoopConn = (SocketId, Vec<u8>, Vec<u8>, bool, Instant);

/// N short connections in a row.
struct ConnectLoop {
    peer: SocketAddrV4,
    count: u32,
    done_count: u32,
    cur: Option<LoopConn>,
    start: Option<Instant>,
    finished: bool,
    failed: Option<String>,
    scratch: Vec<u8>,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl ConnectLoop {
    fn new(_eng: &mut Engine, peer: SocketAddrV4, count: u32) -> ConnectLoop {
        ConnectLoop {
            peer,
            count,
            done_count: 0,
            cur: None,
            start: None,
            finished: count == 0,
            failed: None,
            scratch: vec![0; 4096],
        }
    }

    fn fail(&mut self, why: String) {
        self.failed = Some(format!(
            "connect-loop: connection {} to {}: {why}",
            self.done_count + 1,
            self.peer
        ));
        self.finished = true;
    }
}

impl App for ConnectLoop {
    fn poll(&mut self, eng: &mut Engine, out: &mut AppOutput) -> bool {
        if self.finished {
            return false;
        }
        let now = eng.now();
        self.start.get_or_insert(now);
        let Some((s, msg, got, sent, t0)) = self.cur.as_mut() else {
            match connect(eng, self.peer) {
                Ok(s) => {
                    let msg = format!("joyride connection {}\n", self.done_count + 1).into_bytes();
                    self.cur = Some((s, msg, Vec::new(), false, now));
                }
                Err(e) => self.fail(e),
            }
            return true;
        };
        let s = *s;
        if now.saturating_duration_since(*t0) > CONNECT_TIMEOUT {
            let _ = eng.tcp().close(now, s);
            self.fail("timed out".into());
            return true;
        }
        match connected(eng, s) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(e) => {
                self.fail(e);
                return true;
            }
        }
        let mut work = false;
        if !*sent {
            match eng.tcp().send(now, s, msg) {
                Ok(n) if n == msg.len() => {
                    let _ = eng.tcp().shutdown(now, s, Shutdown::Write);
                    *sent = true;
                    work = true;
                }
                Ok(_) | Err(TcpError::WouldBlock) => return false,
                Err(e) => {
                    self.fail(format!("send: {e}"));
                    return true;
                }
            }
        }
        loop {
            match eng.tcp().recv(s, &mut self.scratch, false) {
                Ok(0) => {
                    let ok = got == msg;
                    let _ = eng.tcp().close(now, s);
                    self.cur = None;
                    if !ok {
                        self.fail("echo differs".into());
                        return true;
                    }
                    self.done_count += 1;
                    if self.done_count == self.count {
                        let secs =
                            now.saturating_duration_since(self.start.unwrap_or(now)).as_secs_f64();
                        out.lines.push(format!(
                            "connect-loop: peer={} connections={} secs={secs:.3}",
                            self.peer, self.count
                        ));
                        self.finished = true;
                    }
                    return true;
                }
                Ok(n) => {
                    got.extend_from_slice(&self.scratch[..n]);
                    work = true;
                }
                Err(TcpError::WouldBlock) => return work,
                Err(e) => {
                    self.fail(format!("recv: {e}"));
                    return true;
                }
            }
        }
    }
    fn done(&self) -> bool {
        self.finished
    }
    fn failure(&self) -> Option<&str> {
        self.failed.as_deref()
    }
    fn wake_at(&self) -> Option<Instant> {
        self.cur.as_ref().map(|c| c.4 + CONNECT_TIMEOUT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        assert_eq!("echo:7".parse::<AppSpec>().unwrap(), AppSpec::Echo { port: 7 });
        assert_eq!("sink:9:3".parse::<AppSpec>().unwrap(), AppSpec::Sink { port: 9, conns: 3 });
        let s: AppSpec = "source:10.0.0.1:80:4M".parse().unwrap();
        assert_eq!(
            s,
            AppSpec::Source { peer: "10.0.0.1:80".parse().unwrap(), bytes: 4 << 20, seed: 1 }
        );
        let h: AppSpec = "http-get:10.0.0.1:8000:/big.bin:/tmp/out".parse().unwrap();
        assert!(matches!(h, AppSpec::HttpGet { ref path, .. } if path == "/big.bin"));
        let u: AppSpec = "udp-client:10.0.0.1:7:1,4000".parse().unwrap();
        assert!(matches!(u, AppSpec::UdpClient { ref sizes, .. } if sizes == &[1, 4000]));
        for bad in ["echo", "echo:x", "source:1.2.3:80:1", "http-get:1.2.3.4:80:nopath:o", "x:1"] {
            assert!(bad.parse::<AppSpec>().is_err(), "{bad}");
        }
        assert_eq!(parse_bytes("2G"), Some(2 << 30));
        assert_eq!(parse_bytes("12"), Some(12));
        assert_eq!(parse_bytes("k"), None);
    }

    #[test]
    fn byte_stream_is_chunking_independent() {
        let mut a = vec![0u8; 64];
        ByteStream::new(5).fill(&mut a);
        let mut b = vec![0u8; 64];
        let mut s = ByteStream::new(5);
        s.fill(&mut b[..24]);
        s.fill(&mut b[24..]);
        assert_eq!(a, b);
        assert_ne!(a, vec![0u8; 64]);
    }
}
