//! KvBatchRollback and KvCleanup.

use proto::kvrpcpb::Context;

use crate::errors::Result;
use crate::mvcc::Key;
use crate::storage::Storage;
use crate::txn::actions::cleanup;
use crate::txn::executor::Executor;

use super::unique_keys;

/// Rolls transaction `start_ts` back on `keys`, regardless of lock TTLs.
#[derive(Debug, Clone)]
pub struct BatchRollback {
    /// Raw keys.
    pub keys: Vec<Vec<u8>>,
    /// Start ts of the transaction.
    pub start_ts: u64,
}

impl BatchRollback {
    /// Leaves a rollback record on every key (even one the transaction never locked, so a late
    /// prewrite fails); fails with `Committed` (and writes nothing) if a key is committed.
    pub async fn execute<S: Storage>(self, exec: &Executor<'_, S>, ctx: &Context) -> Result<()> {
        let keys = unique_keys(&self.keys);
        exec.write(ctx, self.start_ts, keys.clone(), move |reader, txn| {
            for key in &keys {
                cleanup(txn, reader, key, 0)?;
            }
            Ok(())
        })
        .await
    }
}

/// Rolls transaction `start_ts` back on one key if its lock has expired at `current_ts`.
#[derive(Debug, Clone)]
pub struct Cleanup {
    /// Raw key.
    pub key: Vec<u8>,
    /// Start ts of the transaction.
    pub start_ts: u64,
    /// Now (0 = ignore the TTL).
    pub current_ts: u64,
}

impl Cleanup {
    /// Rolls back; a live lock is `KeyIsLocked`, a committed key `Committed`.
    pub async fn execute<S: Storage>(self, exec: &Executor<'_, S>, ctx: &Context) -> Result<()> {
        let key = Key::from_raw(&self.key);
        let current_ts = self.current_ts;
        exec.write(ctx, self.start_ts, vec![key.clone()], move |reader, txn| {
            cleanup(txn, reader, &key, current_ts)
        })
        .await
    }
}
