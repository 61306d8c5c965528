//! `BatchCommands`: every caller's requests to one store share one bidirectional stream.
//!
//! ```text
//!  callers ──(command, reply)──▶ queue ──▶ driver task (one per store connection)
//!                                           │ takes what is queued (≤ batch-max-requests,
//!                                           │ ≤ batch-max-bytes), numbers it ──▶ one
//!                                           │ BatchCommandsRequest on the stream
//!                                           ◀── BatchCommandsResponse: each answer goes to its
//!                                               caller by id
//! ```
//!
//! A unary call costs a whole HTTP/2 stream on both sides (headers, trailers, a task, usually a
//! write syscall per response); with many callers in flight most of a small request's CPU goes
//! there. On the shared stream a request costs its own bytes, and requests queued together
//! leave in one message — the same reason TiKV's own clients batch.
//!
//! Failures: when the stream breaks, every request in flight on it fails with the stream's
//! status (the caller handles it like a failed unary call) and the next request opens a new
//! stream. A server without `BatchCommands` (UNIMPLEMENTED) makes this store unary-only. An
//! answer without a command (the server refused the request with a status it cannot put in a
//! batch, or does not serve that command) is [`BatchOutcome::Empty`]: the caller re-sends the
//! request as a unary call to get the real answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto::tikvpb::batch_commands_request::request::Cmd;
use proto::tikvpb::batch_commands_request::Request as BatchRequest;
use proto::tikvpb::batch_commands_response::response::Cmd as RespCmd;
use proto::tikvpb::{BatchCommandsRequest, BatchCommandsResponse};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Status, Streaming};

use crate::store::TikvGrpc;

/// How often a driver drops the replies of callers that stopped waiting (timed out).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How a batched request ended (stream failures are the `Err` of [`BatchSender::call`]).
#[derive(Debug)]
pub(crate) enum BatchOutcome {
    /// The store's answer (boxed: the largest response type is over a kilobyte).
    Answered(Box<RespCmd>),
    /// An answer without a command: re-send the request as a unary call.
    Empty,
    /// The store does not serve `BatchCommands`: use unary calls.
    Unsupported,
}

struct Pending {
    cmd: Cmd,
    bytes: usize,
    reply: oneshot::Sender<Result<BatchOutcome, Status>>,
}

/// Limits of one batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    /// Most requests per message.
    pub max_requests: usize,
    /// Most encoded request bytes per message (a request alone over it is sent anyway).
    pub max_bytes: usize,
}

/// The sending side of one store's batch stream. Cheap to clone; the driver task ends once
/// every clone is gone and the requests in flight are answered.
#[derive(Clone)]
pub(crate) struct BatchSender {
    queue: mpsc::UnboundedSender<Pending>,
    unsupported: Arc<AtomicBool>,
    max_bytes: usize,
}

impl BatchSender {
    /// Starts the driver for the store behind `grpc` on the current runtime.
    pub fn spawn(grpc: TikvGrpc, limits: BatchLimits) -> BatchSender {
        let (queue, rx) = mpsc::unbounded_channel();
        let unsupported = Arc::new(AtomicBool::new(false));
        tokio::spawn(drive(grpc, rx, limits, unsupported.clone()));
        BatchSender {
            queue,
            unsupported,
            max_bytes: limits.max_bytes,
        }
    }

    /// Largest encoded request worth batching; larger ones go as unary calls.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Whether the store may serve `BatchCommands` (false once it answered UNIMPLEMENTED).
    pub fn is_supported(&self) -> bool {
        !self.unsupported.load(Ordering::Relaxed)
    }

    /// Sends `cmd` (`bytes`: its encoded size) on the stream and waits for its answer.
    pub async fn call(&self, cmd: Cmd, bytes: usize) -> Result<BatchOutcome, Status> {
        let (reply, answer) = oneshot::channel();
        if self.queue.send(Pending { cmd, bytes, reply }).is_err() {
            return Err(Status::unavailable("batch stream driver stopped"));
        }
        answer
            .await
            .unwrap_or_else(|_| Err(Status::unavailable("batch stream driver stopped")))
    }
}

/// An open stream: where requests go and where answers come from.
struct Conn {
    requests: mpsc::UnboundedSender<BatchCommandsRequest>,
    responses: Streaming<BatchCommandsResponse>,
}

type Reply = oneshot::Sender<Result<BatchOutcome, Status>>;

