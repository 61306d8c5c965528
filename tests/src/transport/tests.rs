//! The network on its own, with recording sinks in place of stores.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::eraftpb::{Message, MessageType, Snapshot, SnapshotMetadata};
use proto::metapb::{Peer, Region};
use proto::raft_serverpb::RaftMessage;
use raft_core::config::EngineConfig;
use raft_core::engine::{KvEngine, Mutable, RocksEngine, CF_DEFAULT};
use raft_core::keys;
use raft_core::snap::{generate_snapshot, SnapKey, SnapKind, SnapManager};
use raftstore::transport::{RaftMessageSink, Transport, TransportReport};
use tempfile::TempDir;

use super::*;
use crate::cluster::wait_for;

#[derive(Default)]
struct Recorder {
    delivered: Mutex<Vec<RaftMessage>>,
    reports: Mutex<Vec<TransportReport>>,
}

impl RaftMessageSink for Recorder {
    fn deliver(&self, msg: RaftMessage) -> raftstore::Result<()> {
        self.delivered.lock().push(msg);
        Ok(())
    }
}

impl Recorder {
    fn delivered_types(&self) -> Vec<(u64, MessageType)> {
        self.delivered
            .lock()
            .iter()
            .map(|m| (filter::from_store(m), filter::msg_type(m)))
            .collect()
    }
}

struct Net {
    net: SimNetwork,
    stores: Vec<Arc<Recorder>>,
    snap_mgrs: Vec<SnapManager>,
    _dir: TempDir,
}

/// A network with stores 1..=n registered, each recording what it receives and is told.
fn network(n: u64) -> Net {
    let dir = tempfile::tempdir().unwrap();
    let net = SimNetwork::new(7);
    let mut stores = vec![];
    let mut snap_mgrs = vec![];
    for id in 1..=n {
        let rec = Arc::new(Recorder::default());
        let r = rec.clone();
        let mgr = SnapManager::new(dir.path().join(format!("snap-{id}"))).unwrap();
        net.register(
            id,
            rec.clone(),
            Arc::new(move |rep| r.reports.lock().push(rep)),
            mgr.clone(),
        );
        stores.push(rec);
        snap_mgrs.push(mgr);
    }
    Net {
        net,
        stores,
        snap_mgrs,
        _dir: dir,
    }
}

