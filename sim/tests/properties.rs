//! End-to-end properties of the TCP engine, over many seeds, in the deterministic simulator.
//!
//! Seeds `0..N`, `N` from `JOYRIDE_SEEDS` (default 1000). A failing seed prints itself and the
//! path of a pcap of the run (open it in Wireshark); rerun one seed with
//! `JOYRIDE_SEED=<seed> cargo test -p joyride-sim --test properties`.

use std::net::SocketAddrV4;

use joyride_base::{Duration, Rng, SplitMix64};
use joyride_sim::net::{Pair, Side};
use joyride_sim::LinkConfig;
use joyride_tcp::{Shutdown, SocketId, State, TcpConfig};

/// The seeds to run: `JOYRIDE_SEED=s` for one, else `0..JOYRIDE_SEEDS` (default 1000).
fn seeds() -> Vec<u64> {
    if let Some(s) = std::env::var("JOYRIDE_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![s];
    }
    let n = std::env::var("JOYRIDE_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    (0..n).collect()
}

/// Virtual-time budget of one scenario (RTO backoff under 20 % loss can take minutes).
const LIMIT: Duration = Duration::from_secs(3_600);
const PORT: u16 = 80;

/// A random impaired link: up to 20 % loss, reordering and duplication (and `corrupt`).
fn link(rng: &mut SplitMix64, corrupt: f64) -> LinkConfig {
    let pct = |rng: &mut SplitMix64, max: u64| rng.below(max + 1) as f64 / 100.0;
    LinkConfig {
        delay: Duration::from_micros(100 + rng.below(20_000)),
        jitter: Duration::from_micros(rng.below(5_000)),
        bandwidth_bps: [0, 10_000_000, 100_000_000][rng.below(3) as usize],
        loss: pct(rng, 20),
        duplicate: pct(rng, 10),
        reorder: pct(rng, 20),
        reorder_delay: Duration::from_micros(rng.below(30_000)),
        corrupt,
        queue_limit: 0,
    }
}

fn config(rng: &mut SplitMix64) -> TcpConfig {
    let mut c = if rng.chance(0.5) { TcpConfig::linux() } else { TcpConfig::freebsd() };
    c.sack = rng.chance(0.8);
    c.timestamps = rng.chance(0.8);
    // At 20 % loss each way an exchange fails 36 % of the time; the default retry counts
    // (FreeBSD: 3 SYN-ACK retries) give up in about 1 run in 60, which is correct TCP
    // behaviour but not what these properties are about. Retry long enough that giving up
    // is rarer than once in a million runs.
    c.syn_retries = 14;
    c.synack_retries = 14;
    c.max_retries = 20;
    c
}

fn random_bytes(rng: &mut SplitMix64, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

/// Writes the run's capture to the temp dir and returns a message naming it and the seed.
fn report(p: &Pair, test: &str, seed: u64, why: &str) -> String {
    let path = std::env::temp_dir().join(format!("joyride-sim-{test}-seed{seed}.pcap"));
    let saved = match p.capture_bytes().map(|b| std::fs::write(&path, b)) {
        Some(Ok(())) => format!("pcap: {}", path.display()),
        Some(Err(e)) => format!("pcap not written: {e}"),
        None => "no capture".to_string(),
    };
    format!("{test}: seed {seed}: {why}\n  {saved}\n  {p:?}")
}

/// b connects to a:80; returns (listener, server socket on a, client socket on b).
fn connect(p: &mut Pair) -> Result<(SocketId, SocketId, SocketId), String> {
    let l = p.a.socket().map_err(|e| e.to_string())?;
    p.a.bind(l, SocketAddrV4::new(p.addr_a, PORT)).map_err(|e| format!("bind: {e}"))?;
    p.a.listen(l, 4).map_err(|e| format!("listen: {e}"))?;
    let c = p.b.socket().map_err(|e| e.to_string())?;
    let now = p.now();
    match p.b.connect(now, c, SocketAddrV4::new(p.addr_a, PORT)) {
        Ok(()) | Err(joyride_tcp::TcpError::InProgress) => {}
        Err(e) => return Err(format!("connect: {e}")),
    }
    let mut server = None;
    p.run_until(
        |p| {
            if server.is_none() {
                server = p.a.accept(l).ok().map(|(s, _)| s);
            }
            server.is_some() && p.b.state(c) == Ok(State::Established)
        },
        LIMIT,
    )
    .map_err(|e| format!("handshake: {e} (client {:?})", p.b.state(c)))?;
    Ok((l, server.ok_or("no accepted socket")?, c))
}

/// Moves `data` from the client (b) to the server (a) and returns what the server read: up to
/// end of stream if `shutdown` (the client shuts down its sending side after the data), else
/// up to `data.len()` bytes.
fn transfer(
    p: &mut Pair,
    server: SocketId,
    client: SocketId,
    data: &[u8],
    shutdown: bool,
) -> Result<Vec<u8>, String> {
    let mut sent = 0;
    let mut shut = false;
    let mut got = Vec::with_capacity(data.len());
    let mut eof = false;
    let mut error = None;
    let mut buf = vec![0u8; 8192];
    p.run_until(
        |p| {
            let now = p.now();
            while sent < data.len() {
                match p.b.send(now, client, &data[sent..]) {
                    Ok(0) | Err(joyride_tcp::TcpError::WouldBlock) => break,
                    Ok(n) => sent += n,
                    Err(e) => {
                        error = Some(format!("send: {e}"));
                        return true;
                    }
                }
            }
            if shutdown && sent == data.len() && !shut {
                if let Err(e) = p.b.shutdown(now, client, Shutdown::Write) {
                    error = Some(format!("shutdown: {e}"));
                    return true;
                }
                shut = true;
            }
            loop {
                match p.a.recv(server, &mut buf, false) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(joyride_tcp::TcpError::WouldBlock) => break,
                    Err(e) => {
                        error = Some(format!("recv: {e}"));
                        return true;
                    }
                }
            }
            eof || (!shutdown && got.len() >= data.len())
        },
        LIMIT,
    )
    .map_err(|e| format!("transfer: {e}: sent {sent}/{}, received {}", data.len(), got.len()))?;
    if let Some(e) = error {
        return Err(e);
    }
    Ok(got)
}

/// Checks `got` is `want` exactly, naming the first difference.
fn same_bytes(got: &[u8], want: &[u8]) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    Err(format!(
        "received {} bytes, sent {}; first difference at {:?}",
        got.len(),
        want.len(),
        first
    ))
}

