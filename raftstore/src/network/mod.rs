//! Store-to-store networking over gRPC: the production [`Transport`](crate::transport::Transport)
//! and the receiving side of the same streams.
//!
//! ```text
//!  sending store                                                   receiving store
//!  ─────────────                                                   ───────────────
//!  poller ── send ──▶ per-store bounded queue ── flush wakes ──▶ connection task
//!            │          (full: drop + Unreachable)                 │ resolve (PD, cached)
//!            │                                                     │ connect, backoff on failure
//!            │                                                     ▼
//!            │                  tikvpb.Tikv/BatchRaft ══ BatchRaftMessage ══▶ RaftReceiver ──▶ sink
//!            │                                                                 (router)
//!            └─ MsgSnapshot ──▶ snapshot task (bounded concurrency, own connection)
//!                 SnapChunkReader ══ tikvpb.Tikv/Snapshot: [message][chunk][chunk]… ══▶
//!                                        RaftReceiver: SnapChunkWriter verifies checksums,
//!                                        publishes the file, then delivers the message
//!                 ◀══ Done / error ══ SnapshotStatus{finished} reported to the sender's store
//! ```
//!
//! - [`GrpcTransport`]: queues, batching, reconnect, snapshot sending; failures come back as
//!   [`TransportReport`](crate::transport::TransportReport)s through the store's report sink.
//! - [`RaftReceiver`]: what `kvserver`'s `Raft`, `BatchRaft` and `Snapshot` handlers call.
//! - [`StoreResolver`], [`PdStoreResolver`]: store id → address, cached, refreshed when a
//!   connection fails.
//! - [`NetworkConfig`]: every knob, with defaults and validation.
//!
//! Delivery is best effort, as Raft expects: a message may be lost when a connection breaks,
//! but a snapshot is only ever delivered with its complete, verified file.

pub(crate) mod backoff;
mod config;
mod conn;
mod resolver;
mod server;
mod snap_recv;
mod snap_send;
mod transport;

pub use config::NetworkConfig;
pub use resolver::{PdStoreResolver, StoreResolver};
pub use server::{RaftReceiver, ReceiverStats};
pub use transport::{GrpcTransport, StoreTransportStats, TransportStats};
