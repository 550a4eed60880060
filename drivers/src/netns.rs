//! Network-namespace helpers for tests and tools (the service's peer tests use them too):
//! create a private namespace with `ip netns add`, run `ip` inside it, move a thread into it,
//! and delete it on drop — also when a test panics.

use std::fs::File;
use std::io;
use std::process::Command;

use crate::sys;

/// Whether the `ip` tool (iproute2) can be run.
pub fn ip_available() -> bool {
    Command::new("ip").arg("-V").output().map(|o| o.status.success()).unwrap_or(false)
}

/// Why namespace-based tests cannot run here, if they cannot (not root, no `ip`).
pub fn skip_reason() -> Option<&'static str> {
    if !sys::is_root() {
        Some("needs root")
    } else if !ip_available() {
        Some("needs the `ip` tool (iproute2)")
    } else {
        None
    }
}

/// A named network namespace, deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    file: File,
}

impl NetNs {
    /// Creates namespace `name` (replacing a stale one of that name) with `lo` up.
    pub fn create(name: &str) -> io::Result<NetNs> {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run_ip(&["netns", "add", name])?;
        let file = match File::open(format!("/run/netns/{name}")) {
            Ok(f) => f,
            Err(e) => {
                let _ = Command::new("ip").args(["netns", "del", name]).output();
                return Err(e);
            }
        };
        let ns = NetNs { name: name.to_string(), file };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME args…`; an error carries its stderr.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        run_ip(&all)
    }

    /// Moves the calling thread (only it) into the namespace.
    pub fn enter(&self) -> io::Result<()> {
        sys::setns_net(&self.file)
    }

    /// Runs `f` on a new thread inside the namespace and returns its result (a panic in `f`
    /// resumes here).
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> io::Result<T> {
        std::thread::scope(|s| {
            let h = s.spawn(|| {
                self.enter()?;
                Ok(f())
            });
            match h.join() {
                Ok(r) => r,
                Err(p) => std::panic::resume_unwind(p),
            }
        })
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

fn run_ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
