//! Choosing which record an operation touches, and numbering inserted records.
//!
//! Reads only target records whose insert has finished: [`InsertSequence`] hands out new ids
//! and advances the "acknowledged" watermark only over a contiguous prefix of finished
//! inserts (YCSB's acknowledged counter), so `0..acknowledged()` always exist.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rand::Rng;
use rand_distr::{Distribution as _, Zipf};

use crate::config::Distribution;
use crate::errors::{Error, Result};

/// Ids of inserted records: `0..record_count` come from the load phase, later ones from
/// inserts in the run phase.
#[derive(Debug)]
pub struct InsertSequence {
    next: AtomicU64,
    acknowledged: AtomicU64,
    /// Finished ids above the watermark (inserts finish out of order).
    finished: Mutex<BinaryHeap<Reverse<u64>>>,
    capacity: u64,
    key_size: usize,
}

impl InsertSequence {
    /// A sequence whose first `loaded` ids exist already, in a key space of `capacity` ids.
    pub fn new(loaded: u64, capacity: u64, key_size: usize) -> InsertSequence {
        InsertSequence {
            next: AtomicU64::new(loaded),
            acknowledged: AtomicU64::new(loaded),
            finished: Mutex::new(BinaryHeap::new()),
            capacity,
            key_size,
        }
    }

    /// Takes the next id to insert. Every id taken must be passed to [`finish`](Self::finish),
    /// whether the insert succeeded or not, or the watermark stops there.
    pub fn reserve(&self) -> Result<u64> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if id >= self.capacity {
            // Leave the counter saturated; nothing past the capacity is ever handed out.
            self.next.store(self.capacity, Ordering::Relaxed);
            return Err(Error::KeySpaceExhausted {
                capacity: self.capacity,
                key_size: self.key_size,
            });
        }
        Ok(id)
    }

    /// Marks the insert of `id` as finished. A failed insert is finished too: reads may then
    /// miss that one record (counted as not found) instead of the key choice stalling.
    pub fn finish(&self, id: u64) {
        let mut finished = self.finished.lock().expect("insert sequence lock poisoned");
        finished.push(Reverse(id));
        let mut mark = self.acknowledged.load(Ordering::Relaxed);
        while finished.peek() == Some(&Reverse(mark)) {
            finished.pop();
            mark += 1;
        }
        self.acknowledged.store(mark, Ordering::Release);
    }

    /// Ids `0..acknowledged()` have all been written.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Acquire)
    }
}

/// Draws record ids in `0..n` following one [`Distribution`]. Holds the zipfian sampler for the
/// last `n` seen, since `n` only changes when inserts finish.
#[derive(Debug, Clone)]
pub struct KeyChooser {
    distribution: Distribution,
    theta: f64,
    zipf: Option<(u64, Zipf<f64>)>,
}

impl KeyChooser {
    /// A chooser for `distribution` with zipfian skew `theta`.
    pub fn new(distribution: Distribution, theta: f64) -> KeyChooser {
        KeyChooser {
            distribution,
            theta,
            zipf: None,
        }
    }

    /// An id in `0..n` (`n >= 1`).
    pub fn choose<R: Rng>(&mut self, rng: &mut R, n: u64) -> u64 {
        debug_assert!(n >= 1);
        match self.distribution {
            Distribution::Uniform => rng.gen_range(0..n),
            // Rank 0 is the hottest; scrambling spreads the hot ranks over the key space
            // (otherwise the hot records would all be neighbours, in one region).
            Distribution::Zipfian => fnv1a(self.rank(rng, n)) % n,
            // The newest record is the hottest.
            Distribution::Latest => n - 1 - self.rank(rng, n),
        }
    }

    /// A zipfian rank in `0..n`, 0 being the most frequent.
    fn rank<R: Rng>(&mut self, rng: &mut R, n: u64) -> u64 {
        let zipf = match &self.zipf {
            Some((cached, zipf)) if *cached == n => zipf,
            _ => {
                let zipf = Zipf::new(n, self.theta).expect("n >= 1 and theta > 0 are validated");
                &self.zipf.insert((n, zipf)).1
            }
        };
        // Zipf samples ranks 1..=n as floats.
        (zipf.sample(rng) as u64).clamp(1, n) - 1
    }
}

