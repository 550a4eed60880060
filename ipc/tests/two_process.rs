//! A region shared by two processes: this test binary is the service; it re-executes itself
//! as the application (`child_app`), hands the region over a Unix socket with SCM_RIGHTS, and
//! the two exchange commands, completions and 1 MiB of data each way through the rings, sleeping
//! on the doorbells when idle (the child never busy-waits longer than a short spin).

use joyride_ipc::{
    ClientRegion, Command, Completion, Domain, Payload, Protocol, Readiness, RegionConfig, Request,
    SendFlags, ServiceError, ServiceRegion, SockType, SocketIndex, WaitPolicy, Wake,
};
use std::os::fd::AsFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::Command as Process;
use std::time::Duration;

const ENV: &str = "JOYRIDE_IPC_CHILD_SOCKET";
const TOTAL: usize = 1 << 20;

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 8)) as u8
}

/// The application process. Does nothing unless started by `region_shared_by_two_processes`.
#[test]
fn child_app() {
    let Ok(path) = std::env::var(ENV) else { return };
    let sock = UnixStream::connect(path).unwrap();
    let mut cli = ClientRegion::receive(sock.as_fd()).unwrap();
    let policy = WaitPolicy { spin: 200 };
    let t = Some(Duration::from_secs(10));
    let tcp = Command::Socket { domain: Domain::Inet, ty: SockType::Stream, proto: Protocol::Tcp };
    let c = cli.call(&tcp, policy, t).unwrap();
    let s = SocketIndex(c.result.unwrap() as u32);
    let st = cli.call(&Command::Stat { sock: s }, policy, t).unwrap();
    assert!(matches!(st.payload, Payload::Stat(_)));

    // Stream 1 MiB out; the service echoes it back through the rx ring.
    let (mut sent, mut got) = (0usize, 0usize);
    let mut out = vec![0u8; 4096];
    let mut buf = vec![0u8; 3000];
    let (mut sleeps, mut timeouts) = (0u32, 0u32);
    while got < TOTAL {
        let mut progress = false;
        if sent < TOTAL {
            let n = out.len().min(TOTAL - sent);
            for (i, b) in out[..n].iter_mut().enumerate() {
                *b = pattern(sent + i);
            }
            let k = cli.send(s, &out[..n], SendFlags::empty()).unwrap();
            sent += k;
            progress |= k > 0;
        }
        let k = cli.recv(s, &mut buf).unwrap();
        for (i, b) in buf[..k].iter().enumerate() {
            assert_eq!(*b, pattern(got + i), "byte {}", got + i);
        }
        got += k;
        progress |= k > 0;
        if !progress {
            let more = sent < TOTAL;
            let w = cli
                .wait(policy, t, |me| {
                    me.rx_available(s).unwrap() > 0 || (more && me.tx_space(s).unwrap() > 0)
                })
                .unwrap();
            sleeps += 1;
            if w == Wake::TimedOut {
                timeouts += 1;
                assert!(timeouts < 3, "the service stopped answering");
            }
        }
    }
    let (r, _) = cli.readiness(s).unwrap();
    assert!(r.contains(Readiness::WRITABLE));
    let c = cli.call(&Command::Close { sock: s }, policy, t).unwrap();
    assert_eq!(c.result, Ok(0));
    println!("child: {got} bytes echoed, {sleeps} waits");
}

/// The service process side.
#[test]
fn region_shared_by_two_processes() {
    if std::env::var(ENV).is_ok() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("joyride-ipc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("svc.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let mut child = Process::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_app", "--nocapture", "--test-threads=1"])
        .env(ENV, &path)
        .spawn()
        .unwrap();
    let (conn, _) = listener.accept().unwrap();
    let cfg =
        RegionConfig { sockets: 8, cmd_entries: 64, cmp_entries: 64, rx_buf: 16384, tx_buf: 16384 };
    let mut svc = ServiceRegion::create(cfg).unwrap();
    svc.send_handshake(conn.as_fd()).unwrap();

    let mut carry: Vec<u8> = Vec::new(); // taken from tx, not yet written to rx
    let mut echoed = 0usize;
    let mut closed = false;
    let mut idle = 0u32;
    while !closed {
        let mut progress = false;
        loop {
            match svc.next_command() {
                Ok(None) => break,
                Ok(Some(Request { id, command })) => {
                    progress = true;
                    let result = match command {
                        Command::Socket { .. } => {
                            let s = svc.alloc_socket().unwrap();
                            svc.set_readiness(s, Readiness::WRITABLE);
                            Ok(u64::from(s.0))
                        }
                        Command::Close { sock } => {
                            svc.free_socket(sock);
                            closed = true;
                            Ok(0)
                        }
                        _ => Ok(0),
                    };
                    if !command.is_posted() {
                        let payload = match command {
                            Command::Stat { sock } => Payload::Stat(joyride_ipc::SocketStat {
                                tx_queued: svc.tx_pending(sock) as u32,
                                ..Default::default()
                            }),
                            _ => Payload::None,
                        };
                        svc.complete(Completion { id, result, payload }).unwrap();
                    }
                }
                Err(e @ ServiceError::Poisoned(_)) => panic!("{e}"),
                Err(e) => panic!("honest child sent an invalid command: {e}"),
            }
        }
        for s in svc.owned_sockets().collect::<Vec<_>>() {
            let mut took = 0;
            if carry.is_empty() {
                let mut buf = vec![0u8; 8192];
                took = svc.tx_take(s, &mut buf);
                carry.extend_from_slice(&buf[..took]);
            }
            let n = svc.rx_write(s, &carry);
            carry.drain(..n);
            echoed += n;
            progress |= n > 0 || took > 0;
            if n == 0 && took == 0 {
                continue; // nothing changed: publish nothing
            }
            let mut r = Readiness::WRITABLE;
            if svc.rx_space(s) < u64::from(cfg.rx_buf) {
                r = r.union(Readiness::READABLE);
            }
            svc.set_readiness(s, r);
        }
        svc.flush();
        if progress {
            idle = 0;
        } else {
            idle += 1;
            assert!(idle < 200, "child stalled");
            if let Some(st) = child.try_wait().unwrap() {
                panic!("child exited early: {st}");
            }
            svc.wait(Some(Duration::from_millis(50))).unwrap();
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
    assert_eq!(echoed, TOTAL);
    let st = svc.stats();
    assert_eq!(st.invalid, 0);
    assert!(st.commands > 100, "{st:?}");
    println!("service: {st:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
