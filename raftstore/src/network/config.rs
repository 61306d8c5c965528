//! Tunables of the store-to-store transport and the snapshot streams.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// Largest batch or snapshot chunk we allow: it must stay well below the receiving server's
/// gRPC message limit (`kvserver`: one Raft entry plus 1 MiB of headroom).
const MAX_FRAME_BYTES: usize = 4 << 20;

/// Settings of [`GrpcTransport`](super::GrpcTransport) and [`RaftReceiver`](super::RaftReceiver).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct NetworkConfig {
    /// Raft messages queued per destination store; when full, new messages are dropped and
    /// reported unreachable (backpressure instead of unbounded memory).
    pub queue_capacity: usize,
    /// Most raft messages in one `BatchRaftMessage`.
    pub max_batch_messages: usize,
    /// Most encoded bytes in one `BatchRaftMessage` (a single larger message still goes alone).
    pub max_batch_bytes: usize,
    /// How long establishing a TCP + HTTP/2 connection may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// First delay before reconnecting to a store after a failure; doubles up to the max.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff_base: Duration,
    /// Longest delay between reconnection attempts.
    #[serde(with = "humantime_serde")]
    pub reconnect_backoff_max: Duration,
    /// HTTP/2 ping interval, so a silently dead peer (no RST) is noticed.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long a ping may stay unanswered before the connection is declared dead.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
    /// Bytes of snapshot file per `SnapshotChunk`.
    pub snap_chunk_size: usize,
    /// Snapshots this store sends at the same time; more wait for a slot.
    pub snap_max_concurrent_sends: usize,
    /// Snapshots this store receives at the same time; more are refused (the sender retries).
    pub snap_max_concurrent_recvs: usize,
    /// Longest wait for one snapshot chunk to be accepted (sender) or to arrive (receiver), and
    /// for the receiver's final answer. A stalled transfer fails instead of holding its slot.
    #[serde(with = "humantime_serde")]
    pub snap_io_timeout: Duration,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            queue_capacity: 8192,
            max_batch_messages: 256,
            max_batch_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(5),
            reconnect_backoff_base: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(5),
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(3),
            snap_chunk_size: 1 << 20,
            snap_max_concurrent_sends: 4,
            snap_max_concurrent_recvs: 4,
            snap_io_timeout: Duration::from_secs(60),
        }
    }
}

impl NetworkConfig {
    /// Short timeouts and small chunks, so tests exercise multi-chunk transfers and reconnect
    /// quickly.
    pub fn new_test_config() -> Self {
        NetworkConfig {
            queue_capacity: 1024,
            connect_timeout: Duration::from_secs(2),
            reconnect_backoff_base: Duration::from_millis(10),
            reconnect_backoff_max: Duration::from_millis(200),
            keepalive_interval: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(2),
            snap_chunk_size: 64 << 10,
            snap_io_timeout: Duration::from_secs(10),
            ..NetworkConfig::default()
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::Other(format!("invalid network config: {msg}")));
        if self.queue_capacity == 0 || self.max_batch_messages == 0 {
            return invalid("queue-capacity and max-batch-messages must be positive".into());
        }
        for (name, v) in [
            ("max-batch-bytes", self.max_batch_bytes),
            ("snap-chunk-size", self.snap_chunk_size),
        ] {
            if v == 0 || v > MAX_FRAME_BYTES {
                return invalid(format!("{name} must be in 1..={MAX_FRAME_BYTES}, got {v}"));
            }
        }
        if self.snap_max_concurrent_sends == 0 || self.snap_max_concurrent_recvs == 0 {
            return invalid("snap-max-concurrent-sends and -recvs must be positive".into());
        }
        for (name, d) in [
            ("connect-timeout", self.connect_timeout),
            ("reconnect-backoff-base", self.reconnect_backoff_base),
            ("keepalive-interval", self.keepalive_interval),
            ("keepalive-timeout", self.keepalive_timeout),
            ("snap-io-timeout", self.snap_io_timeout),
        ] {
            if d.is_zero() {
                return invalid(format!("{name} must be positive"));
            }
        }
        if self.reconnect_backoff_max < self.reconnect_backoff_base {
            return invalid("reconnect-backoff-max must be at least reconnect-backoff-base".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_config_are_valid() {
        NetworkConfig::default().validate().unwrap();
        NetworkConfig::new_test_config().validate().unwrap();
    }

    #[test]
    fn bad_values_are_refused() {
        let bad = [
            NetworkConfig {
                queue_capacity: 0,
                ..NetworkConfig::default()
            },
            NetworkConfig {
                snap_chunk_size: 64 << 20,
                ..NetworkConfig::default()
            },
            NetworkConfig {
                reconnect_backoff_max: Duration::from_millis(1),
                ..NetworkConfig::default()
            },
            NetworkConfig {
                snap_io_timeout: Duration::ZERO,
                ..NetworkConfig::default()
            },
        ];
        for cfg in bad {
            assert!(cfg.validate().is_err(), "{cfg:?} should be refused");
        }
    }

    #[test]
    fn toml_uses_kebab_case_and_human_durations() {
        let cfg: NetworkConfig =
            toml::from_str("queue-capacity = 16\nreconnect-backoff-max = \"2s\"\n").unwrap();
        assert_eq!(cfg.queue_capacity, 16);
        assert_eq!(cfg.reconnect_backoff_max, Duration::from_secs(2));
        assert_eq!(cfg.max_batch_messages, 256, "unset fields keep defaults");
    }
}
