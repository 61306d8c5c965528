//! A small in-process cluster for the runtime's own tests: real engines in temp dirs, a
//! transport that delivers straight into other stores' routers (copying snapshot files), and a
//! scheduler mock that learns regions only from heartbeats.

#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};
use proto::metapb::{Peer, Region, RegionEpoch, Store};
use proto::pdpb::{RegionHeartbeatRequest, RegionHeartbeatResponse, SplitId, StoreStats};
use proto::raft_cmdpb::{
    CmdType, DeleteRequest, GetRequest, PutRequest, RaftCmdRequest, RaftRequestHeader, Request,
    SnapRequest,
};
use proto::raft_serverpb::RaftMessage;
use raft_core::config::EngineConfig;
use raft_core::engine::{Engines, Peekable, CF_DEFAULT};
use raft_core::keys;
use raft_core::snap::{decode_descriptor, SnapKey, SnapManager};
use raftstore::pd_client::{HeartbeatResponseHandler, PdClient};
use raftstore::transport::{RaftMessageSink, Transport, TransportReport};
use raftstore::{CmdResponse, Node, RaftstoreConfig, Router};

pub const CLUSTER_ID: u64 = 1;

/// Waits for `cond` with a deadline, polling.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---- scheduler mock --------------------------------------------------------------------------

#[derive(Default)]
pub struct MockPd {
    next_id: AtomicU64,
    bootstrapped: AtomicBool,
    stores: Mutex<HashMap<u64, Store>>,
    regions: Mutex<HashMap<u64, (Region, Option<Peer>)>>,
    handlers: Mutex<Vec<HeartbeatResponseHandler>>,
    pub region_heartbeats: AtomicU64,
    pub store_heartbeats: AtomicU64,
}

impl MockPd {
    pub fn new(bootstrapped: bool) -> Arc<MockPd> {
        let pd = MockPd::default();
        pd.next_id.store(1000, Ordering::SeqCst);
        pd.bootstrapped.store(bootstrapped, Ordering::SeqCst);
        Arc::new(pd)
    }

    pub fn leader_of(&self, region_id: u64) -> Option<Peer> {
        self.regions.lock().get(&region_id).and_then(|(_, l)| *l)
    }

    pub fn send_operator(&self, resp: RegionHeartbeatResponse) {
        for h in self.handlers.lock().iter() {
            h(resp.clone());
        }
    }
}

impl PdClient for MockPd {
    fn cluster_id(&self) -> u64 {
        CLUSTER_ID
    }
    fn is_cluster_bootstrapped(&self) -> raftstore::Result<bool> {
        Ok(self.bootstrapped.load(Ordering::SeqCst))
    }
    fn bootstrap_cluster(&self, store: Store, region: Region) -> raftstore::Result<()> {
        if self.bootstrapped.swap(true, Ordering::SeqCst) {
            return Err(raftstore::Error::Pd("already bootstrapped".into()));
        }
        self.stores.lock().insert(store.id, store);
        self.regions.lock().insert(region.id, (region, None));
        Ok(())
    }
    fn alloc_id(&self) -> raftstore::Result<u64> {
        Ok(self.next_id.fetch_add(1, Ordering::SeqCst))
    }
    fn put_store(&self, store: Store) -> raftstore::Result<()> {
        self.stores.lock().insert(store.id, store);
        Ok(())
    }
    fn get_store(&self, store_id: u64) -> raftstore::Result<Store> {
        self.stores
            .lock()
            .get(&store_id)
            .cloned()
            .ok_or_else(|| raftstore::Error::Pd(format!("no store {store_id}")))
    }
    fn get_region(&self, key: &[u8]) -> raftstore::Result<Region> {
        self.regions
            .lock()
            .values()
            .map(|(r, _)| r.clone())
            .find(|r| keys::key_in_region(key, r))
            .ok_or_else(|| raftstore::Error::Pd("no region".into()))
    }
    fn get_region_by_id(
        &self,
        region_id: u64,
    ) -> raftstore::Result<Option<(Region, Option<Peer>)>> {
        Ok(self.regions.lock().get(&region_id).cloned())
    }
    fn region_heartbeat(&self, req: RegionHeartbeatRequest) -> raftstore::Result<()> {
        self.region_heartbeats.fetch_add(1, Ordering::SeqCst);
        let region = req.region.unwrap_or_default();
        self.regions.lock().insert(region.id, (region, req.leader));
        Ok(())
    }
    fn set_heartbeat_response_handler(&self, handler: HeartbeatResponseHandler) {
        self.handlers.lock().push(handler);
    }
    fn store_heartbeat(&self, _stats: StoreStats) -> raftstore::Result<()> {
        self.store_heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn ask_batch_split(&self, _region: Region, _count: usize) -> raftstore::Result<Vec<SplitId>> {
        Err(raftstore::Error::Pd("not supported".into()))
    }
    fn report_batch_split(&self, _regions: Vec<Region>) -> raftstore::Result<()> {
        Ok(())
    }
}

// ---- transport ---------------------------------------------------------------------------------

/// The network between the test stores.
#[derive(Default)]
pub struct Net {
    stores: RwLock<HashMap<u64, (Router, SnapManager)>>,
    isolated: RwLock<HashSet<u64>>,
    /// Pairs of stores that cannot talk (both directions).
    cut: RwLock<HashSet<(u64, u64)>>,
    /// Percentage of messages dropped at random.
    drop_percent: AtomicU64,
    /// While set, a flush by `gated_store` blocks (to pile up commands in its mailbox).
    gate: Mutex<Option<u64>>,
    gate_cv: Condvar,
    pub blocked_flushes: AtomicU64,
}

impl Net {
    pub fn close_gate(&self, store_id: u64) {
        *self.gate.lock() = Some(store_id);
    }

