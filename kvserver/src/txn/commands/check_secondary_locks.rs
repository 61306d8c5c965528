//! KvCheckSecondaryLocks.

use proto::kvrpcpb::{Context, LockInfo};

use crate::errors::Result;
use crate::storage::Storage;
use crate::txn::actions::{check_txn_status_missing_lock, rollback_lock, TxnStatus};
use crate::txn::executor::Executor;

use super::unique_keys;

/// What the secondary locks say about their transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondaryLocksStatus {
    /// Every key still holds a prewrite lock of the transaction: undecided.
    Locked(Vec<LockInfo>),
    /// A key is committed at this ts.
    Committed(u64),
    /// A key is rolled back (or now is: it had no lock, or only a pessimistic one).
    RolledBack,
}

/// Checks transaction `start_ts`'s locks on `keys` (lock resolution and GC use it to decide a
/// transaction whose primary alone cannot tell).
#[derive(Debug, Clone)]
pub struct CheckSecondaryLocks {
    /// Raw keys.
    pub keys: Vec<Vec<u8>>,
    /// Start ts of the transaction.
    pub start_ts: u64,
}

impl CheckSecondaryLocks {
    /// The status. A key that lost its lock without a commit record gets a rollback record, and
    /// a pessimistic lock is rolled back: either way the transaction can no longer commit there,
    /// so "rolled back" stays true.
    pub async fn execute<S: Storage>(
        self,
        exec: &Executor<'_, S>,
        ctx: &Context,
    ) -> Result<SecondaryLocksStatus> {
        let keys = unique_keys(&self.keys);
        let start_ts = self.start_ts;
        exec.write(ctx, start_ts, keys.clone(), move |reader, txn| {
            let mut locks = Vec::with_capacity(keys.len());
            for key in &keys {
                match reader.load_lock(key)? {
                    Some(lock) if lock.ts == start_ts => {
                        if lock.is_pessimistic_lock() {
                            rollback_lock(txn, reader, key, &lock)?;
                            return Ok(SecondaryLocksStatus::RolledBack);
                        }
                        locks.push(lock.into_lock_info(key.to_raw()?));
                    }
                    _ => {
                        let status = check_txn_status_missing_lock(txn, reader, key, true, false)?;
                        return Ok(match status {
                            TxnStatus::Committed { commit_ts } => {
                                SecondaryLocksStatus::Committed(commit_ts)
                            }
                            _ => SecondaryLocksStatus::RolledBack,
                        });
                    }
                }
            }
            Ok(SecondaryLocksStatus::Locked(locks))
        })
        .await
    }
}
