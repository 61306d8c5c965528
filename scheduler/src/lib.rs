//! `scheduler`: tinyscheduler-server, a placement driver speaking TiKV's `pdpb.PD`.
//!
//! ```text
//!  stores ── StoreHeartbeat ───────────────┐
//!  stores ══ RegionHeartbeat (stream) ═════╪══▶ server ──▶ cluster ──▶ core (region tree, stores)
//!  clients ─ GetMembers / GetRegion / ... ─┘      │  ▲        │  │             │ writes
//!  clients ══ Tso (stream) ═══════════════════════╯  │        │  ▼             ▼
//!                                                    │        │ operators   storage (RocksDB)
//!            operator commands ◀══ heartbeat stream ═╯        │  ▲          ids, tso window
//!            of the leader's store                            ▼  │
//!                                         coordinator ──▶ schedule (pure): ClusterView ──▶ Operator
//! ```
//!
//! - [`server`]: the gRPC service (one module per area), the HTTP JSON status routes on the same
//!   port, and [`server::SchedulerServer`] which runs them with clean shutdown.
//! - [`cluster`]: shared runtime state — bootstrap, stores, region heartbeats, the operator
//!   controller, the per-store heartbeat streams — and the coordinator loop.
//! - [`core`]: regions, the region tree with the heartbeat staleness rules, stores.
//! - [`schedule`]: pure decisions: `balance-region`, `balance-leader`, the replica checker, and
//!   operators with their steps.
//! - [`tso`], [`id`]: the timestamp oracle and the id allocator, both persisted ahead of use.
//! - [`storage`]: the metadata database and its key layout.
//! - [`config`], [`errors`]: settings and the error type (with its single mapping to the wire).
//!
//! `docs/SCHEDULER.md` describes the behaviour in prose.

pub mod cluster;
pub mod config;
pub mod core;
pub mod errors;
pub mod id;
pub mod schedule;
pub mod server;
pub mod storage;
pub mod tso;

pub use config::{Config, ScheduleConfig};
pub use errors::{Error, Result};
pub use server::SchedulerServer;
