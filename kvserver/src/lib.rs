//! `kvserver`: the store's gRPC face (`tikvpb.Tikv`), the storage seam, and transactions.
//!
//! ```text
//!  gRPC request ──▶ service (validate, map errors) ──▶ raw handlers ─────────────┐
//!                                                 └──▶ txn commands (latches,     │
//!                                                      MVCC reader/txn) ──────────┤
//!                                                                                 ▼
//!                                  Storage::write(batch) / Storage::snapshot() ──▶ Standalone (local
//!                                                                                  engine) or Raft
//!                                                                                  (raftstore router)
//! ```
//!
//! - [`storage`]: the `Storage` trait and its implementations.
//! - [`service`]: the `tikvpb.Tikv` implementation, one module per API area.
//! - [`latches`]: per-key serialization of commands.
//! - [`mvcc`]: transactional key encoding (memcomparable user keys + descending ts), lock and
//!   write record formats, `MvccTxn` (buffered mutations) and readers / scanners at a ts.
//! - [`txn`]: Percolator commands (latch → snapshot → per-key actions → one atomic write).
//! - [`config`]: limits and server settings (TOML file + command-line flags).
//! - [`server`]: runs the tonic server; graceful shutdown on SIGINT/SIGTERM; log setup.
//! - [`cluster`]: cluster mode — engines, scheduler client, transport and the raft runtime
//!   assembled into one store (`tinykv-server --scheduler ...`).
//! - [`errors`]: this crate's errors and the single mapping of errors to the wire.
//! - [`work`]: where engine work runs (inline for a few point reads, else the blocking pool).

pub mod cluster;
pub mod config;
pub mod errors;
pub mod latches;
pub mod mvcc;
pub mod server;
pub mod service;
pub mod storage;
pub mod txn;
pub mod work;

#[cfg(test)]
mod test_util;

pub use errors::{Error, Result};
