//! Harness settings: cluster size, client deadlines, how long conditions may take, where Python is.

use std::path::PathBuf;
use std::time::Duration;

use crate::errors::{Error, Result};

/// Names the Python interpreter of the venv with the pinned clients (`make compat-venv`).
pub const PYTHON_ENV: &str = "TINYKV_COMPAT_PYTHON";
/// When set (to anything), a cluster's data and logs are kept after the test, and their folder
/// is printed.
pub const KEEP_DATA_ENV: &str = "TINYKV_COMPAT_KEEP_DATA";

/// Settings of one conformance cluster and the clients driving it.
#[derive(Debug, Clone, PartialEq)]
pub struct HarnessConfig {
    /// Stores in the cluster (each region gets `min(3, stores)` replicas).
    pub stores: usize,
    /// Per-request deadline of both clients. TiKV's client defaults to 2 s, which a loaded
    /// 2-core machine running debug servers can miss on a Raft write; its retries would then
    /// report a timeout that says nothing about the protocol.
    pub client_timeout: Duration,
    /// How long a polled condition (a split visible in PD, a new leader elected) may take
    /// before the test fails. Only a limit: waits return as soon as the condition holds.
    pub wait_timeout: Duration,
    /// How long one Python scenario script may run before it is killed.
    pub script_timeout: Duration,
    /// The Python interpreter with `tikv-python` and `tikv-client` installed; `None` uses
    /// [`PYTHON_ENV`] or else `.venv/bin/python` of this crate (where `make compat-venv` puts
    /// it).
    pub python: Option<PathBuf>,
    /// Keep the cluster's folder (data and logs) after the test.
    pub keep_data: bool,
}

impl Default for HarnessConfig {
    fn default() -> Self {
        HarnessConfig {
            stores: 3,
            client_timeout: Duration::from_secs(10),
            wait_timeout: Duration::from_secs(60),
            script_timeout: Duration::from_secs(300),
            python: None,
            keep_data: false,
        }
    }
}

impl HarnessConfig {
    /// The defaults, with [`KEEP_DATA_ENV`] honoured.
    pub fn new_test_config() -> Self {
        HarnessConfig {
            keep_data: std::env::var_os(KEEP_DATA_ENV).is_some(),
            ..HarnessConfig::default()
        }
    }

    /// Checks every value is usable, naming the one at fault.
    pub fn validate(&self) -> Result<()> {
        if self.stores == 0 || self.stores > tinykv_playground::MAX_STORES {
            return Err(Error::Config(format!(
                "stores must be in 1..={}",
                tinykv_playground::MAX_STORES
            )));
        }
        if self.client_timeout.is_zero()
            || self.wait_timeout.is_zero()
            || self.script_timeout.is_zero()
        {
            return Err(Error::Config(
                "client-timeout, wait-timeout and script-timeout must be positive".into(),
            ));
        }
        if let Some(p) = &self.python {
            if p.as_os_str().is_empty() {
                return Err(Error::Config("python must not be an empty path".into()));
            }
        }
        Ok(())
    }

    /// The interpreter to run the Python scenarios with (see [`HarnessConfig::python`]).
    pub fn python_path(&self) -> PathBuf {
        if let Some(p) = &self.python {
            return p.clone();
        }
        if let Some(p) = std::env::var_os(PYTHON_ENV) {
            return PathBuf::from(p);
        }
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        HarnessConfig::default().validate().unwrap();
        HarnessConfig::new_test_config().validate().unwrap();
        let cases = [
            (
                HarnessConfig {
                    stores: 0,
                    ..HarnessConfig::default()
                },
                "stores",
            ),
            (
                HarnessConfig {
                    wait_timeout: Duration::ZERO,
                    ..HarnessConfig::default()
                },
                "wait-timeout",
            ),
            (
                HarnessConfig {
                    python: Some(PathBuf::new()),
                    ..HarnessConfig::default()
                },
                "python",
            ),
        ];
        for (cfg, needle) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }

    #[test]
    fn python_defaults_to_the_crate_venv() {
        let cfg = HarnessConfig {
            python: Some(PathBuf::from("/opt/py/bin/python")),
            ..HarnessConfig::default()
        };
        assert_eq!(cfg.python_path(), PathBuf::from("/opt/py/bin/python"));
        if std::env::var_os(PYTHON_ENV).is_none() {
            let p = HarnessConfig::default().python_path();
            assert!(p.ends_with("compat/.venv/bin/python"), "{}", p.display());
        }
    }
}