/// Runs `scenario` over all seeds, failing with the first failing seed's report.
fn for_all_seeds(test: &str, scenario: impl Fn(u64, &mut Option<Pair>) -> Result<(), String>) {
    let mut failures = Vec::new();
    let seeds = seeds();
    let mut total = joyride_sim::LinkStats::default();
    let mut rejected = 0;
    for &seed in &seeds {
        let mut pair = None;
        let result = scenario(seed, &mut pair);
        if let Some(p) = &pair {
            for s in [p.a_to_b.stats(), p.b_to_a.stats()] {
                total.sent += s.sent;
                total.dropped += s.dropped;
                total.duplicated += s.duplicated;
                total.reordered += s.reordered;
                total.corrupted += s.corrupted;
            }
            rejected += p.stats().rejected;
        }
        if let Err(why) = result {
            let msg = match &pair {
                Some(p) => report(p, test, seed, &why),
                None => format!("{test}: seed {seed}: {why}"),
            };
            eprintln!("{msg}");
            failures.push(msg);
            if failures.len() >= 5 {
                break;
            }
        }
    }
    // Evidence that the impairments happened (shown with `--nocapture`).
    eprintln!(
        "{test}: {} seeds: {} packets sent, {} dropped, {} duplicated, {} reordered, \
         {} corrupted, {rejected} rejected",
        seeds.len(),
        total.sent,
        total.dropped,
        total.duplicated,
        total.reordered,
        total.corrupted
    );
    assert!(
        failures.is_empty(),
        "{} of {} seeds failed:\n{}",
        failures.len(),
        seeds.len(),
        failures.join("\n")
    );
}

#[test]
fn bulk_transfer_arrives_complete_in_order_exactly_once() {
    for_all_seeds("bulk", |seed, slot| {
        let mut rng = SplitMix64::new(seed ^ 0xb01c);
        let (ca, cb) = (config(&mut rng), config(&mut rng));
        let (ab, ba) = (link(&mut rng, 0.0), link(&mut rng, 0.0));
        let len = 20_000 + rng.below(80_001) as usize;
        let data = random_bytes(&mut rng, len);
        let p = slot.insert(Pair::with_links(ca, cb, ab, ba, seed));
        p.start_capture();
        let (_, s, c) = connect(p)?;
        let got = transfer(p, s, c, &data, true)?;
        same_bytes(&got, &data)
    });
}

/// Who closes first.
#[derive(Clone, Copy, Debug)]
enum CloseOrder {
    ClientFirst,
    ServerFirst,
    Simultaneous,
}

