//! KvTxnHeartBeat.

use proto::kvrpcpb::Context;

use crate::errors::{Result, TxnError};
use crate::mvcc::Key;
use crate::storage::Storage;
use crate::txn::executor::Executor;

/// Extends the TTL of a long-running transaction's primary lock so others do not roll it back.
#[derive(Debug, Clone)]
pub struct TxnHeartBeat {
    /// Raw primary key.
    pub primary_key: Vec<u8>,
    /// Start ts of the transaction.
    pub start_ts: u64,
    /// The TTL (ms since the start ts) the client wants; a TTL is never shortened.
    pub advise_lock_ttl: u64,
}

impl TxnHeartBeat {
    /// The lock's TTL after the heartbeat; `TxnNotFound` if the primary lock is gone.
    pub async fn execute<S: Storage>(self, exec: &Executor<'_, S>, ctx: &Context) -> Result<u64> {
        let key = Key::from_raw(&self.primary_key);
        exec.write(
            ctx,
            self.start_ts,
            vec![key.clone()],
            move |reader, txn| match reader.load_lock(&key)? {
                Some(mut lock) if lock.ts == self.start_ts => {
                    if lock.ttl < self.advise_lock_ttl {
                        lock.ttl = self.advise_lock_ttl;
                        txn.put_lock(&key, &lock);
                    }
                    Ok(lock.ttl)
                }
                _ => Err(TxnError::TxnNotFound {
                    start_ts: self.start_ts,
                    key: self.primary_key,
                }
                .into()),
            },
        )
        .await
    }
}
