//! The `tikvpb.Tikv` gRPC service.
//!
//! One `impl Tikv` (tonic requires a single impl block) that only routes: each RPC is handled in
//! the module of its area — [`raw`] for the raw API, [`txn`] for transactions, [`raft`] for the
//! store-to-store raft and snapshot streams (cluster mode only), [`split`] for `SplitRegion`,
//! [`batch`] for `BatchCommands` (the raw and transactional commands on one stream, through the
//! same handlers).
//! RPCs not listed here answer UNIMPLEMENTED (tonic's generated defaults).

mod batch;
mod raft;
mod raw;
mod split;
mod txn;

use std::sync::Arc;

use proto::kvrpcpb::*;
use proto::tikvpb::tikv_server::Tikv;
use tonic::{Request, Response, Status};

use crate::config::Limits;
use crate::latches::Latches;
use crate::storage::Storage;

/// State shared by every handler.
pub struct ServiceCtx<S: Storage> {
    /// Where data is read and written.
    pub storage: S,
    /// Request limits.
    pub limits: Limits,
    /// Serializes commands on the same keys (CAS, transactional commands).
    pub latches: Latches,
    /// Where raft messages and snapshots from other stores go; `None` in standalone mode,
    /// where the raft RPCs answer `FAILED_PRECONDITION`.
    pub raft: Option<Arc<raftstore::network::RaftReceiver>>,
    /// Set when the server begins to shut down: long-lived streams (`BatchCommands`) stop
    /// taking requests and end once their answers are out, so draining can finish.
    stopping: tokio::sync::watch::Sender<bool>,
}

impl<S: Storage> ServiceCtx<S> {
    fn new(
        storage: S,
        limits: Limits,
        raft: Option<Arc<raftstore::network::RaftReceiver>>,
    ) -> ServiceCtx<S> {
        let latches = Latches::new(limits.latch_slots);
        ServiceCtx {
            storage,
            limits,
            latches,
            raft,
            stopping: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Tells the long-lived streams that the server is shutting down.
    pub fn stop_streams(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`ServiceCtx::stop_streams`] was called.
    pub(crate) fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stopping.subscribe()
    }
}

/// The gRPC service over a [`Storage`].
pub struct TikvService<S: Storage> {
    ctx: Arc<ServiceCtx<S>>,
}

impl<S: Storage> Clone for TikvService<S> {
    fn clone(&self) -> Self {
        TikvService {
            ctx: self.ctx.clone(),
        }
    }
}

impl<S: Storage> TikvService<S> {
    /// Creates the service.
    pub fn new(storage: S, limits: Limits) -> TikvService<S> {
        TikvService {
            ctx: Arc::new(ServiceCtx::new(storage, limits, None)),
        }
    }

    /// Creates the service of a cluster-mode store: raft messages and snapshots from other
    /// stores go to `raft`.
    pub fn with_raft_receiver(
        storage: S,
        limits: Limits,
        raft: Arc<raftstore::network::RaftReceiver>,
    ) -> TikvService<S> {
        TikvService {
            ctx: Arc::new(ServiceCtx::new(storage, limits, Some(raft))),
        }
    }

    /// Shared handler state.
    pub fn ctx(&self) -> &Arc<ServiceCtx<S>> {
        &self.ctx
    }
}

/// Routes one RPC to its handler: `route!(module::function, request)`.
macro_rules! route {
    ($self:ident, $handler:path, $req:ident) => {
        $handler(&$self.ctx, $req.into_inner())
            .await
            .map(Response::new)
    };
}

#[tonic::async_trait]
impl<S: Storage> Tikv for TikvService<S> {
    // ---- raw API ----
    async fn raw_get(
        &self,
        req: Request<RawGetRequest>,
    ) -> Result<Response<RawGetResponse>, Status> {
        route!(self, raw::get, req)
    }
    async fn raw_batch_get(
        &self,
        req: Request<RawBatchGetRequest>,
    ) -> Result<Response<RawBatchGetResponse>, Status> {
        route!(self, raw::batch_get, req)
    }
    async fn raw_put(
        &self,
        req: Request<RawPutRequest>,
    ) -> Result<Response<RawPutResponse>, Status> {
        route!(self, raw::put, req)
    }
    async fn raw_batch_put(
        &self,
        req: Request<RawBatchPutRequest>,
    ) -> Result<Response<RawBatchPutResponse>, Status> {
        route!(self, raw::batch_put, req)
    }
    async fn raw_delete(
        &self,
        req: Request<RawDeleteRequest>,
    ) -> Result<Response<RawDeleteResponse>, Status> {
        route!(self, raw::delete, req)
    }
    async fn raw_batch_delete(
        &self,
        req: Request<RawBatchDeleteRequest>,
    ) -> Result<Response<RawBatchDeleteResponse>, Status> {
        route!(self, raw::batch_delete, req)
    }
    async fn raw_scan(
        &self,
        req: Request<RawScanRequest>,
    ) -> Result<Response<RawScanResponse>, Status> {
        route!(self, raw::scan, req)
    }
    async fn raw_batch_scan(
        &self,
        req: Request<RawBatchScanRequest>,
    ) -> Result<Response<RawBatchScanResponse>, Status> {
        route!(self, raw::batch_scan, req)
    }
    async fn raw_delete_range(
        &self,
        req: Request<RawDeleteRangeRequest>,
    ) -> Result<Response<RawDeleteRangeResponse>, Status> {
        route!(self, raw::delete_range, req)
    }
    async fn raw_compare_and_swap(
        &self,
        req: Request<RawCasRequest>,
    ) -> Result<Response<RawCasResponse>, Status> {
        route!(self, raw::compare_and_swap, req)
    }

