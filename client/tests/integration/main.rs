//! Client tests against an in-process mock cluster (see `mock/`): PD leader following and TSO,
//! raw and transactional APIs across several regions, and recovery from region errors.

mod mock;
mod pd;
mod raw;
mod routing;
mod txn;

use client::Config;

/// The test config with small pages and batches, so paging and chunking code runs.
fn config() -> Config {
    Config {
        scan_batch_size: 3,
        max_keys_per_request: 4,
        ..Config::new_test_config()
    }
}