fn msg(from: u64, to: u64, t: MessageType) -> RaftMessage {
    let peer = |s: u64| Peer {
        id: s * 10,
        store_id: s,
        ..Default::default()
    };
    RaftMessage {
        region_id: 1,
        from_peer: Some(peer(from)),
        to_peer: Some(peer(to)),
        message: Some(Message {
            msg_type: t as i32,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn eventually(cond: impl FnMut() -> bool) {
    assert!(
        wait_for(Duration::from_secs(10), cond),
        "condition not reached"
    );
}

#[test]
fn partitions_drop_across_sides_and_report_unreachable() {
    let n = network(3);
    n.net.add_filter(Partition::new([vec![1, 2], vec![3]]));
    let mut t = n.net.transport(1);
    t.send(msg(1, 2, MessageType::MsgAppend)).unwrap();
    t.send(msg(1, 3, MessageType::MsgAppend)).unwrap();
    t.flush();
    eventually(|| n.stores[1].delivered.lock().len() == 1 && n.stores[0].reports.lock().len() == 1);
    assert!(n.stores[2].delivered.lock().is_empty());
    assert_eq!(
        n.stores[0].reports.lock()[0],
        TransportReport::Unreachable {
            region_id: 1,
            to_peer_id: 30
        }
    );
    assert_eq!(n.net.stats().filtered, 1);

    n.net.clear_filters();
    t.send(msg(1, 3, MessageType::MsgHeartbeat)).unwrap();
    t.flush();
    eventually(|| n.stores[2].delivered.lock().len() == 1);
}

#[test]
fn a_stopped_store_is_unreachable_at_send_time() {
    let n = network(2);
    n.net.unregister(2);
    let mut t = n.net.transport(1);
    assert!(t.send(msg(1, 2, MessageType::MsgAppend)).is_err());
    eventually(|| !n.stores[0].reports.lock().is_empty());
    assert!(matches!(
        n.stores[0].reports.lock()[0],
        TransportReport::Unreachable { to_peer_id: 20, .. }
    ));
    assert_eq!(n.net.stats().unreachable, 1);
}

#[test]
fn delays_reorder_and_filters_can_be_removed() {
    let n = network(2);
    let slow = n.net.add_filter(
        MessageFilter::new(Decision::Delay(Duration::from_millis(100)))
            .msg_type(MessageType::MsgAppend),
    );
    let mut t = n.net.transport(1);
    t.send(msg(1, 2, MessageType::MsgAppend)).unwrap();
    t.send(msg(1, 2, MessageType::MsgHeartbeat)).unwrap();
    t.flush();
    eventually(|| n.stores[1].delivered.lock().len() == 2);
    assert_eq!(
        n.stores[1].delivered_types(),
        vec![(1, MessageType::MsgHeartbeat), (1, MessageType::MsgAppend)],
        "the delayed append is overtaken"
    );
    n.net.remove_filter(slow);
    t.send(msg(1, 2, MessageType::MsgAppend)).unwrap();
    t.flush();
    eventually(|| n.stores[1].delivered.lock().len() == 3);
    assert_eq!(n.net.stats().delayed, 1);
}

/// A snapshot of region 1 with `("a", "1")` in CF default, generated in `mgr`.
fn snapshot_msg(dir: &std::path::Path, mgr: &SnapManager, from: u64, to: u64) -> RaftMessage {
    let kv = RocksEngine::open_kv(&dir.join("kv"), &EngineConfig::new_test_config()).unwrap();
    let mut wb = kv.write_batch();
    wb.put_cf(CF_DEFAULT, &keys::data_key(b"a"), b"1").unwrap();
    kv.write(&mut wb, false).unwrap();
    let region = Region {
        id: 1,
        ..Default::default()
    };
    let key = SnapKey::new(1, 6, 9);
    let snap = generate_snapshot(mgr, &kv.snapshot(), &region, key, Default::default()).unwrap();
    let mut m = msg(from, to, MessageType::MsgSnapshot);
    m.message.as_mut().unwrap().snapshot = Some(Snapshot {
        data: snap.data.to_vec(),
        metadata: Some(SnapshotMetadata {
            conf_state: None,
            index: key.index,
            term: key.term,
        }),
    });
    m
}

#[test]
fn snapshots_are_copied_before_the_message_is_delivered() {
    let n = network(2);
    let dir = tempfile::tempdir().unwrap();
    let m = snapshot_msg(dir.path(), &n.snap_mgrs[0], 1, 2);
    let key = SnapKey::new(1, 6, 9);
    let mut t = n.net.transport(1);
    t.send(m).unwrap();
    t.flush();
    eventually(|| !n.stores[0].reports.lock().is_empty());
    assert_eq!(
        n.stores[0].reports.lock()[0],
        TransportReport::SnapshotStatus {
            region_id: 1,
            to_peer_id: 20,
            finished: true
        }
    );
    assert_eq!(
        n.stores[1].delivered_types(),
        vec![(1, MessageType::MsgSnapshot)]
    );
    assert!(n.snap_mgrs[1].exists(&key, SnapKind::Received));
    let sent = std::fs::read(n.snap_mgrs[0].path(&key, SnapKind::Generated)).unwrap();
    let got = std::fs::read(n.snap_mgrs[1].path(&key, SnapKind::Received)).unwrap();
    assert_eq!(sent, got);
    assert_eq!(n.net.stats().snapshots_delivered.get(&2), Some(&1));
}

#[test]
fn a_missing_or_dropped_snapshot_is_reported_failed() {
    let n = network(2);
    let dir = tempfile::tempdir().unwrap();
    let m = snapshot_msg(dir.path(), &n.snap_mgrs[0], 1, 2);
    n.snap_mgrs[0]
        .delete(&SnapKey::new(1, 6, 9), SnapKind::Generated)
        .unwrap();
    let mut t = n.net.transport(1);
    t.send(m.clone()).unwrap();
    t.flush();
    eventually(|| !n.stores[0].reports.lock().is_empty());
    assert!(matches!(
        n.stores[0].reports.lock()[0],
        TransportReport::SnapshotStatus {
            finished: false,
            ..
        }
    ));
    assert!(
        n.stores[1].delivered.lock().is_empty(),
        "never delivered without its file"
    );
    assert_eq!(n.net.stats().snapshots_failed, 1);

    n.net.add_filter(RandomDrop::new(1.0));
    t.send(m).unwrap();
    t.flush();
    eventually(|| n.stores[0].reports.lock().len() == 2);
    assert!(matches!(
        n.stores[0].reports.lock()[1],
        TransportReport::SnapshotStatus {
            finished: false,
            ..
        }
    ));
}
