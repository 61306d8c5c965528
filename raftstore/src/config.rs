//! Configuration of the store runtime: thread pools, batching, ticks, log GC and region sizes.
//!
//! Intervals are durations in TOML (`"10s"`, `"50ms"`). Every interval is rounded to a whole
//! number of base ticks (`raft.base-tick-interval-ms`), because one timer drives all ticks.

use std::time::Duration;

use raft_core::config::{EngineConfig, RaftConfig};
use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// Tunables of one store's raft runtime.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RaftstoreConfig {
    /// Raft-rs settings shared by every group of the store (base tick, election and heartbeat
    /// ticks, flow control, entry cache).
    pub raft: RaftConfig,
    /// RocksDB settings for callers that open this store's engines from this config (the test
    /// harness). Not read from or written to TOML: the server binary has its own `[rocksdb]`
    /// section.
    #[serde(skip)]
    pub engine: EngineConfig,

    /// Poller threads running peer FSMs (message handling and the group-committed Ready round).
    pub store_pool_size: usize,
    /// Apply threads (committed entries → kv engine, one batch per round).
    pub apply_pool_size: usize,
    /// FSMs one poller handles in one round (one fsync covers all of them).
    pub max_batch_size: usize,
    /// Messages one FSM handles per round before others get a turn.
    pub messages_per_tick: usize,
    /// Messages a peer's mailbox holds before droppable messages (raft messages, ticks) are
    /// dropped and new commands are refused with `ServerIsBusy`.
    pub notify_capacity: usize,
    /// Bytes of kv writes an apply round buffers before writing them out mid-round.
    pub apply_batch_bytes: u64,

    /// Largest encoded command a client may propose, in bytes (`RaftEntryTooLarge` above it).
    pub raft_entry_max_size: u64,
    /// Bytes of write commands merged into one Raft entry in one round (never above
    /// `raft_entry_max_size`).
    pub max_merged_entry_size: u64,

    /// How often the leader considers compacting its log.
    #[serde(with = "humantime_serde")]
    pub raft_log_gc_tick_interval: Duration,
    /// Compact when `applied - truncated` exceeds this many entries, even if a follower lags
    /// (it will get a snapshot).
    pub raft_log_gc_count_limit: u64,
    /// Compact when the entries since the last compaction exceed this many bytes.
    pub raft_log_gc_size_limit: u64,
    /// Below the limits, compact up to the slowest follower only once it is this many entries
    /// past the truncated index (avoids a compaction per tick).
    pub raft_log_gc_threshold: u64,

    /// How often a leader sends its region's heartbeat to the scheduler.
    #[serde(with = "humantime_serde")]
    pub pd_heartbeat_tick_interval: Duration,
    /// How often the store sends its own heartbeat (statistics) to the scheduler.
    #[serde(with = "humantime_serde")]
    pub pd_store_heartbeat_tick_interval: Duration,
    /// How often a leader checks whether its region should split.
    #[serde(with = "humantime_serde")]
    pub split_region_check_tick_interval: Duration,
    /// How often stale snapshot files are deleted.
    #[serde(with = "humantime_serde")]
    pub snap_gc_interval: Duration,

    /// A region larger than this many bytes is split.
    pub region_max_size: u64,
    /// Target size in bytes of each part when a region is split (a large region may be split
    /// at several keys at once).
    pub region_split_size: u64,
    /// Bytes written to a region since its last size check before the next check runs (a
    /// region nobody writes to keeps its size). 0 checks on every split-check tick.
    pub region_split_check_diff: u64,
    /// Most split keys one check proposes (the region splits into at most this many + 1).
    pub batch_split_limit: usize,
    /// Below this approximate size (RocksDB's range estimate) a size check scans the region to
    /// measure it exactly; above it the estimate is trusted.
    pub split_check_scan_limit: u64,

    /// A leader refuses to hand leadership to a peer whose log lags its own by more than this
    /// many entries (it would stall the group while catching up).
    pub leader_transfer_max_log_lag: u64,
    /// A peer that has heard nothing from a leader for this long asks the scheduler whether it
    /// is still a member of its region, and destroys itself if it was removed. Never less than
    /// two election timeouts (a healthy group elects a leader within that).
    #[serde(with = "humantime_serde")]
    pub max_leader_missing_duration: Duration,
    /// How long a quorum's acknowledgement lets the leader serve reads from its own state,
    /// without a read-index heartbeat round (see `operation/lease.rs` for the clock
    /// assumption). Must stay below `(election-tick - 1) × base-tick`; unset means
    /// `(election-tick - 2) × base-tick`; `"0s"` turns lease reads off.
    #[serde(with = "humantime_serde::option")]
    pub max_leader_lease: Option<Duration>,
}

