//! The engine's own regression scripts (`tcp/tests/scripts/*.pkt`, packetdrill format), one
//! per TCP bug fixed, run through the conformance runner. A script whose name starts with
//! `linux-` runs under the Linux profile, every other under the FreeBSD one (the runner's
//! default, like the FreeBSD suite).

use std::path::PathBuf;

use joyride_sim::packetdrill::{run_source, Profile, RunOptions};

#[test]
fn regression_scripts_pass() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tcp/tests/scripts");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pkt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no scripts in {}", dir.display());
    let mut failed = Vec::new();
    for path in &paths {
        let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
        let profile = if name.starts_with("linux-") { Profile::Linux } else { Profile::FreeBsd };
        let src = std::fs::read_to_string(path).unwrap();
        let o = run_source(&src, &RunOptions { profile, verbose: true, ..RunOptions::default() });
        match o.failure {
            None => eprintln!("PASS {name}"),
            Some(f) => {
                eprintln!("FAIL {name}: line {}: {}", f.line, f.why);
                for t in o.trace.iter().chain(&o.notes) {
                    eprintln!("    {t}");
                }
                failed.push(format!("{name}: line {}: {}", f.line, f.why));
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} failed:\n{}",
        failed.len(),
        paths.len(),
        failed.join("\n")
    );
}
