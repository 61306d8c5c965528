//! Receiving one snapshot: check the leading `MsgSnapshot`, rebuild its file with
//! [`SnapChunkWriter`](raft_core::snap::SnapChunkWriter) (which verifies every section's
//! checksum), and only once the whole file is verified and published deliver the message.

use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::Stream;
use proto::raft_serverpb::{Done, RaftMessage, SnapshotChunk};
use raft_core::snap::{decode_descriptor, SnapKey, SnapKind};
use tokio::sync::mpsc;
use tonic::Status;

use super::server::{check_message, to_status, RaftReceiver};
use super::transport::is_snapshot;
use crate::errors::{Error, Result};

/// What the network side hands to the blocking file writer.
enum Piece {
    Data(Vec<u8>),
    /// The sender ended the stream cleanly: finish (verify size, sync, publish).
    End,
}

/// Chunks buffered between the network and the disk.
const WRITE_AHEAD: usize = 4;

impl RaftReceiver {
    /// Handles a `Snapshot` stream. The answer is `Done` only if the file was received whole,
    /// verified, published and its message delivered; otherwise nothing is delivered and the
    /// partial file is removed.
    pub async fn snapshot_stream<S>(&self, mut stream: S) -> std::result::Result<Done, Status>
    where
        S: Stream<Item = std::result::Result<SnapshotChunk, Status>> + Unpin,
    {
        let io_timeout = self.cfg.snap_io_timeout;
        let first = match tokio::time::timeout(io_timeout, self.next_or_shutdown(&mut stream)).await
        {
            Ok(Err(status)) => return Err(status),
            Ok(Ok(Some(chunk))) => chunk?,
            Ok(Ok(None)) => {
                return Err(self.rejected(Status::invalid_argument("empty snapshot stream")))
            }
            Err(_) => {
                return Err(self.rejected(Status::deadline_exceeded("no snapshot message arrived")))
            }
        };
        let Some(msg) = first.message else {
            return Err(self.rejected(Status::invalid_argument(
                "the first snapshot chunk must carry the raft message",
            )));
        };
        let (key, desc) = match describe(&msg) {
            Ok(v) => v,
            Err(e) => return Err(self.rejected(e)),
        };
        let Ok(_slot) = self.snap_slots.try_acquire() else {
            return Err(self.rejected(Status::resource_exhausted(format!(
                "already receiving {} snapshots",
                self.cfg.snap_max_concurrent_recvs
            ))));
        };
        let to_peer_id = msg.to_peer.as_ref().map_or(0, |p| p.id);
        self.stats
            .snapshots_receiving
            .fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let res = self.receive_file(key, desc, first.data, &mut stream).await;
        self.stats
            .snapshots_receiving
            .fetch_sub(1, Ordering::Relaxed);
        let bytes = match res {
            Ok(bytes) => bytes,
            Err(status) => {
                tracing::warn!(
                    region_id = key.region_id,
                    peer_id = to_peer_id,
                    term = key.term,
                    index = key.index,
                    error = %status.message(),
                    "snapshot receive failed"
                );
                return Err(self.rejected(status));
            }
        };
        tracing::info!(
            region_id = key.region_id,
            peer_id = to_peer_id,
            term = key.term,
            index = key.index,
            bytes,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "snapshot received"
        );
        if let Err(e) = self.sink.deliver(msg) {
            // The sender's raft retries with a new transfer; this file would only be garbage.
            if let Err(del) = self.snap_mgr.delete(&key, SnapKind::Received) {
                tracing::warn!(region_id = key.region_id, error = %del, "cannot delete undelivered snapshot");
            }
            return Err(self.rejected(match e {
                Error::Shutdown => Status::unavailable("store is shutting down"),
                e => Status::unavailable(format!("snapshot message not delivered: {e}")),
            }));
        }
        self.stats
            .snapshots_received
            .fetch_add(1, Ordering::Relaxed);
        Ok(Done {})
    }

    fn rejected(&self, status: Status) -> Status {
        self.stats
            .snapshots_rejected
            .fetch_add(1, Ordering::Relaxed);
        status
    }

