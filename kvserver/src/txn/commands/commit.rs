//! KvCommit.

use proto::kvrpcpb::Context;

use crate::errors::Result;
use crate::storage::Storage;
use crate::txn::actions::commit;
use crate::txn::executor::Executor;

use super::unique_keys;

/// Commits prewritten keys of transaction `start_ts` at `commit_ts`.
#[derive(Debug, Clone)]
pub struct Commit {
    /// Raw keys.
    pub keys: Vec<Vec<u8>>,
    /// Start ts of the transaction.
    pub start_ts: u64,
    /// Commit ts (> `start_ts`).
    pub commit_ts: u64,
}

impl Commit {
    /// Commits every key, or none if one of them fails.
    pub async fn execute<S: Storage>(self, exec: &Executor<'_, S>, ctx: &Context) -> Result<()> {
        let keys = unique_keys(&self.keys);
        let commit_ts = self.commit_ts;
        exec.write(ctx, self.start_ts, keys.clone(), move |reader, txn| {
            for key in &keys {
                commit(txn, reader, key, commit_ts)?;
            }
            Ok(())
        })
        .await
    }
}
