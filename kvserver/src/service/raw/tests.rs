//! Handler-level tests of what the project1 suite cannot reach through a standalone server:
//! routing contexts reaching the storage, and region/storage errors landing in the right field.

use std::sync::Arc;

use parking_lot::Mutex;
use proto::errorpb;
use proto::kvrpcpb::*;
use tonic::Code;

use super::*;
use crate::config::Limits;
use crate::service::{ServiceCtx, TikvService};
use crate::storage::{Modify, Storage};

/// What a [`FakeStorage`] answers.
#[derive(Clone, Copy)]
enum Fail {
    Region,
    Other,
}

/// A storage that records the contexts it is handed and fails every call.
#[derive(Clone)]
struct FakeStorage {
    fail: Fail,
    seen: Arc<Mutex<Vec<u64>>>,
}

impl FakeStorage {
    fn error(&self, ctx: &Context) -> Error {
        self.seen.lock().push(ctx.region_id);
        match self.fail {
            Fail::Region => Error::Region(Box::new(errorpb::Error {
                message: "not leader".into(),
                not_leader: Some(errorpb::NotLeader {
                    region_id: ctx.region_id,
                    leader: None,
                }),
                ..Default::default()
            })),
            Fail::Other => Error::Other("storage is shutting down".into()),
        }
    }
}

impl Storage for FakeStorage {
    async fn write(&self, ctx: &Context, _batch: Vec<Modify>) -> Result<()> {
        Err(self.error(ctx))
    }
    async fn snapshot(&self, ctx: &Context) -> Result<RegionSnapshot> {
        Err(self.error(ctx))
    }
}

fn service(fail: Fail) -> Arc<ServiceCtx<FakeStorage>> {
    let storage = FakeStorage {
        fail,
        seen: Arc::default(),
    };
    TikvService::new(storage, Limits::default()).ctx().clone()
}

fn ctx7() -> Option<Context> {
    Some(Context {
        region_id: 7,
        ..Default::default()
    })
}

fn is_not_leader(e: &Option<errorpb::Error>) -> bool {
    e.as_ref()
        .is_some_and(|e| e.not_leader.as_ref().is_some_and(|n| n.region_id == 7))
}

/// One valid request of every raw RPC, each addressed to region 7; returns, per RPC, whether the
/// region error landed in `region_error` (and nothing else was set).
async fn every_rpc(s: &ServiceCtx<FakeStorage>) -> Vec<(&'static str, bool)> {
    let k = b"k".to_vec();
    let mut out = vec![];
    let r = get(
        s,
        RawGetRequest {
            context: ctx7(),
            key: k.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push((
        "get",
        is_not_leader(&r.region_error) && r.error.is_empty() && !r.not_found,
    ));
    let r = batch_get(
        s,
        RawBatchGetRequest {
            context: ctx7(),
            keys: vec![k.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push((
        "batch_get",
        is_not_leader(&r.region_error) && r.pairs.is_empty(),
    ));
    let r = put(
        s,
        RawPutRequest {
            context: ctx7(),
            key: k.clone(),
            value: b"v".to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push(("put", is_not_leader(&r.region_error) && r.error.is_empty()));
    let pairs = vec![KvPair {
        key: k.clone(),
        value: b"v".to_vec(),
        ..Default::default()
    }];
    let r = batch_put(
        s,
        RawBatchPutRequest {
            context: ctx7(),
            pairs,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push((
        "batch_put",
        is_not_leader(&r.region_error) && r.error.is_empty(),
    ));
    let r = delete(
        s,
        RawDeleteRequest {
            context: ctx7(),
            key: k.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push((
        "delete",
        is_not_leader(&r.region_error) && r.error.is_empty(),
    ));
    let r = batch_delete(
        s,
        RawBatchDeleteRequest {
            context: ctx7(),
            keys: vec![k.clone()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push((
        "batch_delete",
        is_not_leader(&r.region_error) && r.error.is_empty(),
    ));
    let r = scan(
        s,
        RawScanRequest {
            context: ctx7(),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push(("scan", is_not_leader(&r.region_error) && r.kvs.is_empty()));
    let ranges = vec![KeyRange::default()];
    let r = batch_scan(
        s,
        RawBatchScanRequest {
            context: ctx7(),
            ranges,
            each_limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push((
        "batch_scan",
        is_not_leader(&r.region_error) && r.kvs.is_empty(),
    ));
    let r = delete_range(
        s,
        RawDeleteRangeRequest {
            context: ctx7(),
            end_key: b"z".to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push((
        "delete_range",
        is_not_leader(&r.region_error) && r.error.is_empty(),
    ));
    let r = compare_and_swap(
        s,
        RawCasRequest {
            context: ctx7(),
            key: k,
            previous_not_exist: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    out.push((
        "compare_and_swap",
        is_not_leader(&r.region_error) && r.error.is_empty() && !r.succeed,
    ));
    out
}

#[tokio::test]
async fn region_errors_reach_region_error_with_the_request_context() {
    let s = service(Fail::Region);
    let results = every_rpc(&s).await;
    for (rpc, ok) in &results {
        assert!(ok, "{rpc}: region error not mapped to region_error");
    }
    // Every RPC handed its context (region 7) to the storage exactly once.
    assert_eq!(*s.storage.seen.lock(), vec![7; results.len()]);
}

#[tokio::test]
async fn other_errors_use_the_error_string_or_a_status() {
    let s = service(Fail::Other);
    let k = b"k".to_vec();
    let r = get(
        &s,
        RawGetRequest {
            key: k.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(r.region_error.is_none());
    assert!(r.error.contains("shutting down"), "{}", r.error);
    let r = put(
        &s,
        RawPutRequest {
            key: k.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(r.error.contains("shutting down"), "{}", r.error);
    let r = compare_and_swap(
        &s,
        RawCasRequest {
            key: k.clone(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(
        r.error.contains("shutting down") && !r.succeed,
        "{}",
        r.error
    );

    // No error field: the failure becomes a status instead of an empty (= "no keys") answer.
    let st = scan(
        &s,
        RawScanRequest {
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(st.code(), Code::Unavailable);
    let st = batch_get(
        &s,
        RawBatchGetRequest {
            keys: vec![k],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(st.code(), Code::Unavailable);
}

#[tokio::test]
async fn invalid_arguments_never_reach_storage() {
    let s = service(Fail::Other);
    let r = put(
        &s,
        RawPutRequest {
            cf: "raft".into(),
            key: b"k".to_vec(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(r.error.contains("unknown column family"), "{}", r.error);
    let r = get(&s, RawGetRequest::default()).await.unwrap();
    assert!(r.error.contains("must not be empty"), "{}", r.error);
    let st = scan(&s, RawScanRequest::default()).await.unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    let st = batch_scan(
        &s,
        RawBatchScanRequest {
            each_limit: 1,
            ranges: vec![KeyRange {
                start_key: b"b".to_vec(),
                end_key: b"a".to_vec(),
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(st.code(), Code::InvalidArgument);
    for version in [ApiVersion::V1ttl as i32, ApiVersion::V2 as i32, 99] {
        let context = Some(Context {
            api_version: version,
            ..Default::default()
        });
        let r = put(
            &s,
            RawPutRequest {
                context,
                key: b"k".to_vec(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(r.error.contains("is not supported"), "{}", r.error);
    }
    assert!(s.storage.seen.lock().is_empty());
}
