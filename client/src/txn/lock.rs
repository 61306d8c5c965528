//! Lock resolution: what a transaction does when it meets another transaction's lock.
//!
//! ```text
//!  lock met (read or write) ──▶ CheckTxnStatus(primary, lock ts, current ts)
//!      committed at c  ──▶ ResolveLock(start, c)   on the locked keys  ──▶ retry now
//!      rolled back     ──▶ ResolveLock(start, 0)   (PessimisticRollback for pessimistic locks)
//!      still alive     ──▶ back off (lock backoff), retry; KeyLocked once the backoff runs out
//!      txn not found   ──▶ if the lock's TTL is over: CheckTxnStatus(rollback_if_not_exist),
//!                          otherwise the primary may still be on its way: treat as alive
//! ```
//!
//! The store decides expiry in CheckTxnStatus (comparing the lock TTL with `current_ts`), so a
//! lock whose owner died is rolled back there and resolved by the reader.

use std::collections::BTreeMap;

use proto::kvrpcpb;
use tracing::debug;

use crate::backoff::Backoff;
use crate::dispatch::Cluster;
use crate::errors::{Error, Result};
use crate::timestamp::Timestamp;

/// A transaction's fate as its primary lock tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnStatus {
    Committed(u64),
    RolledBack,
    Alive,
}

/// Resolves what can be resolved; if some locks are still alive, waits one step of `backoff`
/// (the caller then retries its request) or fails with [`Error::KeyLocked`].
pub(crate) async fn resolve_or_wait(
    cluster: &Cluster,
    locks: Vec<kvrpcpb::LockInfo>,
    caller_start_ts: u64,
    backoff: &mut Backoff,
) -> Result<()> {
    let mut alive = resolve_locks(cluster, locks, caller_start_ts).await?;
    if alive.is_empty() {
        return Ok(());
    }
    debug!(
        lock_ts = alive[0].lock_version,
        attempts = backoff.attempts(),
        "waiting for live locks"
    );
    if backoff.wait().await {
        Ok(())
    } else {
        Err(Error::KeyLocked(Box::new(alive.swap_remove(0))))
    }
}

/// Resolves the locks whose transactions are finished and returns those still alive.
async fn resolve_locks(
    cluster: &Cluster,
    locks: Vec<kvrpcpb::LockInfo>,
    caller_start_ts: u64,
) -> Result<Vec<kvrpcpb::LockInfo>> {
    let mut by_txn: BTreeMap<u64, Vec<kvrpcpb::LockInfo>> = BTreeMap::new();
    for lock in locks {
        by_txn.entry(lock.lock_version).or_default().push(lock);
    }
    let mut now = None;
    let mut alive = Vec::new();
    for (txn, locks) in by_txn {
        let status = check_txn_status(cluster, &locks[0], caller_start_ts, &mut now).await?;
        debug!(lock_ts = txn, ?status, "checked txn status");
        let (pessimistic, normal): (Vec<_>, Vec<_>) = locks
            .into_iter()
            .partition(|l| l.lock_type == kvrpcpb::Op::PessimisticLock as i32);
        match status {
            TxnStatus::Alive => {
                alive.extend(pessimistic);
                alive.extend(normal);
            }
            TxnStatus::Committed(commit_ts) => {
                resolve(
                    cluster,
                    txn,
                    commit_ts,
                    normal.into_iter().map(|l| l.key).collect(),
                )
                .await?;
                // A pessimistic lock left by a committed transaction guarded no write.
                rollback_pessimistic(cluster, pessimistic).await?;
            }
            TxnStatus::RolledBack => {
                resolve(cluster, txn, 0, normal.into_iter().map(|l| l.key).collect()).await?;
                rollback_pessimistic(cluster, pessimistic).await?;
            }
        }
    }
    Ok(alive)
}

