//! The fast checksum against the RFC 1071 reference: every alignment of the input (offsets
//! 0..16), partial sums combined at even offsets, and RFC 1624 incremental update.
#![no_main]

use joyride_ip::checksum::{checksum, combine, fold, reference_sum, sum, update};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for off in 0..data.len().min(16) {
        let s = &data[off..];
        assert_eq!(fold(sum(s)), fold(reference_sum(s)), "offset {off}");
    }
    assert_eq!(checksum(data), !fold(reference_sum(data)));
    if data.len() >= 4 {
        // Split at an even offset chosen by the data.
        let split = (usize::from(data[0]) * 2).min(data.len() & !1);
        let (a, b) = data.split_at(split);
        assert_eq!(fold(combine(sum(a), sum(b))), fold(sum(data)));
        // Replace the word at that offset (or the last whole word) and update incrementally.
        let at = split.min(data.len() - 2) & !1;
        let old = u16::from_be_bytes([data[at], data[at + 1]]);
        let new = u16::from_be_bytes([data[1], data[2]]);
        let mut changed = data.to_vec();
        changed[at..at + 2].copy_from_slice(&new.to_be_bytes());
        let incremental = update(checksum(data), old, new);
        if changed.iter().all(|&b| b == 0) {
            // RFC 1624 §3: the one degenerate case, -0 instead of +0.
            assert_eq!((incremental, checksum(&changed)), (0, 0xFFFF));
        } else {
            assert_eq!(incremental, checksum(&changed));
        }
    }
});
