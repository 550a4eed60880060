//! The `joyride run` fixture: joyrided on one end of a veth inside a namespace, Linux's own stack
//! on the other end in a second namespace, programs under `joyride run` in the root namespace
//! (which has no route to the test network, so they can only get there through Joyride).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{have, Proc, JOYRIDED};
use joyride_drivers::netns::{self, NetNs};
use sha2::{Digest, Sha256};

pub(crate) const JOYRIDE: &str = env!("CARGO_BIN_EXE_joyride");

/// `libjoyride.so` beside the test binaries (the newest of `deps/` and the profile dir).
pub(crate) fn lib() -> Option<PathBuf> {
    let dir = Path::new(JOYRIDE).parent()?.to_path_buf();
    [dir.join("libjoyride.so"), dir.join("deps/libjoyride.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
}

pub(crate) fn skip(tools: &[&str]) -> Option<String> {
    if let Some(r) = netns::skip_reason() {
        return Some(r.to_string());
    }
    for t in tools {
        if !have(t) {
            return Some(format!("needs {t} (apt-get install -y {t})"));
        }
    }
    if lib().is_none() {
        return Some("needs libjoyride.so: cargo build -p joyride-posix".into());
    }
    None
}

/// Returns early (printing why) unless the fixture and the named tools are available.
#[macro_export]
macro_rules! skip_unless {
    ($($tool:expr),*) => {
        if let Some(why) = $crate::common::run::skip(&[$($tool),*]) {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// Two namespaces joined by a veth, joyrided on one end serving apps on a private socket.
pub(crate) struct Net {
    pub(crate) j: NetNs,
    pub(crate) l: NetNs,
    pub(crate) jif: String,
    pub(crate) linux_ip: String,
    pub(crate) joy_ip: String,
    pub(crate) dir: PathBuf,
    pub(crate) socket: PathBuf,
}

impl Net {
    pub(crate) fn new() -> Net {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id() % 100_000;
        let j = NetNs::create(&format!("jrrun-{pid}-{n}-j")).expect("netns");
        let l = NetNs::create(&format!("jrrun-{pid}-{n}-l")).expect("netns");
        let jif = format!("jr{pid}x{n}a");
        let lif = format!("jr{pid}x{n}b");
        let out = Command::new("ip")
            .args(["link", "add", &jif, "netns", j.name(), "type", "veth", "peer", "name", &lif])
            .args(["netns", l.name()])
            .output()
            .expect("ip link add");
        assert!(out.status.success(), "ip link add: {}", String::from_utf8_lossy(&out.stderr));
        for ns in [&j, &l] {
            let _ = Command::new("ip")
                .args(["netns", "exec", ns.name(), "sysctl", "-qw"])
                .arg("net.ipv6.conf.all.disable_ipv6=1")
                .status();
        }
        let linux_ip = format!("10.97.{}.1", 10 + n);
        let joy_ip = format!("10.97.{}.2", 10 + n);
        j.ip(&["link", "set", &jif, "up"]).unwrap();
        l.ip(&["addr", "add", &format!("{linux_ip}/24"), "dev", &lif]).unwrap();
        // No GSO super-frames from the Linux peer over AF_PACKET (see ARCHITECTURE.md).
        let ethtool = Command::new("ip")
            .args(["netns", "exec", l.name(), "ethtool", "-K", &lif, "tso", "off", "gso", "off"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ethtool {
            l.ip(&["link", "set", &lif, "gso_max_segs", "1"]).unwrap();
        }
        l.ip(&["link", "set", &lif, "up"]).unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("jrrun-{pid}-{n}"));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("joyride.sock");
        Net { j, l, jif, linux_ip, joy_ip, dir, socket }
    }

    pub(crate) fn joyrided(&self) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.j.name(), JOYRIDED])
            .arg("--backend")
            .arg(format!("af-packet:{}", self.jif))
            .arg("--ip")
            .arg(format!("{}/24", self.joy_ip))
            .arg("--socket")
            .arg(&self.socket);
        let mut p = Proc::spawn("joyrided", cmd);
        p.wait_line("joyrided: serving applications", Duration::from_secs(20));
        p
    }

    /// `joyride run -- args…` in the root namespace.
    pub(crate) fn run(&self, name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(JOYRIDE);
        cmd.arg("run").arg("--socket").arg(&self.socket).arg("--").args(args);
        cmd.env("JOYRIDE_LIB", lib().unwrap()).env_remove("JOYRIDE_FALLBACK");
        Proc::spawn(name, cmd)
    }

    pub(crate) fn linux(&self, name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.l.name()]).args(args);
        Proc::spawn(name, cmd)
    }

    /// `python3 -m http.server` on the Linux side serving `dir`.
    pub(crate) fn linux_http(&self, dir: &Path) -> Proc {
        let d = dir.to_str().unwrap();
        let mut p = self.linux(
            "http.server",
            &["python3", "-u", "-m", "http.server", "--bind", &self.linux_ip, "8000", "-d", d],
        );
        p.wait_line("Serving HTTP", Duration::from_secs(20));
        p
    }

    pub(crate) fn stat(&self) -> String {
        let o = Command::new(JOYRIDE).arg("stat").arg("--socket").arg(&self.socket).output();
        let o = o.expect("joyride stat");
        assert!(o.status.success(), "joyride stat: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `mib` MiB of seeded pseudo-random bytes; returns the sha256.
pub(crate) fn make_file(p: &Path, mib: u64, seed: u64) -> String {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ seed;
    let mut h = Sha256::new();
    let mut all = Vec::with_capacity((mib as usize) << 20);
    for _ in 0..(mib << 17) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        all.extend_from_slice(&x.to_le_bytes());
    }
    h.update(&all);
    std::fs::write(p, &all).unwrap();
    format!("{:x}", h.finalize())
}

pub(crate) fn sha256_of(p: &Path) -> (usize, String) {
    let b = std::fs::read(p).unwrap_or_default();
    (b.len(), format!("{:x}", Sha256::digest(&b)))
}

/// The `k=v` field of the `apps:` line of `joyride stat`.
pub(crate) fn apps_field(stat: &str, key: &str) -> u64 {
    let line = stat.lines().find(|l| l.starts_with("apps:")).expect("apps line");
    super::field(line, key).parse().unwrap()
}

/// `joyride stat` once `ready` holds for it, or after 10 s (the service notices a program's
/// exit or a poisoned region within its next loop turns, not synchronously).
pub(crate) fn stat_when(net: &Net, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stat = net.stat();
    while !ready(&stat) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        stat = net.stat();
    }
    stat
}

/// Compiles `tests/c/NAME.c` once per run.
pub(crate) fn compile(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c").join(format!("{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    if !out.exists() {
        let st = Command::new("cc")
            .args(["-O1", "-Wall", "-Werror", "-D_GNU_SOURCE", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("cc");
        assert!(st.success(), "compiling {}", src.display());
    }
    out
}
