//! The client's one error type.
//!
//! Errors are typed by where they come from: configuration and arguments, PD, routing (region
//! errors that survived the retry budget), transport, the raw API's error strings, and the
//! transactional key errors (`kvrpcpb.KeyError`) that the caller must act on: write conflicts,
//! duplicate inserts, locks that did not go away. Nothing is swallowed: an error met while
//! sharding a batch fails the whole call.

use std::time::Duration;

use proto::{errorpb, kvrpcpb, pdpb};

/// The client's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a client call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration value is unusable (see [`crate::Config::validate`]).
    #[error("invalid config: {0}")]
    Config(String),
    /// The caller passed something the client refuses before any RPC (limit too large, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// No PD endpoint answered `GetMembers` with a leader.
    #[error("no PD leader reachable: {0}")]
    PdUnavailable(String),
    /// PD answered with an error in its response header.
    #[error("PD {rpc} failed: {kind:?}: {message}")]
    Pd {
        /// The PD method.
        rpc: &'static str,
        /// PD's error type.
        kind: pdpb::ErrorType,
        /// PD's message.
        message: String,
    },
    /// Two PD members (or two responses) name different clusters.
    #[error("PD cluster id mismatch: expected {expected}, got {actual}")]
    ClusterIdMismatch {
        /// The id learned when connecting.
        expected: u64,
        /// The id in the offending response.
        actual: u64,
    },
    /// PD knows no region containing this key (as PD sees it: encoded in transactional mode).
    #[error("no region contains key \"{}\"", .key.escape_ascii())]
    RegionNotFound {
        /// The key that was looked up.
        key: Vec<u8>,
    },
    /// PD knows no region with this id.
    #[error("region {0} not found")]
    RegionIdNotFound(u64),
    /// PD knows no live store with this id.
    #[error("store {0} not found or tombstoned")]
    StoreNotFound(u64),
    /// The timestamp oracle stream failed.
    #[error("timestamp oracle: {0}")]
    Tso(String),

    /// The region has no known leader, even after asking PD again.
    #[error("region {region_id} has no leader")]
    LeaderNotFound {
        /// The region.
        region_id: u64,
    },
    /// A region error the client does not retry, or the last one after retries ran out.
    #[error("region {region_id}: {}", describe_region_error(.error))]
    Region {
        /// The region the request was sent to.
        region_id: u64,
        /// The error as the store sent it.
        error: Box<errorpb::Error>,
    },
    /// Bytes that should be memcomparable-encoded are not (region bounds from PD in
    /// transactional mode).
    #[error("cannot decode memcomparable key \"{}\": {reason}", .bytes.escape_ascii())]
    Codec {
        /// The undecodable bytes.
        bytes: Vec<u8>,
        /// What is wrong with them.
        reason: &'static str,
    },

    /// An endpoint address could not be turned into a gRPC endpoint.
    #[error("invalid address {addr}: {reason}")]
    InvalidAddress {
        /// The address as configured or reported by PD.
        addr: String,
        /// Why it was rejected.
        reason: String,
    },
    /// A gRPC call failed (transport failure or a non-OK status from the server).
    #[error("{rpc} to {addr} failed: {status}")]
    Grpc {
        /// The method.
        rpc: &'static str,
        /// The server address.
        addr: String,
        /// The status.
        status: Box<tonic::Status>,
    },
    /// A call did not finish within the per-request timeout.
    #[error("{rpc} to {addr} timed out after {after:?}")]
    Timeout {
        /// The method.
        rpc: &'static str,
        /// The server address.
        addr: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// A response broke the protocol (missing header, keys outside the asked range, ...).
    #[error("invalid response to {rpc}: {reason}")]
    InvalidResponse {
        /// The method.
        rpc: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// A raw request failed on the server (the response's `error` string).
    #[error("{rpc} failed on the server: {message}")]
    Kv {
        /// The method.
        rpc: &'static str,
        /// The server's message.
        message: String,
    },

    /// Another transaction committed a write to this key after our start (or for-update)
    /// timestamp.
    #[error(
        "write conflict on key \"{}\": txn {} conflicts with txn {} committed at {}",
        .0.key.escape_ascii(), .0.start_ts, .0.conflict_ts, .0.conflict_commit_ts
    )]
    WriteConflict(Box<kvrpcpb::WriteConflict>),
    /// An insert found the key already present.
    #[error("key \"{}\" already exists", .key.escape_ascii())]
    AlreadyExists {
        /// The key.
        key: Vec<u8>,
    },
    /// A lock of another transaction is still alive after the lock backoff ran out.
    #[error(
        "key \"{}\" is locked by txn {} (primary \"{}\", ttl {} ms)",
        .0.key.escape_ascii(), .0.lock_version, .0.primary_lock.escape_ascii(), .0.lock_ttl
    )]
    KeyLocked(Box<kvrpcpb::LockInfo>),
    /// The server detected a deadlock between pessimistic transactions.
    #[error("deadlock on key \"{}\" held by txn {}", .0.lock_key.escape_ascii(), .0.lock_ts)]
    Deadlock(Box<kvrpcpb::Deadlock>),
    /// The commit timestamp is below the lock's `min_commit_ts`, and retrying with fresh
    /// timestamps did not get past it.
    #[error(
        "commit ts {} of txn {} expired (min commit ts {})",
        .0.attempted_commit_ts, .0.start_ts, .0.min_commit_ts
    )]
    CommitTsExpired(Box<kvrpcpb::CommitTsExpired>),
    /// The transaction's primary lock is gone and nothing records its outcome.
    #[error("txn {} not found (primary \"{}\")", .0.start_ts, .0.primary_key.escape_ascii())]
    TxnNotFound(Box<kvrpcpb::TxnNotFound>),
    /// The server aborted the request (for example: the transaction was already rolled back).
    #[error("aborted by the server: {0}")]
    Aborted(String),
    /// The server asks the client to retry the whole transaction.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Any other key error (assertion failed, primary mismatch, commit ts too large).
    #[error("key error: {0:?}")]
    OtherKeyError(Box<kvrpcpb::KeyError>),
    /// Several keys failed; the errors are listed in key order.
    #[error("{} key errors, first: {}", .0.len(), .0.first().map(|e| e.to_string()).unwrap_or_default())]
    MultipleKeyErrors(Vec<Error>),

    /// The transaction was already committed or rolled back.
    #[error("transaction already {0}")]
    TransactionFinished(&'static str),
    /// The primary commit was sent but its outcome is unknown (transport failure or timeout).
    /// The transaction may or may not be committed; readers will settle it.
    #[error("commit of txn {start_ts} is undetermined: {source}")]
    UndeterminedCommit {
        /// The transaction's start timestamp.
        start_ts: u64,
        /// The error that hid the outcome.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Wraps a gRPC status.
    pub(crate) fn grpc(rpc: &'static str, addr: &str, status: tonic::Status) -> Error {
        Error::Grpc {
            rpc,
            addr: addr.to_owned(),
            status: Box::new(status),
        }
    }

    /// Wraps a gRPC status from a call made with deadline `timeout`: tonic enforces the
    /// `grpc-timeout` it sends and reports expiry as a CANCELLED status, which is a
    /// [`Error::Timeout`] here like every other expired deadline.
    pub(crate) fn from_status(
        rpc: &'static str,
        addr: &str,
        status: tonic::Status,
        timeout: Duration,
    ) -> Error {
        if deadline_expired_locally(&status) {
            Error::Timeout {
                rpc,
                addr: addr.to_owned(),
                after: timeout,
            }
        } else {
            Error::grpc(rpc, addr, status)
        }
    }

    /// Builds an [`Error::InvalidResponse`].
    pub(crate) fn invalid_response(rpc: &'static str, reason: impl Into<String>) -> Error {
        Error::InvalidResponse {
            rpc,
            reason: reason.into(),
        }
    }

    /// True when the server could not be reached or did not answer: the request may be retried
    /// elsewhere (after refreshing routing) and, for writes, may or may not have been applied.
    pub fn is_transport(&self) -> bool {
        match self {
            Error::Timeout { .. } => true,
            Error::Grpc { status, .. } => is_retryable_code(status.code()),
            _ => false,
        }
    }

    /// Turns several key errors into one error: the error itself when there is one.
    pub(crate) fn from_key_errors(mut errors: Vec<Error>) -> Error {
        if errors.len() == 1 {
            errors.pop().expect("len checked")
        } else {
            Error::MultipleKeyErrors(errors)
        }
    }
}

/// gRPC codes that mean "the call did not complete; the server or the path to it is the
/// problem", as opposed to a definite answer such as INVALID_ARGUMENT or UNIMPLEMENTED.
pub(crate) fn is_retryable_code(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
            | tonic::Code::Aborted
            | tonic::Code::ResourceExhausted
    )
}

