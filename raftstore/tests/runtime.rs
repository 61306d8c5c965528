//! The store runtime end to end, in process: bootstrap, commands and their region errors,
//! replication, log GC, snapshots, restart, batching, shutdown.

mod runtime_util;

use std::sync::atomic::Ordering;
use std::time::Duration;

use proto::metapb::{Peer, RegionEpoch, Store};
use proto::raft_cmdpb::{AdminCmdType, AdminRequest, RaftCmdRequest, TransferLeaderRequest};
use raft_core::config::EngineConfig;
use raft_core::engine::Engines;
use raft_core::snap::SnapManager;
use raftstore::transport::Transport;
use raftstore::{Callback, Node, RaftstoreConfig};
use runtime_util::*;

fn cfg() -> RaftstoreConfig {
    RaftstoreConfig::new_test_config()
}

const WAIT: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct NoNetwork;

impl Transport for NoNetwork {
    fn send(&mut self, _msg: proto::raft_serverpb::RaftMessage) -> raftstore::Result<()> {
        Ok(())
    }
    fn flush(&mut self) {}
}

#[test]
fn single_store_bootstraps_through_the_scheduler_and_serves_commands() {
    let dir = tempfile::tempdir().unwrap();
    let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
    let snap_mgr = SnapManager::new(dir.path().join("snap")).unwrap();
    let pd = MockPd::new(false);
    let cfg = cfg();
    let (router, system) = raftstore::create_system(&cfg);
    let store = Store {
        address: "127.0.0.1:1".into(),
        ..Default::default()
    };
    let node = Node::start(
        system,
        router.clone(),
        cfg.clone(),
        store,
        engines.clone(),
        snap_mgr.clone(),
        NoNetwork,
        pd.clone(),
    )
    .unwrap();
    let store_id = node.store_id();
    assert!(store_id >= 1000, "store id comes from the scheduler");
    assert!(raftstore::pd_client::PdClient::is_cluster_bootstrapped(&*pd).unwrap());
    wait_until("leader", WAIT, || {
        node.status().regions.first().is_some_and(|r| r.is_leader)
    });
    let status = node.status();
    let region = status.regions[0].region.clone();
    assert_eq!(region.peers.len(), 1);
    assert_eq!(region.peers[0].store_id, store_id);
    wait_until("first heartbeat", WAIT, || {
        pd.leader_of(region.id).is_some()
    });

    let header = proto::raft_cmdpb::RaftRequestHeader {
        region_id: region.id,
        peer: Some(region.peers[0]),
        region_epoch: region.region_epoch,
        ..Default::default()
    };
    let req = |requests| RaftCmdRequest {
        header: Some(header.clone()),
        requests,
        ..Default::default()
    };
    let resp = router
        .execute_blocking(req(vec![put(b"k1", b"v1"), put(b"k2", b"v2")]), WAIT)
        .unwrap();
    assert!(resp.error().is_none(), "{:?}", resp.error());
    assert_eq!(resp.response.responses.len(), 2);
    let resp = router
        .execute_blocking(req(vec![get(b"k1"), get(b"nope")]), WAIT)
        .unwrap();
    assert_eq!(
        resp.response.responses[0].get.as_ref().unwrap().value,
        b"v1"
    );
    assert!(resp.response.responses[1]
        .get
        .as_ref()
        .unwrap()
        .value
        .is_empty());
    router
        .execute_blocking(req(vec![delete(b"k1")]), WAIT)
        .unwrap();
    let resp = router.execute_blocking(req(vec![snap()]), WAIT).unwrap();
    let view = resp.snapshot.expect("snap request returns a snapshot");
    assert_eq!(view.get_value_cf("default", b"k1").unwrap(), None);
    assert_eq!(view.get_value_cf("default", b"k2").unwrap().unwrap(), b"v2");

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let resp = rt.block_on(router.execute(req(vec![get(b"k2")]))).unwrap();
    assert_eq!(
        resp.response.responses[0].get.as_ref().unwrap().value,
        b"v2"
    );

    let m = node.status().metrics;
    assert!(
        m.raft_fsyncs > 0 && m.proposals >= 2 && m.reads >= 3,
        "{m:?}"
    );
    node.stop();

    // Restart: same store id, same data, no second bootstrap.
    let (router, system) = raftstore::create_system(&cfg);
    let node = Node::start(
        system,
        router.clone(),
        cfg,
        Store::default(),
        engines,
        snap_mgr,
        NoNetwork,
        pd,
    )
    .unwrap();
    assert_eq!(node.store_id(), store_id);
    assert_eq!(node.status().regions.len(), 1);
    wait_until("leader after restart", WAIT, || {
        node.status().regions[0].is_leader
    });
    let resp = router
        .execute_blocking(req(vec![get(b"k2")]), WAIT)
        .unwrap();
    assert_eq!(
        resp.response.responses[0].get.as_ref().unwrap().value,
        b"v2"
    );
    node.stop();
}

