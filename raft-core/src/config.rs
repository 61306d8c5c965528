//! Configuration of the single-group layer: [`EngineConfig`] (RocksDB) and [`RaftConfig`] (one
//! Raft group). Every struct has working defaults, a `validate()`,
//! and a `new_test_config()` tuned for fast tests.

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// RocksDB tuning shared by the kv and raft engines.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct EngineConfig {
    /// Bytes of the kv engine's block cache (shared by its column families). The raft engine
    /// gets an eighth of it (at least 8 MiB).
    pub block_cache_size: u64,
    /// Bytes of one memtable per column family before it is flushed to an SST file.
    pub write_buffer_size: u64,
    /// Threads RocksDB uses for flushes and compactions.
    pub max_background_jobs: i32,
    /// Bytes of WAL after which RocksDB forces a flush of the oldest memtables.
    pub max_total_wal_size: u64,
    /// Target size in bytes of SST files at level 1.
    pub target_file_size_base: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            block_cache_size: 256 << 20,
            write_buffer_size: 64 << 20,
            max_background_jobs: 2,
            max_total_wal_size: 512 << 20,
            target_file_size_base: 32 << 20,
        }
    }
}

impl EngineConfig {
    /// Small buffers and caches so many test stores fit in memory at once.
    pub fn new_test_config() -> Self {
        EngineConfig {
            block_cache_size: 16 << 20,
            write_buffer_size: 4 << 20,
            max_background_jobs: 1,
            max_total_wal_size: 64 << 20,
            target_file_size_base: 4 << 20,
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.block_cache_size < (1 << 20) {
            return Err(Error::InvalidConfig(
                "block-cache-size must be at least 1 MiB".into(),
            ));
        }
        if self.write_buffer_size < (1 << 20) {
            return Err(Error::InvalidConfig(
                "write-buffer-size must be at least 1 MiB".into(),
            ));
        }
        if self.max_background_jobs < 1 {
            return Err(Error::InvalidConfig(
                "max-background-jobs must be at least 1".into(),
            ));
        }
        if self.target_file_size_base < (1 << 20) {
            return Err(Error::InvalidConfig(
                "target-file-size-base must be at least 1 MiB".into(),
            ));
        }
        Ok(())
    }
}

/// Tunables of one Raft group. Ticks are logical: the owner calls `tick()` every
/// `base_tick_interval_ms` milliseconds, and raft-rs counts elections and heartbeats in ticks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RaftConfig {
    /// Milliseconds between two ticks of every group. Used by the owner's timer, not by raft-rs.
    pub base_tick_interval_ms: u64,
    /// Ticks without hearing from a leader before a follower campaigns (randomised by raft-rs in
    /// `[election_tick, 2 * election_tick)`). Must be greater than `heartbeat_tick`.
    pub election_tick: usize,
    /// Ticks between two heartbeats of a leader. At least 1.
    pub heartbeat_tick: usize,
    /// Append messages in flight to one follower before the leader waits for acknowledgements.
    pub max_inflight_msgs: usize,
    /// Bytes of entries in one append message (at least one entry is always sent).
    pub max_size_per_msg: u64,
    /// Bytes of committed entries handed out by one Ready (at least one entry).
    pub max_committed_size_per_ready: u64,
    /// Bytes of proposed-but-uncommitted entries a leader accepts before dropping proposals;
    /// 0 means unlimited.
    pub max_uncommitted_size: u64,
    /// Pre-vote: a partitioned node does not bump its term (and disrupt the leader) when it
    /// comes back.
    pub pre_vote: bool,
    /// Check quorum: a leader that cannot hear from a quorum for an election timeout steps down.
    pub check_quorum: bool,
    /// Do not send followers a message of its own when only the commit index moved: they learn
    /// it from the next append or heartbeat. Halves the messages (and follower rounds) of a
    /// write load; followers apply a little later, which no reader sees (reads are served by
    /// the leader). raft-rs still broadcasts while a membership change is pending, and the
    /// owner can turn it off for a while ([`crate::RaftGroup::set_skip_bcast_commit`]).
    pub skip_bcast_commit: bool,
    /// Bytes of recent entries kept in memory per group, so appends to followers and apply do
    /// not read RocksDB.
    pub entry_cache_limit: usize,
    /// Bytes per chunk when a snapshot file is streamed to another store.
    pub snap_chunk_size: usize,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            base_tick_interval_ms: 100,
            election_tick: 10,
            heartbeat_tick: 2,
            max_inflight_msgs: 256,
            max_size_per_msg: 1 << 20,
            max_committed_size_per_ready: 16 << 20,
            max_uncommitted_size: 0,
            pre_vote: true,
            check_quorum: true,
            skip_bcast_commit: true,
            entry_cache_limit: 1 << 20,
            snap_chunk_size: 1 << 20,
        }
    }
}

