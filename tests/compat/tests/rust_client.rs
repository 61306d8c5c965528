//! TiKV's Rust client (`tikv-client` 0.4) against a real TinyKV cluster (1 scheduler + 3 stores,
//! real processes), under each topology of issue 9. Every scenario asserts what the client
//! returns and reads its writes back through our own client (src/scenarios).
//!
//! - `single_region`: the whole key space in one region.
//! - `forced_splits`: every scenario namespace split in two (raw keys at raw split keys,
//!   transactional ones at encoded keys), so batches, ranges and scans cross regions.
//! - `leader_transfer`: leaders moved under a client that cached them, in the middle of raw
//!   reads, an optimistic and a pessimistic transaction; the client meets `NotLeader` and
//!   follows (its own counters show the retried dispatch); then the whole suite.
//! - `epoch_change`: regions split under a client that cached them, in the middle of the same
//!   operations; `EpochNotMatch` makes it look the region up again; then the whole suite.
//! - `killed_store`: the busiest leader store SIGKILLed with a transaction open; the suite runs
//!   on two stores; the store comes back and everything reads back.
//!
//! One cluster runs at a time (the harness queues tests); each takes a few tens of seconds.

use tikv_client::{CheckLevel, TransactionOptions};
use tinykv_compat::keys::{Namespace, KEYS_PER_SCENARIO};
use tinykv_compat::metrics::Delta;
use tinykv_compat::scenarios::{self, our_txn_pairs, show, Clients, Ctx, Pairs};
use tinykv_compat::{CompatCluster, HarnessConfig, Result};

fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

