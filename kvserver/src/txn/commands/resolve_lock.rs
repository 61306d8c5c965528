//! KvResolveLock.

use std::collections::HashMap;
use std::sync::Arc;

use proto::kvrpcpb::Context;
use tracing::debug;

use crate::errors::Result;
use crate::mvcc::{Key, MvccTxn};
use crate::storage::Storage;
use crate::txn::actions::{cleanup, commit};
use crate::txn::executor::Executor;
use crate::work::Work;

use super::unique_keys;

/// Locks resolved per latch-and-write round: bounds the latch set, the write batch (one Raft
/// entry) and how long other commands on those keys wait.
pub const RESOLVE_LOCK_BATCH_SIZE: usize = 256;

/// Commits or rolls back the locks of decided transactions in a region.
#[derive(Debug, Clone)]
pub struct ResolveLock {
    /// Start ts → commit ts (0 = roll back) of each transaction to resolve.
    pub txn_status: HashMap<u64, u64>,
    /// Resolve only these raw keys, all of the single transaction in `txn_status`. Empty: every
    /// lock of those transactions in the region.
    pub keys: Vec<Vec<u8>>,
}

/// Resolves `key` for transaction `start_ts` into `txn`'s batch.
fn resolve_key(
    out: &mut MvccTxn,
    reader: &mut crate::mvcc::MvccReader,
    key: &Key,
    start_ts: u64,
    commit_ts: u64,
) -> Result<()> {
    let mut txn = MvccTxn::new(start_ts);
    if commit_ts == 0 {
        cleanup(&mut txn, reader, key, 0)?;
    } else {
        commit(&mut txn, reader, key, commit_ts)?;
    }
    out.extend(txn);
    Ok(())
}

impl ResolveLock {
    /// Resolves the locks. Fails (after resolving earlier batches) if a lock cannot be resolved
    /// as asked, e.g. rolling back a key that is committed.
    pub async fn execute<S: Storage>(self, exec: &Executor<'_, S>, ctx: &Context) -> Result<()> {
        if !self.keys.is_empty() {
            let Some((&start_ts, &commit_ts)) = self.txn_status.iter().next() else {
                return Ok(());
            };
            let keys = unique_keys(&self.keys);
            return exec
                .write(ctx, start_ts, keys.clone(), move |reader, txn| {
                    for key in &keys {
                        resolve_key(txn, reader, key, start_ts, commit_ts)?;
                    }
                    Ok(())
                })
                .await;
        }

        let status = Arc::new(self.txn_status);
        let mut start = Vec::new();
        let mut resolved = 0usize;
        loop {
            // Find a batch of locks without latches, then latch them and decide each one again
            // on a fresh snapshot: a lock may have been resolved by someone else meanwhile.
            let scan_status = status.clone();
            let scan_start = start.clone();
            let (locks, more) = exec
                .read(ctx, Work::Scan, move |reader| {
                    reader.scan_locks(
                        &scan_start,
                        b"",
                        |lock| scan_status.contains_key(&lock.ts),
                        RESOLVE_LOCK_BATCH_SIZE,
                    )
                })
                .await?;
            let Some((last, _)) = locks.last() else {
                break;
            };
            start = last.successor();
            let keys: Vec<Key> = locks.into_iter().map(|(key, _)| key).collect();
            resolved += keys.len();
            let write_status = status.clone();
            exec.write(ctx, 0, keys.clone(), move |reader, txn| {
                for key in &keys {
                    let Some(lock) = reader.load_lock(key)? else {
                        continue;
                    };
                    if let Some(&commit_ts) = write_status.get(&lock.ts) {
                        resolve_key(txn, reader, key, lock.ts, commit_ts)?;
                    }
                }
                Ok(())
            })
            .await?;
            if !more {
                break;
            }
        }
        debug!(
            region_id = ctx.region_id,
            txns = status.len(),
            resolved,
            "resolved locks"
        );
        Ok(())
    }
}
