//! Transactional API handlers: validate the request, run its [command](crate::txn::commands),
//! and build the kvproto response.
//!
//! Error channels, chosen by what clients actually read (see docs/TRANSACTIONS.md):
//! - a malformed request (zero start ts, unknown op, oversized key, ...) is answered with gRPC
//!   `INVALID_ARGUMENT` and executes nothing;
//! - routing problems go to `region_error`;
//! - transactional failures go to the response's `KeyError` field(s), built in
//!   `crate::errors` (the single wire mapping);
//! - `KvBatchGet` / `KvScan` carry per-key lock errors in their pairs, but clients ignore their
//!   response-level `error` for anything but locks, so other failures there become a gRPC status.

use std::collections::HashMap;

use proto::errorpb;
use proto::kvrpcpb::prewrite_request::PessimisticAction as PbPessimisticAction;
use proto::kvrpcpb::*;
use tonic::Status;

use super::ServiceCtx;
use crate::config::Limits;
use crate::errors::{txn_error_fields, Error};
use crate::mvcc::{ReadOptions, ScanEntry};
use crate::storage::Storage;
use crate::txn::actions::{
    Mutation as TxnMutation, MutationOp, PessimisticAction, PessimisticLockProps, TxnProps,
};
use crate::txn::{self, Executor, SecondaryLocksStatus, TxnStatus};

type RpcResult<T> = Result<T, Status>;

fn executor<S: Storage>(ctx: &ServiceCtx<S>) -> Executor<'_, S> {
    Executor::new(&ctx.storage, &ctx.latches)
}

fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg.into())
}

// ---- Request validation -----------------------------------------------------------------------

/// The request's context; keyspaces (API v2) are not supported.
fn context(c: Option<Context>) -> RpcResult<Context> {
    let c = c.unwrap_or_default();
    if c.api_version == ApiVersion::V2 as i32 {
        return Err(invalid("api version 2 (keyspaces) is not supported"));
    }
    Ok(c)
}

/// The context plus how a read treats locks.
fn read_context(c: Option<Context>) -> RpcResult<(Context, ReadOptions)> {
    let c = context(c)?;
    let ignore_locks = match IsolationLevel::try_from(c.isolation_level) {
        Ok(IsolationLevel::Si) => false,
        Ok(IsolationLevel::Rc) => true,
        _ => {
            return Err(invalid(format!(
                "unsupported isolation level {} (expected SI or RC)",
                c.isolation_level
            )))
        }
    };
    let read = ReadOptions {
        ignore_locks,
        bypass_locks: c.resolved_locks.clone(),
        access_locks: c.committed_locks.clone(),
    };
    Ok((c, read))
}

fn check_key(limits: &Limits, key: &[u8]) -> RpcResult<()> {
    if key.len() > limits.max_key_size {
        return Err(invalid(format!(
            "key of {} bytes exceeds max-key-size {}",
            key.len(),
            limits.max_key_size
        )));
    }
    Ok(())
}

fn check_keys<'k>(limits: &Limits, keys: impl IntoIterator<Item = &'k Vec<u8>>) -> RpcResult<()> {
    keys.into_iter().try_for_each(|k| check_key(limits, k))
}

fn check_ts(name: &str, ts: u64) -> RpcResult<()> {
    if ts == 0 {
        return Err(invalid(format!("{name} must be a non-zero timestamp")));
    }
    Ok(())
}

/// `commit_ts` must follow `start_ts` (0 = roll back, where allowed).
fn check_commit_ts(start_ts: u64, commit_ts: u64, zero_ok: bool) -> RpcResult<()> {
    if (commit_ts == 0 && zero_ok) || commit_ts > start_ts {
        return Ok(());
    }
    Err(invalid(format!(
        "commit ts {commit_ts} must be greater than start ts {start_ts}"
    )))
}

// ---- Response helpers ---------------------------------------------------------------------------

fn kv_pairs(entries: Vec<ScanEntry>) -> Vec<KvPair> {
    entries
        .into_iter()
        .map(|(key, res)| match res {
            Ok(value) => KvPair {
                key,
                value,
                error: None,
            },
            Err(e) => KvPair {
                key,
                value: Vec::new(),
                error: Some(e.key_error()),
            },
        })
        .collect()
}

/// For responses whose clients only read `region_error` and per-pair errors.
fn region_error_or_status(e: Error) -> RpcResult<Option<errorpb::Error>> {
    match e.region_error() {
        Some(region_error) => Ok(Some(region_error)),
        None => Err(e.to_status()),
    }
}

