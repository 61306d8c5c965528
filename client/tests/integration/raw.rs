//! Raw API across several regions.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};

use client::{BoundRange, Error, Key, KvPair, RawClient, MAX_SCAN_LIMIT};

use crate::config;
use crate::mock::MockCluster;

async fn setup(splits: &[&str]) -> (MockCluster, RawClient) {
    let cluster = MockCluster::start(1, 3, false).await;
    for s in splits {
        cluster.split(s.as_bytes());
    }
    let raw = RawClient::new_with_config(cluster.pd_endpoints(), config())
        .await
        .unwrap();
    (cluster, raw)
}

fn key(i: usize) -> String {
    format!("k{i:02}")
}

#[tokio::test]
async fn point_and_batch_operations_across_regions() {
    let (cluster, raw) = setup(&["k05", "k10", "k15"]).await;

    raw.put("k01", "v1").await.unwrap();
    assert_eq!(raw.get("k01").await.unwrap(), Some(b"v1".to_vec()));
    assert_eq!(raw.get("k02").await.unwrap(), None);
    raw.put("k03", "").await.unwrap();
    assert_eq!(
        raw.get("k03").await.unwrap(),
        Some(vec![]),
        "empty value is a value"
    );
    raw.delete("k01").await.unwrap();
    assert_eq!(raw.get("k01").await.unwrap(), None);

    let pairs: Vec<(String, String)> = (0..20).map(|i| (key(i), format!("v{i}"))).collect();
    raw.batch_put(pairs.clone()).await.unwrap();
    for (k, v) in &pairs {
        assert_eq!(
            cluster.raw_value("default", k.as_bytes()),
            Some(v.as_bytes().to_vec())
        );
    }
    // Four regions and at most four keys per request.
    assert!(cluster.count("RawBatchPut") >= 5);

    let got = raw
        .batch_get(vec!["k19", "k00", "missing", "k07", "k07"])
        .await
        .unwrap();
    assert_eq!(
        got,
        vec![
            KvPair::new("k00", "v0"),
            KvPair::new("k07", "v7"),
            KvPair::new("k19", "v19")
        ]
    );

    raw.batch_delete((0..20).step_by(2).map(key)).await.unwrap();
    let left = raw.scan(.., 100).await.unwrap();
    assert_eq!(left.len(), 10);
    assert!(left.iter().all(|p| p.key.as_bytes()[2] % 2 == 1));

    // A key given twice in one batch keeps its last value.
    raw.batch_put(vec![("dup", "a"), ("dup", "b")])
        .await
        .unwrap();
    assert_eq!(raw.get("dup").await.unwrap(), Some(b"b".to_vec()));
}

#[tokio::test]
async fn column_families_are_separate() {
    let (cluster, raw) = setup(&["m"]).await;
    let left = raw.region_for_key("a").await.unwrap();
    assert_eq!(
        (left.start_key.as_slice(), left.end_key.as_slice()),
        (&b""[..], &b"m"[..])
    );
    assert_eq!(left.leader.unwrap().store_id, 1);
    let locks = raw.with_cf("lock");
    raw.put("a", "default").await.unwrap();
    locks.put("a", "lock").await.unwrap();
    assert_eq!(raw.get("a").await.unwrap(), Some(b"default".to_vec()));
    assert_eq!(locks.get("a").await.unwrap(), Some(b"lock".to_vec()));
    assert_eq!(cluster.raw_value("lock", b"a"), Some(b"lock".to_vec()));
    assert_eq!(locks.scan(.., 10).await.unwrap().len(), 1);
}

