//! What a benchmark runs: the workload (key space, operation mix, key choice), how it is driven
//! (clients, stop condition) and, for `compare`, the clusters it starts.
//!
//! Every struct has `Default`, `validate()` and `new_test_config()`, and serializes into the
//! JSON results so a number can always be traced back to the settings that produced it.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};
use crate::workload::keys::MIN_KEY_SIZE;

/// How a key is chosen among the records that exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Distribution {
    /// Every record equally likely.
    Uniform,
    /// YCSB's scrambled zipfian: a few hot records, spread over the key space.
    Zipfian,
    /// Zipfian over recency: the most recently inserted records are the hottest.
    Latest,
}

/// How record ids map to key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum KeyOrder {
    /// Ids pass through a bijective mix first (YCSB's default `insertorder=hashed`): consecutive
    /// inserts land all over the key space.
    Hashed,
    /// Keys sort in id order: inserts always append at the end of the key space.
    Ordered,
}

/// The YCSB core workloads, plus the single-operation workloads of the etcd comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Preset {
    /// 50 % reads, 50 % updates, zipfian (update heavy).
    A,
    /// 95 % reads, 5 % updates, zipfian (read mostly).
    B,
    /// 100 % reads, zipfian (read only).
    C,
    /// 95 % reads, 5 % inserts, latest (read latest).
    D,
    /// 95 % short scans, 5 % inserts, zipfian (short ranges).
    E,
    /// 50 % reads, 50 % read-modify-writes, zipfian.
    F,
    /// 100 % updates of existing records, uniform (the comparison's "put").
    Put,
    /// 100 % reads of existing records, uniform (the comparison's "get").
    Get,
}

impl Preset {
    /// The workload this preset stands for, with the default key space.
    pub fn workload(self) -> WorkloadConfig {
        let base = WorkloadConfig::default();
        let mix = |read, update, insert, scan, rmw, distribution| WorkloadConfig {
            read_proportion: read,
            update_proportion: update,
            insert_proportion: insert,
            scan_proportion: scan,
            read_modify_write_proportion: rmw,
            distribution,
            ..base.clone()
        };
        use Distribution::*;
        match self {
            Preset::A => mix(0.5, 0.5, 0.0, 0.0, 0.0, Zipfian),
            Preset::B => mix(0.95, 0.05, 0.0, 0.0, 0.0, Zipfian),
            Preset::C => mix(1.0, 0.0, 0.0, 0.0, 0.0, Zipfian),
            Preset::D => mix(0.95, 0.0, 0.05, 0.0, 0.0, Latest),
            Preset::E => mix(0.0, 0.0, 0.05, 0.95, 0.0, Zipfian),
            Preset::F => mix(0.5, 0.0, 0.0, 0.0, 0.5, Zipfian),
            Preset::Put => mix(0.0, 1.0, 0.0, 0.0, 0.0, Uniform),
            Preset::Get => mix(1.0, 0.0, 0.0, 0.0, 0.0, Uniform),
        }
    }
}

/// The data set and the operation mix. Proportions are weights: they are normalized by their
/// sum, as YCSB does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkloadConfig {
    /// Records written by the load phase (ids `0..record_count`).
    pub record_count: u64,
    /// Bytes per key (`user` + hex digits, zero padded).
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Weight of point reads.
    pub read_proportion: f64,
    /// Weight of overwrites of existing records.
    pub update_proportion: f64,
    /// Weight of inserts of new records (ids from `record_count` on).
    pub insert_proportion: f64,
    /// Weight of short forward scans.
    pub scan_proportion: f64,
    /// Weight of read-then-write of one record.
    pub read_modify_write_proportion: f64,
    /// How reads, updates, scans and read-modify-writes pick their record.
    pub distribution: Distribution,
    /// Zipfian skew (YCSB's `zipfianconstant`); larger is more skewed.
    pub zipf_theta: f64,
    /// Scans read `1..=max_scan_length` records (uniform).
    pub max_scan_length: u32,
    /// Whether keys follow id order or a hashed order.
    pub key_order: KeyOrder,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            record_count: 10_000,
            // The sizes of the perf anchors (etcd measured on this kind of machine).
            key_size: 16,
            value_size: 128,
            read_proportion: 0.5,
            update_proportion: 0.5,
            insert_proportion: 0.0,
            scan_proportion: 0.0,
            read_modify_write_proportion: 0.0,
            distribution: Distribution::Zipfian,
            zipf_theta: 0.99,
            max_scan_length: 100,
            key_order: KeyOrder::Hashed,
        }
    }
}

