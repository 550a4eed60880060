//! Throughput of the shared-memory wire between two busy-polling threads (no criterion):
//! `cargo test -p joyride-drivers --release --test shm_bench -- --ignored --nocapture`.

use std::time::Instant;

use joyride_drivers::shm::ShmWire;
use joyride_drivers::{Batch, Nic, Pool, PoolConfig, QueueId};

fn pool(count: u32) -> Pool {
    Pool::new(PoolConfig { count, ..PoolConfig::default() }).unwrap()
}

#[allow(clippy::disallowed_methods)] // a benchmark reads the wall clock
fn run(size: usize, frames: u64) -> (f64, f64) {
    let path = std::env::temp_dir().join(format!("jrdrv-bench-{}-{size}", std::process::id()));
    let path = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::Path::new("/dev/shm").join(path.file_name().unwrap())
    } else {
        path
    };
    let mut a = ShmWire::create(&path, 1024, 2048, pool(256)).unwrap();
    let p2 = path.clone();
    let rx = std::thread::spawn(move || {
        let mut b = ShmWire::open(&p2, pool(256)).unwrap();
        let mut batch = Batch::new(32);
        let mut got = 0u64;
        let mut bytes = 0u64;
        while got < frames {
            b.rx_burst(QueueId(0), &mut batch).unwrap();
            for f in batch.drain() {
                bytes += f.len() as u64;
                got += 1;
            }
        }
        bytes
    });
    let txp = pool(64);
    let mut batch = Batch::new(32);
    let payload = vec![0x5au8; size];
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < frames {
        while batch.remaining() > 0 && sent + (batch.len() as u64) < frames {
            batch.push(txp.alloc_copy(&payload).unwrap()).unwrap();
        }
        sent += a.tx_burst(QueueId(0), &mut batch).unwrap() as u64;
    }
    let bytes = rx.join().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(bytes, frames * size as u64);
    (frames as f64 / secs / 1e6, bytes as f64 * 8.0 / secs / 1e9)
}

#[test]
#[ignore = "benchmark: run with --release --ignored --nocapture"]
fn shm_wire_throughput() {
    for (size, frames) in [(64usize, 20_000_000u64), (1500, 5_000_000)] {
        let (mpps, gbps) = run(size, frames);
        println!("shm wire, two threads, {size:>4} B frames: {mpps:6.2} Mpps  {gbps:6.2} Gb/s");
    }
}
