//! Settings of a test cluster: the store runtime's and engines' configs plus the harness's own
//! client-side patience.

use std::time::Duration;

use raftstore::config::RaftstoreConfig;

use crate::errors::{Error, Result};

/// Everything a [`crate::Cluster`] is built from.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Cluster id written into every store ident and scheduler response.
    pub cluster_id: u64,
    /// The store runtime's settings, identical on every store: ticks, log GC, split sizes, the
    /// engines' RocksDB settings (`raftstore.engine`) and the snapshot chunk size the network
    /// copies files with (`raftstore.raft.snap_chunk_size`).
    pub raftstore: RaftstoreConfig,
    /// How long one client operation (`must_put`, `scan`, ...) keeps retrying before failing.
    pub request_timeout: Duration,
    /// A client operation is retried at least this many times, even past `request_timeout`, so a
    /// slow machine does not turn one long stall into a failure.
    pub min_attempts: usize,
    /// How long one attempt waits for the store's answer before trying elsewhere.
    pub send_timeout: Duration,
    /// Pause between attempts that failed for lack of a leader or a route.
    pub retry_interval: Duration,
    /// How long `wait_*` helpers and the `must_*` engine checks poll before failing.
    pub wait_timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            cluster_id: 1,
            raftstore: RaftstoreConfig::default(),
            request_timeout: Duration::from_secs(10),
            min_attempts: 10,
            send_timeout: Duration::from_secs(1),
            retry_interval: Duration::from_millis(100),
            wait_timeout: Duration::from_secs(10),
        }
    }
}

impl ClusterConfig {
    /// Fast ticks and small engines for tests (`RaftstoreConfig::new_test_config`), and client
    /// patience sized for a loaded 2-core machine.
    pub fn new_test_config() -> Self {
        ClusterConfig {
            raftstore: RaftstoreConfig::new_test_config(),
            ..ClusterConfig::default()
        }
    }

    /// Checks every field, including the nested configs.
    pub fn validate(&self) -> Result<()> {
        let invalid = |m: &str| Err(Error::InvalidConfig(m.to_owned()));
        if self.request_timeout.is_zero() || self.send_timeout.is_zero() {
            return invalid("request-timeout and send-timeout must be positive");
        }
        if self.send_timeout > self.request_timeout {
            return invalid("send-timeout must not exceed request-timeout");
        }
        if self.min_attempts == 0 {
            return invalid("min-attempts must be at least 1");
        }
        if self.wait_timeout.is_zero() {
            return invalid("wait-timeout must be positive");
        }
        self.raftstore.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        ClusterConfig::default().validate().unwrap();
        ClusterConfig::new_test_config().validate().unwrap();
        let mut c = ClusterConfig::new_test_config();
        c.send_timeout = c.request_timeout * 2;
        assert!(c.validate().is_err());
        let mut c = ClusterConfig::new_test_config();
        c.min_attempts = 0;
        assert!(c.validate().is_err());
        let mut c = ClusterConfig::new_test_config();
        c.raftstore.store_pool_size = 0;
        assert!(
            c.validate().is_err(),
            "the runtime's config is validated too"
        );
    }
}
