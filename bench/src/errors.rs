//! The bench tool's one error type.
//!
//! Errors carry enough context to act on without a backtrace: which option is wrong, which
//! backend call failed, which server process did not start or stop.

use std::path::PathBuf;

/// The bench tool's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while configuring, running or reporting a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An option value is unusable.
    #[error("invalid config: {0}")]
    Config(String),

    /// A TinyKV client call failed.
    #[error("tinykv: {0}")]
    Tinykv(#[from] client::Error),
    /// An etcd client call failed.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),

    /// The key space (fixed by the key size) has no room for another inserted key.
    #[error("key space exhausted: {capacity} keys fit in {key_size}-byte keys")]
    KeySpaceExhausted {
        /// How many distinct keys the key size allows.
        capacity: u64,
        /// The configured key size.
        key_size: usize,
    },

    /// The load phase could not write a batch of records.
    #[error("load phase failed at record {first_id}: {source}")]
    Load {
        /// The first record id of the failed batch.
        first_id: u64,
        /// The last error seen for it.
        #[source]
        source: Box<Error>,
    },

    /// The run phase saw more failed operations than allowed.
    #[error("{failed} of {total} operations failed (first: {first})")]
    TooManyFailures {
        /// Failed operations.
        failed: u64,
        /// All operations.
        total: u64,
        /// The first error message recorded.
        first: String,
    },

    /// A server process could not be started, did not become ready, or did not stop.
    #[error("{what}: {reason}")]
    Process {
        /// The process (e.g. "etcd member m1").
        what: String,
        /// What went wrong.
        reason: String,
    },

    /// Reading `/proc` for CPU accounting failed.
    #[error("cpu accounting for pid {pid}: {reason}")]
    Cpu {
        /// The process.
        pid: u32,
        /// What went wrong.
        reason: String,
    },

    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A results file is not valid JSON of the expected shape.
    #[error("{}: {source}", .path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// Drawing the chart failed.
    #[error("chart {}: {reason}", .path.display())]
    Chart {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },

    /// The run was interrupted (SIGINT).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Builds an [`Error::Config`].
    pub fn config(msg: impl Into<String>) -> Error {
        Error::Config(msg.into())
    }

    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::Process`].
    pub fn process(what: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Process {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Whether a transaction that failed with this error may succeed if run again from the
    /// start (write conflict, lock that outlived the client's wait, server-requested retry).
    pub fn is_txn_retryable(&self) -> bool {
        matches!(
            self,
            Error::Tinykv(
                client::Error::WriteConflict(_)
                    | client::Error::KeyLocked(_)
                    | client::Error::Retryable(_)
            )
        )
    }
}
