//! Conformance of TinyKV with TiKV's official clients: `tikv-client` 0.4 (Rust), and from PyPI
//! `tikv-python` 0.1.1 (pure-Python raw client) and `tikv-client` 0.0.4 (a Python wheel around an
//! older client-rust). None of them was written by this team; they speak kvproto to our stores
//! and pdpb to our scheduler exactly as to TiKV and PD.
//!
//! # Data flow
//!
//! ```text
//!  test (tests/*.rs) ──▶ CompatCluster::start ──▶ tinykv-playground's ProcessCluster
//!        │                 (1 tinyscheduler-server + 3 tinykv-server processes on loopback)
//!        │
//!        ├─ topology: split_namespaces (SplitRegion RPC), transfer_leader (scheduler operator),
//!        │            kill_store / restart_store                                 [cluster, rpc]
//!        │
//!        ├─ scenarios (Rust tikv-client) ──kvproto/pdpb──▶ cluster     [scenarios::{raw, txn,
//!        │     asserts what the client returns                             locks, pessimistic}]
//!        │     reads every write back through our `client` crate (second path)
//!        │     counts the client's own retries (its Prometheus counters)         [metrics]
//!        │
//!        └─ Python scripts (python/*.py, pinned venv) ──▶ cluster      [python::{raw, txn}]
//!              read what our client seeded, check their client's answers, print a JSON
//!              report of what they left; the harness compares it with what each script
//!              must leave and reads it back through our `client` crate
//! ```
//!
//! `tests/rust_client.rs` runs the Rust scenarios under each topology; `tests/python_clients.rs`
//! runs each Python script on one region, then across forced splits. `make compat` runs both
//! (after `make compat-venv` and a build of the servers).
//!
//! Keys are laid out so raw and transactional data never share a region boundary
//! ([`keys`]); every wait polls with a deadline ([`wait`]); one cluster runs at a time per test
//! process. `docs/COMPATIBILITY.md` has the API → RPC → supported table this suite backs.

pub mod cluster;
pub mod config;
pub mod errors;
pub mod keys;
pub mod metrics;
pub mod python;
pub mod rpc;
pub mod scenarios;
pub mod wait;

pub use self::cluster::CompatCluster;
pub use self::config::HarnessConfig;
pub use self::errors::{Error, Result};
