//! End to end with real processes: one `tinyscheduler-server` and three `tinykv-server`s
//! started by the playground's `ProcessCluster`, driven through the `client` crate.
//!
//! One scenario, in phases (one cluster start keeps it well under two minutes):
//!
//! 1. split the key space into five regions with the stores' `SplitRegion` RPC;
//! 2. write raw pairs (batches across two regions) and transactions spanning four regions,
//!    and read them back by scans, batch gets and snapshots;
//! 3. SIGKILL the store leading the most regions while a background writer keeps writing;
//!    wait until every region has elected a leader on a live store; the cluster must keep
//!    serving raw and transactional writes and reads;
//! 4. restart the store and wait until it has caught up (no pending peers); then kill a
//!    *different* store: with one of three replicas gone, every write and read now needs the
//!    restarted store, so it must hold the whole log;
//! 5. restart that store too; everything acknowledged in any phase is still there, nothing
//!    else appeared, and the cluster stops cleanly.
//!
//! Raw keys live under `r/`, transactional keys under `k/` (TiKV API v1: the two APIs never
//! share keys). Split keys are transactional user keys, which the server memcomparable-encodes,
//! so region bounds are valid for both clients.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::{Config, RawClient, TransactionClient};
use parking_lot::Mutex;
use proto::kvrpcpb::{Context, SplitRegionRequest};
use proto::tikvpb::tikv_client::TikvClient;
use tests::process::binaries;
use tinykv_playground::{ClusterConfig, ProcessCluster};
use tokio::time::Instant;

/// How long any one condition may take to come true on a loaded 2-core machine. Waits poll;
/// this is only the point at which a test gives up.
const DEADLINE: Duration = Duration::from_secs(60);
/// Pause between attempts of a retried operation.
const RETRY: Duration = Duration::from_millis(100);
/// Pause after each acknowledged background write.
const BACKGROUND_PACE: Duration = Duration::from_millis(20);

const RAW_KEYS: usize = 200;
const TXN_KEYS: usize = 100;
/// User keys the key space is split at: four boundaries, five regions.
const SPLIT_KEYS: [&str; 4] = ["k/25", "k/50", "k/75", "r/100"];

fn raw_key(i: usize) -> String {
    format!("r/{i:03}")
}

fn txn_key(i: usize) -> String {
    format!("k/{i:02}")
}

/// Retries `op` until it succeeds, failing the test after [`DEADLINE`]. For idempotent
/// operations only: a failed attempt may still have been applied.
async fn until_ok<T, F, Fut>(what: &str, op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = client::Result<T>>,
{
    tests::process::until_ok(what, DEADLINE, RETRY, op).await
}

/// Polls `check` (an explanation of what is missing, or `None`) until it passes.
async fn wait_for<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let Some(missing) = check().await else {
            return;
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not true after {DEADLINE:?}: {missing}"
        );
        tokio::time::sleep(RETRY).await;
    }
}

/// What the cluster must hold: every acknowledged write, plus writes whose outcome is unknown
/// (which may or may not be present).
#[derive(Default)]
struct Model {
    raw: BTreeMap<String, String>,
    raw_unknown: BTreeSet<String>,
    txn: BTreeMap<String, String>,
}

