//! Configuration: server settings ([`Config`]) and scheduling policy ([`ScheduleConfig`]).
//!
//! TOML uses kebab-case keys and human-readable durations (`"30m"`, `"500ms"`); every key is also
//! a command-line flag of `tinyscheduler-server`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// Names accepted in [`ScheduleConfig::schedulers`].
pub const KNOWN_SCHEDULERS: &[&str] = &["balance-region", "balance-leader"];

/// Server settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Member name reported by `GetMembers`.
    pub name: String,
    /// `host:port` the gRPC service (and the HTTP status view) listens on. Port 0 picks a free
    /// port, which [`crate::server::SchedulerServer::addr`] then reports.
    pub listen_addr: String,
    /// URL clients are told to use (`GetMembers` `client_urls`). Empty means
    /// `http://<bound listen address>`, which needs a concrete (not 0.0.0.0) listen host.
    pub advertise_client_url: String,
    /// Directory of the metadata database; created if missing.
    pub data_dir: PathBuf,
    /// How far ahead of the wall clock the TSO persists its upper bound. A restart resumes
    /// above the saved bound, so a larger window means fewer syncs but a bigger jump on restart.
    #[serde(with = "humantime_serde")]
    pub tso_save_interval: Duration,
    /// Ids reserved (persisted) per allocator batch; a restart skips what is left of a batch.
    pub id_batch_size: u64,
    /// Largest `split_count` an `AskBatchSplit` may ask for.
    pub max_batch_split_count: u32,
    /// Scheduling policy.
    pub schedule: ScheduleConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "tinyscheduler".into(),
            listen_addr: "127.0.0.1:2379".into(),
            advertise_client_url: String::new(),
            data_dir: PathBuf::from("default.pd"),
            tso_save_interval: Duration::from_secs(3),
            id_batch_size: 1000,
            max_batch_split_count: 1024,
            schedule: ScheduleConfig::default(),
        }
    }
}

impl Config {
    /// Settings for tests: an ephemeral port and fast scheduling. The caller sets `data_dir`.
    pub fn new_test_config() -> Self {
        Config {
            listen_addr: "127.0.0.1:0".into(),
            data_dir: PathBuf::new(),
            tso_save_interval: Duration::from_millis(500),
            id_batch_size: 100,
            schedule: ScheduleConfig::new_test_config(),
            ..Config::default()
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::InvalidConfig("name must not be empty".into()));
        }
        let addr: std::net::SocketAddr = self.listen_addr.parse().map_err(|e| {
            Error::InvalidConfig(format!(
                "listen-addr {:?} is not host:port: {e}",
                self.listen_addr
            ))
        })?;
        if self.advertise_client_url.is_empty() && addr.ip().is_unspecified() {
            return Err(Error::InvalidConfig(
                "advertise-client-url is required when listen-addr is a wildcard address".into(),
            ));
        }
        if !self.advertise_client_url.is_empty()
            && !self.advertise_client_url.starts_with("http://")
            && !self.advertise_client_url.starts_with("https://")
        {
            return Err(Error::InvalidConfig(
                "advertise-client-url must start with http:// or https://".into(),
            ));
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(Error::InvalidConfig("data-dir must not be empty".into()));
        }
        if self.tso_save_interval < Duration::from_millis(100) {
            return Err(Error::InvalidConfig(
                "tso-save-interval must be at least 100ms".into(),
            ));
        }
        if self.id_batch_size == 0 {
            return Err(Error::InvalidConfig(
                "id-batch-size must be positive".into(),
            ));
        }
        if self.max_batch_split_count == 0 {
            return Err(Error::InvalidConfig(
                "max-batch-split-count must be positive".into(),
            ));
        }
        self.schedule.validate()
    }
}