    pub fn open_gate(&self) {
        *self.gate.lock() = None;
        self.gate_cv.notify_all();
    }

    pub fn isolate(&self, store_id: u64) {
        self.isolated.write().insert(store_id);
    }

    pub fn heal(&self) {
        self.isolated.write().clear();
        self.cut.write().clear();
        self.drop_percent.store(0, Ordering::SeqCst);
    }

    /// Splits the stores into `a` and `b`: no message crosses.
    pub fn partition(&self, a: &[u64], b: &[u64]) {
        let mut cut = self.cut.write();
        for x in a {
            for y in b {
                cut.insert((*x, *y));
                cut.insert((*y, *x));
            }
        }
    }

    pub fn set_drop_percent(&self, p: u64) {
        self.drop_percent.store(p, Ordering::SeqCst);
    }

    fn blocked(&self, from: u64, to: u64) -> bool {
        let iso = self.isolated.read();
        if iso.contains(&from) || iso.contains(&to) || self.cut.read().contains(&(from, to)) {
            return true;
        }
        let p = self.drop_percent.load(Ordering::Relaxed);
        p > 0 && rand::random::<u64>() % 100 < p
    }
}

#[derive(Clone)]
pub struct TestTransport {
    net: Arc<Net>,
    store_id: u64,
    queue: Vec<RaftMessage>,
}

impl TestTransport {
    fn copy_snapshot(&self, msg: &RaftMessage, to_store: u64) -> bool {
        let stores = self.net.stores.read();
        let (Some((_, from_mgr)), Some((_, to_mgr))) =
            (stores.get(&self.store_id), stores.get(&to_store))
        else {
            return false;
        };
        let snap = msg
            .message
            .as_ref()
            .and_then(|m| m.snapshot.as_ref())
            .expect("snapshot message");
        let meta = snap.metadata.as_ref().expect("metadata");
        let key = SnapKey::new(msg.region_id, meta.term, meta.index);
        let desc = match decode_descriptor(&snap.data) {
            Ok(d) => d,
            Err(_) => return false,
        };
        let Ok(reader) = from_mgr.chunk_reader(&key, 4096) else {
            return false;
        };
        let Ok(mut writer) = to_mgr.chunk_writer(&key, &desc) else {
            return false;
        };
        for chunk in reader {
            match chunk {
                Ok(c) => {
                    if writer.write_chunk(&c).is_err() {
                        return false;
                    }
                }
                Err(_) => return false,
            }
        }
        writer.finish().is_ok()
    }
}

impl Transport for TestTransport {
    fn send(&mut self, msg: RaftMessage) -> raftstore::Result<()> {
        self.queue.push(msg);
        Ok(())
    }

