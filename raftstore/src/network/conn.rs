//! The connection task of one destination store: resolve, connect, stream batches, and on
//! failure drop what is queued (reporting it), back off and start over.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use prost::Message as _;
use proto::raft_serverpb::RaftMessage;
use proto::tikvpb::tikv_client::TikvClient;
use proto::tikvpb::BatchRaftMessage;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use super::backoff::Backoff;
use super::config::NetworkConfig;
use super::transport::{Shared, StoreQueue};
use crate::errors::{Error, Result};

/// How many batches may wait between this task and HTTP/2 flow control. Small: the store's
/// queue is where messages wait (and where backpressure is applied).
const STREAM_BUFFER: usize = 2;

/// Resolves `store_id` (on a blocking thread: resolvers may call the scheduler) and opens a new
/// connection to it.
pub(super) async fn connect(shared: &Shared, store_id: u64) -> Result<TikvClient<Channel>> {
    let resolver = shared.resolver.clone();
    let addr = tokio::task::spawn_blocking(move || resolver.resolve(store_id))
        .await
        .map_err(|e| Error::Transport(format!("resolving store {store_id}: {e}")))??;
    let channel = endpoint(&addr, &shared.cfg)?
        .connect()
        .await
        .map_err(|e| Error::Transport(format!("connecting to store {store_id} at {addr}: {e}")))?;
    // Responses are tiny (`Done`); requests are bounded by our own batch and chunk limits.
    Ok(TikvClient::new(channel).max_encoding_message_size(usize::MAX))
}

fn endpoint(addr: &str, cfg: &NetworkConfig) -> Result<Endpoint> {
    let url = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(url)
        .map_err(|e| Error::Transport(format!("invalid store address {addr:?}: {e}")))?
        .connect_timeout(cfg.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(cfg.keepalive_interval)
        .keep_alive_timeout(cfg.keepalive_timeout)
        .keep_alive_while_idle(true))
}

/// Why a stream ended.
enum StreamEnd {
    Shutdown,
    Broken(String),
}

/// Runs until the transport shuts down.
pub(super) async fn run(shared: Arc<Shared>, queue: Arc<StoreQueue>) {
    let store_id = queue.store_id;
    let mut shutdown = shared.shutdown.subscribe();
    let mut backoff = Backoff::new(
        shared.cfg.reconnect_backoff_base,
        shared.cfg.reconnect_backoff_max,
    );
    // A message taken off the queue that did not fit in the previous batch.
    let mut carry: Option<RaftMessage> = None;
    loop {
        // Connect lazily: an idle (or dead) store costs nothing until a message is queued.
        while carry.is_none() && queue.rx.is_empty() {
            tokio::select! {
                _ = queue.notify.notified() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
        let connected = tokio::select! {
            r = connect(&shared, store_id) => r,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match connected {
            Ok(client) => {
                queue.connects.fetch_add(1, Ordering::Relaxed);
                queue.connected.store(true, Ordering::Relaxed);
                tracing::info!(store_id, "connected to store");
                let since = Instant::now();
                let end = stream(&shared, &queue, client, &mut carry, &mut shutdown).await;
                queue.connected.store(false, Ordering::Relaxed);
                // Only a connection that held up counts as recovery; one refused right after
                // the handshake (a peer in standalone mode, say) keeps backing off.
                if since.elapsed() >= shared.cfg.reconnect_backoff_max {
                    backoff.reset();
                }
                match end {
                    StreamEnd::Shutdown => return,
                    StreamEnd::Broken(why) => {
                        tracing::warn!(store_id, error = %why, "raft stream to store broken");
                    }
                }
            }
            Err(e) => {
                queue.connect_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(store_id, error = %e, "cannot connect to store");
            }
        }
        // The store may have moved; everything queued meanwhile would be stale by the time we
        // are back, and raft must probe the peers instead of streaming appends into the void.
        shared.resolver.invalidate(store_id);
        let dropped: Vec<RaftMessage> = carry
            .take()
            .into_iter()
            .chain(queue.rx.try_iter())
            .collect();
        if !dropped.is_empty() {
            queue
                .dropped_messages
                .fetch_add(dropped.len() as u64, Ordering::Relaxed);
            shared.report_all_dropped(dropped);
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.next_delay()) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Streams batches to `client` until the stream breaks or the transport shuts down.
async fn stream(
    shared: &Shared,
    queue: &StoreQueue,
    mut client: TikvClient<Channel>,
    carry: &mut Option<RaftMessage>,
    shutdown: &mut watch::Receiver<bool>,
) -> StreamEnd {
    let (tx, rx) = mpsc::channel::<BatchRaftMessage>(STREAM_BUFFER);
    let mut call = Box::pin(client.batch_raft(ReceiverStream::new(rx)));
    loop {
        let msgs = next_batch(queue, &shared.cfg, carry);
        if msgs.is_empty() {
            tokio::select! {
                _ = queue.notify.notified() => continue,
                res = &mut call => return broken(res),
                _ = shutdown.wait_for(|stop| *stop) => return StreamEnd::Shutdown,
            }
        }
        // Reserve before handing the batch over, so a failure leaves it with us to report.
        let permit = tokio::select! {
            permit = tx.reserve() => permit,
            res = &mut call => {
                report_batch(shared, queue, msgs);
                return broken(res);
            }
            _ = shutdown.wait_for(|stop| *stop) => return StreamEnd::Shutdown,
        };
        let Ok(permit) = permit else {
            report_batch(shared, queue, msgs);
            return StreamEnd::Broken("stream closed".into());
        };
        let n = msgs.len() as u64;
        permit.send(BatchRaftMessage { msgs });
        queue.sent_messages.fetch_add(n, Ordering::Relaxed);
        queue.sent_batches.fetch_add(1, Ordering::Relaxed);
    }
}

fn broken<T>(res: std::result::Result<T, tonic::Status>) -> StreamEnd {
    StreamEnd::Broken(match res {
        Ok(_) => "receiver ended the stream".into(),
        Err(status) => format!("{}: {}", status.code(), status.message()),
    })
}

fn report_batch(shared: &Shared, queue: &StoreQueue, msgs: Vec<RaftMessage>) {
    queue
        .dropped_messages
        .fetch_add(msgs.len() as u64, Ordering::Relaxed);
    shared.report_all_dropped(msgs);
}

/// Takes up to `max_batch_messages` messages and `max_batch_bytes` bytes off the queue (a single
/// larger message goes alone). A message that does not fit waits in `carry` for the next batch.
fn next_batch(
    queue: &StoreQueue,
    cfg: &NetworkConfig,
    carry: &mut Option<RaftMessage>,
) -> Vec<RaftMessage> {
    let mut msgs = Vec::new();
    let mut bytes = 0usize;
    while msgs.len() < cfg.max_batch_messages {
        let Some(msg) = carry.take().or_else(|| queue.rx.try_recv().ok()) else {
            break;
        };
        let size = msg.encoded_len();
        if !msgs.is_empty() && bytes + size > cfg.max_batch_bytes {
            *carry = Some(msg);
            break;
        }
        bytes += size;
        msgs.push(msg);
    }
    msgs
}
