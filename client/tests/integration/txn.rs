//! Transactional API: 2PC across regions, isolation, conflicts, lock resolution, pessimistic
//! locking, heartbeats.

use std::time::Duration;

use client::{
    BackoffConfig, Config, Error, KvPair, Timestamp, TransactionClient, TransactionOptions,
};
use proto::kvrpcpb;

use crate::config;
use crate::mock::mvcc::physical;
use crate::mock::{wait_until, MockCluster};

async fn setup_with(splits: &[&str], cfg: Config) -> (MockCluster, TransactionClient) {
    let cluster = MockCluster::start(1, 3, true).await;
    for s in splits {
        cluster.split(s.as_bytes());
    }
    let client = TransactionClient::new_with_config(cluster.pd_endpoints(), cfg)
        .await
        .unwrap();
    (cluster, client)
}

async fn setup(splits: &[&str]) -> (MockCluster, TransactionClient) {
    setup_with(splits, config()).await
}

fn put(key: &[u8], value: &[u8]) -> kvrpcpb::Mutation {
    kvrpcpb::Mutation {
        op: kvrpcpb::Op::Put as i32,
        key: key.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    }
}

/// Writes `key = value` as a committed transaction, straight into the mock.
fn seed_commit(cluster: &MockCluster, key: &[u8], value: &[u8]) {
    let start = cluster.ts();
    let mut st = cluster.state();
    assert!(st
        .mvcc
        .prewrite(&[put(key, value)], key, start, 3000, 0, &[])
        .is_empty());
    let commit = st.next_ts(1);
    assert!(st.mvcc.commit(&[key.to_vec()], start, commit).is_none());
}

/// Leaves a prewrite lock of transaction `start` (primary `primary`) on `key`.
fn seed_lock(cluster: &MockCluster, key: &[u8], primary: &[u8], start: u64, ttl_ms: u64) {
    let mut st = cluster.state();
    let errors = st
        .mvcc
        .prewrite(&[put(key, b"locked")], primary, start, ttl_ms, 0, &[]);
    assert!(errors.is_empty(), "{errors:?}");
}

/// Waits until the TSO clock is past a lock of `start` with `ttl_ms` (TTLs count in TSO
/// milliseconds).
async fn ttl_passed(cluster: &MockCluster, start: u64, ttl_ms: u64) {
    wait_until("lock ttl to pass", Duration::from_secs(10), || {
        physical(cluster.ts()) > physical(start) + ttl_ms
    })
    .await;
}

fn key(i: usize) -> String {
    format!("k{i:02}")
}

#[tokio::test]
async fn commit_and_read_back_across_regions() {
    let (cluster, client) = setup(&["k05", "k10", "k15"]).await;
    let mut txn = client.begin_optimistic().await.unwrap();
    for i in 0..20 {
        txn.put(key(i), format!("v{i}")).await.unwrap();
    }
    let commit_ts = txn.commit().await.unwrap().expect("something was written");
    assert!(commit_ts > txn.start_timestamp());
    assert_eq!(cluster.lock_count(), 0, "primary and secondaries committed");
    assert!(
        cluster.count("KvPrewrite") >= 5,
        "primary alone, then per region and chunk"
    );

    let snapshot = client.snapshot(client.current_timestamp().await.unwrap());
    assert_eq!(snapshot.get("k07").await.unwrap(), Some(b"v7".to_vec()));
    let all = snapshot.scan(.., 100).await.unwrap();
    assert_eq!(all.len(), 20);
    assert_eq!(all[19], KvPair::new("k19", "v19"));
    assert_eq!(snapshot.scan("k04".."k11", 100).await.unwrap().len(), 7);
    assert_eq!(snapshot.scan_keys(.., 6).await.unwrap().len(), 6);
    let got = snapshot
        .batch_get(vec!["k19", "k00", "nope"])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![KvPair::new("k00", "v0"), KvPair::new("k19", "v19")]
    );

    // A snapshot from before the commit sees nothing.
    let before = client.snapshot(Timestamp::from_version(commit_ts.version() - 1));
    assert!(before.scan(.., 100).await.unwrap().is_empty());

    let mut empty = client.begin_optimistic().await.unwrap();
    assert_eq!(empty.commit().await.unwrap(), None);
    assert!(matches!(
        empty.commit().await,
        Err(Error::TransactionFinished(_))
    ));
}

