//! Region-heartbeat response streams, one per store.
//!
//! A store's leaders send heartbeats on a bidirectional stream; the first heartbeat naming a
//! leader on store S binds that stream as S's. Operator commands for a region go to the stream of
//! the store leading it. A newer stream from the same store replaces the older binding.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use proto::pdpb::RegionHeartbeatResponse;
use tokio::sync::mpsc;
use tonic::Status;

/// What a heartbeat stream sends to its store.
pub type ResponseSender = mpsc::Sender<Result<RegionHeartbeatResponse, Status>>;

/// Responses queued per stream before further ones are dropped. A dropped command is sent again
/// with the region's next heartbeat, so a slow store only delays its own commands.
pub const STREAM_BUFFER: usize = 1024;

struct Bound {
    stream_id: u64,
    tx: ResponseSender,
}

/// The store → stream bindings.
#[derive(Default)]
pub struct HeartbeatStreams {
    next_id: AtomicU64,
    by_store: Mutex<HashMap<u64, Bound>>,
}

impl std::fmt::Debug for HeartbeatStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stores: Vec<u64> = self.by_store.lock().keys().copied().collect();
        f.debug_struct("HeartbeatStreams")
            .field("stores", &stores)
            .finish()
    }
}

impl HeartbeatStreams {
    /// An id for a newly opened stream.
    pub fn new_stream_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Makes `tx` (stream `stream_id`) the stream of `store_id`.
    pub fn bind(&self, store_id: u64, stream_id: u64, tx: &ResponseSender) {
        let mut m = self.by_store.lock();
        if m.get(&store_id).is_some_and(|b| b.stream_id == stream_id) {
            return;
        }
        tracing::debug!(store_id, stream_id, "bind region heartbeat stream");
        m.insert(
            store_id,
            Bound {
                stream_id,
                tx: tx.clone(),
            },
        );
    }

    /// Forgets every binding of a closed stream.
    pub fn unbind(&self, stream_id: u64) {
        self.by_store.lock().retain(|_, b| b.stream_id != stream_id);
    }

    /// Queues `resp` on the stream of `store_id`. Returns false if the store has no stream or
    /// its queue is full.
    pub fn send(&self, store_id: u64, resp: RegionHeartbeatResponse) -> bool {
        let m = self.by_store.lock();
        let Some(b) = m.get(&store_id) else {
            tracing::debug!(store_id, "no heartbeat stream for store");
            return false;
        };
        match b.tx.try_send(Ok(resp)) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(store_id, error = %e, "heartbeat response dropped");
                false
            }
        }
    }

    /// Whether `store_id` has a bound stream.
    pub fn is_bound(&self, store_id: u64) -> bool {
        self.by_store.lock().contains_key(&store_id)
    }

    /// Drops every binding (shutdown), which ends the response streams once their tasks exit.
    pub fn clear(&self) {
        self.by_store.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bind_send_rebind_unbind() {
        let streams = HeartbeatStreams::default();
        let (tx1, mut rx1) = mpsc::channel(4);
        let (tx2, mut rx2) = mpsc::channel(4);
        let (s1, s2) = (streams.new_stream_id(), streams.new_stream_id());
        assert!(!streams.send(1, RegionHeartbeatResponse::default()));
        streams.bind(1, s1, &tx1);
        assert!(streams.send(
            1,
            RegionHeartbeatResponse {
                region_id: 5,
                ..Default::default()
            }
        ));
        assert_eq!(rx1.recv().await.unwrap().unwrap().region_id, 5);
        streams.bind(1, s2, &tx2);
        assert!(streams.send(1, RegionHeartbeatResponse::default()));
        assert!(rx2.recv().await.is_some());
        // The old stream closing does not unbind the new one.
        streams.unbind(s1);
        assert!(streams.is_bound(1));
        streams.unbind(s2);
        assert!(!streams.is_bound(1));
    }
}