/// 64-bit FNV-1a of the id's bytes, YCSB's scrambling hash.
fn fnv1a(x: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in x.to_le_bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn histogram(d: Distribution, n: u64, samples: usize) -> Vec<u64> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut chooser = KeyChooser::new(d, 0.99);
        let mut counts = vec![0u64; n as usize];
        for _ in 0..samples {
            let id = chooser.choose(&mut rng, n);
            assert!(id < n);
            counts[id as usize] += 1;
        }
        counts
    }

    #[test]
    fn uniform_covers_the_range_evenly() {
        let counts = histogram(Distribution::Uniform, 100, 200_000);
        // Expected 2,000 per id; 5 standard deviations is about ±220.
        assert!(
            counts.iter().all(|&c| (1_700..2_300).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn zipfian_is_skewed_and_scrambled() {
        let n = 1_000;
        let mut counts = histogram(Distribution::Zipfian, n, 200_000);
        let hottest = counts
            .iter()
            .enumerate()
            .max_by_key(|(_, &c)| c)
            .map(|(id, _)| id as u64)
            .unwrap();
        // With theta 0.99 over 1,000 ids the top rank gets ~13 % of draws, where uniform
        // would give 0.1 %.
        let top = counts[hottest as usize] as f64 / 200_000.0;
        assert!(top > 0.08, "{top}");
        // The hottest record is rank 0 scrambled, not id 0.
        assert_eq!(hottest, fnv1a(0) % n);
        // The 10 % hottest ids take most of the traffic.
        counts.sort_unstable_by(|a, b| b.cmp(a));
        let top_tenth: u64 = counts[..100].iter().sum();
        assert!(top_tenth as f64 / 200_000.0 > 0.6, "{top_tenth}");
    }

    #[test]
    fn latest_prefers_the_newest_records() {
        let n = 1_000;
        let counts = histogram(Distribution::Latest, n, 100_000);
        assert!(counts[999] > counts[998] && counts[998] > counts[990]);
        let newest_tenth: u64 = counts[900..].iter().sum();
        let oldest_tenth: u64 = counts[..100].iter().sum();
        assert!(
            newest_tenth > 10 * oldest_tenth,
            "{newest_tenth} vs {oldest_tenth}"
        );
        assert!(newest_tenth as f64 / 100_000.0 > 0.6);
    }

    #[test]
    fn latest_follows_the_growing_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut chooser = KeyChooser::new(Distribution::Latest, 0.99);
        let at = |chooser: &mut KeyChooser, rng: &mut StdRng, n| {
            (0..1_000)
                .filter(|_| chooser.choose(rng, n) == n - 1)
                .count()
        };
        let hits_100 = at(&mut chooser, &mut rng, 100);
        let hits_200 = at(&mut chooser, &mut rng, 200);
        // The newest record stays the most popular one as the range grows.
        assert!(hits_100 > 100 && hits_200 > 100, "{hits_100} {hits_200}");
        assert!((0..1_000).all(|_| chooser.choose(&mut rng, 1) == 0));
    }

    #[test]
    fn insert_watermark_only_covers_finished_prefixes() {
        let seq = InsertSequence::new(10, 1 << 20, 16);
        assert_eq!(seq.acknowledged(), 10);
        let (a, b, c) = (
            seq.reserve().unwrap(),
            seq.reserve().unwrap(),
            seq.reserve().unwrap(),
        );
        assert_eq!((a, b, c), (10, 11, 12));
        seq.finish(c);
        assert_eq!(seq.acknowledged(), 10);
        seq.finish(a);
        assert_eq!(seq.acknowledged(), 11);
        seq.finish(b);
        assert_eq!(seq.acknowledged(), 13);
    }

    #[test]
    fn insert_sequence_stops_at_capacity() {
        let seq = InsertSequence::new(2, 3, 12);
        assert_eq!(seq.reserve().unwrap(), 2);
        for _ in 0..3 {
            assert!(matches!(
                seq.reserve(),
                Err(Error::KeySpaceExhausted { capacity: 3, .. })
            ));
        }
    }
}
