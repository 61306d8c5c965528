//! What the scheduler knows about one store: its registration and its latest heartbeat.

use std::time::{Duration, Instant};

use proto::metapb::{self, StoreState};
use proto::pdpb::StoreStats;

/// A registered store.
#[derive(Debug, Clone)]
pub struct StoreInfo {
    /// Registration (`PutStore`): id, address, state, labels, version.
    pub meta: metapb::Store,
    /// Latest `StoreHeartbeat` statistics (default until the first one).
    pub stats: StoreStats,
    /// When the store last heartbeated; when it was loaded or registered until then, so a
    /// freshly restarted scheduler does not declare every store down at once.
    pub last_heartbeat: Instant,
    /// Whether a heartbeat arrived since this scheduler started.
    pub heartbeat_seen: bool,
}

impl StoreInfo {
    /// A store registered or loaded at `now`.
    pub fn new(meta: metapb::Store, now: Instant) -> StoreInfo {
        StoreInfo {
            meta,
            stats: StoreStats::default(),
            last_heartbeat: now,
            heartbeat_seen: false,
        }
    }

    /// Store id.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// Registration state (Up, Offline, Tombstone).
    pub fn state(&self) -> StoreState {
        StoreState::try_from(self.meta.state).unwrap_or(StoreState::Up)
    }

    /// Whether the store was removed for good.
    pub fn is_tombstone(&self) -> bool {
        self.state() == StoreState::Tombstone
    }

    /// Time since the last heartbeat.
    pub fn since_heartbeat(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_heartbeat)
    }

    /// Records a heartbeat received at `now` (`wall_ns`: Unix nanoseconds, reported to clients).
    pub fn on_heartbeat(&mut self, stats: StoreStats, now: Instant, wall_ns: i64) {
        self.stats = stats;
        self.last_heartbeat = now;
        self.heartbeat_seen = true;
        self.meta.last_heartbeat = wall_ns;
    }
}
