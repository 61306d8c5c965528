//! Project 3B: multi-raft — leader transfer, membership changes (including removing the leader),
//! region splits, and the GenericTest rows with conf-change churn and splits.
//!
//! Membership and leadership change the way a scheduler changes them: an operator on the mock
//! scheduler is answered to the region leader's heartbeats until a heartbeat shows it done. The
//! GenericTest rows churn membership in **every** round (a random peer added or removed every
//! few hundred milliseconds) and split regions at 300 bytes. Each test holds `tests::serial()`
//! so the cluster tests of this binary run one at a time.
//!
//! Run with `make project3b` (`cargo test -p tests --test project3b`).

use proto::metapb::Peer;
use raft_core::engine::CF_DEFAULT;
use tests::transport::Partition;
use tests::{cmd, Cluster, ClusterConfig, GenericTest};

fn run(row: GenericTest) {
    let _serial = tests::serial();
    row.run();
}

fn peer(id: u64, store_id: u64) -> Peer {
    Peer {
        id,
        store_id,
        ..Default::default()
    }
}

fn no_violations(cluster: &Cluster) {
    let violations = cluster.pd().violations();
    assert!(violations.is_empty(), "epoch violations: {violations:?}");
}

/// Leadership of the first region goes to each of the five peers in turn, observed through
/// heartbeats, and the region keeps serving after every move.
#[test]
fn transfer_leader() {
    let _serial = tests::serial();
    tests::init_logging();
    let cluster = Cluster::new(5, ClusterConfig::new_test_config()).unwrap();
    cluster.start().unwrap();
    for round in 0..2 {
        for id in 1..=5 {
            cluster.must_transfer_leader(1, peer(id, id));
            let (k, v) = (format!("k{round}{id}"), format!("v{round}{id}"));
            cluster.must_put(k.as_bytes(), v.as_bytes());
            cluster.must_get_equal(k.as_bytes(), v.as_bytes());
        }
    }
    no_violations(&cluster);
}

/// Shrinks the region to one peer (removed stores see no new writes), re-adds a peer (it
/// catches up by snapshot), removes it again (its data is wiped), re-adds the store with a new
/// peer id, and grows back to five.
#[test]
fn basic_conf_change() {
    let _serial = tests::serial();
    tests::init_logging();
    let cluster = Cluster::new(5, ClusterConfig::new_test_config()).unwrap();
    cluster.start().unwrap();
    cluster.must_transfer_leader(1, peer(1, 1));
    for id in 2..=5 {
        cluster.must_remove_peer(1, peer(id, id));
    }
    let region = cluster.pd().region_info(1).unwrap();
    assert_eq!(region.meta.peers, vec![peer(1, 1)]);

    cluster.must_put(b"k1", b"v1");
    cluster.must_get_equal(b"k1", b"v1");
    for s in 2..=5 {
        assert_eq!(
            cluster.engine_get_cf(s, CF_DEFAULT, b"k1"),
            None,
            "store {s} was removed before the write"
        );
    }

    // Re-added (same id): it catches up, old and new writes alike.
    cluster.must_add_peer(1, peer(2, 2));
    cluster.must_put(b"k2", b"v2");
    cluster.must_get_equal(b"k2", b"v2");
    cluster.must_get_equal_on(2, b"k1", b"v1");
    cluster.must_get_equal_on(2, b"k2", b"v2");
    let epoch = cluster
        .pd()
        .region_info(1)
        .unwrap()
        .meta
        .region_epoch
        .unwrap();
    assert!(epoch.conf_ver > 1, "{epoch:?}");

    // Removed again: its copy of the region's data is deleted.
    cluster.must_remove_peer(1, peer(2, 2));
    cluster.must_get_none_on(2, b"k1");
    cluster.must_get_none_on(2, b"k2");
    cluster.must_wait("store 2 to drop its peer", || {
        cluster
            .store_status(2)
            .is_some_and(|s| s.region(1).is_none())
    });

    // Back with a new peer id, then everyone else.
    let new2 = cluster.alloc_peer(2);
    cluster.must_add_peer(1, new2);
    cluster.must_get_equal_on(2, b"k1", b"v1");
    cluster.must_get_equal_on(2, b"k2", b"v2");
    for id in 3..=5 {
        cluster.must_add_peer(1, cluster.alloc_peer(id));
    }
    cluster.must_put(b"k3", b"v3");
    for s in 1..=5 {
        cluster.must_get_equal_on(s, b"k3", b"v3");
        cluster.must_get_equal_on(s, b"k1", b"v1");
    }
    no_violations(&cluster);
}