/// Every scan, in both directions, matches a model over ranges that start, end and page at
/// region boundaries.
#[tokio::test]
async fn scans_match_the_model_across_region_boundaries() {
    let (_cluster, raw) = setup(&["k05", "k10", "k11", "k15"]).await;
    let model: BTreeMap<String, String> = (0..20).map(|i| (key(i), format!("v{i}"))).collect();
    raw.batch_put(model.clone()).await.unwrap();

    let bounds = |b: Option<usize>, inclusive: bool| match b {
        None => Bound::Unbounded,
        Some(i) if inclusive => Bound::Included(key(i)),
        Some(i) => Bound::Excluded(key(i)),
    };
    let points = [
        None,
        Some(0),
        Some(4),
        Some(5),
        Some(10),
        Some(11),
        Some(12),
        Some(19),
        Some(25),
    ];
    let limits = [1, 2, 3, 5, 6, 20, 100];
    let mut checked = 0;
    for start in points {
        for end in points {
            for (start_inc, end_inc) in [(true, false), (false, true)] {
                let lo = bounds(start, start_inc);
                let hi = bounds(end, end_inc);
                let expected: Vec<KvPair> = model
                    .iter()
                    .filter(|(k, _)| (lo.as_ref(), hi.as_ref()).contains(k))
                    .map(|(k, v)| KvPair::new(k.as_str(), v.as_str()))
                    .collect();
                for limit in limits {
                    let range = BoundRange::from((lo.clone(), hi.clone()));
                    let fwd = raw.scan(range.clone(), limit).await.unwrap();
                    let want: Vec<_> = expected.iter().take(limit as usize).cloned().collect();
                    assert_eq!(fwd, want, "scan {lo:?}..{hi:?} limit {limit}");
                    let rev = raw.scan_reverse(range.clone(), limit).await.unwrap();
                    let want: Vec<_> = expected
                        .iter()
                        .rev()
                        .take(limit as usize)
                        .cloned()
                        .collect();
                    assert_eq!(rev, want, "scan_reverse {lo:?}..{hi:?} limit {limit}");
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 1000);
    let keys = raw.scan_keys("k03".."k07", 10).await.unwrap();
    assert_eq!(
        keys,
        vec![
            Key::from("k03"),
            Key::from("k04"),
            Key::from("k05"),
            Key::from("k06")
        ]
    );
}

#[tokio::test]
async fn scan_limits_are_checked() {
    let (_cluster, raw) = setup(&[]).await;
    raw.put("a", "1").await.unwrap();
    assert!(raw.scan(.., 0).await.unwrap().is_empty());
    assert!(matches!(
        raw.scan(.., MAX_SCAN_LIMIT + 1).await,
        Err(Error::InvalidArgument(_))
    ));
    assert!(
        raw.scan("b".."a", 10).await.unwrap().is_empty(),
        "empty range"
    );
}

#[tokio::test]
async fn delete_range_spans_regions() {
    let (cluster, raw) = setup(&["k05", "k10", "k15"]).await;
    raw.batch_put((0..20).map(|i| (key(i), "v"))).await.unwrap();
    raw.delete_range("k03".."k12").await.unwrap();
    let left: Vec<Key> = raw.scan_keys(.., 100).await.unwrap();
    let want: Vec<Key> = (0..3).chain(12..20).map(|i| Key::from(key(i))).collect();
    assert_eq!(left, want);
    assert!(cluster.count("RawDeleteRange") >= 3);
    raw.delete_range("k14"..).await.unwrap();
    assert_eq!(raw.scan_keys(.., 100).await.unwrap().len(), 5);
    raw.delete_range(..).await.unwrap();
    assert_eq!(cluster.raw_len(), 0);
}

#[tokio::test]
async fn compare_and_swap() {
    let (_cluster, raw) = setup(&[]).await;
    let cas = raw.with_atomic_for_cas();
    assert_eq!(
        cas.compare_and_swap("k", None, "1").await.unwrap(),
        (None, true)
    );
    assert_eq!(
        cas.compare_and_swap("k", None, "2").await.unwrap(),
        (Some(b"1".to_vec()), false)
    );
    assert_eq!(
        cas.compare_and_swap("k", Some(b"0".to_vec()), "2")
            .await
            .unwrap(),
        (Some(b"1".to_vec()), false)
    );
    assert_eq!(
        cas.compare_and_swap("k", Some(b"1".to_vec()), "2")
            .await
            .unwrap(),
        (Some(b"1".to_vec()), true)
    );
    assert_eq!(raw.get("k").await.unwrap(), Some(b"2".to_vec()));
}
