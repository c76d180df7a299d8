//! A fast, unkeyed hash for the tokenizer's lookup tables.
//!
//! The tables are built once from the vocabulary and only looked up while encoding,
//! so an attacker who controls the text cannot grow a bucket; std's keyed SipHash
//! buys nothing here and costs most of the lookup time. Input is mixed 8 bytes at a
//! time and the result finished with SplitMix64's avalanche, so both the high bits
//! (hashbrown's tags) and the low bits (its bucket index) are well spread.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` with [`FastHasher`].
pub(crate) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// See the module documentation.
#[derive(Clone, Copy, Default)]
pub(crate) struct FastHasher(u64);

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(MUL).rotate_left(23);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        // The length keeps "a" and "a\0" apart.
        self.mix(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
    }

    fn write_u8(&mut self, x: u8) {
        self.mix(u64::from(x));
    }

    fn write_u32(&mut self, x: u32) {
        self.mix(u64::from(x));
    }

    fn write_u64(&mut self, x: u64) {
        self.mix(x);
    }

    fn write_usize(&mut self, x: usize) {
        self.mix(x as u64);
    }

    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, BuildHasherDefault};

    #[test]
    fn different_strings_hash_differently() {
        let b = BuildHasherDefault::<FastHasher>::default();
        let words = ["", "a", "a\0", "ab", "ba", "abcdefgh", "abcdefghi", "abcdefgh\0"];
        let hashes: Vec<u64> = words.iter().map(|w| b.hash_one(w)).collect();
        for i in 0..hashes.len() {
            for j in i + 1..hashes.len() {
                assert_ne!(hashes[i], hashes[j], "{:?} vs {:?}", words[i], words[j]);
            }
        }
    }
}
