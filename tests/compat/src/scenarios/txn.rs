//! Optimistic transactions with TiKV's Rust client: commit and read-back, rollback, write
//! conflicts, `lock_keys` (a read guarded against concurrent writes), `insert` on an existing key, snapshot reads at an older timestamp, scans, and what
//! the client's 1PC and async-commit options do against a server that implements neither.

use tikv_client::{CheckLevel, Timestamp, TimestampExt, TransactionOptions};

use super::{our_txn_pairs, our_txn_pairs_at, show, tikv_list, tikv_pairs, Clients, Ctx, Pairs};
use crate::cluster::CompatCluster;
use crate::errors::Result;
use crate::keys::{Namespace, KEYS_PER_SCENARIO};

const COMMIT: &str = "commit";
const CONFLICT: &str = "conflict";
const LOCK_KEYS: &str = "lock-keys";
const INSERT: &str = "insert";
const SNAPSHOT: &str = "snapshot";
const SCAN: &str = "scan";
const FALLBACK: &str = "fallback";

/// The namespaces of the transactional scenarios.
pub fn namespaces() -> Vec<Namespace> {
    [
        COMMIT, CONFLICT, LOCK_KEYS, INSERT, SNAPSHOT, SCAN, FALLBACK,
    ]
    .into_iter()
    .map(Namespace::txn)
    .collect()
}

/// Every transactional scenario.
pub async fn run(c: &CompatCluster, t: &Clients) -> Result<()> {
    commit_and_read_back(c, t).await?;
    write_conflict(c, t).await?;
    lock_keys(c, t).await?;
    insert_existing(c, t).await?;
    snapshot_reads(c, t).await?;
    scans(c, t).await?;
    commit_fallbacks(c, t).await?;
    Ok(())
}

/// Options of a transaction expected to fail: its drop after the failure must not panic the
/// test (the client panics on dropping an active transaction by default).
fn may_fail() -> TransactionOptions {
    TransactionOptions::new_optimistic().drop_check(CheckLevel::Warn)
}

/// Commits `pairs` in one optimistic transaction of TiKV's client; returns the commit ts.
pub async fn commit_pairs(t: &Clients, pairs: &Pairs) -> Result<u64> {
    let mut txn = t.txn.begin_optimistic().await.ctx("begin")?;
    for (k, v) in pairs {
        txn.put(k.clone(), v.clone()).await.ctx("put")?;
    }
    let ts = txn.commit().await.ctx("commit")?;
    Ok(ts.map(|ts| ts.version()).unwrap_or(0))
}

/// Reads `ns` through TiKV's client at a fresh timestamp.
async fn tikv_read(t: &Clients, ns: &Namespace) -> Result<Pairs> {
    let ts = t.txn.current_timestamp().await.ctx("current_timestamp")?;
    tikv_read_at(t, ns, ts).await
}

async fn tikv_read_at(t: &Clients, ns: &Namespace, ts: Timestamp) -> Result<Pairs> {
    let mut snap = t.txn.snapshot(ts, TransactionOptions::new_optimistic());
    let range = ns.range();
    Ok(tikv_pairs(
        snap.scan(range.start..range.end, 1000)
            .await
            .ctx("snapshot scan")?,
    ))
}

