//! What peers do, one module per feature (each an `impl Peer` block or free functions over the
//! poll context). New features (conf change, split, leader transfer by the scheduler) slot in as
//! new modules here; `fsm/` only dispatches to them.
//!
//! - [`command`]: client commands: classification, header checks, merged write proposals,
//!   status queries, `TransferLeader`.
//! - [`read`]: batched read-index reads.
//! - [`ready`]: the round's one `handle_raft_ready`, incoming raft messages, apply results.
//! - [`compact_log`]: raft-log GC decisions.
//! - [`life`]: peer creation and destruction.
//! - [`pd`]: region heartbeats and scheduler operators.

pub mod command;
pub mod compact_log;
pub mod life;
pub mod pd;
pub mod read;
pub mod ready;
