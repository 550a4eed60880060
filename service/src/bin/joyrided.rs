//! `joyrided`: the Joyride network service on one NIC (see `joyrided --help`).

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use joyride_base::{Duration, Instant};
use joyride_service::apps::{App, AppOutput, AppSpec};
use joyride_service::backend::{make_pool, open_backend, ObservedFaults};
use joyride_service::config::{BackendSpec, FaultSpec, FileConfig, IpCidr, BACKEND_FORMS};
use joyride_service::engine::{report, Direction};
use joyride_service::ipc_server::{IpcServer, DEFAULT_SOCKET};
use joyride_service::pcap::PcapWriter;
use joyride_service::{Clock, Engine, EngineConfig};
use joyride_tcp::State;

const EXAMPLES: &str = "\
EXAMPLES:
  # Serve TCP and UDP echo on port 7 over an existing interface (needs root / CAP_NET_RAW;
  # give the interface no kernel address, or run it in its own network namespace):
  joyrided --backend af-packet:veth0 --ip 10.0.0.2/24 --app echo:7 --app udp-echo:7

  # The same from a config file, capturing every frame to a pcap file:
  joyrided --config joyride.toml --pcap /tmp/joyride.pcap

  # Receive one TCP connection on port 5001, print its byte count and SHA-256, then exit:
  joyrided --backend af-packet:veth0 --ip 10.0.0.2/24 --app sink:5001 --exit-when-done

  # Send 64 MiB to a server at 10.0.0.1:5001 through 5 % loss each way:
  joyrided --backend af-packet:veth0 --ip 10.0.0.2/24 --fault loss=0.05,seed=7 \\
           --app source:10.0.0.1:5001:64M --exit-when-done

  # Two engines joined by the shared-memory wire (start the creator first):
  joyrided --backend shm:/dev/shm/jr,create --ip 10.1.0.1/24 --app sink:5001
  joyrided --backend shm:/dev/shm/jr --ip 10.1.0.2/24 --app source:10.1.0.1:5001:1G --exit-when-done

  # Drive a PCI NIC from user space through VFIO (the driver is picked by PCI ID; `,bind`
  # hands the device to vfio-pci first; needs root, the IOMMU on and vfio-pci loaded):
  joyrided --backend vfio:0000:00:03.0,bind --ip 10.0.0.2/24 --app echo:7
  joyrided vfio-bind 0000:00:03.0      # or bind it beforehand ...
  joyrided vfio-unbind 0000:00:03.0    # ... and give it back to its kernel driver afterwards

  # Fetch a file over HTTP/1.0:
  joyrided --backend tap:jr0 --ip 10.0.0.2/24 --gateway 10.0.0.1 \\
           --app http-get:10.0.0.1:8000:/big.bin:/tmp/big.bin --exit-when-done

APPS (--app, repeatable):
  echo:PORT                      TCP echo server
  sink:PORT[:CONNS]              read everything; print bytes + sha256 per connection
  source:IP:PORT:BYTES[:SEED]    connect, send BYTES (K/M/G suffixes) seeded bytes, print sha256
  http-get:IP:PORT:/PATH:FILE    HTTP/1.0 GET, body to FILE, print bytes + sha256
  udp-echo:PORT                  UDP echo server
  udp-client:IP:PORT:SIZES       send one datagram per size (comma list), check each echo
  connect-loop:IP:PORT:N         N short connections in a row to an echo server

PCI NICS (vfio:BDF): virtio-net 1af4:1041 (joyride_virtio); Intel 82599 8086:10fb etc. and
82576 8086:10c9 etc. (joyride_ixgbe); ConnectX-4/5/6 15b3:1013..101d (joyride_mlx5).

SIGNALS: SIGUSR1 prints the counters; SIGINT/SIGTERM exit cleanly (counters printed).
LOGS: RUST_LOG=debug (tracing env filter), on stderr; app results go to stdout.";

