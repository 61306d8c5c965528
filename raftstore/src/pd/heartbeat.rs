//! The long-lived `RegionHeartbeat` stream: opened on the first heartbeat, re-opened (after
//! re-discovering the leader) whenever it breaks; responses go to the installed handler.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use proto::pdpb::{RegionHeartbeatRequest, RegionHeartbeatResponse};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::leader::{check_header, CallError, Core};
use crate::network::backoff::Backoff;
use crate::pd_client::HeartbeatResponseHandler;

/// Heartbeats buffered between the queue and HTTP/2; more wait in the client's queue.
const STREAM_BUFFER: usize = 64;

/// Where heartbeat responses go; replaced by `set_heartbeat_response_handler`.
pub(super) type HandlerSlot = Arc<RwLock<Option<Arc<HeartbeatResponseHandler>>>>;

#[derive(Default)]
pub(super) struct HeartbeatCounters {
    pub(super) streams_opened: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) responses: AtomicU64,
    pub(super) error_responses: AtomicU64,
}

/// Counters of the region heartbeat stream, for status and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HeartbeatStats {
    /// Times the stream was (re)opened.
    pub streams_opened: u64,
    /// Heartbeats handed to the stream.
    pub sent: u64,
    /// Responses passed to the handler.
    pub responses: u64,
    /// Responses carrying an error (e.g. a stale heartbeat); logged, not passed on.
    pub error_responses: u64,
}

impl HeartbeatCounters {
    pub(super) fn snapshot(&self) -> HeartbeatStats {
        HeartbeatStats {
            streams_opened: self.streams_opened.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            responses: self.responses.load(Ordering::Relaxed),
            error_responses: self.error_responses.load(Ordering::Relaxed),
        }
    }
}

/// Runs until shutdown or until the client (the queue's sender) is dropped.
pub(super) async fn run(
    core: Arc<Core>,
    mut queue: mpsc::Receiver<RegionHeartbeatRequest>,
    handler: HandlerSlot,
    counters: Arc<HeartbeatCounters>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new(core.cfg.backoff_base, core.cfg.backoff_max);
    let mut first: Option<RegionHeartbeatRequest> = None;
    loop {
        // Open the stream only when there is something to say.
        let req = match first.take() {
            Some(req) => req,
            None => tokio::select! {
                req = queue.recv() => match req {
                    Some(req) => req,
                    None => return,
                },
                _ = shutdown.wait_for(|stop| *stop) => return,
            },
        };
        let leader = core.leader();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tx.try_send(req).expect("fresh channel has room");
        let mut client = leader.client.clone();
        let opened = tokio::select! {
            r = tokio::time::timeout(core.cfg.request_timeout, client.region_heartbeat(ReceiverStream::new(rx))) => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let mut inbound = match opened {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => {
                tracing::warn!(code = ?status.code(), error = %status.message(), "cannot open region heartbeat stream");
                if !pause_and_reconnect(&core, leader.generation, &mut backoff, &mut shutdown).await
                {
                    return;
                }
                continue;
            }
            Err(_) => {
                tracing::warn!("opening the region heartbeat stream timed out");
                if !pause_and_reconnect(&core, leader.generation, &mut backoff, &mut shutdown).await
                {
                    return;
                }
                continue;
            }
        };
        counters.streams_opened.fetch_add(1, Ordering::Relaxed);
        counters.sent.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(leader = %leader.url, "region heartbeat stream opened");
        loop {
            tokio::select! {
                req = queue.recv() => {
                    let Some(req) = req else { return };
                    match tx.try_send(req) {
                        Ok(()) => {
                            counters.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        // HTTP/2 is not keeping up; heartbeats are periodic, the next one
                        // carries the same information.
                        Err(mpsc::error::TrySendError::Full(req)) => {
                            let region_id = req.region.as_ref().map_or(0, |r| r.id);
                            tracing::debug!(region_id, "region heartbeat dropped: stream busy");
                        }
                        Err(mpsc::error::TrySendError::Closed(req)) => {
                            first = Some(req);
                            break;
                        }
                    }
                }
                msg = inbound.message() => match msg {
                    Ok(Some(resp)) => {
                        backoff.reset();
                        dispatch(&core, &handler, &counters, resp);
                    }
                    Ok(None) => {
                        tracing::warn!("scheduler closed the region heartbeat stream");
                        break;
                    }
                    Err(status) => {
                        tracing::warn!(code = ?status.code(), error = %status.message(), "region heartbeat stream broken");
                        break;
                    }
                },
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
        if !pause_and_reconnect(&core, leader.generation, &mut backoff, &mut shutdown).await {
            return;
        }
    }
}

/// Waits out the backoff and re-discovers the leader; `false` on shutdown.
async fn pause_and_reconnect(
    core: &Core,
    generation: u64,
    backoff: &mut Backoff,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(backoff.next_delay()) => {}
        _ = shutdown.wait_for(|stop| *stop) => return false,
    }
    tokio::select! {
        _ = core.reconnect(generation) => true,
        _ = shutdown.wait_for(|stop| *stop) => false,
    }
}

fn dispatch(
    core: &Core,
    handler: &HandlerSlot,
    counters: &HeartbeatCounters,
    resp: RegionHeartbeatResponse,
) {
    let region_id = resp.region_id;
    match check_header("RegionHeartbeat", resp.header.as_ref(), core.cluster_id()) {
        Ok(_) => {}
        Err(CallError::Header { kind, message, .. }) => {
            counters.error_responses.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(region_id, kind = kind.as_str_name(), error = %message, "region heartbeat refused");
            return;
        }
        Err(CallError::Failed(e)) => {
            counters.error_responses.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(region_id, error = %e, "bad region heartbeat response");
            return;
        }
    }
    let Some(handler) = handler.read().clone() else {
        tracing::debug!(
            region_id,
            "region heartbeat response without a handler; dropped"
        );
        return;
    };
    counters.responses.fetch_add(1, Ordering::Relaxed);
    handler(resp);
}
