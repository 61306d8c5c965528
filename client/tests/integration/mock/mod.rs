//! In-process mock cluster: PD members and stores as tonic servers on ephemeral loopback ports,
//! sharing one in-memory state. Tests drive routing changes (splits, leader moves, store
//! outages, PD leader changes) through [`MockCluster`] and observe the RPCs each server got.

// The mock passes protobuf errors around by value, as the wire types they are.
#![allow(clippy::result_large_err)]

pub mod mvcc;
mod pd;
mod tikv;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use client::codec::{decode_bytes, encode_bytes};
use parking_lot::Mutex;
use proto::metapb;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use self::mvcc::Mvcc;

pub const CLUSTER_ID: u64 = 0x7e57;

#[derive(Clone, Debug)]
pub struct MockRegion {
    /// Bounds in PD space (memcomparable-encoded in transactional mode).
    pub meta: metapb::Region,
    pub leader_store: u64,
}

#[derive(Default)]
pub struct State {
    pub txn_mode: bool,
    pub regions: BTreeMap<u64, MockRegion>,
    pub store_addrs: BTreeMap<u64, String>,
    pub stores_down: Vec<u64>,
    pub busy_stores: Vec<u64>,
    pub store_delay: HashMap<u64, Duration>,
    /// Every store answers every request with this status.
    pub store_status: Option<tonic::Code>,
    /// PD answers ScanRegions with UNIMPLEMENTED.
    pub scan_regions_unimplemented: bool,
    pub next_id: u64,
    pub pd_urls: Vec<String>,
    pub pd_leader: usize,
    pub pd_down: Vec<bool>,
    pub tso_physical: u64,
    pub tso_logical: u64,
    /// NotLeader names the leader.
    pub not_leader_hint: bool,
    /// EpochNotMatch carries the store's current regions.
    pub epoch_regions: bool,
    /// GetRegion / ScanRegions fail for PD keys at or after this one.
    pub fail_region_lookup_from: Option<Vec<u8>>,
    /// The next primary commit finds its min_commit_ts pushed past the commit ts.
    pub push_min_commit_ts_once: bool,
    pub raw: HashMap<String, BTreeMap<Vec<u8>, Vec<u8>>>,
    pub mvcc: Mvcc,
}

impl State {
    /// A user key as regions are bounded.
    pub fn route_key(&self, key: &[u8]) -> Vec<u8> {
        if self.txn_mode {
            encode_bytes(key)
        } else {
            key.to_vec()
        }
    }

    pub fn region_contains(&self, meta: &metapb::Region, user_key: &[u8]) -> bool {
        let k = self.route_key(user_key);
        k >= meta.start_key && (meta.end_key.is_empty() || k < meta.end_key)
    }

    /// Region bounds as user keys (`None` end: unbounded).
    pub fn user_bounds(&self, meta: &metapb::Region) -> (Vec<u8>, Option<Vec<u8>>) {
        let dec = |b: &[u8]| {
            if self.txn_mode && !b.is_empty() {
                decode_bytes(b).expect("mock bounds are encoded")
            } else {
                b.to_vec()
            }
        };
        let end = (!meta.end_key.is_empty()).then(|| dec(&meta.end_key));
        (dec(&meta.start_key), end)
    }

    pub fn region_by_pd_key(&self, key: &[u8]) -> Option<&MockRegion> {
        self.regions.values().find(|r| {
            key >= r.meta.start_key.as_slice()
                && (r.meta.end_key.is_empty() || key < r.meta.end_key.as_slice())
        })
    }

    pub fn leader_peer(&self, r: &MockRegion) -> metapb::Peer {
        *r.meta
            .peers
            .iter()
            .find(|p| p.store_id == r.leader_store)
            .expect("leader store holds a peer")
    }

    pub fn next_ts(&mut self, count: u64) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        if now > self.tso_physical {
            self.tso_physical = now;
            self.tso_logical = 0;
        }
        self.tso_logical += count;
        (self.tso_physical << 18) | self.tso_logical
    }
}

/// RPC counters, by method name and server.
#[derive(Default)]
pub struct Counters {
    by_name: HashMap<String, u64>,
}

pub struct Shared {
    pub state: Mutex<State>,
    counters: Mutex<Counters>,
    /// TSO answers wait while this is false.
    pub tso_gate: watch::Sender<bool>,
}

impl Shared {
    pub fn count(&self, name: &str) {
        *self
            .counters
            .lock()
            .by_name
            .entry(name.to_owned())
            .or_default() += 1;
    }
}

