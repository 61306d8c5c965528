//! The backend every SQL test binary runs against, chosen once per process.
//!
//! - default: a real cluster of its own — one `tinyscheduler-server` and three `tinykv-server`
//!   processes started once per test binary (see [`cluster`]), pre-split along the binary's
//!   [`SplitPlan`] so that its tests spread over many regions and chosen tables span several;
//! - `TINYKV_SQL_TEST_PD=host:port[,host:port]`: a running cluster reached through its scheduler
//!   (a playground, say), used as it is: no splits;
//! - `TINYKV_SQL_TEST_BACKEND=memory`: the in-process [`MemoryBackend`] (Percolator semantics,
//!   no processes; the fast run of `make sql-memory`).
//!
//! Each test gets its own namespace (keyspace prefix), made unique per process so that runs
//! against a long-lived cluster never see each other's tables. Every test binary defines
//! `SPLIT_PLAN` at its root: where its namespaces and tables are cut into regions.

#![allow(dead_code)]

mod cluster;
mod split;

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tinykv_sql::gluesql_core::data::Key;
use tinykv_sql::keys::KeySpace;
use tinykv_sql::{ClusterBackend, Config, KvBackend, MemoryBackend, Session, SqlStorage};

/// Selects the backend: `cluster` (the default) or `memory`.
pub const BACKEND_ENV: &str = "TINYKV_SQL_TEST_BACKEND";
/// Points the suites at a running cluster's scheduler instead of starting one.
pub const PD_ENV: &str = "TINYKV_SQL_TEST_PD";

/// Where one test binary's key space is cut into regions (applied to its own cluster only).
///
/// Keys are the binary's namespaces as [`config`] makes them, so every split falls inside this
/// run's key space. Split keys need not exist: a region simply starts there.
pub struct SplitPlan {
    /// Namespaces (test names) at which a region starts: the binary's tests, in name order,
    /// spread over `namespace_starts.len() + 1` regions.
    pub namespace_starts: &'static [&'static str],
    /// Namespaces whose tables span regions, each with the integer primary keys at which its
    /// first table's rows are cut. Every such namespace gets region boundaries at: the start
    /// of table 1 (schemas apart from data), the start of table 1's rows (its index entries
    /// apart), each listed key, the end of the rows (its UNIQUE guards apart), and the starts
    /// of tables 2 and 3 (the next tables created, each in its own region).
    pub tables: &'static [(&'static str, &'static [i64])],
}

impl SplitPlan {
    /// The plan's split points as transactional user keys, sorted and deduplicated.
    pub fn user_keys(&self) -> Vec<Vec<u8>> {
        let mut keys: Vec<Vec<u8>> = self
            .namespace_starts
            .iter()
            .map(|ns| keyspace(ns).all().0)
            .collect();
        for (ns, row_splits) in self.tables {
            let ks = keyspace(ns);
            keys.push(ks.table(1).0);
            let (rows_start, rows_end) = ks.rows(1);
            keys.push(rows_start);
            for &pk in row_splits.iter() {
                let pk = Key::I64(pk)
                    .to_cmp_be_bytes()
                    .expect("integers always have an order-preserving encoding");
                keys.push(ks.row(1, &pk));
            }
            keys.push(rows_end);
            keys.push(ks.table(2).0);
            keys.push(ks.table(3).0);
        }
        keys.sort();
        keys.dedup();
        keys
    }
}

/// What the tests of this process run against.
enum Target {
    /// A cluster started by (and dying with) this process.
    Own(cluster::Running),
    /// A cluster someone else runs.
    External(Vec<String>),
    Memory,
}

struct Shared {
    target: Target,
    backend: Arc<dyn KvBackend>,
}

/// The backend of this process, set up on first use; every test of a binary shares it. A
/// failed setup fails every test that needs it, with the reason.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let target = match (std::env::var(PD_ENV), std::env::var(BACKEND_ENV).as_deref()) {
            (_, Ok("memory")) => Target::Memory,
            (Ok(pd), _) => Target::External(pd.split(',').map(str::to_owned).collect()),
            (Err(_), Ok("cluster") | Err(_)) => {
                Target::Own(cluster::start(crate::SPLIT_PLAN.user_keys())?)
            }
            (Err(_), Ok(other)) => {
                return Err(format!(
                    "{BACKEND_ENV}={other}: expected `cluster` or `memory`"
                ))
            }
        };
        let backend: Arc<dyn KvBackend> = match &target {
            Target::Memory => Arc::new(MemoryBackend::new()),
            Target::Own(_) | Target::External(_) => {
                let endpoints = pd_endpoints_of(&target).expect("a cluster target");
                let config = Config {
                    pd_endpoints: endpoints.clone(),
                    ..Config::new_test_config()
                };
                let backend = ClusterBackend::connect(&config)
                    .map_err(|e| format!("cannot reach the cluster at {endpoints:?}: {e}"))?;
                Arc::new(backend)
            }
        };
        Ok(Shared { target, backend })
    });
    match shared {
        Ok(shared) => shared,
        Err(reason) => panic!("no SQL test backend: {reason}"),
    }
}

fn pd_endpoints_of(target: &Target) -> Option<Vec<String>> {
    match target {
        Target::Own(running) => Some(vec![running.pd.clone()]),
        Target::External(endpoints) => Some(endpoints.clone()),
        Target::Memory => None,
    }
}

/// The shared backend of this test process.
pub fn backend() -> Arc<dyn KvBackend> {
    shared().backend.clone()
}

/// The scheduler endpoints when the tests run on a cluster, `None` in memory.
pub fn pd_endpoints() -> Option<Vec<String>> {
    pd_endpoints_of(&shared().target)
}

/// How many regions hold some key of the user-key range `[start, end)` on this process's own
/// (pre-split) cluster; `None` in memory or on an external cluster, which are not split.
pub fn regions_spanned(start: &[u8], end: &[u8]) -> Option<usize> {
    let Target::Own(running) = &shared().target else {
        return None;
    };
    let endpoints = vec![running.pd.clone()];
    Some(
        split::count_regions(&endpoints, start, end)
            .unwrap_or_else(|e| panic!("cannot read the regions from the scheduler: {e}")),
    )
}

/// The namespace of `name` in this process: unique per run.
fn namespace(name: &str) -> String {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    });
    format!("{run}/{name}")
}

/// The keyspace of test namespace `name` in this process.
pub fn keyspace(name: &str) -> KeySpace {
    KeySpace::new(&namespace(name))
}

/// A test configuration for `namespace`, unique to this process.
pub fn config(name: &str) -> Config {
    Config {
        namespace: namespace(name),
        ..Config::new_test_config()
    }
}

/// A storage on the shared backend, in `namespace`.
pub fn storage(namespace: &str) -> SqlStorage {
    SqlStorage::open(backend(), &config(namespace))
        .unwrap_or_else(|e| panic!("cannot open namespace {namespace}: {e}"))
}

/// A session on the shared backend, in `namespace`.
pub fn session(namespace: &str) -> Session {
    Session::open(backend(), &config(namespace))
        .unwrap_or_else(|e| panic!("cannot open namespace {namespace}: {e}"))
}
