//! The Internet checksum (RFC 1071), its incremental update (RFC 1624) and the IPv4
//! pseudo-header (RFC 9293 §3.1, RFC 768).
//!
//! # Partial sums
//!
//! [`sum`] returns a *partial* one's-complement sum as a `u32`: a value congruent modulo
//! `0xFFFF` to the sum of the data read as big-endian 16-bit words. It is not necessarily folded
//! to 16 bits; [`fold`] does that, and [`checksum`] is `!fold(sum(data))`. Partial sums add with
//! [`combine`] (end-around carry), so a header and a payload can be summed separately and
//! joined.
//!
//! **Odd lengths.** A trailing odd byte is treated as the *high* byte of a word padded with a
//! zero (RFC 1071 §4.1: "add left-over byte, if any"). Two partial sums may therefore only be
//! combined when the second one starts at an *even* offset of the whole: `combine(sum(a),
//! sum(b)) == sum(a ++ b)` (modulo `0xFFFF`) holds when `a.len()` is even. (If `a.len()` were
//! odd, `sum(b)` would have to be byte-swapped first — RFC 1071 §2(B) — which this module does
//! not do for you.)
//!
//! # The fast path
//!
//! One's-complement addition is commutative, associative and byte-order independent
//! (RFC 1071 §2(A), §2(B)): summing native-endian words and swapping the folded result gives the
//! same value as summing big-endian words. [`sum`] therefore loads 4 native-endian bytes at a
//! time, widens them into `u64` accumulators (which cannot overflow for any realistic buffer:
//! see the block size below), and lets the compiler vectorize the loop — safe Rust only. It is
//! checked against [`reference_sum`], the plain 16-bit-at-a-time loop of RFC 1071 §4.1, by
//! property tests and a fuzz target.

use crate::Ipv4Addr;

/// Bytes summed per inner block before the accumulators are folded. Each 4-byte word adds less
/// than 2^32 to one of 8 `u64` lanes, so a lane overflows only after 2^32 words; 1 MiB blocks
/// stay far below that.
const BLOCK: usize = 1 << 20;

/// Bytes consumed per iteration of the inner loop (8 words of 4 bytes, one per lane).
const STRIDE: usize = 32;

/// The partial one's-complement sum of `data`, read as big-endian 16-bit words (RFC 1071).
///
/// The result is congruent modulo `0xFFFF` to the RFC 1071 sum, is zero exactly when every
/// byte of `data` is zero, and is not complemented. A trailing odd byte counts as the high byte
/// of a zero-padded word, so partial sums may only be [`combine`]d at even offsets (see the
/// module documentation).
pub fn sum(data: &[u8]) -> u32 {
    let mut total: u64 = 0;
    for block in data.chunks(BLOCK) {
        total = add_u64(total, sum_block_ne(block));
    }
    // The native-endian sum, folded to 16 bits, then brought to network order:
    // RFC 1071 §2(B): byte order independence — swapping the folded sum equals summing swapped
    // words.
    // On little-endian targets that means swapping; `from_be` is exactly that.
    u32::from(u16::from_be(fold64(total)))
}

/// Sums one block (at most [`BLOCK`] bytes) as native-endian words into a `u64` whose value is
/// congruent modulo `0xFFFF` to the native-endian 16-bit one's-complement sum.
#[inline]
fn sum_block_ne(block: &[u8]) -> u64 {
    let mut lanes = [0u64; STRIDE / 4];
    let mut chunks = block.chunks_exact(STRIDE);
    for chunk in &mut chunks {
        for (lane, word) in lanes.iter_mut().zip(chunk.chunks_exact(4)) {
            // Each word is < 2^32; see BLOCK for why the lane cannot overflow.
            *lane += u64::from(u32::from_ne_bytes([word[0], word[1], word[2], word[3]]));
        }
    }
    let mut acc: u64 = lanes.iter().sum();
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_ne_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        // RFC 1071 §4.1: the left-over byte is the high-order byte of a zero-padded word; in
        // native order that word is the bytes [last, 0].
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    acc
}

/// `a + b` with end-around carry on 64 bits (2^64 ≡ 1 modulo 0xFFFF).
#[inline(always)]
fn add_u64(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s + u64::from(carry)
}

