use super::*;
use crate::{CsumRequest, PoolConfig};
use std::os::unix::fs::FileExt;

pub(super) fn pool(count: u32) -> Pool {
    Pool::new(PoolConfig { count, hugepages: false, mlock: false, ..PoolConfig::default() })
        .unwrap()
}

fn tmp_path(tag: &str) -> PathBuf {
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("jrdrv-{tag}-{}", std::process::id()))
}

/// Frame `seq`: length varies with the sequence number; bytes are a function of (seq, index).
pub(super) fn frame(seq: u64, buf: &mut [u8]) -> usize {
    let len = 64 + (seq.wrapping_mul(7919) % 1400) as usize;
    buf[..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in buf[8..len].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    len
}

#[test]
fn threads_move_100k_frames_byte_exact() {
    const N: u64 = 100_000;
    let path = tmp_path("thr");
    let mut a = ShmWire::create(&path, 256, 2048, pool(512)).unwrap();
    let p2 = path.clone();
    let rx = std::thread::spawn(move || {
        let mut b = ShmWire::open(&p2, pool(512)).unwrap();
        let mut batch = Batch::new(32);
        let mut expect = 0u64;
        let mut want = [0u8; 2048];
        while expect < N {
            b.rx_burst(QueueId(0), &mut batch).unwrap();
            if batch.is_empty() {
                std::thread::yield_now();
            }
            for f in batch.drain() {
                let len = frame(expect, &mut want);
                assert_eq!(f.data(), &want[..len], "frame {expect}");
                expect += 1;
            }
        }
        b.counters()
    });
    let tx_pool = pool(64);
    let mut batch = Batch::new(32);
    let mut seq = 0u64;
    let mut scratch = [0u8; 2048];
    while seq < N || !batch.is_empty() {
        while seq < N && batch.remaining() > 0 {
            let len = frame(seq, &mut scratch);
            batch.push(tx_pool.alloc_copy(&scratch[..len]).unwrap()).unwrap();
            seq += 1;
        }
        if a.tx_burst(QueueId(0), &mut batch).unwrap() == 0 {
            std::thread::yield_now();
        }
    }
    let rc = rx.join().unwrap();
    assert_eq!(rc.rx_packets, N);
    assert_eq!(a.counters().tx_packets, N);
    assert_eq!(a.counters().tx_bytes, rc.rx_bytes);
    assert_eq!(rc.rx_errors, 0);
}

#[test]
fn both_directions_and_checksum_flag_travel() {
    let path = tmp_path("dir");
    let mut a = ShmWire::create(&path, 4, 256, pool(8)).unwrap();
    assert!(!a.link().up, "no peer yet");
    let mut b = ShmWire::open(&path, pool(8)).unwrap();
    assert!(a.link().up);
    assert!(matches!(ShmWire::open(&path, pool(1)), Err(ShmError::PeerAttached)));
    let mut tx = Batch::new(8);
    for i in 0..6u8 {
        let mut f = b.pool.alloc_copy(&[i; 100]).unwrap();
        if i == 1 {
            f.set_tx_csum(Some(CsumRequest { start: 34, offset: 6 }));
        }
        tx.push(f).unwrap();
    }
    assert_eq!(b.tx_burst(QueueId(0), &mut tx).unwrap(), 4, "ring of 4 slots");
    assert_eq!(tx.len(), 2);
    let mut rx = Batch::new(8);
    assert_eq!(a.rx_burst(QueueId(0), &mut rx).unwrap(), 4);
    assert_eq!(rx.as_slice()[1].rx_csum(), RxCsum::Partial { start: 34, offset: 6 });
    assert_eq!(rx.as_slice()[0].rx_csum(), RxCsum::Unknown);
    assert_eq!(b.tx_burst(QueueId(0), &mut tx).unwrap(), 2, "slots freed by the consumer");
    let big = a.pool.alloc_copy(&[9; 300]).unwrap();
    let mut t2 = Batch::new(1);
    t2.push(big).unwrap();
    assert_eq!(a.tx_burst(QueueId(0), &mut t2).unwrap(), 1);
    assert_eq!(a.counters().tx_drops, 1, "a frame larger than a slot is dropped and counted");
    drop(b);
    assert!(!a.link().up);
    assert!(ShmWire::open(&path, pool(1)).is_ok(), "a new peer may attach after the old one left");
}

fn corrupt_and_open(tag: &str, edit: impl FnOnce(&File)) -> ShmError {
    let path = tmp_path(tag);
    let _a = ShmWire::create(&path, 8, 256, pool(4)).unwrap();
    let f = OpenOptions::new().read(true).write(true).open(&path).unwrap();
    edit(&f);
    ShmWire::open(&path, pool(4)).unwrap_err()
}

fn rewrite_check(f: &File) {
    let mut hdr = [0u8; H_CHECK];
    f.read_exact_at(&mut hdr, 0).unwrap();
    f.write_all_at(&fnv1a(&hdr).to_ne_bytes(), H_CHECK as u64).unwrap();
}

#[test]
fn corrupted_or_foreign_files_are_rejected() {
    let e = corrupt_and_open("magic", |f| f.write_all_at(b"X", 3).unwrap());
    assert!(matches!(e, ShmError::BadMagic), "{e}");
    let e =
        corrupt_and_open("ver", |f| f.write_all_at(&7u32.to_ne_bytes(), H_VERSION as u64).unwrap());
    assert!(matches!(e, ShmError::BadVersion(7)), "{e}");
    // A flipped bit in a field is caught by the check...
    let e = corrupt_and_open("flip", |f| f.write_all_at(&[0x10], H_SLOTS as u64).unwrap());
    assert!(matches!(e, ShmError::Checksum), "{e}");
    // ...and a consistent-looking but wrong header by the layout validation.
    let e = corrupt_and_open("slots", |f| {
        f.write_all_at(&3u32.to_ne_bytes(), H_SLOTS as u64).unwrap();
        rewrite_check(f);
    });
    assert!(matches!(e, ShmError::BadHeader(_)), "{e}");
    let e = corrupt_and_open("big", |f| {
        f.write_all_at(&16u32.to_ne_bytes(), H_SLOTS as u64).unwrap();
        rewrite_check(f);
    });
    assert!(matches!(e, ShmError::BadHeader(_)), "slots larger than the file: {e}");
    let e = corrupt_and_open("trunc", |f| f.set_len(5000).unwrap());
    assert!(matches!(e, ShmError::BadHeader(_)), "{e}");
    let e = corrupt_and_open("tiny", |f| f.set_len(100).unwrap());
    assert!(matches!(e, ShmError::TooSmall(100)), "{e}");
    let e =
        corrupt_and_open("state", |f| f.write_all_at(&0u32.to_ne_bytes(), H_STATE as u64).unwrap());
    assert!(matches!(e, ShmError::NotReady), "{e}");
    let e = corrupt_and_open("ctr", |f| {
        let ring0 = HEADER_LEN as u64;
        f.write_all_at(&1000u64.to_ne_bytes(), ring0 + R_HEAD as u64).unwrap();
    });
    assert!(matches!(e, ShmError::BadHeader("ring counters")), "{e}");
    // A foreign file of the right size class.
    let path = tmp_path("foreign");
    std::fs::write(&path, vec![0xa5u8; 1 << 16]).unwrap();
    assert!(matches!(ShmWire::open(&path, pool(1)), Err(ShmError::BadMagic)));
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(ShmWire::create(&path, 3, 256, pool(1)), Err(ShmError::Config(_))));
}

