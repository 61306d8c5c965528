//! `tinykv-bench`: a YCSB-style load generator for TinyKV (raw and transactional) and etcd, and
//! the side-by-side comparison of the two on one machine.
//!
//! # Data flow
//!
//! ```text
//!  config (WorkloadConfig, RunConfig, TargetConfig)
//!     │
//!     ▼
//!  workload::Workload ──generator(seed)──▶ OpGenerator per client ──▶ Op (read/update/insert/
//!     │  key space, insert watermark           │                        scan/read-modify-write)
//!     │                                        ▼
//!     │                            backend::Backend::execute ──▶ TinyKV raw │ TinyKV txn │ etcd
//!     ▼                                        │ latency, outcome
//!  runner::load / runner::run ◀────────────────┘ stats::Recorder per client (HdrHistogram)
//!     │  cpu::CpuProbe: /proc/PID/stat of every server around the measured window
//!     ▼
//!  report::BenchResult (JSON) ──▶ report::table (Markdown) ──▶ report::chart (SVG)
//!
//!  compare: for each planned run — fresh cluster (compare::etcd / compare::tinykv, processes
//!  stopped by PID) ──▶ load ──▶ run ──▶ stop — then one Comparison, table, JSON and chart.
//! ```
//!
//! Both systems face the identical generator: same seed, same key and value sizes, same
//! operation sequence per client. Numbers drift from run to run on a shared machine, so
//! compare systems only within one `compare` invocation and prefer the ratios and the CPU per
//! operation to absolute rates.

pub mod backend;
pub mod compare;
pub mod config;
pub mod cpu;
pub mod errors;
pub mod report;
pub mod runner;
pub mod stats;
pub mod workload;

pub use errors::{Error, Result};
