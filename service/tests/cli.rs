//! The joyrided command line: help that teaches, readable errors.

use std::process::Command;

const JOYRIDED: &str = env!("CARGO_BIN_EXE_joyrided");

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(JOYRIDED).args(args).output().unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (o.status.code().unwrap_or(-1), s(&o.stdout), s(&o.stderr))
}

#[test]
fn help_has_examples_and_apps() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for want in
        ["EXAMPLES:", "--backend af-packet:", "shm:/dev/shm/jr,create", "sink:PORT", "SIGUSR1"]
    {
        assert!(out.contains(want), "--help lacks {want:?}:\n{out}");
    }
}

#[test]
fn errors_are_readable() {
    let (code, _, err) = run(&["--backend", "af-packet:nosuch0", "--ip", "10.0.0.2/24"]);
    assert_eq!(code, 2);
    assert!(err.contains("interface nosuch0 not found"), "{err}");
    let (code, _, err) = run(&["--backend", "af-packet:lo"]);
    assert_eq!(code, 2);
    assert!(err.contains("no address: pass --ip ADDR/PREFIX"), "{err}");
    let (code, _, err) = run(&["--backend", "dpdk:0", "--ip", "10.0.0.2/24"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown backend"), "{err}");
    let (code, _, err) =
        run(&["--backend", "shm:/tmp/x,create", "--ip", "10.0.0.2/24", "--app", "echo:x"]);
    assert_eq!(code, 2);
    assert!(err.contains("bad app spec"), "{err}");
    let (code, _, err) = run(&["--config", "/nonexistent/joyride.toml"]);
    assert_eq!(code, 2);
    assert!(err.contains("reading config file /nonexistent/joyride.toml"), "{err}");
}
