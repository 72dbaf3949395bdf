//! The hasher of the internal maps, whose keys are already hashes or addresses: SipHash
//! would only cost time there, and nothing in these maps comes from an attacker unhashed.

use std::hash::{BuildHasherDefault, Hasher};

/// Mixes each integer written in with a multiply: one instruction per word.
#[derive(Default)]
pub(crate) struct Mix(u64);

impl Hasher for Mix {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// [`Mix`] for `HashMap`s.
pub(crate) type BuildMix = BuildHasherDefault<Mix>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn distinct_words_spread() {
        let build = BuildMix::default();
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000_u64 {
            // hashbrown picks buckets with the low bits and tags with the top 7.
            seen.insert((build.hash_one(i) & 0xfff, build.hash_one(i) >> 57));
        }
        assert!(seen.len() > 9_000);
        assert_ne!(
            build.hash_one((1_usize, 2_usize)),
            build.hash_one((2_usize, 1_usize))
        );
    }
}
