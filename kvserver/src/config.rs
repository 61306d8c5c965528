//! Server-layer configuration.
//!
//! [`ServerConfig`] is what one `tinykv-server` process runs with. It comes from an optional TOML
//! file (kebab-case keys, unknown keys rejected), then every command-line flag that was given
//! ([`ServerArgs`]) overrides the file, then [`ServerConfig::validate`] checks the result. With
//! no file and no flags the defaults serve a single node on `127.0.0.1:20160` from
//! `./tinykv-data` — only `--standalone` is needed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::Parser;
use raft_core::config::EngineConfig;
use raftstore::network::NetworkConfig;
use raftstore::pd::PdConfig;
use raftstore::RaftstoreConfig;
use serde::{Deserialize, Serialize};

use crate::errors::{Error, Result};

/// Request limits enforced at the service boundary. A request over a limit gets a clear error and
/// changes nothing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct Limits {
    /// Largest key accepted, in bytes.
    pub max_key_size: usize,
    /// Largest total size of one write (value, or all keys and values of a batch), in bytes.
    /// Matches the largest Raft entry a region accepts.
    pub raft_entry_max_size: usize,
    /// Largest `limit` a scan may ask for.
    pub max_scan_limit: u32,
    /// Number of latch slots serializing commands on the same keys.
    pub latch_slots: usize,
    /// Commands one `BatchCommands` stream may have in flight; further requests wait (HTTP/2
    /// flow control holds the client back).
    pub max_batch_inflight: usize,
    /// Most answers one `BatchCommandsResponse` carries.
    pub max_batch_responses: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_size: 8 << 10,
            raft_entry_max_size: 8 << 20,
            // The same cap TiKV's clients use for raw scans.
            max_scan_limit: 10240,
            latch_slots: 2048,
            max_batch_inflight: 4096,
            max_batch_responses: 256,
        }
    }
}

impl Limits {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<()> {
        if self.max_key_size == 0 || self.max_key_size > self.raft_entry_max_size {
            return Err(Error::InvalidArgument(
                "max-key-size must be in 1..=raft-entry-max-size".into(),
            ));
        }
        if self.max_scan_limit == 0 || self.latch_slots == 0 {
            return Err(Error::InvalidArgument(
                "max-scan-limit and latch-slots must be positive".into(),
            ));
        }
        if self.max_batch_inflight == 0 || self.max_batch_responses == 0 {
            return Err(Error::InvalidArgument(
                "max-batch-inflight and max-batch-responses must be positive".into(),
            ));
        }
        Ok(())
    }
}

impl Limits {
    /// Limits small enough for tests to reach them cheaply.
    pub fn new_test_config() -> Self {
        Limits {
            max_key_size: 8 << 10,
            raft_entry_max_size: 1 << 20,
            max_scan_limit: 10240,
            latch_slots: 256,
            max_batch_inflight: 256,
            max_batch_responses: 16,
        }
    }
}

/// Default listen address: TiKV's port, loopback only so a bare start exposes nothing.
pub const DEFAULT_ADDR: &str = "127.0.0.1:20160";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "tinykv-data";

/// Everything one `tinykv-server` process runs with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct ServerConfig {
    /// Address the gRPC server listens on (`IP:port`; port 0 picks a free port).
    pub addr: String,
    /// Address clients and other stores are told to use (`host:port`); empty means `addr`.
    pub advertise_addr: String,
    /// Directory of this store's engines (`kv/`, and `raft/` in cluster mode). Created if missing.
    pub data_dir: PathBuf,
    /// Serve the raw API from this node alone, without a scheduler or replication.
    pub standalone: bool,
    /// Scheduler (PD) endpoints, `host:port`. Required in cluster mode.
    pub scheduler: Vec<String>,
    /// `tracing` filter: a level (`info`) or directives (`info,kvserver=debug`).
    pub log_filter: String,
    /// Seconds a shutdown waits for in-flight requests before closing connections anyway.
    pub shutdown_timeout_secs: u64,
    /// Cluster mode: seconds a request waits for its Raft command before the client is told to
    /// retry (`ServerIsBusy`).
    pub command_timeout_secs: u64,
    /// RocksDB tuning.
    pub rocksdb: EngineConfig,
    /// Request limits.
    pub limits: Limits,
    /// Cluster mode: the raft runtime (pools, ticks, log GC, region sizes, raft-rs settings).
    pub raftstore: RaftstoreConfig,
    /// Cluster mode: store-to-store messaging (queues, batching, snapshot transfers).
    pub network: NetworkConfig,
    /// Cluster mode: the scheduler client (timeouts, retries, heartbeat stream).
    pub pd: PdConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: DEFAULT_ADDR.into(),
            advertise_addr: String::new(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            standalone: false,
            scheduler: Vec::new(),
            log_filter: "info".into(),
            shutdown_timeout_secs: 10,
            command_timeout_secs: 10,
            rocksdb: EngineConfig::default(),
            limits: Limits::default(),
            raftstore: RaftstoreConfig::default(),
            network: NetworkConfig::default(),
            pd: PdConfig::default(),
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// Checks `addr` is `host:port` with a non-empty host and a port number.
fn validate_host_port(what: &str, addr: &str) -> Result<()> {
    let ok = match addr.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok(),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("{what} {addr:?} is not host:port")))
    }
}

