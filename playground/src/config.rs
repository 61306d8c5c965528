//! What a [`ProcessCluster`](crate::ProcessCluster) starts and how long it waits.

use std::path::PathBuf;
use std::time::Duration;

use crate::binaries::Binaries;
use crate::errors::{Error, Result};

/// The scheduler's default port, which `tinykv-ctl` and TiKV's clients try first.
pub const DEFAULT_PD_PORT: u16 = 2379;
/// The first store's default port (TiKV's); store `i` listens on `DEFAULT_STORE_PORT + i`.
pub const DEFAULT_STORE_PORT: u16 = 20160;
/// Default data directory of the playground, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = ".playground";
/// Most stores one cluster may have: a guard against typos such as `--stores 300`.
pub const MAX_STORES: usize = 32;

/// `tinykv-server` settings for a cluster on one machine (the playground's): 100 ms Raft ticks,
/// so a killed store's regions elect new leaders within one to two seconds instead of the
/// production 10-20 s, and heartbeats to the scheduler every second, so it learns of leaders,
/// splits and new peers quickly.
pub const LOCAL_STORE_CONFIG: &str = r#"[raftstore]
pd-heartbeat-tick-interval = "1s"
pd-store-heartbeat-tick-interval = "1s"
split-region-check-tick-interval = "1s"
raft-log-gc-tick-interval = "1s"

[raftstore.raft]
base-tick-interval-ms = 100
"#;

/// [`LOCAL_STORE_CONFIG`] with small RocksDB caches and buffers, for test suites that run
/// several clusters' worth of stores on a small machine.
pub const TEST_STORE_CONFIG: &str = r#"[raftstore]
pd-heartbeat-tick-interval = "1s"
pd-store-heartbeat-tick-interval = "1s"
split-region-check-tick-interval = "1s"
raft-log-gc-tick-interval = "1s"

[raftstore.raft]
base-tick-interval-ms = 100

[rocksdb]
block-cache-size = 16777216
write-buffer-size = 4194304
max-background-jobs = 1
"#;

/// Settings of one process cluster: 1 scheduler and `stores` stores on 127.0.0.1.
///
/// Layout under `data_dir`: `pd/` (scheduler metadata), `store-<i>/` (store `i`'s engines),
/// `logs/pd.log` and `logs/store-<i>.log` (each process's stdout and stderr, appended across
/// restarts), `cluster.json` (endpoints and PIDs while the cluster runs).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// Root folder of the cluster; created if missing, reused (with its data) if present.
    pub data_dir: PathBuf,
    /// Stores started with the cluster (more can be added with `add_store`).
    pub stores: usize,
    /// The scheduler's port; 0 picks a free one.
    pub pd_port: u16,
    /// Store `i` listens on `store_port_base + i`; 0 picks a free port for each store (kept
    /// across restarts of that store).
    pub store_port_base: u16,
    /// The server executables; `None` finds them with [`Binaries::locate`].
    pub binaries: Option<Binaries>,
    /// Replicas per region (`--max-replicas` of the scheduler); `None` keeps its default (3).
    pub max_replicas: Option<usize>,
    /// Extra flags for `tinyscheduler-server`, after the ones the cluster sets.
    pub scheduler_args: Vec<String>,
    /// Extra flags for every `tinykv-server`, after the ones the cluster sets.
    pub store_args: Vec<String>,
    /// A `tinykv-server` config file (TOML text), written to `<data dir>/tinykv.toml` and
    /// passed to every store with `--config`; flags (including `store_args`) override it.
    /// Default: [`LOCAL_STORE_CONFIG`]; `None` runs the stores with their own defaults.
    pub store_config: Option<String>,
    /// `tracing` filter of every process (`--log-level` / `--log-filter`).
    pub log_filter: String,
    /// How long `start` (and the waits of `restart_store`, `add_store`) may take.
    pub start_timeout: Duration,
    /// How long a process may take to exit after SIGTERM before it is killed.
    pub stop_timeout: Duration,
    /// Whether readiness includes every region having `min(max-replicas, stores)` peers.
    /// Without it the cluster is ready as soon as every region has a leader.
    pub wait_replicated: bool,
    /// Linux: the processes get SIGKILL if the thread that started them exits (the parent
    /// died without running `Drop`, say). The signal follows the *thread*, so start and
    /// restart processes from a long-lived thread (a runtime worker, `main`), not from a
    /// short-lived blocking-pool thread, or turn this off.
    pub die_with_parent: bool,
}