/// The Joyride user-space TCP/IP service on one NIC.
#[derive(Parser, Debug)]
#[command(
    name = "joyrided",
    version,
    about = "Joyride: a user-space TCP/IP service that owns one NIC and runs IPv4, ARP, ICMP, UDP and TCP for it",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// NIC backend: `af-packet:IFACE` | `tap:NAME` | `shm:PATH[,create]` | `vfio:BDF[,bind]`
    #[arg(long)]
    backend: Option<String>,
    /// Our address and prefix, e.g. 10.0.0.2/24
    #[arg(long)]
    ip: Option<String>,
    /// Default gateway (must be on-link)
    #[arg(long)]
    gateway: Option<Ipv4Addr>,
    /// IP MTU (default: the interface's; shm wires: 1500)
    #[arg(long)]
    mtu: Option<u16>,
    /// TOML file with the same fields (backend, ip, gateway, mtu, pcap, fault, apps,
    /// exit_when_done, spin_us); the command line wins
    #[arg(long)]
    config: Option<PathBuf>,
    /// Write every frame sent and received to this pcap file
    #[arg(long)]
    pcap: Option<PathBuf>,
    /// Inject faults: loss=P,dup=P,reorder=P,corrupt=P,seed=N[,dir=both|rx|tx]
    #[arg(long)]
    fault: Option<String>,
    /// Run a built-in app (repeatable; see APPS below)
    #[arg(long = "app")]
    apps: Vec<String>,
    /// Exit once every app is done (after letting connections close)
    #[arg(long)]
    exit_when_done: bool,
    /// Busy-poll budget after the last work, in microseconds, before sleeping [default: 200 with
    /// 4 or more CPUs, else 0: on a small machine a spinning service takes the CPU its
    /// applications need]
    #[arg(long)]
    spin_us: Option<u64>,
    /// Seconds to keep running after the apps are done, for connections to finish closing
    #[arg(long, default_value_t = 2.0)]
    linger_secs: f64,
    /// Unix socket on which applications (`joyride run`, libjoyride.so) reach the service;
    /// default /run/joyride/joyride.sock (skipped with a warning if that one is unusable)
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Serve no applications (built-in apps only)
    #[arg(long, conflicts_with = "socket")]
    no_socket: bool,
}

/// Device set-up commands (instead of running the service).
#[derive(Subcommand, Debug)]
enum Cmd {
    /// Bind a PCI device to vfio-pci (driver_override, unbind, drivers_probe) so that
    /// `--backend vfio:BDF` can drive it; says what is missing (IOMMU, vfio-pci, /dev/vfio)
    VfioBind {
        /// PCI address, e.g. 0000:00:03.0
        bdf: String,
    },
    /// Give a PCI device back to its kernel driver (unbind from vfio-pci, clear
    /// driver_override, reprobe); refuses while a process has it open through VFIO
    VfioUnbind {
        /// PCI address, e.g. 0000:00:03.0
        bdf: String,
    },
}

/// Runs a device set-up command; its result line goes to stdout.
fn device_command(cmd: &Cmd) -> Result<i32> {
    use joyride_vfio::bind;
    match cmd {
        Cmd::VfioBind { bdf } => {
            let b = bind::bind_to_vfio(bdf)?;
            let was = match b.previous.as_deref() {
                Some("vfio-pci") => "already bound".to_string(),
                Some(d) => format!("was {d}"),
                None => "had no driver".to_string(),
            };
            println!(
                "{}: bound to vfio-pci ({was}); IOMMU group {} (/dev/vfio/{})",
                b.bdf, b.group, b.group
            );
        }
        Cmd::VfioUnbind { bdf } => {
            let bdf = bind::normalize_bdf(bdf)?;
            let before = bind::Sysfs::default().driver(&bdf)?;
            let now = bind::restore(&bdf)?;
            let name = |d: Option<String>| d.unwrap_or_else(|| "none".into());
            println!("{bdf}: unbound from {}; driver now {}", name(before), name(now));
        }
    }
    Ok(0)
}

/// The merged configuration.
struct Settings {
    backend: BackendSpec,
    ip: IpCidr,
    gateway: Option<Ipv4Addr>,
    mtu: Option<u16>,
    pcap: Option<PathBuf>,
    fault: Option<FaultSpec>,
    apps: Vec<AppSpec>,
    exit_when_done: bool,
    spin_us: Option<u64>,
}

