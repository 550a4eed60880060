//! Shared helpers of the service's process-level tests: spawning `joyrided`, collecting its
//! output, and running peers in network namespaces.
#![allow(dead_code)] // Each test file uses a different subset.
#![allow(clippy::disallowed_methods)] // Tests wait on real processes with real time.

pub(crate) mod run;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The joyrided built by cargo for these tests.
pub(crate) const JOYRIDED: &str = env!("CARGO_BIN_EXE_joyrided");

/// A running process whose stdout lines and stderr are collected in the background.
pub(crate) struct Proc {
    pub(crate) name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Proc {
    /// Spawns `cmd` (stdin closed, stdout/stderr captured).
    pub(crate) fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawning {name}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let l = lines.clone();
        let e = stderr.clone();
        let r1 = std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                l.lock().unwrap().push(line);
            }
        });
        let r2 = std::thread::spawn(move || {
            let mut s = String::new();
            let mut err = err;
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        s.push_str(&String::from_utf8_lossy(&buf[..n]));
                        *e.lock().unwrap() = s.clone();
                    }
                }
            }
        });
        Proc { name: name.to_string(), child, lines, stderr, readers: vec![r1, r2] }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The stdout lines so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The stderr so far (its last 4 KiB).
    pub(crate) fn stderr_tail(&self) -> String {
        let s = self.stderr.lock().unwrap();
        let start = s.len().saturating_sub(4096);
        let start = (start..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(s.len());
        s[start..].to_string()
    }

    /// Waits up to `timeout` for a stdout line starting with `prefix`.
    pub(crate) fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                return l;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(50));
                if let Some(l) = self.lines().into_iter().find(|l| l.starts_with(prefix)) {
                    return l;
                }
                panic!(
                    "{} exited ({st}) without printing {prefix:?}\nstdout: {:?}\nstderr: {}",
                    self.name,
                    self.lines(),
                    self.stderr_tail()
                );
            }
            if t0.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "{}: no {prefix:?} within {timeout:?}\nstdout: {:?}\nstderr: {}",
                    self.name,
                    self.lines(),
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `timeout` for the process to exit; panics (after killing it) on timeout or
    /// a non-zero exit. Returns its stdout lines.
    pub(crate) fn wait_ok(&mut self, timeout: Duration) -> Vec<String> {
        let t0 = Instant::now();
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    for r in self.readers.drain(..) {
                        let _ = r.join();
                    }
                    assert!(
                        st.success(),
                        "{} failed ({st})\nstdout: {:?}\nstderr: {}",
                        self.name,
                        self.lines(),
                        self.stderr_tail()
                    );
                    return self.lines();
                }
                Ok(None) if t0.elapsed() > timeout => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    for r in self.readers.drain(..) {
                        let _ = r.join();
                    }
                    panic!(
                        "{} did not finish within {timeout:?}\nstdout: {:?}\nstderr: {}",
                        self.name,
                        self.lines(),
                        self.stderr_tail()
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("{}: wait: {e}", self.name),
            }
        }
    }

    /// Sends SIGTERM and waits for a clean exit; returns stderr (the counters).
    pub(crate) fn terminate(&mut self) -> String {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                for r in self.readers.drain(..) {
                    let _ = r.join();
                }
                return self.stderr.lock().unwrap().clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("{} ignored SIGTERM", self.name);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The value of `key=` in a `k=v k=v` result line.
pub(crate) fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Whether `tool` runs (`tool --version` or `tool -V`).
pub(crate) fn have(tool: &str) -> bool {
    ["--version", "-V"].iter().any(|a| {
        Command::new(tool)
            .arg(a)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    })
}

/// Python helper scripts for the Linux side (each prints one `k=v` result line).
pub(crate) mod py {
    /// argv: host port mib seed — connects, sends, half-closes, waits for EOF.
    pub(crate) const SEND: &str = r#"
import socket, hashlib, sys, random, time
host, port, mib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
h = hashlib.sha256()
block = random.Random(seed).randbytes(1 << 20)
s = socket.create_connection((host, port), timeout=60)
t = time.time()
for i in range(mib):
    b = block[i % 251:] + block[:i % 251]
    h.update(b)
    s.sendall(b)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
s.close()
dt = max(time.time() - t, 1e-9)
print("linux-send bytes=%d sha256=%s secs=%.3f gbps=%.3f" % (mib << 20, h.hexdigest(), dt, (mib << 23) / dt / 1e9), flush=True)
"#;

    /// argv: bind-host port — accepts one connection, reads to EOF, closes.
    pub(crate) const RECV: &str = r#"
import socket, hashlib, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(1)
s.settimeout(120)
print("listening", flush=True)
c, peer = s.accept()
c.settimeout(120)
h = hashlib.sha256()
n = 0
t = time.time()
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    n += len(b)
    h.update(b)
c.close()
dt = max(time.time() - t, 1e-9)
print("linux-recv bytes=%d sha256=%s secs=%.3f gbps=%.3f" % (n, h.hexdigest(), dt, n * 8 / dt / 1e9), flush=True)
"#;

    /// argv: bind-host port count — TCP echo for `count` sequential connections.
    pub(crate) const ECHO_SERVER: &str = r#"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(128)
s.settimeout(60)
print("listening", flush=True)
for i in range(int(sys.argv[3])):
    c, _ = s.accept()
    c.settimeout(30)
    data = b""
    while True:
        b = c.recv(65536)
        if not b:
            break
        data += b
    c.sendall(data)
    c.close()
print("echo-server served=%s" % sys.argv[3], flush=True)
"#;

    /// argv: host port count — `count` sequential connections to a TCP echo server.
    pub(crate) const CONNECT_LOOP: &str = r#"
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = time.time()
for i in range(n):
    msg = b"linux connection %d\n" % i
    s = socket.create_connection((host, port), timeout=30)
    s.sendall(msg)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    if got != msg:
        sys.exit("connection %d: echo %r != %r" % (i, got, msg))
print("linux-connect-loop connections=%d secs=%.3f" % (n, time.time() - t), flush=True)
"#;

    /// argv: bind-host port — UDP echo until 60 s idle.
    pub(crate) const UDP_ECHO: &str = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(60)
print("listening", flush=True)
try:
    while True:
        d, a = s.recvfrom(65535)
        s.sendto(d, a)
except socket.timeout:
    pass
"#;

    /// argv: host port sizes — one datagram per size, each echo checked (with retries).
    pub(crate) const UDP_CLIENT: &str = r#"
import socket, sys, os
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for size in [int(x) for x in sys.argv[3].split(",")]:
    msg = os.urandom(size)
    for attempt in range(20):
        s.sendto(msg, (host, port))
        try:
            d, a = s.recvfrom(65535)
        except socket.timeout:
            continue
        if d == msg:
            break
    else:
        sys.exit("no echo of %d bytes" % size)
    print("linux-udp size=%d ok" % size, flush=True)
print("linux-udp done", flush=True)
"#;
}
