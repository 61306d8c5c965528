//! Transactional commands: each picks its keys, runs per-key [actions](super::actions) under
//! latches through the [`Executor`](super::Executor), and returns a typed result the service
//! turns into a response.
//!
//! | command | latches | writes |
//! |---|---|---|
//! | [`Get`], [`BatchGet`], [`Scan`], [`ScanLock`] | none | nothing |
//! | [`Prewrite`] | its keys | locks (+ long values); nothing if any key fails |
//! | [`Commit`] | its keys | write records, lock removal; nothing if any key fails |
//! | [`BatchRollback`], [`Cleanup`] | its keys | rollback records, lock/value removal |
//! | [`CheckTxnStatus`], [`TxnHeartBeat`] | the primary | rollback or pushed lock / longer TTL |
//! | [`CheckSecondaryLocks`] | its keys | rollback records for missing / pessimistic locks |
//! | [`ResolveLock`] | each batch of locks found | commits or rollbacks |
//! | [`PessimisticLock`], [`PessimisticRollback`] | its keys | pessimistic locks / their removal |

mod check_secondary_locks;
mod check_txn_status;
mod commit;
mod heart_beat;
mod pessimistic;
mod prewrite;
mod read;
mod resolve_lock;
mod rollback;

pub use check_secondary_locks::{CheckSecondaryLocks, SecondaryLocksStatus};
pub use check_txn_status::CheckTxnStatus;
pub use commit::Commit;
pub use heart_beat::TxnHeartBeat;
pub use pessimistic::{PessimisticLock, PessimisticLockResult, PessimisticRollback};
pub use prewrite::{Prewrite, PrewriteResult};
pub use read::{BatchGet, Get, Scan, ScanLock};
pub use resolve_lock::{ResolveLock, RESOLVE_LOCK_BATCH_SIZE};
pub use rollback::{BatchRollback, Cleanup};

use crate::mvcc::Key;

/// Encodes raw keys, dropping repeats (a key listed twice is handled once).
fn unique_keys(raw_keys: &[Vec<u8>]) -> Vec<Key> {
    let mut seen = std::collections::HashSet::with_capacity(raw_keys.len());
    raw_keys
        .iter()
        .filter(|k| seen.insert(k.as_slice()))
        .map(|k| Key::from_raw(k))
        .collect()
}
