//! Percolator transactions over the [`Storage`](crate::storage::Storage) trait.
//!
//! ```text
//!  service/txn.rs ── validated, typed command ──▶ commands::* ──▶ Executor
//!                                                                  │ 1. latch keys (encoded)
//!                                                                  │ 2. snapshot (after latching)
//!                                                                  │ 3. actions::* per key, on a
//!                                                                  │    blocking thread: MvccReader
//!                                                                  │    reads, MvccTxn buffers
//!                                                                  │ 4. check every written key
//!                                                                  │    was latched
//!                                                                  ▼ 5. Storage::write(batch)
//! ```
//!
//! - [`commands`]: one module per RPC, deciding which keys a command touches and how per-key
//!   outcomes combine into its result.
//! - [`actions`]: the per-key Percolator logic (prewrite, commit, rollback, check-txn-status,
//!   pessimistic lock), independent of storage and latches.
//! - [`Executor`]: the latch → snapshot → act → write cycle, shared by every write command.
//!
//! The code only talks to storage through `Storage::snapshot` and `Storage::write` with the
//! request's `Context`, so it runs unchanged over the standalone and the Raft storage.

pub mod actions;
pub mod commands;
mod executor;

pub use actions::TxnStatus;
pub use commands::*;
pub use executor::{check_key_in_region, unlatched_key, Executor};

#[cfg(test)]
mod tests;