/// Removing the leader's own peer works: leadership moves first, the old leader's store wipes
/// the region and sees no later writes. Also when it shrinks a two-peer group to one.
#[test]
fn conf_change_remove_leader() {
    let _serial = tests::serial();
    tests::init_logging();
    let cluster = Cluster::new(5, ClusterConfig::new_test_config()).unwrap();
    cluster.start().unwrap();
    cluster.must_put(b"k1", b"v1");

    cluster.must_transfer_leader(1, peer(1, 1));
    cluster.must_remove_peer(1, peer(1, 1));
    cluster.must_put(b"k2", b"v2");
    cluster.must_get_equal(b"k2", b"v2");
    cluster.must_get_none_on(1, b"k1");
    assert_eq!(cluster.engine_get_cf(1, CF_DEFAULT, b"k2"), None);

    // Back on store 1 with a new id; it catches up.
    let p1 = cluster.alloc_peer(1);
    cluster.must_add_peer(1, p1);
    cluster.must_get_equal_on(1, b"k1", b"v1");
    cluster.must_get_equal_on(1, b"k2", b"v2");

    // Down to two peers, {store 1, store 5}, led by store 1; then remove the leader.
    for id in 2..=4 {
        cluster.must_remove_peer(1, peer(id, id));
    }
    cluster.must_transfer_leader(1, p1);
    cluster.must_put(b"k3", b"v3");
    cluster.must_remove_peer(1, p1);
    let region = cluster.pd().region_info(1).unwrap();
    assert_eq!(region.meta.peers, vec![peer(5, 5)]);
    cluster.must_put(b"k4", b"v4");
    cluster.must_get_equal(b"k4", b"v4");
    cluster.must_get_equal_on(5, b"k3", b"v3");
    for k in [&b"k1"[..], b"k2", b"k3", b"k4"] {
        cluster.must_get_none_on(1, k);
    }

    // The group grows again from its last peer.
    for id in 1..=3 {
        cluster.must_add_peer(1, cluster.alloc_peer(id));
    }
    for s in 1..=3 {
        cluster.must_get_equal_on(s, b"k4", b"v4");
    }
    no_violations(&cluster);
}

