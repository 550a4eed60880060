//! `joyride-mlx5-selftest --fake`: the self-test command's whole code path against the fake HCA.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_joyride-mlx5-selftest");

fn run(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(BIN).args(args).output().expect("selftest binary runs");
    let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&o.stderr));
    (o.status.code(), s)
}

#[test]
fn fake_run_passes_every_step_and_prints_the_report_block() {
    let (code, out) = run(&["--fake", "--frames", "32"]);
    assert_eq!(code, Some(0), "{out}");
    for step in ["vfio", "open", "bring-up", "link", "loopback", "teardown"] {
        assert!(
            out.lines().any(|l| l.starts_with("[PASS]") && l.contains(step)),
            "step {step} did not pass:\n{out}"
        );
    }
    assert!(out.contains("32 frames back byte-exact"), "{out}");
    assert!(!out.contains("FAIL") && !out.contains("WARN"), "{out}");
    let begin = out.find("BEGIN JOYRIDE MLX5 SELFTEST REPORT").expect("report block");
    let block = &out[begin..out.find("END JOYRIDE MLX5 SELFTEST REPORT").expect("end")];
    assert!(block.contains("result: PASS"), "{block}");
    assert!(block.contains("pci: 15b3:1017"), "{block}");
    assert!(block.contains("firmware: "), "{block}");
    assert!(block.contains("tx_packets 32") && block.contains("rx_packets 32"), "{block}");
    // The command log: bring-up starts with ENABLE_HCA, teardown ends with DISABLE_HCA, all ok.
    let cmds: Vec<&str> =
        block.lines().filter(|l| l.starts_with("  ") && l.contains(" 0x")).collect();
    assert!(cmds.len() > 30, "{block}");
    assert!(cmds.first().unwrap().contains("ENABLE_HCA"), "{block}");
    assert!(cmds.last().unwrap().contains("DISABLE_HCA"), "{block}");
    assert!(cmds.iter().all(|l| l.trim_end().ends_with(" ok")), "{block}");
    assert!(block.contains("0 failed"), "{block}");
}

#[test]
fn usage_errors_and_help() {
    let (code, out) = run(&["--help"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("vfio-pci") && out.contains("--fake") && out.contains("loopback"));
    assert_eq!(run(&[]).0, Some(2), "neither a BDF nor --fake");
    assert_eq!(run(&["--fake", "0000:01:00.0"]).0, Some(2));
    assert_eq!(run(&["--fake", "--frames", "0"]).0, Some(2));
}

#[test]
fn bad_address_fails_the_vfio_step_with_a_report() {
    let (code, out) = run(&["not-a-bdf"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("[FAIL] vfio") && out.contains("invalid PCI address"), "{out}");
    assert!(out.contains("result: FAIL"), "{out}");
}
