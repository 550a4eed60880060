//! joyrided against Linux's own stack: `joyrided` drives one end of a veth pair through
//! AF_PACKET inside a private network namespace; the other end lives in a second namespace
//! with Linux's IPv4/TCP/UDP (iputils `ping`, python3 sockets, `python3 -m http.server`).
//! Nothing leaves the machine. Needs root, `ip` (iproute2), python3 and ping; each test prints
//! why it skips otherwise.
//!
//! `JOYRIDE_PEER_MIB` sets the bulk size each way (default 256 MiB); `JOYRIDE_PEER_LOSS_MIB`
//! the size under 5 % loss (default 16 MiB).
#![allow(clippy::disallowed_methods)] // Tests wait on real processes with real time.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{field, have, py, Proc, JOYRIDED};
use joyride_drivers::netns::{self, NetNs};

fn env_mib(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Why these tests cannot run here.
fn skip(tools: &[&str]) -> Option<String> {
    if let Some(r) = netns::skip_reason() {
        return Some(r.to_string());
    }
    for t in tools {
        if !have(t) {
            return Some(format!("needs {t}"));
        }
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

/// Two namespaces joined by a veth: `j` (joyrided's end, no kernel address) and `l` (Linux,
/// 10.98.N.1/24). Joyride is 10.98.N.2. Deleted on drop.
struct Pair {
    j: NetNs,
    l: NetNs,
    jif: String,
    linux_ip: String,
    joy_ip: String,
}

impl Pair {
    fn new() -> Pair {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id() % 100_000;
        let j = NetNs::create(&format!("jrsvc-{pid}-{n}-j")).expect("netns");
        let l = NetNs::create(&format!("jrsvc-{pid}-{n}-l")).expect("netns");
        let jif = format!("js{pid}x{n}a");
        let lif = format!("js{pid}x{n}b");
        let out = Command::new("ip")
            .args(["link", "add", &jif, "netns", j.name(), "type", "veth", "peer", "name", &lif])
            .args(["netns", l.name()])
            .output()
            .expect("ip link add");
        assert!(out.status.success(), "ip link add: {}", String::from_utf8_lossy(&out.stderr));
        for ns in [&j, &l] {
            // No IPv6 chatter (router solicitations, MLD) on the test link.
            let _ = Command::new("ip")
                .args(["netns", "exec", ns.name(), "sysctl", "-qw"])
                .arg("net.ipv6.conf.all.disable_ipv6=1")
                .status();
        }
        let net = 10 + n; // only for readability: each pair has its own namespaces
        let linux_ip = format!("10.98.{net}.1");
        let joy_ip = format!("10.98.{net}.2");
        j.ip(&["link", "set", &jif, "up"]).unwrap();
        l.ip(&["addr", "add", &format!("{linux_ip}/24"), "dev", &lif]).unwrap();
        // AF_PACKET receives what the veth carries as-is: make Linux segment TCP itself (no
        // GSO super-frames larger than the MTU). `ethtool -K … tso off gso off` keeps Linux
        // fast; `gso_max_segs 1` (iproute2 only) works too but slows Linux's sender ~10×.
        let ethtool = Command::new("ip")
            .args(["netns", "exec", l.name(), "ethtool", "-K", &lif, "tso", "off", "gso", "off"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ethtool {
            l.ip(&["link", "set", &lif, "gso_max_segs", "1"]).unwrap();
        }
        l.ip(&["link", "set", &lif, "up"]).unwrap();
        Pair { j, l, jif, linux_ip, joy_ip }
    }

    /// Starts joyrided on the pair's Joyride end and waits for it to be up.
    fn joyrided(&self, extra: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.j.name(), JOYRIDED])
            .arg("--backend")
            .arg(format!("af-packet:{}", self.jif))
            .arg("--ip")
            .arg(format!("{}/24", self.joy_ip))
            .args(extra);
        let mut p = Proc::spawn("joyrided", cmd);
        p.wait_line("joyrided: ready", Duration::from_secs(20));
        p
    }

    /// Runs a command in the Linux namespace.
    fn linux(&self, name: &str, args: &[&str]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.l.name()]).args(args);
        Proc::spawn(name, cmd)
    }

    fn python(&self, name: &str, script: &str, args: &[&str]) -> Proc {
        let mut all = vec!["python3", "-c", script];
        all.extend_from_slice(args);
        self.linux(name, &all)
    }
}

/// Linux client → Joyride sink, then Joyride source → Linux server; both byte-exact.
fn bulk_both_ways(p: &Pair, mib: u64, fault: Option<&str>, timeout: Duration) {
    let mut args = vec![];
    if let Some(f) = fault {
        args.extend(["--fault", f]);
    }
    // Linux → Joyride.
    let mut sink_args = args.clone();
    sink_args.extend(["--app", "sink:5001", "--exit-when-done"]);
    let mut jd = p.joyrided(&sink_args);
    let t0 = Instant::now();
    let mut tx = p.python("linux-send", py::SEND, &[&p.joy_ip, "5001", &mib.to_string(), "7"]);
    let sent = tx.wait_ok(timeout);
    let out = jd.wait_ok(Duration::from_secs(30));
    let a = sent.iter().find(|l| l.starts_with("linux-send")).expect("sender result");
    let b = out.iter().find(|l| l.starts_with("sink:")).expect("sink result");
    assert_eq!(field(b, "bytes"), (mib << 20).to_string(), "{b}");
    assert_eq!(field(a, "sha256"), field(b, "sha256"), "Linux sent {a}\nJoyride got {b}");
    eprintln!("Linux → Joyride {mib} MiB in {:.2?} (fault {fault:?}): {b}", t0.elapsed());

    // Joyride → Linux.
    let port = "5002";
    let mut rx = p.python("linux-recv", py::RECV, &[&p.linux_ip, port]);
    rx.wait_line("listening", Duration::from_secs(20));
    let spec = format!("source:{}:{port}:{}M:9", p.linux_ip, mib);
    let mut src_args = args.clone();
    src_args.extend(["--app", &spec, "--exit-when-done"]);
    let t0 = Instant::now();
    let mut jd = p.joyrided(&src_args);
    let out = jd.wait_ok(timeout);
    let got = rx.wait_ok(Duration::from_secs(30));
    let a = out.iter().find(|l| l.starts_with("source:")).expect("source result");
    let b = got.iter().find(|l| l.starts_with("linux-recv")).expect("receiver result");
    assert_eq!(field(b, "bytes"), (mib << 20).to_string(), "{b}");
    assert_eq!(field(a, "sha256"), field(b, "sha256"), "Joyride sent {a}\nLinux got {b}");
    eprintln!("Joyride → Linux {mib} MiB in {:.2?} (fault {fault:?}): {a}", t0.elapsed());
}

#[test]
fn arp_and_ping_including_fragmented() {
    skip_unless!("ping");
    let p = Pair::new();
    let mut jd = p.joyrided(&[]);
    let ping = |args: &[&str]| {
        let mut all = vec!["ping", "-c", "3", "-i", "0.2", "-W", "2"];
        all.extend_from_slice(args);
        all.push(&p.joy_ip);
        let mut pr = p.linux("ping", &all);
        let lines = pr.wait_ok(Duration::from_secs(30));
        let summary = lines.iter().find(|l| l.contains("packets transmitted")).unwrap().clone();
        assert!(summary.contains(" 3 received"), "{summary}");
        lines
    };
    ping(&[]);
    let big = ping(&["-s", "8000"]);
    assert!(big.iter().any(|l| l.starts_with("8008 bytes from")), "{big:?}");
    // Linux learned our MAC through ARP.
    let neigh = Command::new("ip").args(["-n", p.l.name(), "neigh", "show", &p.joy_ip]).output();
    let neigh = String::from_utf8_lossy(&neigh.unwrap().stdout).to_string();
    let ready = jd.lines()[0].clone();
    assert!(neigh.contains(field(&ready, "mac")), "neigh {neigh:?} vs {ready}");
    // SIGUSR1 prints the counters and keeps running.
    let pid = jd.pid().to_string();
    assert!(Command::new("kill").args(["-USR1", &pid]).status().unwrap().success());
    let t0 = Instant::now();
    while !jd.stderr_tail().contains("engine: rx_frames=") {
        assert!(t0.elapsed() < Duration::from_secs(10), "no counters on SIGUSR1");
        std::thread::sleep(Duration::from_millis(20));
    }
    ping(&[]);
    let counters = jd.terminate();
    // We answered Linux's ARP requests and learned Linux from them; fragments were reassembled.
    assert!(counters.contains("arp_replies_tx: "), "{counters}");
    assert!(!counters.contains("arp_replies_tx: 0,"), "{counters}");
    assert!(!counters.contains("arp_learned: 0,"), "{counters}");
    assert!(!counters.contains("reassembled: 0,"), "{counters}");
    assert!(!counters.contains("icmp_echo_reply_tx: 0,"), "{counters}");
}

#[test]
fn tcp_bulk_both_ways_byte_exact() {
    skip_unless!("python3");
    let mib = env_mib("JOYRIDE_PEER_MIB", 256);
    let p = Pair::new();
    bulk_both_ways(&p, mib, None, Duration::from_secs(60 + mib));
}

#[test]
fn http_get_large_file_byte_exact() {
    skip_unless!("python3");
    let mib = env_mib("JOYRIDE_PEER_MIB", 256).min(64);
    let p = Pair::new();
    let dir = std::env::temp_dir().join(format!("jrsvc-http-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut data = vec![0u8; (mib << 20) as usize + 12345];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    std::fs::write(dir.join("big.bin"), &data).unwrap();
    let dirs = dir.to_string_lossy().to_string();
    let srv = p.linux(
        "http.server",
        &["python3", "-m", "http.server", "8000", "--bind", &p.linux_ip, "--directory", &dirs],
    );
    // Wait until it accepts connections (it prints nothing before the first request).
    let t0 = Instant::now();
    loop {
        let probe = Command::new("ip")
            .args(["netns", "exec", p.l.name(), "python3", "-c"])
            .arg(format!(
                "import socket; socket.create_connection(('{}', 8000), timeout=1).close()",
                p.linux_ip
            ))
            .output()
            .unwrap();
        if probe.status.success() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "http.server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = dir.join("fetched.bin");
    let spec = format!("http-get:{}:8000:/big.bin:{}", p.linux_ip, out.display());
    let mut jd = p.joyrided(&["--app", &spec, "--exit-when-done"]);
    let lines = jd.wait_ok(Duration::from_secs(60 + mib));
    let r = lines.iter().find(|l| l.starts_with("http-get:")).expect("http-get result");
    eprintln!("http-get {mib} MiB: {r}");
    let got = std::fs::read(&out).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "fetched file differs");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn thousand_short_connections_each_way() {
    skip_unless!("python3");
    let n = 1000;
    let p = Pair::new();
    // Joyride client → Linux echo server.
    let mut srv = p.python("echo-server", py::ECHO_SERVER, &[&p.linux_ip, "7000", &n.to_string()]);
    srv.wait_line("listening", Duration::from_secs(20));
    let spec = format!("connect-loop:{}:7000:{n}", p.linux_ip);
    let t0 = Instant::now();
    let mut jd = p.joyrided(&["--app", &spec, "--exit-when-done"]);
    let lines = jd.wait_ok(Duration::from_secs(240));
    let r = lines.iter().find(|l| l.starts_with("connect-loop:")).expect("result");
    assert_eq!(field(r, "connections"), n.to_string());
    srv.wait_ok(Duration::from_secs(30));
    eprintln!("Joyride → Linux {n} connections in {:.2?}", t0.elapsed());

    // Linux client → Joyride echo server.
    let mut jd = p.joyrided(&["--app", "echo:7001"]);
    let t0 = Instant::now();
    let mut cl = p.python("connect-loop", py::CONNECT_LOOP, &[&p.joy_ip, "7001", &n.to_string()]);
    let lines = cl.wait_ok(Duration::from_secs(240));
    assert!(lines.iter().any(|l| l.starts_with("linux-connect-loop")), "{lines:?}");
    eprintln!("Linux → Joyride {n} connections in {:.2?}", t0.elapsed());
    jd.terminate();
}

const UDP_SIZES: &str = "1,512,1472,1473,4000,8972,20000,65507";

#[test]
fn udp_echo_both_ways_including_datagrams_above_the_mtu() {
    skip_unless!("python3");
    let p = Pair::new();
    // Linux client → Joyride echo.
    let mut jd = p.joyrided(&["--app", "udp-echo:7"]);
    let mut cl = p.python("udp-client", py::UDP_CLIENT, &[&p.joy_ip, "7", UDP_SIZES]);
    let lines = cl.wait_ok(Duration::from_secs(60));
    assert!(lines.iter().any(|l| l == "linux-udp done"), "{lines:?}");
    jd.terminate();
    // Joyride client → Linux echo.
    let mut srv = p.python("udp-echo", py::UDP_ECHO, &[&p.linux_ip, "7007"]);
    srv.wait_line("listening", Duration::from_secs(20));
    let spec = format!("udp-client:{}:7007:{UDP_SIZES}", p.linux_ip);
    let mut jd = p.joyrided(&["--app", &spec, "--exit-when-done"]);
    let lines = jd.wait_ok(Duration::from_secs(60));
    let oks = lines.iter().filter(|l| l.starts_with("udp-client:") && l.contains(" ok")).count();
    assert_eq!(oks, UDP_SIZES.split(',').count(), "{lines:?}");
    // Joyride spoke first here, so it resolved Linux with its own ARP request.
    let counters = jd.stderr_tail();
    assert!(counters.contains("arp_requests_tx: "), "{counters}");
    assert!(!counters.contains("arp_requests_tx: 0,"), "{counters}");
}

#[test]
fn transfers_complete_through_five_percent_loss() {
    skip_unless!("python3");
    let mib = env_mib("JOYRIDE_PEER_LOSS_MIB", 16);
    let p = Pair::new();
    bulk_both_ways(&p, mib, Some("loss=0.05,seed=11"), Duration::from_secs(120 + 4 * mib));
    // Short connections and UDP under loss too.
    let n = 50;
    let mut srv = p.python("echo-server", py::ECHO_SERVER, &[&p.linux_ip, "7100", &n.to_string()]);
    srv.wait_line("listening", Duration::from_secs(20));
    let spec = format!("connect-loop:{}:7100:{n}", p.linux_ip);
    let uspec = format!("udp-client:{}:7107:1,1473,20000", p.linux_ip);
    let mut usrv = p.python("udp-echo", py::UDP_ECHO, &[&p.linux_ip, "7107"]);
    usrv.wait_line("listening", Duration::from_secs(20));
    let mut jd = p.joyrided(&[
        "--fault",
        "loss=0.05,seed=12",
        "--app",
        &spec,
        "--app",
        &uspec,
        "--exit-when-done",
    ]);
    let lines = jd.wait_ok(Duration::from_secs(240));
    assert!(lines.iter().any(|l| l.starts_with("connect-loop:")), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("udp-client:")).count(), 3, "{lines:?}");
    srv.wait_ok(Duration::from_secs(30));
}
