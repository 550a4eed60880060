//! `joyride demo`: Joyride end to end on any Linux box, in two throw-away network namespaces.
//!
//! ```text
//!  namespace jrdemo-N-l (Linux)          namespace jrdemo-N-j
//!  python3 -m http.server  10.77.0.1 ══veth══ joyrided (AF_PACKET) 10.77.0.2
//!                                                 ▲ Unix socket + shared memory
//!                                  curl (unmodified, under `joyride run`, in the root namespace)
//! ```
//!
//! The program runs in the *root* namespace, which has no route to 10.77.0.0/24: the download
//! can only succeed through Joyride.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use joyride_drivers::netns::{self, NetNs};
use sha2::{Digest, Sha256};

const LINUX_IP: &str = "10.77.0.1";
const JOY_IP: &str = "10.77.0.2";
const PORT: &str = "8000";

/// Kills and reaps a child on drop.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn step(s: &str) {
    println!("==> {s}");
}

fn sha256_file(p: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        n += k as u64;
        h.update(&buf[..k]);
    }
    Ok((n, format!("{:x}", h.finalize())))
}

/// Writes `mib` MiB of pseudo-random bytes (xorshift, seeded by the pid).
fn make_file(p: &Path, mib: u64) -> Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(p)?);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id());
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for chunk in block.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&block)?;
    }
    f.flush()?;
    Ok(())
}

/// Waits for a line containing `needle` on `child`'s stdout (the rest is drained in the
/// background).
fn wait_stdout(child: &mut Child, needle: &str, what: &str, timeout: Duration) -> Result<()> {
    let out = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let t0 = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) if l.contains(needle) => {
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return Ok(());
            }
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                bail!("{what} exited before it was ready")
            }
            Err(_) if t0.elapsed() > timeout => bail!("{what} not ready within {timeout:?}"),
            Err(_) => {}
        }
    }
}

