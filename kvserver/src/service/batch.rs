//! `BatchCommands`: many commands on one bidirectional stream, answered by id in any order.
//!
//! ```text
//!  request stream ──BatchCommandsRequest{requests, ids}──▶ reader task
//!      │ one permit per command in flight (max-batch-inflight): a client that sends faster
//!      │ than the store answers is held back by HTTP/2 flow control, not by memory
//!      ▼
//!  one task per command: the same handler as the unary method ──(id, response)──▶ channel
//!      ▼
//!  response stream: the first answer waiting, plus every other one already there
//!                   (up to max-batch-responses) ──▶ one BatchCommandsResponse
//! ```
//!
//! A unary call costs a whole HTTP/2 stream (headers both ways, trailers, usually a write
//! syscall per response); on this stream a command costs its own bytes, and answers that
//! complete together (one apply round) leave in one message.
//!
//! A command the unary API would refuse with a gRPC status (a malformed request) has no field
//! to carry that status here: it is answered with an empty response (no `cmd`), as is a command
//! this server does not serve. Clients re-send such a command as a unary call to learn why
//! (the workspace client does); nothing was executed.
//!
//! When the server shuts down the stream takes no further request: the commands in flight are
//! answered, then the response stream ends (clients reconnect elsewhere), so a client holding
//! its stream open cannot keep the server from draining.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use proto::tikvpb::batch_commands_request::request::Cmd;
use proto::tikvpb::batch_commands_response::response::Cmd as RespCmd;
use proto::tikvpb::batch_commands_response::Response as BatchResponse;
use proto::tikvpb::{BatchCommandsEmptyResponse, BatchCommandsRequest, BatchCommandsResponse};
use tokio::sync::{mpsc, Semaphore};
use tonic::codegen::BoxStream;
use tonic::{Status, Streaming};

use super::{raw, txn, ServiceCtx};
use crate::storage::Storage;

/// Longest `delay_time` an `Empty` test command may ask for.
const MAX_EMPTY_DELAY: Duration = Duration::from_secs(10);

/// What a command's task hands to the response stream.
type Answer = Result<(u64, BatchResponse), Status>;

/// Serves one `BatchCommands` stream.
pub(super) fn batch_commands<S: Storage>(
    ctx: Arc<ServiceCtx<S>>,
    requests: Streaming<BatchCommandsRequest>,
) -> BoxStream<BatchCommandsResponse> {
    let max_responses = ctx.limits.max_batch_responses;
    let (tx, rx) = mpsc::unbounded_channel::<Answer>();
    tokio::spawn(read_requests(ctx, requests, tx));
    let state = Responses {
        rx,
        failed: None,
        done: false,
    };
    Box::pin(futures::stream::unfold(state, move |mut st| async move {
        if st.done {
            return None;
        }
        if let Some(status) = st.failed.take() {
            st.done = true;
            return Some((Err(status), st));
        }
        // Ends once the reader and every command task are done (all senders dropped).
        let mut next = Some(st.rx.recv().await?);
        let mut out = BatchCommandsResponse::default();
        while let Some(answer) = next.take() {
            match answer {
                Ok((id, resp)) => {
                    out.request_ids.push(id);
                    out.responses.push(resp);
                }
                Err(status) => {
                    // The answers collected so far go first; the error ends the stream.
                    st.failed = Some(status);
                    break;
                }
            }
            if out.responses.len() < max_responses {
                next = st.rx.try_recv().ok();
            }
        }
        if out.responses.is_empty() {
            st.done = true;
            return Some((
                Err(st.failed.take().expect("an error stopped the batch")),
                st,
            ));
        }
        Some((Ok(out), st))
    }))
}

/// The response side's state.
struct Responses {
    rx: mpsc::UnboundedReceiver<Answer>,
    /// An error to end the stream with, after the answers already collected.
    failed: Option<Status>,
    done: bool,
}

