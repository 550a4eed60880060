//! [`IdHasher`]: a fast hasher for small keys the program assigns itself.

use core::hash::{BuildHasherDefault, Hasher};

/// Multiply-rotate hashing of integers (one multiply per word), for map keys that Joyride
/// assigns itself — socket ids, slot indices, handles. Not for keys a peer or an application
/// chooses (addresses, ports): those need a keyed hash against collision floods.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(K);
        }
    }

    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(K);
    }

    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }

    fn write_isize(&mut self, v: isize) {
        self.write_u64(v as u64);
    }
}

/// `HashMap<K, V, BuildIdHasher>`: a map keyed by Joyride-assigned ids.
pub type BuildIdHasher = BuildHasherDefault<IdHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use core::hash::{BuildHasher, Hash};

    fn h<T: Hash>(t: T) -> u64 {
        BuildIdHasher::default().hash_one(t)
    }

    #[test]
    fn distinct_small_ids_hash_apart_and_repeat() {
        assert_eq!(h(7u32), h(7u32));
        let mut seen = [0u64; 64];
        for (i, s) in seen.iter_mut().enumerate() {
            *s = h(i as u32) >> 57; // the top 7 bits: what hashbrown's control bytes use
        }
        // Consecutive ids spread over the control-byte values rather than collapsing.
        let mut distinct = seen.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > 32, "{distinct:?}");
    }
}
