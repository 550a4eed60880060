//! Every script of the shared FreeBSD conformance suite parses (with and without the `FreeBSD`
//! define, so both sides of each `#ifdef` are checked).

use std::path::{Path, PathBuf};

use joyride_sim::packetdrill::{ast::EventKind, parse};

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tcp-testsuite")
}

fn scripts(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            scripts(&p, out);
        } else if p.extension().is_some_and(|e| e == "pkt") {
            out.push(p);
        }
    }
}

#[test]
fn every_suite_script_parses() {
    let dir = suite_dir();
    if !dir.is_dir() {
        eprintln!("skipped: {} not present", dir.display());
        return;
    }
    let mut files = Vec::new();
    scripts(&dir, &mut files);
    assert!(files.len() >= 462, "found only {} scripts", files.len());
    let mut failures = Vec::new();
    let mut events = 0;
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        for defines in [&[][..], &["FreeBSD"][..]] {
            match parse(&src, defines) {
                Ok(s) => {
                    assert!(
                        s.events.iter().any(|e| matches!(e.kind, EventKind::Syscall(_))),
                        "{}: no system calls parsed",
                        f.display()
                    );
                    assert_eq!(s.option("ip_version"), Some("ipv4"));
                    events += s.events.len();
                }
                Err(e) => failures.push(format!("{}: {e}", f.display())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} scripts failed to parse:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Each script has dozens of events; an empty parse would be a silent failure.
    assert!(events > files.len() * 2 * 10, "only {events} events");
}
