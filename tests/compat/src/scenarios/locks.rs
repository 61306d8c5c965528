//! Lock resolution: transactions abandoned between prewrite and commit, and the later reader of
//! TiKV's client that must clean them up (`KvCheckTxnStatus` on the primary, then
//! `KvResolveLock`, then the read again); the client's lock scan (`KvScanLock`) and explicit
//! `resolve_locks` on the same locks.
//!
//! The abandoned transactions are written by the harness with `KvPrewrite` (and, for one, a
//! `KvCommit` of the primary alone): exactly what the stores hold after a client crashed at that
//! point, with real timestamps from PD.

use std::time::Duration;

use tikv_client::{Backoff, RetryOptions, TransactionOptions};

use super::{our_txn_pairs, show, tikv_pairs, Clients, Ctx, Pairs};
use crate::cluster::CompatCluster;
use crate::errors::Result;
use crate::keys::{Namespace, KEYS_PER_SCENARIO};
use crate::rpc;

const ROLLED_BACK: &str = "lock-rollback";
const COMMITTED: &str = "lock-commit";

/// Lock TTL of the abandoned uncommitted transaction. Long enough that a reader with the
/// client's default lock backoff (about 1.5 s in all) gives up before it expires even on a slow
/// machine, short enough that the patient reader's wait stays small.
const LIVE_TTL: Duration = Duration::from_secs(6);

/// The namespaces of the lock scenarios.
pub fn namespaces() -> Vec<Namespace> {
    [ROLLED_BACK, COMMITTED]
        .into_iter()
        .map(Namespace::txn)
        .collect()
}

/// Every lock scenario.
pub async fn run(c: &CompatCluster, t: &Clients) -> Result<()> {
    abandoned_before_commit(c, t).await?;
    abandoned_after_primary_commit(c, t).await?;
    Ok(())
}

/// A lock backoff that outlasts [`LIVE_TTL`]: the reader waits for the lock to expire.
fn patient() -> TransactionOptions {
    TransactionOptions::new_optimistic().retry_options(RetryOptions {
        region_backoff: tikv_client::Backoff::no_jitter_backoff(2, 500, 10),
        lock_backoff: Backoff::no_jitter_backoff(100, 1000, 60),
    })
}

/// A transaction prewrote a key in each half of the namespace and vanished. While its lock
/// lives, a reader with the default backoff fails (the lock is not its to clean); once the TTL
/// has passed, a patient reader rolls it back and reads the old values; our client then reads
/// the same, and the keys take new writes.
pub async fn abandoned_before_commit(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(ROLLED_BACK);
    let (primary, secondary) = (ns.key(0), ns.key(KEYS_PER_SCENARIO - 1));
    let old: Pairs = [
        (primary.clone(), b"old".to_vec()),
        (secondary.clone(), b"old".to_vec()),
    ]
    .into();
    super::txn::commit_pairs(t, &old).await?;

    let start_ts = c.txn().current_timestamp().await?.version();
    let ttl_ms = LIVE_TTL.as_millis() as u64;
    let puts = [
        (primary.clone(), b"abandoned".to_vec()),
        (secondary.clone(), b"abandoned".to_vec()),
    ];
    rpc::prewrite_only(c, &primary, &puts, start_ts, ttl_ms).await?;

    // A lock scan (`KvScanLock`, region by region) finds both locks, and resolving them while
    // the TTL runs (`KvCheckTxnStatus` on the primary) leaves both live.
    let range = ns.range();
    let now = t.txn.current_timestamp().await.ctx("current_timestamp")?;
    let locks = t
        .txn
        .scan_locks(&now, range.start.clone()..range.end.clone(), 100)
        .await
        .ctx("scan_locks")?;
    let mut found: Vec<(Vec<u8>, Vec<u8>, u64)> = locks
        .iter()
        .map(|l| (l.key.clone(), l.primary_lock.clone(), l.lock_version))
        .collect();
    found.sort();
    let want = vec![
        (primary.clone(), primary.clone(), start_ts),
        (secondary.clone(), primary.clone(), start_ts),
    ];
    assert_eq!(
        found, want,
        "scan_locks: (key, primary, start ts) of each lock"
    );
    let live = t
        .txn
        .resolve_locks(locks, now, Backoff::no_backoff())
        .await
        .ctx("resolve_locks of live locks")?;
    assert_eq!(live.len(), 2, "locks within their TTL stay: {live:?}");

    // The lock is alive: the default reader backs off and gives up.
    let mut hasty = t
        .txn
        .begin_with_options(
            TransactionOptions::new_optimistic().drop_check(tikv_client::CheckLevel::Warn),
        )
        .await
        .ctx("begin")?;
    let err = hasty
        .get(secondary.clone())
        .await
        .expect_err("a live lock of another transaction blocks the read");
    hasty.rollback().await.ctx("rollback")?;
    let text = format!("{err:?}").to_lowercase();
    assert!(text.contains("lock"), "a lock error, not {err:?}");

    // A patient reader waits out the TTL, rolls the transaction back, reads the old values.
    let mut reader = t.txn.begin_with_options(patient()).await.ctx("begin")?;
    let got = tikv_pairs(
        reader
            .batch_get(vec![primary.clone(), secondary.clone()])
            .await
            .ctx("batch_get through the expired lock")?,
    );
    reader.rollback().await.ctx("rollback")?;
    assert_eq!(
        show(&got),
        show(&old),
        "the abandoned writes are rolled back"
    );
    assert_eq!(show(&our_txn_pairs(c, &ns).await?), show(&old), "read back");
    let now = t.txn.current_timestamp().await.ctx("current_timestamp")?;
    let left = t
        .txn
        .scan_locks(&now, range.start..range.end, 100)
        .await
        .ctx("scan_locks")?;
    assert!(left.is_empty(), "no lock left after the rollback: {left:?}");

    // Nothing lingers: a new transaction writes both keys at once.
    let new: Pairs = [(primary, b"new".to_vec()), (secondary, b"new".to_vec())].into();
    super::txn::commit_pairs(t, &new).await?;
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&new),
        "read back new writes"
    );
    Ok(())
}

/// A transaction committed its primary and vanished before committing the secondaries (in the
/// other half of the namespace). A reader's scan meets the secondary locks, finds the primary
/// committed, and commits them: the transaction's writes are all visible, at once, with no
/// wait for the TTL (which is long).
pub async fn abandoned_after_primary_commit(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(COMMITTED);
    let primary = ns.key(0);
    let secondaries = [ns.key(KEYS_PER_SCENARIO - 2), ns.key(KEYS_PER_SCENARIO - 1)];
    let start_ts = c.txn().current_timestamp().await?.version();
    let mut puts = vec![(primary.clone(), b"committed".to_vec())];
    puts.extend(
        secondaries
            .iter()
            .map(|k| (k.clone(), b"committed".to_vec())),
    );
    // A TTL no test waits for: only the committed primary may let readers through.
    rpc::prewrite_only(c, &primary, &puts, start_ts, 60_000).await?;
    let commit_ts = c.txn().current_timestamp().await?.version();
    rpc::commit(c, std::slice::from_ref(&primary), start_ts, commit_ts).await?;

    let want: Pairs = puts.into_iter().collect();
    let mut reader = t.txn.begin_optimistic().await.ctx("begin")?;
    let range = ns.range();
    let got = tikv_pairs(
        reader
            .scan(range.start..range.end, 100)
            .await
            .ctx("scan through the secondary locks")?,
    );
    reader.rollback().await.ctx("rollback")?;
    assert_eq!(show(&got), show(&want), "secondaries resolved as committed");
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&want),
        "read back"
    );
    Ok(())
}
