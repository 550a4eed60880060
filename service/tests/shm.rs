//! Two joyrided processes joined by the shared-memory wire (no kernel on the path, no root
//! needed): bulk TCP, short connections and UDP echo including datagrams above the MTU.
#![allow(clippy::disallowed_methods)] // Tests wait on real processes with real time.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{field, Proc, JOYRIDED};

#[test]
fn two_engines_over_the_shm_wire() {
    let mib: u64 =
        std::env::var("JOYRIDE_PEER_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(256);
    let mib = mib.min(64);
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let wire = dir.join(format!("jrsvc-wire-{}", std::process::id()));
    let wire = wire.display().to_string();
    // Engine A from a TOML file, capturing to pcap.
    let toml = std::env::temp_dir().join(format!("jrsvc-a-{}.toml", std::process::id()));
    let pcap = std::env::temp_dir().join(format!("jrsvc-a-{}.pcap", std::process::id()));
    let apps = r#"apps = ["sink:5001", "echo:7", "udp-echo:7"]"#;
    let text = format!("backend = \"shm:{wire},create\"\nip = \"10.97.0.1/24\"\n{apps}\n");
    std::fs::write(&toml, text).unwrap();
    let mut a = Command::new(JOYRIDED);
    a.arg("--config").arg(&toml).arg("--pcap").arg(&pcap);
    let mut a = Proc::spawn("joyrided-a", a);
    a.wait_line("joyrided: ready", Duration::from_secs(20));
    let src = format!("source:10.97.0.1:5001:{mib}M:3");
    let mut b = Command::new(JOYRIDED);
    b.args(["--backend", &format!("shm:{wire}"), "--ip", "10.97.0.2/24"])
        .args(["--app", &src, "--app", "connect-loop:10.97.0.1:7:200"])
        .args(["--app", "udp-client:10.97.0.1:7:1,1473,20000,65507", "--exit-when-done"]);
    let t0 = Instant::now();
    let mut b = Proc::spawn("joyrided-b", b);
    let out = b.wait_ok(Duration::from_secs(120 + 2 * mib));
    eprintln!("shm: {mib} MiB + 200 connections + UDP in {:.2?}", t0.elapsed());
    let sink = a.wait_line("sink:", Duration::from_secs(10));
    let counters = a.terminate();
    let source = out.iter().find(|l| l.starts_with("source:")).expect("source result");
    assert_eq!(field(source, "sha256"), field(&sink, "sha256"), "{source}\n{sink}");
    assert_eq!(field(&sink, "bytes"), (mib << 20).to_string());
    assert!(out.iter().any(|l| l.starts_with("connect-loop:")), "{out:?}");
    assert_eq!(out.iter().filter(|l| l.starts_with("udp-client:")).count(), 4, "{out:?}");
    assert!(counters.contains("engine: rx_frames="), "{counters}");
    // The capture holds every frame A sent and received: a pcap header, then records.
    let cap = std::fs::read(&pcap).unwrap();
    assert_eq!(&cap[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
    let (mut off, mut frames) = (24, 0u64);
    while off + 16 <= cap.len() {
        let caplen = u32::from_le_bytes(cap[off + 8..off + 12].try_into().unwrap()) as usize;
        off += 16 + caplen;
        frames += 1;
    }
    assert_eq!(off, cap.len(), "pcap records tile the file");
    let rx: u64 = field(&counters, "rx_frames").parse().unwrap();
    let tx: u64 = field(&counters, "tx_frames").parse().unwrap();
    assert_eq!(frames, rx + tx, "{counters}");
    let _ = std::fs::remove_file(&pcap);
    let _ = std::fs::remove_file(&toml);
    eprintln!("{source}");
    assert!(!std::path::Path::new(&wire).exists(), "the creator removes the wire file");
}
