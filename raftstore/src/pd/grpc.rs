//! [`GrpcPdClient`]: the [`PdClient`] of a real store, over `pdpb.PD`.

use std::future::Future;
use std::sync::Arc;

use parking_lot::RwLock;
use proto::metapb::{Peer, Region, Store};
use proto::pdpb::*;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{mpsc, watch};

use super::config::PdConfig;
use super::heartbeat::{self, HandlerSlot, HeartbeatCounters, HeartbeatStats};
use super::leader::{CallError, Core};
use crate::errors::{Error, Result};
use crate::pd_client::{HeartbeatResponseHandler, PdClient};

/// A scheduler client for one store.
///
/// Blocking methods (the [`PdClient`] trait) run their request on a tokio runtime — injected
/// ([`GrpcPdClient::connect`]) or owned ([`GrpcPdClient::connect_with_own_runtime`]) — and wait
/// for it on the calling thread. They are meant for plain threads; called from a runtime worker
/// they block that worker (never call them on a current-thread runtime: it would deadlock).
///
/// Every request carries `header.cluster_id`; a header error becomes [`Error::Pd`]; transport
/// failures are retried with backoff while following the leader, up to
/// [`PdConfig::retry_timeout`]. Region heartbeats travel on one long-lived stream, re-opened when
/// it breaks.
pub struct GrpcPdClient {
    core: Arc<Core>,
    runtime: Handle,
    owned_runtime: Option<Runtime>,
    heartbeats: mpsc::Sender<RegionHeartbeatRequest>,
    handler: HandlerSlot,
    counters: Arc<HeartbeatCounters>,
    shutdown: watch::Sender<bool>,
}

impl std::fmt::Debug for GrpcPdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcPdClient")
            .field("cluster_id", &self.core.cluster_id())
            .field("leader", &self.core.leader().url)
            .finish()
    }
}

impl GrpcPdClient {
    /// Connects to the scheduler reachable through any of `endpoints` (`host:port` or URLs),
    /// running everything on `runtime`. Blocks until the leader answers (retrying for up to
    /// `cfg.retry_timeout`).
    pub fn connect(endpoints: &[String], runtime: Handle, cfg: PdConfig) -> Result<GrpcPdClient> {
        Self::start(endpoints, runtime, None, cfg)
    }

    /// Like [`GrpcPdClient::connect`], on a small runtime of its own (one worker thread), for
    /// callers without one.
    pub fn connect_with_own_runtime(endpoints: &[String], cfg: PdConfig) -> Result<GrpcPdClient> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pd-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Other(format!("cannot start the scheduler client runtime: {e}")))?;
        Self::start(endpoints, rt.handle().clone(), Some(rt), cfg)
    }

    fn start(
        endpoints: &[String],
        runtime: Handle,
        owned_runtime: Option<Runtime>,
        cfg: PdConfig,
    ) -> Result<GrpcPdClient> {
        cfg.validate()?;
        let capacity = cfg.heartbeat_queue_capacity;
        let endpoints = endpoints.to_vec();
        let core = Arc::new(run_on(&runtime, async move {
            Core::connect(&endpoints, cfg).await
        })?);
        let (heartbeats, queue) = mpsc::channel(capacity);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let handler: HandlerSlot = Arc::new(RwLock::new(None));
        let counters = Arc::new(HeartbeatCounters::default());
        runtime.spawn(heartbeat::run(
            core.clone(),
            queue,
            handler.clone(),
            counters.clone(),
            shutdown_rx,
        ));
        Ok(GrpcPdClient {
            core,
            runtime,
            owned_runtime,
            heartbeats,
            handler,
            counters,
            shutdown,
        })
    }

    /// The URL of the scheduler leader currently used.
    pub fn leader_url(&self) -> String {
        self.core.leader().url
    }

    /// Counters of the region heartbeat stream.
    pub fn heartbeat_stats(&self) -> HeartbeatStats {
        self.counters.snapshot()
    }

    /// Every store the scheduler knows (tombstones excluded if asked).
    pub fn get_all_stores(&self, exclude_tombstone: bool) -> Result<Vec<Store>> {
        let resp = self.call("GetAllStores", move |mut c, header| {
            let req = GetAllStoresRequest {
                header,
                exclude_tombstone_stores: exclude_tombstone,
            };
            async move { c.get_all_stores(req).await }
        })?;
        Ok(resp.stores)
    }

    /// Runs one request on the runtime and waits for it.
    fn call<R, F, Fut>(&self, op: &'static str, f: F) -> std::result::Result<R, CallError>
    where
        R: super::leader::PdResponse + Send + 'static,
        F: Fn(
                proto::pdpb::pd_client::PdClient<tonic::transport::Channel>,
                Option<RequestHeader>,
            ) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: Future<Output = std::result::Result<tonic::Response<R>, tonic::Status>> + Send,
    {
        let core = self.core.clone();
        run_on(&self.runtime, async move {
            let header = core.header();
            Ok(core.call(op, |client| f(client, header)).await)
        })
        .map_err(CallError::Failed)?
    }
}

