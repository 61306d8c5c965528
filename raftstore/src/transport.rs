//! The seam between the store runtime and the network.
//!
//! Poller threads hand outgoing [`RaftMessage`]s to a [`Transport`] and call
//! [`Transport::flush`] up to twice per poll round: once before the round's fsync, for the
//! messages a leader may send before its own log is durable (appends, heartbeats — so followers
//! persist in parallel), and once after it, for the messages that acknowledge durable state
//! (votes, append responses). The
//! production transport ([`crate::network::GrpcTransport`]) batches messages per destination store onto
//! `tikvpb.Tikv/BatchRaft` streams and streams snapshot files over `tikvpb.Tikv/Snapshot`; the test
//! harness plugs in an in-process transport with fault-injection filters.
//!
//! Delivery is best effort: Raft retransmits whatever is lost. What the store must learn about
//! failures comes back as [`TransportReport`]s through the sink a transport is built with.

use std::sync::Arc;

use proto::raft_serverpb::RaftMessage;

use crate::errors::Result;

/// What a transport tells the store about messages it could not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportReport {
    /// A message from this store's peer of `region_id` to `to_peer_id` was dropped (store
    /// unreachable, connection broken, queue full): raft-rs should probe that peer instead of
    /// streaming appends to it (`report_unreachable`).
    Unreachable {
        /// The region.
        region_id: u64,
        /// The peer the message was for.
        to_peer_id: u64,
    },
    /// A snapshot sent to `to_peer_id` was received in full by its store (`finished`), or its
    /// transfer failed (`report_snapshot`).
    SnapshotStatus {
        /// The region.
        region_id: u64,
        /// The peer the snapshot was for.
        to_peer_id: u64,
        /// Whether the receiver got and verified the whole file.
        finished: bool,
    },
}

/// Where a transport delivers [`TransportReport`]s (the store's router).
pub type ReportSink = Arc<dyn Fn(TransportReport) + Send + Sync>;

/// Outgoing raft messages. Each poller thread owns a clone and buffers its round's messages.
pub trait Transport: Clone + Send + 'static {
    /// Queues `msg` for the store hosting `msg.to_peer`. A `MsgSnapshot` also ships the snapshot
    /// file the message describes (from the store's `SnapManager`) ahead of the message itself.
    /// An error means the message was dropped (and was reported as unreachable).
    fn send(&mut self, msg: RaftMessage) -> Result<()>;

    /// Sends everything queued by this handle.
    fn flush(&mut self);
}

/// Where incoming raft messages go: the store's router. The gRPC service's `Raft`/`BatchRaft`
/// handlers and the snapshot receiver deliver through this.
pub trait RaftMessageSink: Send + Sync + 'static {
    /// Delivers `msg` to the peer it is addressed to (creating the peer if the store decides it
    /// should exist). Errors mean the message was dropped; the sender's Raft retries.
    fn deliver(&self, msg: RaftMessage) -> Result<()>;
}
