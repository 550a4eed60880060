//! The little checksum arithmetic a backend needs to honour offload conventions: completing a
//! `CHECKSUM_PARTIAL` field (RFC 1071 ones'-complement sum) and finding the L4 checksum field of
//! a frame when the kernel says "not ready" without saying where (`TP_STATUS_CSUMNOTREADY`).
//! The protocol layers have their own, richer checksum code; drivers may not depend on them.

/// RFC 1071 §4.1: the ones'-complement sum of `data` as big-endian 16-bit words (an odd last
/// byte is padded with zero), added to `initial`, folded to 16 bits (not complemented).
pub fn ones_complement_sum(initial: u16, data: &[u8]) -> u16 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Completes a partial checksum in place: the field at `start + offset` holds the pseudo-header
/// sum; the result is the complement of the sum over `frame[start..]` (which includes that field).
/// A result of 0 is written as 0xffff (RFC 768: zero means "no checksum" for UDP; for TCP both
/// encodings verify identically). `false` if the field does not fit in the frame.
pub fn complete_partial(frame: &mut [u8], start: usize, offset: usize) -> bool {
    let Some(field) = start.checked_add(offset) else { return false };
    if field.checked_add(2).is_none_or(|end| end > frame.len()) {
        return false;
    }
    let mut c = !ones_complement_sum(0, &frame[start..]);
    if c == 0 {
        c = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Finds the TCP or UDP checksum field of an Ethernet frame (optionally one 802.1Q tag; IPv4
/// without fragmentation, or IPv6 with TCP/UDP as the first next-header). Returns
/// `(start, offset)` in the [`crate::RxCsum::Partial`] convention, or `None` for anything else.
pub fn locate_l4(frame: &[u8]) -> Option<(u16, u16)> {
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([*frame.get(off)?, *frame.get(off + 1)?]);
    off += 2;
    if ethertype == 0x8100 {
        ethertype = u16::from_be_bytes([*frame.get(off + 2)?, *frame.get(off + 3)?]);
        off += 4;
    }
    let (proto, l4) = match ethertype {
        0x0800 => {
            let vihl = *frame.get(off)?;
            let ihl = usize::from(vihl & 0x0f) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return None;
            }
            let frag = u16::from_be_bytes([*frame.get(off + 6)?, *frame.get(off + 7)?]);
            if frag & 0x3fff != 0 {
                return None; // a fragment: no L4 checksum field in this frame
            }
            (*frame.get(off + 9)?, off + ihl)
        }
        0x86dd => (*frame.get(off + 6)?, off + 40),
        _ => return None,
    };
    let field = match proto {
        6 => 16, // RFC 9293 §3.1: TCP checksum at byte 16 of the header
        17 => 6, // RFC 768: UDP checksum at byte 6
        _ => return None,
    };
    if l4 + field + 2 > frame.len() {
        return None;
    }
    Some((u16::try_from(l4).ok()?, field as u16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example words: 0001 f203 f4f5 f6f7 -> sum ddf2.
        assert_eq!(
            ones_complement_sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(ones_complement_sum(0, &[0xff]), 0xff00);
    }

    fn udp_frame() -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = [0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 99, 0, 1, 10, 99, 0, 2];
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x09, 0, 12, 0, 0]);
        f.extend_from_slice(b"ping");
        f
    }

    #[test]
    fn partial_completion_matches_full_sum() {
        let mut f = udp_frame();
        let (start, off) = locate_l4(&f).unwrap();
        assert_eq!((start, off), (34, 6));
        // Pseudo-header: src, dst, zero+proto, udp length.
        let mut ph = Vec::new();
        ph.extend_from_slice(&f[26..34]);
        ph.extend_from_slice(&[0, 17, 0, 12]);
        let seed = ones_complement_sum(0, &ph);
        f[40..42].copy_from_slice(&seed.to_be_bytes());
        assert!(complete_partial(&mut f, 34, 6));
        // Verification: pseudo-header + segment sums to 0xffff.
        let total = ones_complement_sum(ones_complement_sum(0, &ph), &f[34..]);
        assert_eq!(total, 0xffff);
        assert!(!complete_partial(&mut f, 40, 10));
        assert!(!complete_partial(&mut f, usize::MAX, 6));
    }

    #[test]
    fn locate_rejects_fragments_and_short_frames() {
        let mut f = udp_frame();
        f[20] = 0x20; // MF
        assert_eq!(locate_l4(&f), None);
        assert_eq!(locate_l4(&udp_frame()[..40]), None);
        assert_eq!(locate_l4(&[0u8; 10]), None);
    }
}