/// Folds a 64-bit partial sum to 16 bits with end-around carries.
#[inline(always)]
fn fold64(s: u64) -> u16 {
    let s = (s & 0xFFFF_FFFF) + (s >> 32);
    let s = (s & 0xFFFF_FFFF) + (s >> 32);
    fold(s as u32)
}

/// Folds a partial sum to 16 bits by adding the carries back in (RFC 1071 §4.1). Not
/// complemented: the checksum field holds `!fold(..)`.
///
/// Returns 0 only for a zero sum; any non-zero multiple of `0xFFFF` folds to `0xFFFF`.
#[inline]
pub fn fold(sum: u32) -> u16 {
    let s = (sum & 0xFFFF) + (sum >> 16);
    let s = (s & 0xFFFF) + (s >> 16);
    s as u16
}

/// The Internet checksum of `data`: `!fold(sum(data))`, the value to store in a header whose
/// checksum field was zero while summing (RFC 1071 §1).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The partial sum of the IPv4 pseudo-header that TCP and UDP checksums cover (RFC 9293 §3.1,
/// RFC 768): source address, destination address, zero, protocol, and the TCP/UDP length.
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u32 {
    let s = src.octets();
    let d = dst.octets();
    let word = |hi: u8, lo: u8| u32::from(u16::from_be_bytes([hi, lo]));
    // RFC 9293 §3.1: the 96-bit pseudo-header: src, dst, zero byte + PTCL, TCP length.
    word(s[0], s[1])
        + word(s[2], s[3])
        + word(d[0], d[1])
        + word(d[2], d[3])
        + u32::from(protocol)
        + u32::from(length)
}

/// Adds two partial sums with end-around carry (2^32 ≡ 1 modulo 0xFFFF, so the result stays
/// congruent). The second sum must cover data that starts at an even offset (see the module
/// documentation).
#[inline]
pub fn combine(a: u32, b: u32) -> u32 {
    let (s, carry) = a.overflowing_add(b);
    s + u32::from(carry)
}

/// Incrementally updates a checksum when one 16-bit word of the covered data changes from
/// `old_word` to `new_word`, without re-summing (RFC 1624 §3, eqn. 3: `HC' = ~(~HC + ~m + m')`).
///
/// The result equals recomputation from scratch except in one degenerate case RFC 1624 §3
/// describes: when the updated data sums to zero (all-zero data), recomputation gives `0xFFFF`
/// and this gives `0x0000` — equal in one's complement, and impossible for real IP/TCP/UDP
/// headers.
#[inline]
pub fn update(old_checksum: u16, old_word: u16, new_word: u16) -> u16 {
    // RFC 1624 §3 eqn. 3: HC' = ~(~HC + ~m + m').
    !fold(u32::from(!old_checksum) + u32::from(!old_word) + u32::from(new_word))
}

/// [`update`] for a 32-bit field (an IPv4 address, a sequence number) that changes from `old`
/// to `new`, treated as two 16-bit words (RFC 1624 §3).
#[inline]
pub fn update_u32(old_checksum: u16, old: u32, new: u32) -> u16 {
    // RFC 1624 §3 eqn. 3, applied to both halves at once.
    !fold(
        u32::from(!old_checksum)
            + u32::from(!(old >> 16) as u16)
            + u32::from(!(old as u16))
            + (new >> 16)
            + (new & 0xFFFF),
    )
}

