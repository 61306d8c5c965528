//! The generic randomized scenario of the course's raftstore stages (TinyKV's `GenericTest`),
//! parameterised by the faults it injects. Suites pick rows of the matrix:
//!
//! ```no_run
//! use tests::GenericTest;
//! // 5 clients, lossy network, all stores crash between rounds, log GC at 100 entries.
//! GenericTest::new(5).unreliable().crash().max_raft_log(100).run();
//! ```
//!
//! Every round, each client appends keys `"<client> <j:08>"` with values `"x <client> <j> y"`
//! and, half of the time, scans everything it appended so far and checks it reads back exactly
//! that, in order. Meanwhile, depending on the row: the network loses and delays messages
//! (`unreliable`), the stores are repartitioned into two random sides every election timeout
//! (`partitions`), peers are added to and removed from random regions (`confchange`, in every
//! round). After the round, filters are cleared, every store is stopped and restarted (`crash`),
//! every client's range is checked once more and deleted, and the cluster's invariants are
//! checked: logs trimmed (`applied - truncated <= 2 x limit` on every store), regions split
//! (`split`), no epoch violations reported to the scheduler.
//!
//! Every random choice of the driver (client operations, partitions, churn) comes from RNGs
//! seeded from [`GenericTest::seed`] (random unless set); the seed is logged, and printed if the
//! run fails, so a failing run's choices can be replayed with `.seed(s)`. (Thread timing is not
//! replayed, so a replay retraces the same schedule of faults, not the exact interleaving.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::cluster::{wait_for, Cluster};
use crate::config::ClusterConfig;
use crate::transport::{FilterId, Partition, RandomDelay, RandomDrop};

/// One row of the matrix. Build with [`GenericTest::new`] and the fault switches, then
/// [`GenericTest::run`].
#[derive(Debug, Clone)]
pub struct GenericTest {
    /// Stores in the cluster.
    pub stores: usize,
    /// Concurrent clients.
    pub clients: usize,
    /// Lose 10% of messages and delay another 10% by up to 20 ms (reordering them).
    pub unreliable: bool,
    /// Stop and restart every store after each round.
    pub crash: bool,
    /// Repartition the stores into two random sides every election timeout.
    pub partitions: bool,
    /// Raft log GC count limit (the runtime's test default if `None`).
    pub max_raft_log: Option<u64>,
    /// Add and remove peers of random regions during each round.
    pub confchange: bool,
    /// Tiny region size limits (300 / 200 bytes) so regions split during the rounds.
    pub split: bool,
    /// Rounds to run.
    pub rounds: usize,
    /// How long clients run in each round.
    pub round_time: Duration,
    /// Seed of every random choice the driver makes (random if `None`).
    pub seed: Option<u64>,
}

impl GenericTest {
    /// `clients` clients on 5 healthy stores, 3 rounds of 5 seconds: switch faults on with the
    /// builder methods.
    pub fn new(clients: usize) -> GenericTest {
        GenericTest {
            stores: 5,
            clients,
            unreliable: false,
            crash: false,
            partitions: false,
            max_raft_log: None,
            confchange: false,
            split: false,
            rounds: 3,
            round_time: Duration::from_secs(5),
            seed: None,
        }
    }

    /// See [`GenericTest::seed`](field@GenericTest::seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// See [`GenericTest::unreliable`](field@GenericTest::unreliable).
    pub fn unreliable(mut self) -> Self {
        self.unreliable = true;
        self
    }

    /// See [`GenericTest::crash`](field@GenericTest::crash).
    pub fn crash(mut self) -> Self {
        self.crash = true;
        self
    }

    /// See [`GenericTest::partitions`](field@GenericTest::partitions).
    pub fn partitions(mut self) -> Self {
        self.partitions = true;
        self
    }

    /// See [`GenericTest::max_raft_log`](field@GenericTest::max_raft_log).
    pub fn max_raft_log(mut self, limit: u64) -> Self {
        self.max_raft_log = Some(limit);
        self
    }

    /// See [`GenericTest::confchange`](field@GenericTest::confchange).
    pub fn confchange(mut self) -> Self {
        self.confchange = true;
        self
    }

    /// See [`GenericTest::split`](field@GenericTest::split).
    pub fn split(mut self) -> Self {
        self.split = true;
        self
    }

    /// The cluster configuration this row runs with.
    pub fn cluster_config(&self) -> ClusterConfig {
        let mut cfg = ClusterConfig::new_test_config();
        if let Some(limit) = self.max_raft_log {
            cfg.raftstore.raft_log_gc_count_limit = limit;
        }
        if self.split {
            cfg.raftstore.region_max_size = 300;
            cfg.raftstore.region_split_size = 200;
        }
        cfg
    }

