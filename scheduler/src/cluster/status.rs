//! The status view: serializable snapshots of stores, regions and operators, served as JSON by
//! the HTTP status routes and polled by tests.

use std::time::Instant;

use proto::metapb::Peer;
use serde::Serialize;

use super::operators::Outcome;
use super::Cluster;
use crate::core::{RegionInfo, StoreInfo, StoreRegionStats};
use crate::schedule::{OpKind, OpStep, Operator};

/// Cluster summary.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    /// The cluster id.
    pub cluster_id: u64,
    /// Whether `Bootstrap` happened.
    pub bootstrapped: bool,
    /// Replicas per region wanted.
    pub max_replicas: usize,
    /// Stores, by id.
    pub stores: Vec<StoreStatus>,
    /// Number of cached regions.
    pub region_count: usize,
    /// Running operators.
    pub operators: Vec<OperatorStatus>,
    /// Last TSO answer (physical ms).
    pub tso_physical: i64,
    /// GC safe point.
    pub gc_safe_point: u64,
}

/// One store.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    /// Store id.
    pub id: u64,
    /// Client-facing address.
    pub address: String,
    /// `Up`, `Offline` or `Tombstone`.
    pub state: String,
    /// No heartbeat for longer than `max-store-down-time`.
    pub down: bool,
    /// Seconds since the last heartbeat (or since the scheduler started, if none yet).
    pub seconds_since_heartbeat: f64,
    /// Whether a heartbeat arrived since the scheduler started.
    pub heartbeat_seen: bool,
    /// Totals over the cached regions.
    #[serde(flatten)]
    pub regions: StoreRegionStats,
    /// Capacity reported by the store, bytes.
    pub capacity: u64,
    /// Available space reported by the store, bytes.
    pub available: u64,
}

/// One peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// Peer id.
    pub id: u64,
    /// Store id.
    pub store_id: u64,
}

impl From<&Peer> for PeerStatus {
    fn from(p: &Peer) -> Self {
        PeerStatus {
            id: p.id,
            store_id: p.store_id,
        }
    }
}

/// One region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionStatus {
    /// Region id.
    pub id: u64,
    /// Start key, hex.
    pub start_key: String,
    /// End key, hex (empty = +infinity).
    pub end_key: String,
    /// Epoch conf_ver.
    pub conf_ver: u64,
    /// Epoch version.
    pub version: u64,
    /// Peers.
    pub peers: Vec<PeerStatus>,
    /// Leader, if known.
    pub leader: Option<PeerStatus>,
    /// Pending peers.
    pub pending_peers: Vec<PeerStatus>,
    /// Approximate size, bytes.
    pub approximate_size: u64,
}

/// One running or finished operator.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorStatus {
    /// The region.
    pub region_id: u64,
    /// Who made it and why.
    pub desc: &'static str,
    /// Kind.
    pub kind: OpKind,
    /// Steps in order.
    pub steps: Vec<OpStep>,
    /// Index of the step in progress.
    pub current_step: usize,
    /// Milliseconds since it was admitted.
    pub age_ms: u64,
    /// How it ended (`None` while running).
    pub outcome: Option<Outcome>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl StoreStatus {
    fn new(s: &StoreInfo, stats: StoreRegionStats, now: Instant, down_after: f64) -> Self {
        let since = s.since_heartbeat(now).as_secs_f64();
        StoreStatus {
            id: s.id(),
            address: s.meta.address.clone(),
            state: s.state().as_str_name().to_string(),
            down: since > down_after,
            seconds_since_heartbeat: since,
            heartbeat_seen: s.heartbeat_seen,
            regions: stats,
            capacity: s.stats.capacity,
            available: s.stats.available,
        }
    }
}

impl From<&RegionInfo> for RegionStatus {
    fn from(r: &RegionInfo) -> Self {
        RegionStatus {
            id: r.id(),
            start_key: hex(r.start_key()),
            end_key: hex(r.end_key()),
            conf_ver: r.conf_ver(),
            version: r.version(),
            peers: r.peers().iter().map(PeerStatus::from).collect(),
            leader: r.leader.as_ref().map(PeerStatus::from),
            pending_peers: r.pending_peers.iter().map(PeerStatus::from).collect(),
            approximate_size: r.approximate_size,
        }
    }
}

impl OperatorStatus {
    fn new(op: &Operator, now: Instant, outcome: Option<Outcome>) -> Self {
        OperatorStatus {
            region_id: op.region_id,
            desc: op.desc,
            kind: op.kind,
            steps: op.steps.clone(),
            current_step: op.current,
            age_ms: now.saturating_duration_since(op.created_at).as_millis() as u64,
            outcome,
        }
    }
}

impl Cluster {
    /// Summary of the cluster.
    pub fn status(&self) -> ClusterStatus {
        let (bootstrapped, stores, region_count) = {
            let st = self.state.read();
            (
                st.bootstrapped.is_some(),
                self.store_statuses_locked(&st),
                st.regions.len(),
            )
        };
        ClusterStatus {
            cluster_id: self.cluster_id,
            bootstrapped,
            max_replicas: self.schedule.max_replicas,
            stores,
            region_count,
            operators: self.operator_statuses(false),
            tso_physical: self.tso.state().physical,
            gc_safe_point: self.gc_safe_point(),
        }
    }

    fn store_statuses_locked(&self, st: &super::ClusterState) -> Vec<StoreStatus> {
        let now = Instant::now();
        let down_after = self.schedule.max_store_down_time.as_secs_f64();
        st.stores
            .values()
            .map(|s| StoreStatus::new(s, st.regions.store_stats(s.id()), now, down_after))
            .collect()
    }

    /// All stores.
    pub fn store_statuses(&self) -> Vec<StoreStatus> {
        self.store_statuses_locked(&self.state.read())
    }

    /// All regions in key order.
    pub fn region_statuses(&self) -> Vec<RegionStatus> {
        self.state
            .read()
            .regions
            .iter()
            .map(|r| RegionStatus::from(&**r))
            .collect()
    }

    /// One region.
    pub fn region_status(&self, id: u64) -> Option<RegionStatus> {
        self.state
            .read()
            .regions
            .get(id)
            .map(|r| RegionStatus::from(&**r))
    }

    /// Running operators, and finished ones too if `with_history`.
    pub fn operator_statuses(&self, with_history: bool) -> Vec<OperatorStatus> {
        let now = Instant::now();
        self.with_operators(|ops| {
            let mut out: Vec<OperatorStatus> = Vec::new();
            if with_history {
                out.extend(
                    ops.history()
                        .map(|f| OperatorStatus::new(&f.op, now, Some(f.outcome.clone()))),
                );
            }
            let mut running: Vec<OperatorStatus> = ops
                .running()
                .map(|o| OperatorStatus::new(o, now, None))
                .collect();
            running.sort_by_key(|o| o.region_id);
            out.extend(running);
            out
        })
    }
}