impl Default for RaftstoreConfig {
    fn default() -> Self {
        RaftstoreConfig {
            raft: RaftConfig {
                base_tick_interval_ms: 1000,
                ..RaftConfig::default()
            },
            engine: EngineConfig::default(),
            store_pool_size: 2,
            apply_pool_size: 2,
            max_batch_size: 256,
            messages_per_tick: 4096,
            notify_capacity: 40960,
            apply_batch_bytes: 4 << 20,
            raft_entry_max_size: 8 << 20,
            max_merged_entry_size: 1 << 20,
            raft_log_gc_tick_interval: Duration::from_secs(10),
            raft_log_gc_count_limit: 72_000,
            raft_log_gc_size_limit: 72 << 20,
            raft_log_gc_threshold: 50,
            pd_heartbeat_tick_interval: Duration::from_secs(10),
            pd_store_heartbeat_tick_interval: Duration::from_secs(10),
            split_region_check_tick_interval: Duration::from_secs(10),
            snap_gc_interval: Duration::from_secs(60),
            region_max_size: 144 << 20,
            region_split_size: 96 << 20,
            region_split_check_diff: 6 << 20,
            batch_split_limit: 10,
            split_check_scan_limit: 16 << 20,
            leader_transfer_max_log_lag: 128,
            max_leader_missing_duration: Duration::from_secs(60),
            max_leader_lease: None,
        }
    }
}

