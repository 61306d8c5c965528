//! Region heartbeat processing (TinyKV project 3C, `cluster_test.go` scenarios), driven through
//! `Cluster::process_region_heartbeat` directly, plus persistence of the region cache.
//!
//! Fixture: stores 1–3; regions 0–2 with ranges `[i, i+1)`, three peers each on stores
//! `(i + j) % 3` (so some sit on store 0, which is not registered), epoch (2, 2), leader = first
//! peer. After every step the cache is compared with the expected regions: count, per-id and
//! per-key lookups, metadata, and per-store counts (recomputed from scratch and incremental).

use std::collections::HashMap;
use std::sync::Arc;

use proto::metapb::{self, Peer, RegionEpoch};
use proto::pdpb::RegionHeartbeatRequest;
use scheduler::cluster::Cluster;
use scheduler::core::RegionInfo;
use scheduler::Config;

struct Fixture {
    cluster: Arc<Cluster>,
    _dir: tempfile::TempDir,
}

fn open(dir: &std::path::Path) -> Arc<Cluster> {
    let mut c = Config::new_test_config();
    c.data_dir = dir.to_path_buf();
    Cluster::open(&c).unwrap()
}

/// A cluster with stores 1–3. Bootstrap needs a region; it covers all keys with epoch {0, 0} and
/// is evicted by the first heartbeat.
fn empty_cluster() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cluster = open(dir.path());
    let store = |id: u64| metapb::Store {
        id,
        address: format!("127.0.0.1:{}", 20160 + id),
        ..Default::default()
    };
    cluster
        .bootstrap(
            store(1),
            metapb::Region {
                id: 1000,
                region_epoch: None,
                peers: vec![Peer {
                    id: 1001,
                    store_id: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .unwrap();
    cluster.put_store(store(2)).unwrap();
    cluster.put_store(store(3)).unwrap();
    Fixture { cluster, _dir: dir }
}

fn test_regions() -> Vec<RegionInfo> {
    let (n, np) = (3u64, 3u64);
    (0..n)
        .map(|i| {
            let peers: Vec<Peer> = (0..np)
                .map(|j| Peer {
                    id: i * np + j,
                    store_id: (i + j) % np,
                    ..Default::default()
                })
                .collect();
            let mut r = RegionInfo::new(
                metapb::Region {
                    id: i,
                    start_key: vec![i as u8],
                    end_key: vec![i as u8 + 1],
                    region_epoch: Some(RegionEpoch {
                        conf_ver: 2,
                        version: 2,
                    }),
                    peers: peers.clone(),
                },
                Some(peers[0]),
            );
            r.approximate_size = 10 << 20;
            r
        })
        .collect()
}

/// Compares the cache with `expected`.
fn check_regions(cluster: &Cluster, expected: &[RegionInfo]) {
    let st = cluster.state();
    assert_eq!(st.regions.len(), expected.len(), "region count");
    let mut regions: HashMap<u64, u64> = HashMap::new();
    let mut leaders: HashMap<u64, u64> = HashMap::new();
    let mut pending: HashMap<u64, u64> = HashMap::new();
    for r in expected {
        let cached = st.regions.get(r.id()).expect("region cached");
        assert_eq!(**cached, *r, "region {} by id", r.id());
        let by_key = st.regions.search(r.start_key()).expect("region by key");
        assert_eq!(by_key.id(), r.id());
        for p in r.peers() {
            *regions.entry(p.store_id).or_default() += 1;
        }
        if let Some(l) = &r.leader {
            *leaders.entry(l.store_id).or_default() += 1;
        }
        for p in &r.pending_peers {
            *pending.entry(p.store_id).or_default() += 1;
        }
    }
    for store in 0..3u64 {
        let stats = st.regions.store_stats(store);
        let get = |m: &HashMap<u64, u64>| m.get(&store).copied().unwrap_or(0);
        assert_eq!(stats.region_count, get(&regions), "store {store} regions");
        assert_eq!(stats.leader_count, get(&leaders), "store {store} leaders");
        assert_eq!(
            stats.pending_peer_count,
            get(&pending),
            "store {store} pending"
        );
        assert_eq!(
            stats.region_count - stats.leader_count,
            get(&regions) - get(&leaders),
            "store {store} followers"
        );
    }
    let incremental: HashMap<_, _> = (0..3u64)
        .map(|s| (s, st.regions.store_stats(s)))
        .filter(|(_, v)| *v != Default::default())
        .collect();
    assert_eq!(st.regions.recompute_store_stats(), incremental);
}

fn setup() -> (Fixture, Vec<RegionInfo>) {
    let f = empty_cluster();
    let regions = test_regions();
    for (i, r) in regions.iter().enumerate() {
        f.cluster.process_region_heartbeat(r.clone()).unwrap();
        check_regions(&f.cluster, &regions[..=i]);
    }
    (f, regions)
}

fn bump(r: &RegionInfo, version: u64, conf_ver: u64) -> RegionInfo {
    let mut r = r.clone();
    let e = r.meta.region_epoch.as_mut().unwrap();
    e.version += version;
    e.conf_ver += conf_ver;
    r
}

#[test]
fn region_not_update() {
    let (f, regions) = setup();
    for r in &regions {
        f.cluster.process_region_heartbeat(r.clone()).unwrap();
        check_regions(&f.cluster, &regions);
    }
}

#[test]
fn region_update_version() {
    let (f, mut regions) = setup();
    for i in 0..regions.len() {
        regions[i] = bump(&regions[i], 1, 0);
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
    }
}

#[test]
fn region_with_stale_version() {
    let (f, mut regions) = setup();
    for i in 0..regions.len() {
        let origin = regions[i].clone();
        regions[i] = bump(&origin, 1, 0);
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
        // The old version is stale even with a higher conf_ver.
        let stale = bump(&origin, 0, 1);
        assert!(f.cluster.process_region_heartbeat(stale).is_err());
        check_regions(&f.cluster, &regions);
    }
}

#[test]
fn region_update_version_and_conf_ver() {
    let (f, mut regions) = setup();
    for i in 0..regions.len() {
        regions[i] = bump(&regions[i], 1, 1);
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
    }
}

#[test]
fn region_with_stale_conf_ver() {
    let (f, mut regions) = setup();
    for i in 0..regions.len() {
        let origin = regions[i].clone();
        regions[i] = bump(&origin, 0, 1);
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
        assert!(f.cluster.process_region_heartbeat(origin).is_err());
        check_regions(&f.cluster, &regions);
    }
}

#[test]
fn region_add_and_remove_pending_peer() {
    let (f, mut regions) = setup();
    for i in 0..regions.len() {
        let p = regions[i].peers()[(i + 1) % 3];
        regions[i].pending_peers = vec![p];
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
    }
    for i in 0..regions.len() {
        regions[i].pending_peers.clear();
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
    }
    let st = f.cluster.state();
    for s in 0..3 {
        assert_eq!(st.regions.store_stats(s).pending_peer_count, 0);
    }
}

#[test]
fn region_remove_and_add_back_peers() {
    let (f, mut regions) = setup();
    for i in 0..regions.len() {
        let origin = regions[i].clone();
        regions[i].meta.peers.truncate(1);
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
        regions[i] = origin;
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
    }
}

#[test]
fn region_change_leader_and_size() {
    let (f, mut regions) = setup();
    for i in 0..regions.len() {
        regions[i].leader = Some(regions[i].peers()[1]);
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
        regions[i].approximate_size = 144 << 20;
        regions[i].approximate_keys = 144_000;
        f.cluster
            .process_region_heartbeat(regions[i].clone())
            .unwrap();
        check_regions(&f.cluster, &regions);
    }
    let st = f.cluster.state();
    let total: u64 = (0..3).map(|s| st.regions.store_stats(s).leader_size).sum();
    assert_eq!(total, 3 * 144);
}

#[test]
fn region_lists_and_stores_of_regions() {
    let (f, regions) = setup();
    let listed = f.cluster.regions();
    assert_eq!(listed.len(), 3);
    for r in &listed {
        assert_eq!(r.meta, regions[r.id() as usize].meta);
        // Stores of a region are exactly its peers' stores; followers exclude the leader.
        let followers: Vec<u64> = r
            .store_ids()
            .filter(|s| Some(*s) != r.leader_store_id())
            .collect();
        assert_eq!(followers.len(), 2);
        for s in followers {
            assert_ne!(r.store_peer(s).unwrap().id, r.leader.as_ref().unwrap().id);
        }
    }
    // The scheduling view carries the same per-store statistics as the cache.
    let view = f.cluster.view(0);
    let st = f.cluster.state();
    for s in view.stores.values() {
        let stats = st.regions.store_stats(s.id);
        assert_eq!(s.region_count, stats.region_count);
        assert_eq!(s.leader_count, stats.leader_count);
        assert_eq!(s.region_size, stats.region_size);
        assert_eq!(s.leader_size, stats.leader_size);
    }
}

fn plain_region(id: u64, start: &[u8], end: &[u8], version: u64) -> RegionInfo {
    RegionInfo::new(
        metapb::Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version,
            }),
            peers: vec![],
        },
        None,
    )
}

