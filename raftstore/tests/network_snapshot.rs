//! Snapshot transfer over `tikvpb.Tikv/Snapshot`: real files from a `SnapManager`, checksums
//! verified by the receiver, corruption and truncation refused, status reported to the sender.

mod network_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream;
use network_support::*;
use proto::eraftpb::{Message, MessageType};
use proto::metapb::{Region, RegionEpoch};
use proto::raft_serverpb::{RaftMessage, RaftSnapshotData, SnapshotChunk};
use raft::eraftpb::ConfState;
use raft_core::config::EngineConfig;
use raft_core::convert::IntoProto;
use raft_core::engine::{KvEngine, RocksEngine, CF_DEFAULT, CF_WRITE};
use raft_core::keys;
use raft_core::snap::{
    decode_descriptor, for_each_record, generate_snapshot, SnapKey, SnapKind, SnapManager,
};
use raftstore::network::NetworkConfig;
use raftstore::transport::{Transport, TransportReport};
use tonic::Code;

type Records = BTreeMap<(String, Vec<u8>), Vec<u8>>;

/// A kv engine holding `n` records of ~200 bytes for region 1 (whole key space), plus the
/// records themselves.
fn engine_with_data(dir: &std::path::Path, n: usize) -> (RocksEngine, Records) {
    let engine = RocksEngine::open_kv(&dir.join("kv"), &EngineConfig::new_test_config()).unwrap();
    let mut records = Records::new();
    for i in 0..n {
        let key = format!("key{i:06}").into_bytes();
        let value = vec![b'a' + (i % 26) as u8; 200];
        let cf = if i % 4 == 0 { CF_WRITE } else { CF_DEFAULT };
        engine.put_cf(cf, &keys::data_key(&key), &value).unwrap();
        records.insert((cf.to_owned(), key), value);
    }
    (engine, records)
}

fn region(id: u64) -> Region {
    Region {
        id,
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![peer(id, 1), peer(id, 2)],
        ..Default::default()
    }
}

/// Generates the snapshot of `region_id` at (term 6, index `index`) into `mgr` and returns the
/// `MsgSnapshot` from store 1 to store 2 that describes it.
fn snapshot_message(
    mgr: &SnapManager,
    engine: &RocksEngine,
    region_id: u64,
    index: u64,
) -> RaftMessage {
    let key = SnapKey::new(region_id, 6, index);
    let snap = generate_snapshot(
        mgr,
        &engine.snapshot(),
        &region(region_id),
        key,
        ConfState::default(),
    )
    .unwrap();
    let (from, to) = (peer(region_id, 1), peer(region_id, 2));
    RaftMessage {
        region_id,
        message: Some(Message {
            msg_type: MessageType::MsgSnapshot as i32,
            from: from.id,
            to: to.id,
            term: 6,
            snapshot: Some(snap.into_proto()),
            ..Default::default()
        }),
        from_peer: Some(from),
        to_peer: Some(to),
        ..Default::default()
    }
}

fn descriptor(msg: &RaftMessage) -> RaftSnapshotData {
    decode_descriptor(
        &msg.message
            .as_ref()
            .unwrap()
            .snapshot
            .as_ref()
            .unwrap()
            .data,
    )
    .unwrap()
}

fn read_records(mgr: &SnapManager, key: &SnapKey, desc: &RaftSnapshotData) -> Records {
    let mut out = Records::new();
    for_each_record(&mgr.path(key, SnapKind::Received), desc, |cf, k, v| {
        out.insert((cf.to_owned(), k.to_vec()), v.to_vec());
        Ok(())
    })
    .unwrap();
    out
}

/// Files in the snapshot directory that are neither published snapshots nor expected.
fn leftovers(mgr: &SnapManager) -> Vec<String> {
    std::fs::read_dir(mgr.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("rev_"))
        .collect()
}

fn status(region_id: u64, finished: bool) -> TransportReport {
    TransportReport::SnapshotStatus {
        region_id,
        to_peer_id: peer(region_id, 2).id,
        finished,
    }
}