/// A multi-key commit (both halves of the namespace), then an overwrite-and-delete commit, and
/// a rollback that must leave nothing; each read back through both clients.
pub async fn commit_and_read_back(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(COMMIT);
    let mut model: Pairs = (0..KEYS_PER_SCENARIO)
        .map(|i| (ns.key(i), ns.value(i, "c1")))
        .collect();
    let ts = commit_pairs(t, &model).await?;
    assert!(ts > 0, "a commit with writes returns its commit ts");
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "read back commit"
    );
    assert_eq!(
        show(&tikv_read(t, &ns).await?),
        show(&model),
        "tikv-client read"
    );

    // Overwrite the odd keys, delete every fourth; get and batch_get inside the transaction.
    let mut txn = t.txn.begin_optimistic().await.ctx("begin")?;
    let first = ns.key(1);
    assert_eq!(
        txn.get(first.clone()).await.ctx("get")?,
        model.get(&first).cloned()
    );
    for i in (1..KEYS_PER_SCENARIO).step_by(2) {
        let v = ns.value(i, "c2");
        txn.put(ns.key(i), v.clone()).await.ctx("put")?;
        model.insert(ns.key(i), v);
    }
    for i in (0..KEYS_PER_SCENARIO).step_by(4) {
        txn.delete(ns.key(i)).await.ctx("delete")?;
        model.remove(&ns.key(i));
    }
    // Reads see the transaction's own writes.
    let keys: Vec<Vec<u8>> = (0..KEYS_PER_SCENARIO).map(|i| ns.key(i)).collect();
    let got = tikv_pairs(txn.batch_get(keys.clone()).await.ctx("batch_get")?);
    assert_eq!(show(&got), show(&model), "batch_get inside the transaction");
    txn.commit().await.ctx("commit")?;
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "read back commit 2"
    );
    let mut check = t.txn.begin_optimistic().await.ctx("begin")?;
    let got = tikv_pairs(check.batch_get(keys).await.ctx("batch_get")?);
    check.rollback().await.ctx("rollback read-only")?;
    assert_eq!(show(&got), show(&model), "tikv-client batch_get");

    // A rolled-back transaction leaves nothing behind.
    let mut txn = t.txn.begin_optimistic().await.ctx("begin")?;
    for i in 0..KEYS_PER_SCENARIO {
        txn.put(ns.key(i), ns.value(i, "rolled-back"))
            .await
            .ctx("put")?;
    }
    txn.rollback().await.ctx("rollback")?;
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "after rollback"
    );
    Ok(())
}

/// Two transactions write the same key; the second to commit fails with a write conflict and
/// none of its writes (also on the other half of the namespace) become visible.
pub async fn write_conflict(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(CONFLICT);
    let (shared, only1, only2) = (ns.key(0), ns.key(1), ns.key(KEYS_PER_SCENARIO - 1));
    let mut t1 = t.txn.begin_optimistic().await.ctx("begin t1")?;
    let mut t2 = t.txn.begin_with_options(may_fail()).await.ctx("begin t2")?;
    t1.put(shared.clone(), b"t1".to_vec()).await.ctx("put")?;
    t1.put(only1.clone(), b"t1".to_vec()).await.ctx("put")?;
    t2.put(shared.clone(), b"t2".to_vec()).await.ctx("put")?;
    t2.put(only2.clone(), b"t2".to_vec()).await.ctx("put")?;
    t1.commit().await.ctx("commit t1")?;
    let err = t2
        .commit()
        .await
        .expect_err("the second committer of a key must fail");
    assert!(
        format!("{err:?}").to_lowercase().contains("conflict"),
        "a write conflict, not {err:?}"
    );
    // Cleans up whatever t2 prewrote before the conflict.
    t2.rollback().await.ctx("rollback t2")?;
    let want: Pairs = [(shared, b"t1".to_vec()), (only1, b"t1".to_vec())].into();
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&want),
        "only t1's writes"
    );
    assert_eq!(
        show(&tikv_read(t, &ns).await?),
        show(&want),
        "tikv-client read"
    );
    Ok(())
}

/// `lock_keys` makes a key part of the commit without writing it (`Op::Lock`): when another
/// transaction wrote the key after this one started, the commit fails with a write conflict;
/// otherwise it succeeds and leaves the key's value as it was.
pub async fn lock_keys(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(LOCK_KEYS);
    // The guarded key and the written one in different halves: two regions once split.
    let (guarded, written) = (ns.key(0), ns.key(KEYS_PER_SCENARIO - 1));
    let mut model: Pairs = [(guarded.clone(), b"v0".to_vec())].into();
    commit_pairs(t, &model).await?;

    let mut t1 = t.txn.begin_with_options(may_fail()).await.ctx("begin t1")?;
    t1.lock_keys(vec![guarded.clone()]).await.ctx("lock_keys")?;
    t1.put(written.clone(), b"t1".to_vec()).await.ctx("put")?;
    let mut t2 = t.txn.begin_optimistic().await.ctx("begin t2")?;
    t2.put(guarded.clone(), b"t2".to_vec()).await.ctx("put")?;
    t2.commit().await.ctx("commit t2")?;
    model.insert(guarded.clone(), b"t2".to_vec());
    let err = t1
        .commit()
        .await
        .expect_err("a locked key written since the start conflicts");
    assert!(
        format!("{err:?}").to_lowercase().contains("conflict"),
        "a write conflict, not {err:?}"
    );
    t1.rollback().await.ctx("rollback t1")?;
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "only t2's write"
    );

    let mut t3 = t.txn.begin_optimistic().await.ctx("begin t3")?;
    t3.lock_keys(vec![guarded]).await.ctx("lock_keys")?;
    t3.put(written.clone(), b"t3".to_vec()).await.ctx("put")?;
    t3.commit().await.ctx("commit t3")?;
    model.insert(written, b"t3".to_vec());
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "the locked key keeps its value"
    );
    Ok(())
}

