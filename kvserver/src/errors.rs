//! Errors of the server layer, and the **one** place where errors are mapped to the wire.
//!
//! Every handler returns [`Result`]; the service layer turns an [`Error`] into the response's
//! `region_error` (routing problems the client fixes by refreshing its region cache), into the
//! response's `error` field (raw API string / transactional `KeyError`), or — for RPCs whose
//! response has no error field — into a gRPC status. That mapping lives here and nowhere else.

use proto::{errorpb, kvrpcpb};
use thiserror::Error;

/// Result alias of the server layer.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything a request can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// A routing problem (not leader, epoch mismatch, key outside the region, ...). Goes to the
    /// response's `region_error`.
    #[error("region error: {}", .0.message)]
    Region(Box<errorpb::Error>),
    /// The request itself is malformed (empty key, oversized value, unknown column family, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The storage engine failed.
    #[error("engine: {0}")]
    Engine(raft_core::Error),
    /// The server is shutting down or a worker went away.
    #[error("{0}")]
    Other(String),
    /// A transactional (MVCC / Percolator) failure about one key or one transaction. Goes to the
    /// response's `KeyError` (see [`Error::key_error`]).
    #[error(transparent)]
    Txn(#[from] TxnError),
}

impl From<raft_core::Error> for Error {
    fn from(e: raft_core::Error) -> Self {
        match e {
            raft_core::Error::KeyNotInRegion { key, region } => {
                Error::Region(Box::new(errorpb::Error {
                    message: format!("key is not in region {}", region.id),
                    key_not_in_region: Some(errorpb::KeyNotInRegion {
                        key,
                        region_id: region.id,
                        start_key: region.start_key.clone(),
                        end_key: region.end_key.clone(),
                    }),
                    ..Default::default()
                }))
            }
            other => Error::Engine(other),
        }
    }
}

impl From<errorpb::Error> for Error {
    fn from(e: errorpb::Error) -> Self {
        Error::Region(Box::new(e))
    }
}

impl Error {
    /// The region error to put in a response's `region_error`, if this is one.
    pub fn region_error(&self) -> Option<errorpb::Error> {
        match self {
            Error::Region(e) => Some((**e).clone()),
            _ => None,
        }
    }

    /// The gRPC status for RPCs whose response has no field to carry this error.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            Error::InvalidArgument(msg) => tonic::Status::invalid_argument(msg.clone()),
            Error::Region(e) => tonic::Status::unavailable(format!("region error: {}", e.message)),
            Error::Engine(e) => tonic::Status::internal(e.to_string()),
            Error::Other(msg) => tonic::Status::unavailable(msg.clone()),
            Error::Txn(e) => tonic::Status::aborted(e.to_string()),
        }
    }
}

/// Binds an [`Error`] into a raw API response (`kvrpcpb.Raw*Response`).
///
/// Routing problems always go to `region_error`, so the client refreshes its region cache and
/// retries. Everything else goes to the response's `error` string, which the official clients
/// surface as a KV error. Three responses have no `error` field (`RawBatchGet`, `RawScan`,
/// `RawBatchScan`, as in kvproto); for them a non-region error becomes a gRPC status
/// ([`Error::to_status`], e.g. `INVALID_ARGUMENT`).
pub trait RawErrorResponse: Sized {
    /// The response reporting `err`, or the gRPC status to answer with instead.
    fn from_error(err: Error) -> std::result::Result<Self, tonic::Status>;
}

/// Turns a raw handler's result into what the RPC returns.
pub fn raw_response<R: RawErrorResponse>(res: Result<R>) -> std::result::Result<R, tonic::Status> {
    res.or_else(R::from_error)
}

macro_rules! raw_response_with_error_string {
    ($($resp:ty),* $(,)?) => {$(
        impl RawErrorResponse for $resp {
            fn from_error(err: Error) -> std::result::Result<Self, tonic::Status> {
                let mut resp = <$resp>::default();
                match err {
                    Error::Region(e) => resp.region_error = Some(*e),
                    other => resp.error = other.to_string(),
                }
                Ok(resp)
            }
        }
    )*};
}

macro_rules! raw_response_without_error_field {
    ($($resp:ty),* $(,)?) => {$(
        impl RawErrorResponse for $resp {
            fn from_error(err: Error) -> std::result::Result<Self, tonic::Status> {
                match err {
                    Error::Region(e) => {
                        let mut resp = <$resp>::default();
                        resp.region_error = Some(*e);
                        Ok(resp)
                    }
                    other => Err(other.to_status()),
                }
            }
        }
    )*};
}

raw_response_with_error_string!(
    proto::kvrpcpb::RawGetResponse,
    proto::kvrpcpb::RawPutResponse,
    proto::kvrpcpb::RawBatchPutResponse,
    proto::kvrpcpb::RawDeleteResponse,
    proto::kvrpcpb::RawBatchDeleteResponse,
    proto::kvrpcpb::RawDeleteRangeResponse,
    proto::kvrpcpb::RawCasResponse,
);

