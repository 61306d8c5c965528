//! Shared pieces of the network tests: a store-side gRPC server that only speaks the raft
//! streams, a recording sink, a controllable resolver, report collection and polling.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use proto::eraftpb::{Message, MessageType};
use proto::metapb::Peer;
use proto::raft_serverpb::{Done, RaftMessage, SnapshotChunk};
use proto::tikvpb::tikv_server::{Tikv, TikvServer};
use proto::tikvpb::BatchRaftMessage;
use raft_core::snap::SnapManager;
use raftstore::network::{GrpcTransport, NetworkConfig, RaftReceiver, StoreResolver};
use raftstore::transport::{RaftMessageSink, ReportSink, TransportReport};
use raftstore::{Error, Result};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

/// How long a test waits for a condition. Generous: the machine is shared and loaded.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A runtime for the transports and servers; tests drive them from the test thread, like a
/// store's poller threads do.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Polls `cond` every 10 ms until it holds; panics after [`DEADLINE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Records what the store would receive.
#[derive(Default)]
pub struct RecordingSink {
    pub msgs: Mutex<Vec<RaftMessage>>,
}

impl RaftMessageSink for RecordingSink {
    fn deliver(&self, msg: RaftMessage) -> Result<()> {
        self.msgs.lock().push(msg);
        Ok(())
    }
}

impl RecordingSink {
    pub fn len(&self) -> usize {
        self.msgs.lock().len()
    }
}

/// The `tikvpb.Tikv` service of a cluster-mode store, reduced to its raft streams.
#[derive(Clone)]
pub struct RaftOnlyService {
    pub receiver: Arc<RaftReceiver>,
}

#[tonic::async_trait]
impl Tikv for RaftOnlyService {
    async fn raft(
        &self,
        req: Request<Streaming<RaftMessage>>,
    ) -> std::result::Result<Response<Done>, Status> {
        self.receiver
            .raft_stream(req.into_inner())
            .await
            .map(Response::new)
    }
    async fn batch_raft(
        &self,
        req: Request<Streaming<BatchRaftMessage>>,
    ) -> std::result::Result<Response<Done>, Status> {
        self.receiver
            .batch_raft_stream(req.into_inner())
            .await
            .map(Response::new)
    }
    async fn snapshot(
        &self,
        req: Request<Streaming<SnapshotChunk>>,
    ) -> std::result::Result<Response<Done>, Status> {
        self.receiver
            .snapshot_stream(req.into_inner())
            .await
            .map(Response::new)
    }
}

/// A running receiving server.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Serves `receiver` on `addr` (port 0 picks one).
    pub fn start(rt: &Runtime, addr: SocketAddr, receiver: Arc<RaftReceiver>) -> TestServer {
        rt.block_on(async move {
            let listener = TcpListener::bind(addr).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (stop, stopped) = oneshot::channel::<()>();
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            let svc = TikvServer::new(RaftOnlyService { receiver });
            let task = tokio::spawn(async move {
                tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming_shutdown(incoming, async {
                        let _ = stopped.await;
                    })
                    .await
                    .unwrap();
            });
            TestServer {
                addr,
                stop: Some(stop),
                task,
            }
        })
    }

    /// Stops accepting, closes connections, and waits until the server is gone.
    pub fn stop(mut self, rt: &Runtime) {
        let _ = self.stop.take().unwrap().send(());
        rt.block_on(&mut self.task).unwrap();
    }
}

/// A store as the tests see it: its receiving server, sink and snapshot directory.
pub struct TestStore {
    pub id: u64,
    pub server: Option<TestServer>,
    pub sink: Arc<RecordingSink>,
    pub receiver: Arc<RaftReceiver>,
    pub snap_mgr: SnapManager,
    cfg: NetworkConfig,
    _dir: tempfile::TempDir,
}

impl TestStore {
    pub fn start(rt: &Runtime, id: u64, cfg: &NetworkConfig) -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let snap_mgr = SnapManager::new(dir.path().join("snap")).unwrap();
        let sink = Arc::new(RecordingSink::default());
        let receiver =
            Arc::new(RaftReceiver::new(sink.clone(), snap_mgr.clone(), cfg.clone()).unwrap());
        let server = TestServer::start(rt, "127.0.0.1:0".parse().unwrap(), receiver.clone());
        TestStore {
            id,
            server: Some(server),
            sink,
            receiver,
            snap_mgr,
            cfg: cfg.clone(),
            _dir: dir,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.as_ref().expect("server running").addr
    }

