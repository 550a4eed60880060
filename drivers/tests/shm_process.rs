//! The shared-memory wire between two processes: this test binary re-runs itself as the child
//! (`child_echo`, selected by an environment variable), which opens the wire and echoes every
//! frame back after checking it; the parent checks every echo. 100k frames each way, byte-exact,
//! in sequence.

use std::path::PathBuf;
use std::process::Command;

use joyride_drivers::shm::ShmWire;
use joyride_drivers::{Batch, Nic, Pool, PoolConfig, QueueId};

const CHILD_ENV: &str = "JRDRV_SHM_CHILD";
const N: u64 = 100_000;

fn pool() -> Pool {
    Pool::new(PoolConfig { count: 1024, hugepages: false, mlock: false, ..PoolConfig::default() })
        .unwrap()
}

/// Frame `seq`: its length and every byte are functions of `seq`.
fn frame(seq: u64, buf: &mut [u8]) -> usize {
    let len = 60 + (seq.wrapping_mul(7919) % 1454) as usize;
    buf[..8].copy_from_slice(&seq.to_be_bytes());
    let h = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for (i, b) in buf[8..len].iter_mut().enumerate() {
        *b = (h.rotate_left(i as u32 % 64) as u8) ^ (i as u8);
    }
    len
}

#[test]
fn shm_wire_between_two_processes() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm".into()
    } else {
        std::env::temp_dir()
    };
    let path: PathBuf = dir.join(format!("jrdrv-proc-{}", std::process::id()));
    let pool = pool();
    let mut wire = ShmWire::create(&path, 512, 1536, pool.clone()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_echo", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .spawn()
        .unwrap();
    let (mut tx, mut rx) = (Batch::new(32), Batch::new(32));
    let (mut sent, mut echoed) = (0u64, 0u64);
    let mut want = [0u8; 2048];
    let mut idle = 0u64;
    while echoed < N {
        while sent < N && tx.remaining() > 0 {
            let len = frame(sent, &mut want);
            tx.push(pool.alloc_copy(&want[..len]).unwrap()).unwrap();
            sent += 1;
        }
        let t = wire.tx_burst(QueueId(0), &mut tx).unwrap();
        let r = wire.rx_burst(QueueId(0), &mut rx).unwrap();
        for b in rx.drain() {
            let len = frame(echoed, &mut want);
            assert_eq!(b.data(), &want[..len], "echo of frame {echoed}");
            echoed += 1;
        }
        if t + r == 0 {
            idle += 1;
            std::thread::yield_now();
            if idle.is_multiple_of(100_000) {
                if let Some(st) = child.try_wait().unwrap() {
                    panic!("child exited early ({st}) after {echoed} echoes");
                }
            }
        } else {
            idle = 0;
        }
    }
    let st = child.wait().unwrap();
    assert!(st.success(), "child failed: {st}");
    let c = wire.counters();
    assert_eq!((c.tx_packets, c.rx_packets, c.rx_errors), (N, N, 0));
    assert_eq!(c.tx_bytes, c.rx_bytes);
}

/// The child half; does nothing unless started by the test above.
#[test]
#[ignore = "the child process of shm_wire_between_two_processes"]
fn child_echo() {
    let Some(path) = std::env::var_os(CHILD_ENV) else { return };
    let mut wire = ShmWire::open(std::path::Path::new(&path), pool()).unwrap();
    let mut batch = Batch::new(32);
    let mut want = [0u8; 2048];
    let (mut got, mut back) = (0u64, 0u64);
    while back < N {
        if batch.is_empty() {
            wire.rx_burst(QueueId(0), &mut batch).unwrap();
            for b in batch.iter() {
                let len = frame(got, &mut want);
                assert_eq!(b.data(), &want[..len], "child: frame {got}");
                got += 1;
            }
        }
        let n = wire.tx_burst(QueueId(0), &mut batch).unwrap();
        back += n as u64;
        if n == 0 {
            std::thread::yield_now();
        }
    }
    eprintln!("child: {got} frames checked and echoed");
}
