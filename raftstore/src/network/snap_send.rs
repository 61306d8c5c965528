//! Sending one snapshot: the `MsgSnapshot` first, then its file in chunks, on a connection of its
//! own so a large transfer never delays the raft messages of the store's `BatchRaft` stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use proto::raft_serverpb::{RaftMessage, SnapshotChunk};
use raft_core::snap::{decode_descriptor, SnapKey};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::conn;
use super::transport::Shared;
use crate::errors::{Error, Result};
use crate::transport::TransportReport;

/// File chunks read ahead of the network.
const READ_AHEAD: usize = 2;

/// Starts sending the snapshot `msg` describes; the outcome is reported as
/// [`TransportReport::SnapshotStatus`].
pub(super) fn spawn(shared: Arc<Shared>, msg: RaftMessage) {
    shared.snap_stats.sending.fetch_add(1, Ordering::Relaxed);
    let runtime = shared.runtime.clone();
    runtime.spawn(async move {
        let region_id = msg.region_id;
        let to_peer_id = msg.to_peer.as_ref().map_or(0, |p| p.id);
        let store_id = msg.to_peer.as_ref().map_or(0, |p| p.store_id);
        let mut shutdown = shared.shutdown.subscribe();
        let started = Instant::now();
        let res = tokio::select! {
            r = send(&shared, msg) => r,
            _ = shutdown.wait_for(|stop| *stop) => Err(Error::Shutdown),
        };
        shared.snap_stats.sending.fetch_sub(1, Ordering::Relaxed);
        let finished = match res {
            Ok((key, bytes)) => {
                shared.snap_stats.sent.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    region_id,
                    peer_id = to_peer_id,
                    store_id,
                    term = key.term,
                    index = key.index,
                    bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "snapshot sent"
                );
                true
            }
            Err(e) => {
                shared.snap_stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(region_id, peer_id = to_peer_id, store_id, error = %e, "snapshot send failed");
                false
            }
        };
        (shared.report)(TransportReport::SnapshotStatus {
            region_id,
            to_peer_id,
            finished,
        });
    });
}

/// Sends the message and its file; returns the snapshot's key and size once the receiver has
/// verified and accepted it.
async fn send(shared: &Shared, msg: RaftMessage) -> Result<(SnapKey, u64)> {
    let snap = msg
        .message
        .as_ref()
        .and_then(|m| m.snapshot.as_ref())
        .ok_or_else(|| Error::Transport("MsgSnapshot without a snapshot".into()))?;
    let meta = snap
        .metadata
        .as_ref()
        .ok_or_else(|| Error::Transport("snapshot without metadata".into()))?;
    let key = SnapKey::new(msg.region_id, meta.term, meta.index);
    let desc = decode_descriptor(&snap.data)?;
    let store_id = msg.to_peer.as_ref().map_or(0, |p| p.store_id);

    // Bound concurrent transfers; waiting here is cheap (raft sends one snapshot per peer).
    let _slot = shared
        .snap_slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Error::Shutdown)?;

    // Open the file before connecting: a missing file fails without touching the network.
    let (mgr, chunk_size) = (shared.snap_mgr.clone(), shared.cfg.snap_chunk_size);
    let mut reader = tokio::task::spawn_blocking(move || mgr.chunk_reader(&key, chunk_size))
        .await
        .map_err(|e| Error::Other(format!("snapshot reader task: {e}")))??;
    if reader.total_size() != desc.file_size {
        return Err(Error::Transport(format!(
            "snapshot {key} file is {} bytes, its descriptor says {}",
            reader.total_size(),
            desc.file_size
        )));
    }
    let total = desc.file_size;

    // Read on a blocking thread, a couple of chunks ahead of the network.
    let (chunk_tx, mut chunk_rx) = mpsc::channel::<Result<Vec<u8>>>(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        for chunk in &mut reader {
            let failed = chunk.is_err();
            if chunk_tx.blocking_send(chunk.map_err(Error::from)).is_err() || failed {
                return;
            }
        }
    });

    let mut client = conn::connect(shared, store_id).await?;
    let (req_tx, req_rx) = mpsc::channel::<SnapshotChunk>(1);
    let mut call = Box::pin(client.snapshot(ReceiverStream::new(req_rx)));
    let io_timeout = shared.cfg.snap_io_timeout;
    let mut next = Some(SnapshotChunk {
        message: Some(msg),
        data: vec![],
    });
    while let Some(chunk) = next.take() {
        tokio::select! {
            // A receiver that gave up (bad checksum, too many transfers) explains why.
            biased;
            res = &mut call => return Err(refused(res)),
            permit = tokio::time::timeout(io_timeout, req_tx.reserve()) => match permit {
                Ok(Ok(permit)) => permit.send(chunk),
                Ok(Err(_)) => {
                    return Err(match tokio::time::timeout(io_timeout, &mut call).await {
                        Ok(res) => refused(res),
                        Err(_) => Error::Transport("snapshot stream closed".into()),
                    })
                }
                Err(_) => return Err(Error::Transport(format!(
                    "receiver accepted no snapshot chunk for {io_timeout:?}"
                ))),
            },
        }
        next = match chunk_rx.recv().await {
            Some(Ok(data)) => Some(SnapshotChunk {
                message: None,
                data,
            }),
            // Dropping the call resets the stream: the receiver discards the partial file.
            Some(Err(e)) => return Err(e),
            None => None,
        };
    }
    // End of the request stream: the receiver verifies the file and delivers the message.
    drop(req_tx);
    match tokio::time::timeout(io_timeout, call).await {
        Ok(Ok(_)) => Ok((key, total)),
        Ok(Err(status)) => Err(Error::Transport(format!(
            "receiver refused the snapshot: {}: {}",
            status.code(),
            status.message()
        ))),
        Err(_) => Err(Error::Transport(format!(
            "receiver did not confirm the snapshot within {io_timeout:?}"
        ))),
    }
}

/// The error of a stream the receiver ended before it had the whole file.
fn refused<T>(res: std::result::Result<T, tonic::Status>) -> Error {
    match res {
        Ok(_) => Error::Transport("receiver ended the snapshot stream early".into()),
        Err(status) => Error::Transport(format!(
            "receiver refused the snapshot: {}: {}",
            status.code(),
            status.message()
        )),
    }
}
