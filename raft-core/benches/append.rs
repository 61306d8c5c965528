//! Appending and persisting entries through the real Ready path of a single-voter group:
//! propose `n` entries, collect the Ready into a raft-engine batch, write it (synced or not),
//! and finish the Ready. The synced numbers are the per-fsync baseline that group commit
//! (many groups' Readies, one fsync) improves on.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use proto::metapb::{Peer, Region};
use raft_core::config::{EngineConfig, RaftConfig};
use raft_core::engine::{Engines, KvEngine, WriteBatch};
use raft_core::snap::{SnapManager, ThreadSnapGenerator};
use raft_core::storage::state;
use raft_core::{PeerStorage, ProposalCallback, RaftGroup, StorageContext};

struct NoAnswer;

impl ProposalCallback for NoAnswer {
    fn fail(self, _err: raft_core::Error) {}
}

fn leader(dir: &std::path::Path) -> (Engines, RaftGroup<NoAnswer>) {
    let engines = Engines::open(dir, &EngineConfig::default()).unwrap();
    let region = Region {
        id: 1,
        peers: vec![Peer {
            id: 1,
            store_id: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
    state::write_initial_states(&mut kv_wb, &mut raft_wb, &region).unwrap();
    engines.kv.write(&mut kv_wb, true).unwrap();
    engines.raft.write(&mut raft_wb, true).unwrap();
    let snap_mgr = SnapManager::new(dir.join("snap")).unwrap();
    let ctx = StorageContext {
        engines: engines.clone(),
        snap_gen: ThreadSnapGenerator::new(snap_mgr.clone()),
        snap_mgr,
        entry_cache_limit: 1 << 20,
    };
    let cfg = RaftConfig::default();
    let mut group = RaftGroup::new(&cfg, PeerStorage::new(&ctx, region, 1).unwrap()).unwrap();
    group.campaign().unwrap();
    round(&engines, &mut group, true);
    assert!(group.is_leader());
    (engines, group)
}

/// One Ready: collect, write, finish. Committed entries are dropped (nothing applies them), so
/// only appending and persisting is measured.
fn round(engines: &Engines, group: &mut RaftGroup<NoAnswer>, sync: bool) {
    let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
    while let Some(collected) = group.collect_ready(&mut kv_wb, &mut raft_wb) {
        if !raft_wb.is_empty() {
            engines
                .raft
                .write(&mut raft_wb, sync && collected.must_sync)
                .unwrap();
        }
        let _ = group.on_persisted(collected);
    }
}

fn bench_append(c: &mut Criterion) {
    let payload = vec![0x5au8; 256];
    let mut g = c.benchmark_group("append_persist");
    g.sample_size(20);
    for sync in [false, true] {
        for n in [1u64, 16, 128] {
            let dir = tempfile::tempdir().unwrap();
            let (engines, mut group) = leader(dir.path());
            g.throughput(Throughput::Elements(n));
            let id = BenchmarkId::new(if sync { "sync" } else { "nosync" }, format!("{n}x256B"));
            g.bench_function(id, |b| {
                b.iter(|| {
                    for _ in 0..n {
                        if let Err(rejected) = group.propose(vec![], payload.clone(), NoAnswer) {
                            panic!("{:?}", rejected.error);
                        }
                    }
                    round(&engines, &mut group, sync);
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_append);
criterion_main!(benches);
