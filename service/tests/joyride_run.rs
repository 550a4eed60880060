//! Unmodified programs on Joyride (issue 6's acceptance tests): `joyrided` drives one end of a
//! veth through AF_PACKET inside a namespace; Linux's own stack is on the other end in a second
//! namespace; programs run under `joyride run` (LD_PRELOAD of `libjoyride.so`) in the root
//! namespace, which has no route to the test network — they can only get there through
//! Joyride. Needs root, `ip`, python3, curl and iperf3 (each test prints why it skips otherwise) and
//! `libjoyride.so` built beside the binaries (`cargo test --workspace` builds it).
//!
//! `JOYRIDE_RUN_MIB` sets the curl download size (default 100 MiB).
#![allow(clippy::disallowed_methods)] // Tests wait on real processes with real time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{have, Proc, JOYRIDED};
use joyride_drivers::netns::{self, NetNs};
use sha2::{Digest, Sha256};

const JOYRIDE: &str = env!("CARGO_BIN_EXE_joyride");

/// `libjoyride.so` beside the test binaries (the newest of `deps/` and the profile dir).
fn lib() -> Option<PathBuf> {
    let dir = Path::new(JOYRIDE).parent()?.to_path_buf();
    [dir.join("libjoyride.so"), dir.join("deps/libjoyride.so")]
        .into_iter()
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
}

