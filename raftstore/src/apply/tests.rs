//! Unit tests of the applier: write order, epoch checks, log compaction, conf changes and
//! splits at apply.

use std::sync::mpsc;

use proto::metapb::RegionEpoch;
use proto::raft_cmdpb::{CompactLogRequest, PutRequest, RaftRequestHeader, Request};
use raft_core::config::EngineConfig;
use raft_core::engine::{KvEngine as _, Peekable};
use raft_core::storage::state;
use raft_core::Proposal;

use super::*;
use crate::msg::Callback;

fn region() -> Region {
    Region {
        id: 1,
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![proto::metapb::Peer {
            id: 1,
            store_id: 1,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn put_cmd(key: &[u8], version: u64) -> RaftCmdRequest {
    RaftCmdRequest {
        header: Some(RaftRequestHeader {
            region_id: 1,
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version,
            }),
            ..Default::default()
        }),
        requests: vec![Request {
            cmd_type: CmdType::Put as i32,
            put: Some(PutRequest {
                cf: String::new(),
                key: key.to_vec(),
                value: b"v".to_vec(),
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn entry(index: u64, cmd: &RaftCmdRequest) -> Entry {
    Entry {
        index,
        term: 6,
        data: cmd.encode_to_vec().into(),
        ..Default::default()
    }
}

/// (index, response, value of `k<index>` in the engine when the callback ran)
type Answer = (u64, RaftCmdResponse, Option<Vec<u8>>);

/// A proposal whose callback records its answer and what the engine held at that moment.
fn proposal(index: u64, engines: &Engines, tx: &mpsc::Sender<Answer>) -> Proposal<ProposalCb> {
    let (tx, kv) = (tx.clone(), engines.kv.clone());
    let key = keys::data_key(format!("k{index}").as_bytes());
    let cb = Callback::new(move |resp| {
        let seen = kv.get_value_cf(CF_DEFAULT, &key).unwrap();
        tx.send((index, resp.response, seen)).unwrap();
    });
    Proposal {
        index,
        term: 6,
        is_conf_change: false,
        callback: ProposalCb::new(cb, 1),
    }
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
    let cfg = crate::config::RaftstoreConfig::new_test_config();
    let (router, _system) = crate::system::create_system(&cfg);
    let metrics = router.registry.metrics().clone();
    let ctx = ApplyContext::new(engines.clone(), router, metrics);
    let delegate = ApplyDelegate::new(
        1,
        region(),
        RaftApplyState {
            applied_index: 5,
            truncated_state: Some(RaftTruncatedState { index: 5, term: 5 }),
            ..Default::default()
        },
    );
    let (tx, rx) = mpsc::channel();
    Fixture {
        _dir: dir,
        engines,
        ctx,
        delegate,
        tx,
        rx,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    engines: Engines,
    ctx: ApplyContext,
    delegate: ApplyDelegate,
    tx: mpsc::Sender<Answer>,
    rx: mpsc::Receiver<Answer>,
}

fn task(entries: Vec<Entry>, proposals: Vec<Proposal<ProposalCb>>) -> ApplyTask<ProposalCb> {
    ApplyTask {
        region_id: 1,
        peer_id: 1,
        snapshot: None,
        entries,
        proposals,
    }
}

#[test]
fn callbacks_are_answered_after_the_write_in_log_order() {
    let Fixture {
        engines,
        mut ctx,
        delegate: mut d,
        tx,
        rx,
        ..
    } = setup();
    let (c6, c7) = (put_cmd(b"k6", 1), put_cmd(b"k7", 1));
    d.handle_task(
        &mut ctx,
        task(vec![entry(6, &c6)], vec![proposal(6, &engines, &tx)]),
    );
    d.handle_task(
        &mut ctx,
        task(vec![entry(7, &c7)], vec![proposal(7, &engines, &tx)]),
    );
    assert!(rx.try_recv().is_err(), "answered before the write");
    ctx.flush();
    for want in [6, 7] {
        let (index, resp, seen) = rx.try_recv().unwrap();
        assert_eq!(index, want);
        assert!(resp.header.unwrap().error.is_none());
        assert_eq!(
            seen.as_deref(),
            Some(&b"v"[..]),
            "write visible when answered"
        );
    }
    let durable = state::load_apply_state(&engines.kv, 1).unwrap().unwrap();
    assert_eq!(durable.applied_index, 7);
    assert_eq!(d.apply_state.applied_index, 7);
}

#[test]
fn stale_epoch_at_apply_writes_nothing() {
    let Fixture {
        engines,
        mut ctx,
        delegate: mut d,
        tx,
        rx,
        ..
    } = setup();
    let stale = put_cmd(b"k6", 0);
    d.handle_task(
        &mut ctx,
        task(vec![entry(6, &stale)], vec![proposal(6, &engines, &tx)]),
    );
    ctx.flush();
    let (_, resp, seen) = rx.try_recv().unwrap();
    assert!(resp
        .header
        .unwrap()
        .error
        .unwrap()
        .epoch_not_match
        .is_some());
    assert_eq!(seen, None);
    // The entry still counts as applied.
    assert_eq!(
        state::load_apply_state(&engines.kv, 1)
            .unwrap()
            .unwrap()
            .applied_index,
        6
    );
}

#[test]
fn compact_log_moves_the_truncated_state_once() {
    let Fixture {
        engines,
        mut ctx,
        delegate: mut d,
        ..
    } = setup();
    let c6 = put_cmd(b"k6", 1);
    let compact = |index: u64| RaftCmdRequest {
        header: Some(RaftRequestHeader::default()),
        admin_request: Some(AdminRequest {
            cmd_type: AdminCmdType::CompactLog as i32,
            compact_log: Some(CompactLogRequest {
                compact_index: index,
                compact_term: 6,
                voter_replicated_index: 0,
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let entries = vec![
        entry(6, &c6),
        entry(7, &compact(6)),
        entry(8, &compact(6)),
        entry(9, &compact(20)),
    ];
    d.handle_task(&mut ctx, task(entries, vec![]));
    assert!(ctx.sync, "a compaction is written synced");
    ctx.flush();
    let durable = state::load_apply_state(&engines.kv, 1).unwrap().unwrap();
    assert_eq!(durable.applied_index, 9);
    let t = durable.truncated_state.unwrap();
    assert_eq!((t.index, t.term), (6, 6));
}

fn peer(id: u64, store_id: u64) -> proto::metapb::Peer {
    proto::metapb::Peer {
        id,
        store_id,
        ..Default::default()
    }
}

/// A conf change entry at `index` for `ChangePeer(change, peer)` proposed at `conf_ver`.
fn conf_change_entry(
    index: u64,
    conf_ver: u64,
    change: proto::eraftpb::ConfChangeType,
    p: proto::metapb::Peer,
) -> Entry {
    use protobuf::Message as _;
    let req = RaftCmdRequest {
        header: Some(RaftRequestHeader {
            region_id: 1,
            region_epoch: Some(RegionEpoch {
                conf_ver,
                version: 1,
            }),
            ..Default::default()
        }),
        admin_request: Some(AdminRequest {
            cmd_type: AdminCmdType::ChangePeer as i32,
            change_peer: Some(proto::raft_cmdpb::ChangePeerRequest {
                change_type: change as i32,
                peer: Some(p),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t = match change {
        proto::eraftpb::ConfChangeType::AddNode => raft::eraftpb::ConfChangeType::AddNode,
        proto::eraftpb::ConfChangeType::RemoveNode => raft::eraftpb::ConfChangeType::RemoveNode,
        proto::eraftpb::ConfChangeType::AddLearnerNode => {
            raft::eraftpb::ConfChangeType::AddLearnerNode
        }
    };
    let mut cc = raft::eraftpb::ConfChangeV2::default();
    cc.changes
        .push(raft_core::conf_change::conf_change_single(p.id, t));
    let mut e = Entry {
        index,
        term: 6,
        data: cc.write_to_bytes().unwrap().into(),
        context: req.encode_to_vec().into(),
        ..Default::default()
    };
    e.set_entry_type(EntryType::EntryConfChangeV2);
    e
}

#[test]
fn conf_changes_persist_the_region_and_duplicates_are_refused() {
    use proto::eraftpb::ConfChangeType::{AddNode, RemoveNode};
    let Fixture {
        engines,
        mut ctx,
        delegate: mut d,
        ..
    } = setup();
    let entries = vec![
        conf_change_entry(6, 1, AddNode, peer(2, 2)),
        // The scheduler re-sent the same change against the same epoch.
        conf_change_entry(7, 1, AddNode, peer(2, 2)),
    ];
    d.handle_task(&mut ctx, task(entries, vec![]));
    let res = ctx.results.pop().unwrap();
    assert_eq!(
        res.result.conf_changes.len(),
        1,
        "the duplicate is not applied"
    );
    assert_eq!(res.exec_results.len(), 1);
    ctx.flush();
    let region = state::load_region_state(&engines.kv, 1)
        .unwrap()
        .unwrap()
        .region
        .unwrap();
    assert_eq!(region.region_epoch.unwrap().conf_ver, 2);
    assert_eq!(
        region.peers.iter().map(|p| p.id).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(d.apply_state.applied_index, 7);

    // Removing this peer: tombstone with the new region, and nothing after it is applied.
    let entries = vec![
        conf_change_entry(8, 2, RemoveNode, peer(1, 1)),
        entry(9, &put_cmd(b"k9", 1)),
    ];
    d.handle_task(&mut ctx, task(entries, vec![]));
    let res = ctx.results.pop().unwrap();
    match &res.exec_results[..] {
        [ExecResult::ChangePeer {
            removed_self: true,
            region,
            ..
        }] => assert_eq!(region.peers.len(), 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(res.result.apply_state.applied_index, 8);
    ctx.flush();
    let local = state::load_region_state(&engines.kv, 1).unwrap().unwrap();
    assert_eq!(local.state(), proto::raft_serverpb::PeerState::Tombstone);
    assert_eq!(
        engines
            .kv
            .get_value_cf(CF_DEFAULT, &keys::data_key(b"k9"))
            .unwrap(),
        None
    );
}

fn split_cmd(version: u64, splits: &[(&[u8], u64, u64)]) -> RaftCmdRequest {
    RaftCmdRequest {
        header: Some(RaftRequestHeader {
            region_id: 1,
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version,
            }),
            ..Default::default()
        }),
        admin_request: Some(AdminRequest {
            cmd_type: AdminCmdType::BatchSplit as i32,
            splits: Some(proto::raft_cmdpb::BatchSplitRequest {
                requests: splits
                    .iter()
                    .map(|(k, region, peer)| proto::raft_cmdpb::SplitRequest {
                        split_key: k.to_vec(),
                        new_region_id: *region,
                        new_peer_ids: vec![*peer],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn batch_split_persists_every_region_in_one_synced_batch() {
    let Fixture {
        engines,
        mut ctx,
        delegate: mut d,
        tx,
        rx,
        ..
    } = setup();
    // Region 12 already has an initialized peer here (it got a snapshot first).
    let existing = Region {
        id: 12,
        start_key: b"d".to_vec(),
        peers: vec![peer(99, 1)],
        ..Default::default()
    };
    let mut wb = engines.kv.write_batch();
    state::write_peer_state(&mut wb, &existing, proto::raft_serverpb::PeerState::Normal).unwrap();
    engines.kv.write(&mut wb, true).unwrap();

    let cmd = split_cmd(1, &[(b"b", 10, 11), (b"d", 12, 13)]);
    let stale = split_cmd(1, &[(b"c", 20, 21)]);
    d.handle_task(
        &mut ctx,
        task(
            vec![entry(6, &cmd), entry(7, &stale)],
            vec![proposal(6, &engines, &tx), proposal(7, &engines, &tx)],
        ),
    );
    assert!(ctx.sync, "a split is written synced");
    let res = ctx.results.last().unwrap();
    let ExecResult::Split {
        derived,
        regions,
        new_regions,
    } = &res.exec_results[0]
    else {
        panic!("{:?}", res.exec_results)
    };
    assert_eq!(res.exec_results.len(), 1, "the stale split is refused");
    assert_eq!(
        (derived.start_key.as_slice(), derived.end_key.as_slice()),
        (&b""[..], &b"b"[..])
    );
    assert_eq!(
        regions.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![1, 10, 12]
    );
    assert!(regions.iter().all(|r| r.region_epoch.unwrap().version == 3));
    assert_eq!(regions[1].peers, vec![peer(11, 1)]);
    assert_eq!(
        new_regions
            .iter()
            .map(|(r, c)| (r.id, *c))
            .collect::<Vec<_>>(),
        vec![(10, true), (12, false)]
    );
    ctx.flush();
    let (_, resp, _) = rx.try_recv().unwrap();
    let got = resp.admin_response.unwrap().splits.unwrap().regions;
    assert_eq!(got.len(), 3);
    let (_, stale_resp, _) = rx.try_recv().unwrap();
    assert!(stale_resp
        .header
        .unwrap()
        .error
        .unwrap()
        .epoch_not_match
        .is_some());

    let r10 = state::load_region_state(&engines.kv, 10).unwrap().unwrap();
    assert_eq!(r10.region.unwrap().start_key, b"b");
    let a10 = state::load_apply_state(&engines.kv, 10).unwrap().unwrap();
    assert_eq!(a10.applied_index, 5);
    let r12 = state::load_region_state(&engines.kv, 12).unwrap().unwrap();
    assert_eq!(r12.region.unwrap().peers, vec![peer(99, 1)], "left alone");
    let r1 = state::load_region_state(&engines.kv, 1).unwrap().unwrap();
    assert_eq!(r1.region.unwrap().end_key, b"b");
}
