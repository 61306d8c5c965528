//! The two bidirectional streams: `Tso` and `RegionHeartbeat`.
//!
//! Each stream gets a task that reads requests and writes responses into a channel the RPC
//! returns as its response stream. The task ends when the client closes its side, on a transport
//! error, or at shutdown; dropping its sender then ends the response stream.

use std::collections::HashSet;

use proto::pdpb::*;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::{PdService, ResponseStream};
use crate::cluster::streams::STREAM_BUFFER;
use crate::errors::Error;

/// TSO answers queued before the task waits for the client to read.
const TSO_BUFFER: usize = 64;

/// Reads the next request, or `None` when the stream is over (client done, transport error,
/// shutdown).
async fn next_request<T>(
    shutdown: &mut watch::Receiver<bool>,
    inbound: &mut Streaming<T>,
    what: &'static str,
) -> Option<T> {
    tokio::select! {
        _ = shutdown.wait_for(|stop| *stop) => None,
        msg = inbound.message() => match msg {
            Ok(m) => m,
            Err(status) => {
                tracing::debug!(stream = what, error = %status, "stream read failed");
                None
            }
        },
    }
}

/// `Tso`: one response per request, in order; `logical` is the largest of the batch.
pub fn tso(svc: &PdService, mut inbound: Streaming<TsoRequest>) -> ResponseStream<TsoResponse> {
    let (tx, rx) = mpsc::channel(TSO_BUFFER);
    let svc = svc.clone();
    let mut shutdown = svc.shutdown.clone();
    tokio::spawn(async move {
        while let Some(req) = next_request(&mut shutdown, &mut inbound, "tso").await {
            let resp = answer_tso(&svc, &req);
            let failed = resp.is_err();
            if tx.send(resp).await.is_err() || failed {
                break;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

/// A failed TSO request ends the stream with a status: a client cannot use a timestamp
/// response that carries no timestamp.
fn answer_tso(svc: &PdService, req: &TsoRequest) -> Result<TsoResponse, Status> {
    svc.check_header(&req.header)?;
    let ts = svc.cluster.tso().allocate(req.count).map_err(|e| match e {
        Error::InvalidRequest(m) => Status::invalid_argument(m),
        other => {
            tracing::error!(error = %other, "tso allocation failed");
            Status::unavailable(other.to_string())
        }
    })?;
    Ok(TsoResponse {
        header: Some(svc.cluster.header()),
        count: req.count,
        timestamp: Some(ts),
    })
}

/// `RegionHeartbeat`: applies each heartbeat; operator commands go to the stream of the region
/// leader's store (usually this one), errors back to this stream.
pub fn region_heartbeat(
    svc: &PdService,
    mut inbound: Streaming<RegionHeartbeatRequest>,
) -> ResponseStream<RegionHeartbeatResponse> {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let svc = svc.clone();
    let mut shutdown = svc.shutdown.clone();
    tokio::spawn(async move {
        let streams = svc.cluster.streams();
        let stream_id = streams.new_stream_id();
        let mut bound: HashSet<u64> = HashSet::new();
        while let Some(req) = next_request(&mut shutdown, &mut inbound, "region heartbeat").await {
            if let Err(status) = svc.check_header(&req.header) {
                let _ = tx.send(Err(status)).await;
                break;
            }
            if let Some(leader) = &req.leader {
                if bound.insert(leader.store_id) {
                    streams.bind(leader.store_id, stream_id, &tx);
                }
            }
            if let Err(e) = svc.cluster.handle_region_heartbeat(&req) {
                let region_id = req.region.as_ref().map_or(0, |r| r.id);
                tracing::debug!(region_id, error = %e, "region heartbeat rejected");
                let mut header = svc.cluster.header();
                match e.into_wire() {
                    Ok(err) => header.error = Some(err),
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                }
                let resp = RegionHeartbeatResponse {
                    header: Some(header),
                    region_id,
                    ..Default::default()
                };
                // Best effort, like every response on this stream.
                let _ = tx.try_send(Ok(resp));
            }
        }
        streams.unbind(stream_id);
    });
    Box::pin(ReceiverStream::new(rx))
}
