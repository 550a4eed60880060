//! SPSC ring latency and throughput between two threads, plus the full `call` path
//! (command → service thread → completion) spinning and sleeping on the doorbells.
//!
//! `cargo run --release -p joyride-ipc --example ring_bench [-- ROUND_TRIPS]`
//! (pin with `taskset -c 0,1` to choose the cores). Results are recorded in `ipc/README.md`.
// A benchmark reads the clock; protocol code never does.
#![allow(clippy::disallowed_methods)]

use joyride_ipc::layout::{ENTRY_SIZE, RING_HEADER};
use joyride_ipc::ring::{Consumer, Producer};
use joyride_ipc::{
    ClientRegion, Command, Completion, Payload, Region, RegionConfig, ServiceRegion, SocketIndex,
    WaitPolicy,
};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ENTRIES: u32 = 256;
const RING_BYTES: usize = RING_HEADER + ENTRIES as usize * ENTRY_SIZE;

fn entry(i: u64) -> [u8; ENTRY_SIZE] {
    let mut e = [0u8; ENTRY_SIZE];
    e[..8].copy_from_slice(&i.to_le_bytes());
    e
}

fn percentiles(mut ns: Vec<u64>) -> String {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)];
    let mean = ns.iter().sum::<u64>() as f64 / ns.len() as f64;
    format!(
        "mean {:.0} ns  p50 {} ns  p99 {} ns  p99.9 {} ns  max {} ns",
        mean,
        at(0.5),
        at(0.99),
        at(0.999),
        ns[ns.len() - 1]
    )
}

/// Ping-pong over two rings: A pushes to ring 0 and polls ring 1; B echoes.
fn round_trip(n: usize) {
    let r = Arc::new(Region::create(c"bench", 2 * RING_BYTES).unwrap());
    let r2 = Arc::clone(&r);
    let echo = std::thread::spawn(move || {
        let mut rx = Consumer::new(0, ENTRIES, 0);
        let mut tx = Producer::new(RING_BYTES, ENTRIES, 0);
        let mut done = 0;
        while done < n {
            if let Some(e) = rx.pop(&r2).unwrap() {
                while !tx.push(&r2, &e).unwrap() {}
                done += 1;
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let mut tx = Producer::new(0, ENTRIES, 0);
    let mut rx = Consumer::new(RING_BYTES, ENTRIES, 0);
    let mut samples = Vec::with_capacity(n);
    for i in 0..n as u64 {
        let t = Instant::now();
        assert!(tx.push(&r, &entry(i)).unwrap());
        loop {
            if let Some(e) = rx.pop(&r).unwrap() {
                assert_eq!(e[..8], i.to_le_bytes());
                break;
            }
            std::hint::spin_loop();
        }
        samples.push(t.elapsed().as_nanos() as u64);
    }
    echo.join().unwrap();
    println!("ring round trip (busy-poll both ends), {n} samples: {}", percentiles(samples));
}

/// One direction, `n` entries; publish every entry or every `batch`.
fn throughput(n: u64, batch: u32) {
    let r = Arc::new(Region::create(c"bench", RING_BYTES).unwrap());
    let r2 = Arc::clone(&r);
    let t = Instant::now();
    let consumer = std::thread::spawn(move || {
        let mut c = Consumer::new(0, ENTRIES, 0);
        let mut next = 0u64;
        while next < n {
            let mut got = 0;
            while got < batch {
                let Some(e) = c.pop_deferred(&r2).unwrap() else { break };
                assert_eq!(e[..8], next.to_le_bytes());
                next += 1;
                got += 1;
            }
            if got > 0 {
                c.release(&r2).unwrap();
            } else {
                std::hint::spin_loop();
            }
        }
    });
    let mut p = Producer::new(0, ENTRIES, 0);
    let mut i = 0u64;
    while i < n {
        let room = u64::from(p.room(&r).unwrap().min(batch)).min(n - i);
        for _ in 0..room {
            p.write_slot(&r, &entry(i)).unwrap();
            i += 1;
        }
        if room > 0 {
            p.publish(&r).unwrap();
        } else {
            std::hint::spin_loop();
        }
    }
    consumer.join().unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "ring throughput, publish/release every {batch:>2}: {:.1} M entries/s ({:.2} GB/s of 64-byte entries)",
        n as f64 / s / 1e6,
        n as f64 * 64.0 / s / 1e9
    );
}

/// The code path's own cost: one thread pushes 32 entries, then pops them (no cache-line
/// transfers between cores, no scheduler): an upper bound for the rings' entry rate.
fn single_thread(n: u64) {
    let r = Region::create(c"bench", RING_BYTES).unwrap();
    let mut p = Producer::new(0, ENTRIES, 0);
    let mut c = Consumer::new(0, ENTRIES, 0);
    let t = Instant::now();
    let mut i = 0u64;
    let mut sum = 0u64;
    while i < n {
        for k in 0..32 {
            p.write_slot(&r, &entry(i + k)).unwrap();
        }
        p.publish(&r).unwrap();
        for _ in 0..32 {
            let e = c.pop_deferred(&r).unwrap().unwrap();
            sum = sum.wrapping_add(u64::from(e[0]));
        }
        c.release(&r).unwrap();
        i += 32;
    }
    let s = t.elapsed().as_secs_f64();
    println!(
        "ring push+pop in one thread, batches of 32: {:.1} ns per entry ({:.1} M entries/s) [{sum}]",
        s * 1e9 / n as f64,
        n as f64 / s / 1e6
    );
}

/// `ClientRegion::call` against a service thread: command, completion, wake-ups included.
fn call_path(n: usize, spin: u32) {
    let cfg = RegionConfig { sockets: 1, ..RegionConfig::default() };
    let mut svc = ServiceRegion::create(cfg).unwrap();
    let (a, b) = UnixStream::pair().unwrap();
    svc.send_handshake(a.as_fd()).unwrap();
    let mut cli = ClientRegion::receive(b.as_fd()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let server = std::thread::spawn(move || {
        while !stop2.load(Ordering::Relaxed) {
            let mut any = false;
            for _ in 0..spin.max(1) {
                match svc.next_command() {
                    Ok(None) => {}
                    Ok(Some(req)) => {
                        let c = Completion { id: req.id, result: Ok(0), payload: Payload::None };
                        svc.complete(c).unwrap();
                        any = true;
                    }
                    // Answered by validation itself (-EBADF); just publish it.
                    Err(_) => any = true,
                }
                if any {
                    svc.flush();
                    break;
                }
                std::hint::spin_loop();
            }
            if !any {
                svc.wait(Some(Duration::from_millis(10))).unwrap();
            }
        }
        svc.stats()
    });
    let policy = WaitPolicy { spin };
    let cmd = Command::Stat { sock: SocketIndex(0) };
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        // Stat on an unopened socket: answered by the validation path with -EBADF.
        let c = cli.call(&cmd, policy, Some(Duration::from_secs(5))).unwrap();
        assert!(c.result.is_err());
        samples.push(t.elapsed().as_nanos() as u64);
    }
    stop.store(true, Ordering::Relaxed);
    let st = server.join().unwrap();
    let mode = if spin == 0 { "sleep on doorbells" } else { "spin, then sleep" };
    println!(
        "call round trip ({mode}, spin {spin}), {n} samples: {}; service rang the app {} times",
        percentiles(samples),
        st.wakeups
    );
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    round_trip(n);
    for batch in [1, 32] {
        throughput(n as u64 * 10, batch);
    }
    single_thread(n as u64 * 10);
    call_path(n / 10, 20_000);
    call_path((n / 100).max(100), 0);
}
