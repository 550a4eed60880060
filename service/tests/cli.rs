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
    for want in [
        "EXAMPLES:",
        "--backend af-packet:",
        "shm:/dev/shm/jr,create",
        "sink:PORT",
        "SIGUSR1",
        "vfio:0000:00:03.0,bind",
        "vfio-bind",
        "vfio-unbind",
        "1af4:1041",
    ] {
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

#[test]
fn vfio_backend_and_bind_commands_say_what_is_wrong() {
    // Bus ff, device 1f, function 7: no machine this runs on has it.
    let (code, _, err) = run(&["--backend", "vfio:0000:ff:1f.7", "--ip", "10.0.0.2/24"]);
    assert_eq!(code, 2);
    assert!(err.contains("no PCI device 0000:ff:1f.7"), "{err}");
    let (code, _, err) = run(&["--backend", "vfio:eth0", "--ip", "10.0.0.2/24"]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid PCI address \"eth0\""), "{err}");
    let (code, _, err) = run(&["--backend", "vfio:0000:00:03.0,force", "--ip", "10.0.0.2/24"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown vfio option \"force\" (only `bind`)"), "{err}");
    for cmd in ["vfio-bind", "vfio-unbind"] {
        let (code, out, err) = run(&[cmd, "ff:1f.7"]);
        assert_eq!(code, 2, "{cmd}: {out}");
        assert!(err.contains("no PCI device 0000:ff:1f.7"), "{cmd}: {err}");
        let (code, _, err) = run(&[cmd, "0000:00:03"]);
        assert_eq!(code, 2);
        assert!(err.contains("invalid PCI address"), "{cmd}: {err}");
    }
    // A subcommand does not mix with the service's flags.
    let (code, _, err) = run(&["--ip", "10.0.0.2/24", "vfio-bind", "0000:00:03.0"]);
    assert_ne!(code, 0, "{err}");
    let (code, out, _) = run(&["vfio-bind", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("vfio-pci"), "{out}");
}
