//! Scheduling end to end through the real gRPC server, with simulated stores that heartbeat and
//! carry out the commands they receive: the replica checker repairing a region after a store goes
//! down, balance-leader and balance-region spreading load (also onto a store that joins later),
//! and an offline store being drained.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use proto::metapb::{self, StoreState};
use proto::pdpb::*;
use scheduler::cluster::Outcome;

/// Peers per store and leaders per store, as the simulated stores see them.
fn load(sim: &SimCluster) -> (BTreeMap<u64, usize>, BTreeMap<u64, usize>) {
    let mut peers: BTreeMap<u64, usize> = sim.stores.keys().map(|&s| (s, 0)).collect();
    let mut leaders = peers.clone();
    for r in sim.regions.values() {
        for s in r.stores() {
            *peers.entry(s).or_default() += 1;
        }
        *leaders.entry(r.leader.store_id).or_default() += 1;
    }
    (peers, leaders)
}

fn spread(m: &BTreeMap<u64, usize>) -> usize {
    m.values().max().unwrap() - m.values().min().unwrap()
}

/// Every region has `replicas` peers on distinct stores, led by one of them.
fn well_formed(sim: &SimCluster, replicas: usize) -> bool {
    sim.regions.values().all(|r| {
        let mut stores = r.stores();
        stores.dedup();
        stores.len() == replicas && r.meta.peers.iter().any(|p| p.id == r.leader.id)
    })
}

