//! Rolling back one key, and what to do when a transaction's lock is missing.

use crate::errors::{Result, TxnError};
use crate::mvcc::{
    lock_expired, Key, Lock, LockType, MvccReader, MvccTxn, TxnCommitRecord, Write, WriteType,
};

use super::TxnStatus;

/// Records that transaction `txn.start_ts()` is rolled back on `key`, so a late prewrite of it
/// fails. `overlapped_write` is another transaction's commit record sitting exactly at
/// `(key, start_ts)`: it is kept and flagged instead of being overwritten.
fn put_rollback_record(txn: &mut MvccTxn, key: &Key, overlapped_write: Option<Write>) {
    let start_ts = txn.start_ts();
    let record = match overlapped_write {
        Some(mut write) => {
            write.has_overlapped_rollback = true;
            write
        }
        None => Write::new_rollback(start_ts),
    };
    txn.put_write(key, start_ts, &record);
}

/// Rolls back `lock` (which belongs to `txn.start_ts()`) on `key`: removes the lock and the
/// value it wrote, and leaves a rollback record.
pub fn rollback_lock(
    txn: &mut MvccTxn,
    reader: &mut MvccReader,
    key: &Key,
    lock: &Lock,
) -> Result<()> {
    let start_ts = txn.start_ts();
    match reader.get_txn_commit_record(key, start_ts)? {
        TxnCommitRecord::None { overlapped_write } => {
            if lock.lock_type == LockType::Put && lock.short_value.is_none() {
                txn.delete_value(key);
            }
            put_rollback_record(txn, key, overlapped_write);
        }
        TxnCommitRecord::SingleRecord { commit_ts, write }
            if write.write_type != WriteType::Rollback =>
        {
            return Err(TxnError::BadFormat(format!(
                "txn {start_ts} is both locked and committed (at {commit_ts}) on {key:?}"
            ))
            .into());
        }
        // Already rolled back: only the lock needs to go.
        TxnCommitRecord::SingleRecord { .. } | TxnCommitRecord::OverlappedRollback { .. } => {}
    }
    txn.unlock_key(key);
    Ok(())
}

/// What check-txn-status and cleanup do when the transaction holds no lock on the key.
///
/// Looks for the transaction's commit or rollback record. If there is none: with
/// `rollback_if_not_exist`, writes a rollback record (so the transaction can never commit here
/// later) and reports [`TxnStatus::LockNotExist`]; otherwise [`TxnError::TxnNotFound`].
pub fn check_txn_status_missing_lock(
    txn: &mut MvccTxn,
    reader: &mut MvccReader,
    key: &Key,
    rollback_if_not_exist: bool,
    resolving_pessimistic_lock: bool,
) -> Result<TxnStatus> {
    match reader.get_txn_commit_record(key, txn.start_ts())? {
        TxnCommitRecord::SingleRecord { commit_ts, write } => {
            if write.write_type == WriteType::Rollback {
                Ok(TxnStatus::RolledBack)
            } else {
                Ok(TxnStatus::Committed { commit_ts })
            }
        }
        TxnCommitRecord::OverlappedRollback { .. } => Ok(TxnStatus::RolledBack),
        TxnCommitRecord::None { overlapped_write } => {
            if !rollback_if_not_exist {
                return Err(TxnError::TxnNotFound {
                    start_ts: txn.start_ts(),
                    key: key.to_raw()?,
                }
                .into());
            }
            if resolving_pessimistic_lock {
                return Ok(TxnStatus::LockNotExistDoNothing);
            }
            put_rollback_record(txn, key, overlapped_write);
            Ok(TxnStatus::LockNotExist)
        }
    }
}

/// Rolls back transaction `txn.start_ts()` on `key` whatever state it is in (KvBatchRollback,
/// KvCleanup, resolving a lock to "rolled back").
///
/// With a non-zero `current_ts`, a lock of the transaction whose TTL has not expired is left
/// alone and reported as [`TxnError::KeyIsLocked`]. A committed transaction is
/// [`TxnError::Committed`]. Otherwise a rollback record is always left, even when there was no
/// lock, so a delayed prewrite of the transaction cannot succeed afterwards.
pub fn cleanup(
    txn: &mut MvccTxn,
    reader: &mut MvccReader,
    key: &Key,
    current_ts: u64,
) -> Result<()> {
    let start_ts = txn.start_ts();
    match reader.load_lock(key)? {
        Some(lock) if lock.ts == start_ts => {
            if current_ts != 0 && !lock_expired(lock.ts, lock.ttl, current_ts) {
                let info = lock.into_lock_info(key.to_raw()?);
                return Err(TxnError::KeyIsLocked(Box::new(info)).into());
            }
            rollback_lock(txn, reader, key, &lock)
        }
        _ => match check_txn_status_missing_lock(txn, reader, key, true, false)? {
            TxnStatus::Committed { commit_ts } => Err(TxnError::Committed {
                start_ts,
                commit_ts,
                key: key.to_raw()?,
            }
            .into()),
            _ => Ok(()),
        },
    }
}