/// Membership commands as a client sends them: duplicates, stale epochs and unrepresentable
/// changes are refused cleanly; a `ChangePeerV2` with two changes runs as a joint change that
/// the leader leaves by itself.
#[test]
fn membership_commands_and_joint_changes() {
    use proto::eraftpb::ConfChangeType;
    use proto::metapb::PeerRole;
    use proto::raft_cmdpb::{
        AdminCmdType, AdminRequest, ChangePeerRequest, ChangePeerV2Request, RaftCmdRequest,
    };

    let _serial = tests::serial();
    tests::init_logging();
    let cluster = Cluster::new(4, ClusterConfig::new_test_config()).unwrap();
    cluster.start().unwrap();
    cluster.must_transfer_leader(1, peer(1, 1));
    cluster.must_remove_peer(1, peer(4, 4));
    cluster.must_put(b"k1", b"v1");

    let command = |changes: Vec<(ConfChangeType, Peer)>| -> RaftCmdRequest {
        let region = cluster.pd().region_info(1).unwrap().meta;
        let leader = cluster.leader_of_region(1).unwrap();
        let mut req = cmd::request(&region, leader, vec![]);
        let reqs: Vec<ChangePeerRequest> = changes
            .into_iter()
            .map(|(t, p)| ChangePeerRequest {
                change_type: t as i32,
                peer: Some(p),
            })
            .collect();
        req.admin_request = Some(if reqs.len() == 1 {
            AdminRequest {
                cmd_type: AdminCmdType::ChangePeer as i32,
                change_peer: reqs.into_iter().next(),
                ..Default::default()
            }
        } else {
            AdminRequest {
                cmd_type: AdminCmdType::ChangePeerV2 as i32,
                change_peer_v2: Some(ChangePeerV2Request { changes: reqs }),
                ..Default::default()
            }
        });
        req
    };
    let call = |req: RaftCmdRequest| {
        cluster
            .call_command_on_leader(req, cluster.config().request_timeout)
            .unwrap()
    };

    // Refused: a duplicate add, a removal of a non-member, a stale epoch, a voter removed inside
    // a joint change.
    let resp = call(command(vec![(ConfChangeType::AddNode, peer(2, 2))]));
    let e = resp.error().cloned().expect("refused");
    assert!(e.message.contains("already a voter"), "{e:?}");
    let resp = call(command(vec![(ConfChangeType::RemoveNode, peer(4, 4))]));
    assert!(resp.error().unwrap().message.contains("not a member"));
    let mut stale = command(vec![(ConfChangeType::RemoveNode, peer(3, 3))]);
    stale
        .header
        .as_mut()
        .unwrap()
        .region_epoch
        .as_mut()
        .unwrap()
        .conf_ver -= 1;
    assert!(call(stale).error().unwrap().epoch_not_match.is_some());
    let new4 = cluster.alloc_peer(4);
    let resp = call(command(vec![
        (ConfChangeType::RemoveNode, peer(3, 3)),
        (ConfChangeType::AddNode, new4),
    ]));
    assert!(resp.error().unwrap().message.contains("demote it first"));

    // A joint change: store 4 joins as a voter while peer 3 becomes a learner.
    let conf_ver = cluster
        .pd()
        .region_info(1)
        .unwrap()
        .meta
        .region_epoch
        .unwrap()
        .conf_ver;
    let resp = call(command(vec![
        (ConfChangeType::AddNode, new4),
        (ConfChangeType::AddLearnerNode, peer(3, 3)),
    ]));
    assert!(resp.error().is_none(), "{:?}", resp.error());
    cluster.must_wait("the joint state to be left", || {
        cluster.pd().region_info(1).is_some_and(|r| {
            let role = |id| r.meta.peers.iter().find(|p| p.id == id).map(|p| p.role());
            r.meta.region_epoch.unwrap().conf_ver == conf_ver + 3
                && role(3) == Some(PeerRole::Learner)
                && role(new4.id) == Some(PeerRole::Voter)
        })
    });
    // The learner still gets the data; the new voter catches up.
    cluster.must_put(b"k2", b"v2");
    for s in 1..=4 {
        cluster.must_get_equal_on(s, b"k1", b"v1");
        cluster.must_get_equal_on(s, b"k2", b"v2");
    }
    // A learner cannot lead.
    let leader = cluster.leader_of_region(1).unwrap();
    let mut req = cmd::request(&cluster.pd().region_info(1).unwrap().meta, leader, vec![]);
    req.admin_request = Some(AdminRequest {
        cmd_type: AdminCmdType::TransferLeader as i32,
        transfer_leader: Some(proto::raft_cmdpb::TransferLeaderRequest {
            peer: Some(peer(3, 3)),
            peers: vec![],
        }),
        ..Default::default()
    });
    assert!(call(req).error().unwrap().message.contains("not a voter"));
    no_violations(&cluster);
}

/// A region splits while one store is cut off: the halves tile the old range, a key sent to
/// the wrong half gets `KeyNotInRegion`, and the cut-off store catches up with every region.
#[test]
fn one_split() {
    let _serial = tests::serial();
    tests::init_logging();
    let mut cfg = ClusterConfig::new_test_config();
    cfg.raftstore.region_max_size = 800;
    cfg.raftstore.region_split_size = 500;
    let cluster = Cluster::new(5, cfg).unwrap();
    cluster.start().unwrap();
    cluster.must_put(b"k0000", b"v0");
    let region = cluster.get_region(b"k0000");
    assert!(region.start_key.is_empty() && region.end_key.is_empty());

    // Keep the leader on the majority side.
    cluster.must_transfer_leader(1, peer(1, 1));
    cluster.add_filter(Partition::new([vec![1, 2, 3, 4], vec![5]]));
    let key = |i: u32| format!("k{i:04}").into_bytes();
    let value = |i: u32| format!("value-{i:04}-padding").into_bytes();
    for i in 0..100 {
        cluster.must_put(&key(i), &value(i));
    }
    let (left, right) = cluster.must_wait_split_between(&key(0), &key(99));
    assert!(left.end_key <= right.start_key, "{left:?} {right:?}");
    let regions = cluster.must_tile_key_space();
    assert!(regions.len() >= 2, "{regions:?}");
    for r in &regions {
        assert!(
            r.region_epoch.unwrap().version > 1,
            "region {r:?} came from a split"
        );
    }

    // A key of the right half sent to the left half.
    let leader = cluster.leader_of_region(left.id).unwrap();
    let req = cmd::request(&left, leader, vec![cmd::get(CF_DEFAULT, &key(99))]);
    let resp = cluster
        .call_command_on_leader(req, cluster.config().request_timeout)
        .unwrap();
    let err = resp.error().cloned().expect("a region error");
    let knr = err.key_not_in_region.expect("key not in region");
    assert_eq!(knr.key, key(99));
    assert_eq!(knr.region_id, left.id);

    // Healed: store 5 applies the splits from the log and ends with every region and key.
    cluster.clear_filters();
    cluster.must_wait("store 5 to host every region", || {
        cluster.store_status(5).is_some_and(|s| {
            regions.iter().all(|r| {
                s.region(r.id)
                    .is_some_and(|x| x.region.region_epoch.is_some())
            })
        })
    });
    for i in 0..100 {
        cluster.must_get_equal_on(5, &key(i), &value(i));
    }
    for i in 0..100 {
        cluster.must_get_equal(&key(i), &value(i));
    }
    assert!(cluster.pd().split_reports() > 0);
    no_violations(&cluster);
}