/// Reads request batches and starts a task per command, holding one permit per command in
/// flight.
async fn read_requests<S: Storage>(
    ctx: Arc<ServiceCtx<S>>,
    mut requests: Streaming<BatchCommandsRequest>,
    tx: mpsc::UnboundedSender<Answer>,
) {
    let permits = Arc::new(Semaphore::new(ctx.limits.max_batch_inflight));
    let mut stopping = ctx.stopping();
    loop {
        // At shutdown no new request is taken: the commands in flight answer, then the
        // response stream ends (every sender dropped) and the connection can drain.
        let next = tokio::select! {
            next = requests.next() => next,
            _ = stopping.wait_for(|stop| *stop) => {
                tracing::debug!("batch commands stream ended: the server is shutting down");
                return;
            }
        };
        let Some(next) = next else {
            return;
        };
        let batch = match next {
            Ok(batch) => batch,
            Err(status) => {
                // The client went away or sent garbage; commands in flight still finish.
                tracing::debug!(error = %status, "batch commands stream ended");
                return;
            }
        };
        if batch.requests.len() != batch.request_ids.len() {
            let _ = tx.send(Err(Status::invalid_argument(format!(
                "batch of {} requests carries {} request ids",
                batch.requests.len(),
                batch.request_ids.len()
            ))));
            return;
        }
        for (req, id) in batch.requests.into_iter().zip(batch.request_ids) {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let ctx = ctx.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let resp = match req.cmd {
                    Some(cmd) => execute(&ctx, cmd).await,
                    None => None,
                };
                drop(permit);
                let _ = tx.send(Ok((id, BatchResponse { cmd: resp })));
            });
        }
    }
}

