//! The in-process network between the stores of a test cluster.
//!
//! ```text
//!  poller thread of store A            network thread                     store B
//!  ────────────────────────            ──────────────                     ───────
//!  SimTransport::send ── buffer
//!  SimTransport::flush ─── batch ──▶  filters ─ pass ──────────────────▶ Router::deliver
//!                                        │    ─ delay ─▶ timer heap ─────▶ (later)
//!                                        │    ─ drop / disconnect (report Unreachable to A)
//!                                        └─ MsgSnapshot ─▶ transfer thread: copy the file
//!                                           A's SnapManager (Generated) ══chunks══▶ B's (Received),
//!                                           then deliver, then report SnapshotStatus to A
//! ```
//!
//! Messages cross a thread boundary before delivery, like on a real network: a poller never
//! calls into another store's router (or its own) while handling its batch, so a full mailbox
//! cannot deadlock two stores. Reports to the sending store go through the same thread.

pub mod filter;
mod snapshot;
#[cfg(test)]
mod tests;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::{Mutex, RwLock};
use proto::eraftpb::MessageType;
use proto::raft_serverpb::RaftMessage;
use raft_core::snap::SnapManager;
use raftstore::transport::{RaftMessageSink, ReportSink, Transport, TransportReport};

pub use filter::{
    Decision, Direction, Filter, Isolate, MessageFilter, Partition, RandomDelay, RandomDrop,
};

/// Identifies an installed filter, to remove it later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FilterId(u64);

/// Counters of what the network did, for tests to assert on (e.g. that a snapshot really was
/// transferred) and for the benchmark.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to a destination router.
    pub delivered: u64,
    /// Messages lost to a `Drop` or `Disconnect` filter decision.
    pub filtered: u64,
    /// Messages to a store that was not running.
    pub unreachable: u64,
    /// Messages a destination router refused (e.g. for a region it does not host).
    pub rejected: u64,
    /// Messages held back by a `Delay` decision.
    pub delayed: u64,
    /// Snapshot files copied and delivered, per destination store.
    pub snapshots_delivered: HashMap<u64, u64>,
    /// Snapshot transfers that failed (missing file, checksum, refused).
    pub snapshots_failed: u64,
}

/// One running store as the network sees it.
#[derive(Clone)]
struct Endpoint {
    sink: Arc<dyn RaftMessageSink>,
    reports: ReportSink,
    snap_mgr: SnapManager,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    filtered: AtomicU64,
    unreachable: AtomicU64,
    rejected: AtomicU64,
    delayed: AtomicU64,
    snapshots_failed: AtomicU64,
    snapshots_delivered: Mutex<HashMap<u64, u64>>,
}

/// State shared by the network handle, the network thread and snapshot transfer threads.
struct Shared {
    endpoints: RwLock<HashMap<u64, Endpoint>>,
    filters: RwLock<Vec<(FilterId, Arc<dyn Filter>)>>,
    next_filter: AtomicU64,
    counters: Counters,
    snap_chunk_size: usize,
    transfers: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn endpoint(&self, store_id: u64) -> Option<Endpoint> {
        self.endpoints.read().get(&store_id).cloned()
    }

    fn decide(&self, msg: &RaftMessage) -> Decision {
        self.filters
            .read()
            .iter()
            .fold(Decision::Pass, |d, (_, f)| d.combine(f.decide(msg)))
    }

    /// Tells the store that sent `msg` that it was not delivered.
    fn report_failure(&self, msg: &RaftMessage, unreachable: bool) {
        let Some(from) = self.endpoint(filter::from_store(msg)) else {
            return;
        };
        let to_peer_id = msg.to_peer.as_ref().map_or(0, |p| p.id);
        if unreachable {
            (from.reports)(TransportReport::Unreachable {
                region_id: msg.region_id,
                to_peer_id,
            });
        }
        if is_snapshot(msg) {
            (from.reports)(TransportReport::SnapshotStatus {
                region_id: msg.region_id,
                to_peer_id,
                finished: false,
            });
        }
    }
}

fn is_snapshot(msg: &RaftMessage) -> bool {
    filter::msg_type(msg) == MessageType::MsgSnapshot
}

enum Cmd {
    Send(Vec<RaftMessage>),
    Report(u64, TransportReport),
    Shutdown,
}