impl RaftstoreConfig {
    /// The settings the cluster suites run with (TinyKV's `NewTestConfig`): 50 ms ticks,
    /// elections after 10 ticks, frequent heartbeats and GC checks, big regions, small caches.
    pub fn new_test_config() -> Self {
        RaftstoreConfig {
            raft: RaftConfig {
                base_tick_interval_ms: 50,
                heartbeat_tick: 2,
                election_tick: 10,
                ..RaftConfig::new_test_config()
            },
            engine: EngineConfig::new_test_config(),
            store_pool_size: 1,
            apply_pool_size: 1,
            notify_capacity: 4096,
            apply_batch_bytes: 1 << 20,
            raft_entry_max_size: 8 << 20,
            raft_log_gc_tick_interval: Duration::from_millis(50),
            raft_log_gc_count_limit: 128_000,
            pd_heartbeat_tick_interval: Duration::from_millis(100),
            pd_store_heartbeat_tick_interval: Duration::from_millis(500),
            split_region_check_tick_interval: Duration::from_millis(100),
            snap_gc_interval: Duration::from_secs(5),
            region_max_size: 144 << 20,
            region_split_size: 96 << 20,
            region_split_check_diff: 0,
            max_leader_missing_duration: Duration::from_secs(3),
            ..RaftstoreConfig::default()
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: &str| Err(Error::Other(format!("invalid raftstore config: {msg}")));
        self.raft.validate()?;
        self.engine.validate()?;
        if self.store_pool_size == 0 || self.apply_pool_size == 0 {
            return invalid("store-pool-size and apply-pool-size must be at least 1");
        }
        if self.max_batch_size == 0 || self.messages_per_tick == 0 {
            return invalid("max-batch-size and messages-per-tick must be at least 1");
        }
        if self.notify_capacity < 16 {
            return invalid("notify-capacity must be at least 16");
        }
        if self.raft_entry_max_size < 1024 {
            return invalid("raft-entry-max-size must be at least 1 KiB");
        }
        if self.max_merged_entry_size == 0 {
            return invalid("max-merged-entry-size must be at least 1");
        }
        if self.raft_log_gc_count_limit == 0 {
            return invalid("raft-log-gc-count-limit must be at least 1");
        }
        let base = self.base_tick();
        for (name, d) in [
            ("raft-log-gc-tick-interval", self.raft_log_gc_tick_interval),
            (
                "pd-heartbeat-tick-interval",
                self.pd_heartbeat_tick_interval,
            ),
            (
                "pd-store-heartbeat-tick-interval",
                self.pd_store_heartbeat_tick_interval,
            ),
            (
                "split-region-check-tick-interval",
                self.split_region_check_tick_interval,
            ),
            ("snap-gc-interval", self.snap_gc_interval),
            (
                "max-leader-missing-duration",
                self.max_leader_missing_duration,
            ),
        ] {
            if d < base {
                return invalid(&format!(
                    "{name} ({d:?}) is shorter than the base tick ({base:?})"
                ));
            }
        }
        if self.region_split_size == 0 || self.region_split_size > self.region_max_size {
            return invalid("region-split-size must be in 1..=region-max-size");
        }
        if self.batch_split_limit == 0 {
            return invalid("batch-split-limit must be at least 1");
        }
        if let Some(lease) = self.max_leader_lease {
            let bound = self.leader_lease_bound();
            if lease >= bound {
                return invalid(&format!(
                    "max-leader-lease ({lease:?}) must be below (election-tick - 1) x base-tick ({bound:?})"
                ));
            }
        }
        Ok(())
    }

    /// No voter that acknowledged the leader can vote for another candidate sooner than this
    /// after the acknowledged message was sent (raft-rs's in-lease rule, counted in ticks).
    fn leader_lease_bound(&self) -> Duration {
        self.base_tick() * (self.raft.election_tick.saturating_sub(1) as u32)
    }

    /// The leader lease in effect ([`RaftstoreConfig::max_leader_lease`], or its default).
    pub fn leader_lease(&self) -> Duration {
        self.max_leader_lease.unwrap_or_else(|| {
            self.base_tick() * (self.raft.election_tick.saturating_sub(2) as u32)
        })
    }

    /// The interval of the one timer that drives every tick.
    pub fn base_tick(&self) -> Duration {
        Duration::from_millis(self.raft.base_tick_interval_ms)
    }

    /// `interval` as a whole number of base ticks (at least 1).
    pub fn ticks_of(&self, interval: Duration) -> u64 {
        let base = self.base_tick().as_millis().max(1);
        ((interval.as_millis() + base / 2) / base).max(1) as u64
    }

    /// [`RaftstoreConfig::max_leader_missing_duration`] in base ticks, at least two election
    /// timeouts.
    pub fn leader_missing_ticks(&self) -> u64 {
        self.ticks_of(self.max_leader_missing_duration)
            .max(2 * self.raft.election_tick as u64)
    }

    /// The largest command batch one Raft entry may carry.
    pub(crate) fn merged_entry_limit(&self) -> u64 {
        self.max_merged_entry_size.min(self.raft_entry_max_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_config_validate() {
        RaftstoreConfig::default().validate().unwrap();
        let cfg = RaftstoreConfig::new_test_config();
        cfg.validate().unwrap();
        assert_eq!(cfg.base_tick(), Duration::from_millis(50));
        assert_eq!(cfg.raft.election_tick, 10);
        assert_eq!(cfg.ticks_of(cfg.pd_heartbeat_tick_interval), 2);
        assert_eq!(cfg.ticks_of(cfg.pd_store_heartbeat_tick_interval), 10);
        assert_eq!(cfg.ticks_of(Duration::from_millis(1)), 1);
        assert_eq!(cfg.leader_lease(), Duration::from_millis(400));
        assert_eq!(
            RaftstoreConfig::default().leader_lease(),
            Duration::from_secs(8)
        );
    }

    #[test]
    fn the_lease_stays_below_the_election_timeout() {
        let mut cfg = RaftstoreConfig::new_test_config();
        cfg.max_leader_lease = Some(Duration::from_millis(450));
        assert!(cfg.validate().is_err(), "9 ticks of 50 ms is the bound");
        cfg.max_leader_lease = Some(Duration::from_millis(449));
        cfg.validate().unwrap();
        cfg.max_leader_lease = Some(Duration::ZERO);
        cfg.validate().unwrap();
        // Unset, it follows the tick settings.
        cfg.max_leader_lease = None;
        cfg.raft.base_tick_interval_ms = 20;
        cfg.validate().unwrap();
        assert_eq!(cfg.leader_lease(), Duration::from_millis(160));
    }

    #[test]
    fn invalid_values_are_refused() {
        let mut cfg = RaftstoreConfig::new_test_config();
        cfg.store_pool_size = 0;
        assert!(cfg.validate().is_err());
        let mut cfg = RaftstoreConfig::new_test_config();
        cfg.raft_log_gc_tick_interval = Duration::from_millis(1);
        assert!(cfg.validate().is_err());
        let mut cfg = RaftstoreConfig::new_test_config();
        cfg.region_split_size = cfg.region_max_size + 1;
        assert!(cfg.validate().is_err());
        let mut cfg = RaftstoreConfig::new_test_config();
        cfg.batch_split_limit = 0;
        assert!(cfg.validate().is_err());
        let mut cfg = RaftstoreConfig::new_test_config();
        cfg.max_leader_missing_duration = cfg.base_tick();
        assert_eq!(
            cfg.leader_missing_ticks(),
            2 * cfg.raft.election_tick as u64,
            "never shorter than two elections"
        );
    }

    #[test]
    fn toml_uses_kebab_case_and_humane_durations() {
        let cfg: RaftstoreConfig = toml::from_str(
            "raft-log-gc-count-limit = 100\npd-heartbeat-tick-interval = \"250ms\"\n[raft]\nelection-tick = 20\n",
        )
        .unwrap();
        assert_eq!(cfg.raft_log_gc_count_limit, 100);
        assert_eq!(cfg.pd_heartbeat_tick_interval, Duration::from_millis(250));
        assert_eq!(cfg.raft.election_tick, 20);
        assert!(toml::from_str::<RaftstoreConfig>("no-such-knob = 1").is_err());
    }
}
