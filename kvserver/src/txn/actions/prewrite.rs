//! Prewriting one mutation: check for conflicts, then lock the key.

use proto::kvrpcpb::write_conflict::Reason;

use crate::errors::{Result, TxnError};
use crate::mvcc::lock::is_short_value;
use crate::mvcc::{Key, Lock, LockType, MvccReader, MvccTxn, Write, WriteType};

/// The transaction-wide part of a prewrite.
#[derive(Debug, Clone)]
pub struct TxnProps {
    /// Raw primary key.
    pub primary: Vec<u8>,
    /// Lock TTL in milliseconds.
    pub lock_ttl: u64,
    /// Number of keys in the transaction (stored in locks as a hint for resolvers).
    pub txn_size: u64,
    /// `for_update_ts` of a pessimistic transaction; 0 for an optimistic one.
    pub for_update_ts: u64,
    /// Lower bound of the commit ts (0: none).
    pub min_commit_ts: u64,
    /// Optimistic transactions only: skip the write-conflict check (the client vouches that no
    /// newer version can exist).
    pub skip_constraint_check: bool,
}

impl TxnProps {
    /// Whether this is a pessimistic transaction.
    pub fn is_pessimistic(&self) -> bool {
        self.for_update_ts != 0
    }
}

/// What a mutation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MutationOp {
    /// Set the value.
    Put,
    /// Delete the key.
    Delete,
    /// Lock the key without changing it.
    Lock,
    /// Set the value; the key must not exist.
    Insert,
    /// Write nothing; the key must not exist.
    CheckNotExists,
}

/// How a pessimistic transaction's prewrite treats a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PessimisticAction {
    /// The key needs no pessimistic lock and gets no conflict check (optimistic transactions).
    #[default]
    Skip,
    /// The key must hold this transaction's pessimistic lock.
    DoPessimisticCheck,
    /// The key holds no pessimistic lock; check conflicts and constraints as optimistic
    /// transactions do.
    DoConstraintCheck,
}

/// One key of a prewrite.
#[derive(Debug, Clone)]
pub struct Mutation {
    /// What to do.
    pub op: MutationOp,
    /// Raw key.
    pub key: Vec<u8>,
    /// Value for `Put` / `Insert`.
    pub value: Vec<u8>,
    /// Pessimistic handling (ignored by optimistic transactions).
    pub pessimistic_action: PessimisticAction,
}

/// Fails if a version of `key` newer than the transaction exists, or the transaction was
/// already rolled back here; with `should_not_exist`, also if the key has a value.
fn check_for_newer_version(
    reader: &mut MvccReader,
    key: &Key,
    start_ts: u64,
    props: &TxnProps,
    should_not_exist: bool,
) -> Result<()> {
    let Some((commit_ts, write)) = reader.most_recent_write(key)? else {
        return Ok(());
    };
    let self_rolled_back = commit_ts == start_ts
        && (write.write_type == WriteType::Rollback || write.has_overlapped_rollback);
    if commit_ts > start_ts || self_rolled_back {
        return Err(TxnError::WriteConflict {
            start_ts,
            conflict_start_ts: write.start_ts,
            conflict_commit_ts: commit_ts,
            key: key.to_raw()?,
            primary: props.primary.clone(),
            reason: if self_rolled_back {
                Reason::SelfRolledBack
            } else {
                Reason::Optimistic
            },
        }
        .into());
    }
    if should_not_exist {
        check_not_exists(reader, key, commit_ts, &write)?;
    }
    Ok(())
}

/// [`TxnError::AlreadyExist`] if `key` has a value, given its newest record `write` at
/// `commit_ts`.
pub(super) fn check_not_exists(
    reader: &mut MvccReader,
    key: &Key,
    commit_ts: u64,
    write: &Write,
) -> Result<()> {
    let existing_start_ts = match write.write_type {
        WriteType::Put => Some(write.start_ts),
        WriteType::Delete => None,
        // Lock and rollback records say nothing about the value: look further back.
        WriteType::Lock | WriteType::Rollback => reader
            .get_write(key, commit_ts.saturating_sub(1))?
            .map(|(_, w)| w.start_ts),
    };
    match existing_start_ts {
        Some(existing_start_ts) => Err(TxnError::AlreadyExist {
            key: key.to_raw()?,
            existing_start_ts,
        }
        .into()),
        None => Ok(()),
    }
}

