//! The gRPC service `pdpb.PD`, the HTTP status routes, and the server that runs both.
//!
//! One `impl Pd` that only routes (tonic wants a single impl block): unary handlers live in
//! [`meta`] (members, ids, bootstrap, stores, GC) and [`regions`] (lookups, splits, operators);
//! the two bidirectional streams in [`streams`]. Every response carries a header with the cluster
//! id; errors travel in it (see [`crate::errors::Error::into_wire`]). RPCs not routed here answer
//! UNIMPLEMENTED.

mod meta;
mod regions;
mod run;
mod status_http;
mod streams;

use std::sync::Arc;

use proto::pdpb::pd_server::Pd;
use proto::pdpb::*;
use tokio::sync::{mpsc, watch};
use tonic::{Request, Response, Status, Streaming};

use crate::cluster::Cluster;
use crate::errors::{Error, Result};

pub use run::SchedulerServer;

/// How the scheduler presents itself in `GetMembers`.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// Member name.
    pub name: String,
    /// The URL clients should use (`http://host:port`).
    pub client_url: String,
}

/// The `pdpb.PD` service.
#[derive(Clone)]
pub struct PdService {
    cluster: Arc<Cluster>,
    member: MemberInfo,
    /// Turns true on shutdown; ends the streaming RPCs.
    shutdown: watch::Receiver<bool>,
    /// Held by every spawned stream task, so shutdown can wait for them to release the cluster.
    _guard: mpsc::Sender<()>,
}

impl PdService {
    /// Creates the service.
    pub fn new(
        cluster: Arc<Cluster>,
        member: MemberInfo,
        shutdown: watch::Receiver<bool>,
        guard: mpsc::Sender<()>,
    ) -> PdService {
        PdService {
            cluster,
            member,
            shutdown,
            _guard: guard,
        }
    }

    /// Rejects requests addressed to another cluster (`cluster_id` 0 means "not known yet").
    fn check_header(&self, header: &Option<RequestHeader>) -> std::result::Result<(), Status> {
        match header {
            Some(h) if h.cluster_id != 0 && h.cluster_id != self.cluster.cluster_id() => {
                Err(Error::ClusterIdMismatch {
                    expected: self.cluster.cluster_id(),
                    got: h.cluster_id,
                }
                .into_wire()
                .expect_err("cluster id mismatch is a status"))
            }
            _ => Ok(()),
        }
    }

    /// Wraps a handler's result: on success the response gets a clean header, on failure a
    /// default response with the error in its header.
    fn reply<T: WithHeader + Default>(
        &self,
        result: Result<T>,
    ) -> std::result::Result<Response<T>, Status> {
        let mut header = self.cluster.header();
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => {
                header.error = Some(e.into_wire()?);
                T::default()
            }
        };
        resp.set_header(header);
        Ok(Response::new(resp))
    }
}

/// Responses that carry a `ResponseHeader`.
pub trait WithHeader {
    /// Sets the header.
    fn set_header(&mut self, header: ResponseHeader);
}

macro_rules! with_header {
    ($($t:ty),* $(,)?) => {
        $(impl WithHeader for $t {
            fn set_header(&mut self, header: ResponseHeader) {
                self.header = Some(header);
            }
        })*
    };
}

with_header!(
    GetMembersResponse,
    TsoResponse,
    BootstrapResponse,
    IsBootstrappedResponse,
    AllocIdResponse,
    GetStoreResponse,
    PutStoreResponse,
    GetAllStoresResponse,
    StoreHeartbeatResponse,
    RegionHeartbeatResponse,
    GetRegionResponse,
    ScanRegionsResponse,
    AskSplitResponse,
    ReportSplitResponse,
    AskBatchSplitResponse,
    ReportBatchSplitResponse,
    GetClusterConfigResponse,
    GetGcSafePointResponse,
    UpdateGcSafePointResponse,
    GetOperatorResponse,
);

/// Routes a unary RPC: checks the header, runs `module::handler(&cluster-or-service, request)`.
macro_rules! unary {
    ($self:ident, $req:ident, $handler:path) => {{
        let req = $req.into_inner();
        $self.check_header(&req.header)?;
        $self.reply($handler($self, req))
    }};
}

/// The response stream of a bidirectional RPC (what tonic's generated trait expects).
type ResponseStream<T> = tonic::codegen::BoxStream<T>;

#[tonic::async_trait]
impl Pd for PdService {
    async fn get_members(
        &self,
        req: Request<GetMembersRequest>,
    ) -> std::result::Result<Response<GetMembersResponse>, Status> {
        unary!(self, req, meta::get_members)
    }

    async fn tso(
        &self,
        req: Request<Streaming<TsoRequest>>,
    ) -> std::result::Result<Response<ResponseStream<TsoResponse>>, Status> {
        Ok(Response::new(streams::tso(self, req.into_inner())))
    }