    /// Stops the server like a store shutting down: open raft streams end first.
    pub fn stop_server(&mut self, rt: &Runtime) -> SocketAddr {
        let server = self.server.take().expect("server running");
        self.receiver.shutdown();
        let addr = server.addr;
        server.stop(rt);
        addr
    }

    pub fn restart_server(&mut self, rt: &Runtime, addr: SocketAddr) {
        assert!(self.server.is_none());
        self.receiver = Arc::new(
            RaftReceiver::new(self.sink.clone(), self.snap_mgr.clone(), self.cfg.clone()).unwrap(),
        );
        self.server = Some(TestServer::start(rt, addr, self.receiver.clone()));
    }
}

/// Addresses from a map, with a gate that can hold every resolution, and counters.
#[derive(Default)]
pub struct MapResolver {
    addrs: Mutex<HashMap<u64, String>>,
    closed: Mutex<bool>,
    opened: Condvar,
    pub resolves: Mutex<HashMap<u64, usize>>,
    pub invalidations: Mutex<HashMap<u64, usize>>,
}

impl MapResolver {
    pub fn set(&self, store_id: u64, addr: SocketAddr) {
        self.addrs.lock().insert(store_id, addr.to_string());
    }

    /// Makes every resolution block until [`MapResolver::open`].
    pub fn close(&self) {
        *self.closed.lock() = true;
    }

    pub fn open(&self) {
        *self.closed.lock() = false;
        self.opened.notify_all();
    }

    pub fn resolves(&self, store_id: u64) -> usize {
        self.resolves.lock().get(&store_id).copied().unwrap_or(0)
    }

    pub fn invalidations(&self, store_id: u64) -> usize {
        self.invalidations
            .lock()
            .get(&store_id)
            .copied()
            .unwrap_or(0)
    }
}

impl StoreResolver for MapResolver {
    fn resolve(&self, store_id: u64) -> Result<String> {
        let mut closed = self.closed.lock();
        while *closed {
            self.opened.wait(&mut closed);
        }
        drop(closed);
        *self.resolves.lock().entry(store_id).or_default() += 1;
        self.addrs
            .lock()
            .get(&store_id)
            .cloned()
            .ok_or_else(|| Error::Transport(format!("store {store_id} unknown")))
    }

    fn invalidate(&self, store_id: u64) {
        *self.invalidations.lock().entry(store_id).or_default() += 1;
    }
}

/// Collects the reports a transport makes.
#[derive(Default)]
pub struct Reports {
    pub all: Mutex<Vec<TransportReport>>,
}

impl Reports {
    pub fn sink(self: &Arc<Self>) -> ReportSink {
        let me = self.clone();
        Arc::new(move |r| me.all.lock().push(r))
    }

    pub fn snapshot(&self) -> Vec<TransportReport> {
        self.all.lock().clone()
    }

    pub fn unreachable(&self, region_id: u64, to_peer_id: u64) -> usize {
        self.all
            .lock()
            .iter()
            .filter(|r| {
                **r == TransportReport::Unreachable {
                    region_id,
                    to_peer_id,
                }
            })
            .count()
    }
}

/// A transport from store `store_id`'s point of view.
pub fn transport(
    rt: &Runtime,
    resolver: Arc<MapResolver>,
    snap_mgr: SnapManager,
    reports: &Arc<Reports>,
    cfg: NetworkConfig,
) -> GrpcTransport {
    GrpcTransport::new(rt.handle().clone(), resolver, snap_mgr, reports.sink(), cfg).unwrap()
}

/// The peer of `region_id` on `store_id` (peer ids are `region_id * 10 + store_id`).
pub fn peer(region_id: u64, store_id: u64) -> Peer {
    Peer {
        id: region_id * 10 + store_id,
        store_id,
        ..Default::default()
    }
}

/// An append from the peer of `region_id` on store `from` to the one on store `to`, carrying
/// `index` so tests can check order.
pub fn append(region_id: u64, from: u64, to: u64, index: u64) -> RaftMessage {
    let (from_peer, to_peer) = (peer(region_id, from), peer(region_id, to));
    RaftMessage {
        region_id,
        message: Some(Message {
            msg_type: MessageType::MsgAppend as i32,
            from: from_peer.id,
            to: to_peer.id,
            term: 1,
            index,
            ..Default::default()
        }),
        from_peer: Some(from_peer),
        to_peer: Some(to_peer),
        ..Default::default()
    }
}

/// `(region_id, index)` of every message, in arrival order.
pub fn region_indexes(msgs: &[RaftMessage]) -> Vec<(u64, u64)> {
    msgs.iter()
        .map(|m| (m.region_id, m.message.as_ref().unwrap().index))
        .collect()
}