/// For responses with a list of key errors.
fn errors_fields(e: &Error) -> (Option<errorpb::Error>, Vec<KeyError>) {
    let (region_error, key_error) = txn_error_fields(e);
    (region_error, key_error.into_iter().collect())
}

// ---- Reads ------------------------------------------------------------------------------------

pub(super) async fn get<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: GetRequest,
) -> RpcResult<GetResponse> {
    let (c, read) = read_context(req.context)?;
    check_key(&ctx.limits, &req.key)?;
    let cmd = txn::Get {
        key: req.key,
        ts: req.version,
        read,
    };
    let mut resp = GetResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(Some(value)) => resp.value = value,
        Ok(None) => resp.not_found = true,
        Err(e) => (resp.region_error, resp.error) = txn_error_fields(&e),
    }
    Ok(resp)
}

pub(super) async fn batch_get<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: BatchGetRequest,
) -> RpcResult<BatchGetResponse> {
    let (c, read) = read_context(req.context)?;
    check_keys(&ctx.limits, &req.keys)?;
    let cmd = txn::BatchGet {
        keys: req.keys,
        ts: req.version,
        read,
    };
    let mut resp = BatchGetResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(entries) => resp.pairs = kv_pairs(entries),
        Err(e) => resp.region_error = region_error_or_status(e)?,
    }
    Ok(resp)
}

pub(super) async fn scan<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: ScanRequest,
) -> RpcResult<ScanResponse> {
    let (c, read) = read_context(req.context)?;
    check_key(&ctx.limits, &req.start_key)?;
    check_key(&ctx.limits, &req.end_key)?;
    if req.limit > ctx.limits.max_scan_limit {
        return Err(invalid(format!(
            "scan limit {} exceeds max-scan-limit {}",
            req.limit, ctx.limits.max_scan_limit
        )));
    }
    let cmd = txn::Scan {
        start_key: req.start_key,
        end_key: req.end_key,
        limit: req.limit as usize,
        ts: req.version,
        key_only: req.key_only,
        reverse: req.reverse,
        read,
    };
    let mut resp = ScanResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(entries) => resp.pairs = kv_pairs(entries),
        Err(e) => resp.region_error = region_error_or_status(e)?,
    }
    Ok(resp)
}

pub(super) async fn scan_lock<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: ScanLockRequest,
) -> RpcResult<ScanLockResponse> {
    let c = context(req.context)?;
    check_key(&ctx.limits, &req.start_key)?;
    check_key(&ctx.limits, &req.end_key)?;
    let cmd = txn::ScanLock {
        max_ts: req.max_version,
        start_key: req.start_key,
        end_key: req.end_key,
        limit: req.limit as usize,
    };
    let mut resp = ScanLockResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(locks) => resp.locks = locks,
        Err(e) => (resp.region_error, resp.error) = txn_error_fields(&e),
    }
    Ok(resp)
}

// ---- Two-phase commit ---------------------------------------------------------------------------

fn mutation_op(m: &Mutation) -> RpcResult<MutationOp> {
    match Op::try_from(m.op) {
        Ok(Op::Put) => Ok(MutationOp::Put),
        Ok(Op::Del) => Ok(MutationOp::Delete),
        Ok(Op::Lock) => Ok(MutationOp::Lock),
        Ok(Op::Insert) => Ok(MutationOp::Insert),
        Ok(Op::CheckNotExists) => Ok(MutationOp::CheckNotExists),
        Ok(op @ (Op::Rollback | Op::PessimisticLock)) => Err(invalid(format!(
            "op {} is not allowed in a prewrite",
            op.as_str_name()
        ))),
        Err(_) => Err(invalid(format!("unknown mutation op {}", m.op))),
    }
}

fn pessimistic_action(raw: i32) -> RpcResult<PessimisticAction> {
    match PbPessimisticAction::try_from(raw) {
        Ok(PbPessimisticAction::SkipPessimisticCheck) => Ok(PessimisticAction::Skip),
        Ok(PbPessimisticAction::DoPessimisticCheck) => Ok(PessimisticAction::DoPessimisticCheck),
        Ok(PbPessimisticAction::DoConstraintCheck) => Ok(PessimisticAction::DoConstraintCheck),
        Err(_) => Err(invalid(format!("unknown pessimistic action {raw}"))),
    }
}

