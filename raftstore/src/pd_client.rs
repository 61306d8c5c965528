//! What a store needs from the scheduler (PD).
//!
//! The store runtime only talks to the scheduler through [`PdClient`]. Two implementations:
//! the gRPC client for `pdpb.PD` ([`crate::pd::GrpcPdClient`]), and the in-memory mock scheduler of the test
//! harness, which — like TinyKV's — learns regions and leaders **only** from region heartbeats.
//!
//! Calls block the calling thread (they are made from worker threads and at start-up, never from
//! a poller thread's hot path or from inside a tokio runtime).

use proto::metapb::{Region, Store};
use proto::pdpb::{RegionHeartbeatRequest, RegionHeartbeatResponse, SplitId, StoreStats};

use crate::errors::Result;

/// Receives the scheduler's answers on the region heartbeat stream (operator steps:
/// change peer, transfer leader, ...) for regions led by this store.
pub type HeartbeatResponseHandler = Box<dyn Fn(RegionHeartbeatResponse) + Send + Sync>;

/// The scheduler as a store sees it.
pub trait PdClient: Send + Sync + 'static {
    /// The cluster id (every request carries it in its header).
    fn cluster_id(&self) -> u64;

    /// Whether the cluster was bootstrapped (has its first store and region).
    fn is_cluster_bootstrapped(&self) -> Result<bool>;

    /// Bootstraps the cluster with its first store and first region. Fails if another store
    /// bootstrapped it first (the caller then joins instead).
    fn bootstrap_cluster(&self, store: Store, region: Region) -> Result<()>;

    /// Allocates a cluster-unique id (store, region and peer ids all come from here).
    fn alloc_id(&self) -> Result<u64>;

    /// Registers or updates this store (address, labels, state).
    fn put_store(&self, store: Store) -> Result<()>;

    /// Looks up a store (e.g. to resolve its address).
    fn get_store(&self, store_id: u64) -> Result<Store>;

    /// The region containing `key`, as the scheduler knows it.
    fn get_region(&self, key: &[u8]) -> Result<Region>;

    /// The region with id `region_id`, with its leader, if the scheduler knows it.
    fn get_region_by_id(
        &self,
        region_id: u64,
    ) -> Result<Option<(Region, Option<proto::metapb::Peer>)>>;

    /// Sends one region heartbeat (leader, peers, pending/down peers, approximate size/keys).
    /// Responses arrive asynchronously through the handler set with
    /// [`PdClient::set_heartbeat_response_handler`].
    fn region_heartbeat(&self, req: RegionHeartbeatRequest) -> Result<()>;

    /// Installs the handler for heartbeat responses (operators) addressed to this store.
    fn set_heartbeat_response_handler(&self, handler: HeartbeatResponseHandler);

    /// Reports store-level statistics (capacity, region count, snapshots in flight, ...).
    fn store_heartbeat(&self, stats: StoreStats) -> Result<()>;

    /// Asks for the ids of `count` new regions (and their peers) to split `region` into.
    fn ask_batch_split(&self, region: Region, count: usize) -> Result<Vec<SplitId>>;

    /// Reports the regions a split produced.
    fn report_batch_split(&self, regions: Vec<Region>) -> Result<()>;
}
