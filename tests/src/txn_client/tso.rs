//! [`LocalTso`]: TSO-shaped timestamps for in-process tests, where the mock scheduler has no TSO.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use kvserver::mvcc::{compose_ts, physical};

/// A monotonic clock handing out `physical_ms << 18 | logical` timestamps, like PD's TSO.
///
/// The physical part follows the wall clock (lock TTLs are compared against it); the logical
/// part breaks ties, and when a millisecond runs out of logical values the clock runs ahead of
/// the wall clock rather than repeat a timestamp. Share one (`Arc`) between every client of a
/// test: transactions are ordered by these timestamps only.
#[derive(Debug, Default)]
pub struct LocalTso {
    last: AtomicU64,
}

impl LocalTso {
    /// A clock that has handed out nothing yet.
    pub fn new() -> LocalTso {
        LocalTso::default()
    }

    /// A timestamp greater than every one handed out before.
    pub fn next(&self) -> u64 {
        let now = compose_ts(wall_clock_ms(), 0);
        let prev = self
            .last
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(now.max(last + 1))
            })
            .expect("the update closure always returns Some");
        now.max(prev + 1)
    }

    /// The physical (milliseconds) part of the next timestamp, without consuming one.
    pub fn physical_now(&self) -> u64 {
        physical(compose_ts(wall_clock_ms(), 0).max(self.last.load(Ordering::SeqCst)))
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX >> 18)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn timestamps_are_unique_increasing_and_follow_the_wall_clock() {
        let tso = Arc::new(LocalTso::new());
        let before = wall_clock_ms();
        let first = tso.next();
        assert!(physical(first) >= before);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let tso = tso.clone();
                std::thread::spawn(move || {
                    let mut seen = Vec::with_capacity(10_000);
                    for _ in 0..10_000 {
                        seen.push(tso.next());
                    }
                    seen
                })
            })
            .collect();
        let mut all = HashSet::new();
        for h in handles {
            let seen = h.join().unwrap();
            assert!(seen.windows(2).all(|w| w[0] < w[1]), "per-thread order");
            assert!(seen.iter().all(|ts| *ts > first));
            all.extend(seen);
        }
        assert_eq!(all.len(), 40_000, "no timestamp handed out twice");
        assert!(tso.physical_now() >= physical(first));
    }
}