    // ---- transactional API ----
    async fn kv_get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        route!(self, txn::get, req)
    }
    async fn kv_batch_get(
        &self,
        req: Request<BatchGetRequest>,
    ) -> Result<Response<BatchGetResponse>, Status> {
        route!(self, txn::batch_get, req)
    }
    async fn kv_scan(&self, req: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        route!(self, txn::scan, req)
    }
    async fn kv_prewrite(
        &self,
        req: Request<PrewriteRequest>,
    ) -> Result<Response<PrewriteResponse>, Status> {
        route!(self, txn::prewrite, req)
    }
    async fn kv_commit(
        &self,
        req: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        route!(self, txn::commit, req)
    }
    async fn kv_batch_rollback(
        &self,
        req: Request<BatchRollbackRequest>,
    ) -> Result<Response<BatchRollbackResponse>, Status> {
        route!(self, txn::batch_rollback, req)
    }
    async fn kv_cleanup(
        &self,
        req: Request<CleanupRequest>,
    ) -> Result<Response<CleanupResponse>, Status> {
        route!(self, txn::cleanup, req)
    }
    async fn kv_check_txn_status(
        &self,
        req: Request<CheckTxnStatusRequest>,
    ) -> Result<Response<CheckTxnStatusResponse>, Status> {
        route!(self, txn::check_txn_status, req)
    }
    async fn kv_check_secondary_locks(
        &self,
        req: Request<CheckSecondaryLocksRequest>,
    ) -> Result<Response<CheckSecondaryLocksResponse>, Status> {
        route!(self, txn::check_secondary_locks, req)
    }
    async fn kv_resolve_lock(
        &self,
        req: Request<ResolveLockRequest>,
    ) -> Result<Response<ResolveLockResponse>, Status> {
        route!(self, txn::resolve_lock, req)
    }
    async fn kv_txn_heart_beat(
        &self,
        req: Request<TxnHeartBeatRequest>,
    ) -> Result<Response<TxnHeartBeatResponse>, Status> {
        route!(self, txn::txn_heart_beat, req)
    }
    async fn kv_scan_lock(
        &self,
        req: Request<ScanLockRequest>,
    ) -> Result<Response<ScanLockResponse>, Status> {
        route!(self, txn::scan_lock, req)
    }
    async fn kv_pessimistic_lock(
        &self,
        req: Request<PessimisticLockRequest>,
    ) -> Result<Response<PessimisticLockResponse>, Status> {
        route!(self, txn::pessimistic_lock, req)
    }
    async fn kv_pessimistic_rollback(
        &self,
        req: Request<PessimisticRollbackRequest>,
    ) -> Result<Response<PessimisticRollbackResponse>, Status> {
        route!(self, txn::pessimistic_rollback, req)
    }

    // ---- region management (cluster mode) ----
    async fn split_region(
        &self,
        req: Request<SplitRegionRequest>,
    ) -> Result<Response<SplitRegionResponse>, Status> {
        route!(self, split::split_region, req)
    }

    // ---- many commands on one stream ----
    async fn batch_commands(
        &self,
        req: Request<tonic::Streaming<proto::tikvpb::BatchCommandsRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<proto::tikvpb::BatchCommandsResponse>>, Status>
    {
        Ok(Response::new(batch::batch_commands(
            self.ctx.clone(),
            req.into_inner(),
        )))
    }

    // ---- store-to-store raft (cluster mode) ----
    async fn raft(
        &self,
        req: Request<tonic::Streaming<proto::raft_serverpb::RaftMessage>>,
    ) -> Result<Response<proto::raft_serverpb::Done>, Status> {
        route!(self, raft::raft, req)
    }
    async fn batch_raft(
        &self,
        req: Request<tonic::Streaming<proto::tikvpb::BatchRaftMessage>>,
    ) -> Result<Response<proto::raft_serverpb::Done>, Status> {
        route!(self, raft::batch_raft, req)
    }
    async fn snapshot(
        &self,
        req: Request<tonic::Streaming<proto::raft_serverpb::SnapshotChunk>>,
    ) -> Result<Response<proto::raft_serverpb::Done>, Status> {
        route!(self, raft::snapshot, req)
    }
}
