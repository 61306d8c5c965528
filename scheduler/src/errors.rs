//! Errors of the scheduler, and the one place they are mapped onto the wire.
//!
//! Most failures a client can cause travel in the response's `header.error` (that is how PD's
//! clients expect them: `NOT_BOOTSTRAPPED`, `REGION_NOT_FOUND`, ...). A request for another cluster
//! is refused with a gRPC status instead, as PD does: no header field can make such a client useful.

use proto::pdpb::{self, ErrorType};
use thiserror::Error;
use tonic::Status;

/// Result alias used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the scheduler.
#[derive(Debug, Error)]
pub enum Error {
    /// RocksDB reported an error while reading or writing metadata.
    #[error("metadata storage: {0}")]
    Storage(#[from] rocksdb::Error),
    /// A persisted record could not be decoded; the data directory is damaged.
    #[error("corrupted metadata record {key}: {reason}")]
    Corrupted {
        /// Printable form of the record's key.
        key: String,
        /// What was wrong with it.
        reason: String,
    },
    /// Filesystem error (creating the data directory, binding the listener).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC server failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A configuration value is out of range.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The request needs a bootstrapped cluster.
    #[error("cluster is not bootstrapped")]
    NotBootstrapped,
    /// `Bootstrap` was called twice.
    #[error("cluster is already bootstrapped")]
    AlreadyBootstrapped,
    /// The request names another cluster.
    #[error("mismatched cluster id: this cluster is {expected}, the request is for {got}")]
    ClusterIdMismatch {
        /// Our cluster id.
        expected: u64,
        /// The id in the request header.
        got: u64,
    },
    /// No store with this id is registered.
    #[error("store {0} not found")]
    StoreNotFound(u64),
    /// The store was removed from the cluster for good.
    #[error("store {0} is tombstone")]
    StoreTombstone(u64),
    /// No region matches the key or id.
    #[error("region not found: {0}")]
    RegionNotFound(String),
    /// A heartbeat or request carries an older region epoch (or term) than the scheduler knows.
    #[error("region {region_id} is stale: {reason}")]
    StaleRegion {
        /// The region in the request.
        region_id: u64,
        /// Which epoch field is behind, and by how much.
        reason: String,
    },
    /// The region has no running or recently finished operator.
    #[error("no operator for region {0}")]
    OperatorNotFound(u64),
    /// The request is malformed (missing field, zero id, impossible range...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Allocating ids or timestamps ran out of range (would need centuries of traffic).
    #[error("exhausted: {0}")]
    Exhausted(String),
}

impl Error {
    /// The header error type a client sees for this error.
    pub fn error_type(&self) -> ErrorType {
        match self {
            Error::NotBootstrapped => ErrorType::NotBootstrapped,
            Error::AlreadyBootstrapped => ErrorType::AlreadyBootstrapped,
            Error::StoreTombstone(_) => ErrorType::StoreTombstone,
            Error::RegionNotFound(_) => ErrorType::RegionNotFound,
            Error::InvalidRequest(_) => ErrorType::InvalidValue,
            Error::OperatorNotFound(_) => ErrorType::EntryNotFound,
            _ => ErrorType::Unknown,
        }
    }

    /// The header error carried by a response, or `Err(status)` when the whole RPC must fail.
    pub fn into_wire(self) -> std::result::Result<pdpb::Error, Status> {
        match self {
            Error::ClusterIdMismatch { .. } => Err(Status::failed_precondition(self.to_string())),
            other => Ok(pdpb::Error {
                r#type: other.error_type() as i32,
                message: other.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_map_to_header_types() {
        let e = Error::NotBootstrapped.into_wire().unwrap();
        assert_eq!(e.r#type, ErrorType::NotBootstrapped as i32);
        let e = Error::RegionNotFound("key 61".into()).into_wire().unwrap();
        assert_eq!(e.r#type, ErrorType::RegionNotFound as i32);
        assert!(e.message.contains("key 61"));
        let e = Error::StoreTombstone(3).into_wire().unwrap();
        assert_eq!(e.r#type, ErrorType::StoreTombstone as i32);
        let status = Error::ClusterIdMismatch {
            expected: 1,
            got: 2,
        }
        .into_wire()
        .unwrap_err();
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }
}
