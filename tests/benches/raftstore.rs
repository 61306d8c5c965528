//! Raftstore write-path benchmark: puts through Raft on 3 in-process stores with synced raft
//! logs, for 1 region and for 64 regions, printing a table.
//!
//! Each row starts a fresh cluster (`tests::Cluster`, real engines in a temporary directory,
//! in-process network), waits for every region to have a leader, warms up, then runs closed-loop
//! clients for a fixed time. Every put is a `RaftCmdRequest` routed to its region's leader and
//! answered after it is committed (fsynced on a quorum) and applied. The store counters give the
//! fsyncs behind those puts and how many proposals each fsync carried (group commit).
//!
//! Columns: `puts/s` and latency percentiles as the clients see them; `fsyncs/s` summed over
//! the three stores' raft engines; `fsyncs/put` for the whole cluster; `cmds/prop` client puts
//! merged into one Raft entry; `props/fsync` and `cmds/fsync` Raft entries and client puts made
//! durable by one fsync on the stores that proposed (group commit), then the same per store.
//!
//! `make bench-raftstore`; `BENCH_SECS` sets the measured seconds per row (default 10),
//! `BENCH_STORE_POOL` / `BENCH_APPLY_POOL` the raft poller and apply threads per store (default
//! 1 each, the test config's); a numeric argument runs only the rows with that many regions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use raft_core::engine::CF_DEFAULT;
use raftstore::status::MetricsSnapshot;
use rand::Rng;
use tests::{Cluster, ClusterConfig};

const STORES: usize = 3;
const VALUE_LEN: usize = 128;

struct Row {
    regions: usize,
    clients: usize,
}

struct Outcome {
    puts: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// Per store: counters accumulated during the measured window.
    stores: Vec<MetricsSnapshot>,
}

fn env_usize(name: &str) -> Option<usize> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

fn main() {
    let secs = env_usize("BENCH_SECS").unwrap_or(10) as u64;
    // `cargo bench` passes `--bench`; any other argument filters rows by their region count.
    let only: Option<usize> = std::env::args().skip(1).find_map(|a| a.parse().ok());
    let rows = [
        Row {
            regions: 1,
            clients: 1,
        },
        Row {
            regions: 1,
            clients: 64,
        },
        Row {
            regions: 64,
            clients: 64,
        },
        Row {
            regions: 64,
            clients: 256,
        },
    ];
    println!(
        "raftstore puts: {STORES} stores, synced raft logs, {VALUE_LEN}-byte values, {secs} s per row"
    );
    println!(
        "{:>7} {:>7} {:>9} {:>8} {:>8} {:>10} {:>11} {:>10} {:>12}",
        "regions",
        "clients",
        "puts/s",
        "p50 ms",
        "p99 ms",
        "fsyncs/s",
        "fsyncs/put",
        "cmds/prop",
        "props/fsync"
    );
    for row in rows.iter().filter(|r| only.is_none_or(|n| n == r.regions)) {
        let out = run(row, Duration::from_secs(secs));
        report(row, &out);
    }
}

fn run(row: &Row, measure: Duration) -> Outcome {
    // The test config's fast ticks keep elections short and its single raft poller and apply
    // thread per store fit 3 stores on a small machine; log GC as in production.
    let mut cfg = ClusterConfig::new_test_config();
    let prod = raftstore::config::RaftstoreConfig::default();
    cfg.raftstore.raft_log_gc_count_limit = prod.raft_log_gc_count_limit;
    if let Some(n) = env_usize("BENCH_STORE_POOL") {
        cfg.raftstore.store_pool_size = n;
    }
    if let Some(n) = env_usize("BENCH_APPLY_POOL") {
        cfg.raftstore.apply_pool_size = n;
    }
    let split_keys: Vec<Vec<u8>> = (1..row.regions).map(region_prefix).collect();
    let cluster =
        Arc::new(Cluster::with_regions(STORES, cfg, &split_keys).expect("create cluster"));
    cluster.start().expect("start cluster");
    let pd = cluster.pd().clone();
    cluster.must_wait("every region to report a leader", || {
        let regions = pd.regions();
        regions.len() == row.regions && regions.iter().all(|r| pd.leader_of(r.id).is_some())
    });

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..row.clients)
        .map(|cli| {
            let (c, stop, measuring) = (cluster.clone(), stop.clone(), measuring.clone());
            let regions = row.regions;
            std::thread::spawn(move || client(&c, cli, regions, &stop, &measuring))
        })
        .collect();
    // Warm-up: leases, caches and the routing hints settle before counting.
    std::thread::sleep(Duration::from_secs(2));
    let before = metrics(&cluster);
    let start = Instant::now();
    measuring.store(true, Ordering::SeqCst);
    std::thread::sleep(measure);
    measuring.store(false, Ordering::SeqCst);
    let elapsed = start.elapsed();
    let after = metrics(&cluster);
    stop.store(true, Ordering::SeqCst);
    let mut latencies = vec![];
    let mut puts = 0;
    for c in clients {
        let l = c.join().expect("client thread");
        puts += l.len() as u64;
        latencies.extend(l);
    }
    let stores = before
        .iter()
        .zip(&after)
        .map(|(b, a)| delta(b, a))
        .collect();
    Outcome {
        puts,
        elapsed,
        latencies,
        stores,
    }
}

