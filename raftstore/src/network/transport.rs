//! [`GrpcTransport`]: the production [`Transport`] — one bounded queue and one connection task
//! per destination store, plus snapshot transfers.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use proto::eraftpb::MessageType;
use proto::raft_serverpb::RaftMessage;
use raft_core::snap::SnapManager;
use tokio::runtime::Handle;
use tokio::sync::{watch, Notify, Semaphore};

use super::config::NetworkConfig;
use super::resolver::StoreResolver;
use super::{conn, snap_send};
use crate::errors::{Error, Result};
use crate::transport::{ReportSink, Transport, TransportReport};

/// Sends raft messages to other stores over gRPC.
///
/// Cheap to clone; each poller thread owns a clone. [`Transport::send`] puts a message on the
/// destination store's bounded queue (or starts a snapshot transfer); [`Transport::flush`] wakes
/// the connection tasks of the stores this handle queued for, which drain their queue into
/// `BatchRaftMessage`s on one long-lived `BatchRaft` stream per store. The tasks run on the
/// runtime handle given at construction and stop when the last clone is dropped or
/// [`GrpcTransport::shutdown`] is called.
pub struct GrpcTransport {
    life: Arc<Lifetime>,
    /// This handle's view of the per-store queues (saves the shared lock on the hot path).
    queues: HashMap<u64, Arc<StoreQueue>>,
    /// Stores this handle queued messages for since its last flush.
    to_wake: HashSet<u64>,
}

impl Clone for GrpcTransport {
    fn clone(&self) -> Self {
        GrpcTransport {
            life: self.life.clone(),
            queues: HashMap::new(),
            to_wake: HashSet::new(),
        }
    }
}

/// Held by every handle; the last one dropped stops the background tasks.
struct Lifetime {
    shared: Arc<Shared>,
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// State shared by the handles and the background tasks.
pub(super) struct Shared {
    pub(super) cfg: NetworkConfig,
    pub(super) runtime: Handle,
    pub(super) resolver: Arc<dyn StoreResolver>,
    pub(super) snap_mgr: SnapManager,
    pub(super) report: ReportSink,
    pub(super) snap_slots: Arc<Semaphore>,
    pub(super) snap_stats: SnapStats,
    pub(super) shutdown: watch::Sender<bool>,
    stores: Mutex<HashMap<u64, Arc<StoreQueue>>>,
}

impl Shared {
    pub(super) fn is_shutdown(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Reports that a message could not be delivered: unreachable for ordinary messages, a
    /// failed transfer for snapshots.
    pub(super) fn report_dropped(&self, msg: &RaftMessage) {
        let region_id = msg.region_id;
        let to_peer_id = msg.to_peer.as_ref().map_or(0, |p| p.id);
        let report = if is_snapshot(msg) {
            TransportReport::SnapshotStatus {
                region_id,
                to_peer_id,
                finished: false,
            }
        } else {
            TransportReport::Unreachable {
                region_id,
                to_peer_id,
            }
        };
        (self.report)(report);
    }

    /// Reports a batch of dropped messages, once per (region, peer) so a broken connection with
    /// thousands of queued messages does not flood the store's router.
    pub(super) fn report_all_dropped(&self, msgs: impl IntoIterator<Item = RaftMessage>) {
        let mut seen = HashSet::new();
        for msg in msgs {
            let to_peer_id = msg.to_peer.as_ref().map_or(0, |p| p.id);
            if is_snapshot(&msg) || seen.insert((msg.region_id, to_peer_id)) {
                self.report_dropped(&msg);
            }
        }
    }
}

/// Whether `msg` carries a raft snapshot (and so a file to ship).
pub(super) fn is_snapshot(msg: &RaftMessage) -> bool {
    msg.message
        .as_ref()
        .is_some_and(|m| m.msg_type == MessageType::MsgSnapshot as i32)
}

/// The queue of one destination store and its counters.
pub(super) struct StoreQueue {
    pub(super) store_id: u64,
    pub(super) tx: crossbeam_channel::Sender<RaftMessage>,
    pub(super) rx: crossbeam_channel::Receiver<RaftMessage>,
    /// Wakes the connection task: messages were queued and flushed.
    pub(super) notify: Notify,
    pub(super) connected: AtomicBool,
    pub(super) sent_messages: AtomicU64,
    pub(super) sent_batches: AtomicU64,
    pub(super) dropped_messages: AtomicU64,
    pub(super) connects: AtomicU64,
    pub(super) connect_failures: AtomicU64,
}

/// Counters of snapshot transfers.
#[derive(Default)]
pub(super) struct SnapStats {
    pub(super) sending: AtomicU64,
    pub(super) sent: AtomicU64,
    pub(super) failed: AtomicU64,
}

/// Counters of one destination store, as seen by [`GrpcTransport::stats`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreTransportStats {
    /// The destination store.
    pub store_id: u64,
    /// Whether a `BatchRaft` stream to it is open right now.
    pub connected: bool,
    /// Messages waiting in its queue.
    pub queued: usize,
    /// Messages handed to the stream.
    pub sent_messages: u64,
    /// `BatchRaftMessage`s handed to the stream.
    pub sent_batches: u64,
    /// Messages dropped (queue full, connection failure) and reported.
    pub dropped_messages: u64,
    /// Connections established.
    pub connects: u64,
    /// Failed attempts to resolve or connect.
    pub connect_failures: u64,
}

/// A snapshot of the transport's counters, for status pages and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Per destination store, by store id.
    pub stores: Vec<StoreTransportStats>,
    /// Snapshot transfers under way (including those waiting for a slot).
    pub snapshots_sending: u64,
    /// Snapshot transfers the receiver acknowledged.
    pub snapshots_sent: u64,
    /// Snapshot transfers that failed.
    pub snapshots_failed: u64,
}