    /// Runs the scenario; panics on the first broken expectation.
    pub fn run(&self) {
        crate::init_logging();
        let seed = self.seed.unwrap_or_else(rand::random);
        tracing::info!(seed, row = ?self, "generic test starts");
        let _report = SeedReport(seed);
        let cfg = self.cluster_config();
        let gc_limit = cfg.raftstore.raft_log_gc_count_limit;
        let chaos_period = crate::election_timeout(&cfg.raftstore);
        let cluster = Arc::new(Cluster::new(self.stores, cfg).expect("create the cluster"));
        cluster.start().expect("start the cluster");
        assert!(
            cluster.leader_of_region(1).is_some(),
            "no leader was elected for the first region"
        );
        for round in 0..self.rounds {
            tracing::info!(round, "round starts");
            let done = Arc::new(AtomicBool::new(false));
            let stop = StopOnDrop(done.clone());
            // One RNG per thread and round, all derived from the seed.
            let rng = |salt: u64| {
                StdRng::seed_from_u64(
                    seed ^ (round as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                        ^ salt.wrapping_mul(0xC2B2_AE3D_27D4_EB4F),
                )
            };
            let clients: Vec<JoinHandle<u64>> = (0..self.clients)
                .map(|cli| {
                    let (c, d, r) = (cluster.clone(), done.clone(), rng(cli as u64 + 3));
                    spawn(format!("client-{cli}"), move || run_client(&c, cli, &d, r))
                })
                .collect();
            let mut background = vec![];
            if self.unreliable || self.partitions {
                let (c, d, t, r) = (cluster.clone(), done.clone(), self.clone(), rng(1));
                background.push(spawn("chaos".into(), move || {
                    t.network_chaos(&c, &d, chaos_period, r)
                }));
            }
            if self.confchange {
                let (c, d, r) = (cluster.clone(), done.clone(), rng(2));
                background.push(spawn("confchange".into(), move || {
                    churn_membership(&c, &d, r)
                }));
            }
            std::thread::sleep(self.round_time);
            drop(stop);
            for h in background {
                join(h);
            }
            // Heal the network before waiting for the clients: an operation still in flight
            // may need a region whose peers the last partition split evenly (membership churn
            // leaves regions with an even number of peers), which has no leader until then.
            cluster.clear_filters();
            let appended: Vec<u64> = clients.into_iter().map(join).collect();
            tracing::info!(round, ?appended, "round clients stopped");
            if self.crash {
                for id in cluster.store_ids() {
                    cluster.stop_store(id);
                }
                cluster.start().expect("restart every store");
            }
            self.check_and_clear(&cluster, &appended);
            cluster.must_respect_log_gc(gc_limit);
            if self.split {
                let first = cluster.get_region(b"");
                assert!(
                    !first.end_key.is_empty(),
                    "round {round}: the first region never split: {first:?}"
                );
            }
            let violations = cluster.pd().violations();
            assert!(violations.is_empty(), "epoch violations: {violations:?}");
            let net = cluster.net().stats();
            tracing::info!(
                round,
                delivered = net.delivered,
                filtered = net.filtered,
                delayed = net.delayed,
                snapshots = ?net.snapshots_delivered,
                regions = cluster.pd().regions().len(),
                "round checked"
            );
        }
    }

    /// Checks every client's range reads back exactly what it appended, then deletes it (each
    /// client's range in its own thread) and checks it is empty.
    fn check_and_clear(&self, cluster: &Arc<Cluster>, appended: &[u64]) {
        let workers: Vec<JoinHandle<()>> = appended
            .iter()
            .enumerate()
            .map(|(cli, &n)| {
                let c = cluster.clone();
                spawn(format!("check-{cli}"), move || {
                    let got = c.scan(&key(cli, 0), &key(cli, n));
                    check_values(cli, n, &got);
                    for j in 0..n {
                        c.must_delete(&key(cli, j));
                    }
                    let left = c.scan(&key(cli, 0), &key(cli, n));
                    assert!(
                        left.is_empty(),
                        "client {cli}: {} keys survived deletion",
                        left.len()
                    );
                })
            })
            .collect();
        for w in workers {
            join(w);
        }
    }

    /// Until `done`: every election timeout or so, repartition the stores into two random
    /// sides (`partitions`); keep a lossy, reordering network for the whole round
    /// (`unreliable`).
    fn network_chaos(
        &self,
        cluster: &Cluster,
        done: &AtomicBool,
        period: Duration,
        mut rng: StdRng,
    ) {
        let net = cluster.net();
        if self.unreliable {
            net.add_filter(RandomDrop::new(0.1));
            net.add_filter(RandomDelay::new(0.1, Duration::from_millis(20)));
        }
        if !self.partitions {
            return;
        }
        if !sleep_unless(done, Duration::from_millis(300)) {
            return;
        }
        let mut current: Option<FilterId> = None;
        loop {
            let mut sides = (vec![], vec![]);
            for id in cluster.store_ids() {
                if rng.gen_bool(0.5) {
                    sides.0.push(id);
                } else {
                    sides.1.push(id);
                }
            }
            tracing::info!(?sides, "repartition");
            let next = net.add_filter(Partition::new([sides.0, sides.1]));
            if let Some(old) = current.replace(next) {
                net.remove_filter(old);
            }
            let pause = period + Duration::from_millis(rng.gen_range(0..200));
            if !sleep_unless(done, pause) {
                return;
            }
        }
    }
}

/// Until `done`: pick a random region and a random store; remove the store's peer if it has one
/// (and is not the last), else add a fresh peer there; wait until the scheduler sees the change
/// (or the round ends), pause up to 200 ms, repeat.
fn churn_membership(cluster: &Cluster, done: &AtomicBool, mut rng: StdRng) {
    if !sleep_unless(done, Duration::from_millis(100)) {
        return;
    }
    while !done.load(Ordering::Relaxed) {
        let regions = cluster.pd().regions();
        let stores = cluster.store_ids();
        let (Some(region), Some(&store)) = (regions.choose(&mut rng), stores.choose(&mut rng))
        else {
            if !sleep_unless(done, Duration::from_millis(50)) {
                return;
            }
            continue;
        };
        let region_id = region.id;
        let existing = region.peers.iter().find(|p| p.store_id == store).copied();
        let observed: Box<dyn Fn() -> bool + '_> = match existing {
            Some(p) if region.peers.len() > 1 => {
                cluster.remove_peer(region_id, p);
                Box::new(move || {
                    cluster
                        .pd()
                        .region_info(region_id)
                        .is_none_or(|r| !r.meta.peers.iter().any(|x| x.id == p.id))
                })
            }
            Some(_) => Box::new(|| true),
            None => {
                let p = cluster.alloc_peer(store);
                cluster.add_peer(region_id, p);
                Box::new(move || {
                    cluster
                        .pd()
                        .region_info(region_id)
                        .is_none_or(|r| r.meta.peers.iter().any(|x| x.id == p.id))
                })
            }
        };
        wait_for(cluster.config().wait_timeout, || {
            done.load(Ordering::Relaxed) || observed()
        });
        if !sleep_unless(done, Duration::from_millis(rng.gen_range(0..200))) {
            return;
        }
    }
}

