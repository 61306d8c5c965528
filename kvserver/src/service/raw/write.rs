//! `RawPut`, `RawBatchPut`, `RawDelete`, `RawBatchDelete` and `RawDeleteRange`.
//!
//! Each request becomes one atomic batch: a batch either applies whole or not at all, and a
//! request rejected by validation writes nothing.

use proto::kvrpcpb::{
    Context, RawBatchDeleteRequest, RawBatchDeleteResponse, RawBatchPutRequest,
    RawBatchPutResponse, RawDeleteRangeRequest, RawDeleteRangeResponse, RawDeleteRequest,
    RawDeleteResponse, RawPutRequest, RawPutResponse,
};

use super::validate::{self, ScanRange};
use super::{context, finish, region_id, RpcResult};
use crate::errors::{validate_cf, Result};
use crate::service::ServiceCtx;
use crate::storage::{Modify, Storage};

/// Checks the batch fits in one Raft entry, then writes it. With `for_cas`, the keys' latches are
/// held across the write so it cannot land between a compare-and-swap's read and its write.
async fn write_batch<S: Storage>(
    ctx: &ServiceCtx<S>,
    context: Context,
    batch: Vec<Modify>,
    for_cas: bool,
) -> Result<()> {
    validate::write_size(&ctx.limits, &batch)?;
    if batch.is_empty() {
        return Ok(());
    }
    let _latches = if for_cas {
        let keys: Vec<&[u8]> = batch.iter().filter_map(Modify::key).collect();
        Some(ctx.latches.acquire(&keys).await)
    } else {
        None
    };
    ctx.storage.write(&context, batch).await
}

/// Sets one key.
pub(in crate::service) async fn put<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawPutRequest,
) -> RpcResult<RawPutResponse> {
    let region_id = region_id(&req.context);
    finish("raw_put", region_id, put_inner(ctx, req).await)
}

async fn put_inner<S: Storage>(ctx: &ServiceCtx<S>, req: RawPutRequest) -> Result<RawPutResponse> {
    let cf = validate_cf(&req.cf)?;
    validate::key(&ctx.limits, &req.key)?;
    validate::no_ttl(req.ttl)?;
    let batch = vec![Modify::Put {
        cf,
        key: req.key,
        value: req.value,
    }];
    write_batch(ctx, context(req.context)?, batch, req.for_cas).await?;
    Ok(RawPutResponse::default())
}

/// Sets several keys atomically. An empty batch is a no-op.
pub(in crate::service) async fn batch_put<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawBatchPutRequest,
) -> RpcResult<RawBatchPutResponse> {
    let region_id = region_id(&req.context);
    finish("raw_batch_put", region_id, batch_put_inner(ctx, req).await)
}

async fn batch_put_inner<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawBatchPutRequest,
) -> Result<RawBatchPutResponse> {
    let cf = validate_cf(&req.cf)?;
    #[allow(deprecated)]
    // the single `ttl` field is deprecated in kvproto but still sent by old clients
    validate::no_ttl(req.ttl)?;
    for &ttl in &req.ttls {
        validate::no_ttl(ttl)?;
    }
    let mut batch = Vec::with_capacity(req.pairs.len());
    for pair in req.pairs {
        validate::key(&ctx.limits, &pair.key)?;
        batch.push(Modify::Put {
            cf,
            key: pair.key,
            value: pair.value,
        });
    }
    write_batch(ctx, context(req.context)?, batch, req.for_cas).await?;
    Ok(RawBatchPutResponse::default())
}

/// Removes one key; removing an absent key succeeds.
pub(in crate::service) async fn delete<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawDeleteRequest,
) -> RpcResult<RawDeleteResponse> {
    let region_id = region_id(&req.context);
    finish("raw_delete", region_id, delete_inner(ctx, req).await)
}

async fn delete_inner<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawDeleteRequest,
) -> Result<RawDeleteResponse> {
    let cf = validate_cf(&req.cf)?;
    validate::key(&ctx.limits, &req.key)?;
    let batch = vec![Modify::Delete { cf, key: req.key }];
    write_batch(ctx, context(req.context)?, batch, req.for_cas).await?;
    Ok(RawDeleteResponse::default())
}

/// Removes several keys atomically. An empty batch is a no-op.
pub(in crate::service) async fn batch_delete<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawBatchDeleteRequest,
) -> RpcResult<RawBatchDeleteResponse> {
    let region_id = region_id(&req.context);
    finish(
        "raw_batch_delete",
        region_id,
        batch_delete_inner(ctx, req).await,
    )
}

async fn batch_delete_inner<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawBatchDeleteRequest,
) -> Result<RawBatchDeleteResponse> {
    let cf = validate_cf(&req.cf)?;
    let mut batch = Vec::with_capacity(req.keys.len());
    for key in req.keys {
        validate::key(&ctx.limits, &key)?;
        batch.push(Modify::Delete { cf, key });
    }
    write_batch(ctx, context(req.context)?, batch, req.for_cas).await?;
    Ok(RawBatchDeleteResponse::default())
}

/// Removes every key in `[start_key, end_key)`; an empty `end_key` means +infinity, an empty
/// `start_key` the beginning of the key space. Equal bounds delete nothing; inverted bounds are
/// an error.
pub(in crate::service) async fn delete_range<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawDeleteRangeRequest,
) -> RpcResult<RawDeleteRangeResponse> {
    let region_id = region_id(&req.context);
    finish(
        "raw_delete_range",
        region_id,
        delete_range_inner(ctx, req).await,
    )
}

async fn delete_range_inner<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawDeleteRangeRequest,
) -> Result<RawDeleteRangeResponse> {
    let cf = validate_cf(&req.cf)?;
    let range = ScanRange::from_request(&ctx.limits, req.start_key, req.end_key, false)?;
    if range.is_empty() {
        return Ok(RawDeleteRangeResponse::default());
    }
    let batch = vec![Modify::DeleteRange {
        cf,
        start_key: range.lower,
        end_key: range.upper,
    }];
    write_batch(ctx, context(req.context)?, batch, false).await?;
    Ok(RawDeleteRangeResponse::default())
}
