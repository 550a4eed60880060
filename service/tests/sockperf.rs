//! sockperf on Joyride (issue 6): `sockperf ping-pong` under `joyride run` against a Linux
//! `sockperf server`, and `sockperf server` under `joyride run` with a Linux client, TCP and UDP.
//! Same fixture as `joyride_run.rs`: joyrided on a veth (AF_PACKET) inside a namespace, Linux's
//! stack on the other end in a second namespace, the program under Joyride in the root namespace
//! (no route to the test network except through Joyride). Each run is 2 s; the tests check that
//! it really ran (observations, no drops, exit 0) and print p50/p99/p99.9 — sockperf's latency
//! is half the round trip. Needs root, `ip` and sockperf (each test prints why it skips otherwise).
#![allow(clippy::disallowed_methods)] // Tests wait on real processes with real time.

mod common;

use std::time::Duration;

use common::run::{apps_field, stat_when, Net};

/// What a `sockperf ping-pong` run printed.
#[derive(Debug)]
struct PingPong {
    observations: u64,
    received: u64,
    dropped: u64,
    duplicated: u64,
    out_of_order: u64,
    avg_us: f64,
    p50: f64,
    p99: f64,
    p999: f64,
}

/// A line without its ANSI colour sequences (sockperf colours some lines even into a pipe).
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The number right after `key` in `line` (`key` ends with `=` or a space).
fn num_after(line: &str, key: &str) -> Option<f64> {
    let rest = line[line.find(key)? + key.len()..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn parse(lines: &[String]) -> PingPong {
    let lines: Vec<String> = lines.iter().map(|l| plain(l)).collect();
    let find = |pat: &str| {
        lines
            .iter()
            .find(|l| l.contains(pat))
            .unwrap_or_else(|| panic!("no {pat:?} in sockperf's output:\n{}", lines.join("\n")))
    };
    let get = |pat: &str, key: &str| {
        num_after(find(pat), key).unwrap_or_else(|| panic!("no {key:?} in {:?}", find(pat)))
    };
    let pct = |p: &str| get(&format!("percentile {p} ="), &format!("percentile {p} ="));
    PingPong {
        observations: get(" observations", "Total ") as u64,
        received: get("[Valid Duration]", "ReceivedMessages=") as u64,
        dropped: get("# dropped messages", "# dropped messages =") as u64,
        duplicated: get("# duplicated messages", "# duplicated messages =") as u64,
        out_of_order: get("# out-of-order messages", "# out-of-order messages =") as u64,
        avg_us: get("Summary: Latency is", "Summary: Latency is"),
        p50: pct("50.000"),
        p99: pct("99.000"),
        p999: pct("99.900"),
    }
}

/// Checks that the run was real and clean, and prints its latencies.
fn check(what: &str, lines: &[String], stderr: &str) {
    let r = parse(lines);
    eprintln!(
        "sockperf {what}: {} observations, latency (RTT/2) avg {:.1} us, p50 {:.1} us, \
         p99 {:.1} us, p99.9 {:.1} us",
        r.observations, r.avg_us, r.p50, r.p99, r.p999
    );
    let all = lines.join("\n");
    assert!(r.observations >= 100, "{what}: too few observations: {r:?}\n{all}");
    assert_eq!(r.received, r.observations, "{what}: {r:?}");
    assert_eq!((r.dropped, r.duplicated, r.out_of_order), (0, 0, 0), "{what}: {r:?}\n{all}");
    assert!(r.p50 > 0.0 && r.p50 <= r.p99 && r.p99 <= r.p999, "{what}: {r:?}");
    for text in [all.as_str(), stderr] {
        assert!(!text.contains("ERROR"), "{what}: sockperf reported an error:\n{text}");
    }
}

fn proto_args(tcp: bool) -> Vec<&'static str> {
    if tcp {
        vec!["--tcp"]
    } else {
        vec![]
    }
}

/// `sockperf ping-pong` under Joyride against a Linux `sockperf server`, UDP then TCP.
#[test]
fn sockperf_ping_pong_under_joyride_against_linux_server() {
    skip_unless!("sockperf");
    let net = Net::new();
    let mut jd = net.joyrided();
    for (tcp, port) in [(false, "11111"), (true, "11112")] {
        let what = format!("ping-pong {} Joyride -> Linux server", ["UDP", "TCP"][tcp as usize]);
        let mut args = vec!["sockperf", "server", "-i", &net.linux_ip, "-p", port];
        args.extend(proto_args(tcp));
        let mut srv = net.linux("sockperf server (Linux)", &args);
        srv.wait_line("sockperf: [tid", Duration::from_secs(20));
        let mut args = vec!["sockperf", "ping-pong", "-i", &net.linux_ip, "-p", port, "-t", "2"];
        args.extend(proto_args(tcp));
        let mut cli = net.run("sockperf ping-pong (Joyride)", &args);
        let lines = cli.wait_ok(Duration::from_secs(60));
        check(&what, &lines, &cli.stderr_tail());
        assert!(!srv.lines().join("\n").contains("ERROR"), "{:?}", srv.lines());
    }
    // The traffic went through the service, and the client's sockets are reclaimed.
    let stat = stat_when(&net, |s| apps_field(s, "connected") == 0);
    assert_eq!(apps_field(&stat, "connected"), 0, "{stat}");
    assert!(apps_field(&stat, "rx_bytes") > 0, "{stat}");
    let counters = jd.terminate();
    assert!(counters.contains("apps: clients=2"), "{counters}");
}

/// `sockperf server` under Joyride (on 0.0.0.0) with a Linux `sockperf ping-pong`, UDP then TCP.
#[test]
fn sockperf_server_under_joyride_serves_linux_ping_pong() {
    skip_unless!("sockperf");
    let net = Net::new();
    let _jd = net.joyrided();
    for (tcp, port) in [(false, "11121"), (true, "11122")] {
        let proto = ["UDP", "TCP"][tcp as usize];
        let what = format!("ping-pong {proto} Linux -> Joyride server");
        let mut args = vec!["sockperf", "server", "-i", "0.0.0.0", "-p", port];
        args.extend(proto_args(tcp));
        let mut srv = net.run("sockperf server (Joyride)", &args);
        srv.wait_line("sockperf: [tid", Duration::from_secs(20));
        // The server's socket is the service's, with the server's pid.
        let (state, local) = (if tcp { "LISTEN" } else { "UNCONN" }, format!("0.0.0.0:{port}"));
        let pid = format!("pid={}", srv.pid());
        let stat = stat_when(&net, |s| {
            s.lines().any(|l| l.contains(state) && l.contains(&local) && l.contains(&pid))
        });
        assert!(
            stat.lines().any(|l| l.contains(state) && l.contains(&local) && l.contains(&pid)),
            "no {proto} socket on {local} for {pid} in\n{stat}"
        );
        let mut args = vec!["sockperf", "ping-pong", "-i", &net.joy_ip, "-p", port, "-t", "2"];
        args.extend(proto_args(tcp));
        let mut cli = net.linux("sockperf ping-pong (Linux)", &args);
        let lines = cli.wait_ok(Duration::from_secs(60));
        check(&what, &lines, &cli.stderr_tail());
        let out = srv.lines().join("\n");
        assert!(!out.contains("ERROR"), "{what}: the server under Joyride said:\n{out}");
    }
    let stat = net.stat();
    assert!(apps_field(&stat, "rx_bytes") > 0, "{stat}");
    assert_eq!(apps_field(&stat, "invalid"), 0, "{stat}");
}

#[test]
fn parses_sockperf_summary() {
    let lines: Vec<String> = [
        "sockperf: [Valid Duration] RunTime=1.550 sec; SentMessages=1546; ReceivedMessages=1546",
        "sockperf: \u{1b}[2;35m====> avg-latency=501.180 (std-dev=75.138)\u{1b}[0m",
        "sockperf: # dropped messages = 0; # duplicated messages = 0; # out-of-order messages = 0",
        "sockperf: Summary: Latency is 501.180 usec",
        "sockperf: \u{1b}[2;35mTotal 1546 observations\u{1b}[0m; each percentile contains 15.46",
        "sockperf: ---> percentile 99.900 =  717.058",
        "sockperf: ---> percentile 99.000 =  623.275",
        "sockperf: ---> percentile 50.000 =  499.452",
    ]
    .map(String::from)
    .to_vec();
    let r = parse(&lines);
    assert_eq!((r.observations, r.received, r.dropped), (1546, 1546, 0));
    assert_eq!((r.duplicated, r.out_of_order), (0, 0));
    assert_eq!((r.avg_us, r.p50, r.p99, r.p999), (501.18, 499.452, 623.275, 717.058));
}