#[test]
fn header_checks_produce_the_right_region_errors() {
    let mut c = Cluster::new(
        3,
        RaftstoreConfig {
            raft_entry_max_size: 4096,
            ..cfg()
        },
        b"b",
        b"y",
    );
    c.start_all();
    let leader = c.wait_leader(1);
    c.must_put(b"c", b"1");
    let follower = (1..=3).find(|s| *s != leader).unwrap();

    // Not leader, with the hint.
    let resp = c.call(follower, c.request(follower, vec![put(b"c", b"2")]));
    let nl = resp.error().and_then(|e| e.not_leader).expect("not leader");
    wait_until("follower knows the leader", WAIT, || {
        let resp = c.call(follower, c.request(follower, vec![get(b"c")]));
        resp.error()
            .and_then(|e| e.not_leader)
            .and_then(|nl| nl.leader)
            .is_some_and(|l| l.store_id == leader)
    });
    assert_eq!(nl.region_id, 1);

    // Store mismatch.
    let mut req = c.request(leader, vec![get(b"c")]);
    req.header.as_mut().unwrap().peer = Some(Peer {
        id: 9,
        store_id: 9,
        ..Default::default()
    });
    let e = c.call(leader, req).error().cloned().unwrap();
    assert_eq!(
        e.store_not_match
            .map(|s| (s.request_store_id, s.actual_store_id)),
        Some((9, leader))
    );

    // Region not found.
    let mut req = c.request(leader, vec![get(b"c")]);
    req.header.as_mut().unwrap().region_id = 77;
    let e = c.call(leader, req).error().cloned().unwrap();
    assert_eq!(e.region_not_found.map(|r| r.region_id), Some(77));

    // Stale epoch: the current region comes back.
    let mut req = c.request(leader, vec![put(b"c", b"3")]);
    req.header.as_mut().unwrap().region_epoch = Some(RegionEpoch {
        conf_ver: 1,
        version: 0,
    });
    let e = c.call(leader, req).error().cloned().unwrap();
    let regions = e.epoch_not_match.expect("epoch not match").current_regions;
    assert_eq!(regions, vec![c.current_region(leader)]);

    // Keys outside [b, y).
    for r in [put(b"a", b"x"), get(b"z")] {
        let e = c
            .call(leader, c.request(leader, vec![r]))
            .error()
            .cloned()
            .unwrap();
        let knr = e.key_not_in_region.expect("key not in region");
        assert_eq!(
            (
                knr.region_id,
                knr.start_key.as_slice(),
                knr.end_key.as_slice()
            ),
            (1, &b"b"[..], &b"y"[..])
        );
    }

    // Too large for one entry.
    let e = c
        .call(leader, c.request(leader, vec![put(b"c", &[7u8; 8192])]))
        .error()
        .cloned()
        .unwrap();
    assert!(e.raft_entry_too_large.is_some(), "{e:?}");

    // Malformed: mixed reads and writes, a split without keys, unsupported admin commands.
    let e = c
        .call(leader, c.request(leader, vec![put(b"c", b"1"), get(b"c")]))
        .error()
        .cloned()
        .unwrap();
    assert!(e.message.contains("cannot be mixed"), "{e:?}");
    let mut req = c.request(leader, vec![]);
    req.admin_request = Some(AdminRequest {
        cmd_type: AdminCmdType::BatchSplit as i32,
        ..Default::default()
    });
    let e = c.call(leader, req).error().cloned().unwrap();
    assert!(e.message.contains("without requests"), "{e:?}");
    let mut req = c.request(leader, vec![]);
    req.admin_request = Some(AdminRequest {
        cmd_type: AdminCmdType::PrepareMerge as i32,
        ..Default::default()
    });
    let e = c.call(leader, req).error().cloned().unwrap();
    assert!(e.message.contains("not supported"), "{e:?}");

    // Nothing of the refused writes got through.
    assert_eq!(c.must_get(b"c"), b"1");
}