/// Splits the region containing each of [`SPLIT_KEYS`] at that key through the leader's
/// `SplitRegion`, retrying region errors (a leader change, an epoch moved by the previous
/// split) until the scheduler shows a region starting there.
async fn split_regions(raw: &RawClient) {
    let pd = raw.pd().clone();
    for key in SPLIT_KEYS {
        let encoded = client::codec::encode_bytes(key.as_bytes());
        wait_for(&format!("split at {key}"), || {
            let pd = pd.clone();
            let encoded = encoded.clone();
            async move {
                let region = match pd.get_region(&encoded).await {
                    Ok(r) => r,
                    Err(e) => return Some(format!("GetRegion: {e}")),
                };
                if region.region.start_key == encoded {
                    return region
                        .leader
                        .is_none()
                        .then(|| "the new region has no leader yet".to_string());
                }
                let Some(leader) = region.leader else {
                    return Some(format!("region {} has no leader", region.region.id));
                };
                let store = match pd.get_store(leader.store_id).await {
                    Ok(s) => s,
                    Err(e) => return Some(format!("GetStore: {e}")),
                };
                let mut kv = match TikvClient::connect(format!("http://{}", store.address)).await {
                    Ok(c) => c,
                    Err(e) => {
                        pd.invalidate_store(leader.store_id);
                        return Some(format!("connect {}: {e}", store.address));
                    }
                };
                let req = SplitRegionRequest {
                    context: Some(Context {
                        region_id: region.region.id,
                        region_epoch: region.region.region_epoch,
                        peer: Some(leader),
                        ..Default::default()
                    }),
                    split_keys: vec![key.as_bytes().to_vec()],
                    is_raw_kv: false,
                    ..Default::default()
                };
                match kv.split_region(req).await {
                    Ok(resp) => match resp.into_inner().region_error {
                        Some(e) => Some(format!("SplitRegion region error: {}", e.message)),
                        // Done on the store; the loop goes on until the scheduler shows it.
                        None => Some("waiting for the scheduler to see the split".into()),
                    },
                    Err(s) => Some(format!("SplitRegion: {s}")),
                }
            }
        })
        .await;
    }
}

/// Waits until every region has a leader, and none on `dead_store`.
async fn wait_for_leaders(raw: &RawClient, dead_store: Option<u64>) {
    let pd = raw.pd().clone();
    wait_for("every region led by a live store", || {
        let pd = pd.clone();
        async move {
            let regions = match pd.scan_regions(b"", b"", 0).await {
                Ok(r) => r,
                Err(e) => return Some(format!("ScanRegions: {e}")),
            };
            regions.iter().find_map(|r| match &r.leader {
                None => Some(format!("region {} has no leader", r.region.id)),
                Some(l) if Some(l.store_id) == dead_store => Some(format!(
                    "region {} is still led by the killed store {}",
                    r.region.id, l.store_id
                )),
                Some(_) => None,
            })
        }
    })
    .await;
}

/// The store id leading the most regions.
async fn busiest_leader(raw: &RawClient) -> u64 {
    let regions = until_ok("ScanRegions", || raw.pd().scan_regions(b"", b"", 0)).await;
    let mut led: BTreeMap<u64, usize> = BTreeMap::new();
    for r in &regions {
        if let Some(l) = &r.leader {
            *led.entry(l.store_id).or_default() += 1;
        }
    }
    led.into_iter()
        .max_by_key(|&(_, n)| n)
        .map(|(store, _)| store)
        .expect("some region has a leader")
}

/// Writes `pairs` in one optimistic transaction, retrying with a new transaction until one
/// commits. Every attempt writes the same values, so an attempt whose commit outcome was
/// unknown cannot leave anything else behind.
async fn txn_write(txn: &TransactionClient, pairs: &[(String, String)]) {
    until_ok("transaction", || {
        let txn = txn.clone();
        let pairs = pairs.to_vec();
        async move {
            let mut t = txn.begin_optimistic().await?;
            for (k, v) in pairs {
                t.put(k, v).await?;
            }
            t.commit().await.map(drop)
        }
    })
    .await;
}

/// Phase-numbered transactional writes of all [`TXN_KEYS`] keys: 10 transactions, each
/// spanning the four `k/` regions (keys `j, j+10, j+20, ...`).
async fn write_txns(txn: &TransactionClient, model: &Mutex<Model>, phase: usize) {
    for j in 0..10 {
        let pairs: Vec<(String, String)> = (0..TXN_KEYS / 10)
            .map(|m| {
                let k = txn_key(j + 10 * m);
                let v = format!("t{phase}-{k}");
                (k, v)
            })
            .collect();
        txn_write(txn, &pairs).await;
        model.lock().txn.extend(pairs);
    }
}

/// Raw writes that must succeed (retried: a put is idempotent).
async fn write_raw(raw: &RawClient, model: &Mutex<Model>, phase: usize) {
    let pairs: Vec<(String, String)> = (0..RAW_KEYS)
        .step_by(7)
        .map(|i| (raw_key(i), format!("v{phase}-{i}")))
        .collect();
    until_ok("raw batch put", || raw.batch_put(pairs.clone())).await;
    model.lock().raw.extend(pairs);
}

