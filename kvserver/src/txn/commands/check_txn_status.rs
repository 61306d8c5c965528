//! KvCheckTxnStatus.

use proto::kvrpcpb::Context;

use crate::errors::{Result, TxnError};
use crate::mvcc::Key;
use crate::storage::Storage;
use crate::txn::actions::{check_txn_status_lock_exists, check_txn_status_missing_lock, TxnStatus};
use crate::txn::executor::Executor;

/// Decides the fate of transaction `lock_ts` from its primary lock, rolling it back if its TTL
/// expired. Sent by a reader or writer that met one of the transaction's locks.
#[derive(Debug, Clone)]
pub struct CheckTxnStatus {
    /// Raw primary key of the transaction being checked.
    pub primary_key: Vec<u8>,
    /// Start ts of the transaction being checked.
    pub lock_ts: u64,
    /// Start ts of the caller (0: not a reader; `u64::MAX`: a point read of the latest data).
    pub caller_start_ts: u64,
    /// Now (a TSO timestamp; its physical part is compared with the TTL).
    pub current_ts: u64,
    /// With no lock and no record: roll back (`true`) or report `TxnNotFound` (`false`).
    pub rollback_if_not_exist: bool,
    /// The caller resolves a pessimistic lock: an expired pessimistic primary is only unlocked,
    /// and a missing one is left alone.
    pub resolving_pessimistic_lock: bool,
    /// Fail with `PrimaryMismatch` if the lock found says another key is the primary.
    pub verify_is_primary: bool,
}

impl CheckTxnStatus {
    /// The transaction's status.
    pub async fn execute<S: Storage>(
        self,
        exec: &Executor<'_, S>,
        ctx: &Context,
    ) -> Result<TxnStatus> {
        let key = Key::from_raw(&self.primary_key);
        exec.write(
            ctx,
            self.lock_ts,
            vec![key.clone()],
            move |reader, txn| match reader.load_lock(&key)? {
                Some(lock) if lock.ts == self.lock_ts => {
                    if self.verify_is_primary && lock.primary != self.primary_key {
                        let info = lock.into_lock_info(self.primary_key);
                        return Err(TxnError::PrimaryMismatch(Box::new(info)).into());
                    }
                    check_txn_status_lock_exists(
                        txn,
                        reader,
                        &key,
                        lock,
                        self.current_ts,
                        self.caller_start_ts,
                        self.resolving_pessimistic_lock,
                    )
                }
                _ => check_txn_status_missing_lock(
                    txn,
                    reader,
                    &key,
                    self.rollback_if_not_exist,
                    self.resolving_pessimistic_lock,
                ),
            },
        )
        .await
    }
}