raw_response_without_error_field!(
    proto::kvrpcpb::RawBatchGetResponse,
    proto::kvrpcpb::RawScanResponse,
    proto::kvrpcpb::RawBatchScanResponse,
    proto::kvrpcpb::SplitRegionResponse,
);

/// Maps a request's column family name to the engine's: empty means `default`; anything other
/// than `default`, `lock` or `write` is an [`Error::InvalidArgument`].
pub fn validate_cf(name: &str) -> Result<&'static str> {
    use raft_core::engine::{CF_DEFAULT, CF_LOCK, CF_WRITE};
    match name {
        "" | CF_DEFAULT => Ok(CF_DEFAULT),
        CF_LOCK => Ok(CF_LOCK),
        CF_WRITE => Ok(CF_WRITE),
        other => Err(Error::InvalidArgument(format!(
            "unknown column family {other:?} (expected default, lock or write)"
        ))),
    }
}

// ---- Transactions ------------------------------------------------------------------------------

/// A transactional (MVCC / Percolator) failure. Keys are the client's raw keys, never the
/// memcomparable-encoded ones.
#[derive(Debug, Error)]
pub enum TxnError {
    /// The key is locked by another transaction (for reads: by a transaction that may commit
    /// before the read timestamp). The client resolves the lock and retries.
    #[error("key {} is locked by txn {} (primary {})", show_key(&.0.key), .0.lock_version, show_key(&.0.primary_lock))]
    KeyIsLocked(Box<kvrpcpb::LockInfo>),
    /// A newer version (or our own rollback) exists: the transaction must restart.
    #[error(
        "write conflict on key {}: txn {start_ts} met txn {conflict_start_ts} committed at \
         {conflict_commit_ts} ({reason:?})",
        show_key(.key)
    )]
    WriteConflict {
        /// Our start ts.
        start_ts: u64,
        /// Start ts of the conflicting write (ours for a self-rollback).
        conflict_start_ts: u64,
        /// Commit ts of the conflicting write.
        conflict_commit_ts: u64,
        /// The key.
        key: Vec<u8>,
        /// Our primary key.
        primary: Vec<u8>,
        /// Why.
        reason: kvrpcpb::write_conflict::Reason,
    },
    /// `Insert` / `CheckNotExists` (or a pessimistic lock asserting non-existence) met a value.
    #[error("key {} already exists (written by txn {existing_start_ts})", show_key(.key))]
    AlreadyExist {
        /// The key.
        key: Vec<u8>,
        /// Start ts of the transaction that wrote the existing value.
        existing_start_ts: u64,
    },
    /// Commit found neither our lock nor our commit record: the transaction was rolled back.
    #[error(
        "txn {start_ts} has no lock on key {} (commit at {commit_ts}): rolled back or never \
         prewritten",
        show_key(.key)
    )]
    TxnLockNotFound {
        /// Start ts.
        start_ts: u64,
        /// Attempted commit ts.
        commit_ts: u64,
        /// The key.
        key: Vec<u8>,
    },
    /// A rollback met the transaction's commit record.
    #[error("txn {start_ts} is already committed at {commit_ts} on key {}", show_key(.key))]
    Committed {
        /// Start ts.
        start_ts: u64,
        /// The commit ts found.
        commit_ts: u64,
        /// The key.
        key: Vec<u8>,
    },
    /// The commit ts is below the lock's `min_commit_ts`; the client retries with a newer one.
    #[error(
        "commit ts {commit_ts} of txn {start_ts} is below min commit ts {min_commit_ts} on key {}",
        show_key(.key)
    )]
    CommitTsExpired {
        /// Start ts.
        start_ts: u64,
        /// Attempted commit ts.
        commit_ts: u64,
        /// The key.
        key: Vec<u8>,
        /// The lock's min commit ts.
        min_commit_ts: u64,
    },
    /// Check-txn-status / heartbeat found no lock and no commit record of the transaction.
    #[error("txn {start_ts} not found on primary {}", show_key(.key))]
    TxnNotFound {
        /// Start ts.
        start_ts: u64,
        /// The primary key.
        key: Vec<u8>,
    },
    /// A pessimistic prewrite found no pessimistic lock of its transaction on the key.
    #[error("pessimistic lock of txn {start_ts} not found on key {}", show_key(.key))]
    PessimisticLockNotFound {
        /// Start ts.
        start_ts: u64,
        /// The key.
        key: Vec<u8>,
    },
    /// A pessimistic lock request of a transaction that was already rolled back.
    #[error("txn {start_ts} was rolled back; cannot lock key {}", show_key(.key))]
    PessimisticLockRolledBack {
        /// Start ts.
        start_ts: u64,
        /// The key.
        key: Vec<u8>,
    },
    /// The transaction's own lock on the key is of the wrong kind for this request.
    #[error("txn {start_ts} holds a lock of the wrong kind on key {} (pessimistic: {pessimistic})", show_key(.key))]
    LockTypeNotMatch {
        /// Start ts.
        start_ts: u64,
        /// The key.
        key: Vec<u8>,
        /// Whether the lock found is a pessimistic lock.
        pessimistic: bool,
    },
    /// Check-txn-status with `verify_is_primary` on a key that is not the transaction's primary.
    #[error("key {} is not the primary of txn {} (primary is {})", show_key(&.0.key), .0.lock_version, show_key(&.0.primary_lock))]
    PrimaryMismatch(Box<kvrpcpb::LockInfo>),
    /// Stored MVCC data that cannot be decoded (e.g. raw-API writes into the `lock` or `write`
    /// column family, which transactional reads then trip over).
    #[error("malformed mvcc data: {0}")]
    BadFormat(String),
}

