//! End to end, the scheduler placing data on its own: one `tinyscheduler-server` and three
//! `tinykv-server`s started as real processes by the playground's `ProcessCluster`, data through
//! the `client` crate's `RawClient`, and every condition read from the scheduler's HTTP status
//! view (`/pd/api/v1/stores`, `/regions`, `/operators`).
//!
//! One scenario, in phases (issue 6's bar for a real cluster):
//!
//! 1. the cluster bootstraps: one region, replicated on the three stores;
//! 2. about 1.6 MiB of raw pairs are written in two interleaved halves, the second after the
//!    first split; with a `region-max-size` of [`REGION_MAX_SIZE`] the stores' split checkers
//!    split the key space until there are at least [`MIN_REGIONS`] regions, each with three
//!    replicas and a leader;
//! 3. every key is read back through the client: batch gets and a scan that cross every
//!    region, and point reads;
//! 4. a fourth store joins; while a writer keeps adding keys, balance-region moves replicas onto
//!    it and balance-leader hands it leaders, until it holds its fair share of the replicas (see
//!    [`fair_share`]) and at least one leader, with every region back to three healthy replicas;
//! 5. everything (the load and the writes made during the moves) reads back, and the cluster
//!    stops cleanly.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use client::{Config, RawClient};
use parking_lot::Mutex;
use serde_json::Value as Json;
use tests::process::binaries;
use tinykv_playground::{ClusterConfig, ProcessCluster};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// How long one condition (the splits, the rebalancing) may take to come true on a loaded
/// 2-core machine. Waits poll; this is only the point at which the test gives up.
const DEADLINE: Duration = Duration::from_secs(90);
/// Pause between two looks at the status view, and between attempts of a retried operation.
const POLL: Duration = Duration::from_millis(250);
/// Deadline of one HTTP request to the status view.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Replicas per region: the scheduler's default `max-replicas`.
const REPLICAS: usize = 3;

/// A region above this many bytes is split (`raftstore.region-max-size`)...
const REGION_MAX_SIZE: u64 = 192 << 10;
/// ... into parts of about this size (`raftstore.region-split-size`).
const REGION_SPLIT_SIZE: u64 = 96 << 10;
/// A region is measured again once this much was written to it (`region-split-check-diff`).
const SPLIT_CHECK_DIFF: u64 = 32 << 10;

/// Pairs written in phase 2, [`VALUE_SIZE`] bytes each: ~1.6 MiB, about 16 regions' worth.
const LOAD_KEYS: usize = 1600;
const VALUE_SIZE: usize = 1024;
/// Pairs per `RawBatchPut` of the load.
const LOAD_BATCH: usize = 64;
/// Regions the load must produce. Well below the ~16 the data size gives, so the test does not
/// depend on exactly where the checker cut.
const MIN_REGIONS: usize = 8;
/// Pause after each acknowledged write of the writer running during the moves: a steady
/// trickle (a split every few seconds), not a flood that starves the moves on two cores.
const WRITER_PACE: Duration = Duration::from_millis(20);
/// Writes the writer must have acknowledged while replicas moved.
const MIN_WRITES_DURING_MOVES: usize = 20;

/// The gap balance-region leaves between two stores, in regions. It moves a peer only while
/// `source.region_size - target.region_size > 2 * region.size`, sizes in MiB with every region
/// counted as at least 1 MiB (scheduler `core/region.rs`); every region here is far below
/// 1 MiB, so sizes are region counts and a gap of 2 is where it stops.
const BALANCE_GAP: usize = 2;

fn load_key(i: usize) -> String {
    format!("load/{i:05}")
}

fn move_key(i: usize) -> String {
    format!("move/{i:05}")
}

/// A [`VALUE_SIZE`]-byte value that names its key, so a value read under the wrong key (a
/// routing mistake) or cut short shows.
fn value_for(key: &str) -> Vec<u8> {
    let pattern = format!("{key}|");
    pattern.bytes().cycle().take(VALUE_SIZE).collect()
}

