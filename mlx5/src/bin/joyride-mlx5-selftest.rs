//! `joyride-mlx5-selftest`: a self-test a ConnectX owner can run, and whose output is what a
//! bug report against `joyride-mlx5` needs.
//!
//! It checks the VFIO preconditions, brings the HCA up, reports firmware, capabilities, MAC and
//! link, sends self-addressed frames and waits for them to come back (the vport's local
//! loopback), prints counters, tears down and prints a report block: the HCA info, every
//! firmware command with its status and syndrome, and PASS/WARN/FAIL per step.
//!
//! `--fake` runs the same sequence against the crate's fake HCA model (built with the `fake`
//! feature), so CI exercises this code path.
#![allow(clippy::disallowed_methods)] // A CLI: it times bring-up and waits for looped-back frames.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use joyride_drivers::{Batch, MacAddr, Nic, Pool, PoolConfig, QueueId};
use joyride_mlx5::{BringUpFailure, CmdRecord, HcaInfo, Mlx5, Mlx5Config};

const HELP: &str = "\
joyride-mlx5-selftest — check that Joyride's ConnectX (mlx5) driver works on your card

USAGE:
    joyride-mlx5-selftest [--frames N] [--wait-ms MS] BDF
    joyride-mlx5-selftest --fake
    joyride-mlx5-selftest --help

joyride-mlx5 talks to the card's firmware directly (no kernel driver, no rdma-core) and has,
so far, only run against a software model. This command tells you, and us, whether it works
on real hardware. It needs the card's PCI function bound to vfio-pci:

    lspci -D -d 15b3:                    # find the BDF, e.g. 0000:5e:00.0
    sudo joyrided vfio-bind 0000:5e:00.0 # or: echo vfio-pci > .../driver_override, etc.
    sudo joyride-mlx5-selftest 0000:5e:00.0

The interface disappears from the kernel while bound (use a port you are not logged in
through). Give it back afterwards with `joyrided vfio-unbind BDF`.

STEPS (each PASS, WARN or FAIL):
    vfio       the device exists, has an IOMMU group, is bound to vfio-pci, /dev/vfio/GROUP exists
    open       VFIO opens it and it is a ConnectX-4/5/6 (15b3:1013/1015/1017/1019/101b/101d)
    bring-up   the whole PRM start-up: ENABLE_HCA ... flow table root (firmware, caps, MAC)
    link       QUERY_VPORT_STATE (down is a WARN: loopback does not need a cable)
    loopback   N frames to our own MAC, EtherType 0x88b5 (IEEE local experimental), sent
               through the SQ; the HCA's embedded switch delivers a frame addressed to the
               sending vport's own MAC back to that vport (\"local loopback\"), where our
               flow-table entry steers it to the TIR and RQ. Frames must come back byte-exact.
               Sent but not received is a WARN: firmware may disable local loopback for the
               vport (NIC vport context disable_uc_local_lb), which this driver does not change.
    teardown   every object destroyed, TEARDOWN_HCA, all pages reclaimed, DISABLE_HCA

Then a block between BEGIN/END lines: paste it into your bug report as it is.

OPTIONS:
    --frames N     loopback frames (1..=64, default 32)
    --wait-ms MS   how long to wait for them to come back (default 500)
    --fake         run against the fake HCA model instead of a card (for CI)
    -h, --help     this text

EXIT STATUS: 0 when no step FAILed, 1 when one did, 2 for a usage error.
";

/// Outcome of one step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    fn word(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// The report being built.
#[derive(Default)]
struct Report {
    steps: Vec<(&'static str, Verdict, String)>,
    target: String,
    pci: String,
    info: Option<HcaInfo>,
    mac: Option<MacAddr>,
    fw_only: Option<joyride_mlx5::FwInfo>,
    log: Vec<CmdRecord>,
    counters: String,
}

impl Report {
    fn step(&mut self, name: &'static str, v: Verdict, detail: impl Into<String>) {
        let detail = detail.into();
        println!("[{:<4}] {name:<9} {detail}", v.word());
        self.steps.push((name, v, detail));
    }

    fn failed(&self) -> bool {
        self.steps.iter().any(|s| s.1 == Verdict::Fail)
    }

