//! One batched TSO stream shared by every caller of a PD client.
//!
//! Callers queue a one-shot reply slot; a single worker task drains whatever is queued (up to
//! `tso_max_batch`) into one `TsoRequest{count}` on the bidirectional stream. PD answers each
//! request in order with the *largest* timestamp of the batch, so the batch gets
//! `logical - count + 1 ..= logical`. Up to `tso_max_pending` requests may be in flight; beyond
//! that new callers wait and are coalesced into the next request.
//!
//! A broken stream (error, end, count mismatch, no answer within the timeout) fails every waiting
//! caller, triggers a PD reconnect, and is reopened on the next request; callers retry through
//! [`super::PdClient::get_timestamp`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use proto::pdpb;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tracing::{debug, warn};

use super::conn::PdConnection;
use crate::config::Config;
use crate::errors::{Error, Result};
use crate::timestamp::Timestamp;

type Waiter = oneshot::Sender<Result<Timestamp>>;

/// The callers' side: a queue into the worker.
pub(crate) struct TsoClient {
    queue: mpsc::Sender<Waiter>,
}

impl TsoClient {
    /// Starts the worker; it ends when the last `TsoClient` is dropped.
    pub fn spawn(conn: Arc<PdConnection>, config: &Config) -> TsoClient {
        let max_batch = config.tso_max_batch as usize;
        let (queue, rx) = mpsc::channel(max_batch * config.tso_max_pending * 2);
        let worker = Worker {
            conn,
            max_batch,
            max_pending: config.tso_max_pending,
            timeout: config.timeout,
            stream: None,
            last: None,
        };
        tokio::spawn(worker.run(rx));
        TsoClient { queue }
    }

    /// One timestamp, from the next batch sent.
    pub async fn get_timestamp(&self) -> Result<Timestamp> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(tx)
            .await
            .map_err(|_| Error::Tso("tso worker stopped".into()))?;
        rx.await
            .map_err(|_| Error::Tso("tso worker dropped the request".into()))?
    }
}

struct Batch {
    waiters: Vec<Waiter>,
    sent_at: Instant,
}

struct Stream {
    requests: mpsc::Sender<pdpb::TsoRequest>,
    responses: tonic::Streaming<pdpb::TsoResponse>,
    pending: VecDeque<Batch>,
    generation: u64,
    addr: String,
}

struct Worker {
    conn: Arc<PdConnection>,
    max_batch: usize,
    max_pending: usize,
    timeout: Duration,
    stream: Option<Stream>,
    /// Last timestamp handed out: PD must never go back.
    last: Option<Timestamp>,
}

impl Worker {
    async fn run(mut self, mut queue: mpsc::Receiver<Waiter>) {
        let mut buf = Vec::with_capacity(self.max_batch);
        loop {
            let in_flight = self.stream.as_ref().map_or(0, |s| s.pending.len());
            let deadline = self
                .stream
                .as_ref()
                .and_then(|s| s.pending.front())
                .map(|b| b.sent_at + self.timeout);
            tokio::select! {
                n = queue.recv_many(&mut buf, self.max_batch), if in_flight < self.max_pending => {
                    if n == 0 {
                        self.fail_stream("pd client dropped".into());
                        return;
                    }
                    let waiters = std::mem::take(&mut buf);
                    self.send_batch(waiters).await;
                }
                resp = next_response(&mut self.stream), if in_flight > 0 => {
                    self.on_response(resp);
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    self.fail_stream(format!("no tso response within {:?}", self.timeout));
                }
            }
        }
    }

    async fn send_batch(&mut self, waiters: Vec<Waiter>) {
        let request = pdpb::TsoRequest {
            header: Some(self.conn.header()),
            count: waiters.len() as u32,
            dc_location: String::new(),
        };
        let batch = Batch {
            waiters,
            sent_at: Instant::now(),
        };
        if let Some(stream) = &mut self.stream {
            // Capacity is max_pending + 1 and at most max_pending are in flight, so a failed
            // send means the stream's sending half is gone.
            if stream.requests.try_send(request.clone()).is_ok() {
                stream.pending.push_back(batch);
                return;
            }
            self.fail_stream("tso request stream closed".into());
        }
        match self.open(request).await {
            Ok(mut stream) => {
                stream.pending.push_back(batch);
                self.stream = Some(stream);
            }
            Err(e) => {
                warn!(error = %e, "cannot open tso stream");
                fail_waiters(batch.waiters, &e.to_string());
                self.reconnect_in_background(self.conn.leader().generation);
            }
        }
    }

