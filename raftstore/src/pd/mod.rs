//! The scheduler (PD) client of a real store: [`GrpcPdClient`] implements
//! [`PdClient`](crate::pd_client::PdClient) over `pdpb.PD`.
//!
//! ```text
//!  store threads ── blocking calls ──▶ GrpcPdClient ── spawn on runtime ──▶ Core::call
//!                                                                            │ header.cluster_id
//!                                                                            ▼
//!        endpoints ── GetMembers ──▶ cluster id + leader URL ──▶ unary RPC to the leader
//!                        ▲                                        │ transport error: backoff,
//!                        └──────────── re-discover ◀──────────────┘ re-discover, retry
//!                                                                 │ header error: Error::Pd
//!  region_heartbeat ──▶ bounded queue ──▶ heartbeat task ══ RegionHeartbeat stream ══▶ scheduler
//!                                            ▲ re-open on failure                       │
//!  installed handler ◀───────────────────────┴─────────── operator responses ◀══════════┘
//! ```
//!
//! - [`GrpcPdClient`]: construction, the trait implementation and a few extras.
//! - `leader`: discovery, leader following and the retry loop (`Core`).
//! - `heartbeat`: the long-lived region heartbeat stream.
//! - [`PdConfig`]: timeouts, backoff, queue size.

mod config;
mod grpc;
mod heartbeat;
mod leader;

pub use config::PdConfig;
pub use grpc::GrpcPdClient;
pub use heartbeat::HeartbeatStats;