/// The fewest peers balance-region leaves on the emptiest of `stores` stores that hold
/// `total_peers` peers between them: it stops once no store is more than [`BALANCE_GAP`] above
/// the emptiest, so `total_peers <= min + (stores - 1) * (min + BALANCE_GAP)`.
fn fair_share(total_peers: usize, stores: usize) -> usize {
    total_peers
        .saturating_sub(BALANCE_GAP * (stores - 1))
        .div_ceil(stores)
}

// ---- The scheduler's status view ------------------------------------------------------------

/// One GET of the status view on `pd` (`host:port`), parsed as JSON. Plain HTTP/1.1 on
/// loopback with `Connection: close`, as the scheduler's own tests do: the body is whatever
/// follows the headers.
async fn http_get_json(pd: &str, path: &str) -> Result<Json, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(pd)
            .await
            .map_err(|e| format!("connect {pd}: {e}"))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {pd}\r\nAccept: application/json\r\n\
             Connection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send GET {path}: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read GET {path}: {e}"))?;
        Ok::<_, String>(raw)
    };
    let raw = tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("GET {path}: no answer within {HTTP_TIMEOUT:?}"))??;
    let text = String::from_utf8(raw).map_err(|e| format!("GET {path}: not UTF-8: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: not an HTTP response: {text:?}"))?;
    let status = head.lines().next().unwrap_or_default();
    if status.split(' ').nth(1) != Some("200") {
        return Err(format!("GET {path}: {status}: {body}"));
    }
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return Err(format!("GET {path}: chunked bodies are not handled here"));
    }
    serde_json::from_str(body).map_err(|e| format!("GET {path}: bad JSON ({e}): {body}"))
}

fn field_u64(v: &Json, name: &str) -> Result<u64, String> {
    v.get(name)
        .and_then(Json::as_u64)
        .ok_or_else(|| format!("status view: no number {name:?} in {v}"))
}

fn field_array<'a>(v: &'a Json, name: &str) -> Result<&'a Vec<Json>, String> {
    v.get(name)
        .and_then(Json::as_array)
        .ok_or_else(|| format!("status view: no array {name:?} in {v}"))
}

