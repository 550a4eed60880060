//! End-to-end tests of `libjoyride.so`: C programs compiled at test time run under
//! `LD_PRELOAD` against the in-test service (`common::TestService`), and most of them also
//! under the kernel alone, with the two outputs compared line by line (errno values, readiness
//! bits, ordering), so "as Linux does" is checked against Linux itself.

mod common;

use common::{compile, ok, run, Stack, TestService};

/// Runs `name` on the kernel and on Joyride; both must succeed with identical output.
fn same_as_kernel(name: &str) -> (String, common::Stats) {
    let bin = compile(name);
    let kernel = ok(&run(&bin, &[], Stack::Kernel), &format!("{name} on the kernel"));
    let svc = TestService::start();
    let joy = ok(&run(&bin, &[], Stack::Joyride(&svc)), &format!("{name} on Joyride"));
    let stats = svc.stop();
    assert_eq!(joy, kernel, "{name}: Joyride (left) differs from the kernel (right)");
    assert!(
        stats.sockets > 0 && stats.commands > 0,
        "{name} did not go through Joyride: {stats:?}"
    );
    (joy, stats)
}

#[test]
fn round_trip_one_mebibyte_each_way() {
    let (out, stats) = same_as_kernel("roundtrip");
    assert!(out.starts_with("ok "), "{out}");
    // Every byte crossed the rings: 1 MiB + the WAITALL transfer + small messages.
    assert!(stats.tx_bytes >= 1_248_576 && stats.rx_bytes >= 1_248_576, "{stats:?}");
    assert_eq!(stats.invalid, 0);
}

#[test]
fn errno_values_match_linux() {
    let (out, _) = same_as_kernel("errno");
    // A few anchors, so a change in both stacks cannot pass unnoticed.
    for line in [
        "bind NULL                    -1 EFAULT",
        "send unconnected             -1 EPIPE",
        "connect refused              -1 ECONNREFUSED",
        "  SO_ERROR=ECONNREFUSED",
        "recv pipe                    -1 ENOTSOCK",
        "epoll add again              -1 EEXIST",
        "recv after close             -1 EBADF",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
    }
}

#[test]
fn poll_select_epoll_mix_sockets_and_pipes() {
    let (out, _) = same_as_kernel("readiness");
    assert!(out.contains("ET no new edge           n=0"), "{out}");
    assert!(out.contains("ONESHOT disarmed         n=0"), "{out}");
    assert!(out.contains("woke before timeout: 1"), "{out}");
}

#[test]
fn dup2_onto_chosen_numbers_and_last_close() {
    let (out, _) = same_as_kernel("dup");
    assert!(out.contains("dup2 onto 100                100 -"), "{out}");
    assert!(out.contains("peer sees EOF after last close 0 -"), "{out}");
}

#[test]
fn close_while_blocked_and_threads() {
    let (out, _) = same_as_kernel("blocked");
    // Linux keeps the blocked recv running on the still-open socket after close().
    assert!(out.contains("reader still blocked: 1\nreader got 2"), "{out}");
    assert!(out.contains("reader after shutdown 0"), "{out}");
    // Other threads' wake-ups do not end a blocking connect that has not finished.
    assert!(out.contains("connect, queue full, woken   -1 EINPROGRESS"), "{out}");
}

#[test]
fn signals_interrupt_or_restart_like_linux() {
    let (out, _) = same_as_kernel("eintr");
    assert!(out.contains("recv, no SA_RESTART          -1 EINTR"), "{out}");
    assert!(out.contains("recv, SA_RESTART             2 -"), "{out}");
}

#[test]
fn fallback_to_the_kernel_when_no_service() {
    let bin = compile("roundtrip");
    let env = [("JOYRIDE_SOCKET", "/nonexistent/joyride.sock"), ("JOYRIDE_FALLBACK", "kernel")];
    let out = ok(&run(&bin, &[], Stack::Preload(&env)), "roundtrip with fallback");
    assert!(out.starts_with("ok "), "{out}");
}

#[test]
fn no_service_without_fallback_is_a_clear_error() {
    let bin = compile("roundtrip");
    let env = [("JOYRIDE_SOCKET", "/nonexistent/joyride.sock")];
    let o = run(&bin, &[], Stack::Preload(&env));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("joyride: cannot reach the Joyride service at /nonexistent/joyride.sock"),
        "{err}"
    );
    assert!(err.contains("JOYRIDE_FALLBACK=kernel"), "{err}");
    assert!(err.contains("ENETDOWN"), "the program's own CHECK names the errno: {err}");
    assert_eq!(err.matches("joyride: cannot reach").count(), 1, "said once: {err}");
}

#[test]
fn udp_datagrams_addresses_and_truncation() {
    let (out, stats) = same_as_kernel("udp");
    assert!(out.contains("  from right port=1 len=16 data=hello"), "{out}");
    assert!(out.contains("  flags MSG_TRUNC=1 namelen=16 data=abcd"), "{out}");
    assert!(stats.rx_bytes > 0 && stats.tx_bytes > 0, "{stats:?}");
}

/// `cargo test -p joyride-posix --test abi -- --ignored --nocapture pingpong`: 64-byte TCP
/// round trips between two threads, kernel loopback vs the shim + in-test service (which itself
/// relays over kernel loopback, so this measures the shim and ipc overhead, not Joyride's TCP).
#[test]
#[ignore]
fn pingpong_latency() {
    let bin = compile("pingpong");
    let k = ok(&run(&bin, &[], Stack::Kernel), "kernel");
    let svc = TestService::start();
    let j = ok(&run(&bin, &[], Stack::Joyride(&svc)), "joyride");
    println!("kernel:  {k}joyride: {j}");
}
