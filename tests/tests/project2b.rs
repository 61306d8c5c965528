//! Project 2B: a replicated key-value store over the multi-raft runtime, one region on five
//! stores.
//!
//! The GenericTest rows of the course (see `tests::GenericTest` for what a row does), from a
//! healthy cluster up to crashes of every store combined with a lossy network and repeated
//! partitions, plus the hand-written `one_partition` scenario. Each test holds `tests::serial()`
//! so the cluster tests of this binary run one at a time.
//!
//! Run with `make project2b` (`cargo test -p tests --test project2b`).

use raft_core::engine::CF_DEFAULT;
use tests::transport::Partition;
use tests::{Cluster, ClusterConfig, GenericTest};

fn run(row: GenericTest) {
    let _serial = tests::serial();
    row.run();
}

#[test]
fn basic() {
    run(GenericTest::new(1));
}

#[test]
fn concurrent() {
    run(GenericTest::new(5));
}

#[test]
fn unreliable() {
    run(GenericTest::new(5).unreliable());
}

#[test]
fn many_partitions_one_client() {
    run(GenericTest::new(1).partitions());
}

#[test]
fn many_partitions_many_clients() {
    run(GenericTest::new(5).partitions());
}

#[test]
fn persist_one_client() {
    run(GenericTest::new(1).crash());
}

#[test]
fn persist_concurrent() {
    run(GenericTest::new(5).crash());
}

#[test]
fn persist_concurrent_unreliable() {
    run(GenericTest::new(5).unreliable().crash());
}

#[test]
fn persist_partition() {
    run(GenericTest::new(5).crash().partitions());
}

#[test]
fn persist_partition_unreliable() {
    run(GenericTest::new(5).unreliable().crash().partitions());
}

/// A partition that keeps the leader in the majority does not disturb clients and the minority
/// sees nothing; moving the old leader into a minority makes the majority elect a new leader that
/// serves reads and writes while the minority keeps the old value; after healing, the old leader
/// catches up.
#[test]
fn one_partition() {
    let _serial = tests::serial();
    tests::init_logging();
    let cluster = Cluster::new(5, ClusterConfig::new_test_config()).unwrap();
    cluster.start().unwrap();
    let region = cluster.get_region(b"");
    let leader = cluster
        .leader_of_region(region.id)
        .expect("the first region elects a leader");
    let others: Vec<u64> = region
        .peers
        .iter()
        .filter(|p| p.id != leader.id)
        .map(|p| p.store_id)
        .collect();
    assert_eq!(others.len(), 4, "region {region:?}");

    // Leader with two followers against the other two.
    let majority = vec![leader.store_id, others[0], others[1]];
    let minority = vec![others[2], others[3]];
    cluster.add_filter(Partition::new([majority.clone(), minority.clone()]));
    cluster.must_put(b"k1", b"v1");
    cluster.must_get_equal(b"k1", b"v1");
    for &s in &majority {
        cluster.must_get_equal_on(s, b"k1", b"v1");
    }
    for &s in &minority {
        assert_eq!(
            cluster.engine_get_cf(s, CF_DEFAULT, b"k1"),
            None,
            "store {s} is cut off from the leader"
        );
    }
    cluster.clear_filters();

    // The old leader and one follower against the rest: the three elect a new leader.
    let minority = vec![leader.store_id, others[0]];
    let majority = vec![others[1], others[2], others[3]];
    cluster.add_filter(Partition::new([minority.clone(), majority.clone()]));
    cluster.must_get_equal(b"k1", b"v1");
    cluster.must_put(b"k1", b"changed");
    cluster.must_wait("a leader on the majority side", || {
        majority.iter().any(|&s| {
            cluster
                .region_status(s, region.id)
                .is_some_and(|r| r.is_leader)
        })
    });
    for &s in &majority {
        cluster.must_get_equal_on(s, b"k1", b"changed");
    }
    for &s in &minority {
        assert_eq!(
            cluster.engine_get_cf(s, CF_DEFAULT, b"k1").as_deref(),
            Some(&b"v1"[..]),
            "store {s} is on the minority side"
        );
    }
    cluster.clear_filters();

    // Healed: the old leader converges.
    cluster.must_put(b"k2", b"v2");
    for s in cluster.store_ids() {
        cluster.must_get_equal_on(s, b"k2", b"v2");
        cluster.must_get_equal_on(s, b"k1", b"changed");
    }
    let violations = cluster.pd().violations();
    assert!(violations.is_empty(), "epoch violations: {violations:?}");
}
