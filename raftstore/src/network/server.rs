//! The receiving side: [`RaftReceiver`] handles the `Raft`, `BatchRaft` and `Snapshot` streams
//! of `tikvpb.Tikv` (the gRPC service only routes them here) and delivers what arrives to the
//! store through a [`RaftMessageSink`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{Stream, StreamExt};
use proto::raft_serverpb::{Done, RaftMessage};
use proto::tikvpb::BatchRaftMessage;
use raft_core::snap::SnapManager;
use tokio::sync::{watch, Semaphore};
use tonic::Status;

use super::config::NetworkConfig;
use super::transport::is_snapshot;
use crate::errors::{Error, Result};
use crate::transport::RaftMessageSink;

/// Handles incoming raft traffic for one store. Shared by every connection (wrap it in an
/// `Arc`).
pub struct RaftReceiver {
    pub(super) sink: Arc<dyn RaftMessageSink>,
    pub(super) snap_mgr: SnapManager,
    pub(super) cfg: NetworkConfig,
    pub(super) snap_slots: Semaphore,
    pub(super) stats: ReceiverCounters,
    /// Set by [`RaftReceiver::shutdown`]: open streams end, new ones are refused.
    pub(super) shutdown: watch::Sender<bool>,
}

#[derive(Default)]
pub(super) struct ReceiverCounters {
    pub(super) messages: AtomicU64,
    pub(super) undelivered: AtomicU64,
    pub(super) snapshots_receiving: AtomicU64,
    pub(super) snapshots_received: AtomicU64,
    pub(super) snapshots_rejected: AtomicU64,
}

/// A snapshot of the receiver's counters, for status pages and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Raft messages received (including those the store did not take).
    pub messages: u64,
    /// Raft messages the store did not take (its router refused them).
    pub undelivered: u64,
    /// Snapshot transfers under way.
    pub snapshots_receiving: u64,
    /// Snapshots received, verified and delivered.
    pub snapshots_received: u64,
    /// Snapshot transfers refused or failed (bad request, corruption, truncation, busy).
    pub snapshots_rejected: u64,
}

impl RaftReceiver {
    /// A receiver delivering to `sink` and writing snapshot files into `snap_mgr`.
    pub fn new(
        sink: Arc<dyn RaftMessageSink>,
        snap_mgr: SnapManager,
        cfg: NetworkConfig,
    ) -> Result<RaftReceiver> {
        cfg.validate()?;
        Ok(RaftReceiver {
            sink,
            snap_mgr,
            snap_slots: Semaphore::new(cfg.snap_max_concurrent_recvs),
            cfg,
            stats: ReceiverCounters::default(),
            shutdown: watch::channel(false).0,
        })
    }

    /// Ends every open stream with `UNAVAILABLE` and refuses new ones. Raft streams never end
    /// by themselves, so a server's graceful shutdown must call this first or it would wait
    /// for them forever.
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// The next item of `stream`, or `UNAVAILABLE` once the receiver is shut down.
    pub(super) async fn next_or_shutdown<S, T>(
        &self,
        stream: &mut S,
    ) -> std::result::Result<Option<std::result::Result<T, Status>>, Status>
    where
        S: Stream<Item = std::result::Result<T, Status>> + Unpin,
    {
        let mut shutdown = self.shutdown.subscribe();
        tokio::select! {
            item = stream.next() => Ok(item),
            _ = shutdown.wait_for(|stop| *stop) => Err(Status::unavailable("store is shutting down")),
        }
    }

    /// Current counters.
    pub fn stats(&self) -> ReceiverStats {
        let s = &self.stats;
        ReceiverStats {
            messages: s.messages.load(Ordering::Relaxed),
            undelivered: s.undelivered.load(Ordering::Relaxed),
            snapshots_receiving: s.snapshots_receiving.load(Ordering::Relaxed),
            snapshots_received: s.snapshots_received.load(Ordering::Relaxed),
            snapshots_rejected: s.snapshots_rejected.load(Ordering::Relaxed),
        }
    }

    /// Handles a `Raft` stream: one message per item.
    pub async fn raft_stream<S>(&self, mut stream: S) -> std::result::Result<Done, Status>
    where
        S: Stream<Item = std::result::Result<RaftMessage, Status>> + Unpin,
    {
        while let Some(msg) = self.next_or_shutdown(&mut stream).await? {
            self.deliver(msg?)?;
        }
        Ok(Done {})
    }

    /// Handles a `BatchRaft` stream: batches of messages, delivered in order.
    pub async fn batch_raft_stream<S>(&self, mut stream: S) -> std::result::Result<Done, Status>
    where
        S: Stream<Item = std::result::Result<BatchRaftMessage, Status>> + Unpin,
    {
        while let Some(batch) = self.next_or_shutdown(&mut stream).await? {
            for msg in batch?.msgs {
                self.deliver(msg)?;
            }
        }
        Ok(Done {})
    }

    /// Hands one message from a raft stream to the store. A malformed message ends the stream
    /// with `INVALID_ARGUMENT`; a message the store refuses is dropped (raft retries), unless
    /// the store is shutting down.
    fn deliver(&self, msg: RaftMessage) -> std::result::Result<(), Status> {
        check_message(&msg).map_err(Status::invalid_argument)?;
        if is_snapshot(&msg) {
            // Its file would be missing: snapshots are only accepted with their file, on the
            // Snapshot stream.
            return Err(Status::invalid_argument(format!(
                "MsgSnapshot for region {} must be sent on the Snapshot stream",
                msg.region_id
            )));
        }
        self.stats.messages.fetch_add(1, Ordering::Relaxed);
        let (region_id, peer_id) = (msg.region_id, msg.to_peer.as_ref().map_or(0, |p| p.id));
        match self.sink.deliver(msg) {
            Ok(()) => Ok(()),
            Err(Error::Shutdown) => Err(Status::unavailable("store is shutting down")),
            Err(e) => {
                self.stats.undelivered.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(region_id, peer_id, error = %e, "raft message not delivered");
                Ok(())
            }
        }
    }
}

/// Checks the fields every raft message must have.
pub(super) fn check_message(msg: &RaftMessage) -> std::result::Result<(), String> {
    if msg.message.is_none() {
        return Err(format!(
            "raft message of region {} has no message",
            msg.region_id
        ));
    }
    for (what, peer) in [("from_peer", &msg.from_peer), ("to_peer", &msg.to_peer)] {
        match peer {
            Some(p) if p.id != 0 && p.store_id != 0 => {}
            _ => {
                return Err(format!(
                    "raft message of region {} has no valid {what}",
                    msg.region_id
                ))
            }
        }
    }
    Ok(())
}

/// The gRPC status answering a failed snapshot transfer.
pub(super) fn to_status(e: &Error) -> Status {
    match e {
        Error::Core(raft_core::Error::CorruptedSnapshot(m)) => {
            Status::data_loss(format!("corrupted snapshot: {m}"))
        }
        Error::Core(raft_core::Error::Decode(_) | raft_core::Error::InvalidMessage(_)) => {
            Status::invalid_argument(e.to_string())
        }
        Error::Core(raft_core::Error::Io(_)) => Status::internal(e.to_string()),
        Error::ServerIsBusy(m) => Status::resource_exhausted(m.clone()),
        Error::Shutdown => Status::unavailable("store is shutting down"),
        other => Status::unavailable(other.to_string()),
    }
}
