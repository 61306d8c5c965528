//! The router against the real runtime: two regions split at an encoded key on three stores,
//! grouping by region, failover when a leader's store stops, and gRPC statuses passed through.

use proto::kvrpcpb::*;

use super::*;
use crate::config::ClusterConfig;

fn put(key: &[u8]) -> Mutation {
    Mutation {
        op: Op::Put as i32,
        key: key.to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    }
}

#[test]
fn routes_by_encoded_key_groups_by_region_and_follows_the_leader() {
    let _serial = crate::serial();
    crate::init_logging();
    let split = encode_bytes(b"m");
    let cluster =
        Arc::new(Cluster::with_regions(3, ClusterConfig::new_test_config(), &[split]).unwrap());
    cluster.start().unwrap();
    cluster.must_wait("both regions to report a leader", || {
        let regions = cluster.pd().regions();
        regions.len() == 2
            && regions
                .iter()
                .all(|r| cluster.pd().leader_of(r.id).is_some())
    });
    let txn = TxnCluster::new(cluster.clone());
    // User key "m\0" follows "m", so it belongs right of the split, although its raw bytes
    // sort before the encoded split key: routing must compare encoded keys.
    let left = txn.region_of(b"lzzz").unwrap();
    let right = txn.region_of(b"m").unwrap();
    assert_ne!(left.id, right.id);
    assert_eq!(txn.region_of(b"m\0").unwrap().id, right.id);
    assert!(b"m\0".as_slice() < right.start_key.as_slice());

    let keys: Vec<Vec<u8>> = [&b"a"[..], b"z", b"lzzz", b"m"]
        .iter()
        .map(|k| k.to_vec())
        .collect();
    let groups = txn.group_by_region(keys.clone(), |k| k.as_slice());
    assert_eq!(
        groups,
        [
            vec![b"a".to_vec(), b"lzzz".to_vec()],
            vec![b"z".to_vec(), b"m".to_vec()]
        ]
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let prewrites = txn
            .call_grouped(
                keys.clone(),
                |k| k.as_slice(),
                |g| PrewriteRequest {
                    mutations: g.iter().map(|k| put(k)).collect(),
                    primary_lock: b"a".to_vec(),
                    start_version: 10,
                    lock_ttl: 3000,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(prewrites.len(), 2, "one prewrite per region");
        assert!(
            prewrites.iter().all(|(_, r)| r.errors.is_empty()),
            "{prewrites:?}"
        );

        // The right region's leader goes away: its commit reaches the newly elected leader.
        let leader = cluster.pd().leader_of(right.id).unwrap();
        txn.stop_store(leader.store_id);
        let commits = txn
            .call_grouped(
                keys,
                |k| k.as_slice(),
                |g| CommitRequest {
                    keys: g.to_vec(),
                    start_version: 10,
                    commit_version: 11,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(
            commits.iter().all(|(_, r)| r.error.is_none()),
            "{commits:?}"
        );
        let (region, got) = txn
            .call_routed(GetRequest {
                key: b"z".to_vec(),
                version: 20,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!((region.id, got.value.as_slice()), (right.id, &b"v"[..]));

        // A malformed request is answered with its gRPC status at once.
        let err = txn
            .call(GetRequest {
                key: vec![b'k'; 64 << 10],
                version: 20,
                ..Default::default()
            })
            .await
            .unwrap_err();
        match err {
            Error::Rpc(status) => assert_eq!(status.code(), tonic::Code::InvalidArgument),
            other => panic!("expected a gRPC status, got {other}"),
        }
        txn.start_store(leader.store_id).unwrap();
        assert!(txn.service(leader.store_id).is_ok());
    });
}