fn prewrite_command(limits: &Limits, req: PrewriteRequest) -> RpcResult<txn::Prewrite> {
    check_ts("start_version", req.start_version)?;
    check_key(limits, &req.primary_lock)?;
    let pessimistic = req.for_update_ts != 0;
    // Actions pair with mutations by position. More actions than mutations are ignored, as
    // TiKV does: TiKV's client splits a pessimistic prewrite's mutations by region but sends
    // every shard the whole action list. Fewer would leave mutations without one.
    if !req.pessimistic_actions.is_empty() && req.pessimistic_actions.len() < req.mutations.len() {
        return Err(invalid(format!(
            "{} pessimistic actions for {} mutations",
            req.pessimistic_actions.len(),
            req.mutations.len()
        )));
    }
    let mut size = req.primary_lock.len();
    let mut mutations = Vec::with_capacity(req.mutations.len());
    for (i, m) in req.mutations.into_iter().enumerate() {
        check_key(limits, &m.key)?;
        let op = mutation_op(&m)?;
        if pessimistic && op == MutationOp::CheckNotExists {
            return Err(invalid(
                "CheckNotExists is not allowed in a pessimistic prewrite (check it when locking)",
            ));
        }
        let action = match req.pessimistic_actions.get(i) {
            Some(&a) => pessimistic_action(a)?,
            None if pessimistic => PessimisticAction::DoPessimisticCheck,
            None => PessimisticAction::Skip,
        };
        size += m.key.len() + m.value.len();
        mutations.push(TxnMutation {
            op,
            key: m.key,
            value: m.value,
            pessimistic_action: action,
        });
    }
    if size > limits.raft_entry_max_size {
        return Err(invalid(format!(
            "prewrite of {size} bytes exceeds raft-entry-max-size {}",
            limits.raft_entry_max_size
        )));
    }
    Ok(txn::Prewrite {
        start_ts: req.start_version,
        props: TxnProps {
            primary: req.primary_lock,
            lock_ttl: req.lock_ttl,
            txn_size: req.txn_size,
            for_update_ts: req.for_update_ts,
            min_commit_ts: req.min_commit_ts,
            skip_constraint_check: req.skip_constraint_check,
        },
        mutations,
    })
}

pub(super) async fn prewrite<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: PrewriteRequest,
) -> RpcResult<PrewriteResponse> {
    let c = context(req.context.clone())?;
    // Async commit and 1PC are not implemented: answering with min_commit_ts = 0 and
    // one_pc_commit_ts = 0 is the protocol's "fell back to two-phase commit".
    let cmd = prewrite_command(&ctx.limits, req)?;
    let mut resp = PrewriteResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(result) => resp.errors = result.errors.iter().map(Error::key_error).collect(),
        Err(e) => (resp.region_error, resp.errors) = errors_fields(&e),
    }
    Ok(resp)
}

pub(super) async fn commit<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: CommitRequest,
) -> RpcResult<CommitResponse> {
    let c = context(req.context)?;
    check_ts("start_version", req.start_version)?;
    check_commit_ts(req.start_version, req.commit_version, false)?;
    check_keys(&ctx.limits, &req.keys)?;
    let cmd = txn::Commit {
        keys: req.keys,
        start_ts: req.start_version,
        commit_ts: req.commit_version,
    };
    let mut resp = CommitResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(()) => resp.commit_version = req.commit_version,
        Err(e) => (resp.region_error, resp.error) = txn_error_fields(&e),
    }
    Ok(resp)
}

pub(super) async fn batch_rollback<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: BatchRollbackRequest,
) -> RpcResult<BatchRollbackResponse> {
    let c = context(req.context)?;
    check_ts("start_version", req.start_version)?;
    check_keys(&ctx.limits, &req.keys)?;
    let cmd = txn::BatchRollback {
        keys: req.keys,
        start_ts: req.start_version,
    };
    let mut resp = BatchRollbackResponse::default();
    if let Err(e) = cmd.execute(&executor(ctx), &c).await {
        (resp.region_error, resp.error) = txn_error_fields(&e);
    }
    Ok(resp)
}

pub(super) async fn cleanup<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: CleanupRequest,
) -> RpcResult<CleanupResponse> {
    let c = context(req.context)?;
    check_ts("start_version", req.start_version)?;
    check_key(&ctx.limits, &req.key)?;
    let cmd = txn::Cleanup {
        key: req.key,
        start_ts: req.start_version,
        current_ts: req.current_ts,
    };
    let mut resp = CleanupResponse::default();
    if let Err(e) = cmd.execute(&executor(ctx), &c).await {
        resp.commit_version = e.committed_ts().unwrap_or_default();
        (resp.region_error, resp.error) = txn_error_fields(&e);
    }
    Ok(resp)
}

