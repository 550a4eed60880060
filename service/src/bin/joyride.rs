//! `joyride`: run unmodified programs on the Joyride service, look at its sockets, start and stop
//! it, and see it work end to end (`joyride demo`). See `joyride --help`.
#![allow(clippy::disallowed_methods)] // A CLI: waits with real time on real processes.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use joyride_service::ipc_server::{control_path, DEFAULT_SOCKET};

const ABOUT: &str = "\
Joyride: run unmodified Linux programs on a user-space TCP/IP stack.

The Joyride service (joyrided) owns a NIC and runs IPv4, ARP, ICMP, UDP and TCP for it.
Programs reach it through libjoyride.so, preloaded by `joyride run`: their AF_INET TCP and UDP
sockets are served by joyrided over shared memory; everything else (files, pipes, AF_UNIX,
IPv6) stays with the kernel.";

const EXAMPLES: &str = "\
START HERE (as root; builds nothing, changes nothing outside a temporary namespace):
  sudo joyride demo

EXAMPLES:
  # Start the service on an interface that has no kernel address (or in its own netns):
  sudo joyride up --backend af-packet:veth0 --ip 10.0.0.2/24
  # Run programs on it, unmodified:
  joyride run -- curl -o /tmp/big.bin http://10.0.0.1:8000/big.bin
  joyride run -- python3 -m http.server --bind 0.0.0.0 8000
  # Look at their sockets (like `ss -tanp`) and the service's counters:
  sudo joyride stat
  # Stop it:
  sudo joyride down

ENVIRONMENT:
  JOYRIDE_SOCKET    the service's socket (default /run/joyride/joyride.sock)
  JOYRIDE_LIB       libjoyride.so to preload (default: next to this binary)
  JOYRIDE_FALLBACK  `kernel`: if the service is not running, run on the kernel's stack
  JOYRIDE_SPIN_US   how long a blocking call spins before sleeping (default 50 µs with 4+ CPUs, else 0)";

