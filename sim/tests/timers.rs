//! Timer invariant of the TCP engine under realistic bulk traffic: after
//! `TcpStack::poll_transmit(now)` every deadline the stack reports through `poll_at` lies in
//! the future. A deadline at or before `now` that survives a poll is a livelock: the caller
//! polls again at once, the stack does nothing, forever (the service saw ~770 of these per
//! 32 MiB before the fix).
//!
//! Seeds `0..N`, `N` from `JOYRIDE_SEEDS` (default 1000); one seed with `JOYRIDE_SEED=s`.

use std::net::SocketAddrV4;

use joyride_base::{Duration, Instant, Rng, SplitMix64};
use joyride_sim::net::Pair;
use joyride_sim::LinkConfig;
use joyride_tcp::{SocketId, TcpConfig, TcpError};

fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("JOYRIDE_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n = std::env::var("JOYRIDE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    (0..n).collect()
}

/// A link from data-centre to WAN: small and large RTTs, rate-limited (so the sender becomes
/// cwnd-limited and the bottleneck queue overflows) or not, little or some random loss.
fn link(rng: &mut SplitMix64) -> LinkConfig {
    let delay = match rng.below(3) {
        0 => Duration::from_micros(10 + rng.below(200)),
        1 => Duration::from_millis(1 + rng.below(10)),
        _ => Duration::from_millis(20 + rng.below(60)),
    };
    LinkConfig {
        delay,
        jitter: Duration::from_micros(rng.below(3) * rng.below(500)),
        bandwidth_bps: [0, 10_000_000, 100_000_000, 1_000_000_000][rng.below(4) as usize],
        loss: [0.0, 0.0, 0.001, 0.01, 0.05][rng.below(5) as usize],
        duplicate: 0.0,
        reorder: [0.0, 0.0, 0.01][rng.below(3) as usize],
        reorder_delay: delay / 2,
        corrupt: 0.0,
        queue_limit: [0, 0, 20, 100][rng.below(4) as usize],
    }
}

/// Large and small buffers (window-limited and cwnd-limited senders), both profiles, RACK on
/// or off, delayed-ACK timers from 1 ms to 200 ms.
fn config(rng: &mut SplitMix64) -> TcpConfig {
    let mut c = if rng.chance(0.7) { TcpConfig::linux() } else { TcpConfig::freebsd() };
    c.max_buffer = 16 << 20;
    c.send_buffer = [16 << 10, 64 << 10, 1 << 20, 8 << 20][rng.below(4) as usize];
    c.recv_buffer = [4 << 10, 32 << 10, 128 << 10, 4 << 20][rng.below(4) as usize];
    c.delayed_ack = Duration::from_millis([1, 40, 100, 200][rng.below(4) as usize]);
    c.ack_every = [1, 2, 2, 4][rng.below(4) as usize];
    c.sack = rng.chance(0.8);
    c.timestamps = rng.chance(0.8);
    c.syn_retries = 14;
    c.synack_retries = 14;
    c.max_retries = 20;
    c
}

/// b connects to a:80; returns (server socket on a, client socket on b).
fn connect(p: &mut Pair) -> Result<(SocketId, SocketId), String> {
    let l = p.a.socket().map_err(|e| e.to_string())?;
    p.a.bind(l, SocketAddrV4::new(p.addr_a, 80)).map_err(|e| e.to_string())?;
    p.a.listen(l, 4).map_err(|e| e.to_string())?;
    let c = p.b.socket().map_err(|e| e.to_string())?;
    let now = p.now();
    let _ = p.b.connect(now, c, SocketAddrV4::new(p.addr_a, 80));
    let mut server = None;
    p.run_until(
        |p| {
            server = server.or_else(|| p.a.accept(l).ok().map(|(s, _)| s));
            server.is_some()
        },
        Duration::from_secs(600),
    )
    .map_err(|e| format!("connect: {e}"))?;
    Ok((server.ok_or("no server socket")?, c))
}