impl WorkloadConfig {
    /// A small data set for tests.
    pub fn new_test_config() -> Self {
        WorkloadConfig {
            record_count: 100,
            value_size: 16,
            max_scan_length: 10,
            ..Default::default()
        }
    }

    /// The operation weights in a fixed order: read, update, insert, scan, read-modify-write.
    pub fn proportions(&self) -> [f64; 5] {
        [
            self.read_proportion,
            self.update_proportion,
            self.insert_proportion,
            self.scan_proportion,
            self.read_modify_write_proportion,
        ]
    }

    /// Checks every value is usable, naming the option at fault.
    pub fn validate(&self) -> Result<()> {
        if self.record_count == 0 {
            return Err(Error::config("record-count must be at least 1"));
        }
        if self.key_size < MIN_KEY_SIZE {
            return Err(Error::config(format!(
                "key-size must be at least {MIN_KEY_SIZE} bytes"
            )));
        }
        let capacity =
            crate::workload::keys::KeySpace::new(self.key_size, self.key_order)?.capacity();
        if self.record_count > capacity / 2 {
            return Err(Error::config(format!(
                "record-count {} leaves no room for inserts in {}-byte keys (at most {})",
                self.record_count,
                self.key_size,
                capacity / 2
            )));
        }
        if self.value_size == 0 {
            return Err(Error::config("value-size must be at least 1 byte"));
        }
        let names = ["read", "update", "insert", "scan", "read-modify-write"];
        for (name, p) in names.iter().zip(self.proportions()) {
            if !(p.is_finite() && p >= 0.0) {
                return Err(Error::config(format!(
                    "{name}-proportion must be a non-negative number, got {p}"
                )));
            }
        }
        if self.proportions().iter().sum::<f64>() <= 0.0 {
            return Err(Error::config(
                "at least one operation proportion must be positive",
            ));
        }
        if !(self.zipf_theta.is_finite() && self.zipf_theta > 0.0) {
            return Err(Error::config("zipf-theta must be positive"));
        }
        if self.scan_proportion > 0.0 && self.max_scan_length == 0 {
            return Err(Error::config(
                "max-scan-length must be at least 1 when scanning",
            ));
        }
        Ok(())
    }
}

/// When the run phase ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// After this long (measured from the end of the warm-up).
    #[serde(with = "humantime_serde")]
    Duration(Duration),
    /// After this many operations (warm-up operations not counted).
    Operations(u64),
}

/// How the workload is driven.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunConfig {
    /// Closed-loop clients: each waits for its operation before issuing the next.
    pub concurrency: usize,
    /// Independent client instances (connections); client `i` uses instance `i % connections`.
    pub connections: usize,
    /// When the measured part of the run phase ends.
    pub stop: Stop,
    /// Unmeasured time before measuring starts (connections, caches, leader leases).
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// Seed of every random choice; client `i` uses a stream derived from it.
    pub seed: u64,
    /// Records written per request in the load phase.
    pub load_batch_size: usize,
    /// Times a transaction that hit a write conflict or a lock is retried from the start.
    pub txn_retries: u32,
    /// Fraction of failed operations above which the run counts as failed.
    pub max_error_ratio: f64,
    /// Per-request deadline of the clients.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            concurrency: 64,
            connections: 1,
            stop: Stop::Duration(Duration::from_secs(30)),
            warmup: Duration::from_secs(2),
            seed: 0x7469_6e79_6b76,
            load_batch_size: 100,
            txn_retries: 3,
            max_error_ratio: 0.01,
            request_timeout: Duration::from_secs(5),
        }
    }
}

impl RunConfig {
    /// A short run for tests.
    pub fn new_test_config() -> Self {
        RunConfig {
            concurrency: 4,
            stop: Stop::Operations(200),
            warmup: Duration::ZERO,
            load_batch_size: 16,
            ..Default::default()
        }
    }

