//! The harness against the real runtime: routing across regions, failover, restarts, and the
//! region errors `call_command_on_leader` hands back.

use std::time::Duration;

use proto::metapb::RegionEpoch;
use raft_core::engine::CF_DEFAULT;

use super::*;
use crate::cmd;

fn started(count: usize, split_keys: &[&[u8]]) -> Cluster {
    crate::init_logging();
    let keys: Vec<Vec<u8>> = split_keys.iter().map(|k| k.to_vec()).collect();
    let c = Cluster::with_regions(count, ClusterConfig::new_test_config(), &keys).unwrap();
    c.start().unwrap();
    c
}

#[test]
fn requests_route_by_key_and_scans_span_regions() {
    let _serial = crate::serial();
    let c = started(3, &[b"b", b"d"]);
    let ids: Vec<u64> = [&b"a"[..], b"b", b"c", b"d", b"z"]
        .iter()
        .map(|k| c.get_region(k).id)
        .collect();
    assert_eq!(ids[0], 1);
    assert_eq!(ids[1], ids[2], "b and c share [b, d)");
    assert!(ids[0] != ids[1] && ids[1] != ids[3] && ids[3] == ids[4]);
    for k in ["a", "b", "c", "d", "e"] {
        c.must_put(k.as_bytes(), format!("v{k}").as_bytes());
    }
    let all: Vec<String> = c
        .scan(b"", b"")
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(&k),
                String::from_utf8_lossy(&v)
            )
        })
        .collect();
    assert_eq!(all, ["a=va", "b=vb", "c=vc", "d=vd", "e=ve"]);
    let middle: Vec<Vec<u8>> = c.scan(b"a1", b"d").into_iter().map(|(k, _)| k).collect();
    assert_eq!(middle, vec![b"b".to_vec(), b"c".to_vec()]);
    c.must_delete(b"c");
    c.must_get_none(b"c");
    assert_eq!(c.scan_cf(CF_DEFAULT, b"b", b"e").len(), 2);
    // Every store applied every region's writes.
    for s in c.store_ids() {
        c.must_get_equal_on(s, b"e", b"ve");
        c.must_get_none_on(s, b"c");
    }
}

#[test]
fn requests_fail_over_when_the_leader_stops_and_data_survives_restart() {
    let _serial = crate::serial();
    let c = started(3, &[]);
    c.must_put(b"k", b"v1");
    let leader = c.leader_of_region(1).expect("a leader");
    c.stop_store(leader.store_id);
    assert!(!c.is_running(leader.store_id));
    assert!(matches!(
        c.router(leader.store_id),
        Err(Error::StoreNotRunning(_))
    ));
    c.must_put(b"k", b"v2");
    c.must_get_equal(b"k", b"v2");
    c.start_store(leader.store_id).unwrap();
    c.must_get_equal_on(leader.store_id, b"k", b"v2");
    c.shutdown();
    assert!(c.running_store_ids().is_empty());
    c.start().unwrap();
    c.must_get_equal(b"k", b"v2");
}

#[test]
fn call_command_on_leader_returns_region_errors_to_the_caller() {
    let _serial = crate::serial();
    let c = started(3, &[b"m"]);
    let left = c.get_region(b"a");
    c.must_put(b"a", b"1");
    let leader = c.leader_of_region(left.id).expect("a leader");

    // Sent to a follower first: the NotLeader hint is followed and the Get succeeds.
    let follower = left
        .peers
        .iter()
        .copied()
        .find(|p| p.id != leader.id)
        .expect("three peers");
    c.leader_hints.lock().insert(left.id, follower);
    let resp = c
        .call_command_on_leader(
            cmd::request(&left, follower, vec![cmd::get(CF_DEFAULT, b"a")]),
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(resp.error().is_none(), "{:?}", resp.error());
    assert_eq!(resp.response.responses[0].get.as_ref().unwrap().value, b"1");

    // A key of the other region: KeyNotInRegion comes back instead of being retried.
    let resp = c
        .call_command_on_leader(
            cmd::request(&left, leader, vec![cmd::get(CF_DEFAULT, b"x")]),
            Duration::from_secs(10),
        )
        .unwrap();
    assert!(
        resp.error()
            .and_then(|e| e.key_not_in_region.as_ref())
            .is_some(),
        "{:?}",
        resp.error()
    );

    // A stale epoch: EpochNotMatch with the current region.
    let mut stale = left.clone();
    stale.region_epoch = Some(RegionEpoch {
        conf_ver: 1,
        version: 0,
    });
    let resp = c
        .call_command_on_leader(
            cmd::request(&stale, leader, vec![cmd::get(CF_DEFAULT, b"a")]),
            Duration::from_secs(10),
        )
        .unwrap();
    let current = resp
        .error()
        .and_then(|e| e.epoch_not_match.as_ref())
        .map(|e| e.current_regions.clone())
        .unwrap_or_else(|| panic!("expected EpochNotMatch, got {:?}", resp.error()));
    assert!(current.iter().any(|r| r.id == left.id));
}

#[test]
fn bad_cluster_configs_are_refused() {
    let cfg = ClusterConfig::new_test_config();
    assert!(Cluster::new(0, cfg.clone()).is_err());
    assert!(Cluster::with_regions(3, cfg.clone(), &[b"b".to_vec(), b"a".to_vec()]).is_err());
    assert!(Cluster::with_regions(3, cfg, &[vec![]]).is_err());
}

#[test]
fn initial_regions_tile_the_key_space_with_unique_ids() {
    let rs = initial_regions(3, &[b"b".to_vec(), b"d".to_vec()]);
    assert_eq!(rs.len(), 3);
    assert_eq!(rs[0].id, 1);
    assert_eq!(
        rs[0].peers.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let ranges: Vec<(&[u8], &[u8])> = rs
        .iter()
        .map(|r| (r.start_key.as_slice(), r.end_key.as_slice()))
        .collect();
    assert_eq!(
        ranges,
        vec![(&b""[..], &b"b"[..]), (b"b", b"d"), (b"d", b"")]
    );
    let mut ids: Vec<u64> = rs[1..]
        .iter()
        .flat_map(|r| std::iter::once(r.id).chain(r.peers.iter().map(|p| p.id)))
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
    assert!(
        ids.iter().all(|id| *id > 3),
        "extra ids never collide with store or peer 1..=3"
    );
    for r in &rs {
        let stores: Vec<u64> = r.peers.iter().map(|p| p.store_id).collect();
        assert_eq!(stores, vec![1, 2, 3]);
    }
}