#[test]
fn three_stores_replicate_compact_and_catch_up_by_snapshot() {
    let mut c = Cluster::new(
        3,
        RaftstoreConfig {
            raft_log_gc_count_limit: 10,
            raft_log_gc_threshold: 5,
            ..cfg()
        },
        b"",
        b"",
    );
    c.start_all();
    c.wait_leader(1);
    for i in 0..60u32 {
        c.must_put(format!("k{i:03}").as_bytes(), format!("v{i}").as_bytes());
    }
    for s in 1..=3 {
        wait_until("replicated", WAIT, || {
            c.engine_get(s, b"k059").as_deref() == Some(b"v59")
        });
    }
    // Every store compacted its log and stays within twice the limit.
    wait_until("compaction everywhere", WAIT, || {
        (1..=3).all(|s| {
            let r = c.nodes[&s].status().region(1).cloned().unwrap();
            r.truncated_index > 5 && r.applied_index - r.truncated_index <= 20
        })
    });

    // A stopped store misses entries that get compacted away: it needs a snapshot.
    let lagging = (1..=3).find(|s| Some(*s) != c.leader_store(1)).unwrap();
    c.stop(lagging);
    for i in 60..120u32 {
        c.must_put(format!("k{i:03}").as_bytes(), format!("v{i}").as_bytes());
    }
    let leader = c.wait_leader(1);
    wait_until("leader compacts past the lagging store", WAIT, || {
        c.nodes[&leader].status().region(1).unwrap().truncated_index > 70
    });
    c.start(lagging);
    wait_until("lagging store catches up", WAIT, || {
        c.engine_get(lagging, b"k119").as_deref() == Some(b"v119")
    });
    assert_eq!(c.engine_get(lagging, b"k000").as_deref(), Some(&b"v0"[..]));

    // Everything survives a restart of every store.
    for s in 1..=3 {
        c.stop(s);
    }
    c.start_all();
    c.wait_leader(1);
    assert_eq!(c.must_get(b"k100"), b"v100");
    c.must_put(b"after", b"restart");
    for s in 1..=3 {
        wait_until("replicated after restart", WAIT, || {
            c.engine_get(s, b"after").is_some()
        });
    }
}

