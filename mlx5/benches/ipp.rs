//! Instructions per packet for `rx_burst` and `tx_burst` on the fake HCA, for callgrind.
//!
//! Not a timing benchmark: it runs `ROUNDS` rounds of one 32-frame transmit burst and one
//! 32-frame receive burst, with the fake's work (injecting frames, consuming WQEs behind the
//! UAR doorbell) in functions of its own, so that `callgrind_annotate --inclusive=yes` can
//! separate the driver's inclusive cost from the model's. The README has the commands and the
//! figures. Run plainly (`cargo bench -p joyride-mlx5 --bench ipp`) it only checks that the
//! loop moves every frame.

use joyride_drivers::{Batch, Nic, Pool, PoolConfig, QueueId};
use joyride_mlx5::fake::FakeHca;
use joyride_mlx5::{Mlx5, Mlx5Config};

const BATCH: usize = 32;
const ROUNDS: usize = 1000;
const Q: QueueId = QueueId(0);

/// A 128-byte Ethernet/IPv4/UDP frame to `dst` (checksums not needed: no offload requested).
fn frame(dst: [u8; 6], i: usize) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 9, 0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, 0, 114, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 2, 10, 0, 0, 1]);
    f.extend_from_slice(&[0x9c, 0x40, 0, 80, 0, 94, 0, 0]);
    f.extend((0..86).map(|k| (k ^ i) as u8));
    f
}

/// The model's side of receive: frames arriving from the wire (not the driver's cost).
#[inline(never)]
fn fake_wire_inject(fake: &FakeHca, frames: &[Vec<u8>]) {
    let mut m = fake.m();
    for f in frames {
        assert!(m.inject(f).is_some(), "model refused a frame");
    }
}

/// The application's side of transmit: filling buffers (not the driver's cost).
#[inline(never)]
fn app_fill(pool: &Pool, frames: &[Vec<u8>], b: &mut Batch) {
    for f in frames {
        let _ = b.push(pool.alloc_copy(f).expect("pool"));
    }
}

/// The application's side of receive: consuming and freeing buffers (not the driver's cost).
#[inline(never)]
fn app_consume(out: &mut Batch) -> usize {
    let n = out.len();
    out.clear();
    n
}

#[inline(never)]
fn driver_tx(nic: &mut Mlx5, b: &mut Batch) -> usize {
    nic.tx_burst(Q, b).expect("tx_burst")
}

#[inline(never)]
fn driver_rx(nic: &mut Mlx5, out: &mut Batch) -> usize {
    nic.rx_burst(Q, out).expect("rx_burst")
}

fn main() {
    let fake = FakeHca::new();
    let pool = Pool::new(PoolConfig {
        count: 2048,
        hugepages: false,
        mlock: false,
        ..PoolConfig::default()
    })
    .expect("pool");
    let cfg = Mlx5Config { queues: 1, log_sq_size: 8, log_rq_size: 8, ..Mlx5Config::default() };
    let mut nic = Mlx5::bring_up(fake.device(), pool.clone(), cfg).expect("bring-up");
    let mac = nic.capabilities().mac.0;
    let rx_frames: Vec<Vec<u8>> = (0..BATCH).map(|i| frame(mac, i)).collect();
    let tx_frames: Vec<Vec<u8>> = (0..BATCH).map(|i| frame([2, 0, 0, 0, 0, 1], i)).collect();
    let mut tx = Batch::new(BATCH);
    let mut rx = Batch::new(BATCH);
    let (mut sent, mut got) = (0, 0);
    for _ in 0..ROUNDS {
        app_fill(&pool, &tx_frames, &mut tx);
        sent += driver_tx(&mut nic, &mut tx);
        fake.m().sent.clear();
        fake.m().tx_records.clear();
        fake_wire_inject(&fake, &rx_frames);
        got += driver_rx(&mut nic, &mut rx);
        app_consume(&mut rx);
    }
    assert_eq!((sent, got), (BATCH * ROUNDS, BATCH * ROUNDS), "every frame moved");
    let c = nic.counters();
    assert_eq!((c.tx_errors, c.rx_errors, c.tx_drops), (0, 0, 0));
    println!(
        "ipp: {ROUNDS} rounds of {BATCH}-frame tx and rx bursts, all {sent}+{got} frames moved"
    );
}
