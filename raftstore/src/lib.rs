//! `raftstore`: the multi-raft store runtime. A store hosts one peer of each of many regions;
//! each region is a Raft group driven by `raft-core`.
//!
//! ```text
//!  kvserver / harness ──RaftCmdRequest──▶ Router ──PeerMsg──▶ peer mailbox ─┐
//!  transport (network/) ──RaftMessage──▶ Router ──(no peer)──▶ store FSM    │ batch system
//!  tick thread ──PeerMsg::Tick──────────────────────────────────────────────┤ (raft pollers)
//!                                                                           ▼
//!   round: handle every touched peer's messages (header checks, merged write proposals,
//!          batched read index) ─▶ collect every Ready into ONE kv + ONE raft batch
//!          ─▶ write kv, then raft once (one fsync) ─▶ on_persisted ─▶ send + flush messages
//!          ─▶ committed entries ──ApplyMsg──▶ apply pollers: many regions, ONE kv write,
//!                                             callbacks answered, ApplyRes ──▶ peer
//!   reads: read index confirmed ─▶ applied ≥ index ─▶ RegionSnapshot of the kv engine
//!   workers (pd heartbeats, split ids, snapshot generation, split checks) report back only
//!   through the Router
//!
//!   multi-raft: ChangePeer(V2) ─▶ conf change entry ─▶ apply: region + RegionLocalState in the
//!   apply batch ─▶ ApplyRes ─▶ peer adopts it (a removed peer destroys itself: tombstone, log,
//!   states, data range); split check ─▶ AskBatchSplit (ids) ─▶ BatchSplit entry ─▶ apply: all
//!   resulting regions in one batch ─▶ ApplyRes ─▶ new peers created, StoreMeta ranges updated
//! ```
//!
//! Docs: `docs/RAFTSTORE.md` explains threads, the round's order, apply and the ordering
//! guarantees between fsync and apply.
//!
//! # Public contract (used by `kvserver` and the cluster harness)
//!
//! - [`config::RaftstoreConfig`]: `Default`, `new_test_config()`, `validate()`.
//! - [`bootstrap`]: [`bootstrap_store`], [`prepare_bootstrap_region`], [`load_store_ident`].
//! - [`create_system`] → ([`Router`], [`RaftSystem`]); the transport is built with the router
//!   (`Router` is a [`transport::RaftMessageSink`], and [`Router::report_sink`] takes the
//!   transport's failure reports).
//! - [`Router::send_command`] / [`Router::execute`] / [`Router::execute_blocking`] with
//!   [`Callback`] and [`CmdResponse`] (region errors in `response.header.error`); membership
//!   changes are `ChangePeer`/`ChangePeerV2` admin commands, leader transfers `TransferLeader`.
//! - [`Router::split_region`] / [`Router::execute_split`]: split a region at given keys.
//! - [`Node::start`], [`Node::status`] ([`StoreStatus`], [`RegionStatus`] with the store's
//!   counters in [`StoreStatus::metrics`]), [`Node::stop`].
//!
//! Extras beyond the original contract: `Error::{InvalidRequest, Timeout}`,
//! `StoreStatus::metrics` (fsyncs, proposals per fsync, ...), `Callback::new`.
//!
//! # Modules
//!
//! - [`router`], [`msg`], [`batch`]: delivery (typed messages, mailboxes, pollers).
//! - [`fsm`]: peer, store and apply FSMs (mailbox + flat dispatch).
//! - `peer` (state) and [`operation`] (what peers do, one module per feature).
//! - `apply`: committed entries to the kv engine.
//! - [`worker`]: pd heartbeats, snapshot generation and cleanup.
//! - [`store_meta`]: which key ranges the store's initialized regions own (overlap checks).
//! - [`node`], [`bootstrap`], [`system`]: starting and stopping a store.
//! - [`config`], [`errors`], [`cmd_resp`] (the one mapping of errors to `errorpb`), [`status`].
//! - [`transport`], [`pd_client`]: the seams to the network and the scheduler;
//!   [`network`] (gRPC transport and receiver) and [`pd`] (gRPC scheduler client) implement
//!   them.

pub mod apply;
pub mod batch;
pub mod bootstrap;
pub mod cmd_resp;
pub mod config;
pub mod errors;
pub mod fsm;
pub mod msg;
pub mod network;
pub mod node;
pub mod operation;
pub mod pd;
pub mod pd_client;
pub mod peer;
mod poller;
pub mod router;
pub mod status;
pub mod store_meta;
pub mod system;
pub mod transport;
pub mod worker;

pub use bootstrap::{bootstrap_store, load_store_ident, prepare_bootstrap_region};
pub use config::RaftstoreConfig;
pub use errors::{Error, Result};
pub use msg::{Callback, CmdResponse};
pub use node::Node;
pub use router::Router;
pub use status::{MetricsSnapshot, RegionStatus, StoreStatus};
pub use system::{create_system, RaftSystem};
