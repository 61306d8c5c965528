//! Record ids to keys.
//!
//! A key is `user` followed by the id (or a bijective mix of it) in fixed-width lowercase hex,
//! zero padded to the configured key size: every key has exactly `key_size` bytes and distinct
//! ids never share a key. Fixed width makes byte order equal numeric order, so with
//! [`KeyOrder::Ordered`] a scan walks ids in sequence.

use crate::config::KeyOrder;
use crate::errors::{Error, Result};

/// Every key starts with this (YCSB's table prefix).
pub const KEY_PREFIX: &[u8] = b"user";
/// The shortest key: the prefix and 8 hex digits (4 billion ids).
pub const MIN_KEY_SIZE: usize = KEY_PREFIX.len() + 8;

/// Maps record ids to keys of one fixed size.
#[derive(Debug, Clone)]
pub struct KeySpace {
    key_size: usize,
    order: KeyOrder,
    /// Hex digits that carry the id; the rest of the key after the prefix is zero padding.
    digits: usize,
    /// Bits of id space: `4 * digits`, at most 64.
    bits: u32,
}

impl KeySpace {
    /// A key space of `key_size`-byte keys.
    pub fn new(key_size: usize, order: KeyOrder) -> Result<KeySpace> {
        if key_size < MIN_KEY_SIZE {
            return Err(Error::config(format!(
                "key-size must be at least {MIN_KEY_SIZE} bytes"
            )));
        }
        let digits = (key_size - KEY_PREFIX.len()).min(16);
        Ok(KeySpace {
            key_size,
            order,
            digits,
            bits: 4 * digits as u32,
        })
    }

    /// How many distinct keys exist (ids `0..capacity`), saturating at `u64::MAX`.
    pub fn capacity(&self) -> u64 {
        if self.bits >= 64 {
            u64::MAX
        } else {
            1 << self.bits
        }
    }

    /// The key size in bytes.
    pub fn key_size(&self) -> usize {
        self.key_size
    }

    /// The key of record `id`. Ids at or past [`capacity`](Self::capacity) are refused by the
    /// insert sequence before they get here.
    pub fn key(&self, id: u64) -> Vec<u8> {
        assert!(
            self.bits >= 64 || id < self.capacity(),
            "record id {id} outside a {}-bit key space",
            self.bits
        );
        let n = match self.order {
            KeyOrder::Ordered => id,
            KeyOrder::Hashed => permute(id, self.bits),
        };
        let mut key = Vec::with_capacity(self.key_size);
        key.extend_from_slice(KEY_PREFIX);
        key.resize(self.key_size - self.digits, b'0');
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for i in (0..self.digits).rev() {
            key.push(HEX[((n >> (4 * i)) & 0xf) as usize]);
        }
        key
    }
}

/// A bijection on `bits`-bit integers that scatters consecutive inputs: multiplications by odd
/// constants and xor-shifts are each invertible modulo `2^bits`.
pub(crate) fn permute(x: u64, bits: u32) -> u64 {
    debug_assert!((2..=64).contains(&bits));
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let half = bits / 2;
    let mut x = x & mask;
    x = x.wrapping_mul(0x9e37_79b9_7f4a_7c15) & mask;
    x ^= x >> half;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9) & mask;
    x ^= x >> half;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb) & mask;
    x ^ (x >> half)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn permute_is_a_bijection() {
        for bits in [2, 5, 12, 16] {
            let n = 1u64 << bits;
            let images: HashSet<u64> = (0..n).map(|x| permute(x, bits)).collect();
            assert_eq!(images.len() as u64, n, "{bits} bits");
            assert!(images.iter().all(|&y| y < n));
        }
    }

    #[test]
    fn keys_have_the_configured_size_and_are_distinct() {
        for (size, order) in [
            (12, KeyOrder::Hashed),
            (16, KeyOrder::Hashed),
            (16, KeyOrder::Ordered),
            (40, KeyOrder::Hashed),
        ] {
            let space = KeySpace::new(size, order).unwrap();
            let keys: HashSet<Vec<u8>> = (0..10_000).map(|id| space.key(id)).collect();
            assert_eq!(keys.len(), 10_000);
            assert!(keys
                .iter()
                .all(|k| k.len() == size && k.starts_with(KEY_PREFIX)));
        }
        let space = KeySpace::new(16, KeyOrder::Ordered).unwrap();
        assert_eq!(space.key(0x1f), b"user00000000001f");
        assert_eq!(space.capacity(), 1 << 48);
        let wide = KeySpace::new(24, KeyOrder::Ordered).unwrap();
        assert_eq!(wide.key(1), format!("user{:020x}", 1).into_bytes());
        assert_eq!(wide.capacity(), u64::MAX);
        assert!(KeySpace::new(MIN_KEY_SIZE - 1, KeyOrder::Hashed).is_err());
    }

    #[test]
    fn ordered_keys_sort_by_id_and_hashed_keys_scatter() {
        let ordered = KeySpace::new(16, KeyOrder::Ordered).unwrap();
        let keys: Vec<Vec<u8>> = (0..1000).map(|id| ordered.key(id)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));

        let hashed = KeySpace::new(16, KeyOrder::Hashed).unwrap();
        let keys: Vec<Vec<u8>> = (0..1000).map(|id| hashed.key(id)).collect();
        let ascending = keys.windows(2).filter(|w| w[0] < w[1]).count();
        // A random order has about half its neighbours ascending.
        assert!((350..650).contains(&ascending), "{ascending}");
    }
}