#[test]
fn hostile_peer_values_on_the_data_path_are_contained() {
    let path = tmp_path("hostile");
    let mut a = ShmWire::create(&path, 8, 256, pool(16)).unwrap();
    let mut b = ShmWire::open(&path, pool(16)).unwrap();
    let mut tx = Batch::new(4);
    for i in 0..3u8 {
        tx.push(b.pool.alloc_copy(&[i; 80]).unwrap()).unwrap();
    }
    b.tx_burst(QueueId(0), &mut tx).unwrap();
    // The peer scribbles: slot 0 claims a huge length, slot 1 bad checksum offsets.
    let ring1 = a.layout.ring[1];
    a.map.write_u32(a.slot_off(ring1, 0), 1 << 30);
    a.map.write_u16(a.slot_off(ring1, 1) + 4, FLAG_CSUM_PARTIAL);
    a.map.write_u16(a.slot_off(ring1, 1) + 6, 79);
    let mut rx = Batch::new(8);
    assert_eq!(a.rx_burst(QueueId(0), &mut rx).unwrap(), 2);
    assert_eq!(rx.as_slice()[0].rx_csum(), RxCsum::Unknown);
    assert_eq!(rx.as_slice()[1].data(), &[2u8; 80][..]);
    assert_eq!(a.counters().rx_errors, 2);
    // Then claims a head far beyond the tail.
    a.map.atomic_u64(ring1 + R_HEAD).store(1 << 40, Ordering::Release);
    assert!(matches!(a.rx_burst(QueueId(0), &mut rx), Err(NicError::Corrupt(_))));
    // And a tail beyond our head on our transmit ring.
    a.map.atomic_u64(a.layout.ring[0] + R_TAIL).store(77, Ordering::Release);
    let mut t = Batch::new(16);
    for _ in 0..9 {
        t.push(a.pool.alloc().unwrap()).unwrap();
    }
    assert!(matches!(a.tx_burst(QueueId(0), &mut t), Err(NicError::Corrupt(_))));
}