fn id_at(cluster: &Cluster, key: &[u8]) -> Option<u64> {
    cluster.state().regions.search(key).map(|r| r.id())
}

#[test]
fn heartbeat_split_in_either_order() {
    let f = empty_cluster();
    let c = &f.cluster;
    // 1: [nil, nil)
    let r1 = plain_region(1, b"", b"", 1);
    c.process_region_heartbeat(r1).unwrap();
    assert_eq!(id_at(c, b"foo"), Some(1));

    // Split 1 into 2: [nil, m) and 1: [m, nil); the new left half reports first.
    let r1 = plain_region(1, b"m", b"", 2);
    let r2 = plain_region(2, b"", b"m", 1);
    c.process_region_heartbeat(r2).unwrap();
    assert_eq!(id_at(c, b"a"), Some(2));
    assert_eq!(id_at(c, b"z"), None, "[m, nil) is unknown until 1 reports");
    c.process_region_heartbeat(r1).unwrap();
    assert_eq!(id_at(c, b"z"), Some(1));

    // Split 1 into 3: [m, q) and 1: [q, nil); the shrunk original reports first.
    let r1 = plain_region(1, b"q", b"", 3);
    let r3 = plain_region(3, b"m", b"q", 1);
    c.process_region_heartbeat(r1).unwrap();
    assert_eq!(id_at(c, b"z"), Some(1));
    assert_eq!(id_at(c, b"a"), Some(2));
    assert_eq!(id_at(c, b"n"), None, "[m, q) is unknown until 3 reports");
    c.process_region_heartbeat(r3).unwrap();
    assert_eq!(id_at(c, b"n"), Some(3));
    assert_eq!(c.state().regions.len(), 3);
}

