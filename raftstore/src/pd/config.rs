//! Tunables of the scheduler (PD) client.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// Settings of [`GrpcPdClient`](super::GrpcPdClient).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct PdConfig {
    /// How long establishing a connection to one scheduler endpoint may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one attempt of one request may take.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How long a request keeps being retried (reconnecting, following the leader) before its
    /// error is returned. Also bounds the initial connection.
    #[serde(with = "humantime_serde")]
    pub retry_timeout: Duration,
    /// First delay between retries; doubles up to the max.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest delay between retries.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Region heartbeats waiting to be streamed; when full, new ones are refused (they are
    /// periodic, the next one carries the same information).
    pub heartbeat_queue_capacity: usize,
    /// HTTP/2 ping interval, so a dead scheduler connection is noticed while idle.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    /// How long a ping may stay unanswered.
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
}

impl Default for PdConfig {
    fn default() -> Self {
        PdConfig {
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(5),
            retry_timeout: Duration::from_secs(30),
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(3),
            heartbeat_queue_capacity: 1024,
            keepalive_interval: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(3),
        }
    }
}

impl PdConfig {
    /// Quick retries with a bounded total, for tests.
    pub fn new_test_config() -> Self {
        PdConfig {
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retry_timeout: Duration::from_secs(20),
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(200),
            keepalive_interval: Duration::from_secs(2),
            keepalive_timeout: Duration::from_secs(2),
            ..PdConfig::default()
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::Other(format!("invalid pd config: {msg}")));
        for (name, d) in [
            ("connect-timeout", self.connect_timeout),
            ("request-timeout", self.request_timeout),
            ("retry-timeout", self.retry_timeout),
            ("backoff-base", self.backoff_base),
            ("keepalive-interval", self.keepalive_interval),
            ("keepalive-timeout", self.keepalive_timeout),
        ] {
            if d.is_zero() {
                return invalid(format!("{name} must be positive"));
            }
        }
        if self.backoff_max < self.backoff_base {
            return invalid("backoff-max must be at least backoff-base".into());
        }
        if self.heartbeat_queue_capacity == 0 {
            return invalid("heartbeat-queue-capacity must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        PdConfig::default().validate().unwrap();
        PdConfig::new_test_config().validate().unwrap();
        let bad = PdConfig {
            request_timeout: Duration::ZERO,
            ..PdConfig::default()
        };
        assert!(bad.validate().is_err());
        let bad = PdConfig {
            backoff_max: Duration::from_millis(1),
            ..PdConfig::default()
        };
        assert!(bad.validate().is_err());
        let cfg: PdConfig = toml::from_str("retry-timeout = \"1m\"").unwrap();
        assert_eq!(cfg.retry_timeout, Duration::from_secs(60));
    }
}
