//! `ClusterView`: an immutable snapshot of stores and regions that scheduling decisions read.
//!
//! The runtime builds one per scheduling round (see `cluster::Cluster::view`) and folds in the
//! expected effect of operators already running ([`ClusterView::apply_influence`]), so that a
//! round does not pile more moves onto a store that is already receiving some. Tests build views
//! by hand.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use proto::metapb::StoreState;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::operator::{OpStep, Operator};
use crate::core::RegionInfo;

/// One store as scheduling sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreView {
    /// Store id.
    pub id: u64,
    /// Registration state.
    pub state: StoreState,
    /// Time since the store's last heartbeat.
    pub since_heartbeat: Duration,
    /// The store reported itself busy.
    pub is_busy: bool,
    /// Regions with a peer here.
    pub region_count: u64,
    /// Regions led from here.
    pub leader_count: u64,
    /// MiB of the regions with a peer here.
    pub region_size: u64,
    /// MiB of the regions led from here.
    pub leader_size: u64,
    /// Pending peers here.
    pub pending_peer_count: u64,
}

impl StoreView {
    /// An up, idle, empty store that just heartbeated.
    pub fn up(id: u64) -> StoreView {
        StoreView {
            id,
            state: StoreState::Up,
            since_heartbeat: Duration::ZERO,
            is_busy: false,
            region_count: 0,
            leader_count: 0,
            region_size: 0,
            leader_size: 0,
            pending_peer_count: 0,
        }
    }

    /// Sets region count and size.
    pub fn with_regions(mut self, count: u64, size: u64) -> StoreView {
        self.region_count = count;
        self.region_size = size;
        self
    }

    /// Sets leader count and size.
    pub fn with_leaders(mut self, count: u64, size: u64) -> StoreView {
        self.leader_count = count;
        self.leader_size = size;
        self
    }
}

/// A snapshot of the cluster for scheduling.
#[derive(Debug, Clone)]
pub struct ClusterView {
    /// Registered stores by id (tombstones included, so their peers can be recognised).
    pub stores: BTreeMap<u64, StoreView>,
    /// Regions by id.
    pub regions: BTreeMap<u64, Arc<RegionInfo>>,
    /// Regions that already have an operator; nobody schedules them again.
    pub busy_regions: HashSet<u64>,
    /// Replicas every region should have.
    pub max_replicas: usize,
    /// A store silent for longer is down.
    pub max_store_down_time: Duration,
    /// Seed for the random choices (which region to move first), so decisions are reproducible.
    pub seed: u64,
}

impl ClusterView {
    /// An empty view.
    pub fn new(max_replicas: usize, max_store_down_time: Duration) -> ClusterView {
        ClusterView {
            stores: BTreeMap::new(),
            regions: BTreeMap::new(),
            busy_regions: HashSet::new(),
            max_replicas,
            max_store_down_time,
            seed: 0,
        }
    }

    /// Adds or replaces a store.
    pub fn put_store(&mut self, store: StoreView) {
        self.stores.insert(store.id, store);
    }

    /// Adds or replaces a region.
    pub fn put_region(&mut self, region: RegionInfo) {
        self.regions.insert(region.id(), Arc::new(region));
    }

    /// The store with this id.
    pub fn store(&self, id: u64) -> Option<&StoreView> {
        self.stores.get(&id)
    }

    /// Whether the store missed heartbeats for longer than `max_store_down_time`.
    pub fn is_down(&self, store: &StoreView) -> bool {
        store.since_heartbeat > self.max_store_down_time
    }

    /// Up and not down: may give away regions and leaders.
    pub fn is_serving(&self, store: &StoreView) -> bool {
        store.state == StoreState::Up && !self.is_down(store)
    }

    /// May receive a new peer or a leader.
    pub fn can_receive(&self, store: &StoreView) -> bool {
        self.is_serving(store) && !store.is_busy
    }

    /// Whether a region may be scheduled now: it has a leader (commands go to it) and no
    /// operator.
    pub fn is_schedulable(&self, region: &RegionInfo) -> bool {
        region.leader.is_some() && !self.busy_regions.contains(&region.id())
    }

    /// Whether the region's peer on `store_id` must be replaced: its store is tombstone or down,
    /// or the leader has reported the peer down for longer than `max_store_down_time`. Peers on
    /// unregistered stores are left alone: nothing is known about them.
    pub fn is_peer_unhealthy(&self, region: &RegionInfo, store_id: u64) -> bool {
        match self.store(store_id) {
            Some(s) => {
                s.state == StoreState::Tombstone
                    || self.is_down(s)
                    || region.is_down_on(store_id, self.max_store_down_time.as_secs().max(1))
            }
            None => false,
        }
    }

    /// The best store for a new peer of `region`: can receive, holds no peer of the region, and
    /// has the least region size (ties: fewer regions, then lower id).
    pub fn best_target_for(&self, region: &RegionInfo) -> Option<&StoreView> {
        self.stores
            .values()
            .filter(|s| self.can_receive(s) && region.store_peer(s.id).is_none())
            .min_by_key(|s| (s.region_size, s.region_count, s.id))
    }

    /// A random number generator derived from the seed and a per-caller salt.
    pub fn rng(&self, salt: u64) -> StdRng {
        StdRng::seed_from_u64(self.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Regions satisfying `pred`, schedulable, in a seeded random order.
    pub fn shuffled_regions<F>(&self, salt: u64, mut pred: F) -> Vec<Arc<RegionInfo>>
    where
        F: FnMut(&RegionInfo) -> bool,
    {
        let mut v: Vec<Arc<RegionInfo>> = self
            .regions
            .values()
            .filter(|r| self.is_schedulable(r) && pred(r))
            .cloned()
            .collect();
        v.shuffle(&mut self.rng(salt));
        v
    }

    /// Folds the expected effect of `op`'s remaining steps into the store statistics and marks
    /// its region busy.
    pub fn apply_influence(&mut self, op: &Operator) {
        self.busy_regions.insert(op.region_id);
        let size = op.region_size;
        for step in op.remaining_steps() {
            match *step {
                OpStep::AddPeer { to_store, .. } => {
                    if let Some(s) = self.stores.get_mut(&to_store) {
                        s.region_count += 1;
                        s.region_size += size;
                    }
                }
                OpStep::RemovePeer { from_store } => {
                    if let Some(s) = self.stores.get_mut(&from_store) {
                        s.region_count = s.region_count.saturating_sub(1);
                        s.region_size = s.region_size.saturating_sub(size);
                    }
                }
                OpStep::TransferLeader {
                    from_store,
                    to_store,
                } => {
                    if let Some(s) = self.stores.get_mut(&from_store) {
                        s.leader_count = s.leader_count.saturating_sub(1);
                        s.leader_size = s.leader_size.saturating_sub(size);
                    }
                    if let Some(s) = self.stores.get_mut(&to_store) {
                        s.leader_count += 1;
                        s.leader_size += size;
                    }
                }
            }
        }
    }
}