/// Splits every region in the middle of its (single-byte) range; the new right half gets a new
/// id. Both halves bump version.
fn split_regions(regions: &[RegionInfo], next_id: &mut u64) -> Vec<RegionInfo> {
    let mut out = Vec::new();
    for r in regions {
        let start = r.start_key().first().copied().unwrap_or(0);
        let end = r.end_key().first().copied().unwrap_or(255);
        let mid = start + (end - start) / 2;
        let v = r.version() + 1;
        let mut left = plain_region(r.id(), r.start_key(), &[mid], v);
        let mut right = plain_region(*next_id, &[mid], r.end_key(), v);
        *next_id += 1;
        left.meta.region_epoch.as_mut().unwrap().conf_ver = r.conf_ver();
        right.meta.region_epoch.as_mut().unwrap().conf_ver = r.conf_ver();
        out.push(left);
        out.push(right);
    }
    out
}

/// Merges neighbours pairwise: the left one absorbs the right one and bumps its version above
/// both.
fn merge_regions(regions: &[RegionInfo]) -> Vec<RegionInfo> {
    let mut out = Vec::new();
    for pair in regions.chunks(2) {
        if let [l, r] = pair {
            let v = l.version().max(r.version()) + 1;
            out.push(plain_region(l.id(), l.start_key(), r.end_key(), v));
        } else {
            out.push(pair[0].clone());
        }
    }
    out
}