/// Runs `fut` on `runtime` and blocks the calling thread until it is done. Spawning (instead of
/// `Handle::block_on`) also works from inside a runtime, where `block_on` would panic.
fn run_on<T, F>(runtime: &Handle, fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    futures::executor::block_on(runtime.spawn(fut)).map_err(|e| {
        if e.is_cancelled() {
            Error::Shutdown
        } else {
            Error::Other(format!("scheduler client task failed: {e}"))
        }
    })?
}

impl Drop for GrpcPdClient {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        if let Some(rt) = self.owned_runtime.take() {
            // Dropping a runtime blocks, which panics inside another runtime; this never does.
            rt.shutdown_background();
        }
    }
}

impl PdClient for GrpcPdClient {
    fn cluster_id(&self) -> u64 {
        self.core.cluster_id()
    }

    fn is_cluster_bootstrapped(&self) -> Result<bool> {
        match self.call("IsBootstrapped", |mut c, header| async move {
            c.is_bootstrapped(IsBootstrappedRequest { header }).await
        }) {
            Ok(resp) => Ok(resp.bootstrapped),
            Err(CallError::Header {
                kind: ErrorType::NotBootstrapped,
                ..
            }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn bootstrap_cluster(&self, store: Store, region: Region) -> Result<()> {
        let (store_id, region_id) = (store.id, region.id);
        self.call("Bootstrap", move |mut c, header| {
            let req = BootstrapRequest {
                header,
                store: Some(store.clone()),
                region: Some(region.clone()),
            };
            async move { c.bootstrap(req).await }
        })?;
        tracing::info!(store_id, region_id, "cluster bootstrapped");
        Ok(())
    }

    fn alloc_id(&self) -> Result<u64> {
        let resp = self.call("AllocID", |mut c, header| async move {
            c.alloc_id(AllocIdRequest { header }).await
        })?;
        if resp.id == 0 {
            return Err(Error::Pd("AllocID: scheduler returned id 0".into()));
        }
        Ok(resp.id)
    }

    fn put_store(&self, store: Store) -> Result<()> {
        self.call("PutStore", move |mut c, header| {
            let req = PutStoreRequest {
                header,
                store: Some(store.clone()),
            };
            async move { c.put_store(req).await }
        })?;
        Ok(())
    }

    fn get_store(&self, store_id: u64) -> Result<Store> {
        let resp = self.call("GetStore", move |mut c, header| async move {
            c.get_store(GetStoreRequest { header, store_id }).await
        })?;
        resp.store
            .ok_or_else(|| Error::Pd(format!("GetStore: store {store_id} not found")))
    }

    fn get_region(&self, key: &[u8]) -> Result<Region> {
        let key = key.to_vec();
        let resp = self.call("GetRegion", move |mut c, header| {
            let req = GetRegionRequest {
                header,
                region_key: key.clone(),
                need_buckets: false,
            };
            async move { c.get_region(req).await }
        })?;
        resp.region
            .ok_or_else(|| Error::Pd("GetRegion: no region contains the key".into()))
    }

    fn get_region_by_id(&self, region_id: u64) -> Result<Option<(Region, Option<Peer>)>> {
        match self.call("GetRegionByID", move |mut c, header| async move {
            c.get_region_by_id(GetRegionByIdRequest {
                header,
                region_id,
                need_buckets: false,
            })
            .await
        }) {
            Ok(resp) => Ok(resp.region.map(|r| (r, resp.leader))),
            Err(CallError::Header {
                kind: ErrorType::RegionNotFound,
                ..
            }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn region_heartbeat(&self, mut req: RegionHeartbeatRequest) -> Result<()> {
        req.header = self.core.header();
        self.heartbeats.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                Error::Pd("region heartbeat queue is full".into())
            }
            mpsc::error::TrySendError::Closed(_) => Error::Shutdown,
        })
    }

    fn set_heartbeat_response_handler(&self, handler: HeartbeatResponseHandler) {
        *self.handler.write() = Some(Arc::new(handler));
    }

    fn store_heartbeat(&self, stats: StoreStats) -> Result<()> {
        self.call("StoreHeartbeat", move |mut c, header| {
            let req = StoreHeartbeatRequest {
                header,
                stats: Some(stats),
            };
            async move { c.store_heartbeat(req).await }
        })?;
        Ok(())
    }

    fn ask_batch_split(&self, region: Region, count: usize) -> Result<Vec<SplitId>> {
        let split_count = u32::try_from(count)
            .map_err(|_| Error::Pd(format!("AskBatchSplit: {count} splits is too many")))?;
        let resp = self.call("AskBatchSplit", move |mut c, header| {
            let req = AskBatchSplitRequest {
                header,
                region: Some(region.clone()),
                split_count,
            };
            async move { c.ask_batch_split(req).await }
        })?;
        if resp.ids.len() != count {
            return Err(Error::Pd(format!(
                "AskBatchSplit: asked for {count} ids, got {}",
                resp.ids.len()
            )));
        }
        Ok(resp.ids)
    }

    fn report_batch_split(&self, regions: Vec<Region>) -> Result<()> {
        self.call("ReportBatchSplit", move |mut c, header| {
            let req = ReportBatchSplitRequest {
                header,
                regions: regions.clone(),
            };
            async move { c.report_batch_split(req).await }
        })?;
        Ok(())
    }
}
