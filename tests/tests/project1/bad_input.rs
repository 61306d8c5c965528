//! Every malformed request gets a clear error and changes nothing.
//!
//! Each test seeds a known state, sends bad requests, and compares the whole store before and
//! after. Limits come from `Limits::new_test_config()`: 8 KiB keys, 1 MiB Raft entries.

use proto::kvrpcpb::*;
use tonic::Code;

use crate::harness::*;

const MAX_KEY: usize = 8 << 10;
const ENTRY: usize = 1 << 20;

async fn seeded() -> TestServer {
    let s = TestServer::start().await;
    assert_eq!(s.cfg.limits.max_key_size, MAX_KEY);
    assert_eq!(s.cfg.limits.raft_entry_max_size, ENTRY);
    let mut c = s.client();
    for k in ["a", "b", "c"] {
        put(&mut c, "", k.as_bytes(), b"seed").await;
    }
    s
}

/// Asserts a raw `error` string is set, mentions `needle`, and no region error was given.
fn assert_error(
    rpc: &str,
    error: &str,
    region_error: &Option<proto::errorpb::Error>,
    needle: &str,
) {
    assert!(region_error.is_none(), "{rpc}: unexpected region error");
    assert!(
        error.contains(needle),
        "{rpc}: expected an error mentioning {needle:?}, got {error:?}"
    );
}

fn assert_status(
    rpc: &str,
    res: Result<impl std::fmt::Debug, tonic::Status>,
    code: Code,
    needle: &str,
) {
    let st = res.expect_err(rpc);
    assert_eq!(st.code(), code, "{rpc}: {st:?}");
    assert!(
        st.message().contains(needle),
        "{rpc}: expected {needle:?} in {:?}",
        st.message()
    );
}