/// Scheduling policy: replication target, store liveness, and how much scheduling runs at once.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ScheduleConfig {
    /// Replicas every region should have.
    pub max_replicas: usize,
    /// A store without a heartbeat for longer than this is down: it is never a source or target
    /// of balancing, and the replica checker moves its peers elsewhere.
    #[serde(with = "humantime_serde")]
    pub max_store_down_time: Duration,
    /// How often the balance schedulers run.
    #[serde(with = "humantime_serde")]
    pub schedule_interval: Duration,
    /// How often the replica checker walks all regions.
    #[serde(with = "humantime_serde")]
    pub patrol_interval: Duration,
    /// Transfer-leader operators (balance-leader) allowed to run at once.
    pub leader_schedule_limit: usize,
    /// Move-peer operators (balance-region) allowed to run at once.
    pub region_schedule_limit: usize,
    /// Repair operators (replica checker) allowed to run at once.
    pub replica_schedule_limit: usize,
    /// An operator made only of leader transfers is abandoned after this long.
    #[serde(with = "humantime_serde")]
    pub leader_operator_timeout: Duration,
    /// An operator that adds or removes peers is abandoned after this long.
    #[serde(with = "humantime_serde")]
    pub region_operator_timeout: Duration,
    /// Balance schedulers to run, out of [`KNOWN_SCHEDULERS`].
    pub schedulers: Vec<String>,
    /// Whether the replica checker repairs regions with missing, extra, down or offline peers.
    pub enable_replica_checker: bool,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            max_replicas: 3,
            max_store_down_time: Duration::from_secs(30 * 60),
            schedule_interval: Duration::from_secs(1),
            patrol_interval: Duration::from_millis(500),
            leader_schedule_limit: 4,
            region_schedule_limit: 4,
            replica_schedule_limit: 8,
            leader_operator_timeout: Duration::from_secs(10),
            region_operator_timeout: Duration::from_secs(10 * 60),
            schedulers: KNOWN_SCHEDULERS.iter().map(|s| s.to_string()).collect(),
            enable_replica_checker: true,
        }
    }
}

impl ScheduleConfig {
    /// Fast ticks and a short down time, so tests see scheduling within a second or two.
    pub fn new_test_config() -> Self {
        ScheduleConfig {
            max_store_down_time: Duration::from_secs(3),
            schedule_interval: Duration::from_millis(50),
            patrol_interval: Duration::from_millis(50),
            leader_operator_timeout: Duration::from_secs(5),
            region_operator_timeout: Duration::from_secs(30),
            ..ScheduleConfig::default()
        }
    }

    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.max_replicas == 0 {
            return Err(Error::InvalidConfig("max-replicas must be positive".into()));
        }
        if self.max_store_down_time.is_zero() {
            return Err(Error::InvalidConfig(
                "max-store-down-time must be positive".into(),
            ));
        }
        if self.schedule_interval < Duration::from_millis(10)
            || self.patrol_interval < Duration::from_millis(10)
        {
            return Err(Error::InvalidConfig(
                "schedule-interval and patrol-interval must be at least 10ms".into(),
            ));
        }
        if self.leader_operator_timeout.is_zero() || self.region_operator_timeout.is_zero() {
            return Err(Error::InvalidConfig(
                "operator timeouts must be positive".into(),
            ));
        }
        for name in &self.schedulers {
            if !KNOWN_SCHEDULERS.contains(&name.as_str()) {
                return Err(Error::InvalidConfig(format!(
                    "unknown scheduler {name:?}; known: {}",
                    KNOWN_SCHEDULERS.join(", ")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_config_validate() {
        Config::default().validate().unwrap();
        let mut test = Config::new_test_config();
        assert!(
            test.validate().is_err(),
            "data-dir must be set by the caller"
        );
        test.data_dir = PathBuf::from("/tmp/x");
        test.validate().unwrap();
    }

    #[test]
    fn bad_values_are_rejected() {
        type Mutation = fn(&mut Config);
        let cases: [Mutation; 8] = [
            |c| c.listen_addr = "nope".into(),
            |c| c.listen_addr = "0.0.0.0:2379".into(),
            |c| c.advertise_client_url = "127.0.0.1:2379".into(),
            |c| c.id_batch_size = 0,
            |c| c.tso_save_interval = Duration::from_millis(1),
            |c| c.schedule.max_replicas = 0,
            |c| c.schedule.schedulers = vec!["shuffle".into()],
            |c| c.schedule.schedule_interval = Duration::ZERO,
        ];
        for (i, mutate) in cases.iter().enumerate() {
            let mut c = Config::default();
            mutate(&mut c);
            assert!(c.validate().is_err(), "case {i} should be rejected");
        }
        let c = Config {
            listen_addr: "0.0.0.0:2379".into(),
            advertise_client_url: "http://10.0.0.1:2379".into(),
            ..Config::default()
        };
        c.validate().unwrap();
    }

    #[test]
    fn toml_uses_kebab_case_and_human_durations() {
        let c: Config = toml::from_str(
            r#"
            listen-addr = "127.0.0.1:3379"
            [schedule]
            max-replicas = 5
            max-store-down-time = "90s"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen_addr, "127.0.0.1:3379");
        assert_eq!(c.schedule.max_replicas, 5);
        assert_eq!(c.schedule.max_store_down_time, Duration::from_secs(90));
        assert_eq!(c.id_batch_size, Config::default().id_batch_size);
        assert!(toml::from_str::<Config>("no-such-key = 1").is_err());
    }
}
