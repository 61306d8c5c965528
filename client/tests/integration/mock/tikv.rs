//! Mock `tikvpb.Tikv`: TiKV's routing checks (region, store, leader, epoch, key range) in the
//! order wire-compat §3.2 gives, then the raw or transactional command on the shared state.

use std::sync::Arc;

use proto::errorpb;
use proto::kvrpcpb::{self, Context};
use proto::tikvpb::tikv_server::Tikv;
use tonic::{Request, Response, Status};

use super::mvcc::locked;
use super::{MockRegion, Shared, State};

pub struct MockTikv {
    pub store_id: u64,
    pub shared: Arc<Shared>,
}

trait SetRegionError {
    fn set_region_error(&mut self, e: errorpb::Error);
}

macro_rules! set_region_error {
    ($($t:ident),*) => {$(
        impl SetRegionError for kvrpcpb::$t {
            fn set_region_error(&mut self, e: errorpb::Error) {
                self.region_error = Some(e);
            }
        }
    )*};
}

set_region_error!(
    RawGetResponse,
    RawBatchGetResponse,
    RawPutResponse,
    RawBatchPutResponse,
    RawDeleteResponse,
    RawBatchDeleteResponse,
    RawScanResponse,
    RawDeleteRangeResponse,
    RawCasResponse,
    GetResponse,
    BatchGetResponse,
    ScanResponse,
    PrewriteResponse,
    CommitResponse,
    BatchRollbackResponse,
    CheckTxnStatusResponse,
    ResolveLockResponse,
    TxnHeartBeatResponse,
    PessimisticLockResponse,
    PessimisticRollbackResponse
);

fn key_not_in_region(key: &[u8], region: &MockRegion) -> errorpb::Error {
    errorpb::Error {
        message: "key not in region".into(),
        key_not_in_region: Some(errorpb::KeyNotInRegion {
            key: key.to_vec(),
            region_id: region.meta.id,
            start_key: region.meta.start_key.clone(),
            end_key: region.meta.end_key.clone(),
        }),
        ..Default::default()
    }
}

fn cf_name(cf: &str) -> String {
    if cf.is_empty() {
        "default".into()
    } else {
        cf.into()
    }
}

impl MockTikv {
    async fn enter(&self, rpc: &str) -> Result<(), Status> {
        self.shared.count(rpc);
        self.shared.count(&format!("store{}/{rpc}", self.store_id));
        let delay = {
            let st = self.shared.state.lock();
            if st.stores_down.contains(&self.store_id) {
                return Err(Status::unavailable("store down"));
            }
            if let Some(code) = st.store_status {
                return Err(Status::new(code, "injected status"));
            }
            st.store_delay.get(&self.store_id).copied()
        };
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
        Ok(())
    }