/// The `joyride` command.
#[derive(Parser, Debug)]
#[command(name = "joyride", version, about = ABOUT, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run a program on Joyride: preloads libjoyride.so and points it at the service
    #[command(after_help = "Example: joyride run -- curl -o /dev/null http://10.0.0.1:8000/")]
    Run {
        /// The service's socket [default: $JOYRIDE_SOCKET, else /run/joyride/joyride.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The program and its arguments
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<OsString>,
    },
    /// List the service's sockets (state, queues, addresses, process) and its counters
    Stat {
        /// The service's socket [default: $JOYRIDE_SOCKET, else /run/joyride/joyride.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Start joyrided in the background (arguments go to joyrided) and wait until it serves
    #[command(after_help = "Example: joyride up --backend af-packet:veth0 --ip 10.0.0.2/24")]
    Up {
        /// The service's socket [default: $JOYRIDE_SOCKET, else /run/joyride/joyride.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Where joyrided's output goes
        #[arg(long, default_value = "/run/joyride/joyrided.log")]
        log: PathBuf,
        /// joyrided's arguments (see `joyrided --help`)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Stop the joyrided started by `joyride up`
    Down {
        /// The service's socket [default: $JOYRIDE_SOCKET, else /run/joyride/joyride.sock]
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Show Joyride working: a namespace with a Linux peer, the service on a veth to it, and an
    /// unmodified program fetching a file through Joyride (root; cleans up after itself)
    Demo {
        /// Size of the file fetched, in MiB
        #[arg(long, default_value_t = 32)]
        mib: u64,
        /// Keep the namespaces and processes for a look around (prints how to clean up)
        #[arg(long)]
        keep: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Run { socket, command } => run(&sock(socket), &command),
        Cmd::Stat { socket } => stat(&sock(socket)).map(|s| {
            print!("{s}");
            0
        }),
        Cmd::Up { socket, log, args } => up(&sock(socket), &log, &args),
        Cmd::Down { socket } => down(&sock(socket)),
        Cmd::Demo { mib, keep } => demo::run(mib, keep),
    };
    match r {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("joyride: {e:#}");
            std::process::exit(1);
        }
    }
}

/// `--socket`, else `JOYRIDE_SOCKET`, else the default path.
fn sock(arg: Option<PathBuf>) -> PathBuf {
    arg.or_else(|| std::env::var_os("JOYRIDE_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// The directory of this executable.
fn exe_dir() -> Option<PathBuf> {
    std::env::current_exe().ok()?.parent().map(Path::to_path_buf)
}

/// `libjoyride.so`: `JOYRIDE_LIB`, else next to this binary (also `../lib/`, `deps/`).
fn find_lib() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("JOYRIDE_LIB") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(std::fs::canonicalize(&p).unwrap_or(p));
        }
        bail!("JOYRIDE_LIB={} does not exist", p.display());
    }
    let dir = exe_dir().context("cannot find the joyride binary's directory")?;
    for c in [
        dir.join("libjoyride.so"),
        dir.join("../lib/libjoyride.so"),
        dir.join("deps/libjoyride.so"),
        dir.join("../libjoyride.so"),
    ] {
        if c.is_file() {
            return Ok(std::fs::canonicalize(&c).unwrap_or(c));
        }
    }
    bail!(
        "libjoyride.so not found next to {} — build it with `cargo build -p joyride-posix` \
         (same profile) or set JOYRIDE_LIB",
        dir.display()
    )
}

/// Whether a service answers on `socket`: a connection to the control socket succeeds, or is
/// refused for want of permission (it is mode 0600: an unprivileged user, such as `postgres`,
/// may use the service but not list every process's sockets), rather than for want of a
/// listener.
fn service_up(socket: &Path) -> bool {
    match UnixStream::connect(control_path(socket)) {
        Ok(_) => true,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    }
}

fn run(socket: &Path, command: &[OsString]) -> Result<i32> {
    let fallback = std::env::var("JOYRIDE_FALLBACK").is_ok_and(|v| v == "kernel");
    let Some((prog, args)) = command.split_first() else { bail!("no command given") };
    let mut cmd = Command::new(prog);
    cmd.args(args);
    if !socket.exists() || !service_up(socket) {
        if fallback {
            eprintln!(
                "joyride: the service is not running at {}; JOYRIDE_FALLBACK=kernel: running on \
                 the kernel's network stack",
                socket.display()
            );
            let e = cmd.exec();
            bail!("cannot run {}: {e}", prog.to_string_lossy());
        }
        eprintln!(
            "joyride: the Joyride service is not running (nothing answers at {}).\n\
             Start it with `sudo joyride up --backend af-packet:IFACE --ip ADDR/PREFIX`, \
             point --socket/JOYRIDE_SOCKET at it, or set JOYRIDE_FALLBACK=kernel to run on \
             the kernel's stack instead.",
            socket.display()
        );
        return Ok(69); // EX_UNAVAILABLE
    }
    let lib = find_lib()?;
    let mut preload = lib.into_os_string();
    if let Some(old) = std::env::var_os("LD_PRELOAD").filter(|o| !o.is_empty()) {
        preload.push(" ");
        preload.push(old);
    }
    cmd.env("LD_PRELOAD", preload).env("JOYRIDE_SOCKET", socket);
    let e = cmd.exec();
    bail!("cannot run {}: {e}", prog.to_string_lossy())
}

/// Asks the service for its socket listing.
fn stat(socket: &Path) -> Result<String> {
    let ctl = control_path(socket);
    let mut c = UnixStream::connect(&ctl).with_context(|| {
        format!("the Joyride service is not running (cannot connect to {})", ctl.display())
    })?;
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut s = String::new();
    c.read_to_string(&mut s).context("reading the service's answer")?;
    Ok(s)
}

fn pid_file(socket: &Path) -> PathBuf {
    let mut s = socket.as_os_str().to_owned();
    s.push(".pid");
    PathBuf::from(s)
}

/// The joyrided next to this binary, else on `PATH`.
fn joyrided_path() -> PathBuf {
    exe_dir()
        .map(|d| d.join("joyrided"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("joyrided"))
}

fn up(socket: &Path, log: &Path, args: &[OsString]) -> Result<i32> {
    if service_up(socket) {
        bail!("a service is already running at {}", socket.display());
    }
    if let Some(d) = socket.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    if let Some(d) = log.parent() {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let out = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = Command::new(joyrided_path());
    cmd.args(args).arg("--socket").arg(socket);
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).process_group(0);
    let mut child = cmd.spawn().context("starting joyrided")?;
    let t0 = Instant::now();
    while !service_up(socket) {
        if let Some(st) = child.try_wait()? {
            let log_text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("joyrided exited ({st}) before serving:\n{log_text}");
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            bail!(
                "joyrided did not open {} within 30 s (log: {})",
                socket.display(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::write(pid_file(socket), format!("{}\n", child.id()))?;
    println!(
        "joyride: service up (pid {}), socket {}, log {}",
        child.id(),
        socket.display(),
        log.display()
    );
    Ok(0)
}

fn down(socket: &Path) -> Result<i32> {
    let pf = pid_file(socket);
    let text = std::fs::read_to_string(&pf).with_context(|| {
        format!("no pid file {} (was it started by `joyride up`?)", pf.display())
    })?;
    let pid: u32 = text.trim().parse().with_context(|| format!("bad pid file {}", pf.display()))?;
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    if !status.success() {
        let _ = std::fs::remove_file(&pf);
        bail!("joyrided (pid {pid}) is not running");
    }
    let t0 = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() && service_up(socket) {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("joyrided (pid {pid}) did not stop within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(&pf);
    println!("joyride: service (pid {pid}) stopped");
    Ok(0)
}

#[path = "joyride/demo.rs"]
mod demo;