#[tokio::test]
async fn transactions_follow_splits_and_leader_moves() {
    let (cluster, client) = setup(&[]).await;
    let mut t = client.begin_optimistic().await.unwrap();
    t.put("a", "1").await.unwrap();
    t.commit().await.unwrap();
    // The client caches one region; the cluster now has three, one led elsewhere.
    cluster.split(b"h");
    let right = cluster.split(b"p");
    cluster.transfer_leader(right, 2);
    let fresh = TransactionClient::new_with_config(cluster.pd_endpoints(), config())
        .await
        .unwrap();
    let region = fresh.region_for_key("q").await.unwrap();
    assert_eq!(region.id, right);
    assert_eq!(region.start_key, b"p", "bounds are decoded user keys");
    assert!(region.end_key.is_empty());

    let mut t = client.begin_pessimistic().await.unwrap();
    for k in ["b", "i", "q", "z"] {
        t.put(k, k).await.unwrap();
    }
    t.commit().await.unwrap();
    assert_eq!(cluster.lock_count(), 0);
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    let keys: Vec<String> = snap
        .scan(.., 10)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key.to_string())
        .collect();
    assert_eq!(keys, vec!["a", "b", "i", "q", "z"]);
    assert!(
        cluster.count("KvPessimisticLock:region_error") + cluster.count("KvPrewrite:region_error")
            >= 1
    );
}

#[tokio::test]
async fn reads_see_the_start_timestamp_and_own_writes() {
    let (_cluster, client) = setup(&["c"]).await;
    let mut setup_txn = client.begin_optimistic().await.unwrap();
    for k in ["a", "b", "c", "d"] {
        setup_txn.put(k, k.to_uppercase()).await.unwrap();
    }
    setup_txn.commit().await.unwrap();

    let mut txn = client.begin_optimistic().await.unwrap();
    // Committed after txn started: invisible to it.
    let mut other = client.begin_optimistic().await.unwrap();
    other.put("a", "changed").await.unwrap();
    other.commit().await.unwrap();
    assert_eq!(txn.get("a").await.unwrap(), Some(b"A".to_vec()));

    txn.delete("b").await.unwrap();
    txn.put("bb", "BB").await.unwrap();
    txn.put("e", "E").await.unwrap();
    txn.lock_keys(vec!["c"]).await.unwrap();
    assert_eq!(txn.get("b").await.unwrap(), None);
    assert_eq!(txn.get("e").await.unwrap(), Some(b"E".to_vec()));
    let keys: Vec<String> = txn
        .scan(.., 100)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.key.to_string())
        .collect();
    assert_eq!(keys, vec!["a", "bb", "c", "d", "e"]);
    assert_eq!(
        txn.scan("a"..="c", 2).await.unwrap(),
        vec![KvPair::new("a", "A"), KvPair::new("bb", "BB")]
    );
    let got = txn.batch_get(vec!["a", "b", "bb", "z"]).await.unwrap();
    assert_eq!(got, vec![KvPair::new("a", "A"), KvPair::new("bb", "BB")]);
    txn.rollback().await.unwrap();
    assert!(matches!(
        txn.get("a").await,
        Err(Error::TransactionFinished(_))
    ));
}