    /// Checks every value is usable, naming the option at fault.
    pub fn validate(&self) -> Result<()> {
        if self.concurrency == 0 {
            return Err(Error::config("concurrency must be at least 1"));
        }
        if self.connections == 0 || self.connections > self.concurrency {
            return Err(Error::config("connections must be in 1..=concurrency"));
        }
        match self.stop {
            Stop::Duration(d) if d.is_zero() => {
                return Err(Error::config("duration must be positive"))
            }
            Stop::Operations(0) => return Err(Error::config("operations must be at least 1")),
            _ => {}
        }
        // etcd refuses transactions of more than 128 operations by default.
        if self.load_batch_size == 0 || self.load_batch_size > 128 {
            return Err(Error::config("load-batch-size must be in 1..=128"));
        }
        if !(0.0..=1.0).contains(&self.max_error_ratio) {
            return Err(Error::config("max-error-ratio must be in 0..=1"));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::config("request-timeout must be positive"));
        }
        Ok(())
    }
}

/// The system a run talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum TargetKind {
    /// TinyKV's raw API (RawGet, RawPut, RawScan, RawBatchPut).
    TinykvRaw,
    /// TinyKV transactions (Percolator: TSO, prewrite, commit); reads at a fresh timestamp.
    TinykvTxn,
    /// etcd's KV API (Range, Put, Txn).
    Etcd,
}

impl TargetKind {
    /// The system, without the mode: `tinykv` or `etcd`.
    pub fn system(self) -> &'static str {
        match self {
            TargetKind::TinykvRaw | TargetKind::TinykvTxn => "tinykv",
            TargetKind::Etcd => "etcd",
        }
    }
}

/// How etcd serves reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdRead {
    /// Confirmed with the leader (ReadIndex) before answering: the default, and what TinyKV's
    /// raw get offers.
    Linearizable,
    /// Answered from the member's local state, possibly stale.
    Serializable,
}

/// Which etcd members the clients talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EtcdConnect {
    /// Only the leader (found through the given endpoints when connecting): no follower
    /// forwarding of writes. etcd's best case, and what TinyKV's client does (it sends every
    /// request to the region leader).
    Leader,
    /// All given endpoints, balanced (etcd's `benchmark --endpoints=<all members>`).
    All,
}

/// Where the clients connect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct TargetConfig {
    /// Which system and API.
    pub kind: TargetKind,
    /// Scheduler (PD) endpoints, `host:port`, for the TinyKV targets.
    pub pd_endpoints: Vec<String>,
    /// etcd client endpoints, `host:port`.
    pub etcd_endpoints: Vec<String>,
    /// etcd read mode.
    pub etcd_read: EtcdRead,
    /// Which etcd members to talk to.
    pub etcd_connect: EtcdConnect,
}

impl Default for TargetConfig {
    fn default() -> Self {
        TargetConfig {
            kind: TargetKind::TinykvRaw,
            pd_endpoints: vec!["127.0.0.1:2379".into()],
            etcd_endpoints: vec!["127.0.0.1:2379".into()],
            etcd_read: EtcdRead::Linearizable,
            etcd_connect: EtcdConnect::Leader,
        }
    }
}

impl TargetConfig {
    /// An etcd target on the default local port.
    pub fn new_test_config() -> Self {
        TargetConfig {
            kind: TargetKind::Etcd,
            ..Default::default()
        }
    }

    /// Checks the endpoints the chosen target needs are given and well formed.
    pub fn validate(&self) -> Result<()> {
        let (what, endpoints) = match self.kind {
            TargetKind::TinykvRaw | TargetKind::TinykvTxn => ("pd", &self.pd_endpoints),
            TargetKind::Etcd => ("etcd", &self.etcd_endpoints),
        };
        if endpoints.is_empty() {
            return Err(Error::config(format!(
                "--{what} needs at least one endpoint"
            )));
        }
        for e in endpoints {
            validate_host_port(e)
                .map_err(|reason| Error::config(format!("{what} endpoint {e:?}: {reason}")))?;
        }
        Ok(())
    }
}

/// Checks `addr` is `host:port` (no scheme: the clients add it).
pub fn validate_host_port(addr: &str) -> std::result::Result<(), &'static str> {
    if addr.contains("://") {
        return Err("give host:port without a scheme");
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => {
            Ok(())
        }
        _ => Err("not host:port"),
    }
}

/// Which systems `compare` benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// A 3-member etcd cluster.
    Etcd,
    /// A scheduler and 3 TinyKV stores.
    Tinykv,
}