impl ServerConfig {
    /// A standalone server on a free loopback port with small engines and limits. Tests set
    /// `data_dir` to a temporary directory.
    pub fn new_test_config() -> Self {
        ServerConfig {
            addr: "127.0.0.1:0".into(),
            standalone: true,
            log_filter: "warn".into(),
            shutdown_timeout_secs: 5,
            rocksdb: EngineConfig::new_test_config(),
            limits: Limits::new_test_config(),
            raftstore: RaftstoreConfig {
                // Not part of the server's config (its engines follow [rocksdb]).
                engine: EngineConfig::default(),
                ..RaftstoreConfig::new_test_config()
            },
            network: NetworkConfig::new_test_config(),
            pd: PdConfig::new_test_config(),
            ..Default::default()
        }
    }

    /// Reads a TOML config file; absent keys keep their defaults, unknown keys are an error.
    pub fn from_file(path: &Path) -> Result<ServerConfig> {
        Self::from_table(read_table(path)?, &path.display().to_string())
    }

    fn from_table(table: toml::Table, source: &str) -> Result<ServerConfig> {
        ServerConfig::deserialize(toml::Value::Table(table))
            .map_err(|e| invalid(format!("{source}: {e}")))
    }

    /// Builds the effective configuration: the file named by `--config` (or the defaults), then
    /// the `--set key=value` overrides, then every other flag given, then validation.
    pub fn load(args: &ServerArgs) -> Result<ServerConfig> {
        let mut table = match &args.config {
            Some(path) => read_table(path)?,
            None => toml::Table::new(),
        };
        for assignment in &args.set {
            apply_assignment(&mut table, assignment)?;
        }
        let source = match &args.config {
            Some(path) => format!("config ({} and --set)", path.display()),
            None => "config (--set)".to_owned(),
        };
        let mut cfg = Self::from_table(table, &source)?;
        args.apply_to(&mut cfg);
        cfg.validate()?;
        Ok(cfg)
    }

    /// The listen address, parsed.
    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.addr.parse().map_err(|_| {
            invalid(format!(
                "addr {:?} is not an IP:port socket address (e.g. {DEFAULT_ADDR})",
                self.addr
            ))
        })
    }

    /// The address to give clients and other stores.
    pub fn advertise_addr(&self) -> &str {
        if self.advertise_addr.is_empty() {
            &self.addr
        } else {
            &self.advertise_addr
        }
    }

    /// Checks every value is usable, with a message naming the option at fault.
    pub fn validate(&self) -> Result<()> {
        let listen = self.listen_addr()?;
        if !self.advertise_addr.is_empty() {
            validate_host_port("advertise-addr", &self.advertise_addr)?;
        }
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data-dir must not be empty"));
        }
        for addr in &self.scheduler {
            validate_host_port("scheduler address", addr)?;
        }
        if !self.standalone {
            if self.scheduler.is_empty() {
                return Err(invalid(
                    "cluster mode needs --scheduler <host:port>[,<host:port>...]; \
                     pass --standalone to serve a single node without a scheduler",
                ));
            }
            if self.advertise_addr.is_empty()
                && (listen.ip().is_unspecified() || listen.port() == 0)
            {
                return Err(invalid(format!(
                    "addr {} cannot be advertised to other stores; set advertise-addr",
                    self.addr
                )));
            }
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_filter)
            .map_err(|e| invalid(format!("log-filter {:?}: {e}", self.log_filter)))?;
        if self.shutdown_timeout_secs == 0 {
            return Err(invalid("shutdown-timeout-secs must be positive"));
        }
        self.rocksdb
            .validate()
            .map_err(|e| invalid(format!("[rocksdb] {e}")))?;
        self.limits.validate().map_err(|e| match e {
            Error::InvalidArgument(msg) => invalid(format!("[limits] {msg}")),
            other => other,
        })?;
        if self.command_timeout_secs == 0 {
            return Err(invalid("command-timeout-secs must be positive"));
        }
        self.raftstore
            .validate()
            .map_err(|e| invalid(format!("[raftstore] {e}")))?;
        self.network
            .validate()
            .map_err(|e| invalid(format!("[network] {e}")))?;
        self.pd
            .validate()
            .map_err(|e| invalid(format!("[pd] {e}")))?;
        Ok(())
    }
}

