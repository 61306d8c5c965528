//! `RawScan` and `RawBatchScan`.
//!
//! Both read one snapshot, so every range sees the same point in time. Their responses have no
//! `error` field: invalid arguments are answered with gRPC `INVALID_ARGUMENT`.

use proto::kvrpcpb::{
    KvPair, RawBatchScanRequest, RawBatchScanResponse, RawScanRequest, RawScanResponse,
};
use raft_core::engine::EngineIterator;

use super::validate::{self, ScanRange};
use super::{context, finish, read_snapshot, region_id, RpcResult};
use crate::errors::{validate_cf, Result};
use crate::service::ServiceCtx;
use crate::storage::{RegionSnapshot, Storage};
use crate::work::Work;

/// How to walk one range.
#[derive(Debug, Clone, Copy)]
struct ScanOptions {
    cf: &'static str,
    limit: usize,
    key_only: bool,
    reverse: bool,
}

/// Appends up to `opts.limit` entries of `range` to `out`, in ascending key order or, with
/// `reverse`, descending. A region-bounded snapshot also clips the range to its region.
fn scan_range(
    snap: &RegionSnapshot,
    range: &ScanRange,
    opts: ScanOptions,
    out: &mut Vec<KvPair>,
) -> Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let mut it = snap.iter_cf(opts.cf, &range.lower, &range.upper)?;
    let mut valid = if opts.reverse {
        it.seek_to_last()?
    } else {
        it.seek_to_first()?
    };
    let mut taken = 0;
    while valid && taken < opts.limit {
        out.push(KvPair {
            key: it.key().to_vec(),
            value: if opts.key_only {
                Vec::new()
            } else {
                it.value().to_vec()
            },
            ..Default::default()
        });
        taken += 1;
        valid = if opts.reverse { it.prev()? } else { it.next()? };
    }
    Ok(())
}

/// Scans one range. See [`ScanRange::from_request`] for how `start_key`/`end_key` are read with
/// and without `reverse`.
pub(in crate::service) async fn scan<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawScanRequest,
) -> RpcResult<RawScanResponse> {
    let region_id = region_id(&req.context);
    finish("raw_scan", region_id, scan_inner(ctx, req).await)
}

async fn scan_inner<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawScanRequest,
) -> Result<RawScanResponse> {
    let opts = ScanOptions {
        cf: validate_cf(&req.cf)?,
        limit: validate::scan_limit(&ctx.limits, req.limit)?,
        key_only: req.key_only,
        reverse: req.reverse,
    };
    let range = ScanRange::from_request(&ctx.limits, req.start_key, req.end_key, req.reverse)?;
    let snap = ctx.storage.snapshot(&context(req.context)?).await?;
    let kvs = read_snapshot(snap, Work::Scan, move |s| {
        let mut kvs = Vec::new();
        scan_range(s, &range, opts, &mut kvs)?;
        Ok(kvs)
    })
    .await?;
    Ok(RawScanResponse {
        kvs,
        ..Default::default()
    })
}

/// Scans several ranges with the same options, up to `each_limit` entries per range. Results are
/// concatenated in the order the ranges were given.
pub(in crate::service) async fn batch_scan<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawBatchScanRequest,
) -> RpcResult<RawBatchScanResponse> {
    let region_id = region_id(&req.context);
    finish(
        "raw_batch_scan",
        region_id,
        batch_scan_inner(ctx, req).await,
    )
}

async fn batch_scan_inner<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawBatchScanRequest,
) -> Result<RawBatchScanResponse> {
    let opts = ScanOptions {
        cf: validate_cf(&req.cf)?,
        limit: validate::scan_limit(&ctx.limits, req.each_limit)?,
        key_only: req.key_only,
        reverse: req.reverse,
    };
    let ranges = req
        .ranges
        .into_iter()
        .map(|r| ScanRange::from_request(&ctx.limits, r.start_key, r.end_key, req.reverse))
        .collect::<Result<Vec<_>>>()?;
    if ranges.is_empty() {
        return Ok(RawBatchScanResponse::default());
    }
    let snap = ctx.storage.snapshot(&context(req.context)?).await?;
    let kvs = read_snapshot(snap, Work::Scan, move |s| {
        let mut kvs = Vec::new();
        for range in &ranges {
            scan_range(s, range, opts, &mut kvs)?;
        }
        Ok(kvs)
    })
    .await?;
    Ok(RawBatchScanResponse {
        kvs,
        ..Default::default()
    })
}
