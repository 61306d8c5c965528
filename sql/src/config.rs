//! Settings of the SQL layer and its shell.

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// How SQL sessions use the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "kebab-case")]
pub struct Config {
    /// Scheduler (PD) endpoints, `host:port`.
    pub pd_endpoints: Vec<String>,
    /// Keyspace namespace: sessions with different namespaces see different databases.
    pub namespace: String,
    /// Extra attempts for an autocommit statement that lost a write conflict (0 = none).
    pub autocommit_retries: u32,
    /// Rows (or keys) read per KV scan request when iterating a table or an index.
    pub scan_batch_size: u32,
    /// Worker threads of the runtime that drives the async client for synchronous callers.
    pub runtime_threads: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            pd_endpoints: vec!["127.0.0.1:2379".to_owned()],
            namespace: "default".to_owned(),
            autocommit_retries: 8,
            scan_batch_size: 256,
            runtime_threads: 2,
        }
    }
}

impl Config {
    /// Small pages and plenty of retries: exercises paging and conflict handling in tests.
    pub fn new_test_config() -> Config {
        Config {
            namespace: "test".to_owned(),
            autocommit_retries: 32,
            scan_batch_size: 7,
            runtime_threads: 1,
            ..Config::default()
        }
    }

    /// Rejects unusable values.
    pub fn validate(&self) -> Result<()> {
        if self.pd_endpoints.is_empty() || self.pd_endpoints.iter().any(|e| e.trim().is_empty()) {
            return Err(Error::Config(
                "pd-endpoints must list at least one address".into(),
            ));
        }
        if self.scan_batch_size == 0 || self.scan_batch_size > client::MAX_SCAN_LIMIT {
            return Err(Error::Config(format!(
                "scan-batch-size must be in 1..={}",
                client::MAX_SCAN_LIMIT
            )));
        }
        if self.runtime_threads == 0 {
            return Err(Error::Config("runtime-threads must be at least 1".into()));
        }
        if self.autocommit_retries > 1000 {
            return Err(Error::Config(
                "autocommit-retries must be at most 1000".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        Config::default().validate().unwrap();
        Config::new_test_config().validate().unwrap();
        let bad = Config {
            scan_batch_size: 0,
            ..Config::default()
        };
        assert!(bad.validate().is_err());
        let bad = Config {
            pd_endpoints: vec![],
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }
}
