//! Keeping a long transaction's primary lock alive (`KvTxnHeartBeat`).
//!
//! Lock TTLs count from the transaction's start, so a transaction that runs longer than its TTL
//! would have its locks rolled back by any reader. While a transaction holds locks (from the
//! first pessimistic lock, or from the start of commit) a background task asks the primary's
//! store every `heartbeat_interval` to extend the TTL to "age + TTL". The task ends when the
//! [`Heartbeat`] handle is dropped, or when the primary lock is gone.

use std::sync::Arc;
use std::time::Duration;

use proto::kvrpcpb;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::dispatch::Cluster;
use crate::timestamp::Timestamp;

/// Stops the heartbeat task when dropped.
pub(super) struct Heartbeat {
    _stop: oneshot::Sender<()>,
}

/// Starts heartbeats for the transaction `start_ts` whose primary is `primary`.
pub(super) fn start(
    cluster: Arc<Cluster>,
    primary: Vec<u8>,
    start_ts: Timestamp,
    ttl: Duration,
) -> Heartbeat {
    let (stop, mut stopped) = oneshot::channel::<()>();
    let interval = cluster.config.heartbeat_interval;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let advise_lock_ttl = start_ts.elapsed_ms() + ttl.as_millis() as u64;
            let req = kvrpcpb::TxnHeartBeatRequest {
                primary_lock: primary.clone(),
                start_version: start_ts.version(),
                advise_lock_ttl,
                ..Default::default()
            };
            match cluster.execute_key(&primary, req).await {
                Ok(resp) => match resp.error {
                    None => debug!(
                        start_ts = start_ts.version(),
                        lock_ttl = resp.lock_ttl,
                        "txn heartbeat"
                    ),
                    Some(e) => {
                        // The primary lock is gone (committed, rolled back): nothing to keep alive.
                        debug!(start_ts = start_ts.version(), error = ?e, "txn heartbeat stopped");
                        return;
                    }
                },
                Err(e) => warn!(start_ts = start_ts.version(), error = %e, "txn heartbeat failed"),
            }
        }
    });
    Heartbeat { _stop: stop }
}