fn wait_for(p: &Path, what: &str) -> Result<()> {
    let t0 = Instant::now();
    while !p.exists() {
        if t0.elapsed() > Duration::from_secs(20) {
            bail!("{what} did not appear ({})", p.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

pub(crate) fn run(mib: u64, keep: bool) -> Result<i32> {
    if let Some(why) = netns::skip_reason() {
        bail!("`joyride demo` {why} (it creates network namespaces): run it with sudo");
    }
    if !have("python3") {
        bail!("`joyride demo` needs python3 (for the Linux-side HTTP server)");
    }
    let me = std::env::current_exe()?;
    let dir = me.parent().context("no exe dir")?;
    let joyrided = dir.join("joyrided");
    if !joyrided.is_file() {
        bail!("joyrided not found next to {} — build with `cargo build --release -p joyride-service -p joyride-posix`", me.display());
    }
    super::find_lib()?;
    let pid = std::process::id();
    let work = std::env::temp_dir().join(format!("joyride-demo-{pid}"));
    std::fs::create_dir_all(&work)?;
    let result = demo(&me, &joyrided, &work, mib, keep);
    if !keep {
        let _ = std::fs::remove_dir_all(&work);
    }
    result
}

fn demo(me: &Path, joyrided: &Path, work: &Path, mib: u64, keep: bool) -> Result<i32> {
    let pid = std::process::id();
    step(&format!("creating namespaces jrdemo-{pid}-l (Linux peer) and jrdemo-{pid}-j (Joyride)"));
    let l = NetNs::create(&format!("jrdemo-{pid}-l"))?;
    let j = NetNs::create(&format!("jrdemo-{pid}-j"))?;
    let (jif, lif) = (format!("jrd{pid}j"), format!("jrd{pid}l"));
    let st = Command::new("ip")
        .args(["link", "add", &jif, "netns", j.name(), "type", "veth", "peer", "name", &lif])
        .args(["netns", l.name()])
        .status()?;
    if !st.success() {
        bail!("ip link add (veth) failed");
    }
    for ns in [&j, &l] {
        let _ = Command::new("ip")
            .args(["netns", "exec", ns.name(), "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])
            .status();
    }
    j.ip(&["link", "set", &jif, "up"])?;
    l.ip(&["addr", "add", &format!("{LINUX_IP}/24"), "dev", &lif])?;
    // AF_PACKET sees frames as the veth carries them: no GSO super-frames from Linux.
    let ethtool = Command::new("ip")
        .args(["netns", "exec", l.name(), "ethtool", "-K", &lif, "tso", "off", "gso", "off"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ethtool {
        l.ip(&["link", "set", &lif, "gso_max_segs", "1"])?;
    }
    l.ip(&["link", "set", &lif, "up"])?;

    step(&format!("writing a {mib} MiB file and serving it with `python3 -m http.server` on {LINUX_IP}:{PORT} (Linux)"));
    let www = work.join("www");
    std::fs::create_dir_all(&www)?;
    let file = www.join("big.bin");
    make_file(&file, mib)?;
    let (size, want) = sha256_file(&file)?;
    let mut http = Command::new("ip");
    http.args(["netns", "exec", l.name(), "python3", "-u", "-m", "http.server"])
        .args(["--bind", LINUX_IP, PORT, "--directory"])
        .arg(&www)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut http = http.spawn().context("starting python3 -m http.server")?;
    wait_stdout(&mut http, "Serving HTTP", "python3 -m http.server", Duration::from_secs(20))?;
    let http = Guard(Some(http));

    let socket = work.join("joyride.sock");
    step(&format!(
        "starting joyrided on {jif} (AF_PACKET) as {JOY_IP}/24, apps socket {}",
        socket.display()
    ));
    let log = work.join("joyrided.log");
    let logf = std::fs::File::create(&log)?;
    let mut jd = Command::new("ip");
    jd.args(["netns", "exec", j.name()])
        .arg(joyrided)
        .args(["--backend", &format!("af-packet:{jif}"), "--ip", &format!("{JOY_IP}/24")])
        .arg("--socket")
        .arg(&socket)
        .stdin(Stdio::null())
        .stdout(logf.try_clone()?)
        .stderr(logf);
    let jd = Guard(Some(jd.spawn().context("starting joyrided")?));
    wait_for(&socket, "joyrided's socket")?;

    let curl = which("curl");
    let out = work.join("download.bin");
    let url = format!("http://{LINUX_IP}:{PORT}/big.bin");
    let mut prog: Vec<String> = match &curl {
        Some(c) => {
            vec![c.clone(), "-sS".into(), "-o".into(), out.display().to_string(), url.clone()]
        }
        None => vec![
            "python3".into(),
            "-c".into(),
            "import sys,urllib.request,shutil; r=urllib.request.urlopen(sys.argv[1]); \
             shutil.copyfileobj(r, open(sys.argv[2],'wb'), 1<<20)"
                .into(),
            url.clone(),
            out.display().to_string(),
        ],
    };
    let shown = if curl.is_some() {
        format!("curl -o {} {url}", out.display())
    } else {
        format!("python3 urllib {url}")
    };
    step(&format!("running an unmodified program through Joyride: joyride run -- {shown}"));
    println!("    (it runs in the root namespace, which has no route to {LINUX_IP}: only Joyride can reach it)");
    let t0 = Instant::now();
    let mut cmd = Command::new(me);
    cmd.arg("run").arg("--socket").arg(&socket).arg("--").args(prog.drain(..));
    cmd.stdin(Stdio::null());
    let mut child = cmd.spawn().context("starting the program")?;
    // A look at the service's sockets while the transfer runs.
    let mut mid = None;
    loop {
        if let Some(st) = child.try_wait()? {
            if !st.success() {
                bail!("the program failed ({st}); joyrided's log: {}", log.display());
            }
            break;
        }
        if mid.is_none() && t0.elapsed() > Duration::from_millis(150) {
            mid = super::stat(&socket).ok();
        }
        if t0.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            bail!("the download did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let secs = t0.elapsed().as_secs_f64();
    let (got, sha) = sha256_file(&out)?;
    if let Some(m) = mid {
        step("`joyride stat` during the transfer");
        print!("{m}");
    }
    step("`joyride stat` after it");
    print!("{}", super::stat(&socket)?);
    let ok = got == size && sha == want;
    step("result");
    println!(
        "    {} bytes in {:.2} s ({:.1} MiB/s, {:.2} Gbit/s); sha256 {} {}",
        got,
        secs,
        got as f64 / secs / (1 << 20) as f64,
        got as f64 * 8.0 / secs / 1e9,
        sha,
        if ok { "matches the file Linux served" } else { "DOES NOT MATCH" }
    );
    if keep {
        println!(
            "    kept: namespaces {} and {}, files in {}; clean up with `ip netns del` and kill {} {}",
            l.name(),
            j.name(),
            work.display(),
            jd.0.as_ref().map_or(0, Child::id),
            http.0.as_ref().map_or(0, Child::id)
        );
        std::mem::forget(jd);
        std::mem::forget(http);
        std::mem::forget(l);
        std::mem::forget(j);
        return Ok(if ok { 0 } else { 1 });
    }
    step("cleaning up (processes, namespaces, files)");
    drop(jd);
    drop(http);
    Ok(if ok {
        println!("Joyride works: an unmodified program downloaded through the user-space stack.");
        0
    } else {
        1
    })
}

fn which(tool: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d: PathBuf| d.join(tool))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