    async fn bootstrap(
        &self,
        req: Request<BootstrapRequest>,
    ) -> std::result::Result<Response<BootstrapResponse>, Status> {
        unary!(self, req, meta::bootstrap)
    }

    async fn is_bootstrapped(
        &self,
        req: Request<IsBootstrappedRequest>,
    ) -> std::result::Result<Response<IsBootstrappedResponse>, Status> {
        unary!(self, req, meta::is_bootstrapped)
    }

    async fn alloc_id(
        &self,
        req: Request<AllocIdRequest>,
    ) -> std::result::Result<Response<AllocIdResponse>, Status> {
        unary!(self, req, meta::alloc_id)
    }

    async fn get_store(
        &self,
        req: Request<GetStoreRequest>,
    ) -> std::result::Result<Response<GetStoreResponse>, Status> {
        unary!(self, req, meta::get_store)
    }

    async fn put_store(
        &self,
        req: Request<PutStoreRequest>,
    ) -> std::result::Result<Response<PutStoreResponse>, Status> {
        unary!(self, req, meta::put_store)
    }

    async fn get_all_stores(
        &self,
        req: Request<GetAllStoresRequest>,
    ) -> std::result::Result<Response<GetAllStoresResponse>, Status> {
        unary!(self, req, meta::get_all_stores)
    }

    async fn store_heartbeat(
        &self,
        req: Request<StoreHeartbeatRequest>,
    ) -> std::result::Result<Response<StoreHeartbeatResponse>, Status> {
        unary!(self, req, meta::store_heartbeat)
    }

    async fn region_heartbeat(
        &self,
        req: Request<Streaming<RegionHeartbeatRequest>>,
    ) -> std::result::Result<Response<ResponseStream<RegionHeartbeatResponse>>, Status> {
        Ok(Response::new(streams::region_heartbeat(
            self,
            req.into_inner(),
        )))
    }

    async fn get_region(
        &self,
        req: Request<GetRegionRequest>,
    ) -> std::result::Result<Response<GetRegionResponse>, Status> {
        unary!(self, req, regions::get_region)
    }

    async fn get_prev_region(
        &self,
        req: Request<GetRegionRequest>,
    ) -> std::result::Result<Response<GetRegionResponse>, Status> {
        unary!(self, req, regions::get_prev_region)
    }

    async fn get_region_by_id(
        &self,
        req: Request<GetRegionByIdRequest>,
    ) -> std::result::Result<Response<GetRegionResponse>, Status> {
        unary!(self, req, regions::get_region_by_id)
    }

    async fn scan_regions(
        &self,
        req: Request<ScanRegionsRequest>,
    ) -> std::result::Result<Response<ScanRegionsResponse>, Status> {
        unary!(self, req, regions::scan_regions)
    }

    async fn ask_split(
        &self,
        req: Request<AskSplitRequest>,
    ) -> std::result::Result<Response<AskSplitResponse>, Status> {
        unary!(self, req, regions::ask_split)
    }

    async fn report_split(
        &self,
        req: Request<ReportSplitRequest>,
    ) -> std::result::Result<Response<ReportSplitResponse>, Status> {
        unary!(self, req, regions::report_split)
    }

    async fn ask_batch_split(
        &self,
        req: Request<AskBatchSplitRequest>,
    ) -> std::result::Result<Response<AskBatchSplitResponse>, Status> {
        unary!(self, req, regions::ask_batch_split)
    }

    async fn report_batch_split(
        &self,
        req: Request<ReportBatchSplitRequest>,
    ) -> std::result::Result<Response<ReportBatchSplitResponse>, Status> {
        unary!(self, req, regions::report_batch_split)
    }

    async fn get_cluster_config(
        &self,
        req: Request<GetClusterConfigRequest>,
    ) -> std::result::Result<Response<GetClusterConfigResponse>, Status> {
        unary!(self, req, meta::get_cluster_config)
    }

    async fn get_gc_safe_point(
        &self,
        req: Request<GetGcSafePointRequest>,
    ) -> std::result::Result<Response<GetGcSafePointResponse>, Status> {
        unary!(self, req, meta::get_gc_safe_point)
    }

    async fn update_gc_safe_point(
        &self,
        req: Request<UpdateGcSafePointRequest>,
    ) -> std::result::Result<Response<UpdateGcSafePointResponse>, Status> {
        unary!(self, req, meta::update_gc_safe_point)
    }

    async fn get_operator(
        &self,
        req: Request<GetOperatorRequest>,
    ) -> std::result::Result<Response<GetOperatorResponse>, Status> {
        unary!(self, req, regions::get_operator)
    }
}