/// Regions `0..n` over `[k00, k01), ...`, each on stores 1, 2, 3, all led from store 1.
fn add_regions(sim: &mut SimCluster, n: u64) {
    for i in 0..n {
        let start = if i == 0 {
            vec![]
        } else {
            format!("k{i:02}").into_bytes()
        };
        let end = if i == n - 1 {
            vec![]
        } else {
            format!("k{:02}", i + 1).into_bytes()
        };
        let base = 1000 + i * 10;
        sim.add_region(SimRegion::new(
            100 + i,
            &start,
            &end,
            &[(base + 1, 1), (base + 2, 2), (base + 3, 3)],
            1,
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_checker_replaces_peer_of_down_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path(), |c| {
        c.schedule.max_store_down_time = Duration::from_secs(2);
    }))
    .await;
    let cid = server.cluster().cluster_id();
    let mut client = connect(&server).await;
    bootstrap(&mut client, cid, 4, 1, 11).await;
    let mut sim = SimCluster::new(client, cid).await;
    for s in 1..=4 {
        sim.add_store(s).await;
    }
    sim.add_region(SimRegion::new(1, b"", b"", &[(11, 1), (12, 2), (13, 3)], 1));
    let cluster = server.cluster().clone();
    sim.run_until("region reported with 3 peers", |_| {
        cluster
            .region_by_id(1)
            .is_ok_and(|r| r.peers().len() == 3 && r.leader.is_some())
    })
    .await;
    // A healthy, balanced region gets no commands.
    for _ in 0..10 {
        sim.step().await;
    }
    assert_eq!(sim.applied, 0);

    sim.stores.get_mut(&3).unwrap().alive = false;
    sim.run_until("peer moved from down store 3 to store 4", |s| {
        s.regions[&1].stores() == vec![1, 2, 4] && s.regions[&1].pending.is_empty()
    })
    .await;
    // One more round reports the final state; the operator then completes.
    sim.step().await;
    let op = wait_for("replace-down-peer finished", || {
        let done = cluster.with_operators(|ops| {
            ops.last_finished(1)
                .filter(|f| f.outcome == Outcome::Finished)
                .map(|f| f.op.clone())
        });
        async move { done }
    })
    .await;
    assert_eq!(op.desc, "replace-down-peer");
    let st = cluster.status();
    let s3 = st.stores.iter().find(|s| s.id == 3).unwrap();
    assert!(s3.down);
    assert_eq!(s3.regions.region_count, 0);
    let r = cluster.region_by_id(1).unwrap();
    assert_eq!(r.conf_ver(), 3 + 2, "one add and one remove");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balance_spreads_leaders_and_regions_onto_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path(), |_| {})).await;
    let cid = server.cluster().cluster_id();
    let mut client = connect(&server).await;
    bootstrap(&mut client, cid, 3, 1, 11).await;
    let mut sim = SimCluster::new(client.clone(), cid).await;
    for s in 1..=3 {
        sim.add_store(s).await;
    }
    // Twelve regions replace the bootstrap region (their heartbeats evict it).
    add_regions(&mut sim, 12);

    sim.run_until("leaders spread over 3 stores", |s| {
        let (_, leaders) = load(s);
        spread(&leaders) <= 1
    })
    .await;
    assert!(well_formed(&sim, 3));
    let (peers, _) = load(&sim);
    assert!(
        peers.values().all(|&n| n == 12),
        "no region moved: {peers:?}"
    );

    // Store 4 joins.
    let resp = client
        .put_store(PutStoreRequest {
            header: header(cid),
            store: Some(metapb::Store {
                id: 4,
                address: store_addr(4),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.header.unwrap().error.is_none());
    sim.add_store(4).await;
    // 36 replicas of 10 MiB: moves stop once no store leads another by more than two regions,
    // which leaves at least 8 on the new store.
    sim.run_until("regions and leaders spread onto store 4", |s| {
        let (peers, leaders) = load(s);
        peers[&4] >= 8 && spread(&leaders) <= 2 && well_formed(s, 3)
    })
    .await;

    // The scheduler's statistics agree with the stores once they have reported.
    let cluster = server.cluster().clone();
    let (peers, _) = load(&sim);
    for _ in 0..3 {
        sim.step().await;
    }
    let st = cluster.status();
    for s in &st.stores {
        let expect = load(&sim).0[&s.id] as u64;
        assert_eq!(s.regions.region_count, expect, "store {}", s.id);
    }
    assert!(peers[&4] >= 8);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_store_is_drained_then_tombstoned() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path(), |c| {
        // Only the replica checker acts, so every move is a drain.
        c.schedule.schedulers.clear();
    }))
    .await;
    let cid = server.cluster().cluster_id();
    let mut client = connect(&server).await;
    bootstrap(&mut client, cid, 4, 1, 11).await;
    let mut sim = SimCluster::new(client.clone(), cid).await;
    for s in 1..=4 {
        sim.add_store(s).await;
    }
    add_regions(&mut sim, 6);
    let cluster = server.cluster().clone();
    sim.run_until("regions reported", |_| cluster.regions().len() == 6)
        .await;
    // Store 1 leads everything; draining it needs leader transfers too.
    cluster.set_store_state(1, StoreState::Offline).unwrap();
    assert!(
        cluster.set_store_state(1, StoreState::Tombstone).is_err(),
        "a store with regions cannot become tombstone"
    );
    sim.run_until("store 1 drained", |s| {
        load(s).0[&1] == 0 && well_formed(s, 3)
    })
    .await;
    sim.run_until("scheduler sees store 1 empty", |_| {
        cluster.state().regions.store_stats(1).region_count == 0
    })
    .await;
    cluster.set_store_state(1, StoreState::Tombstone).unwrap();
    let stores = client
        .get_all_stores(GetAllStoresRequest {
            header: header(cid),
            exclude_tombstone_stores: true,
        })
        .await
        .unwrap()
        .into_inner()
        .stores;
    assert_eq!(stores.len(), 3);
    // A tombstone store cannot register again.
    let resp = client
        .put_store(PutStoreRequest {
            header: header(cid),
            store: Some(metapb::Store {
                id: 1,
                address: store_addr(1),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.header.unwrap().error.unwrap().r#type,
        ErrorType::StoreTombstone as i32
    );
    server.shutdown().await.unwrap();
}