fn settings(cli: Cli) -> Result<Settings> {
    let file = match &cli.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading config file {}", p.display()))?;
            FileConfig::parse(&text).with_context(|| format!("config file {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let Some(backend) = cli.backend.or(file.backend) else {
        bail!("no backend: pass --backend {BACKEND_FORMS}")
    };
    let Some(ip) = cli.ip.or(file.ip) else { bail!("no address: pass --ip ADDR/PREFIX") };
    let fault = cli.fault.or(file.fault);
    let apps = if cli.apps.is_empty() { file.apps } else { cli.apps };
    Ok(Settings {
        backend: backend.parse()?,
        ip: ip.parse()?,
        gateway: cli.gateway.or(file.gateway),
        mtu: cli.mtu.or(file.mtu),
        pcap: cli.pcap.or(file.pcap),
        fault: fault.map(|f| f.parse()).transpose()?,
        apps: apps.iter().map(|a| a.parse()).collect::<Result<_, _>>()?,
        exit_when_done: cli.exit_when_done || file.exit_when_done.unwrap_or(false),
        spin_us: cli.spin_us.or(file.spin_us),
    })
}

fn random_bytes() -> [u8; 24] {
    let mut b = [0u8; 24];
    let ok = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b)).is_ok();
    if !ok {
        let s = joyride_service::clock::clock_seed().to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = s[i % 8].wrapping_add(i as u8);
        }
    }
    b
}