#[tokio::test]
async fn reverse_scans_cross_regions_and_merge_own_writes() {
    let (_cluster, client) = setup(&["c", "k"]).await;
    let mut setup_txn = client.begin_optimistic().await.unwrap();
    let keys = ["a", "b", "c", "d", "e", "j", "k", "l", "m"];
    for k in keys {
        setup_txn.put(k, k.to_uppercase()).await.unwrap();
    }
    setup_txn.commit().await.unwrap();

    let names = |pairs: Vec<KvPair>| -> Vec<String> {
        pairs.into_iter().map(|p| p.key.to_string()).collect()
    };
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    let mut all: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    all.reverse();
    // Pages of 3 (the test config) across three regions.
    assert_eq!(names(snap.scan_reverse(.., 100).await.unwrap()), all);
    assert_eq!(
        names(snap.scan_reverse("b".."l", 4).await.unwrap()),
        vec!["k", "j", "e", "d"]
    );
    assert_eq!(
        names(snap.scan_reverse("b"..="c", 10).await.unwrap()),
        vec!["c", "b"]
    );
    assert!(snap.scan_reverse("x".., 10).await.unwrap().is_empty());

    let mut txn = client.begin_optimistic().await.unwrap();
    txn.delete("l").await.unwrap();
    txn.delete("k").await.unwrap();
    txn.put("kk", "KK").await.unwrap();
    txn.put("z", "Z").await.unwrap();
    assert_eq!(
        names(txn.scan_reverse("b".."y", 3).await.unwrap()),
        vec!["m", "kk", "j"]
    );
    assert_eq!(
        txn.scan_reverse(.., 2).await.unwrap(),
        vec![KvPair::new("z", "Z"), KvPair::new("m", "M")]
    );
    txn.rollback().await.unwrap();
}

