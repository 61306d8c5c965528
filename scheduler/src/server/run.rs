//! Starting and stopping the scheduler: listener, gRPC + HTTP routes, coordinator, shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proto::pdpb::pd_server::PdServer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tonic::service::Routes;
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;

use super::{status_http, MemberInfo, PdService};
use crate::cluster::{coordinator, Cluster};
use crate::config::Config;
use crate::errors::{Error, Result};

/// How long shutdown waits for connections and stream tasks before giving up on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running scheduler.
pub struct SchedulerServer {
    addr: SocketAddr,
    client_url: String,
    cluster: Arc<Cluster>,
    shutdown_tx: watch::Sender<bool>,
    serve: JoinHandle<std::result::Result<(), tonic::transport::Error>>,
    coordinator: JoinHandle<()>,
    guard: mpsc::Sender<()>,
    released: mpsc::Receiver<()>,
}

impl std::fmt::Debug for SchedulerServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerServer")
            .field("addr", &self.addr)
            .field("cluster_id", &self.cluster.cluster_id())
            .finish()
    }
}

impl SchedulerServer {
    /// Opens the metadata, binds the listener and starts serving. Must run inside a Tokio
    /// runtime.
    pub async fn start(config: Config) -> Result<SchedulerServer> {
        config.validate()?;
        let cluster = Cluster::open(&config)?;
        let listener = TcpListener::bind(&config.listen_addr).await?;
        let addr = listener.local_addr()?;
        let client_url = if config.advertise_client_url.is_empty() {
            format!("http://{addr}")
        } else {
            config.advertise_client_url.clone()
        };

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        // Every task that holds the cluster also holds a clone of `guard`; `released` yields
        // `None` once all of them are gone.
        let (guard, released) = mpsc::channel::<()>(1);

        let service = PdService::new(
            cluster.clone(),
            MemberInfo {
                name: config.name.clone(),
                client_url: client_url.clone(),
            },
            shutdown_rx.clone(),
            guard.clone(),
        );
        let app = status_http::with_status_routes(
            Routes::new(PdServer::new(service)).into_axum_router(),
            cluster.clone(),
        );
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let mut signal = shutdown_rx.clone();
        let serve = tokio::spawn(
            Server::builder()
                .accept_http1(true)
                .add_routes(Routes::from(app))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = signal.wait_for(|stop| *stop).await;
                }),
        );
        // Tick a few times per window so the bound stays well ahead of the clock.
        let tso_tick = (config.tso_save_interval / 4).max(Duration::from_millis(20));
        let coordinator = coordinator::spawn(cluster.clone(), shutdown_rx, tso_tick, guard.clone());
        tracing::info!(
            cluster_id = cluster.cluster_id(),
            %addr,
            client_url = %client_url,
            "scheduler serving"
        );
        Ok(SchedulerServer {
            addr,
            client_url,
            cluster,
            shutdown_tx,
            serve,
            coordinator,
            guard,
            released,
        })
    }

    /// The bound address (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL reported to clients (`http://host:port`).
    pub fn client_url(&self) -> &str {
        &self.client_url
    }

    /// The cluster (for status and tests).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Stops serving: ends the streams, waits for connections and background tasks, and
    /// releases the metadata database (a new server can open the same directory afterwards).
    pub async fn shutdown(self) -> Result<()> {
        let SchedulerServer {
            cluster,
            shutdown_tx,
            mut serve,
            coordinator,
            guard,
            mut released,
            ..
        } = self;
        let _ = shutdown_tx.send(true);
        cluster.streams().clear();
        drop(guard);
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut serve).await {
            Ok(Ok(r)) => r.map_err(Error::from),
            Ok(Err(join)) => Err(Error::Io(std::io::Error::other(join.to_string()))),
            Err(_) => {
                tracing::warn!("connections did not close in time; dropping them");
                serve.abort();
                Ok(())
            }
        };
        let _ = coordinator.await;
        if tokio::time::timeout(SHUTDOWN_GRACE, released.recv())
            .await
            .is_err()
        {
            tracing::warn!("stream tasks did not stop in time");
        }
        drop(cluster);
        tracing::info!("scheduler stopped");
        served
    }
}