#[test]
fn both_sides_close_in_every_order() {
    for_all_seeds("close", |seed, slot| {
        let mut rng = SplitMix64::new(seed ^ 0xc105e);
        let order = [CloseOrder::ClientFirst, CloseOrder::ServerFirst, CloseOrder::Simultaneous]
            [(seed % 3) as usize];
        let (ca, cb) = (config(&mut rng), config(&mut rng));
        let (ab, ba) = (link(&mut rng, 0.0), link(&mut rng, 0.0));
        let len = 1 + rng.below(4_000) as usize;
        let data = random_bytes(&mut rng, len);
        let p = slot.insert(Pair::with_links(ca, cb, ab, ba, seed));
        p.start_capture();
        let (l, s, c) = connect(p)?;
        let now = p.now();
        p.a.close(now, l).map_err(|e| format!("close listener: {e}"))?;
        let got = transfer(p, s, c, &data, false)?;
        same_bytes(&got, &data)?;
        let now = p.now();
        match order {
            CloseOrder::ClientFirst => {
                p.b.close(now, c).map_err(|e| format!("client close: {e}"))?;
                wait_eof(p, Side::A, s).map_err(|e| format!("{order:?}: server: {e}"))?;
                let now = p.now();
                p.a.close(now, s).map_err(|e| format!("server close: {e}"))?;
            }
            CloseOrder::ServerFirst => {
                p.a.close(now, s).map_err(|e| format!("server close: {e}"))?;
                wait_eof(p, Side::B, c).map_err(|e| format!("{order:?}: client: {e}"))?;
                let now = p.now();
                p.b.close(now, c).map_err(|e| format!("client close: {e}"))?;
            }
            CloseOrder::Simultaneous => {
                p.a.close(now, s).map_err(|e| format!("server close: {e}"))?;
                p.b.close(now, c).map_err(|e| format!("client close: {e}"))?;
            }
        }
        // Every connection finishes (TIME-WAIT included) and the tables empty.
        p.run_until_idle(LIMIT).map_err(|e| format!("{order:?}: not idle: {e}"))?;
        let left_a: Vec<_> = p.a.connections().collect();
        let left_b: Vec<_> = p.b.connections().collect();
        if !left_a.is_empty() || !left_b.is_empty() {
            return Err(format!("{order:?}: connections left: a {left_a:?} b {left_b:?}"));
        }
        Ok(())
    });
}

/// Runs until `sock` on `side` reads end of stream.
fn wait_eof(p: &mut Pair, side: Side, sock: SocketId) -> Result<(), String> {
    let mut buf = [0u8; 512];
    let mut error = None;
    p.run_until(
        |p| match p.stack(side).recv(sock, &mut buf, false) {
            Ok(0) => true,
            Ok(_) => {
                error = Some("data after the transfer".to_string());
                true
            }
            Err(joyride_tcp::TcpError::WouldBlock) => false,
            Err(e) => {
                error = Some(format!("recv: {e}"));
                true
            }
        },
        LIMIT,
    )
    .map_err(|e| format!("no end of stream: {e}"))?;
    error.map_or(Ok(()), Err)
}

#[test]
fn corrupted_segments_are_never_delivered() {
    for_all_seeds("corrupt", |seed, slot| {
        let mut rng = SplitMix64::new(seed ^ 0xc0de);
        let (ca, cb) = (config(&mut rng), config(&mut rng));
        let corrupt = 0.02 + rng.below(18) as f64 / 100.0;
        let (ab, ba) = (link(&mut rng, corrupt), link(&mut rng, corrupt));
        let len = 20_000 + rng.below(30_001) as usize;
        let data = random_bytes(&mut rng, len);
        let p = slot.insert(Pair::with_links(ca, cb, ab, ba, seed));
        p.start_capture();
        let (_, s, c) = connect(p)?;
        let got = transfer(p, s, c, &data, true)?;
        same_bytes(&got, &data)?;
        let corrupted = p.a_to_b.stats().corrupted_delivered + p.b_to_a.stats().corrupted_delivered;
        // Every corrupted packet that arrived was caught by a checksum before reaching a stack
        // (the byte-exact comparison above is the end-to-end check).
        if p.stats().rejected != corrupted {
            return Err(format!(
                "{corrupted} corrupted packets arrived, {} rejected",
                p.stats().rejected
            ));
        }
        Ok(())
    });
}

/// After a corrupted-link transfer both stacks must settle: no packet in flight, no timer
/// asking to run at the current instant forever. (Seeds 54, 165, 235, 475 and 521 once left a
/// FIN-WAIT-2 connection with `poll_at() == Instant::ZERO` that `poll_transmit` never cleared;
/// fixed by one keepalive/persist/send rule shared by `poll_at` and the sender.)
#[test]
fn corrupted_runs_settle() {
    for_all_seeds("settle", |seed, slot| {
        let mut rng = SplitMix64::new(seed ^ 0xc0de);
        let (ca, cb) = (config(&mut rng), config(&mut rng));
        let corrupt = 0.02 + rng.below(18) as f64 / 100.0;
        let (ab, ba) = (link(&mut rng, corrupt), link(&mut rng, corrupt));
        let len = 20_000 + rng.below(30_001) as usize;
        let data = random_bytes(&mut rng, len);
        let p = slot.insert(Pair::with_links(ca, cb, ab, ba, seed));
        p.start_capture();
        let (_, s, c) = connect(p)?;
        transfer(p, s, c, &data, true)?;
        p.run_until(|p| p.a_to_b.in_flight() == 0 && p.b_to_a.in_flight() == 0, LIMIT).map_err(
            |e| {
                format!(
                    "links do not drain: {e}: a {:?} poll_at {:?}; b {:?} poll_at {:?}",
                    p.a.connections().map(|c| c.state).collect::<Vec<_>>(),
                    p.a.poll_at(),
                    p.b.connections().map(|c| c.state).collect::<Vec<_>>(),
                    p.b.poll_at(),
                )
            },
        )
    });
}