#[tokio::test]
async fn write_conflicts_fail_the_later_commit() {
    let (cluster, client) = setup(&["m"]).await;
    let mut t1 = client.begin_optimistic().await.unwrap();
    let mut t2 = client.begin_optimistic().await.unwrap();
    t1.put("a", "1").await.unwrap();
    t2.put("z", "2").await.unwrap();
    t2.put("a", "2").await.unwrap();
    t1.commit().await.unwrap();
    let err = t2.commit().await.unwrap_err();
    match &err {
        Error::WriteConflict(c) => assert_eq!(c.key, b"a"),
        other => panic!("unexpected {other}"),
    }
    assert_eq!(cluster.lock_count(), 0, "the failed commit rolled back");
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    assert_eq!(snap.get("a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(snap.get("z").await.unwrap(), None);
}

#[tokio::test]
async fn inserting_an_existing_key_fails() {
    let (cluster, client) = setup(&[]).await;
    seed_commit(&cluster, b"k", b"v");

    let mut t = client.begin_optimistic().await.unwrap();
    t.insert("k", "x").await.unwrap();
    t.insert("new", "y").await.unwrap();
    assert!(matches!(t.commit().await, Err(Error::AlreadyExists { key }) if key == b"k"));
    assert_eq!(cluster.lock_count(), 0);

    let mut p = client.begin_pessimistic().await.unwrap();
    assert!(matches!(
        p.insert("k", "x").await,
        Err(Error::AlreadyExists { .. })
    ));
    p.insert("fresh", "1").await.unwrap();
    assert!(matches!(
        p.insert("fresh", "2").await,
        Err(Error::AlreadyExists { .. })
    ));
    p.commit().await.unwrap();
    assert_eq!(cluster.lock_count(), 0);
}

#[tokio::test]
async fn expired_locks_are_resolved_by_readers() {
    let (cluster, client) = setup(&["m"]).await;
    for k in [b"a", b"b", b"c", b"x"] {
        seed_commit(&cluster, k, b"old");
    }
    // (1) Orphan transaction: primary "a" and secondary "x" prewritten, TTL over.
    let t1 = cluster.ts();
    seed_lock(&cluster, b"a", b"a", t1, 1);
    seed_lock(&cluster, b"x", b"a", t1, 1);
    // (2) Secondary "b" of a transaction whose primary lock never reached the store.
    let t2 = cluster.ts();
    seed_lock(&cluster, b"b", b"never-written", t2, 1);
    // (3) Secondary "c" of a transaction whose primary "p" committed.
    let t3 = cluster.ts();
    seed_lock(&cluster, b"p", b"p", t3, 3000);
    seed_lock(&cluster, b"c", b"p", t3, 3000);
    {
        let mut st = cluster.state();
        let commit = st.next_ts(1);
        assert!(st.mvcc.commit(&[b"p".to_vec()], t3, commit).is_none());
    }
    ttl_passed(&cluster, t3, 1).await;

    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    assert_eq!(snap.get("x").await.unwrap(), Some(b"old".to_vec()));
    assert_eq!(snap.get("b").await.unwrap(), Some(b"old".to_vec()));
    assert_eq!(
        snap.get("c").await.unwrap(),
        Some(b"locked".to_vec()),
        "committed through its primary"
    );
    assert_eq!(snap.get("a").await.unwrap(), Some(b"old".to_vec()));
    assert_eq!(cluster.lock_count(), 0);
    assert!(cluster.count("KvCheckTxnStatus") >= 3);
    assert!(cluster.count("KvResolveLock") >= 3);
}

#[tokio::test]
async fn scans_and_batch_gets_resolve_locks() {
    let (cluster, client) = setup(&["k05", "k10"]).await;
    for i in 0..15 {
        seed_commit(&cluster, key(i).as_bytes(), b"v");
    }
    let t = cluster.ts();
    seed_lock(&cluster, b"k02", b"k02", t, 1);
    seed_lock(&cluster, b"k07", b"k02", t, 1);
    seed_lock(&cluster, b"k12", b"k02", t, 1);
    ttl_passed(&cluster, t, 1).await;
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    let pairs = snap.scan(.., 100).await.unwrap();
    assert_eq!(pairs.len(), 15);
    assert!(pairs.iter().all(|p| p.value == b"v"));
    assert_eq!(cluster.lock_count(), 0);

    let t = cluster.ts();
    seed_lock(&cluster, b"k03", b"k03", t, 1);
    seed_lock(&cluster, b"k13", b"k03", t, 1);
    ttl_passed(&cluster, t, 1).await;
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    let got = snap.batch_get((0..15).map(key)).await.unwrap();
    assert_eq!(got.len(), 15);
    assert_eq!(cluster.lock_count(), 0);
}

#[tokio::test]
async fn readers_wait_for_live_locks() {
    let (cluster, client) = setup(&[]).await;
    seed_commit(&cluster, b"k", b"old");
    let t = cluster.ts();
    seed_lock(&cluster, b"k", b"k", t, 300);
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    assert_eq!(snap.get("k").await.unwrap(), Some(b"old".to_vec()));
    assert!(
        cluster.count("KvCheckTxnStatus") >= 2,
        "the lock was alive at first, then expired"
    );
    assert_eq!(cluster.lock_count(), 0);
}

#[tokio::test]
async fn locks_that_outlive_the_backoff_are_errors() {
    let cfg = Config {
        lock_backoff: BackoffConfig::new(Duration::from_millis(1), Duration::from_millis(5), 3),
        ..config()
    };
    let (cluster, client) = setup_with(&[], cfg).await;
    let t = cluster.ts();
    seed_lock(&cluster, b"k", b"k", t, 60_000);
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    match snap.get("k").await {
        Err(Error::KeyLocked(lock)) => {
            assert_eq!(lock.lock_version, t);
            assert_eq!(lock.primary_lock, b"k");
        }
        other => panic!("unexpected {other:?}"),
    }
    // A writer meets the same lock.
    let mut w = client.begin_optimistic().await.unwrap();
    w.put("k", "v").await.unwrap();
    assert!(matches!(w.commit().await, Err(Error::KeyLocked(_))));
}

#[tokio::test]
async fn pessimistic_locks_block_then_conflicts_retry() {
    let (cluster, client) = setup(&["m"]).await;
    seed_commit(&cluster, b"counter", b"0");

    let mut a = client.begin_pessimistic().await.unwrap();
    assert_eq!(
        a.get_for_update("counter").await.unwrap(),
        Some(b"0".to_vec())
    );
    assert_eq!(cluster.lock_count(), 1);

    let client_b = client.clone();
    let b = tokio::spawn(async move {
        let mut b = client_b.begin_pessimistic().await.unwrap();
        let seen = b.get_for_update("counter").await.unwrap();
        b.put("counter", "2").await.unwrap();
        b.put("z", "b").await.unwrap();
        b.commit().await.unwrap();
        seen
    });
    wait_until("b to meet a's lock", Duration::from_secs(10), || {
        cluster.count("KvPessimisticLock:locked") >= 1
    })
    .await;
    a.put("counter", "1").await.unwrap();
    a.commit().await.unwrap();

    // b waited for a, then saw a's commit (retrying with a newer for-update ts).
    assert_eq!(b.await.unwrap(), Some(b"1".to_vec()));
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    assert_eq!(snap.get("counter").await.unwrap(), Some(b"2".to_vec()));
    assert_eq!(cluster.lock_count(), 0);
}

#[tokio::test]
async fn pessimistic_rollback_releases_locks() {
    let (cluster, client) = setup(&["k05", "k10"]).await;
    let mut t = client.begin_pessimistic().await.unwrap();
    t.lock_keys(vec!["k01", "k06", "k11"]).await.unwrap();
    t.put("k12", "v").await.unwrap();
    t.delete("k02").await.unwrap();
    assert_eq!(cluster.lock_count(), 5);
    t.rollback().await.unwrap();
    assert_eq!(cluster.lock_count(), 0);
    assert!(cluster.count("KVPessimisticRollback") >= 1);
    assert!(matches!(
        t.rollback().await,
        Err(Error::TransactionFinished(_))
    ));
}

#[tokio::test]
async fn dropping_a_transaction_with_locks_rolls_back() {
    let (cluster, client) = setup(&[]).await;
    {
        let mut t = client.begin_pessimistic().await.unwrap();
        t.get_for_update("a").await.unwrap();
        t.put("b", "1").await.unwrap();
        assert_eq!(cluster.lock_count(), 2);
    }
    wait_until("background rollback", Duration::from_secs(10), || {
        cluster.lock_count() == 0
    })
    .await;

    // An optimistic transaction holds nothing remotely: dropping it is silent and harmless.
    let mut t = client.begin_optimistic().await.unwrap();
    t.put("c", "1").await.unwrap();
    drop(t);
    assert_eq!(cluster.lock_count(), 0);
}

#[tokio::test]
async fn expired_commit_ts_is_retried() {
    let (cluster, client) = setup(&["m"]).await;
    let mut t = client.begin_optimistic().await.unwrap();
    t.put("a", "1").await.unwrap();
    t.put("z", "2").await.unwrap();
    cluster.state().push_min_commit_ts_once = true;
    let commit_ts = t.commit().await.unwrap().unwrap();
    assert!(
        cluster.count("KvCommit") >= 3,
        "primary twice, then the secondary"
    );
    assert_eq!(cluster.lock_count(), 0);
    let snap = client.snapshot(client.current_timestamp().await.unwrap());
    assert_eq!(snap.get("a").await.unwrap(), Some(b"1".to_vec()));
    assert!(snap.timestamp() > commit_ts);
}

#[tokio::test]
async fn heartbeats_extend_the_primary_lock() {
    let cfg = Config {
        heartbeat_interval: Duration::from_millis(50),
        ..config()
    };
    let (cluster, client) = setup_with(&[], cfg).await;
    let mut t = client.begin_pessimistic().await.unwrap();
    t.put("k", "v").await.unwrap();
    let initial_ttl = cluster.state().mvcc.locks[&b"k".to_vec()].ttl;
    wait_until("two heartbeats", Duration::from_secs(10), || {
        cluster.count("KvTxnHeartBeat") >= 2
    })
    .await;
    let ttl = cluster.state().mvcc.locks[&b"k".to_vec()].ttl;
    assert!(ttl > initial_ttl, "{ttl} <= {initial_ttl}");
    t.commit().await.unwrap();
    assert_eq!(cluster.lock_count(), 0);

    let quiet = client
        .begin_with_options(TransactionOptions::new_pessimistic().heartbeat(false))
        .await
        .unwrap();
    assert!(quiet.is_pessimistic());
}

#[tokio::test]
async fn undecodable_region_bounds_fail_the_commit() {
    let (cluster, client) = setup(&[]).await;
    {
        // A PD that split at a raw key in transactional space.
        let right = cluster.split(b"m");
        let mut st = cluster.state();
        st.regions.get_mut(&1).unwrap().meta.end_key = b"m".to_vec();
        st.regions.get_mut(&right).unwrap().meta.start_key = b"m".to_vec();
    }
    let mut t = client.begin_optimistic().await.unwrap();
    t.put("a", "1").await.unwrap();
    t.put("z", "2").await.unwrap();
    let err = t.commit().await.unwrap_err();
    assert!(matches!(err, Error::Codec { .. }), "{err}");
    assert_eq!(
        cluster.count("KvPrewrite"),
        0,
        "nothing was sent, and the caller knows"
    );
}
