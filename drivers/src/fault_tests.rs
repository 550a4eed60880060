use super::*;
use crate::loopback::Loopback;
use crate::PoolConfig;

const N: u64 = 20_000;

fn expected(seq: u64) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..8].copy_from_slice(&seq.to_be_bytes());
    // Every bit of `seq` influences the pattern, so a flipped sequence bit cannot pass as
    // another intact frame.
    let h = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for (i, b) in f[8..].iter_mut().enumerate() {
        *b = (h.rotate_left(i as u32) as u8) ^ (i as u8);
    }
    f
}

/// Pushes N frames through a faulty loopback; returns the stats and, per received frame, its
/// claimed sequence number and whether it is intact.
fn run(seed: u64, rx: FaultProfile, tx: FaultProfile) -> (FaultStats, Vec<(u64, bool)>) {
    let pool =
        Pool::new(PoolConfig { count: 1024, hugepages: false, mlock: false, ..Default::default() })
            .unwrap();
    let mut nic = FaultNic::new(Loopback::new(128, 1500), seed, rx, tx, pool.clone(), 32);
    let (mut txb, mut rxb) = (Batch::new(32), Batch::new(32));
    let mut got = Vec::new();
    let mut seq = 0;
    let mut idle = 0;
    while idle < 4 {
        while seq < N && txb.remaining() > 0 {
            txb.push(pool.alloc_copy(&expected(seq)).unwrap()).unwrap();
            seq += 1;
        }
        nic.tx_burst(QueueId(0), &mut txb).unwrap();
        let n = nic.rx_burst(QueueId(0), &mut rxb).unwrap();
        for b in rxb.drain() {
            let s = u64::from_be_bytes(b.data()[..8].try_into().unwrap());
            got.push((s, b.data() == expected(s)));
        }
        idle = if seq == N && txb.is_empty() && n == 0 && nic.tx_backlog() == 0 {
            idle + 1
        } else {
            0
        };
    }
    assert_eq!(pool.available(), pool.capacity(), "every buffer is back: no leak");
    (nic.stats(), got)
}

fn assert_near(what: &str, x: u64, n: u64, p: f64) {
    let mean = n as f64 * p;
    let sd = (n as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (x as f64 - mean).abs() <= 5.0 * sd + 1.0,
        "{what}: {x} vs expected {mean:.0} ± {:.0}",
        5.0 * sd
    );
}

fn check_direction(c: FaultCounts, p: FaultProfile, got: &[(u64, bool)]) {
    assert_eq!(c.seen, N);
    assert_near("dropped", c.dropped, N, p.drop);
    let passed = N - c.dropped;
    assert_near("corrupted", c.corrupted, passed, p.corrupt);
    assert_near("duplicated", c.duplicated, passed, p.duplicate);
    // Reorder is only rolled while nothing is held: slightly fewer than p * passed.
    assert!(
        c.reordered as f64 <= passed as f64 * p.reorder * 1.1 + 5.0,
        "reordered {}",
        c.reordered
    );
    assert!(
        c.reordered as f64 >= passed as f64 * p.reorder * 0.8 - 5.0,
        "reordered {}",
        c.reordered
    );
    assert_eq!(got.len() as u64, passed + c.duplicated, "every surviving frame and copy arrives");
    let damaged = got.iter().filter(|g| !g.1).count() as u64;
    assert!(damaged >= c.corrupted && damaged <= 2 * c.corrupted, "damaged {damaged}");
    let mut max = 0;
    let mut inversions = 0;
    for &(s, ok) in got {
        if ok && s < max {
            inversions += 1;
        }
        if ok {
            max = max.max(s);
        }
    }
    assert!(inversions + c.corrupted + 1 >= c.reordered, "inversions {inversions}");
    assert!(inversions <= c.reordered, "reordering only comes from held frames");
}

#[test]
fn tx_faults_match_probabilities_and_replay_from_the_seed() {
    let p = FaultProfile { drop: 0.1, duplicate: 0.05, reorder: 0.05, corrupt: 0.02 };
    let (s1, g1) = run(42, FaultProfile::default(), p);
    check_direction(s1.tx, p, &g1);
    // Seeded, so the exact counts are fixed. Pinned from a recorded run (the statistical checks
    // above are what say they are plausible): a change in roll order, in the RNG or in how
    // frames flow through the wrapper shows up here.
    let pinned =
        FaultCounts { seen: N, dropped: 2009, duplicated: 874, reordered: 864, corrupted: 360 };
    assert_eq!(s1.tx, pinned);
    assert_eq!(s1.rx, FaultCounts { seen: g1.len() as u64, ..Default::default() });
    let (s2, g2) = run(42, FaultProfile::default(), p);
    assert_eq!(s1, s2, "same seed, same faults");
    assert_eq!(g1, g2, "same seed, same frames in the same order");
    let (s3, _) = run(43, FaultProfile::default(), p);
    assert_ne!(s1.tx, s3.tx, "another seed, other faults");
}

#[test]
fn rx_faults_match_probabilities() {
    let p = FaultProfile { drop: 0.05, duplicate: 0.1, reorder: 0.1, corrupt: 0.05 };
    let (s, g) = run(7, p, FaultProfile::default());
    check_direction(s.rx, p, &g);
    let pinned =
        FaultCounts { seen: N, dropped: 998, duplicated: 1874, reordered: 1687, corrupted: 941 };
    assert_eq!(s.rx, pinned, "seeded: exact counts are deterministic (pinned from a recorded run)");
    assert_eq!(s.tx.dropped + s.tx.duplicated + s.tx.corrupted + s.tx.reordered, 0);
}

#[test]
fn no_faults_is_transparent() {
    let (s, g) = run(1, FaultProfile::default(), FaultProfile::default());
    assert_eq!(g.len() as u64, N);
    assert!(g.iter().enumerate().all(|(i, &(seq, ok))| ok && seq == i as u64));
    assert_eq!(s.rx.seen, N);
}

#[test]
fn corrupted_frames_lose_their_checksum_trust() {
    // A frame with a partial (trusted, unchecked) L4 checksum that gets a bit flipped must not
    // stay trusted: the wrapper completes the checksum before flipping and clears the claim.
    let pool =
        Pool::new(PoolConfig { count: 64, hugepages: false, mlock: false, ..Default::default() })
            .unwrap();
    let all = FaultProfile { corrupt: 1.0, ..Default::default() };
    let mut nic =
        FaultNic::new(Loopback::new(8, 1500), 3, all, FaultProfile::default(), pool.clone(), 4);
    // Ethernet + IPv4 + UDP (checksum field at 14 + 20 + 6), payload after.
    let mut f = vec![0u8; 14 + 20 + 8 + 32];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[23] = 17;
    let mut b = pool.alloc_copy(&f).unwrap();
    b.set_rx_csum(RxCsum::Partial { start: 34, offset: 6 });
    let mut txb = Batch::new(4);
    txb.push(b).unwrap();
    nic.tx_burst(QueueId(0), &mut txb).unwrap();
    let mut rxb = Batch::new(4);
    // The loopback hands the frame back as received; the rx direction corrupts it.
    let _ = nic.rx_burst(QueueId(0), &mut rxb).unwrap();
    let b = rxb.pop().expect("frame comes back");
    assert_eq!(nic.stats().rx.corrupted, 1);
    assert_eq!(b.rx_csum(), RxCsum::Unknown);
}
