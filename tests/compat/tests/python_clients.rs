//! The Python clients from PyPI against a real TinyKV cluster (1 scheduler + 3 stores, real
//! processes), each first on a single region and then across forced splits: `tikv-python`
//! (raw API, the oracle for raw scans) and the `tikv-client` 0.0.4 wheel (transactions). Each
//! run reads what our client seeded, and everything it writes is read back through our client
//! (src/python).
//!
//! Needs the venv with the pinned clients: `make compat-venv` (or set TINYKV_COMPAT_PYTHON to
//! an interpreter that has them); without it the tests fail and say so.

use tinykv_compat::keys::Api;
use tinykv_compat::python::{self, Phase};
use tinykv_compat::scenarios::{our_raw_pairs, our_txn_pairs, show};
use tinykv_compat::{CompatCluster, HarnessConfig, Result};

async fn start() -> Result<CompatCluster> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    CompatCluster::start(HarnessConfig::new_test_config()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tikv_python_raw() -> Result<()> {
    let c = start().await?;

    let one = Phase::new(Api::Raw, "1");
    assert_eq!(c.regions().await?.len(), 1, "a new cluster is one region");
    python::raw::run(&c, &one).await?;

    let split = Phase::new(Api::Raw, "2");
    split.split(&c).await?;
    assert_eq!(
        c.regions_of(&split.seed).await?,
        2,
        "seeds span two regions"
    );
    assert_eq!(
        c.regions_of(&split.writes).await?,
        4,
        "writes span four regions"
    );
    python::raw::run(&c, &split).await?;

    // The first run's data came through the splits unchanged.
    assert_eq!(
        show(&our_raw_pairs(&c, &one.writes).await?),
        show(&python::raw::expected(&one.writes)),
        "first run, after the splits"
    );
    c.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tikv_client_wheel_txn() -> Result<()> {
    let c = start().await?;

    let one = Phase::new(Api::Txn, "1");
    assert_eq!(c.regions().await?.len(), 1, "a new cluster is one region");
    python::txn::run(&c, &one).await?;

    let split = Phase::new(Api::Txn, "2");
    split.split(&c).await?;
    assert_eq!(
        c.regions_of(&split.seed).await?,
        2,
        "seeds span two regions"
    );
    assert_eq!(
        c.regions_of(&split.writes).await?,
        4,
        "writes span four regions"
    );
    python::txn::run(&c, &split).await?;

    assert_eq!(
        show(&our_txn_pairs(&c, &one.writes).await?),
        show(&python::txn::expected(&one.writes)),
        "first run, after the splits"
    );
    c.stop().await
}