/// The side-by-side comparison: clusters to start and the shared workload settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct CompareConfig {
    /// Systems to benchmark, in this order.
    pub systems: Vec<System>,
    /// Measured time of each run.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Unmeasured warm-up of each run.
    #[serde(with = "humantime_serde")]
    pub warmup: Duration,
    /// Records loaded before each run.
    pub record_count: u64,
    /// Bytes per key.
    pub key_size: usize,
    /// Bytes per value.
    pub value_size: usize,
    /// Client instances (connections) per run.
    pub connections: usize,
    /// Which etcd members the clients talk to.
    pub etcd_connect: EtcdConnect,
    /// Where JSON results and the chart are written.
    pub out_dir: PathBuf,
    /// Where the clusters' data directories and logs live (one fresh subdirectory per run).
    pub work_dir: PathBuf,
    /// Keep data directories and logs after each run (they are removed by default).
    pub keep_data: bool,
    /// The `etcd` executable.
    pub etcd_bin: PathBuf,
    /// The `tinykv-server` executable.
    pub tinykv_server_bin: PathBuf,
    /// The `tinyscheduler-server` executable.
    pub scheduler_bin: PathBuf,
    /// First of the loopback ports the clusters use (etcd: base..base+6, TinyKV: base+10..+13);
    /// if any of the 20 ports from here is busy, the next free block of 20 is used.
    pub base_port: u16,
    /// How long a cluster may take to become ready.
    #[serde(with = "humantime_serde")]
    pub ready_timeout: Duration,
    /// Replicas TinyKV must have for the test region before a run starts.
    pub replicas: usize,
}

impl Default for CompareConfig {
    fn default() -> Self {
        CompareConfig {
            systems: vec![System::Etcd, System::Tinykv],
            duration: Duration::from_secs(20),
            warmup: Duration::from_secs(2),
            record_count: 10_000,
            key_size: 16,
            value_size: 128,
            connections: 1,
            etcd_connect: EtcdConnect::Leader,
            out_dir: PathBuf::from("results"),
            work_dir: std::env::temp_dir().join("tinykv-bench-compare"),
            keep_data: false,
            etcd_bin: PathBuf::from("etcd"),
            tinykv_server_bin: PathBuf::from("tinykv-server"),
            scheduler_bin: PathBuf::from("tinyscheduler-server"),
            // Below Linux's ephemeral range (32768+), so outgoing connections never hold them.
            base_port: 27490,
            ready_timeout: Duration::from_secs(90),
            replicas: 3,
        }
    }
}

impl CompareConfig {
    /// Very short runs over a tiny data set, for tests of the orchestration.
    pub fn new_test_config() -> Self {
        CompareConfig {
            duration: Duration::from_secs(1),
            warmup: Duration::ZERO,
            record_count: 100,
            ready_timeout: Duration::from_secs(30),
            ..Default::default()
        }
    }