fn skip(tools: &[&str]) -> Option<String> {
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

macro_rules! skip_unless {
    ($($tool:expr),*) => {
        if let Some(why) = skip(&[$($tool),*]) {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

static NEXT: AtomicU32 = AtomicU32::new(1);

/// Two namespaces joined by a veth, joyrided on one end serving apps on a private socket.
struct Net {
    j: NetNs,
    l: NetNs,
    jif: String,
    linux_ip: String,
    joy_ip: String,
    dir: PathBuf,
    socket: PathBuf,
}

impl Net {
    fn new() -> Net {
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

    fn joyrided(&self) -> Proc {
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
    fn run(&self, name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new(JOYRIDE);
        cmd.arg("run").arg("--socket").arg(&self.socket).arg("--").args(args);
        cmd.env("JOYRIDE_LIB", lib().unwrap()).env_remove("JOYRIDE_FALLBACK");
        Proc::spawn(name, cmd)
    }

    fn linux(&self, name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.l.name()]).args(args);
        Proc::spawn(name, cmd)
    }

    /// `python3 -m http.server` on the Linux side serving `dir`.
    fn linux_http(&self, dir: &Path) -> Proc {
        let d = dir.to_str().unwrap();
        let mut p = self.linux(
            "http.server",
            &["python3", "-u", "-m", "http.server", "--bind", &self.linux_ip, "8000", "-d", d],
        );
        p.wait_line("Serving HTTP", Duration::from_secs(20));
        p
    }

    fn stat(&self) -> String {
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
fn make_file(p: &Path, mib: u64, seed: u64) -> String {
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

fn sha256_of(p: &Path) -> (usize, String) {
    let b = std::fs::read(p).unwrap_or_default();
    (b.len(), format!("{:x}", Sha256::digest(&b)))
}

/// The `k=v` field of the `apps:` line of `joyride stat`.
fn apps_field(stat: &str, key: &str) -> u64 {
    let line = stat.lines().find(|l| l.starts_with("apps:")).expect("apps line");
    common::field(line, key).parse().unwrap()
}

/// `joyride stat` once `ready` holds for it, or after 10 s (the service notices a program's
/// exit or a poisoned region within its next loop turns, not synchronously).
fn stat_when(net: &Net, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stat = net.stat();
    while !ready(&stat) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        stat = net.stat();
    }
    stat
}

#[test]
fn curl_under_joyride_downloads_from_linux_byte_exact() {
    skip_unless!("python3", "curl");
    let mib = std::env::var("JOYRIDE_RUN_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let net = Net::new();
    let www = net.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let want = make_file(&www.join("big.bin"), mib, 1);
    let _http = net.linux_http(&www);
    let mut jd = net.joyrided();
    let out = net.dir.join("got.bin");
    let url = format!("http://{}:8000/big.bin", net.linux_ip);
    let t0 = Instant::now();
    let mut curl = net.run("curl", &["curl", "-sS", "-o", out.to_str().unwrap(), &url]);
    curl.wait_ok(Duration::from_secs(240));
    let secs = t0.elapsed().as_secs_f64();
    let (n, got) = sha256_of(&out);
    assert_eq!(n as u64, mib << 20);
    assert_eq!(got, want, "curl's file differs from the one Linux served");
    let stat = stat_when(&net, |s| apps_field(s, "connected") == 0);
    // The bytes went through the service (and the process is gone, its socket reclaimed).
    assert!(apps_field(&stat, "rx_bytes") >= mib << 20, "{stat}");
    assert_eq!(apps_field(&stat, "connected"), 0, "{stat}");
    eprintln!("curl under Joyride: {mib} MiB in {secs:.2} s ({:.0} MiB/s)", mib as f64 / secs);
    let counters = jd.terminate();
    assert!(counters.contains("apps: clients=1"), "{counters}");
}

#[test]
fn python_http_server_under_joyride_serves_linux_curl() {
    skip_unless!("python3", "curl");
    let net = Net::new();
    let www = net.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let want = make_file(&www.join("f.bin"), 8, 2);
    let _jd = net.joyrided();
    let d = www.to_str().unwrap();
    let mut srv = net.run(
        "http.server (Joyride)",
        &["python3", "-u", "-m", "http.server", "--bind", "0.0.0.0", "8080", "-d", d],
    );
    srv.wait_line("Serving HTTP", Duration::from_secs(20));
    // The listener is visible in `joyride stat`, with the server's pid.
    let stat = net.stat();
    let pid_of_srv = srv.pid().to_string();
    assert!(
        stat.lines().any(|l| l.contains("LISTEN") && l.contains("0.0.0.0:8080")),
        "no listener in\n{stat}"
    );
    assert!(stat.contains(&format!("pid={pid_of_srv}")), "{stat}");
    let out = net.dir.join("got.bin");
    let url = format!("http://{}:8080/f.bin", net.joy_ip);
    for _ in 0..3 {
        let _ = std::fs::remove_file(&out);
        let mut curl =
            net.linux("curl (Linux)", &["curl", "-sS", "-o", out.to_str().unwrap(), &url]);
        curl.wait_ok(Duration::from_secs(60));
        let (n, got) = sha256_of(&out);
        assert_eq!(n, 8 << 20);
        assert_eq!(got, want);
    }
}

/// Compiles `tests/c/NAME.c` once per run.
fn compile(name: &str) -> PathBuf {
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

#[test]
fn hostile_app_is_contained_while_another_transfers() {
    skip_unless!("python3", "curl", "cc");
    let net = Net::new();
    let www = net.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let want = make_file(&www.join("big.bin"), 48, 3);
    let _http = net.linux_http(&www);
    let mut jd = net.joyrided();
    let out = net.dir.join("got.bin");
    let url = format!("http://{}:8000/big.bin", net.linux_ip);
    // A slowed-down transfer that is sure to overlap the attack.
    let mut curl =
        net.run("curl", &["curl", "-sS", "--limit-rate", "12M", "-o", out.to_str().unwrap(), &url]);
    std::thread::sleep(Duration::from_millis(300));
    let hostile = compile("hostile");
    let mut bad = net.run("hostile", &[hostile.to_str().unwrap(), &net.linux_ip, "8000", "3"]);
    let bad_pid = bad.pid();
    bad.wait_line("scribbled", Duration::from_secs(30));
    // Still alive, but its region is poisoned and its sockets reclaimed.
    let stat = stat_when(&net, |s| {
        apps_field(s, "poisoned") >= 1
            && apps_field(s, "reclaimed") >= 3
            && !s.contains(&format!("pid={bad_pid} "))
    });
    assert!(apps_field(&stat, "poisoned") >= 1, "{stat}");
    assert!(apps_field(&stat, "reclaimed") >= 3, "{stat}");
    assert!(!stat.contains(&format!("pid={bad_pid} ")), "hostile sockets still listed:\n{stat}");
    let _ = bad.wait_ok(Duration::from_secs(30));
    curl.wait_ok(Duration::from_secs(120));
    let (n, got) = sha256_of(&out);
    assert_eq!(n, 48 << 20);
    assert_eq!(got, want, "the other program's download was corrupted");
    // The service survived and still serves new programs.
    let out2 = net.dir.join("again.bin");
    let mut again = net.run("curl again", &["curl", "-sS", "-o", out2.to_str().unwrap(), &url]);
    again.wait_ok(Duration::from_secs(60));
    assert_eq!(sha256_of(&out2).1, want);
    let stat = net.stat();
    assert!(apps_field(&stat, "invalid") > 0, "garbage commands not seen as invalid:\n{stat}");
    jd.terminate();
}

#[test]
fn killed_service_gives_errors_not_hangs() {
    skip_unless!("python3", "curl");
    let net = Net::new();
    let www = net.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    make_file(&www.join("big.bin"), 32, 4);
    let _http = net.linux_http(&www);
    let jd = net.joyrided();
    let url = format!("http://{}:8000/big.bin", net.linux_ip);
    let mut curl = net.run("curl", &["curl", "-sS", "--limit-rate", "2M", "-o", "/dev/null", &url]);
    std::thread::sleep(Duration::from_millis(1500));
    // SIGKILL: no chance to shut regions down; the app must notice the hang-up.
    let _ = Command::new("kill").args(["-KILL", &jd.pid().to_string()]).status();
    let t0 = Instant::now();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        curl.wait_ok(Duration::from_secs(20));
    }));
    let waited = t0.elapsed();
    assert!(r.is_err(), "curl succeeded although the service was killed mid-transfer");
    assert!(waited < Duration::from_secs(15), "curl took {waited:?} to notice");
    eprintln!("curl noticed the dead service after {waited:?}: {}", curl.stderr_tail());
}

#[test]
fn run_without_service_says_so_or_falls_back() {
    if lib().is_none() {
        eprintln!("skipped: needs libjoyride.so");
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("jrnone-{}", std::process::id()));
    let sock = dir.join("none.sock");
    let o = Command::new(JOYRIDE)
        .args(["run", "--socket"])
        .arg(&sock)
        .args(["--", "true"])
        .env_remove("JOYRIDE_FALLBACK")
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not running"), "{err}");
    let o = Command::new(JOYRIDE)
        .args(["run", "--socket"])
        .arg(&sock)
        .args(["--", "sh", "-c", "echo fallback-ran"])
        .env("JOYRIDE_FALLBACK", "kernel")
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("fallback-ran"));
}

/// The receiver's rate (Mbit/s) from an `iperf3 -f m` summary.
fn iperf_mbits(lines: &[String]) -> f64 {
    let line = lines
        .iter()
        .rev()
        .find(|l| l.contains("receiver") && l.contains("Mbits/sec"))
        .unwrap_or_else(|| panic!("no receiver summary in {lines:?}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "Mbits/sec").unwrap();
    words[at - 1].parse().unwrap()
}

/// `iperf3 -c` under Joyride against a Linux `iperf3 -s`, both directions (`-R`: Linux sends),
/// then `iperf3 -s` under Joyride with a Linux client.
#[test]
fn iperf3_under_joyride_both_directions() {
    skip_unless!("iperf3");
    let net = Net::new();
    let _jd = net.joyrided();
    let secs = "3";
    for (what, reverse) in [("joyride->linux", false), ("linux->joyride", true)] {
        let mut srv = net.linux(
            "iperf3 -s (Linux)",
            &["iperf3", "-s", "-1", "--forceflush", "-B", &net.linux_ip, "-p", "5201"],
        );
        srv.wait_line("Server listening", Duration::from_secs(20));
        let mut args = vec!["iperf3", "-c", &net.linux_ip, "-p", "5201", "-t", secs, "-f", "m"];
        if reverse {
            args.push("-R");
        }
        let mut cli = net.run("iperf3 -c (Joyride)", &args);
        let lines = cli.wait_ok(Duration::from_secs(60));
        let mbits = iperf_mbits(&lines);
        eprintln!("iperf3 -c under Joyride, {what}: {mbits:.0} Mbit/s");
        assert!(mbits > 1.0, "{what}: {mbits} Mbit/s\n{lines:?}");
        srv.wait_ok(Duration::from_secs(20));
    }
    // `-4`: by default iperf3 listens on a dual-stack AF_INET6 socket, which Joyride leaves to
    // the kernel (it owns AF_INET only).
    for (what, reverse) in [("linux->joyride", false), ("joyride->linux", true)] {
        let mut srv = net.run(
            "iperf3 -s (Joyride)",
            &["iperf3", "-s", "-4", "-1", "--forceflush", "-p", "5202"],
        );
        srv.wait_line("Server listening", Duration::from_secs(20));
        let mut args = vec!["iperf3", "-c", &net.joy_ip, "-p", "5202", "-t", secs, "-f", "m"];
        if reverse {
            args.push("-R");
        }
        let mut cli = net.linux("iperf3 -c (Linux)", &args);
        let lines = cli.wait_ok(Duration::from_secs(60));
        let mbits = iperf_mbits(&lines);
        eprintln!("iperf3 -s under Joyride, {what}: {mbits:.0} Mbit/s");
        assert!(mbits > 1.0, "{what}: {mbits} Mbit/s\n{lines:?}");
        srv.wait_ok(Duration::from_secs(20));
    }
    // Every connection is reclaimed once the service sees the programs' hang-ups.
    let stat = stat_when(&net, |s| apps_field(s, "connected") == 0);
    assert_eq!(apps_field(&stat, "connected"), 0, "{stat}");
}