    fn print_block(&self) {
        let mut s = String::new();
        let _ = writeln!(s, "----- BEGIN JOYRIDE MLX5 SELFTEST REPORT -----");
        let _ = writeln!(s, "joyride-mlx5 {}", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(s, "target: {}", self.target);
        let _ = writeln!(s, "host: {} {}", std::env::consts::OS, std::env::consts::ARCH);
        if let Ok(k) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
            let _ = writeln!(s, "kernel: {}", k.trim());
        }
        if !self.pci.is_empty() {
            let _ = writeln!(s, "pci: {}", self.pci);
        }
        if let Some(i) = self.info {
            let (a, b, c) = i.fw.fw_rev;
            let _ = writeln!(
                s,
                "firmware: {a}.{b}.{c}  cmdif_rev {}  log_cmdq_size {}  log_cmdq_stride {}",
                i.fw.cmdif_rev, i.fw.log_cmdq_size, i.fw.log_cmdq_stride
            );
            let _ = writeln!(
                s,
                "hca: issi {}  csum {}  max_lso_log {}  resd_lkey 0x{:x}  vport_mtu {}",
                i.issi, i.csum, i.max_lso_log, i.resd_lkey, i.vport_mtu
            );
        } else if let Some(fw) = self.fw_only {
            let (a, b, c) = fw.fw_rev;
            let _ = writeln!(s, "firmware: {a}.{b}.{c}  cmdif_rev {}", fw.cmdif_rev);
        }
        if let Some(m) = self.mac {
            let _ = writeln!(s, "mac: {}", fmt_mac(m));
        }
        let _ = writeln!(s, "steps:");
        for (name, v, d) in &self.steps {
            let _ = writeln!(s, "  {:<4} {name:<9} {d}", v.word());
        }
        if !self.counters.is_empty() {
            let _ = writeln!(s, "counters: {}", self.counters);
        }
        let errors = self.log.iter().filter(|r| r.result.is_err()).count();
        let _ = writeln!(s, "commands: {} issued, {errors} failed", self.log.len());
        for (i, r) in self.log.iter().enumerate() {
            let _ = writeln!(s, "  {i:3} {r}");
        }
        let overall = if self.failed() { "FAIL" } else { "PASS" };
        let _ = writeln!(s, "result: {overall}");
        let _ = writeln!(s, "----- END JOYRIDE MLX5 SELFTEST REPORT -----");
        print!("{s}");
    }
}

fn fmt_mac(m: MacAddr) -> String {
    let b = m.0;
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
}

struct Args {
    bdf: Option<String>,
    fake: bool,
    frames: usize,
    wait: Duration,
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args { bdf: None, fake: false, frames: 32, wait: Duration::from_millis(500) };
    let mut it = std::env::args().skip(1);
    while let Some(x) = it.next() {
        match x.as_str() {
            "-h" | "--help" => return Ok(None),
            "--fake" => a.fake = true,
            "--frames" => {
                let v = it.next().ok_or("--frames needs a number")?;
                a.frames = v.parse().map_err(|_| format!("--frames: not a number: {v}"))?;
                if !(1..=64).contains(&a.frames) {
                    return Err("--frames must be 1..=64".into());
                }
            }
            "--wait-ms" => {
                let v = it.next().ok_or("--wait-ms needs a number")?;
                let ms: u64 = v.parse().map_err(|_| format!("--wait-ms: not a number: {v}"))?;
                a.wait = Duration::from_millis(ms);
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => {
                if a.bdf.replace(s.to_string()).is_some() {
                    return Err("one BDF only".into());
                }
            }
        }
    }
    if a.fake == a.bdf.is_some() {
        return Err("give either a PCI address (BDF) or --fake".into());
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("joyride-mlx5-selftest: {e}\n(see --help)");
            return ExitCode::from(2);
        }
    };
    let mut r = Report::default();
    let failed = if args.fake { run_fake(&args, &mut r) } else { run_real(&args, &mut r) };
    r.print_block();
    if failed || r.failed() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn pool() -> Result<Pool, String> {
    // DMA needs pinned memory: mlock (best effort; VFIO pins the pages itself when it maps).
    Pool::new(PoolConfig { count: 1024, hugepages: true, mlock: true, ..PoolConfig::default() })
        .map_err(|e| format!("packet buffer pool: {e}"))
}

fn cfg() -> Mlx5Config {
    Mlx5Config { queues: 1, log_sq_size: 8, log_rq_size: 8, ..Mlx5Config::default() }
}

/// The real card: preconditions, then the common sequence. Returns whether it failed early.
fn run_real(a: &Args, r: &mut Report) -> bool {
    let raw = a.bdf.as_deref().unwrap_or_default();
    let bdf = match joyride_vfio::bind::normalize_bdf(raw) {
        Ok(b) => b,
        Err(e) => {
            r.target = raw.to_string();
            r.step("vfio", Verdict::Fail, e.to_string());
            return true;
        }
    };
    r.target = bdf.clone();
    match joyride_vfio::bind::check_vfio(&bdf) {
        Ok(group) => {
            r.step("vfio", Verdict::Pass, format!("bound to vfio-pci, IOMMU group {group}"))
        }
        Err(e) => {
            r.step("vfio", Verdict::Fail, e.to_string());
            return true;
        }
    }
    if let Some(l) = memlock_limit() {
        println!("       (max locked memory: {l})");
    }
    let dev = match joyride_vfio::Device::open(
        std::sync::Arc::new(joyride_vfio::RealSys),
        &bdf,
        joyride_vfio::IovaSpace::default(),
    ) {
        Ok(d) => d,
        Err(e) => {
            r.step(
                "open",
                Verdict::Fail,
                format!("{e} (root? another process holding the group?)"),
            );
            return true;
        }
    };
    sequence(dev, a, r, None)
}

/// The fake HCA: the same sequence against the model, with its loopback switched on (what a
/// real vport does by default when local loopback is allowed).
#[cfg(feature = "fake")]
fn run_fake(a: &Args, r: &mut Report) -> bool {
    let fake = joyride_mlx5::fake::FakeHca::new();
    {
        let mut m = fake.m();
        m.loopback = true;
        m.link_up = true;
    }
    r.target = format!("fake HCA model ({})", joyride_mlx5::fake::BDF);
    r.step("vfio", Verdict::Pass, "fake VFIO system (no preconditions to check)");
    sequence(fake.device(), a, r, Some(&|| fake.m().no_objects()))
}

#[cfg(not(feature = "fake"))]
fn run_fake(_: &Args, r: &mut Report) -> bool {
    r.target = "fake HCA model".into();
    r.step(
        "vfio",
        Verdict::Fail,
        "built without the `fake` feature (cargo build -p joyride-mlx5 --features fake)",
    );
    true
}

/// Open, bring up, link, loopback, counters, teardown: the same for the card and the model.
///
/// `model_clean`, for the fake only, says whether the model holds no objects after teardown.
fn sequence(
    dev: joyride_vfio::Device,
    a: &Args,
    r: &mut Report,
    model_clean: Option<&dyn Fn() -> bool>,
) -> bool {
    match dev.pci_ids() {
        Ok((v, d)) => {
            let name = joyride_mlx5::supported(v, d);
            r.pci = format!("{v:04x}:{d:04x} {}", name.unwrap_or("(not a supported ConnectX)"));
            if name.is_none() {
                r.step(
                    "open",
                    Verdict::Fail,
                    format!("{v:04x}:{d:04x} is not a ConnectX-4/5/6 PF"),
                );
                return true;
            }
            r.step("open", Verdict::Pass, r.pci.clone());
        }
        Err(e) => {
            r.step("open", Verdict::Fail, format!("reading PCI ids: {e}"));
            return true;
        }
    }
    let pool = match pool() {
        Ok(p) => p,
        Err(e) => {
            r.step("bring-up", Verdict::Fail, e);
            return true;
        }
    };
    let t = Instant::now();
    let mut nic = match Mlx5::try_bring_up(dev, pool.clone(), cfg()) {
        Ok(n) => n,
        Err(BringUpFailure { error, fw, log }) => {
            r.fw_only = fw;
            r.log = log;
            r.step("bring-up", Verdict::Fail, error.to_string());
            return true;
        }
    };
    let info = nic.info();
    let caps = nic.capabilities();
    r.info = Some(info);
    r.mac = Some(caps.mac);
    let (x, y, z) = info.fw.fw_rev;
    r.step(
        "bring-up",
        Verdict::Pass,
        format!(
            "{} ms; firmware {x}.{y}.{z}, MAC {}, MTU {}, csum offload {}, LSO up to 2^{} bytes, {} commands",
            t.elapsed().as_millis(),
            fmt_mac(caps.mac),
            caps.mtu,
            info.csum,
            info.max_lso_log,
            nic.command_log().len()
        ),
    );
    let link = nic.link();
    if link.up {
        r.step("link", Verdict::Pass, "up (vport state)");
    } else {
        r.step("link", Verdict::Warn, "down (no cable or peer?); loopback goes on without it");
    }
    loopback(&mut nic, &pool, a, r);
    let c = nic.counters();
    r.counters = format!(
        "rx_packets {} rx_bytes {} rx_errors {} rx_drops {} tx_packets {} tx_bytes {} tx_errors {} tx_drops {}",
        c.rx_packets, c.rx_bytes, c.rx_errors, c.rx_drops, c.tx_packets, c.tx_bytes, c.tx_errors, c.tx_drops
    );
    println!("       counters: {}", r.counters);
    let td = nic.teardown();
    let left = nic.pages_given();
    r.log = nic.command_records();
    match (td, left) {
        (Ok(()), 0) => r.step("teardown", Verdict::Pass, "all objects destroyed, all pages back"),
        (Ok(()), n) => {
            r.step("teardown", Verdict::Fail, format!("{n} pages still held by the HCA"))
        }
        (Err(e), _) => r.step("teardown", Verdict::Fail, e.to_string()),
    }
    if model_clean.is_some_and(|clean| !clean()) {
        r.step("model", Verdict::Fail, "the model still holds objects after teardown");
    }
    drop(nic);
    false
}

/// A self-addressed test frame: our MAC to our MAC, EtherType 0x88b5, a numbered payload.
fn test_frame(mac: MacAddr, i: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.extend_from_slice(b"joyride-mlx5-selftest");
    f.extend_from_slice(&(i as u32).to_be_bytes());
    f.extend((0..64 + i).map(|k| (k ^ i.wrapping_mul(31)) as u8));
    f
}

fn loopback(nic: &mut Mlx5, pool: &Pool, a: &Args, r: &mut Report) {
    let mac = nic.capabilities().mac;
    let q = QueueId(0);
    let frames: Vec<Vec<u8>> = (0..a.frames).map(|i| test_frame(mac, i)).collect();
    let mut b = Batch::new(a.frames);
    for f in &frames {
        let Some(buf) = pool.alloc_copy(f) else {
            r.step("loopback", Verdict::Fail, "packet pool empty");
            return;
        };
        let _ = b.push(buf);
    }
    let sent = match nic.tx_burst(q, &mut b) {
        Ok(n) => n,
        Err(e) => {
            r.step("loopback", Verdict::Fail, format!("tx_burst: {e}"));
            return;
        }
    };
    let mut got: Vec<Vec<u8>> = Vec::new();
    let mut out = Batch::new(64);
    let start = Instant::now();
    let mut others = 0;
    while got.len() < sent && start.elapsed() < a.wait {
        match nic.rx_burst(q, &mut out) {
            Ok(0) => std::thread::sleep(Duration::from_micros(200)),
            Ok(_) => {
                for p in out.drain() {
                    if p.data().get(12..14) == Some(&[0x88, 0xb5]) {
                        got.push(p.data().to_vec());
                    } else {
                        others += 1; // traffic from the wire (broadcasts)
                    }
                }
            }
            Err(e) => {
                r.step("loopback", Verdict::Fail, format!("rx_burst: {e}"));
                return;
            }
        }
    }
    // Reclaim the send completions (a tx_burst with nothing to send polls the send CQ).
    let _ = nic.tx_burst(q, &mut Batch::new(1));
    let c = nic.counters();
    let ms = start.elapsed().as_millis();
    let note = if others > 0 { format!(", {others} other frames seen") } else { String::new() };
    if sent != frames.len() || c.tx_errors > 0 {
        let d = format!("sent {sent}/{}, tx_errors {}", frames.len(), c.tx_errors);
        r.step("loopback", Verdict::Fail, d);
    } else if got.is_empty() {
        let d = format!(
            "{sent} sent, none came back in {ms} ms (local loopback disabled for the vport?){note}"
        );
        r.step("loopback", Verdict::Warn, d);
    } else if got == frames {
        r.step(
            "loopback",
            Verdict::Pass,
            format!("{sent} frames back byte-exact in {ms} ms{note}"),
        );
    } else {
        let bad = got.iter().zip(&frames).position(|(g, f)| g != f);
        let d =
            format!("{sent} sent, {} came back, first mismatch at frame {bad:?}{note}", got.len());
        r.step("loopback", Verdict::Fail, d);
    }
}

/// `Max locked memory` from /proc/self/limits (VFIO pins what it maps).
fn memlock_limit() -> Option<String> {
    let l = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = l.lines().find(|x| x.starts_with("Max locked memory"))?;
    Some(
        line.trim_start_matches("Max locked memory")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}