fn hex_decode(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return Err(format!("status view: bad hex key {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("hex {s:?}: {e}")))
        .collect()
}

/// One region as the scheduler sees it.
#[derive(Debug, Clone)]
struct RegionState {
    id: u64,
    start_key: Vec<u8>,
    /// Empty: the end of the key space.
    end_key: Vec<u8>,
    /// Store ids of the peers.
    stores: Vec<u64>,
    leader_store: Option<u64>,
    pending_peers: usize,
}

impl RegionState {
    fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key.as_slice()
            && (self.end_key.is_empty() || key < self.end_key.as_slice())
    }
}

/// A snapshot of the scheduler's status view.
#[derive(Debug, Clone)]
struct Status {
    /// Store id → state (`Up`, `Offline`, ...) and whether it is down.
    stores: BTreeMap<u64, (String, bool)>,
    /// Regions in key order.
    regions: Vec<RegionState>,
    running_operators: usize,
    /// Finished operators by `desc` and outcome, e.g. `balance-region finished`.
    finished_operators: BTreeMap<String, usize>,
}

impl Status {
    async fn fetch(pd: &str) -> Result<Status, String> {
        let mut stores = BTreeMap::new();
        let json = http_get_json(pd, "/pd/api/v1/stores").await?;
        for s in json.as_array().ok_or("stores: not an array")? {
            let state = s
                .get("state")
                .and_then(Json::as_str)
                .ok_or_else(|| format!("store without a state: {s}"))?;
            let down = s.get("down").and_then(Json::as_bool).unwrap_or(false);
            stores.insert(field_u64(s, "id")?, (state.to_string(), down));
        }

        let mut regions = Vec::new();
        let json = http_get_json(pd, "/pd/api/v1/regions").await?;
        for r in json.as_array().ok_or("regions: not an array")? {
            let store_of = |p: &Json| field_u64(p, "store_id");
            let key = |name: &str| {
                hex_decode(
                    r.get(name)
                        .and_then(Json::as_str)
                        .ok_or_else(|| format!("region without {name}: {r}"))?,
                )
            };
            regions.push(RegionState {
                id: field_u64(r, "id")?,
                start_key: key("start_key")?,
                end_key: key("end_key")?,
                stores: field_array(r, "peers")?
                    .iter()
                    .map(store_of)
                    .collect::<Result<_, _>>()?,
                leader_store: match r.get("leader") {
                    None | Some(Json::Null) => None,
                    Some(l) => Some(store_of(l)?),
                },
                pending_peers: field_array(r, "pending_peers")?.len(),
            });
        }
        regions.sort_by(|a, b| a.start_key.cmp(&b.start_key));

        let mut running_operators = 0;
        let mut finished_operators = BTreeMap::new();
        let json = http_get_json(pd, "/pd/api/v1/operators").await?;
        for op in json.as_array().ok_or("operators: not an array")? {
            let desc = op.get("desc").and_then(Json::as_str).unwrap_or("?");
            match op.get("outcome") {
                None | Some(Json::Null) => running_operators += 1,
                Some(o) => {
                    let outcome = o.get("outcome").and_then(Json::as_str).unwrap_or("?");
                    *finished_operators
                        .entry(format!("{desc} {outcome}"))
                        .or_default() += 1;
                }
            }
        }
        Ok(Status {
            stores,
            regions,
            running_operators,
            finished_operators,
        })
    }

    fn peers_on(&self, store: u64) -> usize {
        self.regions
            .iter()
            .filter(|r| r.stores.contains(&store))
            .count()
    }

    fn leaders_on(&self, store: u64) -> usize {
        self.regions
            .iter()
            .filter(|r| r.leader_store == Some(store))
            .count()
    }

    fn total_peers(&self) -> usize {
        self.regions.iter().map(|r| r.stores.len()).sum()
    }

    /// The first region that does not have exactly `replicas` peers, a leader, and no pending
    /// peer.
    fn unhealthy_region(&self, replicas: usize) -> Option<String> {
        self.regions.iter().find_map(|r| {
            if r.stores.len() != replicas {
                Some(format!(
                    "region {} has {} replicas (stores {:?}), not {replicas}",
                    r.id,
                    r.stores.len(),
                    r.stores
                ))
            } else if r.leader_store.is_none() {
                Some(format!("region {} has no leader", r.id))
            } else if r.pending_peers > 0 {
                Some(format!(
                    "region {} has {} pending peer(s)",
                    r.id, r.pending_peers
                ))
            } else {
                None
            }
        })
    }

    /// Regions holding at least one of `keys`.
    fn regions_holding<'a>(&self, keys: impl IntoIterator<Item = &'a [u8]>) -> BTreeSet<u64> {
        keys.into_iter()
            .filter_map(|k| self.regions.iter().find(|r| r.contains(k)).map(|r| r.id))
            .collect()
    }

    /// What a failure message shows: counts per store and what the scheduler is doing.
    fn summary(&self) -> String {
        let per_store: Vec<String> = self
            .stores
            .iter()
            .map(|(id, (state, down))| {
                format!(
                    "store {id} ({state}{}): {} peers, {} leaders",
                    if *down { ", down" } else { "" },
                    self.peers_on(*id),
                    self.leaders_on(*id)
                )
            })
            .collect();
        format!(
            "{} regions, {} peers; {}; {} operators running, finished: {:?}",
            self.regions.len(),
            self.total_peers(),
            per_store.join("; "),
            self.running_operators,
            self.finished_operators
        )
    }
}

