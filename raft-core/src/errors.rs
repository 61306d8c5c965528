//! Errors of the single-group layer (engines, keys, peer storage, snapshots, driver).
//!
//! Broken invariants (a corrupted state record, a raft-rs contract violation) are not returned as
//! errors: they panic with full context, because continuing would risk data loss.

use thiserror::Error;

/// Result alias used throughout `raft-core`.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in `raft-core`.
#[derive(Debug, Error)]
pub enum Error {
    /// RocksDB reported an error (I/O, corruption, options).
    #[error("engine: {0}")]
    Engine(#[from] rocksdb::Error),
    /// A column family name that the engine was not opened with.
    #[error("unknown column family {0:?}")]
    UnknownCf(String),
    /// A stored record could not be decoded.
    #[error("decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// A raft-rs message or entry (rust-protobuf) could not be encoded or decoded.
    #[error("protobuf: {0}")]
    Protobuf(#[from] protobuf::ProtobufError),
    /// A raft-rs error (storage contract, proposal dropped, ...).
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// Filesystem error (opening engines, snapshot files).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A key outside the range of the region a read or write was routed to.
    #[error("key {key:?} is not in region {}", region.id)]
    KeyNotInRegion {
        /// The offending user key.
        key: Vec<u8>,
        /// The region the request was routed to.
        region: Box<proto::metapb::Region>,
    },
    /// A snapshot chunk or payload failed its checksum or framing check.
    #[error("corrupted snapshot: {0}")]
    CorruptedSnapshot(String),
    /// The snapshot file a message or an apply refers to is not (or no longer) on disk.
    #[error("snapshot {0} not found")]
    SnapshotNotFound(String),
    /// A configuration value is out of range.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A wire message (prost `eraftpb`) carries a value raft-rs has no representation for.
    #[error("invalid raft message: {0}")]
    InvalidMessage(String),
    /// A proposal was made to a peer that is not the leader of its group.
    #[error("peer {peer_id} of region {region_id} is not leader (leader: {leader_id:?})")]
    NotLeader {
        /// The region of the group.
        region_id: u64,
        /// The peer that received the proposal.
        peer_id: u64,
        /// The leader this peer knows of, if any.
        leader_id: Option<u64>,
    },
    /// The entry a proposal was appended at was overwritten by another leader's entry (or by a
    /// snapshot): the proposal was not, and will never be, applied.
    #[error("stale command: proposal at index {index} term {term} of region {region_id} was overwritten")]
    StaleCommand {
        /// The region of the group.
        region_id: u64,
        /// Log index the proposal was appended at.
        index: u64,
        /// Term the proposal was appended in.
        term: u64,
    },
    /// A conf change that cannot be proposed (another one is pending, it would leave the region
    /// without a representable membership, ...).
    #[error("invalid conf change for region {region_id}: {reason}")]
    InvalidConfChange {
        /// The region of the group.
        region_id: u64,
        /// Why it was refused.
        reason: String,
    },
    /// A log compaction that would break a log invariant (past the applied index, already
    /// compacted, ...).
    #[error("cannot compact log of region {region_id} to {index}: {reason}")]
    InvalidCompact {
        /// The region of the group.
        region_id: u64,
        /// The requested compact index.
        index: u64,
        /// Which invariant it would break.
        reason: String,
    },
    /// The peer was destroyed (removed from its region) before a pending request was answered.
    #[error("peer {peer_id} of region {region_id} was destroyed")]
    PeerDestroyed {
        /// The region of the group.
        region_id: u64,
        /// The destroyed peer.
        peer_id: u64,
    },
    /// The peer is shutting down; pending requests are dropped with this error.
    #[error("peer {peer_id} of region {region_id} is shutting down")]
    Shutdown {
        /// The region of the group.
        region_id: u64,
        /// The peer that stopped.
        peer_id: u64,
    },
    /// Anything else, with a human-readable reason.
    #[error("{0}")]
    Other(String),
}
