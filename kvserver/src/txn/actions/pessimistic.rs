//! Pessimistic locks: taking one on a key, and releasing it before prewrite.

use proto::kvrpcpb::write_conflict::Reason;

use crate::errors::{Result, TxnError};
use crate::mvcc::{Key, Lock, LockType, MvccReader, MvccTxn, WriteType};

use super::prewrite::check_not_exists;

/// The request-wide part of a pessimistic lock request.
#[derive(Debug, Clone)]
pub struct PessimisticLockProps {
    /// Raw primary key.
    pub primary: Vec<u8>,
    /// Lock TTL in milliseconds.
    pub lock_ttl: u64,
    /// The ts whose snapshot the transaction's statement read; newer writes are conflicts.
    pub for_update_ts: u64,
    /// Lower bound of the commit ts (0: none).
    pub min_commit_ts: u64,
    /// Return each key's value (read at `for_update_ts`).
    pub need_value: bool,
    /// Return whether each key exists (without its value).
    pub need_check_existence: bool,
    /// Only lock keys that exist (requires `need_value`).
    pub lock_only_if_exists: bool,
}

fn pessimistic_lock(props: &PessimisticLockProps, start_ts: u64, for_update_ts: u64) -> Lock {
    let mut lock = Lock::new(
        LockType::Pessimistic,
        props.primary.clone(),
        start_ts,
        props.lock_ttl,
    );
    lock.for_update_ts = for_update_ts;
    lock.min_commit_ts = props.min_commit_ts;
    lock
}

/// Takes (or refreshes) transaction `txn.start_ts()`'s pessimistic lock on `key`.
///
/// Returns the key's value when `need_value` is set, `Some(vec![])` for an existing key when
/// only `need_check_existence` is set, and `None` for an absent key or when neither is asked.
///
/// Fails with [`TxnError::KeyIsLocked`] on another transaction's lock (we never wait for it),
/// [`TxnError::WriteConflict`] if the key was committed after `for_update_ts` (the statement must
/// retry with a newer one), [`TxnError::PessimisticLockRolledBack`] if our transaction was
/// already rolled back here, and [`TxnError::AlreadyExist`] if `should_not_exist` and the key
/// has a value.
pub fn acquire_pessimistic_lock(
    txn: &mut MvccTxn,
    reader: &mut MvccReader,
    key: &Key,
    should_not_exist: bool,
    props: &PessimisticLockProps,
) -> Result<Option<Vec<u8>>> {
    let start_ts = txn.start_ts();
    let for_update_ts = props.for_update_ts;
    let need_value = props.need_value;
    let need_existence = props.need_check_existence;

    if let Some(lock) = reader.load_lock(key)? {
        if lock.ts != start_ts {
            let info = lock.into_lock_info(key.to_raw()?);
            return Err(TxnError::KeyIsLocked(Box::new(info)).into());
        }
        if !lock.is_pessimistic_lock() {
            return Err(TxnError::LockTypeNotMatch {
                start_ts,
                key: key.to_raw()?,
                pessimistic: false,
            }
            .into());
        }
        // Already ours: a retried request or a later statement of the same transaction.
        let value = if need_value {
            reader.get(key, for_update_ts)?
        } else if need_existence {
            reader.get_write(key, for_update_ts)?.map(|_| Vec::new())
        } else {
            None
        };
        if for_update_ts > lock.for_update_ts {
            txn.put_lock(key, &pessimistic_lock(props, start_ts, for_update_ts));
        }
        return Ok(value);
    }

    let mut value = None;
    if let Some((commit_ts, write)) = reader.most_recent_write(key)? {
        if commit_ts > for_update_ts {
            return Err(TxnError::WriteConflict {
                start_ts,
                conflict_start_ts: write.start_ts,
                conflict_commit_ts: commit_ts,
                key: key.to_raw()?,
                primary: props.primary.clone(),
                reason: Reason::PessimisticRetry,
            }
            .into());
        }
        let rolled_back = |ts: u64, w: &crate::mvcc::Write| {
            ts == start_ts && (w.write_type == WriteType::Rollback || w.has_overlapped_rollback)
        };
        let mut is_rolled_back = rolled_back(commit_ts, &write);
        if !is_rolled_back && commit_ts > start_ts {
            // Our rollback record, if any, sits below newer commits.
            if let Some((older_ts, older)) = reader.seek_write(key, start_ts)? {
                is_rolled_back = rolled_back(older_ts, &older);
            }
        }
        if is_rolled_back {
            return Err(TxnError::PessimisticLockRolledBack {
                start_ts,
                key: key.to_raw()?,
            }
            .into());
        }
        if should_not_exist {
            check_not_exists(reader, key, commit_ts, &write)?;
        }
        if need_value || need_existence {
            value = match write.write_type {
                WriteType::Put if need_value => Some(reader.load_data(key, write)?),
                WriteType::Put => Some(Vec::new()),
                WriteType::Delete => None,
                WriteType::Lock | WriteType::Rollback if need_value => {
                    reader.get(key, commit_ts.saturating_sub(1))?
                }
                WriteType::Lock | WriteType::Rollback => reader
                    .get_write(key, commit_ts.saturating_sub(1))?
                    .map(|_| Vec::new()),
            };
        }
    }
    if !props.lock_only_if_exists || value.is_some() {
        txn.put_lock(key, &pessimistic_lock(props, start_ts, for_update_ts));
    }
    Ok(value)
}

/// Releases transaction `txn.start_ts()`'s pessimistic lock on `key` if it was taken at or below
/// `for_update_ts`. Prewritten locks and other transactions' locks are left alone.
pub fn pessimistic_rollback(
    txn: &mut MvccTxn,
    reader: &mut MvccReader,
    key: &Key,
    for_update_ts: u64,
) -> Result<()> {
    if let Some(lock) = reader.load_lock(key)? {
        if lock.is_pessimistic_lock()
            && lock.ts == txn.start_ts()
            && lock.for_update_ts <= for_update_ts
        {
            txn.unlock_key(key);
        }
    }
    Ok(())
}