    fn flush(&mut self) {
        {
            let mut gate = self.net.gate.lock();
            if *gate == Some(self.store_id) {
                self.net.blocked_flushes.fetch_add(1, Ordering::SeqCst);
                while *gate == Some(self.store_id) {
                    self.net.gate_cv.wait(&mut gate);
                }
            }
        }
        for msg in std::mem::take(&mut self.queue) {
            let to_store = msg.to_peer.as_ref().map_or(0, |p| p.store_id);
            let isolated = self.net.blocked(self.store_id, to_store);
            let router = self
                .net
                .stores
                .read()
                .get(&to_store)
                .map(|(r, _)| r.clone());
            let from_router = self
                .net
                .stores
                .read()
                .get(&self.store_id)
                .map(|(r, _)| r.clone());
            let (region_id, to_peer_id) = (msg.region_id, msg.to_peer.as_ref().map_or(0, |p| p.id));
            let Some(router) = router.filter(|_| !isolated) else {
                if let Some(r) = from_router {
                    r.report(TransportReport::Unreachable {
                        region_id,
                        to_peer_id,
                    });
                }
                continue;
            };
            let is_snap = msg
                .message
                .as_ref()
                .is_some_and(|m| m.msg_type == proto::eraftpb::MessageType::MsgSnapshot as i32);
            if is_snap {
                let ok = self.copy_snapshot(&msg, to_store);
                if let Some(r) = &from_router {
                    r.report(TransportReport::SnapshotStatus {
                        region_id,
                        to_peer_id,
                        finished: ok,
                    });
                }
                if !ok {
                    continue;
                }
            }
            let _ = router.deliver(msg);
        }
    }
}

// ---- cluster -----------------------------------------------------------------------------------

pub struct Cluster {
    pub cfg: RaftstoreConfig,
    pub pd: Arc<MockPd>,
    pub net: Arc<Net>,
    dirs: HashMap<u64, tempfile::TempDir>,
    pub engines: HashMap<u64, Engines>,
    snap_mgrs: HashMap<u64, SnapManager>,
    pub nodes: HashMap<u64, Node>,
    pub region: Region,
}

impl Cluster {
    /// `count` stores, each prepared with region 1 over `[start, end)` with peer `i` on
    /// store `i`.
    pub fn new(count: u64, cfg: RaftstoreConfig, start: &[u8], end: &[u8]) -> Cluster {
        Cluster::with_region_on(count, cfg, start, end, &(1..=count).collect::<Vec<_>>())
    }

    /// Like [`Cluster::new`], but only the stores in `prepared` start with the region; the
    /// others must get it from the leader (peer created by a message, then a snapshot).
    pub fn with_region_on(
        count: u64,
        cfg: RaftstoreConfig,
        start: &[u8],
        end: &[u8],
        prepared: &[u64],
    ) -> Cluster {
        let region = Region {
            id: 1,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: (1..=count)
                .map(|i| Peer {
                    id: i,
                    store_id: i,
                    ..Default::default()
                })
                .collect(),
        };
        Cluster::with_regions(count, cfg, vec![region], prepared)
    }

    /// `n` regions splitting the key space at `r001`, `r002`, ...: region `i` (id `i`) holds
    /// keys with prefix `r{i-1:03}`, with peer `i * 100 + s` on store `s`.
    pub fn with_split_regions(count: u64, cfg: RaftstoreConfig, n: u64) -> Cluster {
        let bound = |i: u64| {
            if i == 0 || i == n {
                vec![]
            } else {
                format!("r{i:03}").into_bytes()
            }
        };
        let regions = (1..=n)
            .map(|i| Region {
                id: i,
                start_key: bound(i - 1),
                end_key: bound(i),
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peers: (1..=count)
                    .map(|s| Peer {
                        id: i * 100 + s,
                        store_id: s,
                        ..Default::default()
                    })
                    .collect(),
            })
            .collect();
        Cluster::with_regions(count, cfg, regions, &(1..=count).collect::<Vec<_>>())
    }

    /// `count` stores; the stores in `prepared` start with every region of `regions`.
    pub fn with_regions(
        count: u64,
        cfg: RaftstoreConfig,
        regions: Vec<Region>,
        prepared: &[u64],
    ) -> Cluster {
        let region = regions[0].clone();
        let mut c = Cluster {
            cfg,
            pd: MockPd::new(true),
            net: Arc::new(Net::default()),
            dirs: HashMap::new(),
            engines: HashMap::new(),
            snap_mgrs: HashMap::new(),
            nodes: HashMap::new(),
            region: region.clone(),
        };
        for id in 1..=count {
            let dir = tempfile::tempdir().unwrap();
            let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
            raftstore::bootstrap_store(&engines, CLUSTER_ID, id).unwrap();
            if prepared.contains(&id) {
                for r in &regions {
                    raftstore::prepare_bootstrap_region(&engines, r).unwrap();
                }
            }
            let snap = SnapManager::new(dir.path().join("snap")).unwrap();
            c.engines.insert(id, engines);
            c.snap_mgrs.insert(id, snap);
            c.dirs.insert(id, dir);
        }
        c
    }

    pub fn start_all(&mut self) {
        let ids: Vec<u64> = self.engines.keys().copied().collect();
        for id in ids {
            self.start(id);
        }
    }

    pub fn start(&mut self, id: u64) {
        let (router, system) = raftstore::create_system(&self.cfg);
        let snap = self.snap_mgrs[&id].clone();
        self.net
            .stores
            .write()
            .insert(id, (router.clone(), snap.clone()));
        let trans = TestTransport {
            net: self.net.clone(),
            store_id: id,
            queue: vec![],
        };
        let store = Store {
            id,
            address: format!("store-{id}"),
            ..Default::default()
        };
        let node = Node::start(
            system,
            router,
            self.cfg.clone(),
            store,
            self.engines[&id].clone(),
            snap,
            trans,
            self.pd.clone(),
        )
        .unwrap();
        self.nodes.insert(id, node);
    }

