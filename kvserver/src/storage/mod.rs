//! The storage seam between the gRPC services and where data lives.
//!
//! Services (raw API, transactions) only ever do two things with storage: apply a batch of
//! [`Modify`]s atomically, and take a consistent [`RegionSnapshot`] to read from. Two
//! implementations exist:
//! - [`StandaloneStorage`]: one node, writes go straight to the local kv engine.
//! - `RaftStorage` (see `storage/raft.rs`): writes are proposed through the region's Raft group and
//!   acknowledged once applied; reads are linearizable (read index) and come from the leader.
//!
//! Keys in [`Modify`] and in snapshots are user keys; the engine's data prefix is added below.

mod raft;
mod standalone;

use std::future::Future;

use proto::kvrpcpb::Context;
pub use raft::{header_from_context, RaftStorage, DEFAULT_COMMAND_TIMEOUT};
pub use raft_core::engine::{RegionIterator, RegionSnapshot};
pub use standalone::StandaloneStorage;

use crate::errors::Result;

/// One mutation of an atomic write batch. `cf` is always one of the kv engine's column families
/// (validated at the service boundary, see [`crate::errors::validate_cf`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modify {
    /// Sets `key` to `value`.
    Put {
        /// Column family.
        cf: &'static str,
        /// User key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Removes `key`.
    Delete {
        /// Column family.
        cf: &'static str,
        /// User key.
        key: Vec<u8>,
    },
    /// Removes every key in `[start_key, end_key)`; an empty `end_key` means +infinity.
    DeleteRange {
        /// Column family.
        cf: &'static str,
        /// Inclusive start (user key).
        start_key: Vec<u8>,
        /// Exclusive end (user key); empty = +infinity.
        end_key: Vec<u8>,
    },
}

impl Modify {
    /// Column family the mutation applies to.
    pub fn cf(&self) -> &'static str {
        match self {
            Modify::Put { cf, .. } | Modify::Delete { cf, .. } | Modify::DeleteRange { cf, .. } => {
                cf
            }
        }
    }

    /// The single key written, if this is not a range deletion.
    pub fn key(&self) -> Option<&[u8]> {
        match self {
            Modify::Put { key, .. } | Modify::Delete { key, .. } => Some(key),
            Modify::DeleteRange { .. } => None,
        }
    }

    /// Approximate bytes this mutation adds to a Raft entry.
    pub fn size(&self) -> usize {
        match self {
            Modify::Put { key, value, .. } => key.len() + value.len() + 8,
            Modify::Delete { key, .. } => key.len() + 8,
            Modify::DeleteRange {
                start_key, end_key, ..
            } => start_key.len() + end_key.len() + 8,
        }
    }
}

/// Where the services read and write.
///
/// `ctx` routes the request (region id, epoch, peer) for storages that have regions; a storage
/// with a single node ignores it. Region problems (not leader, epoch mismatch, key outside the
/// region, ...) come back as [`crate::errors::Error::Region`] so they reach the client's
/// `region_error`.
pub trait Storage: Clone + Send + Sync + 'static {
    /// Applies `batch` atomically: after `Ok(())` every mutation is durable and visible to every
    /// later snapshot; after an error none of them is.
    fn write(&self, ctx: &Context, batch: Vec<Modify>) -> impl Future<Output = Result<()>> + Send;

    /// Takes a consistent snapshot that reflects every write acknowledged before the call.
    fn snapshot(&self, ctx: &Context) -> impl Future<Output = Result<RegionSnapshot>> + Send;

    /// Splits the region `ctx` names at `split_keys` (keys as stored, sorted and distinct) and
    /// returns every resulting region in key order. Only storages with regions can split; the
    /// default refuses.
    fn split_region(
        &self,
        ctx: &Context,
        split_keys: Vec<Vec<u8>>,
    ) -> impl Future<Output = Result<Vec<proto::metapb::Region>>> + Send {
        let _ = (ctx, split_keys);
        async {
            Err(crate::errors::Error::InvalidArgument(
                "this server has a single region and cannot split it (cluster mode only)".into(),
            ))
        }
    }
}
