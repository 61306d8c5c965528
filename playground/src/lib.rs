//! Real-process TinyKV clusters on loopback: the [`ProcessCluster`] launcher behind
//! `make playground`, the end-to-end tests, the compatibility suites and the benchmarks.
//!
//! # Data flow
//!
//! ```text
//!  ClusterConfig ──▶ Binaries::locate (prebuilt tinyscheduler-server + tinykv-server)
//!        │            Layout: <dir>/pd, <dir>/store-<i>, <dir>/logs, <dir>/cluster.json
//!        │            DirLock (<dir>/.lock) · loopback ports (fixed or free)
//!        ▼
//!  spawn scheduler ──wait: GetMembers answers──▶ spawn store 0 (bootstraps) ──wait: registered
//!        ──▶ spawn stores 1.. ──wait: every store Up with a fresh heartbeat, every region led
//!        and replicated, raw put/get/delete through the client ──▶ ready
//!
//!  stop_store (SIGTERM) · kill_store (SIGKILL) · restart_store · add_store · stop / Drop
//!        every change rewrites cluster.json (endpoints, PIDs); stop removes it
//! ```
//!
//! - Waits poll the scheduler (`pdpb.PD`) and the processes with a deadline, never sleep for
//!   a fixed time; a process that exits while waited on fails the wait with its log's tail.
//! - Processes run in their own process group (a terminal's Ctrl-C reaches only the owner,
//!   which stops stores before the scheduler) and, on Linux, die with the thread that started
//!   them, so nothing outlives a crashed test.
//! - Nothing is compiled here: binaries come from `TINYKV_BIN_DIR`, next to the running
//!   executable, or `$CARGO_TARGET_DIR/<profile>`; test suites that must not run stale
//!   servers call [`Binaries::build_with_cargo`] first.
//!
//! The `tinykv-playground` binary (`make playground`) is a thin command line over this crate;
//! `docs/PLAYGROUND.md` describes it.

#![warn(missing_docs)]

mod binaries;
mod cluster;
mod config;
mod errors;
mod layout;
mod manifest;
mod process;
mod ready;

pub use self::binaries::{
    current_profile, Binaries, BIN_DIR_ENV, SCHEDULER_BIN, SCHEDULER_BIN_ENV, SERVER_BIN,
    SERVER_BIN_ENV,
};
pub use self::cluster::ProcessCluster;
pub use self::config::{
    ClusterConfig, DEFAULT_DATA_DIR, DEFAULT_PD_PORT, DEFAULT_STORE_PORT, LOCAL_STORE_CONFIG,
    MAX_STORES, TEST_STORE_CONFIG,
};
pub use self::errors::{Error, Result};
pub use self::manifest::{Manifest, ProcessEntry, StoreEntry};
