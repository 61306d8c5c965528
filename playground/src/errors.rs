//! The crate's one error type.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong starting, driving or stopping a process cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A [`crate::ClusterConfig`] value is unusable.
    #[error("invalid cluster config: {0}")]
    Config(String),

    /// A server binary is missing from every place searched.
    #[error(
        "{binary} not found (searched: {searched}); build the binaries first \
         (`make release` or `cargo build --bins`), or point {env} or TINYKV_BIN_DIR at them"
    )]
    BinaryNotFound {
        /// The binary's file name.
        binary: &'static str,
        /// Every path that was tried.
        searched: String,
        /// The environment variable naming this binary explicitly.
        env: &'static str,
    },
    /// `cargo build` of the server binaries failed or reported no executable.
    #[error("building the server binaries with cargo failed: {0}")]
    Build(String),

    /// A file or directory operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Another cluster (a playground, a test) holds the data directory.
    #[error("{} is in use by another running cluster (lock file {})", .dir.display(), .lock.display())]
    DirInUse {
        /// The data directory.
        dir: PathBuf,
        /// The lock file held by the other cluster.
        lock: PathBuf,
    },
    /// A fixed port is taken.
    #[error("port {port} on 127.0.0.1 is not free ({reason}); is another cluster running? choose other ports")]
    PortInUse {
        /// The port.
        port: u16,
        /// The bind error.
        reason: String,
    },
    /// No free loopback port could be reserved.
    #[error("cannot reserve a free loopback port: {0}")]
    NoFreePort(std::io::Error),

    /// A process could not be started.
    #[error("cannot start {name} ({}): {source}", .program.display())]
    Spawn {
        /// Which process, e.g. `store 1`.
        name: String,
        /// The executable.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A process exited while it should have been running, or exited unsuccessfully when
    /// asked to stop.
    #[error("{name} (pid {pid}) exited with {status}; last lines of {}:\n{tail}", .log.display())]
    Exited {
        /// Which process.
        name: String,
        /// Its pid.
        pid: u32,
        /// How it ended.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// A process ignored SIGTERM for the whole grace period and was killed.
    #[error("{name} (pid {pid}) did not exit within {after:?} of SIGTERM and was killed; see {}", .log.display())]
    StopTimeout {
        /// Which process.
        name: String,
        /// Its pid.
        pid: u32,
        /// The grace period.
        after: Duration,
        /// Its log file.
        log: PathBuf,
    },
    /// The cluster (or one member) did not become ready in time.
    #[error("{what} not ready after {after:?}: {waiting_for} (logs in {})", .logs.display())]
    NotReady {
        /// The cluster, or the member waited for.
        what: String,
        /// The timeout.
        after: Duration,
        /// The last condition that was still unmet.
        waiting_for: String,
        /// The log directory.
        logs: PathBuf,
    },

    /// A store index outside the cluster.
    #[error("no store with index {index} (the cluster has {count})")]
    NoSuchStore {
        /// The index asked for.
        index: usize,
        /// How many stores the cluster has.
        count: usize,
    },
    /// The operation needs the process stopped, and it runs.
    #[error("{0} is running; stop or kill it first")]
    Running(String),
    /// The operation needs the process running, and it is stopped.
    #[error("{0} is not running")]
    NotRunning(String),

    /// `cluster.json` could not be written or read.
    #[error("manifest {}: {reason}", .path.display())]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A client call used for a readiness probe failed for good.
    #[error(transparent)]
    Client(#[from] client::Error),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