async fn start() -> Result<CompatCluster> {
    logs();
    CompatCluster::start(HarnessConfig::new_test_config()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_region() -> Result<()> {
    let c = start().await?;
    assert_eq!(c.regions().await?.len(), 1, "a new cluster is one region");
    let t = Clients::connect(&c).await?;
    scenarios::run_all(&c, &t).await?;
    assert_eq!(
        c.regions().await?.len(),
        1,
        "nothing split the region meanwhile"
    );
    c.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_splits() -> Result<()> {
    let c = start().await?;
    let namespaces = scenarios::namespaces();
    c.split_namespaces(&namespaces).await?;
    for ns in &namespaces {
        assert_eq!(c.regions_of(ns).await?, 2, "{ns:?} spans two regions");
    }
    let t = Clients::connect(&c).await?;
    scenarios::run_all(&c, &t).await?;
    c.stop().await
}

/// Namespaces of the topology probes, apart from the scenarios' own.
fn probes() -> (Namespace, Namespace, Namespace) {
    (
        Namespace::raw("probe"),
        Namespace::txn("probe"),
        Namespace::txn("probe-pessimistic"),
    )
}

/// The regions (ids) holding the two halves of `ns`.
async fn region_ids(c: &CompatCluster, ns: &Namespace) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    for key in [ns.key(0), ns.key(KEYS_PER_SCENARIO - 1)] {
        let pd_key = tinykv_compat::rpc::pd_range(ns.api(), &key, &key).0;
        let id = c.region_at(&pd_key).await?.region.id;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// What a topology change is applied to: the regions of one probe namespace.
enum Change {
    /// Move each region's leader to another store.
    TransferLeaders,
    /// Split each half of the namespace once more (at keys 5 and 15), bumping the epochs.
    Split,
}

async fn apply(c: &CompatCluster, ns: &Namespace, change: &Change, round: usize) -> Result<()> {
    match change {
        Change::TransferLeaders => {
            for id in region_ids(c, ns).await? {
                c.transfer_leader(id).await?;
            }
        }
        Change::Split => {
            // A fresh split point per round, each inside the keys the probe uses.
            for base in [2, KEYS_PER_SCENARIO - 8] {
                c.split_at(ns.api(), &ns.key(base + round)).await?;
            }
        }
    }
    Ok(())
}

/// Raw reads, then an optimistic and a pessimistic transaction, each with `change` applied
/// after the client cached the regions involved: the next request meets a region error and
/// the client must follow it (the client's counters show the retried dispatch).
async fn probe_under(c: &CompatCluster, t: &Clients, change: Change) -> Result<()> {
    let (raw, txn, pess) = probes();
    let (raw_a, raw_b) = (raw.key(0), raw.key(KEYS_PER_SCENARIO - 1));

    // Raw: cache the regions, change them, read again.
    t.raw
        .batch_put(vec![
            (raw_a.clone(), b"1".to_vec()),
            (raw_b.clone(), b"1".to_vec()),
        ])
        .await
        .ctx("raw batch_put")?;
    assert_eq!(
        t.raw.get(raw_a.clone()).await.ctx("raw get")?,
        Some(b"1".to_vec())
    );
    apply(c, &raw, &change, 0).await?;
    let delta = Delta::start("raw_get");
    assert_eq!(
        t.raw.get(raw_a.clone()).await.ctx("raw get")?,
        Some(b"1".to_vec())
    );
    assert!(
        delta.dispatches() >= 2,
        "the first RawGet after the change must meet a region error and be retried; \
         dispatched {} times",
        delta.dispatches()
    );
    if matches!(change, Change::Split) {
        assert!(
            delta.region_lookups() >= 1,
            "EpochNotMatch makes the client ask PD again"
        );
    }
    t.raw
        .put(raw_b.clone(), b"2".to_vec())
        .await
        .ctx("raw put")?;
    assert_eq!(c.raw().get(raw_b).await?, Some(b"2".to_vec()), "read back");

    // Optimistic, changed between its reads and its commit.
    let keys: Vec<Vec<u8>> = (0..KEYS_PER_SCENARIO).map(|i| txn.key(i)).collect();
    let mut model: Pairs = keys.iter().map(|k| (k.clone(), b"v1".to_vec())).collect();
    scenarios::txn::commit_pairs(t, &model).await?;
    let mut tx = t.txn.begin_optimistic().await.ctx("begin")?;
    assert_eq!(
        tx.get(keys[0].clone()).await.ctx("get")?,
        Some(b"v1".to_vec())
    );
    apply(c, &txn, &change, 0).await?;
    // Key 1 shares key 0's region (the transaction caches values it read, not regions).
    let delta = Delta::start("kv_get");
    assert_eq!(
        tx.get(keys[1].clone()).await.ctx("get")?,
        Some(b"v1".to_vec())
    );
    assert!(
        delta.dispatches() >= 2,
        "the first KvGet after the change must meet a region error and be retried; \
         dispatched {} times",
        delta.dispatches()
    );
    for k in &keys {
        tx.put(k.clone(), b"v2".to_vec()).await.ctx("put")?;
        model.insert(k.clone(), b"v2".to_vec());
    }
    apply(c, &txn, &change, 1).await?;
    tx.commit().await.ctx("commit after the change")?;
    assert_eq!(
        show(&our_txn_pairs(c, &txn).await?),
        show(&model),
        "read back commit"
    );

    // Pessimistic: the lock is taken before the change and must still hold after it.
    let (pa, pb) = (pess.key(0), pess.key(KEYS_PER_SCENARIO - 1));
    let mut pm: Pairs = [(pa.clone(), b"p0".to_vec()), (pb.clone(), b"p0".to_vec())].into();
    scenarios::txn::commit_pairs(t, &pm).await?;
    let mut p1 = t.txn.begin_pessimistic().await.ctx("begin pessimistic")?;
    assert_eq!(
        p1.get_for_update(pa.clone()).await.ctx("get_for_update")?,
        Some(b"p0".to_vec())
    );
    assert_eq!(
        p1.get_for_update(pb.clone()).await.ctx("get_for_update")?,
        Some(b"p0".to_vec())
    );
    apply(c, &pess, &change, 0).await?;
    let mut p2 = t
        .txn
        .begin_with_options(TransactionOptions::new_pessimistic().drop_check(CheckLevel::Warn))
        .await
        .ctx("begin p2")?;
    p2.get_for_update(pa.clone())
        .await
        .expect_err("the lock survives the change: another locker is refused");
    p2.rollback().await.ctx("rollback p2")?;
    p1.put(pa.clone(), b"p1".to_vec()).await.ctx("put")?;
    p1.put(pb.clone(), b"p1".to_vec()).await.ctx("put")?;
    p1.commit()
        .await
        .ctx("pessimistic commit after the change")?;
    pm.insert(pa, b"p1".to_vec());
    pm.insert(pb, b"p1".to_vec());
    assert_eq!(
        show(&our_txn_pairs(c, &pess).await?),
        show(&pm),
        "read back pessimistic"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_transfer() -> Result<()> {
    let c = start().await?;
    let (raw, txn, pess) = probes();
    let mut namespaces = scenarios::namespaces();
    namespaces.extend([raw, txn, pess]);
    c.split_namespaces(&namespaces).await?;
    let t = Clients::connect(&c).await?;
    probe_under(&c, &t, Change::TransferLeaders).await?;
    // Every region's leader moved once more before the suite: nothing it reads was cached.
    for r in c.regions().await? {
        c.transfer_leader(r.region.id).await?;
    }
    scenarios::run_all(&c, &t).await?;
    c.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn epoch_change() -> Result<()> {
    let c = start().await?;
    // Only the raw/transactional boundary (see tinykv_compat::keys): the probe's own splits then
    // change the epochs of regions the clients cached.
    c.split_namespaces(&[]).await?;
    let t = Clients::connect(&c).await?;
    probe_under(&c, &t, Change::Split).await?;
    let before = c.regions().await?.len();
    c.split_namespaces(&scenarios::namespaces()).await?;
    assert!(c.regions().await?.len() > before);
    scenarios::run_all(&c, &t).await?;
    c.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_store() -> Result<()> {
    let mut c = start().await?;
    let namespaces = scenarios::namespaces();
    c.split_namespaces(&namespaces).await?;
    let t = Clients::connect(&c).await?;

    // A transaction in flight and warm caches when the store dies.
    let ns = Namespace::txn("probe-killed");
    let keys: Vec<Vec<u8>> = (0..KEYS_PER_SCENARIO).map(|i| ns.key(i)).collect();
    let model: Pairs = keys
        .iter()
        .map(|k| (k.clone(), b"survived".to_vec()))
        .collect();
    let mut tx = t.txn.begin_optimistic().await.ctx("begin")?;
    assert_eq!(tx.get(keys[0].clone()).await.ctx("get")?, None);
    for k in &keys {
        tx.put(k.clone(), b"survived".to_vec()).await.ctx("put")?;
    }
    let raw = Namespace::raw("probe-killed");
    t.raw
        .put(raw.key(0), b"before".to_vec())
        .await
        .ctx("raw put")?;

    let victim = c.busiest_leader_store().await?;
    let index = c.kill_store(victim).await?;
    tx.commit().await.ctx("commit with a store killed")?;
    assert_eq!(
        show(&our_txn_pairs(&c, &ns).await?),
        show(&model),
        "read back"
    );
    assert_eq!(
        t.raw.get(raw.key(0)).await.ctx("raw get")?,
        Some(b"before".to_vec())
    );

    scenarios::run_all(&c, &t).await?;

    c.restart_store(index).await?;
    assert_eq!(
        show(&our_txn_pairs(&c, &ns).await?),
        show(&model),
        "after restart"
    );
    assert_eq!(c.raw().get(raw.key(0)).await?, Some(b"before".to_vec()));
    c.stop().await
}