/// Stops and joins the network thread (and pending snapshot transfers) when the last handle
/// goes away.
struct Worker {
    tx: Sender<Cmd>,
    shared: Arc<Shared>,
    handle: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Shutdown);
        if let Some(h) = self.handle.lock().take() {
            let _ = h.join();
        }
        let transfers = std::mem::take(&mut *self.shared.transfers.lock());
        for t in transfers {
            let _ = t.join();
        }
    }
}

/// The network of one test cluster: endpoints of the running stores and the installed filters.
/// Cheap to clone; the network thread stops when the last clone (including every
/// [`SimTransport`]) is dropped.
#[derive(Clone)]
pub struct SimNetwork {
    shared: Arc<Shared>,
    worker: Arc<Worker>,
}

impl SimNetwork {
    /// A network with no stores and no filters; snapshot files are copied in chunks of
    /// `snap_chunk_size` bytes.
    pub fn new(snap_chunk_size: usize) -> SimNetwork {
        let shared = Arc::new(Shared {
            endpoints: RwLock::new(HashMap::new()),
            filters: RwLock::new(vec![]),
            next_filter: AtomicU64::new(1),
            counters: Counters::default(),
            snap_chunk_size: snap_chunk_size.max(1),
            transfers: Mutex::new(vec![]),
        });
        let (tx, rx) = crossbeam_channel::unbounded();
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("sim-network".into())
            .spawn(move || run_network(thread_shared, rx))
            .expect("spawn the network thread");
        SimNetwork {
            worker: Arc::new(Worker {
                tx,
                shared: shared.clone(),
                handle: Mutex::new(Some(handle)),
            }),
            shared,
        }
    }

    /// Makes `store_id` reachable: messages for it go to `sink`, reports about its own messages
    /// to `reports`, snapshot files it receives into `snap_mgr` (and it sends from there).
    pub fn register(
        &self,
        store_id: u64,
        sink: Arc<dyn RaftMessageSink>,
        reports: ReportSink,
        snap_mgr: SnapManager,
    ) {
        self.shared.endpoints.write().insert(
            store_id,
            Endpoint {
                sink,
                reports,
                snap_mgr,
            },
        );
    }

    /// Makes `store_id` unreachable (it stopped): messages for it are reported unreachable.
    pub fn unregister(&self, store_id: u64) {
        self.shared.endpoints.write().remove(&store_id);
    }

    /// Whether `store_id` is registered.
    pub fn is_registered(&self, store_id: u64) -> bool {
        self.shared.endpoints.read().contains_key(&store_id)
    }

    /// The transport store `store_id` sends through.
    pub fn transport(&self, store_id: u64) -> SimTransport {
        SimTransport {
            store_id,
            net: self.clone(),
            buf: vec![],
        }
    }

    /// Installs a filter on every message from now on.
    pub fn add_filter(&self, f: impl Filter) -> FilterId {
        let id = FilterId(
            self.shared
                .next_filter
                .fetch_add(1, AtomicOrdering::Relaxed),
        );
        self.shared.filters.write().push((id, Arc::new(f)));
        id
    }

    /// Removes one filter (no-op if it is already gone).
    pub fn remove_filter(&self, id: FilterId) {
        self.shared.filters.write().retain(|(i, _)| *i != id);
    }

    /// Removes every filter: the network is healthy again.
    pub fn clear_filters(&self) {
        self.shared.filters.write().clear();
    }

    /// What the network did so far.
    pub fn stats(&self) -> NetStats {
        let c = &self.shared.counters;
        NetStats {
            delivered: c.delivered.load(AtomicOrdering::Relaxed),
            filtered: c.filtered.load(AtomicOrdering::Relaxed),
            unreachable: c.unreachable.load(AtomicOrdering::Relaxed),
            rejected: c.rejected.load(AtomicOrdering::Relaxed),
            delayed: c.delayed.load(AtomicOrdering::Relaxed),
            snapshots_delivered: c.snapshots_delivered.lock().clone(),
            snapshots_failed: c.snapshots_failed.load(AtomicOrdering::Relaxed),
        }
    }

    fn submit(&self, cmd: Cmd) {
        // Only fails after shutdown, when nothing is listening any more.
        let _ = self.worker.tx.send(cmd);
    }
}

/// The [`Transport`] of one store: buffers a poll round's messages and hands them to the network
/// thread on `flush`.
pub struct SimTransport {
    store_id: u64,
    net: SimNetwork,
    buf: Vec<RaftMessage>,
}

