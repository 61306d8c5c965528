//! Snapshot transfer: what the gRPC `Snapshot` stream does between processes, done in-process.
//! The file the message describes is copied in chunks from the sender's snapshot directory to
//! the receiver's (verified section by section by the writer), then the message is delivered and
//! the sender learns the outcome.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use proto::raft_serverpb::RaftMessage;
use raft_core::snap::{decode_descriptor, SnapKey, SnapKind};
use raftstore::transport::TransportReport;

use super::{filter, Shared};

/// Copies the snapshot of `msg` and delivers `msg`; reports `SnapshotStatus` to the sender.
pub(super) fn transfer(shared: &Arc<Shared>, msg: RaftMessage) {
    let from = filter::from_store(&msg);
    let to = filter::to_store(&msg);
    let outcome = copy_and_deliver(shared, &msg, from, to);
    let finished = match outcome {
        Ok(()) => {
            *shared
                .counters
                .snapshots_delivered
                .lock()
                .entry(to)
                .or_insert(0) += 1;
            true
        }
        Err(e) => {
            shared
                .counters
                .snapshots_failed
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(region_id = msg.region_id, from_store = from, to_store = to, error = %e, "snapshot transfer failed");
            false
        }
    };
    if let Some(sender) = shared.endpoint(from) {
        (sender.reports)(TransportReport::SnapshotStatus {
            region_id: msg.region_id,
            to_peer_id: msg.to_peer.as_ref().map_or(0, |p| p.id),
            finished,
        });
    }
}

fn copy_and_deliver(shared: &Shared, msg: &RaftMessage, from: u64, to: u64) -> Result<(), String> {
    let snap = msg
        .message
        .as_ref()
        .and_then(|m| m.snapshot.as_ref())
        .ok_or("MsgSnapshot without a snapshot")?;
    let meta = snap.metadata.as_ref().ok_or("snapshot without metadata")?;
    let desc = decode_descriptor(&snap.data).map_err(|e| e.to_string())?;
    let key = SnapKey::new(msg.region_id, meta.term, meta.index);
    let src = shared
        .endpoint(from)
        .ok_or_else(|| format!("sender store {from} stopped"))?;
    let dst = shared
        .endpoint(to)
        .ok_or_else(|| format!("receiver store {to} stopped"))?;
    // A receiver that already holds the verified file (a retransmission) only needs the message.
    if !dst.snap_mgr.exists(&key, SnapKind::Received) {
        let reader = src
            .snap_mgr
            .chunk_reader(&key, shared.snap_chunk_size)
            .map_err(|e| format!("open {key} on store {from}: {e}"))?;
        let mut writer = dst
            .snap_mgr
            .chunk_writer(&key, &desc)
            .map_err(|e| format!("create {key} on store {to}: {e}"))?;
        for chunk in reader {
            let chunk = chunk.map_err(|e| format!("read {key}: {e}"))?;
            writer
                .write_chunk(&chunk)
                .map_err(|e| format!("write {key}: {e}"))?;
        }
        writer.finish().map_err(|e| format!("finish {key}: {e}"))?;
    }
    dst.sink
        .deliver(msg.clone())
        .map_err(|e| format!("store {to} refused the snapshot message: {e}"))?;
    shared.counters.delivered.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
