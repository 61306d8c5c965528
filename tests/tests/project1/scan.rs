//! `RawScan` and `RawBatchScan`: limit, end key, reverse, key_only, and visibility of writes.

use proto::kvrpcpb::*;

use crate::harness::*;

/// Puts `k1..=k5` with values `v1..=v5`.
async fn five_keys(c: &mut Client) {
    for i in 1..=5 {
        put(
            c,
            "",
            format!("k{i}").as_bytes(),
            format!("v{i}").as_bytes(),
        )
        .await;
    }
}

#[tokio::test]
async fn scan_honours_the_limit() {
    let s = TestServer::start().await;
    let mut c = s.client();
    five_keys(&mut c).await;
    let got = scan(&mut c, scan_req(b"k1", b"", 3)).await;
    assert_eq!(got, kv(&[("k1", "v1"), ("k2", "v2"), ("k3", "v3")]));
    // Starting between keys, and a limit larger than what exists.
    let got = scan(&mut c, scan_req(b"k3x", b"", 100)).await;
    assert_eq!(got, kv(&[("k4", "v4"), ("k5", "v5")]));
}

#[tokio::test]
async fn scan_sees_puts_and_skips_deletes() {
    let s = TestServer::start().await;
    let mut c = s.client();
    five_keys(&mut c).await;
    put(&mut c, "", b"k0", b"v0").await;
    delete(&mut c, "", b"k3").await;
    let got = scan(&mut c, scan_req(b"k1", b"", 10)).await;
    assert_eq!(
        got,
        kv(&[("k1", "v1"), ("k2", "v2"), ("k4", "v4"), ("k5", "v5")])
    );
    let all = scan(&mut c, scan_req(b"", b"", 10)).await;
    assert_eq!(all.len(), 5);
    assert_eq!(all[0], (b"k0".to_vec(), b"v0".to_vec()));
}

#[tokio::test]
async fn scan_stops_before_the_end_key() {
    let s = TestServer::start().await;
    let mut c = s.client();
    five_keys(&mut c).await;
    let got = scan(&mut c, scan_req(b"k2", b"k4", 10)).await;
    assert_eq!(got, kv(&[("k2", "v2"), ("k3", "v3")]));
    // Equal bounds: an empty range, not an error.
    assert!(scan(&mut c, scan_req(b"k2", b"k2", 10)).await.is_empty());
}

#[tokio::test]
async fn reverse_scan_reads_start_key_as_the_exclusive_upper_bound() {
    let s = TestServer::start().await;
    let mut c = s.client();
    five_keys(&mut c).await;
    let rev = |start: &[u8], end: &[u8], limit| RawScanRequest {
        reverse: true,
        ..scan_req(start, end, limit)
    };
    // [k2, k5) walked from the top.
    let got = scan(&mut c, rev(b"k5", b"k2", 10)).await;
    assert_eq!(got, kv(&[("k4", "v4"), ("k3", "v3"), ("k2", "v2")]));
    // Empty start_key: from the very end; the limit counts from the top.
    let got = scan(&mut c, rev(b"", b"", 2)).await;
    assert_eq!(got, kv(&[("k5", "v5"), ("k4", "v4")]));
    // Empty end_key: down to the first key.
    let got = scan(&mut c, rev(b"k3", b"", 10)).await;
    assert_eq!(got, kv(&[("k2", "v2"), ("k1", "v1")]));
}

#[tokio::test]
async fn key_only_scans_return_keys_without_values() {
    let s = TestServer::start().await;
    let mut c = s.client();
    five_keys(&mut c).await;
    let got = scan(
        &mut c,
        RawScanRequest {
            key_only: true,
            ..scan_req(b"k1", b"k4", 10)
        },
    )
    .await;
    assert_eq!(got, keys(&["k1", "k2", "k3"]));
    let got = scan(
        &mut c,
        RawScanRequest {
            key_only: true,
            reverse: true,
            ..scan_req(b"", b"k4", 10)
        },
    )
    .await;
    assert_eq!(got, keys(&["k5", "k4"]));
}

#[tokio::test]
async fn batch_scan_concatenates_ranges_with_each_limit() {
    let s = TestServer::start().await;
    let mut c = s.client();
    five_keys(&mut c).await;
    let range = |a: &[u8], b: &[u8]| KeyRange {
        start_key: a.to_vec(),
        end_key: b.to_vec(),
    };
    let r = c
        .raw_batch_scan(RawBatchScanRequest {
            ranges: vec![range(b"k1", b"k3"), range(b"k4", b""), range(b"x", b"y")],
            each_limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(r.kvs), kv(&[("k1", "v1"), ("k4", "v4")]));

    let r = c
        .raw_batch_scan(RawBatchScanRequest {
            ranges: vec![range(b"k3", b"k1"), range(b"", b"k5")],
            each_limit: 5,
            reverse: true,
            key_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pairs(r.kvs), keys(&["k2", "k1", "k5"]));
}
