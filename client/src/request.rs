//! The store requests the client sends, behind one trait so dispatch and retry are written once.

use futures::future::BoxFuture;
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
}

/// A store response: every one has `region_error`.
pub(crate) trait KvResponse: Send + 'static {
    fn take_region_error(&mut self) -> Option<errorpb::Error>;
}

macro_rules! kv_requests {
    ($($req:ident => $resp:ident, $method:ident, $name:literal;)*) => {$(
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
        }

        impl KvResponse for kvrpcpb::$resp {
            fn take_region_error(&mut self) -> Option<errorpb::Error> {
                self.region_error.take()
            }
        }
    )*};
}

kv_requests! {
    RawGetRequest => RawGetResponse, raw_get, "RawGet";
    RawBatchGetRequest => RawBatchGetResponse, raw_batch_get, "RawBatchGet";
    RawPutRequest => RawPutResponse, raw_put, "RawPut";
    RawBatchPutRequest => RawBatchPutResponse, raw_batch_put, "RawBatchPut";
    RawDeleteRequest => RawDeleteResponse, raw_delete, "RawDelete";
    RawBatchDeleteRequest => RawBatchDeleteResponse, raw_batch_delete, "RawBatchDelete";
    RawScanRequest => RawScanResponse, raw_scan, "RawScan";
    RawDeleteRangeRequest => RawDeleteRangeResponse, raw_delete_range, "RawDeleteRange";
    RawCasRequest => RawCasResponse, raw_compare_and_swap, "RawCompareAndSwap";
    GetRequest => GetResponse, kv_get, "KvGet";
    BatchGetRequest => BatchGetResponse, kv_batch_get, "KvBatchGet";
    ScanRequest => ScanResponse, kv_scan, "KvScan";
    PrewriteRequest => PrewriteResponse, kv_prewrite, "KvPrewrite";
    CommitRequest => CommitResponse, kv_commit, "KvCommit";
    BatchRollbackRequest => BatchRollbackResponse, kv_batch_rollback, "KvBatchRollback";
    CheckTxnStatusRequest => CheckTxnStatusResponse, kv_check_txn_status, "KvCheckTxnStatus";
    ResolveLockRequest => ResolveLockResponse, kv_resolve_lock, "KvResolveLock";
    TxnHeartBeatRequest => TxnHeartBeatResponse, kv_txn_heart_beat, "KvTxnHeartBeat";
    PessimisticLockRequest => PessimisticLockResponse, kv_pessimistic_lock, "KvPessimisticLock";
    PessimisticRollbackRequest => PessimisticRollbackResponse, kv_pessimistic_rollback, "KVPessimisticRollback";
}
