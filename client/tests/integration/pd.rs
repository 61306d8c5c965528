//! PD client: leader following, reconnection, batched TSO, lookups.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use client::{BackoffConfig, Config, Error, PdClient};

use crate::config;
use crate::mock::{wait_until, MockCluster};

#[tokio::test]
async fn follows_the_leader_named_by_any_member() {
    let cluster = MockCluster::start(3, 1, false).await;
    cluster.set_pd_leader(2);
    let urls = cluster.pd_endpoints();
    // Only a follower is given; it names member 2 as leader.
    let pd = PdClient::connect(&urls[..1], config()).await.unwrap();
    assert_eq!(pd.leader_url(), urls[2]);
    assert_eq!(pd.cluster_id(), crate::mock::CLUSTER_ID);
    pd.get_region(b"k").await.unwrap();
    pd.get_timestamp().await.unwrap();
    assert_eq!(cluster.count("pd2/GetRegion"), 1);
    assert_eq!(cluster.count("pd0/GetRegion"), 0);
    let members = pd.get_members().await.unwrap();
    assert_eq!(members.members.len(), 3);
}

#[tokio::test]
async fn reconnects_when_the_leader_changes() {
    let cluster = MockCluster::start(2, 1, false).await;
    let urls = cluster.pd_endpoints();
    let pd = PdClient::connect(&urls, config()).await.unwrap();
    assert_eq!(pd.leader_url(), urls[0]);
    let before = pd.get_timestamp().await.unwrap();

    cluster.set_pd_down(0, true);
    cluster.set_pd_leader(1);
    // Uncached store lookup and a timestamp both go to the new leader.
    let store = pd.get_store(1).await.unwrap();
    assert_eq!(store.id, 1);
    assert_eq!(pd.leader_url(), urls[1]);
    let after = pd.get_timestamp().await.unwrap();
    assert!(after > before, "{after:?} after {before:?}");
    assert!(cluster.count("pd1/GetStore") >= 1);
    assert!(
        cluster.count("TsoStream") >= 2,
        "stream reopened on the new leader"
    );
}

#[tokio::test]
async fn unreachable_pd_is_an_error() {
    let cfg = Config {
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        ..config()
    };
    let err = PdClient::connect(&["127.0.0.1:1".to_owned()], cfg)
        .await
        .err()
        .expect("nothing listens on port 1");
    assert!(matches!(err, Error::PdUnavailable(_)), "{err}");

    let err = PdClient::connect(&[], config()).await.err().unwrap();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[tokio::test]
async fn pd_calls_fail_after_the_retry_budget() {
    let cluster = MockCluster::start(1, 1, false).await;
    let cfg = Config {
        pd_backoff: BackoffConfig::new(Duration::from_millis(1), Duration::from_millis(5), 3),
        ..config()
    };
    let pd = PdClient::connect(&cluster.pd_endpoints(), cfg)
        .await
        .unwrap();
    cluster.set_pd_down(0, true);
    let err = pd.get_region(b"k").await.unwrap_err();
    assert!(
        matches!(err, Error::PdUnavailable(_) | Error::Grpc { .. }),
        "{err}"
    );
    // The first try plus three retries.
    assert_eq!(cluster.count("GetRegion"), 4);
}

#[tokio::test]
async fn timestamps_are_batched_on_one_stream() {
    let cluster = MockCluster::start(1, 1, false).await;
    let pd = Arc::new(
        PdClient::connect(&cluster.pd_endpoints(), config())
            .await
            .unwrap(),
    );
    let callers = 200;
    // Hold PD's answers so callers pile up behind the in-flight requests.
    cluster.shared.tso_gate.send_replace(false);
    let mut all = Box::pin(futures::future::join_all(
        (0..callers).map(|_| pd.get_timestamp()),
    ));
    // One poll queues every caller; none can be answered yet.
    assert!(futures::poll!(&mut all).is_pending());
    wait_until("first tso request", Duration::from_secs(10), || {
        cluster.count("TsoRequest") >= 1
    })
    .await;
    cluster.shared.tso_gate.send_replace(true);
    let stamps: Vec<_> = all.await.into_iter().map(Result::unwrap).collect();

    let unique: HashSet<u64> = stamps.iter().map(|t| t.version()).collect();
    assert_eq!(unique.len(), callers);
    assert_eq!(cluster.count("TsoStream"), 1);
    // At most tso_max_pending (4) requests were sent while PD held its answers; after that
    // every request carried up to tso_max_batch (64) queued callers.
    let requests = cluster.count("TsoRequest");
    assert!(requests <= 8, "{requests} requests for {callers} callers");
    let later = pd.get_timestamp().await.unwrap();
    assert!(stamps.iter().all(|t| *t < later));
}

#[tokio::test]
async fn stores_are_cached_until_invalidated() {
    let cluster = MockCluster::start(1, 2, false).await;
    let pd = PdClient::connect(&cluster.pd_endpoints(), config())
        .await
        .unwrap();
    let a = pd.get_store(2).await.unwrap();
    let b = pd.get_store(2).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(cluster.count("GetStore"), 1);
    pd.invalidate_store(2);
    pd.get_store(2).await.unwrap();
    assert_eq!(cluster.count("GetStore"), 2);
    assert!(matches!(
        pd.get_store(99).await,
        Err(Error::StoreNotFound(99))
    ));
    assert_eq!(pd.get_all_stores().await.unwrap().len(), 2);
}

#[tokio::test]
async fn region_lookups() {
    let cluster = MockCluster::start(1, 1, false).await;
    let right = cluster.split(b"m");
    let pd = PdClient::connect(&cluster.pd_endpoints(), config())
        .await
        .unwrap();
    let left = pd.get_region(b"a").await.unwrap();
    assert_eq!(left.region.end_key, b"m");
    assert_eq!(left.leader.unwrap().store_id, 1);
    let by_id = pd.get_region_by_id(right).await.unwrap();
    assert_eq!(by_id.region.start_key, b"m");
    let all = pd.scan_regions(b"", b"", 0).await.unwrap();
    assert_eq!(all.len(), 2);
    let one = pd.scan_regions(b"n", b"", 0).await.unwrap();
    assert_eq!(one.len(), 1);
    assert!(matches!(
        pd.get_region_by_id(12345).await,
        Err(Error::RegionIdNotFound(12345))
    ));
}