/// Renders a key for messages: printable ASCII as is, everything else escaped.
fn show_key(key: &[u8]) -> String {
    format!("\"{}\"", key.escape_ascii())
}

impl Error {
    /// The `KeyError` a transactional response carries for this error. Region errors belong in
    /// `region_error` instead (see [`txn_error_fields`]); anything that is not a transactional
    /// error becomes `abort`, which clients surface as a failure without retrying.
    pub fn key_error(&self) -> kvrpcpb::KeyError {
        let mut ke = kvrpcpb::KeyError::default();
        let Error::Txn(e) = self else {
            ke.abort = self.to_string();
            return ke;
        };
        match e {
            TxnError::KeyIsLocked(info) => ke.locked = Some((**info).clone()),
            TxnError::WriteConflict {
                start_ts,
                conflict_start_ts,
                conflict_commit_ts,
                key,
                primary,
                reason,
            } => {
                ke.conflict = Some(kvrpcpb::WriteConflict {
                    start_ts: *start_ts,
                    conflict_ts: *conflict_start_ts,
                    key: key.clone(),
                    primary: primary.clone(),
                    conflict_commit_ts: *conflict_commit_ts,
                    reason: *reason as i32,
                });
                // Older clients only look at `retryable`.
                ke.retryable = e.to_string();
            }
            TxnError::AlreadyExist { key, .. } => {
                ke.already_exist = Some(kvrpcpb::AlreadyExist { key: key.clone() })
            }
            TxnError::TxnLockNotFound { .. } => ke.retryable = e.to_string(),
            TxnError::CommitTsExpired {
                start_ts,
                commit_ts,
                key,
                min_commit_ts,
            } => {
                ke.commit_ts_expired = Some(kvrpcpb::CommitTsExpired {
                    start_ts: *start_ts,
                    attempted_commit_ts: *commit_ts,
                    key: key.clone(),
                    min_commit_ts: *min_commit_ts,
                })
            }
            TxnError::TxnNotFound { start_ts, key } => {
                ke.txn_not_found = Some(kvrpcpb::TxnNotFound {
                    start_ts: *start_ts,
                    primary_key: key.clone(),
                })
            }
            TxnError::PrimaryMismatch(info) => {
                ke.primary_mismatch = Some(kvrpcpb::PrimaryMismatch {
                    lock_info: Some((**info).clone()),
                })
            }
            TxnError::Committed { .. }
            | TxnError::PessimisticLockNotFound { .. }
            | TxnError::PessimisticLockRolledBack { .. }
            | TxnError::LockTypeNotMatch { .. }
            | TxnError::BadFormat(_) => ke.abort = e.to_string(),
        }
        ke
    }

    /// The commit ts carried by [`TxnError::Committed`] (`CleanupResponse.commit_version`).
    pub fn committed_ts(&self) -> Option<u64> {
        match self {
            Error::Txn(TxnError::Committed { commit_ts, .. }) => Some(*commit_ts),
            _ => None,
        }
    }
}

/// Splits a failed transactional command into a response's `region_error` and `error` fields:
/// exactly one of them is set.
pub fn txn_error_fields(e: &Error) -> (Option<errorpb::Error>, Option<kvrpcpb::KeyError>) {
    match e.region_error() {
        Some(region_error) => (Some(region_error), None),
        None => (None, Some(e.key_error())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cf_names() {
        assert_eq!(validate_cf("").unwrap(), "default");
        assert_eq!(validate_cf("write").unwrap(), "write");
        assert!(matches!(
            validate_cf("raft"),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn key_not_in_region_becomes_region_error() {
        let e: Error = raft_core::Error::KeyNotInRegion {
            key: b"k".to_vec(),
            region: Box::new(proto::metapb::Region {
                id: 3,
                ..Default::default()
            }),
        }
        .into();
        let re = e.region_error().unwrap();
        assert_eq!(re.key_not_in_region.unwrap().region_id, 3);
        assert!(Error::InvalidArgument("x".into()).region_error().is_none());
        assert_eq!(
            Error::InvalidArgument("x".into()).to_status().code(),
            tonic::Code::InvalidArgument
        );
    }
}
