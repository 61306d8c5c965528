//! Running the gRPC server.
//!
//! ```text
//!  ServerConfig ──▶ open storage (data-dir) ──▶ TikvService ──▶ tonic Server on a bound listener
//!                                                                     │
//!  SIGINT/SIGTERM ──▶ stop accepting ──▶ drain in-flight requests ────┘──▶ storage dropped
//!                     (bounded by shutdown-timeout-secs)                    (RocksDB closed)
//! ```
//!
//! gRPC message limits follow [`Limits`]: a request may carry one Raft entry plus
//! [`MESSAGE_HEADROOM`] for keys, context and framing, so a value slightly over the entry limit
//! still reaches the handler and gets a clear error, while anything far larger is refused by the
//! transport before it is buffered. Responses are held to the same size (TiKV also caps what it
//! sends), so an oversized scan fails instead of producing a message clients cannot decode.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use proto::tikvpb::tikv_server::TikvServer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;

use crate::config::{Limits, ServerConfig};
use crate::errors::{Error, Result};
use crate::service::TikvService;
use crate::storage::{StandaloneStorage, Storage};

/// Bytes a gRPC message may carry beyond one Raft entry (keys, context, protobuf framing).
pub const MESSAGE_HEADROOM: usize = 1 << 20;

/// The largest gRPC message, in either direction, under `limits`.
pub fn max_message_size(limits: &Limits) -> usize {
    limits.raft_entry_max_size.saturating_add(MESSAGE_HEADROOM)
}

/// Wraps `service` in the generated tonic server with message limits derived from its [`Limits`].
pub fn tikv_server<S: Storage>(service: TikvService<S>) -> TikvServer<TikvService<S>> {
    let max = max_message_size(&service.ctx().limits);
    TikvServer::new(service)
        .max_decoding_message_size(max)
        .max_encoding_message_size(max)
}

/// A server accepting connections on a background task.
///
/// [`RunningServer::shutdown`] stops it cleanly; dropping the handle only asks it to stop.
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<()>>,
    shutdown_timeout: Duration,
    /// Ends the service's long-lived streams (see [`crate::service::ServiceCtx::stop_streams`]).
    end_streams: Option<Hook>,
    before_stop: Option<Hook>,
    after_stop: Option<Hook>,
}

/// Work tied to a server's lifetime (see [`RunningServer::before_stop`]).
type Hook = Box<dyn FnOnce() + Send + 'static>;