fn deadline_expired_locally(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        if e.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = e.source();
    }
    false
}

impl From<kvrpcpb::KeyError> for Error {
    fn from(mut e: kvrpcpb::KeyError) -> Error {
        if let Some(lock) = e.locked.take() {
            Error::KeyLocked(Box::new(lock))
        } else if let Some(c) = e.conflict.take() {
            Error::WriteConflict(Box::new(c))
        } else if let Some(a) = e.already_exist.take() {
            Error::AlreadyExists { key: a.key }
        } else if let Some(d) = e.deadlock.take() {
            Error::Deadlock(Box::new(d))
        } else if let Some(c) = e.commit_ts_expired.take() {
            Error::CommitTsExpired(Box::new(c))
        } else if let Some(t) = e.txn_not_found.take() {
            Error::TxnNotFound(Box::new(t))
        } else if !e.abort.is_empty() {
            Error::Aborted(e.abort)
        } else if !e.retryable.is_empty() {
            Error::Retryable(e.retryable)
        } else {
            Error::OtherKeyError(Box::new(e))
        }
    }
}

/// A short description of a region error: the variant that is set, then the message.
pub(crate) fn describe_region_error(e: &errorpb::Error) -> String {
    let kind = if let Some(nl) = &e.not_leader {
        match &nl.leader {
            Some(l) => format!(
                "not leader (leader is peer {} on store {})",
                l.id, l.store_id
            ),
            None => "not leader (leader unknown)".to_owned(),
        }
    } else if e.region_not_found.is_some() {
        "region not found".to_owned()
    } else if let Some(k) = &e.key_not_in_region {
        format!("key \"{}\" not in region", k.key.escape_ascii())
    } else if e.epoch_not_match.is_some() {
        "epoch not match".to_owned()
    } else if let Some(b) = &e.server_is_busy {
        format!("server is busy: {}", b.reason)
    } else if e.stale_command.is_some() {
        "stale command".to_owned()
    } else if let Some(s) = &e.store_not_match {
        format!(
            "store not match (requested {}, actual {})",
            s.request_store_id, s.actual_store_id
        )
    } else if let Some(t) = &e.raft_entry_too_large {
        format!("raft entry too large ({} bytes)", t.entry_size)
    } else if e.max_timestamp_not_synced.is_some() {
        "max timestamp not synced".to_owned()
    } else if e.read_index_not_ready.is_some() {
        "read index not ready".to_owned()
    } else if e.region_not_initialized.is_some() {
        "region not initialized".to_owned()
    } else if e.mismatch_peer_id.is_some() {
        "mismatch peer id".to_owned()
    } else {
        "error".to_owned()
    };
    if e.message.is_empty() {
        kind
    } else {
        format!("{kind}: {}", e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_errors_map_to_typed_variants() {
        let e = Error::from(kvrpcpb::KeyError {
            already_exist: Some(kvrpcpb::AlreadyExist { key: b"k".to_vec() }),
            ..Default::default()
        });
        assert!(matches!(e, Error::AlreadyExists { ref key } if key == b"k"));
        assert_eq!(e.to_string(), "key \"k\" already exists");

        let e = Error::from(kvrpcpb::KeyError {
            conflict: Some(kvrpcpb::WriteConflict {
                start_ts: 5,
                conflict_ts: 3,
                conflict_commit_ts: 7,
                key: b"a\x01".to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(
            e.to_string(),
            "write conflict on key \"a\\x01\": txn 5 conflicts with txn 3 committed at 7"
        );

        let e = Error::from(kvrpcpb::KeyError {
            abort: "already rolled back".into(),
            ..Default::default()
        });
        assert!(matches!(e, Error::Aborted(ref m) if m == "already rolled back"));
        assert!(matches!(
            Error::from(kvrpcpb::KeyError::default()),
            Error::OtherKeyError(_)
        ));
    }

    #[test]
    fn transport_classification() {
        let unavailable = Error::grpc("RawGet", "a:1", tonic::Status::unavailable("down"));
        assert!(unavailable.is_transport());
        let invalid = Error::grpc("RawGet", "a:1", tonic::Status::invalid_argument("bad"));
        assert!(!invalid.is_transport());
    }

    #[test]
    fn region_error_description() {
        let e = errorpb::Error {
            message: "peer is not leader".into(),
            not_leader: Some(errorpb::NotLeader {
                region_id: 2,
                leader: None,
            }),
            ..Default::default()
        };
        assert_eq!(
            describe_region_error(&e),
            "not leader (leader unknown): peer is not leader"
        );
    }
}
