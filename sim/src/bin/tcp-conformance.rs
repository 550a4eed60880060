//! `tcp-conformance [--profile linux|freebsd] [--verbose] [--allow-fail] [--lenient-end]
//! [--pcap DIR] PATHS…`
//!
//! Runs packetdrill-format scripts (files, or directories searched recursively for `*.pkt`)
//! against Joyride's TCP stack in virtual time. Prints `PASS path` or `FAIL path: line N: why`
//! per script and finally `N passed, N failed`. Exits non-zero iff a script failed, unless
//! `--allow-fail` is given. `--lenient-end` does not fail a script for packets the stack sends
//! after its last line (packetdrill's own behaviour); `--pcap DIR` writes `DIR/<script>.pcap`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use joyride_sim::packetdrill::{run_source, Profile, RunOptions};

const USAGE: &str =
    "usage: tcp-conformance [--profile linux|freebsd] [--verbose] [--allow-fail] [--lenient-end] [--pcap DIR] PATHS...";

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(path)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() || p.extension().is_some_and(|e| e == "pkt") {
                collect(&p, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut opts = RunOptions::default();
    let mut allow_fail = false;
    let mut pcap_dir: Option<PathBuf> = None;
    let mut paths = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--profile" => match args.next().as_deref() {
                Some("linux") => opts.profile = Profile::Linux,
                Some("freebsd") => opts.profile = Profile::FreeBsd,
                _ => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--verbose" | "-v" => opts.verbose = true,
            "--allow-fail" => allow_fail = true,
            "--lenient-end" => opts.lenient_end = true,
            "--pcap" => match args.next() {
                Some(d) => pcap_dir = Some(PathBuf::from(d)),
                None => {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ if a.starts_with("--") => {
                eprintln!("unknown option {a}\n{USAGE}");
                return ExitCode::from(2);
            }
            _ => paths.push(PathBuf::from(a)),
        }
    }
    if paths.is_empty() {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    opts.capture = pcap_dir.is_some();
    let mut files = Vec::new();
    for p in &paths {
        if let Err(e) = collect(p, &mut files) {
            eprintln!("{}: {e}", p.display());
            return ExitCode::from(2);
        }
    }
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in &files {
        let outcome = match std::fs::read_to_string(f) {
            Ok(src) => run_source(&src, &opts),
            Err(e) => {
                println!("FAIL {}: line 0: cannot read: {e}", f.display());
                failed += 1;
                continue;
            }
        };
        match &outcome.failure {
            None => {
                passed += 1;
                println!("PASS {}", f.display());
            }
            Some(fail) => {
                failed += 1;
                println!("FAIL {}: line {}: {}", f.display(), fail.line, fail.why);
            }
        }
        if opts.verbose {
            for t in &outcome.trace {
                println!("    {t}");
            }
            for n in &outcome.notes {
                println!("    note: {n}");
            }
        }
        if let (Some(dir), Some(pcap)) = (&pcap_dir, &outcome.pcap) {
            let name = f.file_name().map_or_else(|| "script".into(), |n| n.to_string_lossy());
            let out = dir.join(format!("{name}.pcap"));
            if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&out, pcap)) {
                eprintln!("{}: {e}", out.display());
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 && !allow_fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