#[test]
fn a_snapshot_file_arrives_verified_before_its_message() {
    let rt = runtime();
    let cfg = NetworkConfig::new_test_config();
    let (s1, s2) = (
        TestStore::start(&rt, 1, &cfg),
        TestStore::start(&rt, 2, &cfg),
    );
    let resolver = Arc::new(MapResolver::default());
    resolver.set(2, s2.addr());
    let reports = Arc::new(Reports::default());
    let mut t = transport(&rt, resolver, s1.snap_mgr.clone(), &reports, cfg.clone());

    let dir = tempfile::tempdir().unwrap();
    let (engine, records) = engine_with_data(dir.path(), 3000);
    let msg = snapshot_message(&s1.snap_mgr, &engine, 1, 42);
    let desc = descriptor(&msg);
    assert!(
        desc.file_size > 4 * cfg.snap_chunk_size as u64,
        "the file spans several chunks ({} bytes)",
        desc.file_size
    );

    t.send(msg.clone()).unwrap();
    t.flush();
    wait_until("snapshot status", || !reports.snapshot().is_empty());
    assert_eq!(reports.snapshot(), vec![status(1, true)]);

    // The message was delivered, and by then the file was complete and verified.
    assert_eq!(s2.sink.msgs.lock().as_slice(), &[msg]);
    let key = SnapKey::new(1, 6, 42);
    assert!(s2.snap_mgr.exists(&key, SnapKind::Received));
    assert_eq!(read_records(&s2.snap_mgr, &key, &desc), records);
    assert_eq!(
        std::fs::read(s1.snap_mgr.path(&key, SnapKind::Generated)).unwrap(),
        std::fs::read(s2.snap_mgr.path(&key, SnapKind::Received)).unwrap()
    );

    let stats = t.stats();
    assert_eq!(
        (
            stats.snapshots_sent,
            stats.snapshots_failed,
            stats.snapshots_sending
        ),
        (1, 0, 0)
    );
    let rs = s2.receiver.stats();
    assert_eq!(
        (
            rs.snapshots_received,
            rs.snapshots_rejected,
            rs.snapshots_receiving
        ),
        (1, 0, 0)
    );
    // Snapshots never travel on the raft stream.
    assert_eq!(t.stats().store(2).sent_messages, 0);
}

#[test]
fn a_corrupted_snapshot_is_detected_and_never_delivered() {
    let rt = runtime();
    let cfg = NetworkConfig::new_test_config();
    let (s1, s2) = (
        TestStore::start(&rt, 1, &cfg),
        TestStore::start(&rt, 2, &cfg),
    );
    let resolver = Arc::new(MapResolver::default());
    resolver.set(2, s2.addr());
    let reports = Arc::new(Reports::default());
    let mut t = transport(&rt, resolver, s1.snap_mgr.clone(), &reports, cfg);

    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine_with_data(dir.path(), 2000);
    let msg = snapshot_message(&s1.snap_mgr, &engine, 3, 10);
    // Flip one byte in the middle of the sender's file (same size, wrong checksum).
    let path = s1
        .snap_mgr
        .path(&SnapKey::new(3, 6, 10), SnapKind::Generated);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();

    t.send(msg).unwrap();
    t.flush();
    wait_until("snapshot status", || !reports.snapshot().is_empty());
    assert_eq!(reports.snapshot(), vec![status(3, false)]);
    assert_eq!(s2.sink.len(), 0, "nothing is delivered");
    assert!(
        leftovers(&s2.snap_mgr).is_empty(),
        "no partial file: {:?}",
        leftovers(&s2.snap_mgr)
    );
    assert_eq!(s2.receiver.stats().snapshots_rejected, 1);
    assert_eq!(t.stats().snapshots_failed, 1);
}

#[test]
fn a_missing_snapshot_file_fails_the_transfer() {
    let rt = runtime();
    let cfg = NetworkConfig::new_test_config();
    let (s1, s2) = (
        TestStore::start(&rt, 1, &cfg),
        TestStore::start(&rt, 2, &cfg),
    );
    let resolver = Arc::new(MapResolver::default());
    resolver.set(2, s2.addr());
    let reports = Arc::new(Reports::default());
    let mut t = transport(&rt, resolver, s1.snap_mgr.clone(), &reports, cfg);

    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine_with_data(dir.path(), 10);
    let msg = snapshot_message(&s1.snap_mgr, &engine, 4, 10);
    assert!(s1
        .snap_mgr
        .delete(&SnapKey::new(4, 6, 10), SnapKind::Generated)
        .unwrap());

    t.send(msg).unwrap();
    t.flush();
    wait_until("snapshot status", || !reports.snapshot().is_empty());
    assert_eq!(reports.snapshot(), vec![status(4, false)]);
    assert_eq!(s2.sink.len(), 0);
}