impl RunningServer {
    /// Binds `addr` (port 0 picks a free port) and serves `service` on it.
    pub async fn start<S: Storage>(
        addr: SocketAddr,
        service: TikvService<S>,
        shutdown_timeout: Duration,
    ) -> Result<RunningServer> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Other(format!("cannot listen on {addr}: {e}")))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::Other(format!("listener on {addr}: {e}")))?;
        // Small request/response pairs: don't let Nagle's algorithm hold them back.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let (stop, stopped) = oneshot::channel::<()>();
        let ctx = service.ctx().clone();
        let end_streams: Hook = Box::new(move || ctx.stop_streams());
        let router = tonic::transport::Server::builder().add_service(tikv_server(service));
        let task = tokio::spawn(async move {
            router
                .serve_with_incoming_shutdown(incoming, async {
                    // A dropped sender (handle dropped) also means stop.
                    let _ = stopped.await;
                })
                .await
                .map_err(|e| Error::Other(format!("grpc server on {local_addr}: {e}")))
        });
        tracing::info!(addr = %local_addr, "listening");
        Ok(RunningServer {
            local_addr,
            stop: Some(stop),
            task,
            shutdown_timeout,
            end_streams: Some(end_streams),
            before_stop: None,
            after_stop: None,
        })
    }

    /// Runs `hook` when shutdown begins, before in-flight requests are drained — e.g. ending
    /// streams that would otherwise never finish.
    pub fn before_stop(mut self, hook: impl FnOnce() + Send + 'static) -> RunningServer {
        self.before_stop = Some(Box::new(hook));
        self
    }

    /// Runs `hook` (on a blocking thread) once the server has stopped — e.g. stopping the store
    /// runtime behind the service.
    pub fn after_stop(mut self, hook: impl FnOnce() + Send + 'static) -> RunningServer {
        self.after_stop = Some(Box::new(hook));
        self
    }

    /// Ends the long-lived streams, runs the `before_stop` hook and tells the server to stop
    /// accepting work (each once).
    fn begin_stop(&mut self) {
        if let Some(hook) = self.end_streams.take() {
            hook();
        }
        if let Some(hook) = self.before_stop.take() {
            hook();
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    async fn run_after_stop(&mut self) {
        if let Some(hook) = self.after_stop.take() {
            if let Err(e) = tokio::task::spawn_blocking(hook).await {
                tracing::error!(error = %e, "shutdown hook failed");
            }
        }
    }

    /// The address the server is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, lets in-flight requests finish, and returns once every
    /// connection — and with it the service and its storage — is released. Requests still
    /// running after the shutdown timeout are abandoned and an error is returned.
    pub async fn shutdown(mut self) -> Result<()> {
        self.begin_stop();
        let drained = tokio::time::timeout(self.shutdown_timeout, &mut self.task).await;
        self.run_after_stop().await;
        match drained {
            Ok(joined) => {
                joined.map_err(|e| Error::Other(format!("grpc server task failed: {e}")))??;
                tracing::info!(addr = %self.local_addr, "stopped");
                Ok(())
            }
            Err(_) => {
                self.task.abort();
                Err(Error::Other(format!(
                    "requests still running {}s after shutdown began; abandoned",
                    self.shutdown_timeout.as_secs()
                )))
            }
        }
    }

    /// Serves until `signal` completes, then shuts down. Returns early with an error if the
    /// server stops by itself.
    pub async fn run_until<F: Future<Output = ()>>(mut self, signal: F) -> Result<()> {
        tokio::select! {
            () = signal => self.shutdown().await,
            joined = &mut self.task => {
                self.begin_stop();
                self.run_after_stop().await;
                joined.map_err(|e| Error::Other(format!("grpc server task failed: {e}")))??;
                Err(Error::Other("grpc server stopped unexpectedly".into()))
            }
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.begin_stop();
        if let Some(hook) = self.after_stop.take() {
            // Dropped without `shutdown`: stop what the server ran on, without blocking an async
            // executor thread on it.
            let _ = std::thread::Builder::new()
                .name("server-cleanup".into())
                .spawn(hook);
        }
    }
}

/// Opens the standalone storage under `cfg.data_dir` and starts serving it.
pub async fn start_standalone(cfg: &ServerConfig) -> Result<RunningServer> {
    let addr = cfg.listen_addr()?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        Error::Other(format!(
            "cannot create data dir {}: {e}",
            cfg.data_dir.display()
        ))
    })?;
    let storage = StandaloneStorage::open(&cfg.data_dir, &cfg.rocksdb).map_err(|e| {
        Error::Other(format!(
            "cannot open data dir {}: {e}",
            cfg.data_dir.display()
        ))
    })?;
    let service = TikvService::new(storage, cfg.limits.clone());
    let server = RunningServer::start(
        addr,
        service,
        Duration::from_secs(cfg.shutdown_timeout_secs),
    )
    .await?;
    tracing::info!(
        addr = %server.local_addr(),
        advertise_addr = cfg.advertise_addr(),
        data_dir = %cfg.data_dir.display(),
        "standalone server started"
    );
    Ok(server)
}

/// Starts the server `cfg` describes: standalone, or a store of a cluster (`--scheduler`).
pub async fn start(cfg: &ServerConfig) -> Result<RunningServer> {
    if cfg.standalone {
        start_standalone(cfg).await
    } else {
        crate::cluster::start_cluster(cfg).await
    }
}

/// The process's termination signals. Registered before the server starts, so a signal that
/// arrives during startup is not lost to the default handler (which would kill the process
/// without closing the engines).
pub struct ShutdownSignals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// Installs handlers for SIGTERM and SIGINT.
    pub fn register() -> Result<ShutdownSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let err =
                |e: std::io::Error| Error::Other(format!("cannot install signal handler: {e}"));
            Ok(ShutdownSignals {
                term: signal(SignalKind::terminate()).map_err(err)?,
                int: signal(SignalKind::interrupt()).map_err(err)?,
            })
        }
        #[cfg(not(unix))]
        Ok(ShutdownSignals {})
    }

    /// Waits for the first signal and names it.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}

/// Runs the server `cfg` describes until SIGINT or SIGTERM, then shuts it down cleanly.
pub async fn run(cfg: ServerConfig) -> Result<()> {
    let mut signals = ShutdownSignals::register()?;
    let server = start(&cfg).await?;
    server
        .run_until(async move {
            let signal = signals.recv().await;
            tracing::info!(signal, "shutting down");
        })
        .await
}

/// Installs the global `tracing` subscriber (human-readable lines on stderr) with `filter`.
pub fn init_tracing(filter: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| Error::InvalidArgument(format!("log filter {filter:?}: {e}")))?;
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only help a terminal; in a log file they are noise.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init()
        .map_err(|e| Error::Other(format!("cannot install the log subscriber: {e}")))
}
