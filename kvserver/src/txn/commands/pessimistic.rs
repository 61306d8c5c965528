//! KvPessimisticLock and KVPessimisticRollback.

use proto::kvrpcpb::Context;

use crate::errors::{Error, Result, TxnError};
use crate::mvcc::Key;
use crate::storage::Storage;
use crate::txn::actions::{acquire_pessimistic_lock, pessimistic_rollback, PessimisticLockProps};
use crate::txn::executor::Executor;

use super::unique_keys;

/// Takes pessimistic locks for transaction `start_ts` (before it knows its final writes).
#[derive(Debug, Clone)]
pub struct PessimisticLock {
    /// Start ts of the transaction.
    pub start_ts: u64,
    /// Request-wide settings.
    pub props: PessimisticLockProps,
    /// Raw keys in request order, each with "must not exist" (an `Insert` to come).
    pub keys: Vec<(Vec<u8>, bool)>,
}

/// Outcome of a pessimistic lock request that ran.
#[derive(Debug, Default)]
pub struct PessimisticLockResult {
    /// One entry per requested key, in request order (only when `errors` is empty): the value,
    /// or an empty vector for an existing key when only existence was asked, or `None`.
    pub values: Vec<Option<Vec<u8>>>,
    /// Per-key failures; if any, no lock was taken. Locks of other transactions are all
    /// reported (we never wait for them); any other error stops the request alone.
    pub errors: Vec<Error>,
}

impl PessimisticLock {
    /// Locks all keys or none.
    pub async fn execute<S: Storage>(
        self,
        exec: &Executor<'_, S>,
        ctx: &Context,
    ) -> Result<PessimisticLockResult> {
        let keys = self.keys.iter().map(|(k, _)| Key::from_raw(k)).collect();
        let props = self.props;
        let requested = self.keys;
        exec.write(ctx, self.start_ts, keys, move |reader, txn| {
            let mut result = PessimisticLockResult::default();
            for (raw, should_not_exist) in &requested {
                let key = Key::from_raw(raw);
                match acquire_pessimistic_lock(txn, reader, &key, *should_not_exist, &props) {
                    Ok(value) => result.values.push(value),
                    Err(e @ Error::Txn(TxnError::KeyIsLocked(_))) => result.errors.push(e),
                    Err(e @ Error::Txn(_)) => {
                        result.errors = vec![e];
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            if !result.errors.is_empty() {
                txn.clear();
                result.values.clear();
            }
            Ok(result)
        })
        .await
    }
}

/// Releases transaction `start_ts`'s pessimistic locks taken at or below `for_update_ts`.
#[derive(Debug, Clone)]
pub struct PessimisticRollback {
    /// Raw keys.
    pub keys: Vec<Vec<u8>>,
    /// Start ts of the transaction.
    pub start_ts: u64,
    /// Only locks with `for_update_ts` at or below this are released.
    pub for_update_ts: u64,
}

impl PessimisticRollback {
    /// Releases the locks; keys without a matching pessimistic lock are skipped.
    pub async fn execute<S: Storage>(self, exec: &Executor<'_, S>, ctx: &Context) -> Result<()> {
        let keys = unique_keys(&self.keys);
        let for_update_ts = self.for_update_ts;
        exec.write(ctx, self.start_ts, keys.clone(), move |reader, txn| {
            for key in &keys {
                pessimistic_rollback(txn, reader, key, for_update_ts)?;
            }
            Ok(())
        })
        .await
    }
}
