//! Shared test helpers: starting a scheduler on an ephemeral port, a gRPC client, and simulated
//! stores that heartbeat and obey operator commands.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use proto::eraftpb::ConfChangeType;
use proto::metapb::{self, Peer, RegionEpoch};
use proto::pdpb::pd_client::PdClient;
use proto::pdpb::*;
use scheduler::{Config, SchedulerServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// How long tests wait for a condition before failing. Generous: the machine is shared.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// A test config for `dir`, tweaked by `f`.
pub fn config(dir: &Path, f: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::new_test_config();
    c.data_dir = dir.to_path_buf();
    f(&mut c);
    c
}

/// Starts a scheduler on an ephemeral port.
pub async fn start(config: Config) -> SchedulerServer {
    SchedulerServer::start(config)
        .await
        .expect("start scheduler")
}

/// A client connected to `server`.
pub async fn connect(server: &SchedulerServer) -> PdClient<Channel> {
    PdClient::connect(server.client_url().to_string())
        .await
        .expect("connect")
}

/// A request header for `cluster_id`.
pub fn header(cluster_id: u64) -> Option<RequestHeader> {
    Some(RequestHeader {
        cluster_id,
        sender_id: 0,
    })
}

/// Polls `check` every 20 ms until it returns `Some`, or panics after [`DEADLINE`].
pub async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out after {DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A store address used in tests.
pub fn store_addr(id: u64) -> String {
    format!("127.0.0.1:{}", 20160 + id)
}

/// Bootstraps with store 1 and region `region_id` (one peer, `peer_id`, all keys), then registers
/// stores `2..=stores`.
pub async fn bootstrap(
    client: &mut PdClient<Channel>,
    cluster_id: u64,
    stores: u64,
    region_id: u64,
    peer_id: u64,
) {
    let store = metapb::Store {
        id: 1,
        address: store_addr(1),
        ..Default::default()
    };
    // No epoch, as a store's first region may be sent: the scheduler reads it as {0, 0}, so any
    // region reported later replaces it.
    let region = metapb::Region {
        id: region_id,
        region_epoch: None,
        peers: vec![Peer {
            id: peer_id,
            store_id: 1,
            ..Default::default()
        }],
        ..Default::default()
    };
    let resp = client
        .bootstrap(BootstrapRequest {
            header: header(cluster_id),
            store: Some(store),
            region: Some(region),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.header.unwrap().error.is_none());
    for id in 2..=stores {
        let resp = client
            .put_store(PutStoreRequest {
                header: header(cluster_id),
                store: Some(metapb::Store {
                    id,
                    address: store_addr(id),
                    ..Default::default()
                }),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(resp.header.unwrap().error.is_none());
    }
}

/// A simulated store: a region heartbeat stream, with the responses it receives collected.
pub struct SimStore {
    pub id: u64,
    /// Whether it heartbeats (a dead store stays silent).
    pub alive: bool,
    tx: mpsc::Sender<RegionHeartbeatRequest>,
    responses: mpsc::UnboundedReceiver<RegionHeartbeatResponse>,
}

/// A region as the simulated stores see it.
#[derive(Debug, Clone)]
pub struct SimRegion {
    pub meta: metapb::Region,
    pub leader: Peer,
    /// New peers stay pending for one round (they "catch up" by the next heartbeat).
    pub pending: Vec<Peer>,
    pub size: u64,
}

impl SimRegion {
    pub fn new(id: u64, start: &[u8], end: &[u8], peers: &[(u64, u64)], leader_store: u64) -> Self {
        let peers: Vec<Peer> = peers
            .iter()
            .map(|&(id, store_id)| Peer {
                id,
                store_id,
                ..Default::default()
            })
            .collect();
        let leader = peers
            .iter()
            .find(|p| p.store_id == leader_store)
            .cloned()
            .expect("leader store holds a peer");
        SimRegion {
            meta: metapb::Region {
                id,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                region_epoch: Some(RegionEpoch {
                    conf_ver: peers.len() as u64,
                    version: 1,
                }),
                peers,
            },
            leader,
            pending: Vec::new(),
            size: 10 << 20,
        }
    }

    pub fn stores(&self) -> Vec<u64> {
        let mut s: Vec<u64> = self.meta.peers.iter().map(|p| p.store_id).collect();
        s.sort_unstable();
        s
    }
}

/// Simulated stores plus the regions they host, obeying the scheduler's commands.
pub struct SimCluster {
    pub client: PdClient<Channel>,
    pub cluster_id: u64,
    pub stores: BTreeMap<u64, SimStore>,
    pub regions: BTreeMap<u64, SimRegion>,
    /// Commands applied so far (for assertions).
    pub applied: usize,
    /// Commands ignored as stale (duplicates that arrived after their effect).
    pub stale: usize,
}

impl SimCluster {
    pub async fn new(client: PdClient<Channel>, cluster_id: u64) -> SimCluster {
        SimCluster {
            client,
            cluster_id,
            stores: BTreeMap::new(),
            regions: BTreeMap::new(),
            applied: 0,
            stale: 0,
        }
    }

    /// Opens store `id`'s heartbeat stream.
    pub async fn add_store(&mut self, id: u64) {
        let (tx, rx) = mpsc::channel(4096);
        let mut inbound = self
            .client
            .region_heartbeat(ReceiverStream::new(rx))
            .await
            .expect("open heartbeat stream")
            .into_inner();
        let (resp_tx, responses) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(r)) = inbound.message().await {
                if resp_tx.send(r).is_err() {
                    break;
                }
            }
        });
        self.stores.insert(
            id,
            SimStore {
                id,
                alive: true,
                tx,
                responses,
            },
        );
    }

    pub fn add_region(&mut self, r: SimRegion) {
        self.regions.insert(r.meta.id, r);
    }

    /// One round: live stores heartbeat, every region whose leader store is alive reports,
    /// then commands received so far are applied.
    pub async fn step(&mut self) {
        for s in self.stores.values().filter(|s| s.alive) {
            let count = self
                .regions
                .values()
                .filter(|r| r.meta.peers.iter().any(|p| p.store_id == s.id))
                .count();
            let resp = self
                .client
                .clone()
                .store_heartbeat(StoreHeartbeatRequest {
                    header: header(self.cluster_id),
                    stats: Some(StoreStats {
                        store_id: s.id,
                        capacity: 100 << 30,
                        available: 90 << 30,
                        region_count: count as u32,
                        ..Default::default()
                    }),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(resp.header.unwrap().error.is_none());
        }
        for r in self.regions.values_mut() {
            let leader_store = r.leader.store_id;
            let Some(store) = self.stores.get(&leader_store).filter(|s| s.alive) else {
                continue;
            };
            let req = RegionHeartbeatRequest {
                header: header(self.cluster_id),
                region: Some(r.meta.clone()),
                leader: Some(r.leader),
                pending_peers: r.pending.clone(),
                approximate_size: r.size,
                ..Default::default()
            };
            // New peers have caught up by the next round.
            r.pending.clear();
            store.tx.send(req).await.expect("heartbeat stream open");
        }
        // Give the scheduler a moment to answer, then apply what arrived.
        tokio::time::sleep(Duration::from_millis(10)).await;
        self.apply_commands();
    }

    /// Applies every command received so far, like a store: a command must come on the stream
    /// of the store that led the region when it was sent (`target_peer`); one that no longer
    /// matches the region's leader or epoch is stale and ignored.
    pub fn apply_commands(&mut self) {
        for store in self.stores.values_mut() {
            while let Ok(resp) = store.responses.try_recv() {
                let h = resp.header.as_ref().expect("response header");
                assert!(h.error.is_none(), "heartbeat rejected: {:?}", h.error);
                assert_eq!(h.cluster_id, self.cluster_id);
                let target = resp.target_peer.as_ref().expect("command names its leader");
                assert_eq!(
                    target.store_id, store.id,
                    "command for region {} routed to store {}, not its leader's",
                    resp.region_id, store.id
                );
                let Some(r) = self.regions.get_mut(&resp.region_id) else {
                    panic!("command for unknown region {}", resp.region_id);
                };
                if r.leader.id != target.id || resp.region_epoch != r.meta.region_epoch {
                    self.stale += 1;
                    continue;
                }
                apply(r, &resp);
                self.applied += 1;
            }
        }
    }

    /// Runs `step` until `done` holds, or panics after [`DEADLINE`].
    pub async fn run_until(&mut self, what: &str, mut done: impl FnMut(&SimCluster) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < DEADLINE,
                "timed out after {DEADLINE:?} waiting for {what}"
            );
            self.step().await;
        }
    }
}

/// Applies one command the way a store would: idempotently, bumping conf_ver on membership
/// changes.
fn apply(r: &mut SimRegion, resp: &RegionHeartbeatResponse) {
    if let Some(cp) = &resp.change_peer {
        let peer = cp.peer.expect("change_peer has a peer");
        let epoch = r.meta.region_epoch.as_mut().unwrap();
        if cp.change_type == ConfChangeType::AddNode as i32 {
            if !r.meta.peers.iter().any(|p| p.store_id == peer.store_id) {
                r.meta.peers.push(peer);
                r.pending.push(peer);
                epoch.conf_ver += 1;
            }
        } else if cp.change_type == ConfChangeType::RemoveNode as i32 {
            assert_ne!(peer.id, r.leader.id, "asked to remove the leader");
            let before = r.meta.peers.len();
            r.meta.peers.retain(|p| p.id != peer.id);
            if r.meta.peers.len() != before {
                epoch.conf_ver += 1;
            }
        }
    }
    if let Some(tl) = &resp.transfer_leader {
        let peer = tl.peer.expect("transfer_leader has a peer");
        if r.meta.peers.iter().any(|p| p.id == peer.id) {
            r.leader = peer;
        }
    }
}