// ---- Lock resolution ----------------------------------------------------------------------------

pub(super) async fn check_txn_status<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: CheckTxnStatusRequest,
) -> RpcResult<CheckTxnStatusResponse> {
    let c = context(req.context)?;
    check_ts("lock_ts", req.lock_ts)?;
    check_key(&ctx.limits, &req.primary_key)?;
    let primary_key = req.primary_key.clone();
    let cmd = txn::CheckTxnStatus {
        primary_key: req.primary_key,
        lock_ts: req.lock_ts,
        caller_start_ts: req.caller_start_ts,
        current_ts: req.current_ts,
        rollback_if_not_exist: req.rollback_if_not_exist,
        resolving_pessimistic_lock: req.resolving_pessimistic_lock,
        verify_is_primary: req.verify_is_primary,
    };
    // Clients require (commit_version, lock_ttl, lock_info) to be exactly one of (0, 0, none)
    // rolled back, (ts, 0, none) committed, (0, ttl > 0, some) locked.
    let mut resp = CheckTxnStatusResponse::default();
    let action = match cmd.execute(&executor(ctx), &c).await {
        Ok(TxnStatus::RolledBack) => Action::NoAction,
        Ok(TxnStatus::TtlExpire) => Action::TtlExpireRollback,
        Ok(TxnStatus::LockNotExist) => Action::LockNotExistRollback,
        Ok(TxnStatus::PessimisticRollBack) => Action::TtlExpirePessimisticRollback,
        Ok(TxnStatus::LockNotExistDoNothing) => Action::LockNotExistDoNothing,
        Ok(TxnStatus::Committed { commit_ts }) => {
            resp.commit_version = commit_ts;
            Action::NoAction
        }
        Ok(TxnStatus::Uncommitted {
            lock,
            min_commit_ts_pushed,
        }) => {
            // A lock stored with TTL 0 is still "locked": report 1 ms so it cannot be mistaken
            // for a rollback.
            resp.lock_ttl = lock.ttl.max(1);
            resp.lock_info = Some(lock.into_lock_info(primary_key));
            if min_commit_ts_pushed {
                Action::MinCommitTsPushed
            } else {
                Action::NoAction
            }
        }
        Err(e) => {
            (resp.region_error, resp.error) = txn_error_fields(&e);
            Action::NoAction
        }
    };
    resp.action = action as i32;
    Ok(resp)
}

pub(super) async fn check_secondary_locks<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: CheckSecondaryLocksRequest,
) -> RpcResult<CheckSecondaryLocksResponse> {
    let c = context(req.context)?;
    check_ts("start_version", req.start_version)?;
    check_keys(&ctx.limits, &req.keys)?;
    let cmd = txn::CheckSecondaryLocks {
        keys: req.keys,
        start_ts: req.start_version,
    };
    let mut resp = CheckSecondaryLocksResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(SecondaryLocksStatus::Locked(locks)) => resp.locks = locks,
        Ok(SecondaryLocksStatus::Committed(commit_ts)) => resp.commit_ts = commit_ts,
        Ok(SecondaryLocksStatus::RolledBack) => {}
        Err(e) => (resp.region_error, resp.error) = txn_error_fields(&e),
    }
    Ok(resp)
}

fn resolve_lock_command(limits: &Limits, req: ResolveLockRequest) -> RpcResult<txn::ResolveLock> {
    check_keys(limits, &req.keys)?;
    let mut txn_status = HashMap::new();
    if req.txn_infos.is_empty() {
        check_ts("start_version", req.start_version)?;
        check_commit_ts(req.start_version, req.commit_version, true)?;
        txn_status.insert(req.start_version, req.commit_version);
    } else {
        if !req.keys.is_empty() {
            return Err(invalid(
                "keys can only be resolved for a single transaction",
            ));
        }
        for info in &req.txn_infos {
            check_ts("txn_infos.txn", info.txn)?;
            check_commit_ts(info.txn, info.status, true)?;
            if txn_status
                .insert(info.txn, info.status)
                .is_some_and(|s| s != info.status)
            {
                return Err(invalid(format!(
                    "txn {} listed with two different statuses",
                    info.txn
                )));
            }
        }
    }
    Ok(txn::ResolveLock {
        txn_status,
        keys: req.keys,
    })
}