fn read_table(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(format!("cannot read config file {}: {e}", path.display())))?;
    text.parse::<toml::Table>()
        .map_err(|e| invalid(format!("config file {}: {e}", path.display())))
}

/// Applies one `--set section.key=value` to a config table. The value is read as TOML
/// (`100`, `true`, `"50ms"`, `[1, 2]`); anything that does not parse as TOML is a string, so
/// `--set raftstore.pd-heartbeat-tick-interval=5s` works without quotes.
fn apply_assignment(table: &mut toml::Table, assignment: &str) -> Result<()> {
    let (path, raw) = assignment
        .split_once('=')
        .ok_or_else(|| invalid(format!("--set {assignment:?}: expected key=value")))?;
    let keys: Vec<&str> = path.trim().split('.').map(str::trim).collect();
    if keys.iter().any(|k| k.is_empty()) {
        return Err(invalid(format!("--set {assignment:?}: empty key")));
    }
    let raw = raw.trim();
    let value = format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let (last, parents) = keys.split_last().expect("at least one key");
    let mut node = table;
    for key in parents {
        let entry = node
            .entry((*key).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        node = entry
            .as_table_mut()
            .ok_or_else(|| invalid(format!("--set {assignment:?}: {key} is not a section")))?;
    }
    node.insert((*last).to_owned(), value);
    Ok(())
}

/// Command-line flags of `tinykv-server`. Every option of [`ServerConfig`] has a flag; a flag
/// that is given overrides the config file.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "tinykv-server",
    version,
    about = "TinyKV store server: the tikvpb.Tikv gRPC API over RocksDB.",
    after_help = "Quick start: tinykv-server --standalone   (serves 127.0.0.1:20160 from ./tinykv-data)"
)]
pub struct ServerArgs {
    /// TOML config file (kebab-case keys, sections [rocksdb], [limits], [raftstore], [network], [pd]).
    #[arg(long, short = 'C', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Listen address, IP:port [default: 127.0.0.1:20160].
    #[arg(long, value_name = "IP:PORT")]
    pub addr: Option<String>,
    /// Address advertised to clients and other stores [default: the listen address].
    #[arg(long, value_name = "HOST:PORT")]
    pub advertise_addr: Option<String>,
    /// Data directory [default: ./tinykv-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve the raw API from this node alone (no scheduler, no replication).
    #[arg(long)]
    pub standalone: bool,
    /// Scheduler (PD) endpoints for cluster mode, comma-separated.
    #[arg(long, value_name = "HOST:PORT", value_delimiter = ',')]
    pub scheduler: Vec<String>,
    /// Log filter: a level or tracing directives [default: info].
    #[arg(long, alias = "log-level", value_name = "FILTER", env = "RUST_LOG")]
    pub log_filter: Option<String>,
    /// Seconds shutdown waits for in-flight requests [default: 10].
    #[arg(long, value_name = "SECS")]
    pub shutdown_timeout_secs: Option<u64>,

    /// [rocksdb] block-cache-size, bytes.
    #[arg(long, value_name = "BYTES", help_heading = "RocksDB")]
    pub rocksdb_block_cache_size: Option<u64>,
    /// [rocksdb] write-buffer-size, bytes.
    #[arg(long, value_name = "BYTES", help_heading = "RocksDB")]
    pub rocksdb_write_buffer_size: Option<u64>,
    /// [rocksdb] max-background-jobs.
    #[arg(long, value_name = "N", help_heading = "RocksDB")]
    pub rocksdb_max_background_jobs: Option<i32>,
    /// [rocksdb] max-total-wal-size, bytes.
    #[arg(long, value_name = "BYTES", help_heading = "RocksDB")]
    pub rocksdb_max_total_wal_size: Option<u64>,
    /// [rocksdb] target-file-size-base, bytes.
    #[arg(long, value_name = "BYTES", help_heading = "RocksDB")]
    pub rocksdb_target_file_size_base: Option<u64>,

