//! `RawBatchGet`, `RawBatchPut`, `RawBatchDelete` and `RawDeleteRange`.

use proto::kvrpcpb::*;

use crate::harness::*;

fn kv_pairs(items: &[(&str, &str)]) -> Vec<KvPair> {
    items
        .iter()
        .map(|(k, v)| KvPair {
            key: k.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
            ..Default::default()
        })
        .collect()
}

fn byte_keys(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|k| k.as_bytes().to_vec()).collect()
}

async fn batch_put(c: &mut Client, cf: &str, items: &[(&str, &str)]) {
    let r = c
        .raw_batch_put(RawBatchPutRequest {
            pairs: kv_pairs(items),
            cf: cf.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty() && r.region_error.is_none(), "{r:?}");
}

async fn batch_get(c: &mut Client, cf: &str, keys: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let r = c
        .raw_batch_get(RawBatchGetRequest {
            keys: byte_keys(keys),
            cf: cf.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.region_error.is_none(), "{r:?}");
    pairs(r.pairs)
}

#[tokio::test]
async fn batch_put_then_batch_get_in_request_order() {
    let s = TestServer::start().await;
    let mut c = s.client();
    batch_put(&mut c, "", &[("b", "2"), ("a", "1"), ("c", "3")]).await;
    batch_put(&mut c, "write", &[("a", "w")]).await;
    // Missing keys are simply absent from the answer.
    let got = batch_get(&mut c, "", &["c", "missing", "a"]).await;
    assert_eq!(got, kv(&[("c", "3"), ("a", "1")]));
    assert_eq!(
        batch_get(&mut c, "write", &["a", "b"]).await,
        kv(&[("a", "w")])
    );
    assert_eq!(get(&mut c, "", b"b").await, Some(b"2".to_vec()));
}

#[tokio::test]
async fn batch_delete_removes_exactly_its_keys() {
    let s = TestServer::start().await;
    let mut c = s.client();
    batch_put(&mut c, "", &[("a", "1"), ("b", "2"), ("c", "3")]).await;
    batch_put(&mut c, "lock", &[("a", "l")]).await;
    let r = c
        .raw_batch_delete(RawBatchDeleteRequest {
            keys: byte_keys(&["a", "c", "never"]),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty() && r.region_error.is_none(), "{r:?}");
    assert_eq!(
        scan(&mut c, scan_req(b"", b"", 10)).await,
        kv(&[("b", "2")])
    );
    assert_eq!(get(&mut c, "lock", b"a").await, Some(b"l".to_vec()));
}

#[tokio::test]
async fn empty_batches_are_no_ops() {
    let s = TestServer::start().await;
    let mut c = s.client();
    batch_put(&mut c, "", &[]).await;
    assert!(batch_get(&mut c, "", &[]).await.is_empty());
    let r = c
        .raw_batch_delete(RawBatchDeleteRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty());
    assert!(s.dump().is_empty());
}

#[tokio::test]
async fn delete_range_removes_the_half_open_range() {
    let s = TestServer::start().await;
    let mut c = s.client();
    let items: Vec<(String, String)> = (1..=6)
        .map(|i| (format!("k{i}"), format!("v{i}")))
        .collect();
    let items: Vec<(&str, &str)> = items
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    batch_put(&mut c, "", &items).await;
    batch_put(&mut c, "write", &[("k3", "w")]).await;

    let delete_range = |start: &[u8], end: &[u8]| RawDeleteRangeRequest {
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        ..Default::default()
    };
    let r = c
        .raw_delete_range(delete_range(b"k2", b"k4"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty() && r.region_error.is_none(), "{r:?}");
    let left = scan(
        &mut c,
        RawScanRequest {
            key_only: true,
            ..scan_req(b"", b"", 10)
        },
    )
    .await;
    assert_eq!(left, keys(&["k1", "k4", "k5", "k6"]));
    // Other column families are untouched.
    assert_eq!(get(&mut c, "write", b"k3").await, Some(b"w".to_vec()));

    // Equal bounds delete nothing; an empty end key means "to the end".
    let r = c
        .raw_delete_range(delete_range(b"k4", b"k4"))
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty());
    let r = c
        .raw_delete_range(delete_range(b"k5", b""))
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty());
    let left = scan(
        &mut c,
        RawScanRequest {
            key_only: true,
            ..scan_req(b"", b"", 10)
        },
    )
    .await;
    assert_eq!(left, keys(&["k1", "k4"]));
}
