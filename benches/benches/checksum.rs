//! `checksum::sum` throughput next to `copy_from_slice` (memcpy) of the same buffer, hot cache.
//!
//! Run: `cargo bench -p joyride-benches --bench checksum`. The goal: the checksum runs at
//! ≥ 25% of memcpy's throughput on 1500-byte buffers.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use joyride_ip::checksum;

const SIZES: [usize; 3] = [64, 1500, 9000];

fn data(len: usize) -> Vec<u8> {
    // Deterministic, non-trivial bytes.
    (0..len).map(|i| (i.wrapping_mul(131) ^ (i >> 3)) as u8).collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in SIZES {
        let src = data(len);
        let mut dst = vec![0u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("sum", len), &src, |b, s| {
            b.iter(|| checksum::sum(black_box(s.as_slice())))
        });
        g.bench_with_input(BenchmarkId::new("memcpy", len), &src, |b, s| {
            b.iter(|| {
                dst.copy_from_slice(black_box(s.as_slice()));
                black_box(&mut dst);
            })
        });
        g.bench_with_input(BenchmarkId::new("reference_sum", len), &src, |b, s| {
            b.iter(|| checksum::reference_sum(black_box(s.as_slice())))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