/// The deadline of each stack must be later than `now` right after both were polled at `now`.
fn check(p: &Pair, what: &str) -> Result<(), String> {
    let now = p.now();
    for (name, at) in [("a", p.a.poll_at()), ("b", p.b.poll_at())] {
        if let Some(t) = at.filter(|&t| t <= now) {
            return Err(format!("{what}: stack {name} reports deadline {t:?} <= now {now:?}"));
        }
    }
    Ok(())
}

/// One bulk transfer b → a (and, half the time, a → b at the same time), with a reader that
/// sometimes stalls (zero window) and reads in chunks of varying size. Checks the invariant
/// after every simulator step.
fn scenario(seed: u64) -> Result<(), String> {
    let mut rng = SplitMix64::new(seed ^ 0x71_3e25);
    let (ca, cb) = (config(&mut rng), config(&mut rng));
    let (ab, ba) = (link(&mut rng), link(&mut rng));
    let both_ways = rng.chance(0.5);
    let len = 200_000 + rng.below(1_800_000) as usize;
    let mut p = Pair::with_links(ca, cb, ab, ba, seed);
    let (s, c) = connect(&mut p)?;
    let nodelay = rng.chance(0.3);
    for (stack, id) in [(&mut p.a, s), (&mut p.b, c)] {
        let _ = stack.set_option(id, joyride_tcp::SockOpt::NoDelay(nodelay));
    }
    let data: Vec<u8> = (0..len).map(|i| (i as u64 * 31 + seed) as u8).collect();
    let (mut sent_b, mut got_a) = (0usize, 0usize);
    let (mut sent_a, mut got_b) = (0usize, 0usize);
    let want_back = if both_ways { len / 2 } else { 0 };
    let mut buf = vec![0u8; 1 << 16];
    let deadline = p.now() + Duration::from_secs(3_600);
    let mut stall_until = Instant::ZERO;
    let mut idle_rounds = 0;
    while got_a < len || got_b < want_back {
        let now = p.now();
        let progress = got_a + got_b + sent_a + sent_b;
        if sent_b < len {
            match p.b.send(now, c, &data[sent_b..]) {
                Ok(n) => sent_b += n,
                Err(TcpError::WouldBlock) => {}
                Err(e) => return Err(format!("send b: {e}")),
            }
        }
        if sent_a < want_back {
            match p.a.send(now, s, &data[sent_a..want_back]) {
                Ok(n) => sent_a += n,
                Err(TcpError::WouldBlock) => {}
                Err(e) => return Err(format!("send a: {e}")),
            }
        }
        if now >= stall_until {
            let chunk = [512, 4096, 65_536][rng.below(3) as usize];
            if let Ok(n) = p.a.recv(s, &mut buf[..chunk], false) {
                got_a += n;
            }
            if rng.chance(0.002) {
                // The application stops reading for a while: the window closes.
                stall_until = now + Duration::from_millis(rng.below(300));
            }
        }
        if let Ok(n) = p.b.recv(c, &mut buf, false) {
            got_b += n;
        }
        if !p.step(deadline) {
            // Nothing in flight and no timer: only the application can move things on (a
            // stalled reader resumes, a lagging reader drains its buffer).
            stall_until = Instant::ZERO;
            idle_rounds =
                if got_a + got_b + sent_a + sent_b == progress { idle_rounds + 1 } else { 0 };
            if idle_rounds > 2 {
                return Err(format!(
                    "network idle: a got {got_a}/{len}, b got {got_b}\n  a {:?}\n  b {:?}",
                    p.a.info(s),
                    p.b.info(c)
                ));
            }
            continue;
        }
        check(&p, "after step")?;
    }
    Ok(())
}

#[test]
fn deadlines_after_poll_transmit_are_in_the_future() {
    let mut failures = Vec::new();
    for seed in seeds() {
        if let Err(e) = scenario(seed) {
            eprintln!("timers: seed {seed}: {e}");
            failures.push(format!("seed {seed}: {e}"));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
