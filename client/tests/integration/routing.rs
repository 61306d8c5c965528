//! Recovery from region errors and failures: NotLeader (with and without a hint),
//! EpochNotMatch after splits, store outages, busy stores, timeouts, failed lookups.

use std::time::Duration;

use client::{BackoffConfig, Config, Error, KvPair, RawClient};

use crate::config;
use crate::mock::MockCluster;

async fn client(cluster: &MockCluster, cfg: Config) -> RawClient {
    RawClient::new_with_config(cluster.pd_endpoints(), cfg)
        .await
        .unwrap()
}

#[tokio::test]
async fn not_leader_hint_is_followed_without_asking_pd() {
    let cluster = MockCluster::start(1, 3, false).await;
    let raw = client(&cluster, config()).await;
    raw.put("a", "1").await.unwrap();
    let lookups = cluster.count("GetRegion") + cluster.count("ScanRegions");

    cluster.transfer_leader(cluster.region_of(b"a"), 2);
    assert_eq!(raw.get("a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(cluster.count("RawGet:region_error"), 1);
    assert_eq!(cluster.count("store2/RawGet"), 1);
    assert_eq!(
        cluster.count("GetRegion") + cluster.count("ScanRegions"),
        lookups,
        "the hint was enough"
    );
    // The cache remembers the new leader.
    raw.get("a").await.unwrap();
    assert_eq!(cluster.count("store2/RawGet"), 2);
    assert_eq!(cluster.count("RawGet:region_error"), 1);
}

#[tokio::test]
async fn not_leader_without_hint_reloads_the_region() {
    let cluster = MockCluster::start(1, 3, false).await;
    cluster.state().not_leader_hint = false;
    let raw = client(&cluster, config()).await;
    raw.put("a", "1").await.unwrap();
    let lookups = cluster.count("GetRegion");
    cluster.transfer_leader(cluster.region_of(b"a"), 3);
    assert_eq!(raw.get("a").await.unwrap(), Some(b"1".to_vec()));
    assert_eq!(cluster.count("GetRegion"), lookups + 1);
    assert_eq!(cluster.count("store3/RawGet"), 1);
}

async fn splits_mid_test(epoch_regions: bool) {
    let cluster = MockCluster::start(1, 2, false).await;
    cluster.state().epoch_regions = epoch_regions;
    let raw = client(&cluster, config()).await;
    raw.batch_put((b'a'..=b'z').map(|c| (vec![c], vec![c])))
        .await
        .unwrap();
    assert_eq!(raw.scan(.., 100).await.unwrap().len(), 26);

    // The cache holds one region; the cluster now has four.
    for s in ["f", "m", "t"] {
        cluster.split(s.as_bytes());
    }
    cluster.transfer_leader(cluster.region_of(b"t"), 2);
    raw.batch_put((b'a'..=b'z').map(|c| (vec![c], vec![c, c])))
        .await
        .unwrap();
    let all = raw.scan(.., 100).await.unwrap();
    assert_eq!(all.len(), 26);
    assert!(all.iter().all(|p| p.value.len() == 2));
    let rev = raw.scan_reverse("c".."x", 100).await.unwrap();
    assert_eq!(rev.len(), 21);
    assert_eq!(rev[0], KvPair::new("w", "ww"));
    assert!(cluster.count("RawBatchPut:region_error") >= 1);

    // Split again between two reads of a scan-sized batch.
    cluster.split(b"p");
    assert_eq!(
        raw.batch_get((b'a'..=b'z').map(|c| vec![c]))
            .await
            .unwrap()
            .len(),
        26
    );
    raw.delete_range("g".."s").await.unwrap();
    assert_eq!(raw.scan(.., 100).await.unwrap().len(), 14);
}

#[tokio::test]
async fn epoch_not_match_with_current_regions_is_recovered() {
    splits_mid_test(true).await;
}

#[tokio::test]
async fn epoch_not_match_without_regions_is_recovered() {
    splits_mid_test(false).await;
}

#[tokio::test]
async fn store_outage_fails_over_to_the_new_leader() {
    let cluster = MockCluster::start(1, 3, false).await;
    let raw = client(&cluster, config()).await;
    raw.put("a", "1").await.unwrap();
    let region = cluster.region_of(b"a");
    cluster.set_store_down(1, true);
    cluster.transfer_leader(region, 2);
    assert_eq!(raw.get("a").await.unwrap(), Some(b"1".to_vec()));
    assert!(cluster.count("store1/RawGet") >= 1);
    assert_eq!(cluster.count("store2/RawGet"), 1);
}

#[tokio::test]
async fn persistent_region_errors_exhaust_the_backoff() {
    let cluster = MockCluster::start(1, 1, false).await;
    cluster.state().busy_stores.push(1);
    let cfg = Config {
        region_backoff: BackoffConfig::new(Duration::from_millis(1), Duration::from_millis(5), 3),
        ..config()
    };
    let raw = client(&cluster, cfg).await;
    let err = raw.get("a").await.unwrap_err();
    match &err {
        Error::Region { error, .. } => assert!(error.server_is_busy.is_some(), "{err}"),
        other => panic!("unexpected {other}"),
    }
    assert_eq!(cluster.count("RawGet"), 4, "first try and three retries");
}

#[tokio::test]
async fn slow_stores_time_out() {
    let cluster = MockCluster::start(1, 1, false).await;
    cluster
        .state()
        .store_delay
        .insert(1, Duration::from_secs(3));
    let cfg = Config {
        timeout: Duration::from_millis(200),
        region_backoff: BackoffConfig::new(Duration::from_millis(1), Duration::from_millis(5), 1),
        ..config()
    };
    let raw = client(&cluster, cfg).await;
    let err = raw.put("a", "1").await.unwrap_err();
    assert!(matches!(err, Error::Timeout { rpc: "RawPut", .. }), "{err}");
    assert!(err.is_transport());
}

#[tokio::test]
async fn failed_region_lookup_fails_the_whole_batch() {
    let cluster = MockCluster::start(1, 1, false).await;
    cluster.split(b"m");
    cluster.state().fail_region_lookup_from = Some(b"m".to_vec());
    let raw = client(&cluster, config()).await;
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = (b'a'..=b'z').map(|c| (vec![c], vec![c])).collect();
    let err = raw.batch_put(pairs).await.unwrap_err();
    assert!(matches!(err, Error::Pd { .. }), "{err}");
    // Keys are grouped before anything is sent: nothing was written, and the caller knows.
    assert_eq!(cluster.count("RawBatchPut"), 0);
    assert_eq!(cluster.raw_len(), 0);
    assert!(raw.batch_delete(vec!["a", "z"]).await.is_err());
    assert!(raw.scan("a".., 100).await.is_err());
    // Keys before the failing range still work.
    raw.put("a", "1").await.unwrap();
}

#[tokio::test]
async fn definite_statuses_are_returned_without_retry() {
    let cluster = MockCluster::start(1, 1, false).await;
    let raw = client(&cluster, config()).await;
    raw.put("a", "1").await.unwrap();
    cluster.state().store_status = Some(tonic::Code::InvalidArgument);
    let err = raw.get("a").await.unwrap_err();
    match &err {
        Error::Grpc { rpc, status, .. } => {
            assert_eq!(*rpc, "RawGet");
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(!err.is_transport());
    assert_eq!(cluster.count("RawGet"), 1);
}

#[tokio::test]
async fn range_walks_fall_back_to_get_region_without_scan_regions() {
    let cluster = MockCluster::start(1, 1, false).await;
    for s in ["c", "f", "k"] {
        cluster.split(s.as_bytes());
    }
    cluster.state().scan_regions_unimplemented = true;
    let writer = client(&cluster, config()).await;
    writer
        .batch_put((b'a'..=b'n').map(|c| (vec![c], vec![c])))
        .await
        .unwrap();
    // A fresh client has nothing cached: its reverse walk has to load the regions.
    let raw = client(&cluster, config()).await;
    let rev = raw.scan_reverse(.., 100).await.unwrap();
    assert_eq!(rev.len(), 14);
    assert_eq!(rev[0].key, "n".into());
    assert!(cluster.count("ScanRegions") >= 1);
}