async fn open(grpc: &mut TikvGrpc) -> Result<Conn, Status> {
    let (requests, rx) = mpsc::unbounded_channel();
    let responses = grpc
        .batch_commands(UnboundedReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok(Conn {
        requests,
        responses,
    })
}

/// The next answer batch of `conn`, or never when no stream is open.
async fn next_response(conn: &mut Option<Conn>) -> Result<Option<BatchCommandsResponse>, Status> {
    match conn {
        Some(c) => c.responses.message().await,
        None => std::future::pending().await,
    }
}

fn fail_all(inflight: &mut HashMap<u64, Reply>, status: &Status) {
    for (_, reply) in inflight.drain() {
        let _ = reply.send(Err(Status::new(status.code(), status.message().to_owned())));
    }
}

async fn drive(
    mut grpc: TikvGrpc,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    limits: BatchLimits,
    unsupported: Arc<AtomicBool>,
) {
    let mut inflight: HashMap<u64, Reply> = HashMap::new();
    let mut next_id = 0u64;
    let mut conn: Option<Conn> = None;
    // A request taken off the queue that did not fit in the previous batch.
    let mut carry: Option<Pending> = None;
    let mut closed = false;
    let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if closed && carry.is_none() && inflight.is_empty() {
            return;
        }
        tokio::select! {
            first = async {
                match carry.take() {
                    Some(p) => Some(p),
                    None => queue.recv().await,
                }
            }, if !closed || carry.is_some() => {
                let Some(first) = first else {
                    closed = true;
                    continue;
                };
                let mut bytes = first.bytes;
                let mut batch = vec![first];
                while batch.len() < limits.max_requests {
                    let Ok(p) = queue.try_recv() else { break };
                    if bytes + p.bytes > limits.max_bytes {
                        carry = Some(p);
                        break;
                    }
                    bytes += p.bytes;
                    batch.push(p);
                }
                if conn.is_none() {
                    match open(&mut grpc).await {
                        Ok(c) => conn = Some(c),
                        Err(status) => {
                            let gone = status.code() == tonic::Code::Unimplemented;
                            if gone {
                                tracing::info!("store does not serve BatchCommands; using unary calls");
                                unsupported.store(true, Ordering::Relaxed);
                            }
                            for p in batch.into_iter().chain(carry.take()) {
                                let answer = if gone {
                                    Ok(BatchOutcome::Unsupported)
                                } else {
                                    Err(Status::new(status.code(), status.message().to_owned()))
                                };
                                let _ = p.reply.send(answer);
                            }
                            continue;
                        }
                    }
                }
                let mut req = BatchCommandsRequest {
                    requests: Vec::with_capacity(batch.len()),
                    request_ids: Vec::with_capacity(batch.len()),
                };
                for p in batch {
                    next_id += 1;
                    req.requests.push(BatchRequest { cmd: Some(p.cmd) });
                    req.request_ids.push(next_id);
                    inflight.insert(next_id, p.reply);
                }
                let c = conn.as_ref().expect("opened above");
                if c.requests.send(req).is_err() {
                    // The request side is gone with the stream; the response side reports why.
                    tracing::debug!("batch stream closed while sending");
                }
            }
            msg = next_response(&mut conn) => {
                match msg {
                    Ok(Some(resp)) => {
                        for (id, r) in resp.request_ids.into_iter().zip(resp.responses) {
                            if let Some(reply) = inflight.remove(&id) {
                                let outcome = match r.cmd {
                                    Some(cmd) => BatchOutcome::Answered(Box::new(cmd)),
                                    None => BatchOutcome::Empty,
                                };
                                let _ = reply.send(Ok(outcome));
                            }
                        }
                    }
                    Ok(None) => {
                        conn = None;
                        fail_all(&mut inflight, &Status::unavailable("batch stream ended by the store"));
                    }
                    Err(status) => {
                        tracing::debug!(error = %status, "batch stream failed");
                        conn = None;
                        fail_all(&mut inflight, &status);
                    }
                }
            }
            _ = sweep.tick() => {
                // Callers that timed out dropped their receivers; their answers may never come.
                inflight.retain(|_, reply| !reply.is_closed());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use proto::kvrpcpb::{RawGetRequest, RawGetResponse};
    use proto::tikvpb::batch_commands_response::Response as BatchResponse;
    use proto::tikvpb::tikv_server::{Tikv, TikvServer};
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;
    use tokio_stream::StreamExt;
    use tonic::codegen::BoxStream;
    use tonic::{Request, Response};

    use super::*;
    use crate::config::Config;
    use crate::dispatch::call;
    use crate::store::StoreConn;

    /// How the fake store treats `BatchCommands`.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        /// Answers `RawGet k` with value `k`, except key `empty`, answered without a command.
        Serve,
        /// Does not implement it.
        Unimplemented,
        /// Reads one message, then ends the stream with an error.
        Break,
    }

    struct FakeStore {
        mode: Mode,
        batches: Arc<AtomicU64>,
        unary: Arc<AtomicU64>,
    }

    #[tonic::async_trait]
    impl Tikv for FakeStore {
        async fn raw_get(
            &self,
            req: Request<RawGetRequest>,
        ) -> Result<Response<RawGetResponse>, Status> {
            self.unary.fetch_add(1, Ordering::Relaxed);
            let key = req.into_inner().key;
            if key == b"empty" {
                return Err(Status::invalid_argument("no such thing"));
            }
            Ok(Response::new(RawGetResponse {
                value: key,
                ..Default::default()
            }))
        }

        async fn batch_commands(
            &self,
            req: Request<Streaming<BatchCommandsRequest>>,
        ) -> Result<Response<BoxStream<BatchCommandsResponse>>, Status> {
            if self.mode == Mode::Unimplemented {
                return Err(Status::unimplemented("no batching here"));
            }
            let mode = self.mode;
            let batches = self.batches.clone();
            let mut incoming = req.into_inner();
            let out = async_stream(move |tx| async move {
                while let Some(Ok(batch)) = incoming.next().await {
                    batches.fetch_add(1, Ordering::Relaxed);
                    if mode == Mode::Break {
                        let _ = tx.send(Err(Status::unavailable("store went away")));
                        return;
                    }
                    let mut resp = BatchCommandsResponse::default();
                    // Answer in reverse order: callers must be matched by id.
                    for (req, id) in batch.requests.into_iter().zip(batch.request_ids).rev() {
                        let cmd = match req.cmd {
                            Some(Cmd::RawGet(g)) if g.key != b"empty" => {
                                Some(RespCmd::RawGet(RawGetResponse {
                                    value: g.key,
                                    ..Default::default()
                                }))
                            }
                            _ => None,
                        };
                        resp.request_ids.push(id);
                        resp.responses.push(BatchResponse { cmd });
                    }
                    if tx.send(Ok(resp)).is_err() {
                        return;
                    }
                }
            });
            Ok(Response::new(out))
        }
    }

    /// A response stream fed by `f` through a channel.
    fn async_stream<F, Fut>(f: F) -> BoxStream<BatchCommandsResponse>
    where
        F: FnOnce(mpsc::UnboundedSender<Result<BatchCommandsResponse, Status>>) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(f(tx));
        Box::pin(UnboundedReceiverStream::new(rx))
    }

    struct Fixture {
        grpc: TikvGrpc,
        batches: Arc<AtomicU64>,
        unary: Arc<AtomicU64>,
    }

    async fn store(mode: Mode) -> Fixture {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let batches = Arc::new(AtomicU64::new(0));
        let unary = Arc::new(AtomicU64::new(0));
        let svc = TikvServer::new(FakeStore {
            mode,
            batches: batches.clone(),
            unary: unary.clone(),
        });
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        let channel =
            crate::channel::lazy_channel(&format!("http://{addr}"), &Config::new_test_config())
                .unwrap();
        Fixture {
            grpc: TikvGrpc::new(channel),
            batches,
            unary,
        }
    }

    fn get(key: &str) -> RawGetRequest {
        RawGetRequest {
            key: key.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    const LIMITS: BatchLimits = BatchLimits {
        max_requests: 16,
        max_bytes: 1 << 20,
    };

    // One thread: the 200 callers queue their requests before the driver runs again, so the
    // batching is deterministic.
    #[tokio::test(flavor = "current_thread")]
    async fn concurrent_callers_share_batches_and_get_their_own_answers() {
        let f = store(Mode::Serve).await;
        let conn = StoreConn {
            grpc: f.grpc.clone(),
            batch: Some(BatchSender::spawn(f.grpc.clone(), LIMITS)),
        };
        let calls = (0..200).map(|i| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let key = format!("key-{i}");
                let resp = call(conn, get(&key), Duration::from_secs(5)).await.unwrap();
                assert_eq!(resp.value, key.as_bytes());
            })
        });
        for c in calls.collect::<Vec<_>>() {
            c.await.unwrap();
        }
        let batches = f.batches.load(Ordering::Relaxed);
        assert!(
            (13..=20).contains(&batches),
            "{batches} batches for 200 requests, at most 16 per batch"
        );
        assert_eq!(f.unary.load(Ordering::Relaxed), 0, "no unary call needed");

        // An answer without a command is asked again as a unary call, which has the status.
        let status = call(conn.clone(), get("empty"), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(f.unary.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_store_without_batch_commands_gets_unary_calls() {
        let f = store(Mode::Unimplemented).await;
        let batch = BatchSender::spawn(f.grpc.clone(), LIMITS);
        let conn = StoreConn {
            grpc: f.grpc.clone(),
            batch: Some(batch.clone()),
        };
        for i in 0..3 {
            let resp = call(conn.clone(), get("k"), Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(resp.value, b"k", "call {i}");
        }
        assert!(!batch.is_supported());
        assert_eq!(f.unary.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_stream_fails_what_is_in_flight_and_the_next_request_reopens_it() {
        let f = store(Mode::Break).await;
        let batch = BatchSender::spawn(f.grpc.clone(), LIMITS);
        let cmd = Cmd::RawGet(get("k"));
        let err = batch.call(cmd.clone(), 8).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        let err = batch.call(cmd, 8).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");
        assert_eq!(
            f.batches.load(Ordering::Relaxed),
            2,
            "one stream per failure"
        );
        assert!(batch.is_supported());
    }
}
