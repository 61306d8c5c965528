//! Committing one key.

use tracing::debug;

use crate::errors::{Result, TxnError};
use crate::mvcc::{Key, LockType, MvccReader, MvccTxn, Write, WriteType};

/// Commits `key` of transaction `txn.start_ts()` at `commit_ts`: the lock becomes a write record
/// at `commit_ts` and is removed.
///
/// Idempotent: if the lock is gone but the transaction's commit record is there, nothing is
/// written. If neither is there, the transaction was rolled back (or never prewritten here) and
/// committing would be wrong: [`TxnError::TxnLockNotFound`].
pub fn commit(txn: &mut MvccTxn, reader: &mut MvccReader, key: &Key, commit_ts: u64) -> Result<()> {
    let start_ts = txn.start_ts();
    let lock = match reader.load_lock(key)? {
        Some(lock) if lock.ts == start_ts => lock,
        _ => {
            let record = reader.get_txn_commit_record(key, start_ts)?;
            if record.committed_ts().is_some() {
                debug!(
                    start_ts,
                    commit_ts,
                    ?key,
                    "commit of an already committed key"
                );
                return Ok(());
            }
            return Err(TxnError::TxnLockNotFound {
                start_ts,
                commit_ts,
                key: key.to_raw()?,
            }
            .into());
        }
    };
    if commit_ts < lock.min_commit_ts {
        return Err(TxnError::CommitTsExpired {
            start_ts,
            commit_ts,
            key: key.to_raw()?,
            min_commit_ts: lock.min_commit_ts,
        }
        .into());
    }
    let write_type = match lock.lock_type {
        LockType::Put => WriteType::Put,
        LockType::Delete => WriteType::Delete,
        // A pessimistic lock is normally replaced by prewrite; one left behind (its pessimistic
        // rollback was lost) changes no data, so it commits like a lock-only key.
        LockType::Lock | LockType::Pessimistic => WriteType::Lock,
    };
    let mut write = Write::new(write_type, start_ts, lock.short_value);
    // Another transaction whose start ts equals our commit ts may have been rolled back on this
    // key; keep that fact when our record replaces its rollback record.
    if let Some((ts, existing)) = reader.seek_write(key, commit_ts)? {
        if ts == commit_ts && existing.write_type == WriteType::Rollback {
            write.has_overlapped_rollback = true;
        }
    }
    txn.put_write(key, commit_ts, &write);
    txn.unlock_key(key);
    Ok(())
}
