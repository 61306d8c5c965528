//! `GrpcTransport` ⇄ `RaftReceiver` over loopback: batching, ordering, reconnection,
//! backpressure, and what the receiving side refuses.

mod network_support;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream;
use network_support::*;
use proto::eraftpb::MessageType;
use proto::tikvpb::BatchRaftMessage;
use raftstore::network::NetworkConfig;
use raftstore::transport::{Transport, TransportReport};
use raftstore::Error;
use tonic::Code;

/// Per region, the indexes in arrival order.
fn by_region(pairs: &[(u64, u64)]) -> BTreeMap<u64, Vec<u64>> {
    let mut out: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for (region, index) in pairs {
        out.entry(*region).or_default().push(*index);
    }
    out
}

#[test]
fn messages_are_batched_and_delivered_in_order_both_ways() {
    let rt = runtime();
    let cfg = NetworkConfig::new_test_config();
    let (s1, s2) = (
        TestStore::start(&rt, 1, &cfg),
        TestStore::start(&rt, 2, &cfg),
    );
    let resolver = Arc::new(MapResolver::default());
    resolver.set(1, s1.addr());
    resolver.set(2, s2.addr());
    let reports = Arc::new(Reports::default());
    let mut t1 = transport(
        &rt,
        resolver.clone(),
        s1.snap_mgr.clone(),
        &reports,
        cfg.clone(),
    );
    let mut t2 = transport(
        &rt,
        resolver.clone(),
        s2.snap_mgr.clone(),
        &reports,
        cfg.clone(),
    );

    // One poll round of store 1: 600 appends over 3 regions, then one flush. Address
    // resolution is held until the round is queued, so the batches are exactly predictable.
    resolver.close();
    for i in 0..600 {
        t1.send(append(1 + i % 3, 1, 2, i)).unwrap();
    }
    t1.flush();
    resolver.open();
    // Store 2 answers from another "poller" (a clone of its transport).
    let mut t2b = t2.clone();
    for i in 0..50 {
        t2.send(append(1, 2, 1, i)).unwrap();
        t2b.send(append(2, 2, 1, i)).unwrap();
    }
    t2.flush();
    t2b.flush();

    wait_until("store 2 receives 600 messages", || s2.sink.len() == 600);
    wait_until("store 1 receives 100 messages", || s1.sink.len() == 100);

    let got = by_region(&region_indexes(&s2.sink.msgs.lock()));
    for (region, indexes) in &got {
        let want: Vec<u64> = (0..600).filter(|i| 1 + i % 3 == *region).collect();
        assert_eq!(
            indexes, &want,
            "region {region} arrives complete and in order"
        );
    }
    let got = by_region(&region_indexes(&s1.sink.msgs.lock()));
    assert_eq!(got[&1], (0..50).collect::<Vec<_>>());
    assert_eq!(got[&2], (0..50).collect::<Vec<_>>());

    let stats = t1.stats().store(2);
    assert_eq!(stats.sent_messages, 600);
    assert!(stats.connected);
    assert_eq!(stats.connects, 1, "one connection carries everything");
    // 600 queued messages, at most 256 per batch (they are far below the byte limit).
    assert_eq!(stats.sent_batches, 3);
    assert_eq!(stats.dropped_messages, 0);
    assert!(
        reports.snapshot().is_empty(),
        "nothing was dropped: {:?}",
        reports.snapshot()
    );
    assert_eq!(s2.receiver.stats().messages, 600);
}

#[test]
fn reconnects_after_the_destination_restarts_or_moves() {
    let rt = runtime();
    let cfg = NetworkConfig::new_test_config();
    let s1 = TestStore::start(&rt, 1, &cfg);
    let mut s2 = TestStore::start(&rt, 2, &cfg);
    let resolver = Arc::new(MapResolver::default());
    resolver.set(2, s2.addr());
    let reports = Arc::new(Reports::default());
    let mut t = transport(&rt, resolver.clone(), s1.snap_mgr.clone(), &reports, cfg);

    t.send(append(1, 1, 2, 0)).unwrap();
    t.flush();
    wait_until("first delivery", || s2.sink.len() == 1);

    // The destination goes away: messages sent meanwhile are dropped and reported, so raft
    // probes instead of streaming appends into the void.
    let addr = s2.stop_server(&rt);
    wait_until("the stream notices", || !t.stats().store(2).connected);
    let mut i = 1;
    wait_until("an unreachable report", || {
        let _ = t.send(append(1, 1, 2, i));
        t.flush();
        i += 1;
        reports.unreachable(1, peer(1, 2).id) > 0
    });
    assert!(
        resolver.invalidations(2) > 0,
        "a failed store is re-resolved"
    );

    // Back on the same address: the transport reconnects by itself.
    s2.restart_server(&rt, addr);
    let before = s2.sink.len();
    wait_until("delivery after restart", || {
        let _ = t.send(append(1, 1, 2, i));
        t.flush();
        i += 1;
        s2.sink.len() > before
    });

    // Back on another address: the resolver is asked again after the failure.
    s2.stop_server(&rt);
    s2.restart_server(&rt, "127.0.0.1:0".parse().unwrap());
    resolver.set(2, s2.addr());
    let before = s2.sink.len();
    wait_until("delivery at the new address", || {
        let _ = t.send(append(1, 1, 2, i));
        t.flush();
        i += 1;
        s2.sink.len() > before
    });
    let stats = t.stats().store(2);
    assert!(stats.connects >= 3, "{stats:?}");
    assert!(
        resolver.resolves(2) >= 3,
        "resolved again after each failure"
    );
    assert!(stats.dropped_messages > 0);

    // Whatever arrived, arrived in order.
    let indexes = by_region(&region_indexes(&s2.sink.msgs.lock()))
        .remove(&1)
        .unwrap();
    assert!(indexes.windows(2).all(|w| w[0] < w[1]), "{indexes:?}");
}