/// Everything acknowledged is readable, with the acknowledged value; nothing appeared that
/// was never written.
async fn verify(raw: &RawClient, txn: &TransactionClient, model: &Mutex<Model>) {
    // The background writer may run meanwhile: what was acknowledged before the scan must be
    // in it; what the scan finds must have been written by then (acknowledged, failed, or the
    // one write in flight).
    let acked_before = model.lock().raw.clone();
    let pairs = until_ok("raw scan", || raw.scan("r/".."r0", client::MAX_SCAN_LIMIT)).await;
    assert!(
        pairs.len() < client::MAX_SCAN_LIMIT as usize,
        "the scan hit its limit: the check would miss keys"
    );
    let got: BTreeMap<String, String> = pairs
        .into_iter()
        .map(|p| {
            (
                String::from_utf8(p.key.into_inner()).unwrap(),
                String::from_utf8(p.value).unwrap(),
            )
        })
        .collect();
    for (k, v) in &acked_before {
        assert_eq!(got.get(k), Some(v), "raw {k}: acknowledged write lost");
    }
    {
        let m = model.lock();
        let last_bg = m
            .raw
            .keys()
            .chain(&m.raw_unknown)
            .filter(|k| k.starts_with("r/bg/"))
            .max()
            .cloned()
            .unwrap_or_default();
        for k in got.keys() {
            let in_flight = k.starts_with("r/bg/") && *k > last_bg;
            assert!(
                m.raw.contains_key(k) || m.raw_unknown.contains(k) || in_flight,
                "raw {k} was never written"
            );
        }
    }
    // The same data through a reverse scan and point reads. The range stops before `r/bg/`,
    // which the background writer may be extending right now.
    let last = until_ok("raw reverse scan", || raw.scan_reverse("r/".."r/a", 3)).await;
    let last_keys: Vec<String> = last
        .iter()
        .map(|p| String::from_utf8(p.key.as_bytes().to_vec()).unwrap())
        .collect();
    let expect_last: Vec<String> = got
        .keys()
        .filter(|k| k.as_str() < "r/a")
        .rev()
        .take(3)
        .cloned()
        .collect();
    assert_eq!(last_keys, expect_last);
    let sample: Vec<String> = model.lock().raw.keys().step_by(13).cloned().collect();
    let batch = until_ok("raw batch get", || raw.batch_get(sample.clone())).await;
    assert_eq!(batch.len(), sample.len(), "batch get lost keys");

    let expect_txn = model.lock().txn.clone();
    let snapshot_pairs = until_ok("txn snapshot scan", || {
        let txn = txn.clone();
        async move {
            let ts = txn.current_timestamp().await?;
            txn.snapshot(ts).scan("k/".."k0", 10240).await
        }
    })
    .await;
    let got_txn: BTreeMap<String, String> = snapshot_pairs
        .into_iter()
        .map(|p| {
            (
                String::from_utf8(p.key.into_inner()).unwrap(),
                String::from_utf8(p.value).unwrap(),
            )
        })
        .collect();
    assert_eq!(got_txn, expect_txn, "transactional data differs");
}

/// Writes fresh raw keys one by one until stopped, recording each as acknowledged or unknown.
fn spawn_background_writer(
    raw: RawClient,
    model: Arc<Mutex<Model>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut acked = 0;
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let key = format!("r/bg/{n:05}");
            let value = format!("bg-{n}");
            n += 1;
            match raw.put(key.clone(), value.clone()).await {
                Ok(()) => {
                    acked += 1;
                    model.lock().raw.insert(key, value);
                    // A steady trickle, not a flood: the point is writes in flight at the
                    // moment of the kill, not load.
                    tokio::time::sleep(BACKGROUND_PACE).await;
                }
                Err(e) => {
                    tracing::debug!(key, error = %e, "background write failed");
                    model.lock().raw_unknown.insert(key);
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
        acked
    })
}

