//! `RawGet` and `RawBatchGet`.

use super::{context, finish, read_snapshot, region_id, validate, RpcResult};
use crate::errors::{validate_cf, Result};
use crate::service::ServiceCtx;
use crate::storage::Storage;
use crate::work::Work;
use proto::kvrpcpb::{
    KvPair, RawBatchGetRequest, RawBatchGetResponse, RawGetRequest, RawGetResponse,
};

/// Reads one key. An absent key is not an error: the response says `not_found = true` (an empty
/// value alone would be indistinguishable from a stored empty value on the wire).
pub(in crate::service) async fn get<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawGetRequest,
) -> RpcResult<RawGetResponse> {
    let region_id = region_id(&req.context);
    finish("raw_get", region_id, get_inner(ctx, req).await)
}

async fn get_inner<S: Storage>(ctx: &ServiceCtx<S>, req: RawGetRequest) -> Result<RawGetResponse> {
    let cf = validate_cf(&req.cf)?;
    validate::key(&ctx.limits, &req.key)?;
    let snap = ctx.storage.snapshot(&context(req.context)?).await?;
    let key = req.key;
    let value = read_snapshot(snap, Work::Keys(1), move |s| Ok(s.get_value_cf(cf, &key)?)).await?;
    Ok(match value {
        Some(value) => RawGetResponse {
            value,
            ..Default::default()
        },
        None => RawGetResponse {
            not_found: true,
            ..Default::default()
        },
    })
}

/// Reads several keys from one snapshot. Pairs come back in request order and only for keys that
/// exist (the clients treat a missing pair as an absent key).
pub(in crate::service) async fn batch_get<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawBatchGetRequest,
) -> RpcResult<RawBatchGetResponse> {
    let region_id = region_id(&req.context);
    finish("raw_batch_get", region_id, batch_get_inner(ctx, req).await)
}

async fn batch_get_inner<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawBatchGetRequest,
) -> Result<RawBatchGetResponse> {
    let cf = validate_cf(&req.cf)?;
    for key in &req.keys {
        validate::key(&ctx.limits, key)?;
    }
    if req.keys.is_empty() {
        return Ok(RawBatchGetResponse::default());
    }
    let snap = ctx.storage.snapshot(&context(req.context)?).await?;
    let keys = req.keys;
    let pairs = read_snapshot(snap, Work::Keys(keys.len()), move |s| {
        let mut pairs = Vec::new();
        for key in keys {
            if let Some(value) = s.get_value_cf(cf, &key)? {
                pairs.push(KvPair {
                    key,
                    value,
                    ..Default::default()
                });
            }
        }
        Ok(pairs)
    })
    .await?;
    Ok(RawBatchGetResponse {
        pairs,
        ..Default::default()
    })
}
