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
    assert!(stats.sockets > 0 && stats.commands > 0, "{name} did not go through Joyride: {stats:?}");
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