#[test]
fn concurrent_sends_respect_the_limit() {
    let rt = runtime();
    // The receiver refuses a second simultaneous transfer, so any overlap from the sender
    // would show up as a failed status.
    let cfg = NetworkConfig {
        snap_max_concurrent_sends: 1,
        snap_max_concurrent_recvs: 1,
        ..NetworkConfig::new_test_config()
    };
    let (s1, s2) = (
        TestStore::start(&rt, 1, &cfg),
        TestStore::start(&rt, 2, &cfg),
    );
    let resolver = Arc::new(MapResolver::default());
    resolver.set(2, s2.addr());
    let reports = Arc::new(Reports::default());
    let mut t = transport(&rt, resolver, s1.snap_mgr.clone(), &reports, cfg);

    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = engine_with_data(dir.path(), 1000);
    for region_id in 10..14 {
        t.send(snapshot_message(&s1.snap_mgr, &engine, region_id, 7))
            .unwrap();
    }
    t.flush();
    wait_until("four statuses", || reports.snapshot().len() == 4);
    let mut got = reports.snapshot();
    got.sort_by_key(|r| match r {
        TransportReport::SnapshotStatus { region_id, .. } => *region_id,
        _ => 0,
    });
    assert_eq!(got, (10..14).map(|r| status(r, true)).collect::<Vec<_>>());
    assert_eq!(s2.sink.len(), 4);
}

#[test]
fn the_receiver_refuses_bad_and_incomplete_transfers() {
    let rt = runtime();
    let cfg = NetworkConfig::new_test_config();
    let s2 = TestStore::start(&rt, 2, &cfg);
    let receiver = s2.receiver.clone();
    let sender_dir = tempfile::tempdir().unwrap();
    let sender_mgr = SnapManager::new(sender_dir.path().join("snap")).unwrap();
    let (engine, _) = engine_with_data(sender_dir.path(), 1000);
    let msg = snapshot_message(&sender_mgr, &engine, 5, 9);
    let file = std::fs::read(sender_mgr.path(&SnapKey::new(5, 6, 9), SnapKind::Generated)).unwrap();
    let head = |m: RaftMessage| {
        Ok(SnapshotChunk {
            message: Some(m),
            data: vec![],
        })
    };
    let data = |d: &[u8]| {
        Ok(SnapshotChunk {
            message: None,
            data: d.to_vec(),
        })
    };
    let run = |chunks: Vec<Result<SnapshotChunk, tonic::Status>>| {
        rt.block_on(receiver.snapshot_stream(stream::iter(chunks)))
    };

    // Truncated: the sender ended the stream cleanly but early.
    let half = file.len() / 2;
    let err = run(vec![head(msg.clone()), data(&file[..half])]).unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    // Broken: the stream failed midway.
    let err = run(vec![
        head(msg.clone()),
        data(&file[..half]),
        Err(tonic::Status::cancelled("connection reset")),
    ])
    .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{err:?}");
    // Too long: bytes beyond the announced size.
    let mut longer = file.clone();
    longer.extend_from_slice(b"extra");
    let err = run(vec![head(msg.clone()), data(&longer)]).unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    // Malformed openings.
    let mut not_snapshot = msg.clone();
    not_snapshot.message.as_mut().unwrap().msg_type = MessageType::MsgAppend as i32;
    let mut bad_descriptor = msg.clone();
    bad_descriptor
        .message
        .as_mut()
        .unwrap()
        .snapshot
        .as_mut()
        .unwrap()
        .data = b"junk".to_vec();
    let mut no_peer = msg.clone();
    no_peer.to_peer = None;
    for chunks in [
        vec![],
        vec![data(&file)],
        vec![head(not_snapshot)],
        vec![head(bad_descriptor)],
        vec![head(no_peer)],
        vec![head(msg.clone()), head(msg.clone())],
    ] {
        let err = run(chunks).unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    assert_eq!(s2.sink.len(), 0, "nothing was delivered");
    assert!(
        leftovers(&s2.snap_mgr).is_empty(),
        "{:?}",
        leftovers(&s2.snap_mgr)
    );
    assert_eq!(s2.receiver.stats().snapshots_rejected, 9);

    // The same transfer, whole, in uneven chunks (the first one with the message), succeeds.
    let (a, b) = file.split_at(777);
    let first = SnapshotChunk {
        message: Some(msg.clone()),
        data: a.to_vec(),
    };
    run(vec![Ok(first), data(b)]).unwrap();
    assert_eq!(s2.sink.msgs.lock().as_slice(), &[msg]);
    assert!(s2
        .snap_mgr
        .exists(&SnapKey::new(5, 6, 9), SnapKind::Received));
}