pub struct MockCluster {
    pub shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for MockCluster {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn listener() -> (TcpListener, String) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    (l, addr)
}

impl MockCluster {
    /// `pd_members` PD servers (member 0 leads) and `stores` stores holding one region that
    /// covers everything, led by store 1. `txn_mode` encodes region bounds.
    pub async fn start(pd_members: usize, stores: u64, txn_mode: bool) -> MockCluster {
        let (gate, _) = watch::channel(true);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                txn_mode,
                not_leader_hint: true,
                epoch_regions: true,
                next_id: 1000,
                ..Default::default()
            }),
            counters: Mutex::new(Counters::default()),
            tso_gate: gate,
        });
        let mut tasks = Vec::new();
        let mut pd_listeners = Vec::new();
        for _ in 0..pd_members {
            let (l, addr) = listener().await;
            shared.state.lock().pd_urls.push(format!("http://{addr}"));
            shared.state.lock().pd_down.push(false);
            pd_listeners.push(l);
        }
        for (i, l) in pd_listeners.into_iter().enumerate() {
            let svc = proto::pdpb::pd_server::PdServer::new(pd::MockPd {
                member: i,
                shared: shared.clone(),
            });
            tasks.push(tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming(TcpListenerStream::new(l))
                    .await;
            }));
        }
        let mut peers = Vec::new();
        for store_id in 1..=stores {
            let (l, addr) = listener().await;
            shared.state.lock().store_addrs.insert(store_id, addr);
            peers.push(metapb::Peer {
                id: 100 + store_id,
                store_id,
                ..Default::default()
            });
            let svc = proto::tikvpb::tikv_server::TikvServer::new(tikv::MockTikv {
                store_id,
                shared: shared.clone(),
            });
            tasks.push(tokio::spawn(async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(svc)
                    .serve_with_incoming(TcpListenerStream::new(l))
                    .await;
            }));
        }
        shared.state.lock().regions.insert(
            1,
            MockRegion {
                meta: metapb::Region {
                    id: 1,
                    start_key: vec![],
                    end_key: vec![],
                    region_epoch: Some(metapb::RegionEpoch {
                        conf_ver: 1,
                        version: 1,
                    }),
                    peers,
                },
                leader_store: 1,
            },
        );
        MockCluster { shared, tasks }
    }

    pub fn pd_endpoints(&self) -> Vec<String> {
        self.shared.state.lock().pd_urls.clone()
    }

    /// Calls of an RPC across all servers.
    pub fn count(&self, name: &str) -> u64 {
        self.shared
            .counters
            .lock()
            .by_name
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    pub fn state(&self) -> parking_lot::MutexGuard<'_, State> {
        self.shared.state.lock()
    }

    /// Splits the region holding `user_key` at it; both halves get a new version and keep
    /// the leader's store. Returns the new (right) region's id.
    pub fn split(&self, user_key: &[u8]) -> u64 {
        let mut st = self.state();
        let split = st.route_key(user_key);
        let left_id = st.region_by_pd_key(&split).expect("region").meta.id;
        let new_id = st.next_id;
        st.next_id += 1;
        let left = st.regions.get_mut(&left_id).unwrap();
        assert_ne!(left.meta.start_key, split, "split at a region start");
        let epoch = left.meta.region_epoch.as_mut().unwrap();
        epoch.version += 1;
        let mut right = left.clone();
        right.meta.id = new_id;
        right.meta.start_key = split.clone();
        for p in &mut right.meta.peers {
            p.id = new_id * 100 + p.store_id;
        }
        left.meta.end_key = split;
        st.regions.insert(new_id, right);
        new_id
    }

    pub fn region_of(&self, user_key: &[u8]) -> u64 {
        let st = self.state();
        let k = st.route_key(user_key);
        st.region_by_pd_key(&k).expect("region").meta.id
    }

    pub fn transfer_leader(&self, region_id: u64, store_id: u64) {
        self.state()
            .regions
            .get_mut(&region_id)
            .unwrap()
            .leader_store = store_id;
    }

    pub fn set_store_down(&self, store_id: u64, down: bool) {
        let mut st = self.state();
        st.stores_down.retain(|s| *s != store_id);
        if down {
            st.stores_down.push(store_id);
        }
    }

    pub fn set_pd_leader(&self, member: usize) {
        self.state().pd_leader = member;
    }

    pub fn set_pd_down(&self, member: usize, down: bool) {
        self.state().pd_down[member] = down;
    }

    pub fn raw_value(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.state().raw.get(cf).and_then(|m| m.get(key).cloned())
    }

    pub fn raw_len(&self) -> usize {
        self.state().raw.values().map(BTreeMap::len).sum()
    }

    pub fn lock_count(&self) -> usize {
        self.state().mvcc.locks.len()
    }

    pub fn ts(&self) -> u64 {
        self.state().next_ts(1)
    }
}

/// Polls `cond` until it holds or `timeout` passes.
pub async fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
