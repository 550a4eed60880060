//! Application compatibility (issue 7): process semantics that real servers rely on, each
//! checked by a C program that runs twice — on the kernel (inside the Linux namespace) and under
//! `joyride run` — with identical output required. Needs root, `ip`, python3 and cc.
#![allow(clippy::disallowed_methods)] // Tests wait on real processes with real time.

mod common;

use std::time::Duration;

use common::run::{apps_field, compile, stat_when, Net};

/// A line echo server on the Linux side (threads, so several connections at once).
fn linux_echo(net: &Net, port: u16) -> common::Proc {
    let code = format!(
        "import socketserver\n\
         class H(socketserver.StreamRequestHandler):\n\
         \x20   def handle(self):\n\
         \x20       for line in self.rfile:\n\
         \x20           self.wfile.write(line)\n\
         socketserver.ThreadingTCPServer.allow_reuse_address = True\n\
         s = socketserver.ThreadingTCPServer(('{}', {port}), H)\n\
         print('echo ready', flush=True)\n\
         s.serve_forever()\n",
        net.linux_ip
    );
    let mut p = net.linux("echo (Linux)", &["python3", "-u", "-c", &code]);
    p.wait_line("echo ready", Duration::from_secs(20));
    p
}

/// Runs `tests/c/NAME.c` on the kernel (inside the Linux namespace), then under `joyride run`,
/// both against one Linux echo server on `port`, and requires identical output (ending in
/// "done"). Returns the joyrided it used, still running.
fn same_as_kernel(net: &Net, name: &str, port: u16) -> common::Proc {
    let _echo = linux_echo(net, port);
    let prog = compile(name);
    let prog = prog.to_str().unwrap();
    let port = port.to_string();
    let mut k =
        net.linux(&format!("{name} (kernel)"), &[prog, &net.linux_ip, &net.linux_ip, &port]);
    let kernel = k.wait_ok(Duration::from_secs(60));
    assert_eq!(kernel.last().map(String::as_str), Some("done"), "{kernel:?}");
    let jd = net.joyrided();
    let mut j = net.run(&format!("{name} (Joyride)"), &[prog, &net.joy_ip, &net.linux_ip, &port]);
    let joyride = j.wait_ok(Duration::from_secs(60));
    assert_eq!(joyride, kernel, "{name}: Joyride's output differs from the kernel's");
    jd
}

#[test]
fn fork_shares_sockets_like_the_kernel() {
    skip_unless!("python3", "cc");
    let net = Net::new();
    let _jd = same_as_kernel(&net, "fork", 7707);
    // Every process (parent, workers, children, the daemon) is gone, and so are its sockets.
    let stat = stat_when(&net, |s| apps_field(s, "connected") == 0);
    assert_eq!(apps_field(&stat, "connected"), 0, "{stat}");
    assert!(apps_field(&stat, "clients") >= 6, "children did not join the service:\n{stat}");
    assert!(!stat.lines().any(|l| l.starts_with("tcp ")), "sockets left behind:\n{stat}");
}

#[test]
fn readiness_and_process_semantics_like_the_kernel() {
    skip_unless!("python3", "cc");
    let net = Net::new();
    let _jd = same_as_kernel(&net, "semantics", 7708);
}