impl TransportStats {
    /// The counters of `store_id` (all zero if nothing was ever sent there).
    pub fn store(&self, store_id: u64) -> StoreTransportStats {
        self.stores
            .iter()
            .find(|s| s.store_id == store_id)
            .cloned()
            .unwrap_or(StoreTransportStats {
                store_id,
                ..Default::default()
            })
    }
}

impl GrpcTransport {
    /// A transport whose background tasks run on `runtime`. Addresses come from `resolver`,
    /// snapshot files from `snap_mgr`, and delivery failures go to `report`.
    pub fn new(
        runtime: Handle,
        resolver: Arc<dyn StoreResolver>,
        snap_mgr: SnapManager,
        report: ReportSink,
        cfg: NetworkConfig,
    ) -> Result<GrpcTransport> {
        cfg.validate()?;
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            snap_slots: Arc::new(Semaphore::new(cfg.snap_max_concurrent_sends)),
            cfg,
            runtime,
            resolver,
            snap_mgr,
            report,
            snap_stats: SnapStats::default(),
            shutdown,
            stores: Mutex::new(HashMap::new()),
        });
        Ok(GrpcTransport {
            life: Arc::new(Lifetime { shared }),
            queues: HashMap::new(),
            to_wake: HashSet::new(),
        })
    }

    fn shared(&self) -> &Arc<Shared> {
        &self.life.shared
    }

    /// Stops every connection and transfer. Later sends fail with [`Error::Shutdown`].
    pub fn shutdown(&self) {
        self.shared().shutdown.send_replace(true);
    }

    /// Current counters.
    pub fn stats(&self) -> TransportStats {
        let shared = self.shared();
        let mut stores: Vec<_> = shared
            .stores
            .lock()
            .values()
            .map(|q| StoreTransportStats {
                store_id: q.store_id,
                connected: q.connected.load(Ordering::Relaxed),
                queued: q.rx.len(),
                sent_messages: q.sent_messages.load(Ordering::Relaxed),
                sent_batches: q.sent_batches.load(Ordering::Relaxed),
                dropped_messages: q.dropped_messages.load(Ordering::Relaxed),
                connects: q.connects.load(Ordering::Relaxed),
                connect_failures: q.connect_failures.load(Ordering::Relaxed),
            })
            .collect();
        stores.sort_by_key(|s| s.store_id);
        let snap = &shared.snap_stats;
        TransportStats {
            stores,
            snapshots_sending: snap.sending.load(Ordering::Relaxed),
            snapshots_sent: snap.sent.load(Ordering::Relaxed),
            snapshots_failed: snap.failed.load(Ordering::Relaxed),
        }
    }

    /// The queue of `store_id`, creating it (and its connection task) on first use.
    fn queue(&mut self, store_id: u64) -> Arc<StoreQueue> {
        if let Some(q) = self.queues.get(&store_id) {
            return q.clone();
        }
        let shared = self.life.shared.clone();
        let q = shared
            .stores
            .lock()
            .entry(store_id)
            .or_insert_with(|| {
                let (tx, rx) = crossbeam_channel::bounded(shared.cfg.queue_capacity);
                let q = Arc::new(StoreQueue {
                    store_id,
                    tx,
                    rx,
                    notify: Notify::new(),
                    connected: AtomicBool::new(false),
                    sent_messages: AtomicU64::new(0),
                    sent_batches: AtomicU64::new(0),
                    dropped_messages: AtomicU64::new(0),
                    connects: AtomicU64::new(0),
                    connect_failures: AtomicU64::new(0),
                });
                shared.runtime.spawn(conn::run(shared.clone(), q.clone()));
                q
            })
            .clone();
        self.queues.insert(store_id, q.clone());
        q
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, msg: RaftMessage) -> Result<()> {
        let Some(store_id) = msg.to_peer.as_ref().map(|p| p.store_id) else {
            return Err(Error::Transport(format!(
                "raft message of region {} has no destination peer",
                msg.region_id
            )));
        };
        if self.shared().is_shutdown() {
            self.shared().report_dropped(&msg);
            return Err(Error::Shutdown);
        }
        if is_snapshot(&msg) {
            snap_send::spawn(self.shared().clone(), msg);
            return Ok(());
        }
        let q = self.queue(store_id);
        match q.tx.try_send(msg) {
            Ok(()) => {
                // Wake the sender early if a full batch is already waiting, so a long poll
                // round does not fill the queue before its flush.
                if q.rx.len() >= self.shared().cfg.max_batch_messages {
                    q.notify.notify_one();
                }
                self.to_wake.insert(store_id);
                Ok(())
            }
            Err(e) => {
                let msg = e.into_inner();
                q.dropped_messages.fetch_add(1, Ordering::Relaxed);
                self.shared().report_dropped(&msg);
                tracing::debug!(
                    region_id = msg.region_id,
                    peer_id = msg.to_peer.as_ref().map_or(0, |p| p.id),
                    store_id,
                    "raft message dropped: queue full"
                );
                Err(Error::Transport(format!(
                    "queue to store {store_id} is full"
                )))
            }
        }
    }

    fn flush(&mut self) {
        for store_id in self.to_wake.drain() {
            if let Some(q) = self.queues.get(&store_id) {
                q.notify.notify_one();
            }
        }
    }
}

impl Drop for GrpcTransport {
    fn drop(&mut self) {
        // Nothing a handle queued may sit unsent because its owner forgot the last flush.
        self.flush();
    }
}