    fn route(
        &self,
        st: &State,
        ctx: Option<&Context>,
        keys: &[&[u8]],
    ) -> Result<MockRegion, errorpb::Error> {
        let ctx = ctx.cloned().unwrap_or_default();
        let Some(region) = st.regions.get(&ctx.region_id).cloned() else {
            return Err(errorpb::Error {
                message: "region not found".into(),
                region_not_found: Some(errorpb::RegionNotFound {
                    region_id: ctx.region_id,
                }),
                ..Default::default()
            });
        };
        let peer_store = ctx.peer.map(|p| p.store_id).unwrap_or(0);
        if peer_store != self.store_id {
            return Err(errorpb::Error {
                message: "store not match".into(),
                store_not_match: Some(errorpb::StoreNotMatch {
                    request_store_id: peer_store,
                    actual_store_id: self.store_id,
                }),
                ..Default::default()
            });
        }
        if st.busy_stores.contains(&self.store_id) {
            return Err(errorpb::Error {
                message: "busy".into(),
                server_is_busy: Some(errorpb::ServerIsBusy {
                    reason: "injected".into(),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if region.leader_store != self.store_id {
            return Err(errorpb::Error {
                message: "not leader".into(),
                not_leader: Some(errorpb::NotLeader {
                    region_id: region.meta.id,
                    leader: st.not_leader_hint.then(|| st.leader_peer(&region)),
                }),
                ..Default::default()
            });
        }
        if ctx.region_epoch != region.meta.region_epoch {
            let current_regions = if st.epoch_regions {
                st.regions
                    .values()
                    .filter(|r| r.leader_store == self.store_id)
                    .map(|r| r.meta.clone())
                    .collect()
            } else {
                Vec::new()
            };
            return Err(errorpb::Error {
                message: "epoch not match".into(),
                epoch_not_match: Some(errorpb::EpochNotMatch { current_regions }),
                ..Default::default()
            });
        }
        for key in keys {
            if !st.region_contains(&region.meta, key) {
                return Err(key_not_in_region(key, &region));
            }
        }
        Ok(region)
    }

    /// Routes, then runs `f` on the state; a routing failure becomes the region error.
    async fn handle<R: Default + SetRegionError>(
        &self,
        rpc: &str,
        ctx: Option<&Context>,
        keys: &[&[u8]],
        f: impl FnOnce(&mut State, &MockRegion) -> R,
    ) -> Result<Response<R>, Status> {
        self.enter(rpc).await?;
        let mut st = self.shared.state.lock();
        Ok(Response::new(match self.route(&st, ctx, keys) {
            Ok(region) => f(&mut st, &region),
            Err(e) => {
                self.shared.count(&format!("{rpc}:region_error"));
                let mut r = R::default();
                r.set_region_error(e);
                r
            }
        }))
    }
}

/// Clamps `[lower, upper)` (empty upper: unbounded) to the region in user-key space; bounds
/// outside the region are the client's routing bug.
fn clamp(
    st: &State,
    region: &MockRegion,
    lower: &[u8],
    upper: &[u8],
) -> Result<(Vec<u8>, Option<Vec<u8>>), errorpb::Error> {
    let (rs, re) = st.user_bounds(&region.meta);
    if lower < rs.as_slice() || re.as_ref().is_some_and(|e| lower >= e.as_slice()) {
        return Err(key_not_in_region(lower, region));
    }
    let upper = if upper.is_empty() {
        re
    } else {
        if re.as_ref().is_some_and(|e| upper > e.as_slice()) {
            return Err(key_not_in_region(upper, region));
        }
        Some(upper.to_vec())
    };
    Ok((lower.to_vec(), upper))
}

fn in_range(key: &[u8], lower: &[u8], upper: &Option<Vec<u8>>) -> bool {
    key >= lower && upper.as_ref().is_none_or(|u| key < u.as_slice())
}

#[tonic::async_trait]
impl Tikv for MockTikv {
    async fn raw_get(
        &self,
        r: Request<kvrpcpb::RawGetRequest>,
    ) -> Result<Response<kvrpcpb::RawGetResponse>, Status> {
        let r = r.into_inner();
        self.handle("RawGet", r.context.as_ref(), &[&r.key], |st, _| {
            match st.raw.get(&cf_name(&r.cf)).and_then(|m| m.get(&r.key)) {
                Some(v) => kvrpcpb::RawGetResponse {
                    value: v.clone(),
                    ..Default::default()
                },
                None => kvrpcpb::RawGetResponse {
                    not_found: true,
                    ..Default::default()
                },
            }
        })
        .await
    }

    async fn raw_batch_get(
        &self,
        r: Request<kvrpcpb::RawBatchGetRequest>,
    ) -> Result<Response<kvrpcpb::RawBatchGetResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.keys.iter().map(Vec::as_slice).collect();
        self.handle("RawBatchGet", r.context.as_ref(), &keys, |st, _| {
            let map = st.raw.get(&cf_name(&r.cf));
            kvrpcpb::RawBatchGetResponse {
                pairs: r
                    .keys
                    .iter()
                    .filter_map(|k| {
                        map.and_then(|m| m.get(k)).map(|v| kvrpcpb::KvPair {
                            key: k.clone(),
                            value: v.clone(),
                            error: None,
                        })
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .await
    }

    async fn raw_put(
        &self,
        r: Request<kvrpcpb::RawPutRequest>,
    ) -> Result<Response<kvrpcpb::RawPutResponse>, Status> {
        let r = r.into_inner();
        self.handle("RawPut", r.context.as_ref(), &[&r.key], |st, _| {
            st.raw
                .entry(cf_name(&r.cf))
                .or_default()
                .insert(r.key.clone(), r.value.clone());
            kvrpcpb::RawPutResponse::default()
        })
        .await
    }

    async fn raw_batch_put(
        &self,
        r: Request<kvrpcpb::RawBatchPutRequest>,
    ) -> Result<Response<kvrpcpb::RawBatchPutResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.pairs.iter().map(|p| p.key.as_slice()).collect();
        self.handle("RawBatchPut", r.context.as_ref(), &keys, |st, _| {
            let map = st.raw.entry(cf_name(&r.cf)).or_default();
            for p in &r.pairs {
                map.insert(p.key.clone(), p.value.clone());
            }
            kvrpcpb::RawBatchPutResponse::default()
        })
        .await
    }

    async fn raw_delete(
        &self,
        r: Request<kvrpcpb::RawDeleteRequest>,
    ) -> Result<Response<kvrpcpb::RawDeleteResponse>, Status> {
        let r = r.into_inner();
        self.handle("RawDelete", r.context.as_ref(), &[&r.key], |st, _| {
            st.raw.entry(cf_name(&r.cf)).or_default().remove(&r.key);
            kvrpcpb::RawDeleteResponse::default()
        })
        .await
    }

    async fn raw_batch_delete(
        &self,
        r: Request<kvrpcpb::RawBatchDeleteRequest>,
    ) -> Result<Response<kvrpcpb::RawBatchDeleteResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.keys.iter().map(Vec::as_slice).collect();
        self.handle("RawBatchDelete", r.context.as_ref(), &keys, |st, _| {
            let map = st.raw.entry(cf_name(&r.cf)).or_default();
            for k in &r.keys {
                map.remove(k);
            }
            kvrpcpb::RawBatchDeleteResponse::default()
        })
        .await
    }

    async fn raw_scan(
        &self,
        r: Request<kvrpcpb::RawScanRequest>,
    ) -> Result<Response<kvrpcpb::RawScanResponse>, Status> {
        let r = r.into_inner();
        // Reverse: start_key is the exclusive upper bound, end_key the inclusive lower one.
        let (lower, upper) = if r.reverse {
            (r.end_key.clone(), r.start_key.clone())
        } else {
            (r.start_key.clone(), r.end_key.clone())
        };
        self.handle("RawScan", r.context.as_ref(), &[], |st, region| {
            let (lower, upper) = match clamp(st, region, &lower, &upper) {
                Ok(b) => b,
                Err(e) => {
                    return kvrpcpb::RawScanResponse {
                        region_error: Some(e),
                        ..Default::default()
                    }
                }
            };
            let empty = Default::default();
            let map = st.raw.get(&cf_name(&r.cf)).unwrap_or(&empty);
            let selected = map.iter().filter(|(k, _)| in_range(k, &lower, &upper));
            let pair = |(k, v): (&Vec<u8>, &Vec<u8>)| kvrpcpb::KvPair {
                key: k.clone(),
                value: if r.key_only { Vec::new() } else { v.clone() },
                error: None,
            };
            let kvs = if r.reverse {
                selected.rev().take(r.limit as usize).map(pair).collect()
            } else {
                selected.take(r.limit as usize).map(pair).collect()
            };
            kvrpcpb::RawScanResponse {
                kvs,
                ..Default::default()
            }
        })
        .await
    }

    async fn raw_delete_range(
        &self,
        r: Request<kvrpcpb::RawDeleteRangeRequest>,
    ) -> Result<Response<kvrpcpb::RawDeleteRangeResponse>, Status> {
        let r = r.into_inner();
        self.handle("RawDeleteRange", r.context.as_ref(), &[], |st, region| {
            let (lower, upper) = match clamp(st, region, &r.start_key, &r.end_key) {
                Ok(b) => b,
                Err(e) => {
                    return kvrpcpb::RawDeleteRangeResponse {
                        region_error: Some(e),
                        ..Default::default()
                    }
                }
            };
            if let Some(map) = st.raw.get_mut(&cf_name(&r.cf)) {
                map.retain(|k, _| !in_range(k, &lower, &upper));
            }
            kvrpcpb::RawDeleteRangeResponse::default()
        })
        .await
    }

    async fn raw_compare_and_swap(
        &self,
        r: Request<kvrpcpb::RawCasRequest>,
    ) -> Result<Response<kvrpcpb::RawCasResponse>, Status> {
        let r = r.into_inner();
        self.handle(
            "RawCompareAndSwap",
            r.context.as_ref(),
            &[&r.key],
            |st, _| {
                let map = st.raw.entry(cf_name(&r.cf)).or_default();
                let current = map.get(&r.key).cloned();
                let matches = if r.previous_not_exist {
                    current.is_none()
                } else {
                    current.as_ref() == Some(&r.previous_value)
                };
                if matches {
                    map.insert(r.key.clone(), r.value.clone());
                }
                kvrpcpb::RawCasResponse {
                    succeed: matches,
                    previous_not_exist: current.is_none(),
                    previous_value: current.unwrap_or_default(),
                    ..Default::default()
                }
            },
        )
        .await
    }

    async fn kv_get(
        &self,
        r: Request<kvrpcpb::GetRequest>,
    ) -> Result<Response<kvrpcpb::GetResponse>, Status> {
        let r = r.into_inner();
        self.handle("KvGet", r.context.as_ref(), &[&r.key], |st, _| {
            match st.mvcc.get(&r.key, r.version) {
                Err(lock) => kvrpcpb::GetResponse {
                    error: Some(locked(lock)),
                    ..Default::default()
                },
                Ok(Some(v)) => kvrpcpb::GetResponse {
                    value: v,
                    ..Default::default()
                },
                Ok(None) => kvrpcpb::GetResponse {
                    not_found: true,
                    ..Default::default()
                },
            }
        })
        .await
    }

    async fn kv_batch_get(
        &self,
        r: Request<kvrpcpb::BatchGetRequest>,
    ) -> Result<Response<kvrpcpb::BatchGetResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.keys.iter().map(Vec::as_slice).collect();
        self.handle("KvBatchGet", r.context.as_ref(), &keys, |st, _| {
            kvrpcpb::BatchGetResponse {
                pairs: r
                    .keys
                    .iter()
                    .filter_map(|k| match st.mvcc.get(k, r.version) {
                        Err(lock) => Some(kvrpcpb::KvPair {
                            error: Some(locked(lock)),
                            key: k.clone(),
                            value: Vec::new(),
                        }),
                        Ok(Some(v)) => Some(kvrpcpb::KvPair {
                            error: None,
                            key: k.clone(),
                            value: v,
                        }),
                        Ok(None) => None,
                    })
                    .collect(),
                ..Default::default()
            }
        })
        .await
    }

    async fn kv_scan(
        &self,
        r: Request<kvrpcpb::ScanRequest>,
    ) -> Result<Response<kvrpcpb::ScanResponse>, Status> {
        let r = r.into_inner();
        // Reverse: start_key is the exclusive upper bound, end_key the inclusive lower one.
        let (lower, upper) = if r.reverse {
            (r.end_key.clone(), r.start_key.clone())
        } else {
            (r.start_key.clone(), r.end_key.clone())
        };
        self.handle("KvScan", r.context.as_ref(), &[], |st, region| match clamp(
            st, region, &lower, &upper,
        ) {
            Ok((lower, upper)) => kvrpcpb::ScanResponse {
                pairs: st.mvcc.scan(
                    &lower,
                    upper.as_deref(),
                    r.limit as usize,
                    r.version,
                    r.key_only,
                    r.reverse,
                ),
                ..Default::default()
            },
            Err(e) => kvrpcpb::ScanResponse {
                region_error: Some(e),
                ..Default::default()
            },
        })
        .await
    }

    async fn kv_prewrite(
        &self,
        r: Request<kvrpcpb::PrewriteRequest>,
    ) -> Result<Response<kvrpcpb::PrewriteResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.mutations.iter().map(|m| m.key.as_slice()).collect();
        self.handle("KvPrewrite", r.context.as_ref(), &keys, |st, _| {
            kvrpcpb::PrewriteResponse {
                errors: st.mvcc.prewrite(
                    &r.mutations,
                    &r.primary_lock,
                    r.start_version,
                    r.lock_ttl,
                    r.for_update_ts,
                    &r.pessimistic_actions,
                ),
                ..Default::default()
            }
        })
        .await
    }

    async fn kv_commit(
        &self,
        r: Request<kvrpcpb::CommitRequest>,
    ) -> Result<Response<kvrpcpb::CommitResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.keys.iter().map(Vec::as_slice).collect();
        self.handle("KvCommit", r.context.as_ref(), &keys, |st, _| {
            if st.push_min_commit_ts_once {
                st.push_min_commit_ts_once = false;
                let pushed = st.next_ts(1);
                if let Some(l) = r.keys.first().and_then(|k| st.mvcc.locks.get_mut(k)) {
                    l.min_commit_ts = pushed;
                }
            }
            kvrpcpb::CommitResponse {
                error: st.mvcc.commit(&r.keys, r.start_version, r.commit_version),
                ..Default::default()
            }
        })
        .await
    }

    async fn kv_batch_rollback(
        &self,
        r: Request<kvrpcpb::BatchRollbackRequest>,
    ) -> Result<Response<kvrpcpb::BatchRollbackResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.keys.iter().map(Vec::as_slice).collect();
        self.handle("KvBatchRollback", r.context.as_ref(), &keys, |st, _| {
            kvrpcpb::BatchRollbackResponse {
                error: st.mvcc.rollback(&r.keys, r.start_version),
                ..Default::default()
            }
        })
        .await
    }

    async fn kv_check_txn_status(
        &self,
        r: Request<kvrpcpb::CheckTxnStatusRequest>,
    ) -> Result<Response<kvrpcpb::CheckTxnStatusResponse>, Status> {
        let r = r.into_inner();
        self.handle(
            "KvCheckTxnStatus",
            r.context.as_ref(),
            &[&r.primary_key],
            |st, _| {
                st.mvcc.check_txn_status(
                    &r.primary_key,
                    r.lock_ts,
                    r.current_ts,
                    r.rollback_if_not_exist,
                )
            },
        )
        .await
    }

    async fn kv_resolve_lock(
        &self,
        r: Request<kvrpcpb::ResolveLockRequest>,
    ) -> Result<Response<kvrpcpb::ResolveLockResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.keys.iter().map(Vec::as_slice).collect();
        self.handle("KvResolveLock", r.context.as_ref(), &keys, |st, region| {
            let keys: Vec<Vec<u8>> = if r.keys.is_empty() {
                let (lower, upper) = st.user_bounds(&region.meta);
                st.mvcc
                    .locks
                    .iter()
                    .filter(|(k, l)| l.start_ts == r.start_version && in_range(k, &lower, &upper))
                    .map(|(k, _)| k.clone())
                    .collect()
            } else {
                r.keys.clone()
            };
            kvrpcpb::ResolveLockResponse {
                error: st.mvcc.resolve(&keys, r.start_version, r.commit_version),
                ..Default::default()
            }
        })
        .await
    }

    async fn kv_txn_heart_beat(
        &self,
        r: Request<kvrpcpb::TxnHeartBeatRequest>,
    ) -> Result<Response<kvrpcpb::TxnHeartBeatResponse>, Status> {
        let r = r.into_inner();
        self.handle(
            "KvTxnHeartBeat",
            r.context.as_ref(),
            &[&r.primary_lock],
            |st, _| match st
                .mvcc
                .heartbeat(&r.primary_lock, r.start_version, r.advise_lock_ttl)
            {
                Ok(ttl) => kvrpcpb::TxnHeartBeatResponse {
                    lock_ttl: ttl,
                    ..Default::default()
                },
                Err(e) => kvrpcpb::TxnHeartBeatResponse {
                    error: Some(e),
                    ..Default::default()
                },
            },
        )
        .await
    }

    async fn kv_pessimistic_lock(
        &self,
        r: Request<kvrpcpb::PessimisticLockRequest>,
    ) -> Result<Response<kvrpcpb::PessimisticLockResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<Vec<u8>> = r.mutations.iter().map(|m| m.key.clone()).collect();
        let key_refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        let shared = self.shared.clone();
        self.handle(
            "KvPessimisticLock",
            r.context.as_ref(),
            &key_refs,
            |st, _| match st.mvcc.pessimistic_lock(
                &keys,
                &r.primary_lock,
                r.start_version,
                r.for_update_ts,
                r.lock_ttl,
            ) {
                Ok(values) => {
                    if !r.return_values {
                        return kvrpcpb::PessimisticLockResponse::default();
                    }
                    kvrpcpb::PessimisticLockResponse {
                        not_founds: values.iter().map(Option::is_none).collect(),
                        values: values.into_iter().map(Option::unwrap_or_default).collect(),
                        ..Default::default()
                    }
                }
                Err(errors) => {
                    if errors.iter().any(|e| e.locked.is_some()) {
                        shared.count("KvPessimisticLock:locked");
                    }
                    kvrpcpb::PessimisticLockResponse {
                        errors,
                        ..Default::default()
                    }
                }
            },
        )
        .await
    }

    async fn kv_pessimistic_rollback(
        &self,
        r: Request<kvrpcpb::PessimisticRollbackRequest>,
    ) -> Result<Response<kvrpcpb::PessimisticRollbackResponse>, Status> {
        let r = r.into_inner();
        let keys: Vec<&[u8]> = r.keys.iter().map(Vec::as_slice).collect();
        self.handle(
            "KVPessimisticRollback",
            r.context.as_ref(),
            &keys,
            |st, _| {
                st.mvcc
                    .pessimistic_rollback(&r.keys, r.start_version, r.for_update_ts);
                kvrpcpb::PessimisticRollbackResponse::default()
            },
        )
        .await
    }
}