/// `insert` fails with `already_exist` on a key with a value, leaving it (and the
/// transaction's other writes) untouched; on an absent key it writes.
pub async fn insert_existing(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(INSERT);
    let (taken, other, free) = (ns.key(0), ns.key(KEYS_PER_SCENARIO - 1), ns.key(5));
    let mut model: Pairs = [(taken.clone(), b"first".to_vec())].into();
    commit_pairs(t, &model).await?;

    let mut txn = t.txn.begin_with_options(may_fail()).await.ctx("begin")?;
    txn.insert(taken.clone(), b"second".to_vec())
        .await
        .ctx("insert")?;
    txn.put(other.clone(), b"second".to_vec())
        .await
        .ctx("put")?;
    let err = txn
        .commit()
        .await
        .expect_err("insert on an existing key must fail");
    assert!(
        format!("{err:?}").contains("already_exist"),
        "already_exist, not {err:?}"
    );
    txn.rollback().await.ctx("rollback")?;
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "nothing written"
    );

    let mut txn = t.txn.begin_optimistic().await.ctx("begin")?;
    txn.insert(free.clone(), b"inserted".to_vec())
        .await
        .ctx("insert")?;
    txn.commit().await.ctx("commit insert")?;
    model.insert(free, b"inserted".to_vec());
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "read back insert"
    );
    Ok(())
}

/// A snapshot at a timestamp taken between two commits reads the first commit's state, through
/// both clients; a fresh one reads the second's.
pub async fn snapshot_reads(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(SNAPSHOT);
    let old: Pairs = (0..KEYS_PER_SCENARIO)
        .map(|i| (ns.key(i), ns.value(i, "old")))
        .collect();
    commit_pairs(t, &old).await?;
    let ts = t.txn.current_timestamp().await.ctx("current_timestamp")?;

    let mut new = old.clone();
    let mut txn = t.txn.begin_optimistic().await.ctx("begin")?;
    for i in 0..KEYS_PER_SCENARIO {
        if i % 3 == 0 {
            txn.delete(ns.key(i)).await.ctx("delete")?;
            new.remove(&ns.key(i));
        } else {
            txn.put(ns.key(i), ns.value(i, "new")).await.ctx("put")?;
            new.insert(ns.key(i), ns.value(i, "new"));
        }
    }
    txn.commit().await.ctx("commit")?;

    assert_eq!(
        show(&tikv_read_at(t, &ns, ts.clone()).await?),
        show(&old),
        "scan at old ts"
    );
    let mut snap = t
        .txn
        .snapshot(ts.clone(), TransactionOptions::new_optimistic());
    for i in [0, 1, KEYS_PER_SCENARIO - 1] {
        assert_eq!(
            snap.get(ns.key(i)).await.ctx("snapshot get")?,
            old.get(&ns.key(i)).cloned(),
            "get {i} at old ts"
        );
    }
    assert_eq!(
        show(&our_txn_pairs_at(c, &ns, ts.version()).await?),
        show(&old),
        "our client at the old ts"
    );
    assert_eq!(
        show(&tikv_read(t, &ns).await?),
        show(&new),
        "fresh snapshot"
    );
    assert_eq!(show(&our_txn_pairs(c, &ns).await?), show(&new), "read back");
    Ok(())
}

