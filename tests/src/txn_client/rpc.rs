//! [`TxnRpc`]: what routing needs to know about each transactional kvproto request — where its
//! `Context` goes, which key routes it, where its response carries a region error, and which
//! `tikvpb.Tikv` method serves it — so one retry loop serves every RPC.

use std::future::Future;
use std::pin::Pin;

use kvserver::service::TikvService;
use kvserver::storage::Storage;
use proto::errorpb;
use proto::kvrpcpb::*;
use proto::tikvpb::tikv_server::Tikv;
use tonic::{Request, Response, Status};

/// The future a `Tikv` method returns.
pub type RpcFuture<'a, T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send + 'a>>;

/// A transactional request the harness can route to a region leader.
pub trait TxnRpc: Clone + Send + Sync + 'static {
    /// Its response.
    type Resp: std::fmt::Debug + Send + 'static;

    /// The request's context, created if absent. Routing sets the region fields (id, epoch,
    /// peer) and leaves the rest (isolation level, resolved locks, ...) as the caller set it.
    fn context_mut(&mut self) -> &mut Context;

    /// The raw user key whose region serves the request: its (first) key, or the start of the
    /// range it covers.
    fn route_key(&self) -> &[u8];

    /// The region error of a response, if any.
    fn region_error(resp: &Self::Resp) -> Option<&errorpb::Error>;

    /// Calls the service method handling this request.
    fn call<S: Storage>(svc: &TikvService<S>, req: Self) -> RpcFuture<'_, Self::Resp>;
}

/// `impl TxnRpc for Request { Response, method, |req| route key }`.
macro_rules! txn_rpc {
    ($($req:ident => $resp:ident, $method:ident, |$r:ident| $key:expr;)*) => {$(
        impl TxnRpc for $req {
            type Resp = $resp;

            fn context_mut(&mut self) -> &mut Context {
                self.context.get_or_insert_with(Default::default)
            }

            fn route_key(&self) -> &[u8] {
                let $r = self;
                $key
            }

            fn region_error(resp: &$resp) -> Option<&errorpb::Error> {
                resp.region_error.as_ref()
            }

            fn call<S: Storage>(svc: &TikvService<S>, req: Self) -> RpcFuture<'_, $resp> {
                svc.$method(Request::new(req))
            }
        }
    )*};
}

/// The first key of a list, or the empty key (the leftmost region) for an empty list.
fn first(keys: &[Vec<u8>]) -> &[u8] {
    keys.first().map_or(&[], Vec::as_slice)
}

txn_rpc! {
    GetRequest => GetResponse, kv_get, |r| &r.key;
    BatchGetRequest => BatchGetResponse, kv_batch_get, |r| first(&r.keys);
    // A reverse scan's start key is an exclusive upper bound: the caller routes those itself.
    ScanRequest => ScanResponse, kv_scan, |r| &r.start_key;
    PrewriteRequest => PrewriteResponse, kv_prewrite,
        |r| r.mutations.first().map_or(&r.primary_lock[..], |m| &m.key[..]);
    CommitRequest => CommitResponse, kv_commit, |r| first(&r.keys);
    BatchRollbackRequest => BatchRollbackResponse, kv_batch_rollback, |r| first(&r.keys);
    CleanupRequest => CleanupResponse, kv_cleanup, |r| &r.key;
    CheckTxnStatusRequest => CheckTxnStatusResponse, kv_check_txn_status, |r| &r.primary_key;
    CheckSecondaryLocksRequest => CheckSecondaryLocksResponse, kv_check_secondary_locks,
        |r| first(&r.keys);
    ResolveLockRequest => ResolveLockResponse, kv_resolve_lock, |r| first(&r.keys);
    TxnHeartBeatRequest => TxnHeartBeatResponse, kv_txn_heart_beat, |r| &r.primary_lock;
    ScanLockRequest => ScanLockResponse, kv_scan_lock, |r| &r.start_key;
    PessimisticLockRequest => PessimisticLockResponse, kv_pessimistic_lock,
        |r| r.mutations.first().map_or(&r.primary_lock[..], |m| &m.key[..]);
    PessimisticRollbackRequest => PessimisticRollbackResponse, kv_pessimistic_rollback,
        |r| first(&r.keys);
}