    /// Opens a stream to the current leader with `first` already queued: some servers send the
    /// response headers only with the first response, so the call cannot complete before a
    /// request is on the wire.
    async fn open(&self, first: pdpb::TsoRequest) -> Result<Stream> {
        let leader = self.conn.leader();
        let (requests, rx) = mpsc::channel(self.max_pending + 1);
        requests
            .try_send(first)
            .expect("fresh channel has capacity");
        let mut client = leader.client.clone();
        let call = client.tso(tonic::Request::new(ReceiverStream::new(rx)));
        let responses = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(resp)) => resp.into_inner(),
            Ok(Err(status)) => {
                return Err(Error::from_status("Tso", &leader.url, status, self.timeout))
            }
            Err(_) => {
                return Err(Error::Timeout {
                    rpc: "Tso",
                    addr: leader.url,
                    after: self.timeout,
                })
            }
        };
        debug!(addr = %leader.url, "tso stream opened");
        Ok(Stream {
            requests,
            responses,
            pending: VecDeque::new(),
            generation: leader.generation,
            addr: leader.url,
        })
    }

    fn on_response(&mut self, resp: Option<std::result::Result<pdpb::TsoResponse, tonic::Status>>) {
        let resp = match resp {
            Some(Ok(r)) => r,
            Some(Err(status)) => return self.fail_stream(format!("tso stream failed: {status}")),
            None => return self.fail_stream("tso stream closed by pd".into()),
        };
        let stream = self
            .stream
            .as_mut()
            .expect("responses only arrive on an open stream");
        let batch = stream
            .pending
            .pop_front()
            .expect("responses are only polled while a batch is pending");
        match allocate(&resp, batch.waiters.len(), self.last) {
            Ok(first) => {
                let n = batch.waiters.len() as i64;
                for (i, w) in batch.waiters.into_iter().enumerate() {
                    // A caller that gave up has dropped its receiver; its timestamp is unused.
                    let _ = w.send(Ok(Timestamp {
                        physical: first.physical,
                        logical: first.logical + i as i64,
                    }));
                }
                self.last = Some(Timestamp {
                    physical: first.physical,
                    logical: first.logical + n - 1,
                });
            }
            Err(reason) => {
                fail_waiters(batch.waiters, &reason);
                self.fail_stream(reason);
            }
        }
    }

    fn fail_stream(&mut self, reason: String) {
        let Some(stream) = self.stream.take() else {
            return;
        };
        warn!(addr = %stream.addr, %reason, "tso stream reset");
        for batch in stream.pending {
            fail_waiters(batch.waiters, &reason);
        }
        self.reconnect_in_background(stream.generation);
    }

    fn reconnect_in_background(&self, generation: u64) {
        let conn = self.conn.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.reconnect(generation).await {
                debug!(error = %e, "pd reconnect after tso failure failed");
            }
        });
    }
}

/// Checks one response against its batch and returns the batch's first timestamp.
fn allocate(
    resp: &pdpb::TsoResponse,
    count: usize,
    last: Option<Timestamp>,
) -> std::result::Result<Timestamp, String> {
    if let Some(e) = resp.header.as_ref().and_then(|h| h.error.as_ref()) {
        if e.r#type != pdpb::ErrorType::Ok as i32 {
            return Err(format!("pd tso error {}: {}", e.r#type, e.message));
        }
    }
    if resp.count as usize != count {
        return Err(format!(
            "tso answered {} timestamps for a batch of {count}",
            resp.count
        ));
    }
    let ts = resp
        .timestamp
        .as_ref()
        .ok_or_else(|| "tso response without timestamp".to_owned())?;
    let first = Timestamp {
        physical: ts.physical,
        logical: ts.logical.saturating_sub(count as i64 - 1),
    };
    if first.logical < 0
        || ts.logical >= 1 << crate::timestamp::PHYSICAL_SHIFT_BITS
        || ts.physical < 0
    {
        return Err(format!(
            "tso logical {} out of range for count {count}",
            ts.logical
        ));
    }
    if let Some(last) = last {
        if first <= last {
            return Err(format!("tso went backwards: {first:?} after {last:?}"));
        }
    }
    Ok(first)
}

fn fail_waiters(waiters: Vec<Waiter>, reason: &str) {
    for w in waiters {
        let _ = w.send(Err(Error::Tso(reason.to_owned())));
    }
}

async fn next_response(
    stream: &mut Option<Stream>,
) -> Option<std::result::Result<pdpb::TsoResponse, tonic::Status>> {
    match stream {
        Some(s) => s.responses.message().await.transpose(),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(count: u32, physical: i64, logical: i64) -> pdpb::TsoResponse {
        pdpb::TsoResponse {
            header: Some(pdpb::ResponseHeader::default()),
            count,
            timestamp: Some(pdpb::Timestamp {
                physical,
                logical,
                suffix_bits: 0,
            }),
        }
    }

    #[test]
    fn batch_gets_the_range_ending_at_logical() {
        let first = allocate(&response(3, 100, 10), 3, None).unwrap();
        assert_eq!(
            first,
            Timestamp {
                physical: 100,
                logical: 8
            }
        );
    }

    #[test]
    fn bad_responses_are_rejected() {
        assert!(
            allocate(&response(2, 100, 10), 3, None).is_err(),
            "count mismatch"
        );
        assert!(
            allocate(&response(3, 100, 1), 3, None).is_err(),
            "negative logical"
        );
        let last = Some(Timestamp {
            physical: 100,
            logical: 9,
        });
        assert!(
            allocate(&response(2, 100, 10), 2, last).is_err(),
            "went backwards"
        );
        assert!(allocate(&response(1, 100, 10), 1, last).is_ok());
        let mut no_ts = response(1, 0, 0);
        no_ts.timestamp = None;
        assert!(allocate(&no_ts, 1, None).is_err());
    }
}