#[test]
fn writes_and_reads_of_one_round_share_an_entry_and_a_read_index() {
    let mut c = Cluster::new(3, cfg(), b"", b"");
    c.start_all();
    let leader = c.wait_leader(1);
    c.must_put(b"warm", b"up");
    let router = c.router(leader);
    let before = c.nodes[&leader].status().metrics;

    // Block the leader's poller inside a flush, queue 50 writes, release it.
    c.net.close_gate(leader);
    let blocked = c.net.blocked_flushes.load(Ordering::SeqCst);
    wait_until("leader poller blocked", WAIT, || {
        c.net.blocked_flushes.load(Ordering::SeqCst) > blocked
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    for i in 0..50u32 {
        let tx = tx.clone();
        let req = c.request(leader, vec![put(format!("b{i:02}").as_bytes(), b"x")]);
        router
            .send_command(req, Callback::new(move |r| tx.send(r).unwrap()))
            .unwrap();
    }
    c.net.open_gate();
    for _ in 0..50 {
        let r = rx.recv_timeout(WAIT).unwrap();
        assert!(r.error().is_none(), "{:?}", r.error());
    }
    let after = c.nodes[&leader].status().metrics;
    assert_eq!(after.proposed_commands - before.proposed_commands, 50);
    assert!(
        after.proposals - before.proposals <= 2,
        "50 writes in {} entries",
        after.proposals - before.proposals
    );

    // Same for reads: one read index for the whole batch.
    let before = c.nodes[&leader].status().metrics;
    c.net.close_gate(leader);
    let blocked = c.net.blocked_flushes.load(Ordering::SeqCst);
    wait_until("leader poller blocked", WAIT, || {
        c.net.blocked_flushes.load(Ordering::SeqCst) > blocked
    });
    for i in 0..20u32 {
        let tx = tx.clone();
        let req = c.request(leader, vec![get(format!("b{i:02}").as_bytes())]);
        router
            .send_command(req, Callback::new(move |r| tx.send(r).unwrap()))
            .unwrap();
    }
    c.net.open_gate();
    for _ in 0..20 {
        let r = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(r.response.responses[0].get.as_ref().unwrap().value, b"x");
    }
    let after = c.nodes[&leader].status().metrics;
    assert_eq!(after.reads - before.reads, 20);
    assert!(
        after.read_indexes - before.read_indexes <= 2,
        "{} read indexes",
        after.read_indexes - before.read_indexes
    );
}

#[test]
fn leadership_moves_on_request_and_scheduler_sees_it() {
    let mut c = Cluster::new(3, cfg(), b"", b"");
    c.start_all();
    let leader = c.wait_leader(1);
    wait_until("scheduler learns the leader", WAIT, || {
        c.pd.leader_of(1).is_some_and(|l| l.store_id == leader)
    });
    let target = (1..=3).find(|s| *s != leader).unwrap();
    let mut req = c.request(leader, vec![]);
    req.admin_request = Some(AdminRequest {
        cmd_type: AdminCmdType::TransferLeader as i32,
        transfer_leader: Some(TransferLeaderRequest {
            peer: Some(Peer {
                id: target,
                store_id: target,
                ..Default::default()
            }),
            peers: vec![],
        }),
        ..Default::default()
    });
    let resp = c.call(leader, req);
    assert!(resp.error().is_none(), "{:?}", resp.error());
    wait_until("leader moved", WAIT, || c.leader_store(1) == Some(target));
    wait_until("scheduler sees the new leader", WAIT, || {
        c.pd.leader_of(1).is_some_and(|l| l.store_id == target)
    });

    // The same through a scheduler operator.
    let back = proto::pdpb::RegionHeartbeatResponse {
        region_id: 1,
        region_epoch: c.current_region(target).region_epoch,
        transfer_leader: Some(proto::pdpb::TransferLeader {
            peer: Some(Peer {
                id: leader,
                store_id: leader,
                ..Default::default()
            }),
            peers: vec![],
        }),
        ..Default::default()
    };
    c.pd.send_operator(back);
    wait_until("leader moved back", WAIT, || {
        c.leader_store(1) == Some(leader)
    });
    c.must_put(b"still", b"works");
}

#[test]
fn stopping_a_store_answers_pending_commands() {
    let mut c = Cluster::new(3, cfg(), b"", b"");
    c.start_all();
    let leader = c.wait_leader(1);
    c.must_put(b"a", b"1");
    // Without its followers the leader cannot commit: the write stays pending.
    for s in (1..=3).filter(|s| *s != leader) {
        c.net.isolate(s);
    }
    let (tx, rx) = crossbeam_channel::unbounded();
    let req = c.request(leader, vec![put(b"a", b"2")]);
    let router = c.router(leader);
    router
        .send_command(req.clone(), Callback::new(move |r| tx.send(r).unwrap()))
        .unwrap();
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "answered without a quorum"
    );
    c.stop(leader);
    let resp = rx.recv_timeout(WAIT).expect("answered at shutdown");
    let err = resp.error().expect("an error");
    assert!(err.message.contains("shutting down"), "{err:?}");
    // A stopped store's router refuses new commands the same way.
    let resp = router.execute_blocking(req, WAIT).unwrap();
    assert!(resp.error().unwrap().message.contains("shutting down"));
}

#[test]
fn a_store_without_the_region_gets_it_from_the_leader() {
    let mut c = Cluster::with_region_on(3, cfg(), b"", b"", &[1, 2]);
    c.start_all();
    c.wait_leader(1);
    c.must_put(b"k", b"v");
    // Store 3 has no peer yet: the leader's first heartbeat creates an empty one, which is
    // then initialized by a snapshot.
    wait_until("store 3 initialized", WAIT, || {
        c.nodes[&3]
            .status()
            .region(1)
            .is_some_and(|r| !r.region.peers.is_empty())
    });
    wait_until("store 3 has the data", WAIT, || {
        c.engine_get(3, b"k").as_deref() == Some(b"v")
    });
    c.must_put(b"k2", b"v2");
    wait_until("store 3 follows the log", WAIT, || {
        c.engine_get(3, b"k2").is_some()
    });
    // It survives a restart as an initialized peer.
    c.stop(3);
    c.start(3);
    assert_eq!(
        c.nodes[&3].status().region(1).unwrap().region.peers.len(),
        3
    );
}

#[test]
fn survives_partitions_drops_and_restarts() {
    use std::sync::atomic::AtomicBool;

    let gc_limit = 30;
    let mut c = Cluster::new(
        5,
        RaftstoreConfig {
            raft_log_gc_count_limit: gc_limit,
            ..cfg()
        },
        b"",
        b"",
    );
    c.start_all();
    c.wait_leader(1);
    let written: Vec<std::sync::Mutex<u32>> = (0..3).map(|_| std::sync::Mutex::new(0)).collect();
    for round in 0..2 {
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for (cli, count) in written.iter().enumerate() {
                let (c, stop) = (&c, &stop);
                s.spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let mut n = count.lock().unwrap();
                        let key = format!("{cli} {:08}", *n);
                        c.must_run_within(
                            vec![put(key.as_bytes(), format!("x {cli} {} y", *n).as_bytes())],
                            Duration::from_secs(60),
                        );
                        *n += 1;
                    }
                });
            }
            let (c, stop) = (&c, &stop);
            s.spawn(move || {
                let start = std::time::Instant::now();
                let mut i = 0u64;
                while start.elapsed() < Duration::from_secs(4) {
                    c.net.heal();
                    // A different split of the five stores every time, sometimes with loss.
                    let minority: Vec<u64> = vec![1 + (i % 5), 1 + ((i + 2) % 5)];
                    let majority: Vec<u64> = (1..=5).filter(|s| !minority.contains(s)).collect();
                    c.net.partition(&minority, &majority);
                    if i % 2 == 1 {
                        c.net.set_drop_percent(10);
                    }
                    std::thread::sleep(Duration::from_millis(600));
                    i += 1;
                }
                c.net.heal();
                stop.store(true, Ordering::SeqCst);
            });
        });
        // Crash every store, then check everything acknowledged is there, exactly.
        if round == 1 {
            for s in 1..=5 {
                c.stop(s);
            }
            c.start_all();
        }
        c.wait_leader(1);
        for (cli, count) in written.iter().enumerate() {
            let n = *count.lock().unwrap();
            assert!(n > 0, "client {cli} made no progress");
            for j in 0..n {
                let v = c.must_get(format!("{cli} {j:08}").as_bytes());
                assert_eq!(v, format!("x {cli} {j} y").as_bytes());
            }
        }
    }
    // Logs stay compacted everywhere.
    let leader = c.wait_leader(1);
    let applied = c.nodes[&leader].status().region(1).unwrap().applied_index;
    wait_until("every store caught up and compacted", WAIT, || {
        (1..=5).all(|s| {
            let r = c.nodes[&s].status().region(1).cloned().unwrap();
            r.applied_index >= applied && r.applied_index - r.truncated_index <= 2 * gc_limit
        })
    });
}