/// Runs one command through the handler of its unary method. `None` when the handler refused
/// it with a gRPC status (see the module docs).
///
/// Each handler's future is boxed: unboxed, this future (and the task spawned for every
/// command) would be as large as the largest handler's state, copied around on every spawn.
async fn execute<S: Storage>(ctx: &ServiceCtx<S>, cmd: Cmd) -> Option<RespCmd> {
    let answered = match cmd {
        Cmd::Get(r) => Box::pin(txn::get(ctx, r)).await.map(RespCmd::Get),
        Cmd::Scan(r) => Box::pin(txn::scan(ctx, r)).await.map(RespCmd::Scan),
        Cmd::Prewrite(r) => Box::pin(txn::prewrite(ctx, r)).await.map(RespCmd::Prewrite),
        Cmd::Commit(r) => Box::pin(txn::commit(ctx, r)).await.map(RespCmd::Commit),
        Cmd::Cleanup(r) => Box::pin(txn::cleanup(ctx, r)).await.map(RespCmd::Cleanup),
        Cmd::BatchGet(r) => Box::pin(txn::batch_get(ctx, r))
            .await
            .map(RespCmd::BatchGet),
        Cmd::BatchRollback(r) => Box::pin(txn::batch_rollback(ctx, r))
            .await
            .map(RespCmd::BatchRollback),
        Cmd::ScanLock(r) => Box::pin(txn::scan_lock(ctx, r))
            .await
            .map(RespCmd::ScanLock),
        Cmd::ResolveLock(r) => Box::pin(txn::resolve_lock(ctx, r))
            .await
            .map(RespCmd::ResolveLock),
        Cmd::RawGet(r) => Box::pin(raw::get(ctx, r)).await.map(RespCmd::RawGet),
        Cmd::RawBatchGet(r) => Box::pin(raw::batch_get(ctx, r))
            .await
            .map(RespCmd::RawBatchGet),
        Cmd::RawPut(r) => Box::pin(raw::put(ctx, r)).await.map(RespCmd::RawPut),
        Cmd::RawBatchPut(r) => Box::pin(raw::batch_put(ctx, r))
            .await
            .map(RespCmd::RawBatchPut),
        Cmd::RawDelete(r) => Box::pin(raw::delete(ctx, r)).await.map(RespCmd::RawDelete),
        Cmd::RawBatchDelete(r) => Box::pin(raw::batch_delete(ctx, r))
            .await
            .map(RespCmd::RawBatchDelete),
        Cmd::RawScan(r) => Box::pin(raw::scan(ctx, r)).await.map(RespCmd::RawScan),
        Cmd::RawDeleteRange(r) => Box::pin(raw::delete_range(ctx, r))
            .await
            .map(RespCmd::RawDeleteRange),
        Cmd::RawBatchScan(r) => Box::pin(raw::batch_scan(ctx, r))
            .await
            .map(RespCmd::RawBatchScan),
        Cmd::PessimisticLock(r) => Box::pin(txn::pessimistic_lock(ctx, r))
            .await
            .map(RespCmd::PessimisticLock),
        Cmd::PessimisticRollback(r) => Box::pin(txn::pessimistic_rollback(ctx, r))
            .await
            .map(RespCmd::PessimisticRollback),
        Cmd::CheckTxnStatus(r) => Box::pin(txn::check_txn_status(ctx, r))
            .await
            .map(RespCmd::CheckTxnStatus),
        Cmd::TxnHeartBeat(r) => Box::pin(txn::txn_heart_beat(ctx, r))
            .await
            .map(RespCmd::TxnHeartBeat),
        Cmd::CheckSecondaryLocks(r) => Box::pin(txn::check_secondary_locks(ctx, r))
            .await
            .map(RespCmd::CheckSecondaryLocks),
        Cmd::Empty(r) => {
            let delay = Duration::from_millis(r.delay_time).min(MAX_EMPTY_DELAY);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Ok(RespCmd::Empty(BatchCommandsEmptyResponse {
                test_id: r.test_id,
            }))
        }
    };
    match answered {
        Ok(resp) => Some(resp),
        Err(status) => {
            tracing::debug!(code = ?status.code(), error = %status.message(), "batched command refused");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proto::kvrpcpb::{RawGetRequest, RawPutRequest, RawScanRequest};
    use proto::tikvpb::batch_commands_request::Request as BatchRequest;
    use proto::tikvpb::tikv_client::TikvClient;
    use proto::tikvpb::BatchCommandsEmptyRequest;
    use raft_core::config::EngineConfig;
    use tokio::sync::mpsc;
    use tokio_stream::wrappers::UnboundedReceiverStream;
    use tonic::Code;

    use super::*;
    use crate::config::Limits;
    use crate::server::RunningServer;
    use crate::service::TikvService;
    use crate::storage::StandaloneStorage;

    fn put(key: &[u8], value: &[u8]) -> Cmd {
        Cmd::RawPut(RawPutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            ..Default::default()
        })
    }

    fn get(key: &[u8]) -> Cmd {
        Cmd::RawGet(RawGetRequest {
            key: key.to_vec(),
            ..Default::default()
        })
    }

    fn batch(cmds: Vec<(u64, Cmd)>) -> BatchCommandsRequest {
        let (request_ids, requests) = cmds
            .into_iter()
            .map(|(id, cmd)| (id, BatchRequest { cmd: Some(cmd) }))
            .unzip();
        BatchCommandsRequest {
            requests,
            request_ids,
        }
    }

    /// Reads answers until `n` requests are answered; returns them by id.
    async fn answers(
        stream: &mut Streaming<BatchCommandsResponse>,
        n: usize,
    ) -> std::collections::HashMap<u64, Option<RespCmd>> {
        let mut out = std::collections::HashMap::new();
        while out.len() < n {
            let resp = tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("answers within 10 s")
                .expect("stream healthy")
                .expect("stream open");
            assert_eq!(resp.request_ids.len(), resp.responses.len());
            for (id, r) in resp.request_ids.into_iter().zip(resp.responses) {
                assert!(
                    out.insert(id, r.cmd).is_none(),
                    "request {id} answered twice"
                );
            }
        }
        out
    }

    /// A standalone server with the given shutdown timeout, and one open `BatchCommands`
    /// stream to it: (server, request sender, response stream).
    async fn open_stream(
        dir: &std::path::Path,
        shutdown_timeout: Duration,
    ) -> (
        RunningServer,
        mpsc::UnboundedSender<BatchCommandsRequest>,
        Streaming<BatchCommandsResponse>,
    ) {
        let storage = StandaloneStorage::open(dir, &EngineConfig::new_test_config()).unwrap();
        let svc = TikvService::new(storage, Limits::new_test_config());
        let server = RunningServer::start("127.0.0.1:0".parse().unwrap(), svc, shutdown_timeout)
            .await
            .unwrap();
        let mut client = TikvClient::connect(format!("http://{}", server.local_addr()))
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = client
            .batch_commands(UnboundedReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        (server, tx, stream)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_on_one_stream_are_answered_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let (server, tx, mut stream) = open_stream(dir.path(), Duration::from_secs(5)).await;

        // Many writes in one message; every one is answered once, under its own id.
        let puts = (0..40u64)
            .map(|i| {
                (
                    i,
                    put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes()),
                )
            })
            .collect();
        tx.send(batch(puts)).unwrap();
        let got = answers(&mut stream, 40).await;
        for i in 0..40u64 {
            match &got[&i] {
                Some(RespCmd::RawPut(r)) => assert!(r.error.is_empty() && r.region_error.is_none()),
                other => panic!("request {i}: {other:?}"),
            }
        }

        // Reads see them; a put refused by validation answers in its error field; a scan over
        // max-scan-limit (a gRPC status in the unary API: its response has no error field)
        // gets an empty answer; `Empty` echoes its test id.
        let big_key = vec![b'x'; Limits::new_test_config().max_key_size + 1];
        tx.send(batch(vec![
            (100, get(b"k7")),
            (101, put(&big_key, b"v")),
            (
                102,
                Cmd::Empty(BatchCommandsEmptyRequest {
                    test_id: 9,
                    delay_time: 1,
                }),
            ),
            (103, get(b"missing")),
            (
                104,
                Cmd::RawScan(RawScanRequest {
                    start_key: b"k".to_vec(),
                    limit: Limits::new_test_config().max_scan_limit + 1,
                    ..Default::default()
                }),
            ),
        ]))
        .unwrap();
        let got = answers(&mut stream, 5).await;
        match &got[&100] {
            Some(RespCmd::RawGet(r)) => assert_eq!(r.value, b"v7"),
            other => panic!("{other:?}"),
        }
        match &got[&101] {
            Some(RespCmd::RawPut(r)) => assert!(r.error.contains("larger than the limit"), "{r:?}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(got[&104], None);
        match &got[&102] {
            Some(RespCmd::Empty(r)) => assert_eq!(r.test_id, 9),
            other => panic!("{other:?}"),
        }
        match &got[&103] {
            Some(RespCmd::RawGet(r)) => assert!(r.not_found),
            other => panic!("{other:?}"),
        }

        // A request without a command (one this server does not serve) gets an empty answer.
        tx.send(BatchCommandsRequest {
            requests: vec![BatchRequest { cmd: None }],
            request_ids: vec![200],
        })
        .unwrap();
        assert_eq!(answers(&mut stream, 1).await[&200], None);

        // Ids and requests that do not pair up end the stream with INVALID_ARGUMENT.
        tx.send(BatchCommandsRequest {
            requests: vec![BatchRequest {
                cmd: Some(get(b"k1")),
            }],
            request_ids: vec![],
        })
        .unwrap();
        let status = loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("the stream ends within 10 s")
            {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("stream ended without a status"),
                Err(status) => break status,
            }
        };
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        drop(tx);
        server.shutdown().await.unwrap();
    }

    /// A client that keeps its stream open does not hold shutdown up: the command in flight is
    /// answered, then the stream ends and the server stops well within its timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_ends_open_streams_after_their_answers() {
        let dir = tempfile::tempdir().unwrap();
        let (server, tx, mut stream) = open_stream(dir.path(), Duration::from_secs(30)).await;
        tx.send(batch(vec![(1, put(b"a", b"1"))])).unwrap();
        assert!(matches!(
            answers(&mut stream, 1).await[&1],
            Some(RespCmd::RawPut(_))
        ));
        // A slow command is in flight when shutdown begins; `tx` stays open throughout.
        tx.send(batch(vec![(
            2,
            Cmd::Empty(BatchCommandsEmptyRequest {
                test_id: 2,
                delay_time: 300,
            }),
        )]))
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stopped = tokio::spawn(server.shutdown());
        match &answers(&mut stream, 1).await[&2] {
            Some(RespCmd::Empty(r)) => assert_eq!(r.test_id, 2),
            other => panic!("{other:?}"),
        }
        let end = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("the stream ends within 10 s");
        assert!(matches!(end, Ok(None)), "{end:?}");
        tokio::time::timeout(Duration::from_secs(10), stopped)
            .await
            .expect("shutdown within 10 s")
            .unwrap()
            .unwrap();
        drop(tx);
    }
}
