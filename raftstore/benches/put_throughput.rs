//! Put throughput of 3 in-process stores with durable (synced) raft logs, for 1 and for 64
//! regions: puts/s, fsyncs/s, proposals per fsync, commands per entry. Clients call the
//! leaders' routers directly (no gRPC), so this measures the store runtime alone.
//!
//! `cargo bench -p raftstore --bench put_throughput` (env: `SECS` per case, default 10;
//! `CLIENTS`, default 64; `REGIONS`, default "1,64"; `POOL` / `APPLY_POOL`, poller and apply
//! threads per store, default 1).

#[path = "../tests/runtime_util/mod.rs"]
mod runtime_util;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use raftstore::{MetricsSnapshot, RaftstoreConfig};
use runtime_util::{put, wait_until, Cluster};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn totals(c: &Cluster) -> MetricsSnapshot {
    let mut t = MetricsSnapshot::default();
    for n in c.nodes.values() {
        let m = n.status().metrics;
        t.raft_fsyncs += m.raft_fsyncs;
        t.proposals += m.proposals;
        t.proposed_commands += m.proposed_commands;
        t.proposals_synced += m.proposals_synced;
        t.apply_writes += m.apply_writes;
        t.entries_applied += m.entries_applied;
    }
    t
}

fn run(regions: u64, clients: usize, secs: u64) {
    let cfg = RaftstoreConfig {
        // Production-like ticks: elections must not fire under load.
        raft: raft_core::config::RaftConfig {
            base_tick_interval_ms: 100,
            ..RaftstoreConfig::new_test_config().raft
        },
        raft_log_gc_count_limit: 10_000,
        raft_log_gc_tick_interval: Duration::from_secs(1),
        pd_heartbeat_tick_interval: Duration::from_secs(1),
        split_region_check_tick_interval: Duration::from_secs(1),
        store_pool_size: env("POOL", "1").parse().expect("POOL"),
        apply_pool_size: env("APPLY_POOL", "1").parse().expect("APPLY_POOL"),
        ..RaftstoreConfig::new_test_config()
    };
    let mut c = Cluster::with_split_regions(3, cfg, regions);
    c.start_all();
    wait_until("leaders", Duration::from_secs(60), || {
        (1..=regions).all(|r| c.leader_store(r).is_some())
    });
    let leaders: RwLock<HashMap<u64, u64>> = RwLock::new(
        (1..=regions)
            .map(|r| (r, c.leader_store(r).unwrap()))
            .collect(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let before = totals(&c);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let c = &c;
    let leaders = &leaders;
    rt.block_on(async {
        let mut tasks = vec![];
        for cli in 0..clients {
            let routers: HashMap<u64, raftstore::Router> =
                (1..=3).map(|s| (s, c.router(s))).collect();
            let headers: HashMap<(u64, u64), proto::raft_cmdpb::RaftRequestHeader> = (1..=regions)
                .flat_map(|r| (1..=3).map(move |s| (r, s)))
                .map(|(r, s)| {
                    let region = c.nodes[&s].status().region(r).unwrap().region.clone();
                    let peer = *region.peers.iter().find(|p| p.store_id == s).unwrap();
                    let h = proto::raft_cmdpb::RaftRequestHeader {
                        region_id: r,
                        peer: Some(peer),
                        region_epoch: region.region_epoch,
                        ..Default::default()
                    };
                    ((r, s), h)
                })
                .collect();
            let (done, errors) = (done.clone(), errors.clone());
            tasks.push(async move {
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let region = 1 + (cli as u64 + i) % regions;
                    let key = format!("r{:03}-{cli}-{i}", region - 1);
                    let store = leaders.read()[&region];
                    let req = proto::raft_cmdpb::RaftCmdRequest {
                        header: Some(headers[&(region, store)].clone()),
                        requests: vec![put(key.as_bytes(), &[b'v'; 128])],
                        ..Default::default()
                    };
                    match routers[&store].execute(req).await {
                        Ok(r) if r.error().is_none() => {
                            done.fetch_add(1, Ordering::Relaxed);
                            i += 1;
                        }
                        Ok(r) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if let Some(l) = r
                                .error()
                                .and_then(|e| e.not_leader)
                                .and_then(|nl| nl.leader)
                            {
                                leaders.write().insert(region, l.store_id);
                            } else {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
        futures::future::join_all(tasks).await;
    });
    let elapsed = start.elapsed().as_secs_f64();
    let after = totals(c);
    let puts = done.load(Ordering::Relaxed) as f64;
    let fsyncs = (after.raft_fsyncs - before.raft_fsyncs) as f64;
    let proposals = (after.proposals - before.proposals) as f64;
    let commands = (after.proposed_commands - before.proposed_commands) as f64;
    let synced = (after.proposals_synced - before.proposals_synced) as f64;
    // Every put needs an fsync on each of the 3 stores: puts per (fsyncs / 3) is how many puts
    // one group-committed fsync carried on average.
    println!(
        "regions={regions:<3} clients={clients:<4} puts/s={:>8.0} fsyncs/s(3 stores)={:>6.0} \
         puts/fsync={:>6.2} proposals/leader-fsync={:>5.2} puts/entry={:>5.2} errors={}",
        puts / elapsed,
        fsyncs / elapsed,
        if fsyncs > 0.0 {
            puts * 3.0 / fsyncs
        } else {
            0.0
        },
        if fsyncs > 0.0 {
            synced * 3.0 / fsyncs
        } else {
            0.0
        },
        if proposals > 0.0 {
            commands / proposals
        } else {
            0.0
        },
        errors.load(Ordering::Relaxed)
    );
}

fn main() {
    let secs: u64 = env("SECS", "10").parse().expect("SECS");
    let clients: usize = env("CLIENTS", "64").parse().expect("CLIENTS");
    for regions in env("REGIONS", "1,64").split(',') {
        run(regions.trim().parse().expect("REGIONS"), clients, secs);
    }
}