/// Whether no connection is still closing (only listeners, TIME-WAIT and closed remain).
fn quiescent(engine: &mut Engine) -> bool {
    engine
        .tcp()
        .connections()
        .all(|c| matches!(c.state, State::Listen | State::TimeWait | State::Closed))
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("joyrided: error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    if let Some(cmd) = &cli.cmd {
        return device_command(cmd);
    }
    let linger = Duration::from_secs_f64(cli.linger_secs.max(0.0));
    let apps_socket = (!cli.no_socket).then(|| (cli.socket.is_some(), cli.socket.clone()));
    let s = settings(cli)?;
    let term = Arc::new(AtomicBool::new(false));
    let usr1 = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, term.clone()).context("installing signal handlers")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, usr1.clone())
        .context("installing signal handlers")?;

    let clock = Clock::new();
    let mtu_hint = s.mtu.unwrap_or(1500);
    let pool = make_pool(mtu_hint, 8192)?;
    let nic = open_backend(&s.backend, pool.clone(), mtu_hint, std::time::Duration::from_secs(10))?;
    let mut fault_stats = None;
    let nic: Box<dyn joyride_drivers::Nic> = match &s.fault {
        Some(f) => {
            let (n, stats) = ObservedFaults::wrap(nic, f, pool.clone(), 32);
            fault_stats = Some(stats);
            Box::new(n)
        }
        None => nic,
    };
    let caps = nic.capabilities();
    let rnd = random_bytes();
    let mut cfg = EngineConfig::new(s.ip.addr, s.ip.prefix_len);
    cfg.gateway = s.gateway;
    cfg.mtu = s.mtu;
    cfg.tcp_secret.copy_from_slice(&rnd[..16]);
    cfg.host.seed = u64::from_le_bytes(rnd[16..24].try_into().unwrap_or_default());
    cfg.spin = Duration::from_micros(s.spin_us.unwrap_or_else(default_spin_us));
    let mut engine = Engine::new(nic, pool, cfg, clock.now())
        .with_context(|| format!("configuring {}/{}", s.ip.addr, s.ip.prefix_len))?;

    let pcap = match &s.pcap {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            let w = PcapWriter::new(BufWriter::with_capacity(1 << 20, f), 65535)?;
            let w = Rc::new(RefCell::new(w));
            let hook = w.clone();
            engine.set_capture(Some(Box::new(move |_dir: Direction, t: Instant, frame: &[u8]| {
                if let Err(e) = hook.borrow_mut().write_frame(clock.unix_nanos(t), frame) {
                    tracing::warn!(error = %e, "pcap write failed");
                }
            })));
            Some(w)
        }
        None => None,
    };

    let mut apps: Vec<Box<dyn App>> = Vec::new();
    for spec in &s.apps {
        apps.push(spec.start(&mut engine).map_err(anyhow::Error::msg).context(spec.to_string())?);
    }
    tracing::info!(
        backend = %s.backend,
        ip = %s.ip.addr,
        prefix = s.ip.prefix_len,
        mac = %caps.mac,
        mtu = engine.host_ref().interface().mtu(),
        apps = s.apps.len(),
        "joyrided up"
    );
    println!(
        "joyrided: ready ip={}/{} mac={} mtu={}",
        s.ip.addr,
        s.ip.prefix_len,
        caps.mac,
        engine.host_ref().interface().mtu()
    );

    let mut ipc = match apps_socket {
        None => None,
        Some((explicit, path)) => {
            let path = path.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
            match IpcServer::bind(&path, IpcServer::default_region()) {
                Ok(srv) => {
                    println!("joyrided: serving applications on {}", path.display());
                    Some(srv)
                }
                Err(e) if explicit => {
                    return Err(e).with_context(|| format!("listening on {}", path.display()))
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "not serving applications");
                    None
                }
            }
        }
    };

    let mut out = AppOutput::default();
    let mut failed = false;
    let mut done_at: Option<Instant> = None;
    loop {
        if term.load(Ordering::Relaxed) {
            tracing::info!("signal: exiting");
            break;
        }
        if usr1.swap(false, Ordering::Relaxed) {
            eprintln!("{}", counters(&engine, &fault_stats));
        }
        let now = clock.now();
        let mut work = engine.poll(now);
        if let Some(srv) = ipc.as_mut() {
            work |= srv.poll(&mut engine, now);
        }
        for app in apps.iter_mut() {
            if app.done() {
                continue;
            }
            work |= app.poll(&mut engine, &mut out);
            if let Some(why) = app.failure() {
                if !failed {
                    eprintln!("joyrided: app failed: {why}");
                }
                failed = true;
            }
        }
        for line in out.lines.drain(..) {
            println!("{line}");
        }
        if work {
            engine.mark_busy(now);
        }
        if s.exit_when_done && (failed || apps.iter().all(|a| a.done())) {
            let since = *done_at.get_or_insert(now);
            if quiescent(&mut engine) || now.saturating_duration_since(since) >= linger {
                engine.flush(clock.now());
                break;
            }
        }
        if work {
            // Sleep only after a pass that found nothing to do: what this pass did (an app's
            // connect or send, a command) may have made work for the next one.
            continue;
        }
        let wake = apps.iter().filter(|a| !a.done()).filter_map(|a| a.wake_at()).min();
        let wake = match done_at {
            Some(t) => Some(wake.map_or(t + linger, |w| w.min(t + linger))),
            None => wake,
        };
        match ipc.as_mut() {
            Some(srv) => srv.idle_wait(&mut engine, &clock, wake),
            None => engine.idle_wait(&clock, wake),
        }
    }
    if let Some(srv) = ipc.as_mut() {
        let text = srv.stat_text(&mut engine);
        eprintln!("{}", text.lines().find(|l| l.starts_with("apps:")).unwrap_or(""));
    }
    if let Some(w) = pcap {
        w.borrow_mut().flush().context("flushing the pcap file")?;
    }
    eprintln!("{}", counters(&engine, &fault_stats));
    Ok(if failed { 1 } else { 0 })
}

fn counters(
    engine: &Engine,
    faults: &Option<Rc<std::cell::Cell<joyride_drivers::fault::FaultStats>>>,
) -> String {
    let mut s = report(engine);
    if let Some(f) = faults {
        let f = f.get();
        s.push_str(&format!(
            "\nfaults: rx seen={} dropped={} dup={} reordered={} corrupted={}; \
             tx seen={} dropped={} dup={} reordered={} corrupted={}",
            f.rx.seen,
            f.rx.dropped,
            f.rx.duplicated,
            f.rx.reordered,
            f.rx.corrupted,
            f.tx.seen,
            f.tx.dropped,
            f.tx.duplicated,
            f.tx.reordered,
            f.tx.corrupted
        ));
    }
    s
}

/// The busy-poll budget when none is configured: 200 µs with 4 or more usable CPUs, else none.
/// Measured on a 2-vCPU VM (bench/README.md, app-throughput.sh): with the service and both
/// applications spinning, redis-benchmark ran at 40k requests/s; with nobody spinning, 100k.
fn default_spin_us() -> u64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus >= 4 {
        200
    } else {
        0
    }
}