    /// [limits] max-key-size, bytes.
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    pub max_key_size: Option<usize>,
    /// [limits] raft-entry-max-size, bytes: the largest single write.
    #[arg(long, value_name = "BYTES", help_heading = "Limits")]
    pub raft_entry_max_size: Option<usize>,
    /// [limits] max-scan-limit: the largest `limit` a scan may ask for.
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub max_scan_limit: Option<u32>,
    /// [limits] latch-slots.
    #[arg(long, value_name = "N", help_heading = "Limits")]
    pub latch_slots: Option<usize>,

    /// Sets any config option, including nested ones, e.g.
    /// `--set raftstore.raft-log-gc-count-limit=1000` or `--set pd.retry-timeout=30s`.
    /// Repeatable; applied over the config file and before the other flags.
    #[arg(long = "set", value_name = "KEY=VALUE", help_heading = "Any option")]
    pub set: Vec<String>,
    /// Cluster mode: seconds a request waits for its Raft command before the client retries.
    #[arg(long, value_name = "SECS")]
    pub command_timeout_secs: Option<u64>,
}

impl ServerArgs {
    /// Overrides `cfg` with every flag that was given.
    pub fn apply_to(&self, cfg: &mut ServerConfig) {
        fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
            if let Some(v) = flag {
                *field = v.clone();
            }
        }
        set(&mut cfg.addr, &self.addr);
        set(&mut cfg.advertise_addr, &self.advertise_addr);
        set(&mut cfg.data_dir, &self.data_dir);
        // A boolean flag can only switch the mode on; the file may also set it.
        cfg.standalone |= self.standalone;
        if !self.scheduler.is_empty() {
            cfg.scheduler = self.scheduler.clone();
        }
        set(&mut cfg.log_filter, &self.log_filter);
        set(&mut cfg.shutdown_timeout_secs, &self.shutdown_timeout_secs);
        set(&mut cfg.command_timeout_secs, &self.command_timeout_secs);

        let db = &mut cfg.rocksdb;
        set(&mut db.block_cache_size, &self.rocksdb_block_cache_size);
        set(&mut db.write_buffer_size, &self.rocksdb_write_buffer_size);
        set(
            &mut db.max_background_jobs,
            &self.rocksdb_max_background_jobs,
        );
        set(&mut db.max_total_wal_size, &self.rocksdb_max_total_wal_size);
        set(
            &mut db.target_file_size_base,
            &self.rocksdb_target_file_size_base,
        );

        let limits = &mut cfg.limits;
        set(&mut limits.max_key_size, &self.max_key_size);
        set(&mut limits.raft_entry_max_size, &self.raft_entry_max_size);
        set(&mut limits.max_scan_limit, &self.max_scan_limit);
        set(&mut limits.latch_slots, &self.latch_slots);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> ServerArgs {
        ServerArgs::try_parse_from(std::iter::once("tinykv-server").chain(argv.iter().copied()))
            .unwrap()
    }

