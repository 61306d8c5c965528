//! Errors of the multi-raft store runtime.
//!
//! Region-level failures carry what a client needs to recover (the leader hint, the current
//! regions); `kvserver` maps them to `errorpb::Error` in its single wire-mapping function.

use proto::metapb::{Peer, Region};
use thiserror::Error;

/// Result alias of the store runtime.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything the store runtime can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// This peer is not the leader; `leader` is the one it knows of, if any.
    #[error("region {region_id} is not led by this store (leader: {leader:?})")]
    NotLeader {
        /// The region.
        region_id: u64,
        /// The leader this store knows of.
        leader: Option<Peer>,
    },
    /// This store hosts no peer of the region.
    #[error("region {0} not found")]
    RegionNotFound(u64),
    /// The request was meant for another store.
    #[error("request for store {requested} reached store {actual}")]
    StoreNotMatch {
        /// Store the request named.
        requested: u64,
        /// This store.
        actual: u64,
    },
    /// The request's region epoch is stale; `regions` are the current ones.
    #[error("epoch not match: {message}")]
    EpochNotMatch {
        /// Why.
        message: String,
        /// The regions the client should refresh to.
        regions: Vec<Region>,
    },
    /// A key outside the region's range.
    #[error("key {key:?} is not in region {}", region.id)]
    KeyNotInRegion {
        /// The key.
        key: Vec<u8>,
        /// The region.
        region: Box<Region>,
    },
    /// The proposal's log entry was overwritten by a newer leader, or the term changed.
    #[error("stale command")]
    StaleCommand,
    /// The proposal is larger than one Raft entry may be.
    #[error("raft entry of {entry_size} bytes for region {region_id} is too large")]
    RaftEntryTooLarge {
        /// The region.
        region_id: u64,
        /// Size of the proposal.
        entry_size: u64,
    },
    /// The store is overloaded or the mailbox is full; retry later.
    #[error("server is busy: {0}")]
    ServerIsBusy(String),
    /// A message could not be delivered to another store.
    #[error("transport: {0}")]
    Transport(String),
    /// The scheduler (PD) failed or refused a request.
    #[error("scheduler: {0}")]
    Pd(String),
    /// The request is malformed (mixed read and write requests, unknown command type, unknown
    /// column family, ...). Sending it again will not help.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The command was not answered within the caller's deadline. It may still be applied.
    #[error("timed out: {0}")]
    Timeout(String),
    /// Lower layers (engines, raft-rs, snapshots).
    #[error(transparent)]
    Core(raft_core::Error),
    /// The store is shutting down.
    #[error("store is shutting down")]
    Shutdown,
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// raft-core's request-level failures become the store's region errors, so they reach clients
/// as the `errorpb` variant they can act on; everything else stays a lower-layer error.
impl From<raft_core::Error> for Error {
    fn from(e: raft_core::Error) -> Self {
        match e {
            raft_core::Error::StaleCommand { .. } => Error::StaleCommand,
            raft_core::Error::Shutdown { .. } => Error::Shutdown,
            raft_core::Error::PeerDestroyed { region_id, .. } => Error::RegionNotFound(region_id),
            raft_core::Error::NotLeader { region_id, .. } => Error::NotLeader {
                region_id,
                leader: None,
            },
            raft_core::Error::KeyNotInRegion { key, region } => {
                Error::KeyNotInRegion { key, region }
            }
            other => Error::Core(other),
        }
    }
}