    /// Checks every value is usable, naming the option at fault.
    pub fn validate(&self) -> Result<()> {
        if self.systems.is_empty() {
            return Err(Error::config("systems must name at least one system"));
        }
        if self.duration.is_zero() {
            return Err(Error::config("duration must be positive"));
        }
        if self.ready_timeout.is_zero() {
            return Err(Error::config("ready-timeout must be positive"));
        }
        if self.replicas == 0 || self.replicas > 3 {
            return Err(Error::config(
                "replicas must be in 1..=3 (the cluster has 3 stores)",
            ));
        }
        if u32::from(self.base_port) + 20 > u32::from(u16::MAX) || self.base_port < 1024 {
            return Err(Error::config("base-port must be in 1024..=65515"));
        }
        if self.connections == 0 {
            return Err(Error::config("connections must be at least 1"));
        }
        WorkloadConfig {
            record_count: self.record_count,
            key_size: self.key_size,
            value_size: self.value_size,
            ..Default::default()
        }
        .validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_test_configs_validate() {
        WorkloadConfig::default().validate().unwrap();
        WorkloadConfig::new_test_config().validate().unwrap();
        RunConfig::default().validate().unwrap();
        RunConfig::new_test_config().validate().unwrap();
        TargetConfig::default().validate().unwrap();
        TargetConfig::new_test_config().validate().unwrap();
        CompareConfig::default().validate().unwrap();
        CompareConfig::new_test_config().validate().unwrap();
        for preset in [
            Preset::A,
            Preset::B,
            Preset::C,
            Preset::D,
            Preset::E,
            Preset::F,
            Preset::Put,
            Preset::Get,
        ] {
            preset.workload().validate().unwrap();
        }
    }

    #[test]
    fn each_bad_value_is_named() {
        let w = WorkloadConfig::new_test_config();
        let cases: Vec<(WorkloadConfig, &str)> = vec![
            (
                WorkloadConfig {
                    record_count: 0,
                    ..w.clone()
                },
                "record-count",
            ),
            (
                WorkloadConfig {
                    key_size: 5,
                    ..w.clone()
                },
                "key-size",
            ),
            (
                WorkloadConfig {
                    value_size: 0,
                    ..w.clone()
                },
                "value-size",
            ),
            (
                WorkloadConfig {
                    read_proportion: -1.0,
                    ..w.clone()
                },
                "read-proportion",
            ),
            (
                WorkloadConfig {
                    scan_proportion: f64::NAN,
                    ..w.clone()
                },
                "scan-proportion",
            ),
            (
                WorkloadConfig {
                    read_proportion: 0.0,
                    update_proportion: 0.0,
                    ..w.clone()
                },
                "at least one",
            ),
            (
                WorkloadConfig {
                    zipf_theta: 0.0,
                    ..w.clone()
                },
                "zipf-theta",
            ),
            (
                WorkloadConfig {
                    scan_proportion: 1.0,
                    max_scan_length: 0,
                    ..w.clone()
                },
                "max-scan-length",
            ),
            (
                WorkloadConfig {
                    key_size: 12,
                    record_count: u64::from(u32::MAX),
                    ..w.clone()
                },
                "no room",
            ),
        ];
        for (cfg, needle) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }

        let r = RunConfig::new_test_config();
        let cases: Vec<(RunConfig, &str)> = vec![
            (
                RunConfig {
                    concurrency: 0,
                    ..r.clone()
                },
                "concurrency",
            ),
            (
                RunConfig {
                    connections: 5,
                    ..r.clone()
                },
                "connections",
            ),
            (
                RunConfig {
                    stop: Stop::Operations(0),
                    ..r.clone()
                },
                "operations",
            ),
            (
                RunConfig {
                    stop: Stop::Duration(Duration::ZERO),
                    ..r.clone()
                },
                "duration",
            ),
            (
                RunConfig {
                    load_batch_size: 129,
                    ..r.clone()
                },
                "load-batch-size",
            ),
            (
                RunConfig {
                    max_error_ratio: 2.0,
                    ..r.clone()
                },
                "max-error-ratio",
            ),
            (
                RunConfig {
                    request_timeout: Duration::ZERO,
                    ..r.clone()
                },
                "request-timeout",
            ),
        ];
        for (cfg, needle) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }

        let t = TargetConfig {
            kind: TargetKind::TinykvRaw,
            pd_endpoints: vec!["http://127.0.0.1:2379".into()],
            ..Default::default()
        };
        assert!(t.validate().unwrap_err().to_string().contains("scheme"));
        let t = TargetConfig {
            kind: TargetKind::Etcd,
            etcd_endpoints: vec![],
            ..Default::default()
        };
        assert!(t.validate().unwrap_err().to_string().contains("--etcd"));
        assert!(validate_host_port("127.0.0.1:0").is_err());
        assert!(validate_host_port("localhost:2379").is_ok());
    }

    #[test]
    fn presets_match_ycsb_core_workloads() {
        let a = Preset::A.workload();
        assert_eq!(a.proportions(), [0.5, 0.5, 0.0, 0.0, 0.0]);
        assert_eq!(a.distribution, Distribution::Zipfian);
        let d = Preset::D.workload();
        assert_eq!(d.proportions(), [0.95, 0.0, 0.05, 0.0, 0.0]);
        assert_eq!(d.distribution, Distribution::Latest);
        let e = Preset::E.workload();
        assert_eq!(e.proportions(), [0.0, 0.0, 0.05, 0.95, 0.0]);
        let f = Preset::F.workload();
        assert_eq!(f.proportions(), [0.5, 0.0, 0.0, 0.0, 0.5]);
        assert_eq!(Preset::Put.workload().distribution, Distribution::Uniform);
    }

    #[test]
    fn configs_round_trip_through_json() {
        let run = RunConfig::default();
        let text = serde_json::to_string(&run).unwrap();
        assert!(text.contains("\"stop\":{\"duration\":\"30s\"}"), "{text}");
        assert_eq!(serde_json::from_str::<RunConfig>(&text).unwrap(), run);
        let cmp = CompareConfig::default();
        let text = serde_json::to_string(&cmp).unwrap();
        assert_eq!(serde_json::from_str::<CompareConfig>(&text).unwrap(), cmp);
    }
}