/// One client's loop until `done`; returns how many keys it appended.
fn run_client(cluster: &Cluster, cli: usize, done: &AtomicBool, mut rng: StdRng) -> u64 {
    let mut n = 0u64;
    while !done.load(Ordering::Relaxed) {
        if rng.gen_bool(0.5) {
            cluster.must_put(&key(cli, n), &value(cli, n));
            n += 1;
        } else {
            let got = cluster.scan(&key(cli, 0), &key(cli, n));
            check_values(cli, n, &got);
        }
    }
    n
}

/// Asserts `got` is exactly client `cli`'s first `n` appends, in order.
fn check_values(cli: usize, n: u64, got: &[(Vec<u8>, Vec<u8>)]) {
    let expected: Vec<(Vec<u8>, Vec<u8>)> = (0..n).map(|j| (key(cli, j), value(cli, j))).collect();
    if got != expected.as_slice() {
        let first_diff = got
            .iter()
            .zip(&expected)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(expected.len()));
        let show = |kv: Option<&(Vec<u8>, Vec<u8>)>| {
            kv.map(|(k, v)| {
                format!(
                    "{:?}={:?}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
        };
        panic!(
            "client {cli}: read {} pairs, appended {n}; first difference at #{first_diff}: read {:?}, appended {:?}",
            got.len(),
            show(got.get(first_diff)),
            show(expected.get(first_diff)),
        );
    }
}

/// Key of client `cli`'s `j`-th append.
pub fn key(cli: usize, j: u64) -> Vec<u8> {
    format!("{cli} {j:08}").into_bytes()
}

/// Value of client `cli`'s `j`-th append.
pub fn value(cli: usize, j: u64) -> Vec<u8> {
    format!("x {cli} {j} y").into_bytes()
}

/// Prints the run's seed if it fails, so its random choices can be replayed.
struct SeedReport(u64);

impl Drop for SeedReport {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "GenericTest failed with seed {0}; replay its choices with `.seed({0})`",
                self.0
            );
        }
    }
}

/// Sets the flag when dropped, so helper threads stop even if the test body panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sleeps `d` in small steps; `false` if `done` was set meanwhile.
fn sleep_unless(done: &AtomicBool, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    while Instant::now() < deadline {
        if done.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10).min(deadline - Instant::now()));
    }
    !done.load(Ordering::Relaxed)
}

fn spawn<T: Send + 'static>(name: String, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn a test thread")
}

/// Joins a helper thread, re-raising its panic in the test thread.
fn join<T>(h: JoinHandle<T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_append_order_and_never_mix_clients() {
        assert!(key(3, 9) < key(3, 10));
        assert!(key(3, 99_999_999) < key(4, 0));
        // Client 1's range [key(1, 0), key(1, n)) never contains client 10's keys.
        assert!(key(10, 0) > key(1, 99_999_999) || key(10, 0) < key(1, 0));
        check_values(2, 2, &[(key(2, 0), value(2, 0)), (key(2, 1), value(2, 1))]);
    }

    #[test]
    #[should_panic(expected = "first difference at #1")]
    fn a_missing_append_is_reported() {
        check_values(2, 3, &[(key(2, 0), value(2, 0)), (key(2, 2), value(2, 2))]);
    }
}
