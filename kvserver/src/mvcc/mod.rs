//! Multi-version storage of transactional data over the three column families.
//!
//! ```text
//!  CF      key                          value                     written by
//!  lock    enc(k)                       Lock (lock.rs)            prewrite / pessimistic lock
//!  default enc(k) ++ !start_ts          long value (> 255 bytes)  prewrite
//!  write   enc(k) ++ !commit_ts         Write (write.rs)          commit (rollback: at !start_ts)
//! ```
//!
//! - [`key`]: memcomparable user-key encoding, timestamp suffixes, and the helpers region code
//!   needs (`truncate_ts_if_mvcc` for split keys).
//! - [`lock`], [`write`]: the record formats (short values are inlined, as TiKV does).
//! - [`MvccTxn`]: the mutations one command buffers before a single atomic `Storage::write`.
//! - [`MvccReader`]: point reads of locks / write records / values on a snapshot;
//!   [`PointGetter`] and [`Scanner`]: snapshot-isolation reads that honour locks.
//!
//! Timestamps are TSO timestamps: `physical_ms << 18 | logical`. Lock TTLs are milliseconds and
//! are compared against the physical part only ([`physical`]).

mod codec;
pub mod key;
pub mod lock;
mod point_getter;
mod reader;
mod scanner;
#[cfg(test)]
pub(crate) mod test_util;
mod txn;
pub mod write;

pub use key::Key;
pub use lock::{Lock, LockType};
pub use point_getter::{PointGetter, ReadOptions};
pub use reader::{MvccReader, TxnCommitRecord};
pub use scanner::{ScanEntry, ScanOptions, Scanner};
pub use txn::MvccTxn;
pub use write::{Write, WriteType};

/// Bits of a TSO timestamp that hold the logical counter; the rest is wall-clock milliseconds.
pub const TSO_PHYSICAL_SHIFT_BITS: u32 = 18;

/// The physical (milliseconds) part of a TSO timestamp.
pub fn physical(ts: u64) -> u64 {
    ts >> TSO_PHYSICAL_SHIFT_BITS
}

/// Builds a TSO timestamp from milliseconds and a logical counter.
pub fn compose_ts(physical_ms: u64, logical: u64) -> u64 {
    (physical_ms << TSO_PHYSICAL_SHIFT_BITS) | (logical & ((1 << TSO_PHYSICAL_SHIFT_BITS) - 1))
}

/// Whether a lock taken at `lock_ts` with `ttl_ms` has expired at `current_ts`.
pub fn lock_expired(lock_ts: u64, ttl_ms: u64, current_ts: u64) -> bool {
    physical(lock_ts).saturating_add(ttl_ms) < physical(current_ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_uses_the_physical_part_only() {
        let lock_ts = compose_ts(1_000, 5);
        assert!(!lock_expired(lock_ts, 100, compose_ts(1_100, 9)));
        assert!(lock_expired(lock_ts, 100, compose_ts(1_101, 0)));
        // A huge logical part never makes a lock look older.
        assert!(!lock_expired(
            lock_ts,
            100,
            compose_ts(1_000, (1 << 18) - 1)
        ));
        assert!(!lock_expired(lock_ts, u64::MAX, u64::MAX));
        assert_eq!(physical(compose_ts(42, 7)), 42);
    }
}
