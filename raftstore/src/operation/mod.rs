//! What peers do, one module per feature (each an `impl Peer` block or free functions over the
//! poll context). New features (conf change, split, leader transfer by the scheduler) slot in as
//! new modules here; `fsm/` only dispatches to them.
//!
//! - [`command`]: client commands: classification, header checks, merged write proposals,
//!   status queries, `TransferLeader`.
//! - [`conf_change`]: `ChangePeer`/`ChangePeerV2` proposals, removing the leader, leaving joint
//!   states.
//! - [`split`]: size checks, asking for split ids, what a replica does after a split.
//! - [`read`]: batched read-index reads, and reads served under the leader lease.
//! - [`lease`]: the leader lease (when a leader may read without a heartbeat round).
//! - [`ready`]: the round's one `handle_raft_ready`, incoming raft messages, apply results.
//! - [`snapshot`]: keeping received snapshots from overlapping other regions.
//! - [`compact_log`]: raft-log GC decisions.
//! - [`life`]: peer creation (from messages, by splits) and destruction.
//! - [`stale`]: finding out that this peer was removed, telling removed peers so.
//! - [`pd`]: region heartbeats and scheduler operators.

pub mod command;
pub mod compact_log;
pub mod conf_change;
pub mod lease;
pub mod life;
pub mod pd;
pub mod read;
pub mod ready;
pub mod snapshot;
pub mod split;
pub mod stale;
