//! The timestamp oracle.
//!
//! A timestamp is `physical << 18 | logical`: `physical` is wall-clock milliseconds (clients
//! compare lock TTLs in ms against it), `logical` counts within one millisecond. A request for
//! `count` timestamps gets one answer whose `logical` is the largest of the batch; the client uses
//! `logical - count + 1 ..= logical`.
//!
//! Monotonic across restarts: before handing out any physical value `p`, the oracle makes sure a
//! bound `limit > p` is synced to disk, moving the bound a `tso-save-interval` ahead of the clock.
//! A restarted oracle starts at the saved bound, above everything handed out before. A background
//! tick ([`TimestampOracle::advance_window`]) moves the bound ahead early, so requests rarely wait
//! for a sync.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use proto::pdpb::Timestamp;

use crate::errors::{Error, Result};
use crate::storage::{MetaKey, MetaStore};

/// Bits of the logical part.
pub const LOGICAL_BITS: u32 = 18;
/// Logical values are below this; one request may ask for at most `MAX_LOGICAL - 1` timestamps.
pub const MAX_LOGICAL: i64 = 1 << LOGICAL_BITS;

/// Pure state of the oracle: what was handed out last and the persisted bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TsoState {
    /// Physical ms of the last answer.
    pub physical: i64,
    /// Largest logical handed out at `physical`.
    pub logical: i64,
    /// Every physical handed out is below this (it is on disk).
    pub limit: i64,
}

impl TsoState {
    /// State after a restart with `limit` loaded from disk: the next physical is at least `limit`.
    pub fn resume(limit: i64) -> TsoState {
        TsoState {
            physical: limit,
            logical: 0,
            limit,
        }
    }

    /// Plans the answer to a request for `count` timestamps at wall-clock `now_ms`. Returns the
    /// new state and the answer; if the new state's `limit` differs, it must be persisted before
    /// the answer is sent.
    ///
    /// `count` must be in `1..MAX_LOGICAL`.
    pub fn next(self, now_ms: i64, count: u32, window_ms: i64) -> (TsoState, Timestamp) {
        let count = i64::from(count);
        debug_assert!(count > 0 && count < MAX_LOGICAL);
        let mut st = self;
        if now_ms > st.physical {
            st.physical = now_ms;
            st.logical = 0;
        }
        if st.logical + count >= MAX_LOGICAL {
            // This millisecond is used up; run ahead of the clock by one ms.
            st.physical += 1;
            st.logical = 0;
        }
        st.logical += count;
        if st.physical >= st.limit {
            st.limit = st.physical.max(now_ms) + window_ms;
        }
        let ts = Timestamp {
            physical: st.physical,
            logical: st.logical,
            suffix_bits: 0,
        };
        (st, ts)
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Composes a timestamp into the u64 form clients use.
pub fn compose(ts: &Timestamp) -> u64 {
    ((ts.physical as u64) << LOGICAL_BITS) | ts.logical as u64
}

/// The oracle: [`TsoState`] behind a lock, persisted through the metadata store.
#[derive(Debug)]
pub struct TimestampOracle {
    store: Arc<MetaStore>,
    window_ms: i64,
    state: Mutex<TsoState>,
}

impl TimestampOracle {
    /// Loads the saved bound and resumes above it.
    pub fn open(store: Arc<MetaStore>, window: Duration) -> Result<TimestampOracle> {
        let limit = store.load_u64(MetaKey::Tso)?.unwrap_or(0) as i64;
        Ok(TimestampOracle {
            store,
            window_ms: window.as_millis().max(1) as i64,
            state: Mutex::new(TsoState::resume(limit)),
        })
    }

    /// Answers one request for `count` timestamps (the largest of the batch).
    pub fn allocate(&self, count: u32) -> Result<Timestamp> {
        if count == 0 || i64::from(count) >= MAX_LOGICAL {
            return Err(Error::InvalidRequest(format!(
                "tso count must be in 1..{MAX_LOGICAL}, got {count}"
            )));
        }
        let mut st = self.state.lock();
        let (next, ts) = st.next(now_ms(), count, self.window_ms);
        if next.limit != st.limit {
            self.store.save_u64(MetaKey::Tso, next.limit as u64)?;
        }
        *st = next;
        Ok(ts)
    }

    /// Moves the persisted bound ahead when less than two thirds of a window is left, so that
    /// requests seldom have to sync. Called periodically.
    pub fn advance_window(&self) -> Result<()> {
        let now = now_ms();
        let mut st = self.state.lock();
        if st.limit - now.max(st.physical) < self.window_ms * 2 / 3 {
            let limit = now.max(st.physical) + self.window_ms;
            self.store.save_u64(MetaKey::Tso, limit as u64)?;
            st.limit = limit;
        }
        Ok(())
    }

    /// A copy of the current state (for status and tests).
    pub fn state(&self) -> TsoState {
        *self.state.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: i64 = 3000;

    #[test]
    fn logical_is_largest_of_batch_and_resets_each_ms() {
        let st = TsoState::resume(0);
        let (st, a) = st.next(1000, 5, W);
        assert_eq!((a.physical, a.logical), (1000, 5));
        assert_eq!(st.limit, 1000 + W);
        let (st, b) = st.next(1000, 3, W);
        assert_eq!((b.physical, b.logical), (1000, 8));
        let (_, c) = st.next(1001, 1, W);
        assert_eq!((c.physical, c.logical), (1001, 1));
    }

    #[test]
    fn overflow_moves_to_next_ms_and_clock_going_back_is_ignored() {
        let st = TsoState::resume(0);
        let (st, a) = st.next(1000, (MAX_LOGICAL - 10) as u32, W);
        assert_eq!(a.logical, MAX_LOGICAL - 10);
        let (st, b) = st.next(1000, 20, W);
        assert_eq!((b.physical, b.logical), (1001, 20));
        // The clock stepped back: physical never does.
        let (_, c) = st.next(900, 1, W);
        assert_eq!((c.physical, c.logical), (1001, 21));
        assert!(compose(&c) > compose(&b) && compose(&b) > compose(&a));
    }

    #[test]
    fn resume_is_above_everything_before_the_bound() {
        // Before the restart: everything handed out had physical < 5000.
        let st = TsoState::resume(5000);
        let (st, a) = st.next(1000, 1, W);
        assert_eq!(a.physical, 5000);
        assert_eq!(st.limit, 5000 + W);
    }

    #[test]
    fn bound_is_persisted_and_restart_is_monotonic() {
        let dir = tempfile::tempdir().unwrap();
        let mut last = 0u64;
        for _ in 0..3 {
            let store = Arc::new(MetaStore::open(dir.path()).unwrap());
            let tso = TimestampOracle::open(store.clone(), Duration::from_secs(3)).unwrap();
            for count in [1u32, 10, 64] {
                let ts = tso.allocate(count).unwrap();
                let first = compose(&ts) - u64::from(count) + 1;
                assert!(first > last, "{first} <= {last}");
                last = compose(&ts);
                let saved = store.load_u64(MetaKey::Tso).unwrap().unwrap() as i64;
                assert!(ts.physical < saved);
            }
            tso.advance_window().unwrap();
        }
        let store = Arc::new(MetaStore::open(dir.path()).unwrap());
        let tso = TimestampOracle::open(store, Duration::from_secs(3)).unwrap();
        assert!(tso.allocate(0).is_err());
        assert!(tso.allocate(MAX_LOGICAL as u32).is_err());
    }
}
