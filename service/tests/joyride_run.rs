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

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::run::{apps_field, compile, lib, make_file, sha256_of, stat_when, Net, JOYRIDE};

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