/// The plain RFC 1071 §4.1 reference: big-endian 16-bit words added one at a time into a `u32`
/// with end-around carry, a trailing odd byte as the high byte of a zero-padded word. Slow;
/// for tests, fuzzing and benchmarks.
pub fn reference_sum(data: &[u8]) -> u32 {
    let mut acc: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc = combine(acc, u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    if let [last] = words.remainder() {
        acc = combine(acc, u32::from(*last) << 8);
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 worked example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to 0xddf2 (folded).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(fold(reference_sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_byte_is_high_byte() {
        assert_eq!(fold(sum(&[0xab])), 0xab00);
        assert_eq!(fold(sum(&[0x01, 0x02, 0x03])), 0x0102 + 0x0300);
    }

    #[test]
    fn zero_only_for_zero_data() {
        assert_eq!(fold(sum(&[0u8; 100])), 0);
        assert_eq!(fold(sum(&[])), 0);
        // 0xFFFF ≡ 0 but data is non-zero: folds to 0xFFFF, never 0.
        assert_eq!(fold(sum(&[0xff, 0xff])), 0xffff);
        assert_eq!(fold(sum(&[0xff; 64])), 0xffff);
    }

    #[test]
    fn ipv4_header_verifies() {
        // A header with a correct checksum sums to 0xFFFF (RFC 1071 §1).
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        let c = checksum(&hdr);
        assert_eq!(c, 0xb861); // the well-known value for this header
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(fold(sum(&hdr)), 0xffff);
    }

    #[test]
    fn large_buffer_crosses_blocks() {
        let data: Vec<u8> = (0..(BLOCK * 2 + 37)).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(fold(sum(&data)), fold(reference_sum(&data)));
    }

    /// The incremental result equals recomputation, except the documented all-zero case.
    fn check_update(incremental: u16, data: &[u8]) -> Result<(), TestCaseError> {
        if data.iter().all(|&b| b == 0) {
            prop_assert_eq!((incremental, checksum(data)), (0x0000, 0xffff));
        } else {
            prop_assert_eq!(incremental, checksum(data));
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn fast_equals_reference(data in proptest::collection::vec(any::<u8>(), 0..2000),
                                 off in 0usize..16) {
            let off = off.min(data.len());
            let s = &data[off..];
            prop_assert_eq!(fold(sum(s)), fold(reference_sum(s)));
        }

        #[test]
        fn combine_at_even_offsets(data in proptest::collection::vec(any::<u8>(), 0..600),
                                   split in 0usize..300) {
            let split = (split * 2).min(data.len() & !1);
            let (a, b) = data.split_at(split);
            prop_assert_eq!(fold(combine(sum(a), sum(b))), fold(sum(&data)));
        }

        #[test]
        fn incremental_update(mut data in proptest::collection::vec(any::<u8>(), 2..200),
                              idx in 0usize..100, new in any::<u16>()) {
            let idx = (idx % (data.len() / 2)) * 2;
            let old_ck = checksum(&data);
            let old = u16::from_be_bytes([data[idx], data[idx + 1]]);
            data[idx..idx + 2].copy_from_slice(&new.to_be_bytes());
            check_update(update(old_ck, old, new), &data)?;
        }

        #[test]
        fn incremental_update_u32(mut data in proptest::collection::vec(any::<u8>(), 4..200),
                                  idx in 0usize..50, new in any::<u32>()) {
            let idx = (idx % (data.len() / 4)) * 4;
            let old_ck = checksum(&data);
            let old = u32::from_be_bytes([data[idx], data[idx + 1], data[idx + 2], data[idx + 3]]);
            data[idx..idx + 4].copy_from_slice(&new.to_be_bytes());
            check_update(update_u32(old_ck, old, new), &data)?;
        }

        #[test]
        fn incremental_update_sparse(len in 1usize..40, idx in 0usize..40, old in any::<u16>(),
                                     new in any::<u16>()) {
            // Mostly-zero data reaches the edge cases (old or new data all zero).
            let mut data = std::vec![0u8; len * 2];
            let idx = (idx % len) * 2;
            data[idx..idx + 2].copy_from_slice(&old.to_be_bytes());
            let old_ck = checksum(&data);
            data[idx..idx + 2].copy_from_slice(&new.to_be_bytes());
            check_update(update(old_ck, old, new), &data)?;
        }

        #[test]
        fn pseudo_header_matches_bytes(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(),
                                       proto in any::<u8>(), len in any::<u16>()) {
            let mut ph = [0u8; 12];
            ph[0..4].copy_from_slice(&src);
            ph[4..8].copy_from_slice(&dst);
            ph[9] = proto;
            ph[10..12].copy_from_slice(&len.to_be_bytes());
            let got = pseudo_header_v4(Ipv4Addr::from(src), Ipv4Addr::from(dst), proto, len);
            prop_assert_eq!(fold(got), fold(reference_sum(&ph)));
        }
    }
}