fn heartbeat_regions(cluster: &Cluster, regions: &[RegionInfo]) {
    let check = |r: &RegionInfo| {
        let st = cluster.state();
        assert_eq!(st.regions.get(r.id()).map(|c| &c.meta), Some(&r.meta));
        assert_eq!(st.regions.search(r.start_key()).unwrap().id(), r.id());
        if let Some(&end) = r.end_key().first() {
            assert_eq!(st.regions.search(&[end - 1]).unwrap().id(), r.id());
        }
    };
    for r in regions {
        cluster.process_region_heartbeat(r.clone()).unwrap();
        check(r);
    }
    for r in regions {
        check(r);
        if let Some(&end) = r.end_key().first() {
            if let Some(next) = cluster.state().regions.search(&[end.saturating_add(1)]) {
                assert_ne!(next.id(), r.id());
            }
        }
    }
}

#[test]
fn region_split_and_merge_rounds() {
    let f = empty_cluster();
    let c = &f.cluster;
    // Regions without peers, leader or (here) a non-zero conf_ver, starting from the whole space.
    let mut regions = vec![plain_region(1, b"", b"", 1)];
    let mut next_id = 2;
    let n = 7;
    for _ in 0..n {
        regions = split_regions(&regions, &mut next_id);
        heartbeat_regions(c, &regions);
    }
    assert_eq!(c.state().regions.len(), 1 << n);
    for _ in 0..n {
        regions = merge_regions(&regions);
        heartbeat_regions(c, &regions);
    }
    assert_eq!(c.state().regions.len(), 1);
    for i in 0..2 * n {
        if (i + 1) % 3 == 0 {
            regions = merge_regions(&regions);
        } else {
            regions = split_regions(&regions, &mut next_id);
        }
        heartbeat_regions(c, &regions);
    }
    assert_eq!(c.state().regions.len(), regions.len());
}

#[test]
fn odd_heartbeats_are_tolerated_or_rejected_cleanly() {
    let f = empty_cluster();
    let c = &f.cluster;
    // Region id 0, no peers, no leader, no epoch: accepted.
    let r = RegionInfo::new(
        metapb::Region {
            id: 0,
            start_key: b"a".to_vec(),
            end_key: b"b".to_vec(),
            ..Default::default()
        },
        None,
    );
    c.process_region_heartbeat(r).unwrap();
    assert_eq!(id_at(c, b"a"), Some(0));
    // An inverted range is refused.
    assert!(c
        .process_region_heartbeat(plain_region(5, b"z", b"a", 1))
        .is_err());

    // From a store, a heartbeat must carry a region whose peers include the leader.
    let peer = Peer {
        id: 11,
        store_id: 1,
        ..Default::default()
    };
    let bad = [
        RegionHeartbeatRequest::default(),
        RegionHeartbeatRequest {
            region: Some(plain_region(7, b"x", b"y", 1).meta),
            leader: Some(peer),
            ..Default::default()
        },
        RegionHeartbeatRequest {
            region: Some(metapb::Region {
                id: 7,
                peers: vec![peer],
                ..Default::default()
            }),
            ..Default::default()
        },
        RegionHeartbeatRequest {
            region: Some(metapb::Region {
                id: 7,
                peers: vec![peer],
                ..Default::default()
            }),
            leader: Some(Peer {
                id: 12,
                store_id: 2,
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    for req in &bad {
        assert!(c.handle_region_heartbeat(req).is_err(), "{req:?}");
    }
}

#[test]
fn regions_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_id;
    {
        let c = open(dir.path());
        cluster_id = c.cluster_id();
        c.bootstrap(
            metapb::Store {
                id: 1,
                address: "127.0.0.1:20161".into(),
                ..Default::default()
            },
            metapb::Region {
                id: 2,
                peers: vec![Peer {
                    id: 3,
                    store_id: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .unwrap();
        // Split: 2 keeps [nil, m), 4 takes [m, nil); the bootstrap record of 2 is replaced.
        c.process_region_heartbeat(plain_region(4, b"m", b"", 1))
            .unwrap();
        c.process_region_heartbeat(plain_region(2, b"", b"m", 1))
            .unwrap();
    }
    let c = open(dir.path());
    assert_eq!(c.cluster_id(), cluster_id);
    assert!(c.is_bootstrapped());
    assert_eq!(c.get_store(1).unwrap().meta.address, "127.0.0.1:20161");
    assert_eq!(c.region_by_key(b"a").unwrap().id(), 2);
    assert_eq!(c.region_by_key(b"z").unwrap().id(), 4);
    assert_eq!(c.regions().len(), 2);
}
