//! `RawCompareAndSwap`.

use proto::kvrpcpb::{RawCasRequest, RawCasResponse};

use super::{context, finish, read_snapshot, region_id, validate, RpcResult};
use crate::errors::{validate_cf, Result};
use crate::service::ServiceCtx;
use crate::storage::{Modify, Storage};
use crate::work::Work;

/// Sets `key` to `value` only if its current state is the expected one: absent when
/// `previous_not_exist`, otherwise exactly `previous_value`.
///
/// The key's latch is held from the read to the end of the write, so two swaps on one key (or a
/// swap and a `for_cas` put/delete) cannot interleave. The response always reports the state the
/// comparison saw (`previous_not_exist`/`previous_value`), whether or not the swap happened.
pub(in crate::service) async fn compare_and_swap<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: RawCasRequest,
) -> RpcResult<RawCasResponse> {
    let region_id = region_id(&req.context);
    finish("raw_compare_and_swap", region_id, cas_inner(ctx, req).await)
}

async fn cas_inner<S: Storage>(ctx: &ServiceCtx<S>, req: RawCasRequest) -> Result<RawCasResponse> {
    let cf = validate_cf(&req.cf)?;
    validate::key(&ctx.limits, &req.key)?;
    validate::no_ttl(req.ttl)?;
    let swap = vec![Modify::Put {
        cf,
        key: req.key.clone(),
        value: req.value,
    }];
    validate::write_size(&ctx.limits, &swap)?;

    let context = context(req.context)?;
    let _latch = ctx.latches.acquire(&[&req.key]).await;
    // The snapshot is taken under the latch, so it includes every earlier swap of this key.
    let snap = ctx.storage.snapshot(&context).await?;
    let key = req.key;
    let current =
        read_snapshot(snap, Work::Keys(1), move |s| Ok(s.get_value_cf(cf, &key)?)).await?;

    let succeed = match &current {
        None => req.previous_not_exist,
        Some(value) => !req.previous_not_exist && *value == req.previous_value,
    };
    if succeed {
        ctx.storage.write(&context, swap).await?;
    }
    Ok(RawCasResponse {
        succeed,
        previous_not_exist: current.is_none(),
        previous_value: current.unwrap_or_default(),
        ..Default::default()
    })
}