pub(super) async fn resolve_lock<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: ResolveLockRequest,
) -> RpcResult<ResolveLockResponse> {
    let c = context(req.context.clone())?;
    let cmd = resolve_lock_command(&ctx.limits, req)?;
    let mut resp = ResolveLockResponse::default();
    if let Err(e) = cmd.execute(&executor(ctx), &c).await {
        (resp.region_error, resp.error) = txn_error_fields(&e);
    }
    Ok(resp)
}

pub(super) async fn txn_heart_beat<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: TxnHeartBeatRequest,
) -> RpcResult<TxnHeartBeatResponse> {
    let c = context(req.context)?;
    check_ts("start_version", req.start_version)?;
    check_key(&ctx.limits, &req.primary_lock)?;
    let cmd = txn::TxnHeartBeat {
        primary_key: req.primary_lock,
        start_ts: req.start_version,
        advise_lock_ttl: req.advise_lock_ttl,
    };
    let mut resp = TxnHeartBeatResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(ttl) => resp.lock_ttl = ttl,
        Err(e) => (resp.region_error, resp.error) = txn_error_fields(&e),
    }
    Ok(resp)
}

// ---- Pessimistic transactions ------------------------------------------------------------------

fn pessimistic_lock_command(
    limits: &Limits,
    req: PessimisticLockRequest,
) -> RpcResult<txn::PessimisticLock> {
    check_ts("start_version", req.start_version)?;
    check_ts("for_update_ts", req.for_update_ts)?;
    check_key(limits, &req.primary_lock)?;
    if req.lock_only_if_exists && !req.return_values {
        return Err(invalid("lock_only_if_exists requires return_values"));
    }
    let mut keys = Vec::with_capacity(req.mutations.len());
    for m in req.mutations {
        check_key(limits, &m.key)?;
        if m.op != Op::PessimisticLock as i32 {
            return Err(invalid(format!(
                "pessimistic lock requests take PessimisticLock mutations, not op {}",
                m.op
            )));
        }
        keys.push((m.key, m.assertion == Assertion::NotExist as i32));
    }
    // `wait_timeout` is not honoured: a lock held by another transaction is reported at once
    // (as `locked`), which is what clients expect from a wait timeout of 0.
    Ok(txn::PessimisticLock {
        start_ts: req.start_version,
        props: PessimisticLockProps {
            primary: req.primary_lock,
            lock_ttl: req.lock_ttl,
            for_update_ts: req.for_update_ts,
            min_commit_ts: req.min_commit_ts,
            need_value: req.return_values,
            need_check_existence: req.check_existence,
            lock_only_if_exists: req.lock_only_if_exists,
        },
        keys,
    })
}

pub(super) async fn pessimistic_lock<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: PessimisticLockRequest,
) -> RpcResult<PessimisticLockResponse> {
    let c = context(req.context.clone())?;
    let (return_values, check_existence) = (req.return_values, req.check_existence);
    let cmd = pessimistic_lock_command(&ctx.limits, req)?;
    let mut resp = PessimisticLockResponse::default();
    match cmd.execute(&executor(ctx), &c).await {
        Ok(result) if !result.errors.is_empty() => {
            resp.errors = result.errors.iter().map(Error::key_error).collect();
        }
        Ok(result) => {
            // Clients need `values` in request order and `not_founds` empty or just as long.
            if return_values || check_existence {
                resp.not_founds = result.values.iter().map(Option::is_none).collect();
                resp.values = result
                    .values
                    .into_iter()
                    .map(|v| {
                        if return_values {
                            v.unwrap_or_default()
                        } else {
                            Vec::new()
                        }
                    })
                    .collect();
            }
        }
        Err(e) => (resp.region_error, resp.errors) = errors_fields(&e),
    }
    Ok(resp)
}

pub(super) async fn pessimistic_rollback<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: PessimisticRollbackRequest,
) -> RpcResult<PessimisticRollbackResponse> {
    let c = context(req.context)?;
    check_ts("start_version", req.start_version)?;
    check_keys(&ctx.limits, &req.keys)?;
    let cmd = txn::PessimisticRollback {
        keys: req.keys,
        start_ts: req.start_version,
        for_update_ts: req.for_update_ts,
    };
    let mut resp = PessimisticRollbackResponse::default();
    if let Err(e) = cmd.execute(&executor(ctx), &c).await {
        (resp.region_error, resp.errors) = errors_fields(&e);
    }
    Ok(resp)
}
