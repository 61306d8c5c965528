//! The backend every SQL test binary runs against, chosen once per process.
//!
//! - default: an in-process [`MemoryBackend`] (Percolator semantics, no cluster needed);
//! - `TINYKV_SQL_TEST_PD=host:port[,host:port]`: a running cluster reached through its scheduler.
//!
//! Each test gets its own namespace (keyspace prefix), made unique per process so that runs
//! against a long-lived cluster never see each other's tables. Pointing the suites at another
//! cluster (e.g. an in-process one from the `tests` harness) only changes [`backend`].

#![allow(dead_code)]

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tinykv_sql::{ClusterBackend, Config, KvBackend, MemoryBackend, Session, SqlStorage};

/// The shared backend of this test process.
pub fn backend() -> Arc<dyn KvBackend> {
    static BACKEND: OnceLock<Arc<dyn KvBackend>> = OnceLock::new();
    BACKEND
        .get_or_init(|| match std::env::var("TINYKV_SQL_TEST_PD") {
            Ok(pd) => {
                let config = Config {
                    pd_endpoints: pd.split(',').map(str::to_owned).collect(),
                    ..Config::new_test_config()
                };
                let backend = ClusterBackend::connect(&config)
                    .unwrap_or_else(|e| panic!("cannot reach the cluster at {pd}: {e}"));
                Arc::new(backend) as Arc<dyn KvBackend>
            }
            Err(_) => Arc::new(MemoryBackend::new()),
        })
        .clone()
}

/// A test configuration for `namespace`, unique to this process.
pub fn config(namespace: &str) -> Config {
    static RUN: OnceLock<String> = OnceLock::new();
    let run = RUN.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}-{nanos}", std::process::id())
    });
    Config {
        namespace: format!("{run}/{namespace}"),
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
