//! Client configuration.

use std::time::Duration;

use crate::backoff::BackoffConfig;
use crate::errors::{Error, Result};

/// Largest `count` a TSO request may carry: the logical part of a timestamp has 18 bits.
pub(crate) const MAX_TSO_BATCH: u32 = (1 << 18) - 1;

/// Tuning for every client built from it. Build one with `Config::default()` and adjust fields;
/// [`Config::validate`] runs when a client is created.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Deadline of one RPC (store or PD), sent as `grpc-timeout` and enforced locally.
    pub timeout: Duration,
    /// Deadline for opening a TCP/HTTP2 connection.
    pub connect_timeout: Duration,
    /// Retries of PD calls (leader changes, PD restarts).
    pub pd_backoff: BackoffConfig,
    /// Retries of store calls after region errors or transport failures.
    pub region_backoff: BackoffConfig,
    /// Waiting for another transaction's lock to be released or to expire.
    pub lock_backoff: BackoffConfig,
    /// Most timestamps requested in one TSO message (callers waiting together are coalesced).
    pub tso_max_batch: u32,
    /// TSO messages in flight on the stream before new callers wait for the next batch.
    pub tso_max_pending: usize,
    /// Most keys (or pairs) in one store request; larger region groups are split.
    pub max_keys_per_request: usize,
    /// Most pairs asked for in one scan RPC; scans page through regions in steps of this size.
    pub scan_batch_size: u32,
    /// Store RPCs one call sends concurrently (one per region group).
    pub max_concurrent_requests: usize,
    /// Send store requests over one shared `BatchCommands` stream per store instead of one
    /// unary call each (stores that do not serve it get unary calls).
    pub batch_commands: bool,
    /// Most requests in one `BatchCommands` message.
    pub batch_max_requests: usize,
    /// Most encoded request bytes in one `BatchCommands` message; a larger request goes as a
    /// unary call.
    pub batch_max_bytes: usize,
    /// TTL of an optimistic transaction's prewrite locks, counted from the transaction's start
    /// plus its age when prewriting.
    pub txn_lock_ttl: Duration,
    /// TTL of pessimistic locks.
    pub pessimistic_lock_ttl: Duration,
    /// How often a running transaction refreshes its primary lock's TTL
    /// (`KvTxnHeartBeat`). Must be below both TTLs.
    pub heartbeat_interval: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // TiKV's clients use 2 s; Raft commits must finish well within it.
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            pd_backoff: BackoffConfig::new(Duration::from_millis(100), Duration::from_secs(3), 10),
            // The policy TiKV's Rust client uses for region errors.
            region_backoff: BackoffConfig::default(),
            // Long enough to outwait a default 3 s lock TTL.
            lock_backoff: BackoffConfig::new(
                Duration::from_millis(10),
                Duration::from_millis(500),
                20,
            ),
            tso_max_batch: 64,
            tso_max_pending: 8,
            max_keys_per_request: 2048,
            scan_batch_size: 256,
            max_concurrent_requests: 16,
            batch_commands: true,
            batch_max_requests: 128,
            batch_max_bytes: 1 << 20,
            txn_lock_ttl: Duration::from_secs(3),
            pessimistic_lock_ttl: Duration::from_secs(20),
            heartbeat_interval: Duration::from_millis(1500),
        }
    }
}

impl Config {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(Error::Config(
                "timeout and connect-timeout must be positive".into(),
            ));
        }
        self.pd_backoff.validate("pd-backoff")?;
        self.region_backoff.validate("region-backoff")?;
        self.lock_backoff.validate("lock-backoff")?;
        if self.tso_max_batch == 0 || self.tso_max_batch > MAX_TSO_BATCH {
            return Err(Error::Config(format!(
                "tso-max-batch must be in 1..={MAX_TSO_BATCH}"
            )));
        }
        if self.tso_max_pending == 0 {
            return Err(Error::Config("tso-max-pending must be positive".into()));
        }
        if self.max_keys_per_request == 0
            || self.scan_batch_size == 0
            || self.max_concurrent_requests == 0
        {
            return Err(Error::Config(
                "max-keys-per-request, scan-batch-size and max-concurrent-requests must be positive"
                    .into(),
            ));
        }
        if self.batch_max_requests == 0 || self.batch_max_bytes == 0 {
            return Err(Error::Config(
                "batch-max-requests and batch-max-bytes must be positive".into(),
            ));
        }
        if self.heartbeat_interval.is_zero()
            || self.heartbeat_interval >= self.txn_lock_ttl
            || self.heartbeat_interval >= self.pessimistic_lock_ttl
        {
            return Err(Error::Config(
                "heartbeat-interval must be positive and below both lock TTLs".into(),
            ));
        }
        Ok(())
    }

    /// Short retries and TTLs so tests fail (or recover) quickly, with a timeout generous
    /// enough for a loaded machine.
    pub fn new_test_config() -> Config {
        Config {
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            pd_backoff: BackoffConfig::new(
                Duration::from_millis(5),
                Duration::from_millis(100),
                20,
            ),
            region_backoff: BackoffConfig::new_test_config(),
            lock_backoff: BackoffConfig::new(
                Duration::from_millis(5),
                Duration::from_millis(100),
                100,
            ),
            tso_max_batch: 64,
            tso_max_pending: 4,
            max_keys_per_request: 64,
            scan_batch_size: 16,
            max_concurrent_requests: 8,
            batch_commands: true,
            batch_max_requests: 8,
            batch_max_bytes: 64 << 10,
            txn_lock_ttl: Duration::from_secs(3),
            pessimistic_lock_ttl: Duration::from_secs(20),
            heartbeat_interval: Duration::from_millis(1000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_config_are_valid() {
        Config::default().validate().unwrap();
        Config::new_test_config().validate().unwrap();
    }

    #[test]
    fn bad_values_are_rejected() {
        let bad = [
            Config {
                timeout: Duration::ZERO,
                ..Config::default()
            },
            Config {
                tso_max_batch: MAX_TSO_BATCH + 1,
                ..Config::default()
            },
            Config {
                scan_batch_size: 0,
                ..Config::default()
            },
            Config {
                heartbeat_interval: Duration::from_secs(3),
                ..Config::default()
            },
        ];
        for c in bad {
            assert!(matches!(c.validate(), Err(Error::Config(_))), "{c:?}");
        }
    }
}
