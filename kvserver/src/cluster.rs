//! Cluster mode: this process is one store of a multi-raft cluster.
//!
//! ```text
//!  data-dir/{kv,raft,snap} ──▶ Engines + SnapManager
//!  --scheduler ───────────────▶ GrpcPdClient (cluster id, store id, bootstrap, heartbeats)
//!  create_system ─────────────▶ Router ──▶ GrpcTransport (report sink = router)
//!                                     └──▶ RaftReceiver (incoming Raft/BatchRaft/Snapshot streams)
//!  Node::start ───────────────▶ pollers, apply threads, workers, ticks
//!  RaftStorage(router) ───────▶ TikvService ──▶ gRPC server
//! ```
//!
//! Shutdown runs in the reverse order: the receiver first (raft streams never end by themselves,
//! so the gRPC drain would wait for them), then the gRPC server, then the transport and the node
//! (pending commands are answered, threads joined), and last the engines.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proto::metapb;
use raft_core::engine::Engines;
use raft_core::snap::SnapManager;
use raftstore::network::{GrpcTransport, PdStoreResolver, RaftReceiver};
use raftstore::pd::GrpcPdClient;
use raftstore::{create_system, Node, Router};
use tokio::runtime::Handle;

use crate::config::ServerConfig;
use crate::errors::{Error, Result};
use crate::server::RunningServer;
use crate::service::TikvService;
use crate::storage::RaftStorage;

/// The raft side of a cluster-mode store: everything except the gRPC server.
pub struct ClusterStore {
    node: Node,
    transport: GrpcTransport,
    receiver: Arc<RaftReceiver>,
}

fn startup(what: &str) -> impl Fn(raftstore::Error) -> Error + '_ {
    move |e| Error::Other(format!("cannot start the store: {what}: {e}"))
}

impl ClusterStore {
    /// Opens the engines under `cfg.data_dir`, joins the cluster through the scheduler (allocating
    /// this store's id and bootstrapping the cluster if it is the first store), and starts the
    /// raft runtime. Blocks the calling thread (scheduler round trips, engine opening); call it
    /// from a blocking context. Background network tasks run on `runtime`.
    pub fn start(cfg: &ServerConfig, runtime: Handle) -> Result<ClusterStore> {
        let data_dir = &cfg.data_dir;
        std::fs::create_dir_all(data_dir).map_err(|e| {
            Error::Other(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let engines = Engines::open(data_dir, &cfg.rocksdb).map_err(|e| {
            Error::Other(format!(
                "cannot open engines in {}: {e}",
                data_dir.display()
            ))
        })?;
        let snap_mgr = SnapManager::new(data_dir.join("snap"))?;

        let pd = Arc::new(
            GrpcPdClient::connect(&cfg.scheduler, runtime.clone(), cfg.pd.clone())
                .map_err(startup("connecting to the scheduler"))?,
        );
        let mut raft_cfg = cfg.raftstore.clone();
        // The server's [rocksdb] section is the one engine configuration.
        raft_cfg.engine = cfg.rocksdb.clone();
        let (router, system) = create_system(&raft_cfg);
        let transport = GrpcTransport::new(
            runtime,
            Arc::new(PdStoreResolver::new(pd.clone())),
            snap_mgr.clone(),
            router.report_sink(),
            cfg.network.clone(),
        )
        .map_err(startup("transport"))?;
        let receiver = Arc::new(
            RaftReceiver::new(
                Arc::new(router.clone()),
                snap_mgr.clone(),
                cfg.network.clone(),
            )
            .map_err(startup("raft receiver"))?,
        );
        let store = metapb::Store {
            address: cfg.advertise_addr().to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            start_timestamp: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
            ..Default::default()
        };
        let node = match Node::start(
            system,
            router,
            raft_cfg,
            store,
            engines,
            snap_mgr,
            transport.clone(),
            pd,
        ) {
            Ok(node) => node,
            Err(e) => {
                transport.shutdown();
                receiver.shutdown();
                return Err(startup("raft runtime")(e));
            }
        };
        Ok(ClusterStore {
            node,
            transport,
            receiver,
        })
    }

    /// This store's id (allocated by the scheduler the first time the data dir was used).
    pub fn store_id(&self) -> u64 {
        self.node.store_id()
    }

    /// The router commands and raft messages go through.
    pub fn router(&self) -> &Router {
        self.node.router()
    }

    /// Handles the incoming raft streams of the gRPC service.
    pub fn receiver(&self) -> &Arc<RaftReceiver> {
        &self.receiver
    }

    /// The store runtime, for status snapshots.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Stops the transport and the runtime: pending commands are answered, threads joined.
    /// Blocks; call after the gRPC server stopped.
    pub fn stop(self) {
        self.receiver.shutdown();
        self.transport.shutdown();
        self.node.stop();
    }
}

/// Starts a cluster-mode store and serves its regions over gRPC.
pub async fn start_cluster(cfg: &ServerConfig) -> Result<RunningServer> {
    let addr = cfg.listen_addr()?;
    let runtime = Handle::current();
    let store_cfg = cfg.clone();
    let store = tokio::task::spawn_blocking(move || ClusterStore::start(&store_cfg, runtime))
        .await
        .map_err(|e| Error::Other(format!("store start-up task failed: {e}")))??;
    let storage = RaftStorage::new(store.router().clone())
        .with_timeout(Duration::from_secs(cfg.command_timeout_secs));
    let service =
        TikvService::with_raft_receiver(storage, cfg.limits.clone(), store.receiver().clone());
    let store_id = store.store_id();
    let receiver = store.receiver().clone();
    let server = match RunningServer::start(
        addr,
        service,
        Duration::from_secs(cfg.shutdown_timeout_secs),
    )
    .await
    {
        Ok(server) => server,
        Err(e) => {
            tokio::task::spawn_blocking(move || store.stop()).await.ok();
            return Err(e);
        }
    };
    tracing::info!(
        store_id,
        addr = %server.local_addr(),
        advertise_addr = cfg.advertise_addr(),
        data_dir = %cfg.data_dir.display(),
        scheduler = ?cfg.scheduler,
        "store started"
    );
    Ok(server
        .before_stop(move || receiver.shutdown())
        .after_stop(move || store.stop()))
}
