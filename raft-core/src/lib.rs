//! `raft-core`: everything about a single Raft group that is not multi-raft.
//!
//! raft-rs (crate `raft`) runs the algorithm; this crate owns durability and the driver around it.
//!
//! ```text
//!            tick / step / propose                            Storage (reads)
//!  owner ──────────────────────────▶ RaftGroup ─▶ RawNode ◀──────────────────── PeerStorage
//!                                        │ Ready                                  │ entry cache
//!        ┌───────────────────────────────┘                                        ▼
//!        ▼ phase 1: collect_ready(kv_wb, raft_wb)                          raft engine: log,
//!   snapshot → kv_wb (data, apply/region state) + raft_wb (log reset)      RaftLocalState
//!   entries, hard state → raft_wb                                          kv engine: data,
//!   early messages (leader appends) → send                                 RaftApplyState,
//!        ▼ owner writes kv_wb then raft_wb (sync if must_sync; many groups, one fsync)
//!        ▼ phase 2: on_persisted
//!   persisted messages (votes, append acks) → send
//!   committed entries + their proposals → ApplyTask ──▶ applier (any thread)
//!        ▼                                               data + RaftApplyState: ONE kv batch
//!   on_applied(ApplyResult) ◀────────────────────────────┘ answers proposals
//!   conf changes → raft-rs; truncated state → log GC; applied index → raft-rs
//! ```
//!
//! Who persists what, where:
//! - **Ready loop → raft engine**: log entries and `RaftLocalState` (hard state, last index), in
//!   one batch per Ready, synced when raft-rs requires it (new entries, term or vote). The commit
//!   index learned after persistence rides along with the next batch.
//! - **Applier → kv engine**: applied data together with `RaftApplyState` (applied index,
//!   truncated state) and, for membership changes, `RegionLocalState`, in one batch. On restart
//!   raft-rs resumes from that durable applied index, so every entry is applied exactly once.
//! - **Snapshot apply → both**: the region's data range, apply and region state and a copy of
//!   the new raft state in the kv batch (written first); the log reset and raft state in the
//!   raft batch. A crash between the two is finished on restart from the copy.
//! - **Snapshot generation → snapshot directory**: off the Raft thread, from one consistent
//!   RocksDB snapshot of the kv engine; `eraftpb::Snapshot.data` only describes the file.
//!
//! Modules:
//! - [`engine`]: the storage traits and the RocksDB implementation; a store owns two engines,
//!   `kv` (CFs default/lock/write: user data plus apply and region state) and `raft` (log entries
//!   and raft hard state).
//! - [`keys`]: the one module that builds every key.
//! - [`storage`]: [`PeerStorage`] (raft-rs's `Storage`), per-region states and their
//!   initial values (bootstrap at index 5, empty peers at index 0).
//! - [`snap`]: snapshot files, chunked transfer with checksums, generation and application.
//! - [`group`]: [`RaftGroup`], the driver: two-phase and one-call Ready handling, proposal
//!   tracking, conf change, leader transfer and read index passthroughs.
//! - [`conf_change`]: region membership ↔ raft-rs `ConfState`.
//! - [`convert`]: lossless raft-rs (rust-protobuf) ↔ prost conversion of raft messages.
//! - [`logger`]: raft-rs's `slog` output bridged to `tracing`.
//! - [`config`]: tunables with defaults and validation.
//! - [`errors`]: this crate's error type.

#![deny(missing_docs)]

pub mod conf_change;
pub mod config;
pub mod convert;
pub mod engine;
pub mod errors;
pub mod group;
pub mod keys;
pub mod logger;
pub mod snap;
pub mod storage;

pub use errors::{Error, Result};
pub use group::{
    AppliedConfChange, Applier, ApplyResult, ApplyTask, CollectedReady, GroupStatus,
    PersistedReady, Proposal, ProposalCallback, RaftGroup, Rejected, RoleChange, Transport,
};
pub use storage::{AppliedSnapshot, PeerStorage, StorageContext};