#[test]
fn a_full_queue_drops_new_messages_and_reports_them() {
    let rt = runtime();
    let cfg = NetworkConfig {
        queue_capacity: 8,
        ..NetworkConfig::new_test_config()
    };
    let (s1, s2) = (
        TestStore::start(&rt, 1, &cfg),
        TestStore::start(&rt, 2, &cfg),
    );
    let resolver = Arc::new(MapResolver::default());
    resolver.set(2, s2.addr());
    // Hold the connection task in address resolution, so nothing drains the queue.
    resolver.close();
    let reports = Arc::new(Reports::default());
    let mut t = transport(&rt, resolver.clone(), s1.snap_mgr.clone(), &reports, cfg);

    for i in 0..8 {
        t.send(append(1, 1, 2, i)).unwrap();
    }
    for region in [5, 6, 7] {
        let err = t.send(append(region, 1, 2, 100)).unwrap_err();
        assert!(matches!(err, Error::Transport(_)), "{err}");
    }
    t.flush();
    assert_eq!(
        reports.snapshot(),
        [5, 6, 7]
            .map(|region| TransportReport::Unreachable {
                region_id: region,
                to_peer_id: peer(region, 2).id,
            })
            .to_vec()
    );
    let stats = t.stats().store(2);
    assert_eq!((stats.queued, stats.dropped_messages), (8, 3));

    // Once the store is reachable the queued messages go out; nothing else is reported.
    resolver.open();
    wait_until("queued messages delivered", || s2.sink.len() == 8);
    assert_eq!(
        region_indexes(&s2.sink.msgs.lock()),
        (0..8).map(|i| (1, i)).collect::<Vec<_>>()
    );
    assert_eq!(reports.snapshot().len(), 3);
}

#[test]
fn unknown_stores_and_shutdown_are_reported() {
    let rt = runtime();
    let cfg = NetworkConfig::new_test_config();
    let s1 = TestStore::start(&rt, 1, &cfg);
    let resolver = Arc::new(MapResolver::default());
    let reports = Arc::new(Reports::default());
    let mut t = transport(&rt, resolver.clone(), s1.snap_mgr.clone(), &reports, cfg);

    // Store 9 cannot be resolved: its messages are dropped and reported.
    t.send(append(4, 1, 9, 0)).unwrap();
    t.flush();
    wait_until("unreachable report", || {
        reports.unreachable(4, peer(4, 9).id) == 1
    });
    assert!(t.stats().store(9).connect_failures >= 1);

    // A message without a destination is refused outright.
    let mut bad = append(4, 1, 9, 1);
    bad.to_peer = None;
    assert!(matches!(t.send(bad), Err(Error::Transport(_))));

    t.shutdown();
    assert!(matches!(t.send(append(4, 1, 9, 2)), Err(Error::Shutdown)));
    assert_eq!(reports.unreachable(4, peer(4, 9).id), 2);
}

#[test]
fn the_receiver_refuses_malformed_messages() {
    let rt = runtime();
    let cfg = NetworkConfig::new_test_config();
    let store = TestStore::start(&rt, 2, &cfg);
    let receiver = store.receiver.clone();
    let batch = |msgs| Ok(BatchRaftMessage { msgs });

    let mut no_peer = append(1, 1, 2, 0);
    no_peer.from_peer = None;
    let mut no_message = append(1, 1, 2, 0);
    no_message.message = None;
    let mut snapshot = append(1, 1, 2, 0);
    snapshot.message.as_mut().unwrap().msg_type = MessageType::MsgSnapshot as i32;

    for (bad, why) in [
        (no_peer, "no valid from_peer"),
        (no_message, "has no message"),
        (snapshot, "Snapshot stream"),
    ] {
        let s = stream::iter(vec![batch(vec![append(1, 1, 2, 0)]), batch(vec![bad])]);
        let status = rt.block_on(receiver.batch_raft_stream(s)).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(why), "{}", status.message());
    }
    // A broken stream is passed on as is.
    let s = stream::iter(vec![Err(tonic::Status::cancelled("gone"))]);
    let status = rt.block_on(receiver.raft_stream(s)).unwrap_err();
    assert_eq!(status.code(), Code::Cancelled);

    // The valid messages ahead of each bad one were delivered.
    assert_eq!(store.sink.len(), 3);
    let s = stream::iter(vec![Ok(append(1, 1, 2, 1)), Ok(append(1, 1, 2, 2))]);
    rt.block_on(receiver.raft_stream(s)).unwrap();
    assert_eq!(store.sink.len(), 5);
}