impl Default for ClusterConfig {
    /// The playground: three stores, the well-known ports, data in `./.playground`.
    fn default() -> Self {
        ClusterConfig {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            stores: 3,
            pd_port: DEFAULT_PD_PORT,
            store_port_base: DEFAULT_STORE_PORT,
            binaries: None,
            max_replicas: None,
            scheduler_args: Vec::new(),
            store_args: Vec::new(),
            store_config: Some(LOCAL_STORE_CONFIG.into()),
            log_filter: "info".into(),
            start_timeout: Duration::from_secs(120),
            stop_timeout: Duration::from_secs(30),
            wait_replicated: true,
            die_with_parent: true,
        }
    }
}

impl ClusterConfig {
    /// Three stores on free ports with [`TEST_STORE_CONFIG`]. `data_dir` is left empty:
    /// tests set it to a temporary directory (validation refuses an empty one). Timeouts are
    /// generous because a loaded 2-core machine opening several RocksDB instances in debug
    /// builds is slow.
    pub fn new_test_config() -> Self {
        ClusterConfig {
            data_dir: PathBuf::new(),
            pd_port: 0,
            store_port_base: 0,
            store_config: Some(TEST_STORE_CONFIG.into()),
            start_timeout: Duration::from_secs(180),
            stop_timeout: Duration::from_secs(30),
            ..ClusterConfig::default()
        }
    }

    /// Checks every value is usable, naming the one at fault.
    pub fn validate(&self) -> Result<()> {
        let invalid = |msg: String| Err(Error::Config(msg));
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data-dir must not be empty".into());
        }
        if self.stores == 0 || self.stores > MAX_STORES {
            return invalid(format!("stores must be in 1..={MAX_STORES}"));
        }
        if self.max_replicas == Some(0) {
            return invalid("max-replicas must be positive".into());
        }
        if self.store_port_base != 0 {
            let last = u32::from(self.store_port_base) + MAX_STORES as u32 - 1;
            if last > u32::from(u16::MAX) {
                return invalid(format!(
                    "store-port-base {} leaves no room for {MAX_STORES} stores",
                    self.store_port_base
                ));
            }
            let stores = u32::from(self.store_port_base)..=last;
            if self.pd_port != 0 && stores.contains(&u32::from(self.pd_port)) {
                return invalid(format!(
                    "pd-port {} falls in the store ports {}..={last}",
                    self.pd_port, self.store_port_base
                ));
            }
        }
        if self.start_timeout.is_zero() || self.stop_timeout.is_zero() {
            return invalid("start-timeout and stop-timeout must be positive".into());
        }
        if self.log_filter.trim().is_empty() {
            return invalid("log-filter must not be empty".into());
        }
        Ok(())
    }

    /// The fixed port of store `index`, or `None` when ports are picked freely.
    pub(crate) fn fixed_store_port(&self, index: usize) -> Option<u16> {
        if self.store_port_base == 0 {
            None
        } else {
            // validate() guarantees room for MAX_STORES ports; add_store enforces the count.
            Some(self.store_port_base + index as u16)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_config_validate() {
        ClusterConfig::default().validate().unwrap();
        let mut test = ClusterConfig::new_test_config();
        assert!(test
            .validate()
            .unwrap_err()
            .to_string()
            .contains("data-dir"));
        test.data_dir = PathBuf::from("/tmp/x");
        test.validate().unwrap();
        assert_eq!(test.fixed_store_port(2), None);
        assert_eq!(ClusterConfig::default().fixed_store_port(2), Some(20162));
    }

    #[test]
    fn each_bad_value_is_named() {
        let base = ClusterConfig::default();
        let cases = [
            (
                ClusterConfig {
                    stores: 0,
                    ..base.clone()
                },
                "stores",
            ),
            (
                ClusterConfig {
                    stores: MAX_STORES + 1,
                    ..base.clone()
                },
                "stores",
            ),
            (
                ClusterConfig {
                    max_replicas: Some(0),
                    ..base.clone()
                },
                "max-replicas",
            ),
            (
                ClusterConfig {
                    store_port_base: 65530,
                    ..base.clone()
                },
                "store-port-base",
            ),
            (
                ClusterConfig {
                    pd_port: 20165,
                    ..base.clone()
                },
                "pd-port",
            ),
            (
                ClusterConfig {
                    stop_timeout: Duration::ZERO,
                    ..base.clone()
                },
                "stop-timeout",
            ),
            (
                ClusterConfig {
                    log_filter: " ".into(),
                    ..base.clone()
                },
                "log-filter",
            ),
        ];
        for (cfg, needle) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }
}