/// Scans forward and reverse, bounded and limited, over a range crossing the namespace's
/// middle (a region boundary once split), against the model and our client.
pub async fn scans(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(SCAN);
    let model: Pairs = (0..KEYS_PER_SCENARIO)
        .map(|i| (ns.key(i), ns.value(i, "s")))
        .collect();
    commit_pairs(t, &model).await?;
    assert_eq!(
        show(&our_txn_pairs(c, &ns).await?),
        show(&model),
        "read back"
    );

    let ts = t.txn.current_timestamp().await.ctx("current_timestamp")?;
    let mut snap = t.txn.snapshot(ts, TransactionOptions::new_optimistic());
    let n = KEYS_PER_SCENARIO;
    let entries = |r: std::ops::Range<usize>| -> Vec<(Vec<u8>, Vec<u8>)> {
        r.map(|i| (ns.key(i), ns.value(i, "s"))).collect()
    };
    let range = ns.range();
    let got = tikv_list(snap.scan(range.clone(), 1000).await.ctx("scan all")?);
    assert_eq!(got, entries(0..n), "scan the namespace");
    let got = tikv_list(snap.scan(ns.key(5)..ns.key(15), 1000).await.ctx("scan")?);
    assert_eq!(got, entries(5..15), "scan [5, 15)");
    let got = tikv_list(snap.scan(ns.key(5)..=ns.key(15), 1000).await.ctx("scan")?);
    assert_eq!(got, entries(5..16), "scan [5, 15]");
    let got = tikv_list(
        snap.scan(ns.key(5)..range.end.clone(), 7)
            .await
            .ctx("scan")?,
    );
    assert_eq!(got, entries(5..12), "scan from 5, limit 7");
    let keys: Vec<Vec<u8>> = snap
        .scan_keys(ns.key(8).., 4)
        .await
        .ctx("scan_keys")?
        .map(Into::into)
        .collect();
    assert_eq!(
        keys,
        (8..12).map(|i| ns.key(i)).collect::<Vec<_>>(),
        "scan_keys"
    );

    let mut rev = entries(0..n);
    rev.reverse();
    let got = tikv_list(
        snap.scan_reverse(range.clone(), 1000)
            .await
            .ctx("scan_reverse")?,
    );
    assert_eq!(got, rev, "reverse scan of the namespace");
    let got = tikv_list(snap.scan_reverse(range, 3).await.ctx("scan_reverse")?);
    assert_eq!(got, rev[..3].to_vec(), "reverse scan, limit 3");
    let mut want = entries(4..16);
    want.reverse();
    let got = tikv_list(
        snap.scan_reverse(ns.key(4)..ns.key(16), 1000)
            .await
            .ctx("scan_reverse")?,
    );
    assert_eq!(got, want, "reverse scan [4, 16)");
    Ok(())
}

/// 1PC and async commit are not implemented here (docs/TRANSACTIONS.md): prewrite answers
/// `one_pc_commit_ts = 0` and `min_commit_ts = 0`, the protocol's "fell back to two-phase
/// commit", as TiKV does when it cannot use them. Client 0.4 does not fall back
/// (docs/COMPATIBILITY.md), and this pins what it does instead, so a change on either side
/// shows up here:
/// - `try_one_pc` in one region: `commit` fails with `OnePcFailure`; after `rollback` nothing
///   was written.
/// - `use_async_commit`: `commit` reports success with commit ts 0 and never commits the
///   primary; once the locks' TTL has passed a reader rolls them back: the writes are lost.
pub async fn commit_fallbacks(c: &CompatCluster, t: &Clients) -> Result<()> {
    let ns = Namespace::txn(FALLBACK);
    // Both keys in the first half: one region in every topology.
    let keys = [ns.key(0), ns.key(1)];

    let mut txn = t
        .txn
        .begin_with_options(may_fail().try_one_pc())
        .await
        .ctx("begin")?;
    for k in &keys {
        txn.put(k.clone(), b"one-pc".to_vec()).await.ctx("put")?;
    }
    let err = txn.commit().await.expect_err("1PC without a 1PC server");
    assert!(
        matches!(err, tikv_client::Error::OnePcFailure),
        "OnePcFailure, not {err:?}"
    );
    txn.rollback().await.ctx("rollback after OnePcFailure")?;
    let now = t.txn.current_timestamp().await.ctx("current_timestamp")?;
    let range = ns.range();
    let locks = t
        .txn
        .scan_locks(&now, range.start..range.end, 100)
        .await
        .ctx("scan_locks")?;
    assert!(
        locks.is_empty(),
        "rollback removed the 1PC prewrite: {locks:?}"
    );
    assert!(our_txn_pairs(c, &ns).await?.is_empty(), "1PC wrote nothing");

    let mut txn = t
        .txn
        .begin_with_options(may_fail().use_async_commit())
        .await
        .ctx("begin")?;
    for k in &keys {
        txn.put(k.clone(), b"async".to_vec()).await.ctx("put")?;
    }
    let ts = txn.commit().await.ctx("async commit")?;
    assert_eq!(
        ts.map(|ts| ts.version()),
        Some(0),
        "client 0.4 takes min_commit_ts = 0 as the commit ts"
    );
    // Our reader waits out the locks' TTL (about 3 s) and rolls the transaction back.
    assert!(
        our_txn_pairs(c, &ns).await?.is_empty(),
        "the async commit's writes are lost"
    );
    Ok(())
}
