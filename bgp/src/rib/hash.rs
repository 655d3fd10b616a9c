//! A fast keyed hasher for the RIB's tables.
//!
//! Keys are prefixes a peer chooses, so the hash is keyed with a random seed per table (the
//! folded-multiply construction foldhash and ahash's fallback use): cheap for the 5- and
//! 17-byte prefix keys, yet a peer cannot precompute colliding prefixes.

use std::hash::{BuildHasher, Hasher};

// Odd 64-bit constants (digits of pi), as in foldhash.
const K0: u64 = 0x243f_6a88_85a3_08d3;
const K1: u64 = 0x1319_8a2e_0370_7344;

#[inline]
fn folded_multiply(a: u64, b: u64) -> u64 {
    let full = u128::from(a) * u128::from(b);
    (full as u64) ^ ((full >> 64) as u64)
}

/// Builds [`FoldHasher`]s sharing one random seed.
#[derive(Debug, Clone, Copy)]
pub struct SeededState {
    seed: u64,
}

impl SeededState {
    /// A state with a fresh random seed.
    pub fn new() -> Self {
        Self {
            seed: rand::random(),
        }
    }
}

impl Default for SeededState {
    fn default() -> Self {
        Self::new()
    }
}

impl BuildHasher for SeededState {
    type Hasher = FoldHasher;

    #[inline]
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher { state: self.seed }
    }
}

/// Folded-multiply hasher; every `write_*` mixes its whole input into the state.
#[derive(Debug, Clone, Copy)]
pub struct FoldHasher {
    state: u64,
}

impl Hasher for FoldHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(buf));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            // The length goes in too, so "ab" and "ab\0" differ.
            self.write_u64(u64::from_le_bytes(buf) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.state = folded_multiply(self.state ^ i, K0);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A last round so the top bits (hashbrown's control byte) depend on every input bit.
        folded_multiply(self.state, K1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn sequential_keys_spread_over_low_and_high_bits() {
        let s = SeededState::new();
        let mut low = HashSet::new();
        let mut high = HashSet::new();
        for i in 0u32..4096 {
            let h = s.hash_one(i);
            low.insert(h & 0xfff);
            high.insert(h >> 57);
        }
        // 4096 keys into 4096 low-bit buckets: a decent hash fills well over half.
        assert!(low.len() > 2400, "low bits poorly spread: {}", low.len());
        assert_eq!(high.len(), 128);
    }

    #[test]
    fn seeds_differ() {
        let (a, b) = (SeededState::new(), SeededState::new());
        assert_ne!(a.hash_one(1u32), b.hash_one(1u32));
    }
}