/// One closed-loop client: random keys spread over every region; returns the latencies of the
/// puts completed while `measuring`.
fn client(
    cluster: &Cluster,
    cli: usize,
    regions: usize,
    stop: &AtomicBool,
    measuring: &AtomicBool,
) -> Vec<Duration> {
    let mut rng = rand::thread_rng();
    let value = vec![b'v'; VALUE_LEN];
    let mut latencies = vec![];
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let region = rng.gen_range(0..regions);
        let mut key = region_prefix(region);
        key.extend_from_slice(format!("-{cli:04}-{n:010}").as_bytes());
        n += 1;
        let t = Instant::now();
        cluster
            .put_cf(CF_DEFAULT, &key, &value)
            .unwrap_or_else(|e| panic!("put failed: {e}"));
        if measuring.load(Ordering::Relaxed) {
            latencies.push(t.elapsed());
        }
    }
    latencies
}

/// Keys of region `i` start with this (region 0 also owns everything below `region_prefix(1)`).
fn region_prefix(i: usize) -> Vec<u8> {
    format!("r{i:03}").into_bytes()
}

fn metrics(cluster: &Cluster) -> Vec<MetricsSnapshot> {
    cluster
        .store_ids()
        .into_iter()
        .map(|s| cluster.store_status(s).expect("store runs").metrics)
        .collect()
}

fn delta(b: &MetricsSnapshot, a: &MetricsSnapshot) -> MetricsSnapshot {
    MetricsSnapshot {
        raft_writes: a.raft_writes - b.raft_writes,
        raft_fsyncs: a.raft_fsyncs - b.raft_fsyncs,
        proposals: a.proposals - b.proposals,
        proposed_commands: a.proposed_commands - b.proposed_commands,
        proposals_synced: a.proposals_synced - b.proposals_synced,
        read_indexes: a.read_indexes - b.read_indexes,
        reads: a.reads - b.reads,
        lease_reads: a.lease_reads - b.lease_reads,
        apply_writes: a.apply_writes - b.apply_writes,
        entries_applied: a.entries_applied - b.entries_applied,
        messages_sent: a.messages_sent - b.messages_sent,
    }
}

fn report(row: &Row, out: &Outcome) {
    let secs = out.elapsed.as_secs_f64();
    let mut lat = out.latencies.clone();
    lat.sort_unstable();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let sum = |f: fn(&MetricsSnapshot) -> u64| out.stores.iter().map(f).sum::<u64>();
    let fsyncs = sum(|m| m.raft_fsyncs);
    let proposals = sum(|m| m.proposals);
    let commands = sum(|m| m.proposed_commands);
    let synced = sum(|m| m.proposals_synced);
    // Leaders propose; followers fsync appends. Proposals (raft entries) and client commands
    // (several merged into one entry) per fsync count the fsyncs of the stores that proposed.
    let leader_fsyncs: u64 = out
        .stores
        .iter()
        .filter(|m| m.proposals > 0)
        .map(|m| m.raft_fsyncs)
        .sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    println!(
        "{:>7} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>10.0} {:>11.2} {:>10.2} {:>12.2} {:>11.2}",
        row.regions,
        row.clients,
        out.puts as f64 / secs,
        pct(0.50),
        pct(0.99),
        fsyncs as f64 / secs,
        ratio(fsyncs, out.puts),
        ratio(commands, proposals),
        ratio(synced, leader_fsyncs),
        ratio(commands, leader_fsyncs),
    );
    for (i, m) in out.stores.iter().enumerate() {
        println!(
            "        store {}: {:.0} fsyncs/s, {:.0} proposals/s, {:.2} proposals per fsync",
            i + 1,
            m.raft_fsyncs as f64 / secs,
            m.proposals as f64 / secs,
            m.proposals_per_fsync()
        );
    }
}
