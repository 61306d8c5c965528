//! The store requests the client sends, behind one trait so dispatch and retry are written once.

use futures::future::BoxFuture;
use proto::tikvpb::batch_commands_request::request::Cmd;
use proto::tikvpb::batch_commands_response::response::Cmd as RespCmd;
use proto::{errorpb, kvrpcpb};

use crate::store::TikvGrpc;

/// A `tikvpb.Tikv` request: it takes a routing context and has a response that may carry a
/// region error.
pub(crate) trait KvRequest: Clone + Send + Sync + 'static {
    type Response: KvResponse;
    /// The wire method name, for errors and logs.
    const NAME: &'static str;

    fn set_context(&mut self, ctx: kvrpcpb::Context);

    fn send(
        client: TikvGrpc,
        req: tonic::Request<Self>,
    ) -> BoxFuture<'static, Result<tonic::Response<Self::Response>, tonic::Status>>;

    /// The request as a `BatchCommands` command, if it has one.
    fn to_batch(&self) -> Option<Cmd>;

    /// This request's response out of a `BatchCommands` answer; `None` if the answer is of
    /// another command.
    fn from_batch(resp: RespCmd) -> Option<Self::Response>;
}

/// A store response: every one has `region_error`.
pub(crate) trait KvResponse: Send + 'static {
    fn take_region_error(&mut self) -> Option<errorpb::Error>;
}

macro_rules! kv_requests {
    ($($req:ident => $resp:ident, $method:ident, $name:literal $(, batch $variant:ident)?;)*) => {$(
        impl KvRequest for kvrpcpb::$req {
            type Response = kvrpcpb::$resp;
            const NAME: &'static str = $name;

            fn set_context(&mut self, ctx: kvrpcpb::Context) {
                self.context = Some(ctx);
            }

            fn send(
                mut client: TikvGrpc,
                req: tonic::Request<Self>,
            ) -> BoxFuture<'static, Result<tonic::Response<Self::Response>, tonic::Status>> {
                Box::pin(async move { client.$method(req).await })
            }

            fn to_batch(&self) -> Option<Cmd> {
                kv_requests!(@to_batch self $($variant)?)
            }

            fn from_batch(resp: RespCmd) -> Option<Self::Response> {
                kv_requests!(@from_batch resp $($variant)?)
            }
        }

        impl KvResponse for kvrpcpb::$resp {
            fn take_region_error(&mut self) -> Option<errorpb::Error> {
                self.region_error.take()
            }
        }
    )*};
    (@to_batch $self:ident $variant:ident) => { Some(Cmd::$variant($self.clone())) };
    (@to_batch $self:ident) => { None };
    (@from_batch $resp:ident $variant:ident) => {
        match $resp {
            RespCmd::$variant(r) => Some(r),
            _ => None,
        }
    };
    (@from_batch $resp:ident) => {{
        let _ = $resp;
        None
    }};
}

// `batch X`: the request's `BatchCommands` variant (kvproto has none for compare-and-swap).
kv_requests! {
    RawGetRequest => RawGetResponse, raw_get, "RawGet", batch RawGet;
    RawBatchGetRequest => RawBatchGetResponse, raw_batch_get, "RawBatchGet", batch RawBatchGet;
    RawPutRequest => RawPutResponse, raw_put, "RawPut", batch RawPut;
    RawBatchPutRequest => RawBatchPutResponse, raw_batch_put, "RawBatchPut", batch RawBatchPut;
    RawDeleteRequest => RawDeleteResponse, raw_delete, "RawDelete", batch RawDelete;
    RawBatchDeleteRequest => RawBatchDeleteResponse, raw_batch_delete, "RawBatchDelete", batch RawBatchDelete;
    RawScanRequest => RawScanResponse, raw_scan, "RawScan", batch RawScan;
    RawDeleteRangeRequest => RawDeleteRangeResponse, raw_delete_range, "RawDeleteRange", batch RawDeleteRange;
    RawCasRequest => RawCasResponse, raw_compare_and_swap, "RawCompareAndSwap";
    GetRequest => GetResponse, kv_get, "KvGet", batch Get;
    BatchGetRequest => BatchGetResponse, kv_batch_get, "KvBatchGet", batch BatchGet;
    ScanRequest => ScanResponse, kv_scan, "KvScan", batch Scan;
    PrewriteRequest => PrewriteResponse, kv_prewrite, "KvPrewrite", batch Prewrite;
    CommitRequest => CommitResponse, kv_commit, "KvCommit", batch Commit;
    BatchRollbackRequest => BatchRollbackResponse, kv_batch_rollback, "KvBatchRollback", batch BatchRollback;
    CheckTxnStatusRequest => CheckTxnStatusResponse, kv_check_txn_status, "KvCheckTxnStatus", batch CheckTxnStatus;
    ResolveLockRequest => ResolveLockResponse, kv_resolve_lock, "KvResolveLock", batch ResolveLock;
    TxnHeartBeatRequest => TxnHeartBeatResponse, kv_txn_heart_beat, "KvTxnHeartBeat", batch TxnHeartBeat;
    PessimisticLockRequest => PessimisticLockResponse, kv_pessimistic_lock, "KvPessimisticLock", batch PessimisticLock;
    PessimisticRollbackRequest => PessimisticRollbackResponse, kv_pessimistic_rollback, "KVPessimisticRollback", batch PessimisticRollback;
}