/// A split asked for at chosen keys (what the `SplitRegion` RPC does), at several keys at once:
/// every resulting region gets a leader and serves its keys; a stale epoch is refused.
#[test]
fn split_at_keys() {
    let _serial = tests::serial();
    tests::init_logging();
    let cluster = Cluster::new(3, ClusterConfig::new_test_config()).unwrap();
    cluster.start().unwrap();
    for k in [&b"a"[..], b"c", b"e", b"g"] {
        cluster.must_put(k, k);
    }
    let region = cluster.get_region(b"a");
    let regions = cluster
        .try_split(&region, vec![b"b".to_vec(), b"d".to_vec(), b"f".to_vec()])
        .unwrap();
    let bounds: Vec<(&[u8], &[u8])> = regions
        .iter()
        .map(|r| (r.start_key.as_slice(), r.end_key.as_slice()))
        .collect();
    assert_eq!(
        bounds,
        vec![
            (&b""[..], &b"b"[..]),
            (b"b", b"d"),
            (b"d", b"f"),
            (b"f", b"")
        ]
    );
    assert_eq!(
        regions[0].id, region.id,
        "the original region keeps the left part"
    );
    let stale = cluster.try_split(&region, vec![b"z".to_vec()]).unwrap_err();
    match stale {
        tests::Error::Region(e) => assert!(e.epoch_not_match.is_some(), "{e:?}"),
        other => panic!("{other:?}"),
    }
    cluster.must_tile_key_space();
    for k in [&b"a"[..], b"c", b"e", b"g"] {
        cluster.must_get_equal(k, k);
    }
    cluster.must_put(b"h", b"h");
    cluster.must_get_equal(b"h", b"h");
    no_violations(&cluster);
}

#[test]
fn conf_change_recover() {
    run(GenericTest::new(1).crash().confchange());
}

#[test]
fn conf_change_recover_many_clients() {
    run(GenericTest::new(20).crash().confchange());
}

#[test]
fn conf_change_unreliable() {
    run(GenericTest::new(5).unreliable().confchange());
}

#[test]
fn conf_change_unreliable_recover() {
    run(GenericTest::new(5).unreliable().crash().confchange());
}

#[test]
fn conf_change_snapshot_unreliable_recover() {
    run(GenericTest::new(5)
        .unreliable()
        .crash()
        .max_raft_log(100)
        .confchange());
}

#[test]
fn conf_change_snapshot_unreliable_recover_concurrent_partition() {
    run(GenericTest::new(5)
        .unreliable()
        .crash()
        .partitions()
        .max_raft_log(100)
        .confchange());
}

#[test]
fn split_recover() {
    run(GenericTest::new(1).crash().split());
}

#[test]
fn split_recover_many_clients() {
    run(GenericTest::new(20).crash().split());
}

#[test]
fn split_unreliable() {
    run(GenericTest::new(5).unreliable().split());
}

#[test]
fn split_unreliable_recover() {
    run(GenericTest::new(5).unreliable().crash().split());
}

#[test]
fn split_conf_change_snapshot_unreliable_recover() {
    run(GenericTest::new(5)
        .unreliable()
        .crash()
        .max_raft_log(100)
        .confchange()
        .split());
}

#[test]
fn split_conf_change_snapshot_unreliable_recover_concurrent_partition() {
    run(GenericTest::new(5)
        .unreliable()
        .crash()
        .partitions()
        .max_raft_log(100)
        .confchange()
        .split());
}
