//! Deciding a transaction's fate from its primary lock.

use crate::errors::Result;
use crate::mvcc::{lock_expired, Key, Lock, MvccReader, MvccTxn};

use super::cleanup::rollback_lock;

/// The status of a transaction, as check-txn-status reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnStatus {
    /// A rollback record was already there.
    RolledBack,
    /// The primary lock's TTL had expired; it was rolled back now.
    TtlExpire,
    /// Neither lock nor record: a rollback record was written now.
    LockNotExist,
    /// Committed at `commit_ts`.
    Committed {
        /// The commit ts.
        commit_ts: u64,
    },
    /// Still running: the primary lock is alive.
    Uncommitted {
        /// The primary lock (with `min_commit_ts` possibly pushed).
        lock: Lock,
        /// Whether the lock's `min_commit_ts` is now above the caller's start ts, so the caller
        /// may read past this transaction's locks.
        min_commit_ts_pushed: bool,
    },
    /// The expired primary was a pessimistic lock and the caller only resolves pessimistic
    /// locks: the lock was removed without a rollback record.
    PessimisticRollBack,
    /// Neither lock nor record, and the caller only resolves pessimistic locks: nothing done.
    LockNotExistDoNothing,
}

/// Check-txn-status when the primary `key` holds `lock` of the transaction (`txn.start_ts()`).
///
/// - TTL expired (physical part of `current_ts` beyond `lock.ts + ttl`): roll back.
/// - Otherwise, if the lock tracks a `min_commit_ts` and the caller reads at or above it, push
///   `min_commit_ts` past the caller's start ts (and to at least `current_ts`): the transaction
///   will then commit after the caller's snapshot, so the caller need not wait for it.
pub fn check_txn_status_lock_exists(
    txn: &mut MvccTxn,
    reader: &mut MvccReader,
    key: &Key,
    mut lock: Lock,
    current_ts: u64,
    caller_start_ts: u64,
    resolving_pessimistic_lock: bool,
) -> Result<TxnStatus> {
    if lock_expired(lock.ts, lock.ttl, current_ts) {
        if resolving_pessimistic_lock && lock.is_pessimistic_lock() {
            txn.unlock_key(key);
            return Ok(TxnStatus::PessimisticRollBack);
        }
        rollback_lock(txn, reader, key, &lock)?;
        return Ok(TxnStatus::TtlExpire);
    }
    // A zero min_commit_ts means the client does not track one; pushing it would let the lock
    // refuse a commit ts the client already chose.
    if lock.min_commit_ts != 0
        && caller_start_ts != u64::MAX
        && caller_start_ts >= lock.min_commit_ts
    {
        lock.min_commit_ts = (caller_start_ts + 1).max(current_ts);
        txn.put_lock(key, &lock);
    }
    let min_commit_ts_pushed = (caller_start_ts != 0 && lock.min_commit_ts > caller_start_ts)
        || caller_start_ts == u64::MAX;
    Ok(TxnStatus::Uncommitted {
        lock,
        min_commit_ts_pushed,
    })
}