    pub fn stop(&mut self, id: u64) {
        self.net.stores.write().remove(&id);
        if let Some(node) = self.nodes.remove(&id) {
            node.stop();
        }
    }

    pub fn router(&self, id: u64) -> Router {
        self.nodes[&id].router().clone()
    }

    pub fn leader_store(&self, region_id: u64) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, n)| n.status().region(region_id).is_some_and(|r| r.is_leader))
            .map(|(id, _)| *id)
    }

    pub fn wait_leader(&self, region_id: u64) -> u64 {
        let mut leader = None;
        wait_until("a leader", Duration::from_secs(20), || {
            leader = self.leader_store(region_id);
            leader.is_some()
        });
        leader.unwrap()
    }

    pub fn current_region(&self, store: u64) -> Region {
        self.nodes[&store]
            .status()
            .region(1)
            .unwrap()
            .region
            .clone()
    }

    pub fn header(&self, store: u64) -> RaftRequestHeader {
        RaftRequestHeader {
            region_id: 1,
            peer: Some(Peer {
                id: store,
                store_id: store,
                ..Default::default()
            }),
            region_epoch: self.current_region(store).region_epoch,
            ..Default::default()
        }
    }

    pub fn request(&self, store: u64, requests: Vec<Request>) -> RaftCmdRequest {
        RaftCmdRequest {
            header: Some(self.header(store)),
            requests,
            ..Default::default()
        }
    }

    pub fn call(&self, store: u64, req: RaftCmdRequest) -> CmdResponse {
        self.router(store)
            .execute_blocking(req, Duration::from_secs(10))
            .unwrap()
    }

    /// Like `call`, but a timeout or a stopped store is an `Err`.
    pub fn try_call(
        &self,
        store: u64,
        req: RaftCmdRequest,
        timeout: Duration,
    ) -> raftstore::Result<CmdResponse> {
        match self.nodes.get(&store) {
            Some(n) => n.router().execute_blocking(req, timeout),
            None => Err(raftstore::Error::Shutdown),
        }
    }

    /// Runs `requests` on the leader, retrying on region errors until it succeeds.
    pub fn must_run(&self, requests: Vec<Request>) -> CmdResponse {
        self.must_run_within(requests, Duration::from_secs(20))
    }

    pub fn must_run_within(&self, requests: Vec<Request>, within: Duration) -> CmdResponse {
        let deadline = Instant::now() + within;
        loop {
            assert!(
                Instant::now() < deadline,
                "command never succeeded: {requests:?}"
            );
            let Some(leader) = self.leader_store(1) else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let req = self.request(leader, requests.clone());
            if let Ok(resp) = self.try_call(leader, req, Duration::from_secs(2)) {
                if resp.error().is_none() {
                    return resp;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn must_put(&self, key: &[u8], value: &[u8]) {
        self.must_run(vec![put(key, value)]);
    }

    pub fn must_get(&self, key: &[u8]) -> Vec<u8> {
        let resp = self.must_run(vec![get(key)]);
        resp.response.responses[0]
            .get
            .as_ref()
            .unwrap()
            .value
            .clone()
    }

    /// The value of `key` in store `id`'s kv engine, read directly.
    pub fn engine_get(&self, id: u64, key: &[u8]) -> Option<Vec<u8>> {
        self.engines[&id]
            .kv
            .get_value_cf(CF_DEFAULT, &keys::data_key(key))
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
    }
}

pub fn put(key: &[u8], value: &[u8]) -> Request {
    Request {
        cmd_type: CmdType::Put as i32,
        put: Some(PutRequest {
            cf: String::new(),
            key: key.to_vec(),
            value: value.to_vec(),
        }),
        ..Default::default()
    }
}

pub fn get(key: &[u8]) -> Request {
    Request {
        cmd_type: CmdType::Get as i32,
        get: Some(GetRequest {
            cf: String::new(),
            key: key.to_vec(),
        }),
        ..Default::default()
    }
}

pub fn delete(key: &[u8]) -> Request {
    Request {
        cmd_type: CmdType::Delete as i32,
        delete: Some(DeleteRequest {
            cf: String::new(),
            key: key.to_vec(),
        }),
        ..Default::default()
    }
}

pub fn snap() -> Request {
    Request {
        cmd_type: CmdType::Snap as i32,
        snap: Some(SnapRequest {}),
        ..Default::default()
    }
}