    /// Writes the file from `first_data` and the rest of the stream; returns its size.
    async fn receive_file<S>(
        &self,
        key: SnapKey,
        desc: proto::raft_serverpb::RaftSnapshotData,
        first_data: Vec<u8>,
        stream: &mut S,
    ) -> std::result::Result<u64, Status>
    where
        S: Stream<Item = std::result::Result<SnapshotChunk, Status>> + Unpin,
    {
        let total = desc.file_size;
        let (tx, rx) = mpsc::channel::<Piece>(WRITE_AHEAD);
        let mgr = self.snap_mgr.clone();
        let writer = tokio::task::spawn_blocking(move || write_file(&mgr, key, &desc, rx));

        let io_timeout = self.cfg.snap_io_timeout;
        let mut pending = (!first_data.is_empty()).then_some(first_data);
        // `Err` here means the transfer is abandoned: dropping `tx` without `End` makes the
        // writer discard the partial file.
        let outcome: std::result::Result<(), Status> = async {
            loop {
                if let Some(data) = pending.take() {
                    if tx.send(Piece::Data(data)).await.is_err() {
                        // The writer stopped on an error; it reports it below.
                        return Ok(());
                    }
                }
                match tokio::time::timeout(io_timeout, self.next_or_shutdown(stream)).await {
                    Ok(Err(status)) => return Err(status),
                    Ok(Ok(Some(Ok(chunk)))) => {
                        if chunk.message.is_some() {
                            return Err(Status::invalid_argument(
                                "only the first snapshot chunk may carry a raft message",
                            ));
                        }
                        pending = Some(chunk.data);
                    }
                    Ok(Ok(Some(Err(status)))) => {
                        return Err(Status::aborted(format!(
                            "snapshot stream broken: {}",
                            status.message()
                        )))
                    }
                    Ok(Ok(None)) => {
                        let _ = tx.send(Piece::End).await;
                        return Ok(());
                    }
                    Err(_) => {
                        return Err(Status::deadline_exceeded(format!(
                            "no snapshot chunk for {io_timeout:?}"
                        )))
                    }
                }
            }
        }
        .await;
        drop(tx);
        let written = writer
            .await
            .map_err(|e| Status::internal(format!("snapshot writer task: {e}")))?;
        outcome?;
        written.map_err(|e| to_status(&e))?;
        Ok(total)
    }
}

/// Checks the leading message and decodes the snapshot it describes.
fn describe(
    msg: &RaftMessage,
) -> std::result::Result<(SnapKey, proto::raft_serverpb::RaftSnapshotData), Status> {
    check_message(msg).map_err(Status::invalid_argument)?;
    if !is_snapshot(msg) {
        return Err(Status::invalid_argument(
            "the Snapshot stream only carries MsgSnapshot",
        ));
    }
    let snap = msg
        .message
        .as_ref()
        .and_then(|m| m.snapshot.as_ref())
        .ok_or_else(|| Status::invalid_argument("MsgSnapshot without a snapshot"))?;
    let meta = snap
        .metadata
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("snapshot without metadata"))?;
    let desc = decode_descriptor(&snap.data).map_err(|e| to_status(&Error::Core(e)))?;
    Ok((SnapKey::new(msg.region_id, meta.term, meta.index), desc))
}

/// Runs on a blocking thread: writes the pieces and publishes the file on `End`. Returning
/// without `End` (an error, or a sender that went away) drops the writer, which deletes the
/// partial file.
fn write_file(
    mgr: &raft_core::snap::SnapManager,
    key: SnapKey,
    desc: &proto::raft_serverpb::RaftSnapshotData,
    mut rx: mpsc::Receiver<Piece>,
) -> Result<()> {
    let mut writer = mgr.chunk_writer(&key, desc)?;
    while let Some(piece) = rx.blocking_recv() {
        match piece {
            Piece::Data(data) => writer.write_chunk(&data)?,
            Piece::End => return Ok(writer.finish()?),
        }
    }
    Err(Error::Transport(format!(
        "snapshot {key} transfer abandoned after {} bytes",
        writer.written()
    )))
}