impl RaftConfig {
    /// Short ticks and small limits, so tests exercise flow control and chunking quickly.
    pub fn new_test_config() -> Self {
        RaftConfig {
            base_tick_interval_ms: 10,
            election_tick: 10,
            heartbeat_tick: 2,
            max_inflight_msgs: 64,
            max_size_per_msg: 64 << 10,
            max_committed_size_per_ready: 1 << 20,
            max_uncommitted_size: 0,
            pre_vote: true,
            check_quorum: true,
            skip_bcast_commit: true,
            entry_cache_limit: 64 << 10,
            snap_chunk_size: 4 << 10,
        }
    }

    /// Checks the values are usable (raft-rs would reject or misbehave otherwise).
    pub fn validate(&self) -> Result<()> {
        if self.base_tick_interval_ms == 0 {
            return Err(Error::InvalidConfig(
                "base-tick-interval-ms must be at least 1".into(),
            ));
        }
        if self.heartbeat_tick == 0 {
            return Err(Error::InvalidConfig(
                "heartbeat-tick must be at least 1".into(),
            ));
        }
        if self.election_tick <= self.heartbeat_tick {
            return Err(Error::InvalidConfig(
                "election-tick must be greater than heartbeat-tick".into(),
            ));
        }
        if self.max_inflight_msgs == 0 {
            return Err(Error::InvalidConfig(
                "max-inflight-msgs must be at least 1".into(),
            ));
        }
        if self.max_size_per_msg == 0 || self.max_committed_size_per_ready == 0 {
            return Err(Error::InvalidConfig(
                "max-size-per-msg and max-committed-size-per-ready must be at least 1".into(),
            ));
        }
        if self.snap_chunk_size < 1024 {
            return Err(Error::InvalidConfig(
                "snap-chunk-size must be at least 1 KiB".into(),
            ));
        }
        Ok(())
    }

    /// The raft-rs configuration of peer `peer_id`, restarting from the durable `applied` index
    /// (raft-rs must never re-deliver entries at or below it, and panics if it exceeds the
    /// persisted commit index, so it has to come from the kv engine's `RaftApplyState`).
    pub fn to_raft_config(&self, peer_id: u64, applied: u64) -> raft::Config {
        raft::Config {
            id: peer_id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            applied,
            max_size_per_msg: self.max_size_per_msg,
            max_inflight_msgs: self.max_inflight_msgs,
            check_quorum: self.check_quorum,
            skip_bcast_commit: self.skip_bcast_commit,
            pre_vote: self.pre_vote,
            read_only_option: raft::ReadOnlyOption::Safe,
            max_uncommitted_size: if self.max_uncommitted_size == 0 {
                raft::NO_LIMIT
            } else {
                self.max_uncommitted_size
            },
            max_committed_size_per_ready: self.max_committed_size_per_ready,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_config_validate() {
        EngineConfig::default().validate().unwrap();
        EngineConfig::new_test_config().validate().unwrap();
        let bad = EngineConfig {
            max_background_jobs: 0,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn toml_round_trip_uses_kebab_case_and_defaults() {
        let cfg: EngineConfig = toml::from_str("block-cache-size = 1048576").unwrap();
        assert_eq!(cfg.block_cache_size, 1 << 20);
        assert_eq!(
            cfg.write_buffer_size,
            EngineConfig::default().write_buffer_size
        );
        assert!(toml::from_str::<EngineConfig>("no-such-option = 1").is_err());
    }

    #[test]
    fn raft_config_validates_and_maps_to_raft_rs() {
        RaftConfig::default().validate().unwrap();
        let test = RaftConfig::new_test_config();
        test.validate().unwrap();
        let rc = test.to_raft_config(3, 7);
        rc.validate().unwrap();
        assert_eq!((rc.id, rc.applied), (3, 7));
        assert!(rc.pre_vote && rc.check_quorum);
        assert_eq!(rc.max_uncommitted_size, raft::NO_LIMIT);

        let bad = RaftConfig {
            election_tick: 2,
            heartbeat_tick: 2,
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        let cfg: RaftConfig = toml::from_str("election-tick = 20\npre-vote = false").unwrap();
        assert_eq!(cfg.election_tick, 20);
        assert!(!cfg.pre_vote);
        assert!(toml::from_str::<RaftConfig>("electionTick = 1").is_err());
    }
}
