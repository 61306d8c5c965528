//! Project 2C: log compaction and snapshots.
//!
//! The GenericTest rows of the course with a raft-log GC limit of 100 entries (so logs are
//! truncated during the rounds and lagging or restarted peers may need snapshots), plus the
//! hand-written `one_snapshot` scenario. Each test holds `tests::serial()` so the cluster tests
//! of this binary run one at a time.
//!
//! Run with `make project2c` (`cargo test -p tests --test project2c`).

use raft_core::engine::CF_LOCK;
use raft_core::storage::state::{RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};
use tests::transport::Partition;
use tests::{Cluster, ClusterConfig, GenericTest};

fn run(row: GenericTest) {
    let _serial = tests::serial();
    row.run();
}

#[test]
fn snapshot_recover() {
    run(GenericTest::new(1).crash().max_raft_log(100));
}

#[test]
fn snapshot_recover_many_clients() {
    run(GenericTest::new(20).crash().max_raft_log(100));
}

#[test]
fn snapshot_unreliable() {
    run(GenericTest::new(5).unreliable().max_raft_log(100));
}

#[test]
fn snapshot_unreliable_recover() {
    run(GenericTest::new(5).unreliable().crash().max_raft_log(100));
}

#[test]
fn snapshot_unreliable_recover_concurrent_partition() {
    run(GenericTest::new(5)
        .unreliable()
        .crash()
        .partitions()
        .max_raft_log(100));
}

/// A store cut off while the others write and compact their logs past its own can only catch up
/// by snapshot: afterwards it has the new keys, no longer has the key deleted meanwhile (the
/// snapshot replaced its data), keeps them across a restart, and every log is trimmed.
#[test]
fn one_snapshot() {
    let _serial = tests::serial();
    tests::init_logging();
    const GC_LIMIT: u64 = 10;
    const REGION: u64 = 1;
    let mut cfg = ClusterConfig::new_test_config();
    cfg.raftstore.raft_log_gc_count_limit = GC_LIMIT;
    let cluster = Cluster::new(3, cfg).unwrap();
    cluster.start().unwrap();

    let cf = CF_LOCK;
    cluster.must_put_cf(cf, b"k1", b"v1");
    cluster.must_put_cf(cf, b"k2", b"v2");
    cluster.must_get_cf_equal_on(1, cf, b"k1", b"v1");
    cluster.must_get_cf_equal_on(1, cf, b"k2", b"v2");
    for s in cluster.store_ids() {
        let state = cluster.apply_state(s, REGION).expect("bootstrapped region");
        let t = state.truncated_state.unwrap_or_default();
        assert_eq!(
            (t.index, t.term),
            (RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM),
            "store {s}: nothing compacted yet"
        );
    }

    cluster.add_filter(Partition::new([vec![1], vec![2, 3]]));
    for i in 100..115 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        cluster.must_put_cf(cf, k.as_bytes(), v.as_bytes());
    }
    cluster.must_delete_cf(cf, b"k2");
    let isolated_last = cluster
        .region_status(1, REGION)
        .expect("store 1 hosts the region")
        .last_index;
    cluster.must_wait("stores 2 and 3 to compact past store 1's log", || {
        [2, 3].iter().all(|&s| {
            cluster
                .region_status(s, REGION)
                .is_some_and(|r| r.truncated_index > isolated_last)
        })
    });
    for s in [2, 3] {
        cluster.must_get_cf_equal_on(s, cf, b"k114", b"v114");
        cluster.must_get_cf_none_on(s, cf, b"k2");
    }
    assert_eq!(
        cluster.engine_get_cf(1, cf, b"k100"),
        None,
        "store 1 is cut off"
    );
    let snapshots_before = snapshots_to(&cluster, 1);
    cluster.clear_filters();

    cluster.must_get_cf_equal_on(1, cf, b"k1", b"v1");
    cluster.must_get_cf_equal_on(1, cf, b"k100", b"v100");
    cluster.must_get_cf_equal_on(1, cf, b"k114", b"v114");
    cluster.must_get_cf_none_on(1, cf, b"k2");
    assert!(
        snapshots_to(&cluster, 1) > snapshots_before,
        "store 1 caught up without a snapshot"
    );

    cluster.stop_store(1);
    cluster.start_store(1).unwrap();
    cluster.must_get_cf_equal_on(1, cf, b"k1", b"v1");
    cluster.must_get_cf_equal_on(1, cf, b"k114", b"v114");
    cluster.must_get_cf_none_on(1, cf, b"k2");
    // Store 1 serves its part of the group again: a new write reaches it.
    cluster.must_put_cf(cf, b"k3", b"v3");
    cluster.must_get_cf_equal_on(1, cf, b"k3", b"v3");

    cluster.must_respect_log_gc(GC_LIMIT);
    for s in cluster.store_ids() {
        let state = cluster.apply_state(s, REGION).expect("region state");
        let truncated = state.truncated_state.unwrap_or_default().index;
        assert!(
            state.applied_index - truncated <= 2 * GC_LIMIT,
            "store {s}: durable applied {} truncated {truncated}",
            state.applied_index
        );
    }
}

fn snapshots_to(cluster: &Cluster, store_id: u64) -> u64 {
    cluster
        .net()
        .stats()
        .snapshots_delivered
        .get(&store_id)
        .copied()
        .unwrap_or(0)
}
