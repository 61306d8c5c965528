//! Cheap status snapshots for tests and tools, and the store's counters.
//!
//! Each peer publishes its [`RegionStatus`] into its own slot at the end of every round it took
//! part in (a short uncontended lock); [`StatusRegistry::snapshot`] copies every slot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use proto::metapb;

/// One peer's view of its region.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegionStatus {
    /// The region as this peer knows it.
    pub region: metapb::Region,
    /// This store's peer of the region.
    pub peer_id: u64,
    /// Whether this peer leads the region.
    pub is_leader: bool,
    /// The leader this peer knows of.
    pub leader_id: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index durably applied.
    pub applied_index: u64,
    /// Index of the last compacted entry.
    pub truncated_index: u64,
    /// Index of the last entry in the log.
    pub last_index: u64,
}

/// A store's status: every region it hosts, plus its counters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StoreStatus {
    /// The store.
    pub store_id: u64,
    /// Every peer the store hosts, sorted by region id.
    pub regions: Vec<RegionStatus>,
    /// The store's counters at the time of the snapshot.
    pub metrics: MetricsSnapshot,
}

impl StoreStatus {
    /// The status of region `region_id`, if this store hosts a peer of it.
    pub fn region(&self, region_id: u64) -> Option<&RegionStatus> {
        self.regions.iter().find(|r| r.region.id == region_id)
    }
}

/// Counters of one store (monotonic since start).
#[derive(Debug, Default)]
pub struct StoreMetrics {
    /// Raft-engine writes made by pollers (one per round with something to persist).
    pub raft_writes: AtomicU64,
    /// Of those, the synced ones: the fsyncs on the write path.
    pub raft_fsyncs: AtomicU64,
    /// Raft entries proposed (a merged entry counts once).
    pub proposals: AtomicU64,
    /// Client write commands proposed (several may share an entry).
    pub proposed_commands: AtomicU64,
    /// Proposals made in rounds that ended with an fsync (for proposals per fsync).
    pub proposals_synced: AtomicU64,
    /// Read-index requests issued (a batch of reads counts once).
    pub read_indexes: AtomicU64,
    /// Read commands served.
    pub reads: AtomicU64,
    /// Of those, served under the leader lease (no read index).
    pub lease_reads: AtomicU64,
    /// Kv-engine writes made by the apply threads.
    pub apply_writes: AtomicU64,
    /// Raft entries applied.
    pub entries_applied: AtomicU64,
    /// Raft messages handed to the transport.
    pub messages_sent: AtomicU64,
}

/// A copy of [`StoreMetrics`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    /// See [`StoreMetrics::raft_writes`].
    pub raft_writes: u64,
    /// See [`StoreMetrics::raft_fsyncs`].
    pub raft_fsyncs: u64,
    /// See [`StoreMetrics::proposals`].
    pub proposals: u64,
    /// See [`StoreMetrics::proposed_commands`].
    pub proposed_commands: u64,
    /// See [`StoreMetrics::proposals_synced`].
    pub proposals_synced: u64,
    /// See [`StoreMetrics::read_indexes`].
    pub read_indexes: u64,
    /// See [`StoreMetrics::reads`].
    pub reads: u64,
    /// See [`StoreMetrics::lease_reads`].
    pub lease_reads: u64,
    /// See [`StoreMetrics::apply_writes`].
    pub apply_writes: u64,
    /// See [`StoreMetrics::entries_applied`].
    pub entries_applied: u64,
    /// See [`StoreMetrics::messages_sent`].
    pub messages_sent: u64,
}

impl MetricsSnapshot {
    /// The counts accumulated between `earlier` and `self`.
    pub fn since(&self, earlier: &MetricsSnapshot) -> MetricsSnapshot {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        MetricsSnapshot {
            raft_writes: d(self.raft_writes, earlier.raft_writes),
            raft_fsyncs: d(self.raft_fsyncs, earlier.raft_fsyncs),
            proposals: d(self.proposals, earlier.proposals),
            proposed_commands: d(self.proposed_commands, earlier.proposed_commands),
            proposals_synced: d(self.proposals_synced, earlier.proposals_synced),
            read_indexes: d(self.read_indexes, earlier.read_indexes),
            reads: d(self.reads, earlier.reads),
            lease_reads: d(self.lease_reads, earlier.lease_reads),
            apply_writes: d(self.apply_writes, earlier.apply_writes),
            entries_applied: d(self.entries_applied, earlier.entries_applied),
            messages_sent: d(self.messages_sent, earlier.messages_sent),
        }
    }

    /// Proposals carried by an average fsync (0 if there was none).
    pub fn proposals_per_fsync(&self) -> f64 {
        if self.raft_fsyncs == 0 {
            0.0
        } else {
            self.proposals_synced as f64 / self.raft_fsyncs as f64
        }
    }
}

impl StoreMetrics {
    /// Copies the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            raft_writes: l(&self.raft_writes),
            raft_fsyncs: l(&self.raft_fsyncs),
            proposals: l(&self.proposals),
            proposed_commands: l(&self.proposed_commands),
            proposals_synced: l(&self.proposals_synced),
            read_indexes: l(&self.read_indexes),
            reads: l(&self.reads),
            lease_reads: l(&self.lease_reads),
            apply_writes: l(&self.apply_writes),
            entries_applied: l(&self.entries_applied),
            messages_sent: l(&self.messages_sent),
        }
    }
}

/// One peer's published status.
pub type StatusSlot = Arc<Mutex<RegionStatus>>;

/// Where peers publish their status; shared by the store's threads.
#[derive(Clone, Default)]
pub struct StatusRegistry {
    slots: Arc<RwLock<HashMap<u64, StatusSlot>>>,
    metrics: Arc<StoreMetrics>,
}

impl StatusRegistry {
    /// The slot of region `region_id` (created empty if absent).
    pub fn slot(&self, region_id: u64) -> StatusSlot {
        if let Some(s) = self.slots.read().get(&region_id) {
            return s.clone();
        }
        self.slots.write().entry(region_id).or_default().clone()
    }

    /// Forgets region `region_id` (its peer was destroyed).
    pub fn remove(&self, region_id: u64, slot: &StatusSlot) {
        let mut slots = self.slots.write();
        if slots.get(&region_id).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(&region_id);
        }
    }

    /// The store's counters.
    pub fn metrics(&self) -> &Arc<StoreMetrics> {
        &self.metrics
    }

    /// A copy of every published status.
    pub fn snapshot(&self, store_id: u64) -> StoreStatus {
        let mut regions: Vec<RegionStatus> = self
            .slots
            .read()
            .values()
            .map(|s| s.lock().clone())
            .filter(|s| s.peer_id != 0)
            .collect();
        regions.sort_by_key(|r| r.region.id);
        StoreStatus {
            store_id,
            regions,
            metrics: self.metrics.snapshot(),
        }
    }
}