impl Clone for SimTransport {
    /// A new handle for another poller: same store and network, its own (empty) buffer.
    fn clone(&self) -> Self {
        SimTransport {
            store_id: self.store_id,
            net: self.net.clone(),
            buf: vec![],
        }
    }
}

impl Transport for SimTransport {
    fn send(&mut self, msg: RaftMessage) -> raftstore::Result<()> {
        let to = filter::to_store(&msg);
        if !self.net.is_registered(to) {
            self.net
                .shared
                .counters
                .unreachable
                .fetch_add(1, AtomicOrdering::Relaxed);
            let to_peer_id = msg.to_peer.as_ref().map_or(0, |p| p.id);
            self.net.submit(Cmd::Report(
                self.store_id,
                TransportReport::Unreachable {
                    region_id: msg.region_id,
                    to_peer_id,
                },
            ));
            if is_snapshot(&msg) {
                self.net.submit(Cmd::Report(
                    self.store_id,
                    TransportReport::SnapshotStatus {
                        region_id: msg.region_id,
                        to_peer_id,
                        finished: false,
                    },
                ));
            }
            return Err(raftstore::Error::Transport(format!(
                "store {to} is not reachable from store {}",
                self.store_id
            )));
        }
        self.buf.push(msg);
        Ok(())
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.net.submit(Cmd::Send(std::mem::take(&mut self.buf)));
        }
    }
}

/// A message held back by a delay filter; the heap pops the earliest deadline first (ties in
/// arrival order).
struct Delayed {
    at: Instant,
    seq: u64,
    msg: RaftMessage,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Upper bound on how long the network thread sleeps with nothing to do.
const IDLE_WAIT: Duration = Duration::from_secs(1);

fn run_network(shared: Arc<Shared>, rx: Receiver<Cmd>) {
    let mut delayed: BinaryHeap<Delayed> = BinaryHeap::new();
    let mut seq = 0u64;
    loop {
        let wait = delayed.peek().map_or(IDLE_WAIT, |d| {
            d.at.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Cmd::Send(msgs)) => {
                for msg in msgs {
                    match shared.decide(&msg) {
                        Decision::Pass => deliver(&shared, msg),
                        Decision::Delay(d) => {
                            shared
                                .counters
                                .delayed
                                .fetch_add(1, AtomicOrdering::Relaxed);
                            seq += 1;
                            delayed.push(Delayed {
                                at: Instant::now() + d,
                                seq,
                                msg,
                            });
                        }
                        decision @ (Decision::Drop | Decision::Disconnect) => {
                            shared
                                .counters
                                .filtered
                                .fetch_add(1, AtomicOrdering::Relaxed);
                            shared.report_failure(&msg, decision == Decision::Disconnect);
                        }
                    }
                }
            }
            Ok(Cmd::Report(store_id, report)) => {
                if let Some(ep) = shared.endpoint(store_id) {
                    (ep.reports)(report);
                }
            }
            Ok(Cmd::Shutdown) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now = Instant::now();
        while delayed.peek().is_some_and(|d| d.at <= now) {
            let d = delayed.pop().expect("peeked");
            deliver(&shared, d.msg);
        }
    }
}

/// Hands `msg` to its destination store (snapshots via a transfer thread).
fn deliver(shared: &Arc<Shared>, msg: RaftMessage) {
    let to = filter::to_store(&msg);
    let Some(dest) = shared.endpoint(to) else {
        shared
            .counters
            .unreachable
            .fetch_add(1, AtomicOrdering::Relaxed);
        shared.report_failure(&msg, true);
        return;
    };
    if is_snapshot(&msg) {
        let s = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("sim-snap-transfer".into())
            .spawn(move || snapshot::transfer(&s, msg));
        match spawned {
            Ok(handle) => {
                let mut transfers = shared.transfers.lock();
                transfers.retain(|h| !h.is_finished());
                transfers.push(handle);
            }
            Err(e) => tracing::warn!(error = %e, "cannot spawn a snapshot transfer thread"),
        }
        return;
    }
    match dest.sink.deliver(msg) {
        Ok(()) => {
            shared
                .counters
                .delivered
                .fetch_add(1, AtomicOrdering::Relaxed);
        }
        Err(e) => {
            shared
                .counters
                .rejected
                .fetch_add(1, AtomicOrdering::Relaxed);
            tracing::trace!(to_store = to, error = %e, "raft message refused");
        }
    }
}
