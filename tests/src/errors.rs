//! Errors of the cluster harness.
//!
//! `must_*` helpers panic (a test that cannot do what it set out to do has failed); the fallible
//! variants they are built on return these, so suites that expect failures can inspect them.

use proto::errorpb;
use thiserror::Error;

/// Result alias of the harness.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything a harness operation can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// An operation kept failing until its deadline; `last` is the last failure seen.
    #[error("{what} timed out after {attempts} attempts; last failure: {last}")]
    Timeout {
        /// What was attempted.
        what: String,
        /// How many attempts were made.
        attempts: usize,
        /// The last failure, for the test log.
        last: String,
    },
    /// A region error the retry loop does not handle (returned by `call_command_on_leader`
    /// callers that want to see it, e.g. `KeyNotInRegion`).
    #[error("region error: {0:?}")]
    Region(Box<errorpb::Error>),
    /// A service answered a transactional request with a gRPC status (a malformed request, or
    /// a failure its response has no field for); never retried.
    #[error("rpc failed: {0}")]
    Rpc(Box<tonic::Status>),
    /// The store is not running (never started, or stopped).
    #[error("store {0} is not running")]
    StoreNotRunning(u64),
    /// A configuration value is out of range.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The store id is not part of this cluster.
    #[error("store {0} is not part of the cluster")]
    UnknownStore(u64),
    /// A response did not have the shape its request implies (a bug in the store).
    #[error("unexpected response: {0}")]
    UnexpectedResponse(String),
    /// The store runtime failed.
    #[error(transparent)]
    Raftstore(#[from] raftstore::Error),
    /// An engine or snapshot operation failed.
    #[error(transparent)]
    Core(#[from] raft_core::Error),
    /// Creating directories or files failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