/// The acknowledged background writes so far.
fn background_acks(model: &Mutex<Model>) -> usize {
    model
        .lock()
        .raw
        .keys()
        .filter(|k| k.starts_with("r/bg/"))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_killed_store_across_regions() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let config = ClusterConfig {
        data_dir: dir.path().join("cluster"),
        binaries: Some(binaries().clone()),
        ..ClusterConfig::new_test_config()
    };
    let mut cluster = ProcessCluster::start(config).await.expect("cluster starts");
    let pd = cluster.pd_endpoints();
    let raw = RawClient::new_with_config(pd.clone(), Config::new_test_config())
        .await
        .unwrap();
    let txn = TransactionClient::new_with_config(pd, Config::new_test_config())
        .await
        .unwrap();
    let model = Arc::new(Mutex::new(Model::default()));

    // 1. Five regions, each replicated on all three stores.
    split_regions(&raw).await;
    cluster.wait_ready().await.expect("replicated after splits");
    let regions = until_ok("ScanRegions", || raw.pd().scan_regions(b"", b"", 0)).await;
    assert!(regions.len() >= 5, "{} regions", regions.len());

    // 2. Raw batches across two regions, transactions across four.
    let initial: Vec<(String, String)> = (0..RAW_KEYS)
        .map(|i| (raw_key(i), format!("v0-{i}")))
        .collect();
    until_ok("raw batch put", || raw.batch_put(initial.clone())).await;
    model.lock().raw.extend(initial);
    write_txns(&txn, &model, 0).await;
    let mut raw_regions = BTreeSet::new();
    for key in [raw_key(0), raw_key(RAW_KEYS - 1)] {
        raw_regions.insert(
            until_ok("region lookup", || raw.region_for_key(key.clone()))
                .await
                .id,
        );
    }
    assert_eq!(raw_regions.len(), 2, "raw keys span two regions");
    let mut txn_regions = BTreeSet::new();
    for i in [0, 30, 60, 90] {
        let key = txn_key(i);
        txn_regions.insert(
            until_ok("region lookup", || txn.region_for_key(key.clone()))
                .await
                .id,
        );
    }
    assert_eq!(txn_regions.len(), 4, "transactions span four regions");
    verify(&raw, &txn, &model).await;

    // 3. Kill the busiest leader in the middle of a stream of writes.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_background_writer(raw.clone(), model.clone(), stop.clone());
    wait_for("background writes flowing", || async {
        (background_acks(&model) < 20).then(|| "fewer than 20 acknowledged".to_string())
    })
    .await;
    let victim_id = busiest_leader(&raw).await;
    let victim = cluster.store_index(victim_id).expect("one of ours");
    cluster.kill_store(victim).expect("SIGKILL");
    wait_for_leaders(&raw, Some(victim_id)).await;
    let acked_at_election = background_acks(&model);
    write_raw(&raw, &model, 1).await;
    write_txns(&txn, &model, 1).await;
    wait_for("background writes after the election", || async {
        (background_acks(&model) < acked_at_election + 20)
            .then(|| "the background writer is not making progress".to_string())
    })
    .await;
    verify(&raw, &txn, &model).await;

    // 4. The store comes back and catches up; then it must carry a quorum.
    cluster.restart_store(victim).await.expect("restart");
    cluster
        .wait_ready()
        .await
        .expect("caught up: all peers present, none pending");
    let second = (victim + 1) % cluster.store_count();
    let second_id = cluster.store_id(second).unwrap().expect("registered");
    cluster.kill_store(second).expect("SIGKILL");
    wait_for_leaders(&raw, Some(second_id)).await;
    write_raw(&raw, &model, 2).await;
    write_txns(&txn, &model, 2).await;
    verify(&raw, &txn, &model).await;

    // 5. Everyone back; nothing acknowledged was lost; a clean stop.
    cluster.restart_store(second).await.expect("restart");
    cluster.wait_ready().await.expect("ready again");
    stop.store(true, Ordering::Relaxed);
    let acked = writer.await.unwrap();
    assert!(acked >= 40, "background writer acknowledged only {acked}");
    verify(&raw, &txn, &model).await;
    cluster.stop().await.expect("every process exits cleanly");
}