/// Prewrites `mutation` for transaction `txn.start_ts()`.
///
/// A lock of another transaction is [`TxnError::KeyIsLocked`]. Our own prewrite lock means this
/// is a retried request: nothing to do. Our own pessimistic lock is upgraded to a real lock
/// without a conflict check (holding it since `for_update_ts` guarantees there is none).
/// Otherwise optimistic transactions (and `DoConstraintCheck` keys) are checked for newer
/// versions and, for `Insert` / `CheckNotExists`, for an existing value.
pub fn prewrite(
    txn: &mut MvccTxn,
    reader: &mut MvccReader,
    props: &TxnProps,
    mutation: &Mutation,
) -> Result<()> {
    let start_ts = txn.start_ts();
    let key = Key::from_raw(&mutation.key);
    let needs_pessimistic_lock = props.is_pessimistic()
        && mutation.pessimistic_action == PessimisticAction::DoPessimisticCheck;
    let mut lock_ttl = props.lock_ttl;
    let mut min_commit_ts = props.min_commit_ts;
    let mut holds_pessimistic_lock = false;

    match reader.load_lock(&key)? {
        Some(lock) if lock.ts != start_ts => {
            if needs_pessimistic_lock {
                return Err(TxnError::PessimisticLockNotFound {
                    start_ts,
                    key: mutation.key.clone(),
                }
                .into());
            }
            let info = lock.into_lock_info(mutation.key.clone());
            return Err(TxnError::KeyIsLocked(Box::new(info)).into());
        }
        Some(lock) if lock.is_pessimistic_lock() => {
            if !props.is_pessimistic() {
                return Err(TxnError::LockTypeNotMatch {
                    start_ts,
                    key: mutation.key.clone(),
                    pessimistic: true,
                }
                .into());
            }
            // Heartbeats and check-txn-status may have extended these since the lock was taken.
            lock_ttl = lock_ttl.max(lock.ttl);
            min_commit_ts = min_commit_ts.max(lock.min_commit_ts);
            holds_pessimistic_lock = true;
        }
        Some(_) => return Ok(()),
        None if needs_pessimistic_lock => {
            return Err(TxnError::PessimisticLockNotFound {
                start_ts,
                key: mutation.key.clone(),
            }
            .into());
        }
        None => {}
    }

    let check = if props.is_pessimistic() {
        mutation.pessimistic_action == PessimisticAction::DoConstraintCheck
    } else {
        !props.skip_constraint_check
    };
    if check && !holds_pessimistic_lock {
        let should_not_exist =
            matches!(mutation.op, MutationOp::Insert | MutationOp::CheckNotExists);
        check_for_newer_version(reader, &key, start_ts, props, should_not_exist)?;
    }

    let lock_type = match mutation.op {
        MutationOp::Put | MutationOp::Insert => LockType::Put,
        MutationOp::Delete => LockType::Delete,
        MutationOp::Lock => LockType::Lock,
        MutationOp::CheckNotExists => return Ok(()),
    };
    let mut lock = Lock::new(lock_type, props.primary.clone(), start_ts, lock_ttl);
    lock.for_update_ts = props.for_update_ts;
    lock.txn_size = props.txn_size;
    lock.min_commit_ts = min_commit_ts;
    if lock_type == LockType::Put {
        if is_short_value(&mutation.value) {
            lock.short_value = Some(mutation.value.clone());
        } else {
            txn.put_value(&key, mutation.value.clone());
        }
    }
    txn.put_lock(&key, &lock);
    Ok(())
}
