//! Errors of the harness: a cluster that cannot start, an RPC or client call that fails, a
//! condition that does not come true in time, a Python script that fails.
//!
//! Conformance *mismatches* (a client read back something else than was written) are not errors
//! here: scenarios assert them, so a failing test prints both sides.

use std::path::PathBuf;
use std::time::Duration;

/// Result of harness operations.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong while driving the cluster or a client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A harness setting is unusable.
    #[error("invalid harness config: {0}")]
    Config(String),
    /// Starting, stopping or changing the process cluster failed.
    #[error("cluster: {0}")]
    Cluster(#[from] tinykv_playground::Error),
    /// Our own client (the read-back path) failed.
    #[error("tinykv client: {0}")]
    Client(#[from] client::Error),
    /// TiKV's Rust client failed where the scenario expected success.
    #[error("tikv-client: {what}: {source}")]
    TikvClient {
        /// The operation.
        what: String,
        /// The client's error (boxed: it is several hundred bytes, and every `Result` of the
        /// harness would carry that size).
        #[source]
        source: Box<tikv_client::Error>,
    },
    /// A gRPC call of the harness itself (SplitRegion, KvPrewrite seeding) failed.
    #[error("{rpc}: {message}")]
    Rpc {
        /// The RPC.
        rpc: &'static str,
        /// The status or region error it returned.
        message: String,
    },
    /// The scheduler's HTTP API refused a request.
    #[error("scheduler HTTP {path}: {message}")]
    Http {
        /// The route.
        path: String,
        /// Status and body, or the transport error.
        message: String,
    },
    /// A condition polled with a deadline never held.
    #[error("{what}: not true after {waited:?}: {last}")]
    Timeout {
        /// The condition.
        what: String,
        /// How long it was polled.
        waited: Duration,
        /// Why the last check failed.
        last: String,
    },
    /// The Python environment is missing or broken.
    #[error("python: {0}")]
    PythonSetup(String),
    /// A Python scenario script failed.
    #[error(
        "python {script} exited with {status}:\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    )]
    PythonScript {
        /// The script.
        script: PathBuf,
        /// Its exit status.
        status: String,
        /// What it printed.
        stdout: String,
        /// Its diagnostics.
        stderr: String,
    },
    /// A Python script's report was not the JSON the harness expects.
    #[error("python {script}: bad report: {reason}")]
    PythonReport {
        /// The script.
        script: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Wraps an error of TiKV's client with the operation that failed.
    pub fn tikv(what: impl Into<String>) -> impl FnOnce(tikv_client::Error) -> Error {
        let what = what.into();
        move |source| Error::TikvClient {
            what,
            source: Box::new(source),
        }
    }
}
