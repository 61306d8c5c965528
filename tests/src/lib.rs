//! `tests`: the in-process cluster harness and the staged suites built on it.
//!
//! ```text
//!  test body / client threads                       MockPd (pd.rs)
//!     │ must_put, scan, get_region, ...         ┌──▶ regions + leaders, learned ONLY from
//!     ▼                                         │    region heartbeats; operators answered
//!  Cluster (cluster/) ── routes by the pd view ─┘    to heartbeats until observed
//!     │  RaftCmdRequest → Router::execute_blocking
//!     ▼
//!  store 1 … store N: the real raftstore runtime (Node), engines in a temp dir
//!     │ outgoing RaftMessages              ▲ delivered messages, TransportReports
//!     ▼                                    │
//!  SimTransport ──▶ SimNetwork thread (transport/): filters (partition, isolate, drop %, delay,
//!                   per-type) ─▶ destination Router; MsgSnapshot: file copied between the two
//!                   stores' SnapManagers in chunks first, then delivered, then reported
//! ```
//!
//! - [`Cluster`]: life cycle (bootstrap every store with the same first region, start, stop,
//!   restart from the same engines), client operations with leader/epoch retries, status and
//!   engine inspection with deadline-bounded waits, membership operators.
//! - [`transport`]: the in-process network and its [`transport::Filter`]s.
//! - [`pd`]: the mock scheduler implementing `raftstore::pd_client::PdClient`.
//! - [`GenericTest`]: the parameterised randomized scenario the raftstore suites are built from.
//! - [`cmd`]: `raft_cmdpb` request builders.
//! - [`txn_client`]: transactional (kvproto) requests through each store's real `tikvpb.Tikv`
//!   service over `RaftStorage`, routed to region leaders with region-error retries, and a local
//!   TSO-shaped clock.
//!
//! Suites in `tests/tests/` (one binary per course stage) use this library; see `docs/SUITES.md`.

pub mod cluster;
pub mod cmd;
pub mod config;
pub mod errors;
pub mod generic;
pub mod pd;
pub mod process;
pub mod transport;
pub mod txn_client;

use std::time::Duration;

use parking_lot::{const_mutex, Mutex, MutexGuard};
use raftstore::config::RaftstoreConfig;

pub use cluster::{wait_for, Cluster, KvPair};
pub use config::ClusterConfig;
pub use errors::{Error, Result};
pub use generic::GenericTest;

/// Sends harness and store logs to the test output, filtered by `RUST_LOG` (default: warnings).
/// Safe to call from every test.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

static SERIAL: Mutex<()> = const_mutex(());

/// Held by a cluster test for its whole run so that tests of one binary run one at a time even
/// under `cargo test`'s default parallelism: several multi-store clusters at once on a small
/// machine would turn timing slack into flakiness. A panicking holder does not poison it.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock()
}

/// How long a follower waits without hearing from a leader before it campaigns (the lower
/// bound of raft-rs's randomized election timeout).
pub fn election_timeout(cfg: &RaftstoreConfig) -> Duration {
    cfg.base_tick() * u32::try_from(cfg.raft.election_tick).unwrap_or(u32::MAX)
}