/// Polls the status view until `check` (what is still missing, or `None`) passes; returns the
/// snapshot that passed. Fails after [`DEADLINE`] with the last reason, the last snapshot and
/// where the servers' logs are.
async fn wait_for_status<F>(what: &str, pd: &str, logs: &Path, mut check: F) -> Status
where
    F: FnMut(&Status) -> Option<String>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        let last = match Status::fetch(pd).await {
            Ok(status) => match check(&status) {
                None => return status,
                Some(missing) => format!("{missing}; seen: {}", status.summary()),
            },
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not true after {DEADLINE:?}: {last}. Server logs: {}",
            logs.display()
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Retries `op` until it succeeds, failing the test after [`DEADLINE`]. For idempotent
/// operations only: a failed attempt may still have been applied.
async fn until_ok<T, F, Fut>(what: &str, op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = client::Result<T>>,
{
    tests::process::until_ok(what, DEADLINE, POLL, op).await
}

// ---- Data -----------------------------------------------------------------------------------

/// Acknowledged writes of the writer running during the moves, and the ones whose outcome is
/// unknown (a failed put may still have been applied).
#[derive(Default)]
struct Written {
    acked: BTreeSet<String>,
    unknown: BTreeSet<String>,
}

/// A background task that is aborted if the test fails before joining it, so it does not
/// keep retrying against a cluster being torn down.
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Writes fresh `move/` keys one by one until stopped.
fn spawn_writer(raw: RawClient, written: Arc<Mutex<Written>>, stop: Arc<AtomicBool>) -> Task {
    Task(tokio::spawn(async move {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            let key = move_key(n);
            n += 1;
            match raw.put(key.clone(), value_for(&key)).await {
                Ok(()) => {
                    written.lock().acked.insert(key);
                    tokio::time::sleep(WRITER_PACE).await;
                }
                Err(e) => {
                    tracing::debug!(key, error = %e, "write during the moves failed");
                    written.lock().unknown.insert(key);
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }))
}

/// Writes `keys` with their values in batches of [`LOAD_BATCH`] (retried: a put is
/// idempotent).
async fn load(raw: &RawClient, keys: &[&String]) {
    for chunk in keys.chunks(LOAD_BATCH) {
        let pairs: Vec<(String, Vec<u8>)> =
            chunk.iter().map(|&k| (k.clone(), value_for(k))).collect();
        until_ok("raw batch put", || raw.batch_put(pairs.clone())).await;
    }
}

/// Every load key reads back with its value: batch gets (sharded by region), a scan across
/// all regions (nothing missing, nothing extra), and a sample of point reads.
async fn verify_load(raw: &RawClient) {
    let keys: Vec<String> = (0..LOAD_KEYS).map(load_key).collect();
    for chunk in keys.chunks(400) {
        let pairs = until_ok("raw batch get", || raw.batch_get(chunk.to_vec())).await;
        let got: BTreeMap<String, Vec<u8>> = pairs
            .into_iter()
            .map(|p| (String::from_utf8(p.key.into_inner()).unwrap(), p.value))
            .collect();
        for k in chunk {
            assert!(
                got.get(k) == Some(&value_for(k)),
                "batch get of {k}: {}",
                match got.get(k) {
                    None => "missing".to_string(),
                    Some(v) => format!("wrong value of {} bytes", v.len()),
                }
            );
        }
        assert_eq!(got.len(), chunk.len(), "batch get returned extra keys");
    }

    let scanned = until_ok("raw scan", || {
        raw.scan("load/".."load0", client::MAX_SCAN_LIMIT)
    })
    .await;
    let scanned: Vec<(String, Vec<u8>)> = scanned
        .into_iter()
        .map(|p| (String::from_utf8(p.key.into_inner()).unwrap(), p.value))
        .collect();
    assert_eq!(
        scanned.len(),
        LOAD_KEYS,
        "the scan over every region found {} of {LOAD_KEYS} keys",
        scanned.len()
    );
    for ((k, v), expected) in scanned.iter().zip(&keys) {
        assert_eq!(k, expected, "scan order or content");
        assert!(*v == value_for(k), "scan: wrong value for {k}");
    }

    for k in keys.iter().step_by(97) {
        let v = until_ok("raw get", || raw.get(k.clone())).await;
        assert!(
            v == Some(value_for(k)),
            "get {k}: {:?} bytes",
            v.map(|v| v.len())
        );
    }
}

/// Every acknowledged write of the writer reads back; a write of unknown outcome is either
/// absent or intact; nothing else appeared under `move/`.
async fn verify_moves(raw: &RawClient, written: &Written) {
    let scanned = until_ok("raw scan", || {
        raw.scan("move/".."move0", client::MAX_SCAN_LIMIT)
    })
    .await;
    assert!(
        scanned.len() < client::MAX_SCAN_LIMIT as usize,
        "the scan hit its limit: the check would miss keys"
    );
    let got: BTreeMap<String, Vec<u8>> = scanned
        .into_iter()
        .map(|p| (String::from_utf8(p.key.into_inner()).unwrap(), p.value))
        .collect();
    for k in &written.acked {
        assert!(
            got.get(k) == Some(&value_for(k)),
            "{k}: acknowledged during the moves, then {}",
            if got.contains_key(k) {
                "read back with a wrong value"
            } else {
                "lost"
            }
        );
    }
    for (k, v) in &got {
        assert!(
            written.acked.contains(k) || written.unknown.contains(k),
            "{k} was never written"
        );
        assert!(*v == value_for(k), "{k}: wrong value");
    }
}

// ---- The scenario ---------------------------------------------------------------------------

/// The cluster's folder: deleted when the test passes, kept when it fails, so the log folder a
/// failure message names still exists.
struct KeepOnFailure(Option<tempfile::TempDir>);

impl Drop for KeepOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(dir) = self.0.take() {
                eprintln!(
                    "kept the cluster's data and logs in {}",
                    dir.keep().display()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splits_under_load_and_rebalances_onto_a_new_store() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
    let started = Instant::now();
    // Declared before the cluster, so dropped after it: the processes stop first.
    let dir = KeepOnFailure(Some(tempfile::tempdir().unwrap()));
    let set = |kv: String| ["--set".to_string(), kv];
    let config = ClusterConfig {
        data_dir: dir
            .0
            .as_ref()
            .expect("present until dropped")
            .path()
            .join("cluster"),
        binaries: Some(binaries().clone()),
        store_args: [
            set(format!("raftstore.region-max-size={REGION_MAX_SIZE}")),
            set(format!("raftstore.region-split-size={REGION_SPLIT_SIZE}")),
            set(format!(
                "raftstore.region-split-check-diff={SPLIT_CHECK_DIFF}"
            )),
        ]
        .concat(),
        scheduler_args: vec![
            // Balance rounds four times a second instead of once, so a move follows the
            // previous one quickly.
            "--schedule-interval=250ms".into(),
            // A move that stalls (a snapshot lost to a crash, say) is abandoned and retried
            // within the test's deadline rather than after the default 10 minutes.
            "--region-operator-timeout=30s".into(),
        ],
        ..ClusterConfig::new_test_config()
    };
    let mut cluster = ProcessCluster::start(config).await.expect("cluster starts");
    let pd = cluster.pd_endpoint();
    let logs = cluster.log_dir();
    let old_stores: Vec<u64> = (0..cluster.store_count())
        .map(|i| cluster.store_id(i).unwrap().expect("registered"))
        .collect();
    let raw = RawClient::new_with_config(cluster.pd_endpoints(), Config::new_test_config())
        .await
        .unwrap();

    // 1. Bootstrapped: one region on all three stores.
    let status =
        wait_for_status("bootstrapped", &pd, &logs, |s| s.unhealthy_region(REPLICAS)).await;
    assert_eq!(status.stores.len(), REPLICAS, "{}", status.summary());
    eprintln!("ready after {:?}: {}", started.elapsed(), status.summary());

    // 2. Load in two interleaved halves: the even keys, which alone make the region split;
    // then, once the scheduler has seen a split, the odd keys, whose batches the client first
    // routes by its stale one-region view and must re-route across the new regions.
    let load_started = Instant::now();
    let keys: Vec<String> = (0..LOAD_KEYS).map(load_key).collect();
    let evens: Vec<&String> = keys.iter().step_by(2).collect();
    let odds: Vec<&String> = keys.iter().skip(1).step_by(2).collect();
    load(&raw, &evens).await;
    wait_for_status("the first split", &pd, &logs, |s| {
        (s.regions.len() < 2).then(|| "still one region".to_string())
    })
    .await;
    load(&raw, &odds).await;
    let loaded_in = load_started.elapsed();
    let status = wait_for_status("split under load", &pd, &logs, |s| {
        if s.regions.len() < MIN_REGIONS {
            return Some(format!(
                "{} regions, want at least {MIN_REGIONS}",
                s.regions.len()
            ));
        }
        s.unhealthy_region(REPLICAS)
    })
    .await;
    let holding = status.regions_holding(keys.iter().map(|k| k.as_bytes()));
    assert!(
        holding.len() >= MIN_REGIONS,
        "the load spans only {} regions: {}",
        holding.len(),
        status.summary()
    );
    eprintln!(
        "loaded {LOAD_KEYS} pairs in {loaded_in:?}; split after {:?}: {}",
        load_started.elapsed(),
        status.summary()
    );

    // 3. Every key back, through region routing.
    verify_load(&raw).await;

    // 4. A fourth store joins and takes its share while writes go on (the writer starts
    // first: the scheduler may begin moving replicas as soon as the store registers).
    let written = Arc::new(Mutex::new(Written::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writer = spawn_writer(raw.clone(), written.clone(), stop.clone());
    let move_started = Instant::now();
    let new_index = cluster.add_store().await.expect("the fourth store joins");
    let new_store = cluster
        .store_id(new_index)
        .unwrap()
        .expect("registered after add_store");
    assert!(!old_stores.contains(&new_store));
    let status = wait_for_status("rebalanced onto the new store", &pd, &logs, |s| {
        match s.stores.get(&new_store) {
            Some((state, false)) if state == "Up" => {}
            other => return Some(format!("store {new_store} is {other:?}, not Up")),
        }
        let want = fair_share(s.total_peers(), s.stores.len());
        let (peers, leaders) = (s.peers_on(new_store), s.leaders_on(new_store));
        if peers < want {
            return Some(format!(
                "store {new_store} holds {peers} of {} peers, want at least {want}",
                s.total_peers()
            ));
        }
        if leaders == 0 {
            return Some(format!("store {new_store} leads no region"));
        }
        if let Some(unhealthy) = s.unhealthy_region(REPLICAS) {
            return Some(unhealthy);
        }
        (written.lock().acked.len() < MIN_WRITES_DURING_MOVES).then(|| {
            format!("fewer than {MIN_WRITES_DURING_MOVES} writes acknowledged during the moves")
        })
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    (&mut writer.0).await.expect("the writer does not panic");
    assert!(
        status
            .finished_operators
            .contains_key("balance-region finished"),
        "store {new_store} got peers without a finished balance-region operator: {}",
        status.summary()
    );
    eprintln!(
        "rebalanced in {:?} with {} writes during the moves: {}",
        move_started.elapsed(),
        written.lock().acked.len(),
        status.summary()
    );

    // 5. Nothing lost or damaged by the moves.
    verify_load(&raw).await;
    let written = std::mem::take(&mut *written.lock());
    verify_moves(&raw, &written).await;
    cluster.stop().await.expect("every process exits cleanly");
    eprintln!("done in {:?}", started.elapsed());
}

#[test]
fn fair_share_follows_the_balance_rule() {
    // 16 regions x 3 replicas on 4 stores: with the emptiest at 10 and none more than 2 above
    // it, at most 10 + 3 * 12 = 46 peers fit, so it holds at least 11.
    assert_eq!(fair_share(48, 4), 11);
    assert_eq!(fair_share(24, 4), 5);
    // Fewer peers than the slack: nothing is owed.
    assert_eq!(fair_share(3, 4), 0);
}