#[tokio::test]
async fn empty_keys_are_rejected() {
    let s = seeded().await;
    let before = s.dump();
    let mut c = s.client();
    let n = "must not be empty";

    let r = c
        .raw_put(RawPutRequest {
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("put", &r.error, &r.region_error, n);
    let r = c
        .raw_get(RawGetRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_error("get", &r.error, &r.region_error, n);
    assert!(!r.not_found);
    let r = c
        .raw_delete(RawDeleteRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_error("delete", &r.error, &r.region_error, n);
    let r = c
        .raw_compare_and_swap(RawCasRequest {
            previous_not_exist: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("cas", &r.error, &r.region_error, n);
    assert!(!r.succeed);

    // One bad key spoils the whole batch: nothing of it is written.
    let pairs = vec![
        KvPair {
            key: b"new".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        },
        KvPair {
            key: vec![],
            value: b"v".to_vec(),
            ..Default::default()
        },
    ];
    let r = c
        .raw_batch_put(RawBatchPutRequest {
            pairs,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("batch_put", &r.error, &r.region_error, n);
    let r = c
        .raw_batch_delete(RawBatchDeleteRequest {
            keys: vec![b"a".to_vec(), vec![]],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("batch_delete", &r.error, &r.region_error, n);
    let res = c
        .raw_batch_get(RawBatchGetRequest {
            keys: vec![b"a".to_vec(), vec![]],
            ..Default::default()
        })
        .await;
    assert_status("batch_get", res, Code::InvalidArgument, n);

    assert_eq!(s.dump(), before);
}

#[tokio::test]
async fn keys_over_the_size_limit_are_rejected() {
    let s = seeded().await;
    let before = s.dump();
    let mut c = s.client();
    let big = vec![b'k'; MAX_KEY + 1];
    let n = "larger than the limit";

    let r = c
        .raw_put(RawPutRequest {
            key: big.clone(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("put", &r.error, &r.region_error, n);
    let r = c
        .raw_get(RawGetRequest {
            key: big.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("get", &r.error, &r.region_error, n);
    let r = c
        .raw_delete(RawDeleteRequest {
            key: big.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("delete", &r.error, &r.region_error, n);
    let r = c
        .raw_delete_range(RawDeleteRangeRequest {
            start_key: b"a".to_vec(),
            end_key: big.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("delete_range", &r.error, &r.region_error, n);
    let res = c
        .raw_scan(RawScanRequest {
            start_key: big.clone(),
            limit: 1,
            ..Default::default()
        })
        .await;
    assert_status("scan", res, Code::InvalidArgument, n);
    assert_eq!(s.dump(), before);

    // Exactly at the limit is fine.
    let max = vec![b'k'; MAX_KEY];
    put(&mut c, "", &max, b"v").await;
    assert_eq!(get(&mut c, "", &max).await, Some(b"v".to_vec()));
}

#[tokio::test]
async fn writes_over_the_raft_entry_limit_are_rejected_whole() {
    let s = seeded().await;
    let before = s.dump();
    let mut c = s.client();
    let n = "larger than the raft entry limit";

    let r = c
        .raw_put(RawPutRequest {
            key: b"big".to_vec(),
            value: vec![0; ENTRY],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("put", &r.error, &r.region_error, n);
    let r = c
        .raw_compare_and_swap(RawCasRequest {
            key: b"big".to_vec(),
            value: vec![0; ENTRY],
            previous_not_exist: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("cas", &r.error, &r.region_error, n);

    // Every value is small; together they exceed one entry.
    let pairs: Vec<KvPair> = (0..5)
        .map(|i| KvPair {
            key: format!("batch{i}").into_bytes(),
            value: vec![1; ENTRY / 4],
            ..Default::default()
        })
        .collect();
    let r = c
        .raw_batch_put(RawBatchPutRequest {
            pairs,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("batch_put", &r.error, &r.region_error, n);
    assert_eq!(s.dump(), before);

    // Far beyond the limit the transport refuses the message before any handler runs.
    let res = c
        .raw_put(RawPutRequest {
            key: b"huge".to_vec(),
            value: vec![0; 4 * ENTRY],
            ..Default::default()
        })
        .await;
    let st = res.expect_err("an oversized message must be refused");
    assert!(
        matches!(st.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{st:?}"
    );
    assert_eq!(s.dump(), before);

    // Just under the limit is accepted.
    put(&mut c, "", b"fits", &vec![2; ENTRY - 64]).await;
    assert_eq!(
        get(&mut c, "", b"fits").await.map(|v| v.len()),
        Some(ENTRY - 64)
    );
}

#[tokio::test]
async fn bad_scan_limits_and_inverted_ranges_are_rejected() {
    let s = seeded().await;
    let before = s.dump();
    let mut c = s.client();

    let res = c.raw_scan(scan_req(b"a", b"", 0)).await;
    assert_status(
        "scan limit 0",
        res,
        Code::InvalidArgument,
        "must be positive",
    );
    let res = c.raw_scan(scan_req(b"a", b"", 10241)).await;
    assert_status(
        "scan limit too large",
        res,
        Code::InvalidArgument,
        "larger than the maximum",
    );
    let res = c.raw_scan(scan_req(b"c", b"a", 10)).await;
    assert_status(
        "scan start > end",
        res,
        Code::InvalidArgument,
        "start_key must not be greater",
    );
    let res = c
        .raw_scan(RawScanRequest {
            reverse: true,
            ..scan_req(b"a", b"c", 10)
        })
        .await;
    assert_status(
        "reverse scan end > start",
        res,
        Code::InvalidArgument,
        "reverse scan",
    );
    let range = KeyRange {
        start_key: b"c".to_vec(),
        end_key: b"a".to_vec(),
    };
    let res = c
        .raw_batch_scan(RawBatchScanRequest {
            ranges: vec![range],
            each_limit: 10,
            ..Default::default()
        })
        .await;
    assert_status(
        "batch_scan start > end",
        res,
        Code::InvalidArgument,
        "start_key must not be greater",
    );
    let res = c
        .raw_batch_scan(RawBatchScanRequest {
            ranges: vec![KeyRange::default()],
            each_limit: 0,
            ..Default::default()
        })
        .await;
    assert_status(
        "batch_scan each_limit 0",
        res,
        Code::InvalidArgument,
        "must be positive",
    );

    let r = c
        .raw_delete_range(RawDeleteRangeRequest {
            start_key: b"c".to_vec(),
            end_key: b"a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error(
        "delete_range start > end",
        &r.error,
        &r.region_error,
        "start_key must not be greater",
    );
    assert_eq!(s.dump(), before);

    // The largest allowed limit works.
    assert_eq!(scan(&mut c, scan_req(b"", b"", 10240)).await.len(), 3);
}

#[tokio::test]
async fn unknown_column_families_are_rejected_by_every_rpc() {
    let s = seeded().await;
    let before = s.dump();
    let mut c = s.client();
    let cf = || "raft".to_string();
    let k = || b"a".to_vec();
    let n = "unknown column family";

    let r = c
        .raw_get(RawGetRequest {
            key: k(),
            cf: cf(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("get", &r.error, &r.region_error, n);
    let r = c
        .raw_put(RawPutRequest {
            key: k(),
            cf: cf(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("put", &r.error, &r.region_error, n);
    let r = c
        .raw_delete(RawDeleteRequest {
            key: k(),
            cf: cf(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("delete", &r.error, &r.region_error, n);
    let pairs = vec![KvPair {
        key: k(),
        ..Default::default()
    }];
    let r = c
        .raw_batch_put(RawBatchPutRequest {
            pairs,
            cf: cf(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("batch_put", &r.error, &r.region_error, n);
    let r = c
        .raw_batch_delete(RawBatchDeleteRequest {
            keys: vec![k()],
            cf: cf(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("batch_delete", &r.error, &r.region_error, n);
    let r = c
        .raw_delete_range(RawDeleteRangeRequest {
            end_key: b"z".to_vec(),
            cf: cf(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("delete_range", &r.error, &r.region_error, n);
    let r = c
        .raw_compare_and_swap(RawCasRequest {
            key: k(),
            cf: cf(),
            previous_value: b"seed".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("cas", &r.error, &r.region_error, n);
    let res = c
        .raw_batch_get(RawBatchGetRequest {
            keys: vec![k()],
            cf: cf(),
            ..Default::default()
        })
        .await;
    assert_status("batch_get", res, Code::InvalidArgument, n);
    let res = c
        .raw_scan(RawScanRequest {
            limit: 1,
            cf: cf(),
            ..Default::default()
        })
        .await;
    assert_status("scan", res, Code::InvalidArgument, n);
    let res = c
        .raw_batch_scan(RawBatchScanRequest {
            ranges: vec![KeyRange::default()],
            each_limit: 1,
            cf: cf(),
            ..Default::default()
        })
        .await;
    assert_status("batch_scan", res, Code::InvalidArgument, n);
    assert_eq!(s.dump(), before);
}

#[tokio::test]
async fn ttl_is_refused_rather_than_ignored() {
    let s = seeded().await;
    let before = s.dump();
    let mut c = s.client();
    let n = "TTL is not supported";

    let r = c
        .raw_put(RawPutRequest {
            key: b"t".to_vec(),
            value: b"v".to_vec(),
            ttl: 60,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("put", &r.error, &r.region_error, n);
    let pairs = || {
        vec![KvPair {
            key: b"t".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        }]
    };
    let r = c
        .raw_batch_put(RawBatchPutRequest {
            pairs: pairs(),
            ttls: vec![60],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("batch_put ttls", &r.error, &r.region_error, n);
    #[allow(deprecated)]
    let req = RawBatchPutRequest {
        pairs: pairs(),
        ttl: 60,
        ..Default::default()
    };
    let r = c.raw_batch_put(req).await.unwrap().into_inner();
    assert_error("batch_put ttl", &r.error, &r.region_error, n);
    let r = c
        .raw_compare_and_swap(RawCasRequest {
            key: b"t".to_vec(),
            value: b"v".to_vec(),
            previous_not_exist: true,
            ttl: 60,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_error("cas", &r.error, &r.region_error, n);
    assert!(!r.succeed);
    assert_eq!(s.dump(), before);
}

#[tokio::test]
async fn rpcs_we_do_not_serve_answer_unimplemented() {
    let s = TestServer::start().await;
    let mut c = s.client();
    let st = c.kv_gc(GcRequest::default()).await.unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented, "{st:?}");
    let st = c
        .raw_get_key_ttl(RawGetKeyTtlRequest {
            key: b"a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(st.code(), Code::Unimplemented, "{st:?}");
}