    #[test]
    fn set_flag_reaches_nested_options() {
        let cfg = ServerConfig::load(&args(&[
            "--scheduler",
            "127.0.0.1:2379",
            "--set",
            "raftstore.raft-log-gc-count-limit=1234",
            "--set",
            "raftstore.pd-heartbeat-tick-interval=5s",
            "--set",
            "limits.max-scan-limit = 99",
            "--max-scan-limit",
            "77",
        ]))
        .unwrap();
        assert_eq!(cfg.raftstore.raft_log_gc_count_limit, 1234);
        assert_eq!(
            cfg.raftstore.pd_heartbeat_tick_interval,
            std::time::Duration::from_secs(5)
        );
        // Explicit flags win over --set.
        assert_eq!(cfg.limits.max_scan_limit, 77);

        for bad in ["nokey", "raftstore.no-such-option=1", "addr.x=1", ".x=1"] {
            let err = ServerConfig::load(&args(&["--standalone", "--set", bad]));
            assert!(err.is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn defaults_validate_in_standalone_mode_only() {
        let standalone = ServerConfig {
            standalone: true,
            ..Default::default()
        };
        standalone.validate().unwrap();
        ServerConfig::new_test_config().validate().unwrap();
        Limits::new_test_config().validate().unwrap();

        let err = ServerConfig::default().validate().unwrap_err().to_string();
        assert!(
            err.contains("--scheduler") && err.contains("--standalone"),
            "{err}"
        );
        let cluster = ServerConfig {
            scheduler: vec!["127.0.0.1:2379".into()],
            ..Default::default()
        };
        cluster.validate().unwrap();
    }

    #[test]
    fn each_bad_value_is_named() {
        let base = ServerConfig::new_test_config();
        let cases: Vec<(ServerConfig, &str)> = vec![
            (
                ServerConfig {
                    addr: "localhost".into(),
                    ..base.clone()
                },
                "addr",
            ),
            (
                ServerConfig {
                    advertise_addr: "nohostport".into(),
                    ..base.clone()
                },
                "advertise-addr",
            ),
            (
                ServerConfig {
                    data_dir: PathBuf::new(),
                    ..base.clone()
                },
                "data-dir",
            ),
            (
                ServerConfig {
                    scheduler: vec![":2379".into()],
                    ..base.clone()
                },
                "scheduler",
            ),
            (
                ServerConfig {
                    log_filter: "info,[".into(),
                    ..base.clone()
                },
                "log-filter",
            ),
            (
                ServerConfig {
                    shutdown_timeout_secs: 0,
                    ..base.clone()
                },
                "shutdown-timeout-secs",
            ),
            (
                ServerConfig {
                    rocksdb: EngineConfig {
                        max_background_jobs: 0,
                        ..Default::default()
                    },
                    ..base.clone()
                },
                "[rocksdb]",
            ),
            (
                ServerConfig {
                    limits: Limits {
                        max_scan_limit: 0,
                        ..Default::default()
                    },
                    ..base.clone()
                },
                "[limits]",
            ),
            (
                ServerConfig {
                    standalone: false,
                    scheduler: vec!["pd:2379".into()],
                    addr: "0.0.0.0:20160".into(),
                    ..base.clone()
                },
                "advertise-addr",
            ),
        ];
        for (cfg, needle) in cases {
            let err = cfg.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tinykv.toml");
        std::fs::write(
            &path,
            "addr = \"127.0.0.1:3000\"\nstandalone = true\n\n[rocksdb]\nwrite-buffer-size = 2097152\n\n[limits]\nmax-scan-limit = 100\n",
        )
        .unwrap();
        let path_arg = path.to_str().unwrap();

        let from_file = ServerConfig::load(&args(&["--config", path_arg])).unwrap();
        assert_eq!(from_file.addr, "127.0.0.1:3000");
        assert!(from_file.standalone);
        assert_eq!(from_file.rocksdb.write_buffer_size, 2 << 20);
        assert_eq!(from_file.limits.max_scan_limit, 100);
        assert_eq!(
            from_file.limits.max_key_size,
            Limits::default().max_key_size
        );

        let overridden = ServerConfig::load(&args(&[
            "-C",
            path_arg,
            "--addr",
            "127.0.0.1:4000",
            "--max-scan-limit",
            "7",
            "--rocksdb-write-buffer-size",
            "3145728",
            "--scheduler",
            "a:1,b:2",
            "--data-dir",
            "/tmp/x",
        ]))
        .unwrap();
        assert_eq!(overridden.addr, "127.0.0.1:4000");
        assert_eq!(overridden.limits.max_scan_limit, 7);
        assert_eq!(overridden.rocksdb.write_buffer_size, 3 << 20);
        assert_eq!(
            overridden.scheduler,
            vec!["a:1".to_string(), "b:2".to_string()]
        );
        assert_eq!(overridden.data_dir, PathBuf::from("/tmp/x"));
        assert!(overridden.standalone);
    }

    #[test]
    fn config_files_are_strict_and_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "standalone = true\nno-such-option = 1\n").unwrap();
        let err = ServerConfig::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("no-such-option") && err.contains("bad.toml"),
            "{err}"
        );
        let err = ServerConfig::from_file(&dir.path().join("missing.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read config file"), "{err}");

        // `--print-config` output is itself a valid config file.
        let cfg = ServerConfig::new_test_config();
        let text = toml::to_string(&cfg).unwrap();
        assert_eq!(toml::from_str::<ServerConfig>(&text).unwrap(), cfg);
    }

    #[test]
    fn advertise_addr_falls_back_to_addr() {
        let mut cfg = ServerConfig::new_test_config();
        assert_eq!(cfg.advertise_addr(), "127.0.0.1:0");
        cfg.advertise_addr = "store1:20160".into();
        assert_eq!(cfg.advertise_addr(), "store1:20160");
    }
}