/// Whether `fd` is readable right now.
fn readable(fd: RawFd) -> bool {
    crate::sys::poll_readable(fd, 0).unwrap()
}

#[test]
fn doorbell_wakes_a_sleeping_consumer_only() {
    let path = tmp_path("bell");
    let mut a = ShmWire::create(&path, 8, 256, pool(16)).unwrap();
    let mut b = ShmWire::open(&path, pool(16)).unwrap();
    let (fa, fb) = (a.wait_fd(QueueId(0)).unwrap(), b.wait_fd(QueueId(0)).unwrap());
    assert_ne!(fa, fb);
    let send = |w: &mut ShmWire| {
        let mut t = Batch::new(1);
        t.push(w.pool.alloc_copy(&[7; 80]).unwrap()).unwrap();
        assert_eq!(w.tx_burst(QueueId(0), &mut t).unwrap(), 1);
    };
    // A consumer that is not waiting costs the producer no doorbell.
    send(&mut a);
    assert!(!readable(fb) && a.bells_rung() == 0);
    // A frame in the ring: preparing to sleep refuses.
    assert!(!b.prepare_wait(QueueId(0)));
    let mut rx = Batch::new(8);
    assert_eq!(b.rx_burst(QueueId(0), &mut rx).unwrap(), 1);
    // An empty ring: the consumer sleeps, and the next frame rings its doorbell once.
    assert!(b.prepare_wait(QueueId(0)));
    assert!(!readable(fb));
    send(&mut a);
    send(&mut a);
    assert!(readable(fb) && a.bells_rung() == 1, "one wake-up per sleep");
    assert!(crate::sys::poll_readable(fb, 1000).unwrap());
    b.end_wait(QueueId(0));
    assert!(!readable(fb), "end_wait drains the doorbell");
    assert_eq!(b.rx_burst(QueueId(0), &mut rx).unwrap(), 2);
    // The other direction has its own doorbell.
    assert!(a.prepare_wait(QueueId(0)));
    send(&mut b);
    assert!(readable(fa) && !readable(fb) && b.bells_rung() == 1);
    a.end_wait(QueueId(0));
    // The creator removes the file and both doorbells.
    drop((a, b));
    for p in [path.clone(), bell_path(&path, 0), bell_path(&path, 1)] {
        assert!(!p.exists(), "{} left behind", p.display());
    }
}

#[test]
fn a_doorbell_that_is_not_a_fifo_is_refused() {
    let path = tmp_path("badbell");
    let a = ShmWire::create(&path, 8, 256, pool(4)).unwrap();
    let bell = bell_path(&path, 0);
    std::fs::remove_file(&bell).unwrap();
    std::fs::write(&bell, b"not a fifo").unwrap();
    assert!(matches!(ShmWire::open(&path, pool(4)), Err(ShmError::BadHeader(_))));
    assert_eq!(std::fs::read(&bell).unwrap(), b"not a fifo", "nothing written into it");
    std::fs::remove_file(&bell).unwrap();
    std::os::unix::fs::symlink("/dev/null", &bell).unwrap();
    assert!(matches!(ShmWire::open(&path, pool(4)), Err(ShmError::BadHeader(_))));
    drop(a);
}