async fn check_txn_status(
    cluster: &Cluster,
    lock: &kvrpcpb::LockInfo,
    caller_start_ts: u64,
    now: &mut Option<Timestamp>,
) -> Result<TxnStatus> {
    let current = match *now {
        Some(t) => t,
        None => {
            let t = cluster.pd.get_timestamp().await?;
            *now = Some(t);
            t
        }
    };
    let mut rollback_if_not_exist = false;
    loop {
        let req = kvrpcpb::CheckTxnStatusRequest {
            primary_key: lock.primary_lock.clone(),
            lock_ts: lock.lock_version,
            caller_start_ts,
            current_ts: current.version(),
            rollback_if_not_exist,
            resolving_pessimistic_lock: lock.lock_type == kvrpcpb::Op::PessimisticLock as i32,
            verify_is_primary: true,
            ..Default::default()
        };
        let resp = cluster.execute_key(&lock.primary_lock, req).await?;
        if let Some(e) = resp.error {
            if e.txn_not_found.is_some() {
                if !rollback_if_not_exist && lock_expired(lock, current) {
                    rollback_if_not_exist = true;
                    continue;
                }
                return Ok(TxnStatus::Alive);
            }
            return Err(e.into());
        }
        return Ok(match (resp.commit_version, resp.lock_ttl) {
            (c, _) if c > 0 => TxnStatus::Committed(c),
            (0, 0) => TxnStatus::RolledBack,
            _ => TxnStatus::Alive,
        });
    }
}

/// TTLs count from the physical part of the lock's start timestamp.
fn lock_expired(lock: &kvrpcpb::LockInfo, now: Timestamp) -> bool {
    let start = Timestamp::from_version(lock.lock_version);
    now.physical >= start.physical.saturating_add(lock.lock_ttl as i64)
}

/// Commits (`commit_ts > 0`) or rolls back the locks of transaction `start_ts` on `keys`.
async fn resolve(
    cluster: &Cluster,
    start_ts: u64,
    commit_ts: u64,
    keys: Vec<Vec<u8>>,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let results = cluster
        .execute_sharded(
            keys,
            |k| k.as_slice(),
            |_, keys| kvrpcpb::ResolveLockRequest {
                start_version: start_ts,
                commit_version: commit_ts,
                keys: keys.to_vec(),
                ..Default::default()
            },
        )
        .await?;
    for (_, resp) in results {
        if let Some(e) = resp.error {
            return Err(e.into());
        }
    }
    Ok(())
}

async fn rollback_pessimistic(cluster: &Cluster, locks: Vec<kvrpcpb::LockInfo>) -> Result<()> {
    for lock in locks {
        pessimistic_rollback(
            cluster,
            lock.lock_version,
            lock.lock_for_update_ts.max(lock.lock_version),
            vec![lock.key],
        )
        .await?;
    }
    Ok(())
}

/// Releases transaction `start_ts`'s pessimistic locks (with for-update ts up to
/// `for_update_ts`) on `keys`.
pub(crate) async fn pessimistic_rollback(
    cluster: &Cluster,
    start_ts: u64,
    for_update_ts: u64,
    keys: Vec<Vec<u8>>,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let results = cluster
        .execute_sharded(
            keys,
            |k| k.as_slice(),
            |_, keys| kvrpcpb::PessimisticRollbackRequest {
                start_version: start_ts,
                for_update_ts,
                keys: keys.to_vec(),
                ..Default::default()
            },
        )
        .await?;
    let errors: Vec<Error> = results
        .into_iter()
        .flat_map(|(_, resp)| resp.errors)
        .map(Error::from)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::from_key_errors(errors))
    }
}

/// Rolls back transaction `start_ts` on `keys` (prewrite locks, and rollback records that stop
/// late prewrites).
pub(crate) async fn batch_rollback(
    cluster: &Cluster,
    start_ts: u64,
    keys: Vec<Vec<u8>>,
) -> Result<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let results = cluster
        .execute_sharded(
            keys,
            |k| k.as_slice(),
            |_, keys| kvrpcpb::BatchRollbackRequest {
                start_version: start_ts,
                keys: keys.to_vec(),
                ..Default::default()
            },
        )
        .await?;
    for (_, resp) in results {
        if let Some(e) = resp.error {
            return Err(e.into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_counts_from_the_lock_start() {
        let start = Timestamp {
            physical: 1_000,
            logical: 3,
        };
        let lock = kvrpcpb::LockInfo {
            lock_version: start.version(),
            lock_ttl: 100,
            ..Default::default()
        };
        let at = |physical| Timestamp {
            physical,
            logical: 0,
        };
        assert!(!lock_expired(&lock, at(1_099)));
        assert!(lock_expired(&lock, at(1_100)));
        let zero_ttl = kvrpcpb::LockInfo {
            lock_ttl: 0,
            ..lock
        };
        assert!(lock_expired(&zero_ttl, at(1_000)));
    }
}
