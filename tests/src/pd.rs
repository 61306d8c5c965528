//! An in-memory scheduler for test clusters, implementing the store side of
//! [`raftstore::pd_client::PdClient`].
//!
//! Like TinyKV's mock scheduler, it learns regions and leaders **only** from region heartbeats:
//! routing in the harness therefore works only if stores heartbeat promptly (on becoming leader,
//! after every region change, periodically). Heartbeats go through the real scheduler's region
//! tree and staleness rules (`scheduler::core`), so a deposed leader or an old epoch cannot
//! overwrite newer knowledge.
//!
//! Tests drive membership and leadership through per-region [`Operator`]s: the operator's next
//! step is answered to every heartbeat of its region (to the leader's store) until a heartbeat
//! shows it done — so the store must apply each step idempotently.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use proto::eraftpb::ConfChangeType;
use proto::metapb::{Peer, Region, Store};
use proto::pdpb::{self, RegionHeartbeatRequest, RegionHeartbeatResponse, SplitId, StoreStats};
use raftstore::pd_client::{HeartbeatResponseHandler, PdClient};
use raftstore::{Error, Result};
use scheduler::core::{RegionInfo, RegionTree};

/// A test operator on one region, re-sent on every heartbeat until observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    /// Add this peer; done once it is a member and no longer pending (caught up).
    AddPeer(Peer),
    /// Remove this peer; done once it is no longer a member.
    RemovePeer(Peer),
    /// Move leadership to this peer; done once it reports as leader.
    TransferLeader(Peer),
}

/// What an operator asks of a region in its current state.
enum Step {
    Done,
    Wait,
    Send(Box<RegionHeartbeatResponse>),
}

impl Operator {
    fn step(&self, cluster_id: u64, r: &RegionInfo) -> Step {
        let is_member = |p: &Peer| r.meta.peers.iter().any(|x| x.id == p.id);
        let mut resp = RegionHeartbeatResponse {
            header: Some(pdpb::ResponseHeader {
                cluster_id,
                error: None,
            }),
            region_id: r.id(),
            region_epoch: r.meta.region_epoch,
            target_peer: r.leader,
            ..Default::default()
        };
        let change = |peer: &Peer, t: ConfChangeType| pdpb::ChangePeer {
            peer: Some(*peer),
            change_type: t as i32,
        };
        match self {
            Operator::AddPeer(p) if !is_member(p) => {
                resp.change_peer = Some(change(p, ConfChangeType::AddNode));
                Step::Send(Box::new(resp))
            }
            Operator::AddPeer(p) if r.pending_peers.iter().any(|x| x.id == p.id) => Step::Wait,
            Operator::RemovePeer(p) if is_member(p) => {
                resp.change_peer = Some(change(p, ConfChangeType::RemoveNode));
                Step::Send(Box::new(resp))
            }
            Operator::TransferLeader(p) if r.leader.map(|l| l.id) != Some(p.id) => {
                resp.transfer_leader = Some(pdpb::TransferLeader {
                    peer: Some(*p),
                    peers: vec![],
                });
                Step::Send(Box::new(resp))
            }
            _ => Step::Done,
        }
    }
}

#[derive(Default)]
struct State {
    bootstrapped: bool,
    stores: HashMap<u64, Store>,
    store_stats: HashMap<u64, StoreStats>,
    regions: RegionTree,
    operators: HashMap<u64, Operator>,
    heartbeats: u64,
    stale_heartbeats: u64,
    split_reports: u64,
    violations: Vec<String>,
}

type SharedHandler = Arc<dyn Fn(RegionHeartbeatResponse) + Send + Sync>;

/// The scheduler of one test cluster. Give each store its own [`MockPd::client`].
pub struct MockPd {
    cluster_id: u64,
    next_id: AtomicU64,
    state: Mutex<State>,
    handlers: RwLock<HashMap<u64, SharedHandler>>,
}

impl MockPd {
    /// A scheduler for cluster `cluster_id` whose id allocator starts at `first_id` (ids below
    /// are taken by the harness's own bootstrap: stores, the first region and its peers).
    pub fn new(cluster_id: u64, first_id: u64) -> Arc<MockPd> {
        Arc::new(MockPd {
            cluster_id,
            next_id: AtomicU64::new(first_id),
            state: Mutex::new(State::default()),
            handlers: RwLock::new(HashMap::new()),
        })
    }

    /// The client store `store_id` uses: heartbeat responses for regions it leads go to the
    /// handler it installs through this client.
    pub fn client(self: &Arc<Self>, store_id: u64) -> Arc<MockPdClient> {
        Arc::new(MockPdClient {
            store_id,
            pd: self.clone(),
        })
    }

    /// Forgets the heartbeat handler of a stopped store.
    pub fn remove_handler(&self, store_id: u64) {
        self.handlers.write().remove(&store_id);
    }

    /// Allocates a cluster-unique id.
    pub fn alloc_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Marks the cluster bootstrapped with `store` as its first store, as the harness does
    /// before starting stores it bootstrapped itself. The first region is learned from its
    /// leader's heartbeats, like every other.
    pub fn bootstrap(&self, store: Store) -> Result<()> {
        let mut st = self.state.lock();
        if st.bootstrapped {
            return Err(Error::Pd(format!(
                "cluster {} is already bootstrapped",
                self.cluster_id
            )));
        }
        st.bootstrapped = true;
        st.stores.insert(store.id, store);
        Ok(())
    }

    /// The region containing `key`, if a heartbeat reported it.
    pub fn region_by_key(&self, key: &[u8]) -> Option<Region> {
        self.state
            .lock()
            .regions
            .search(key)
            .map(|r| r.meta.clone())
    }

    /// Everything known about region `region_id` (leader, pending peers, size).
    pub fn region_info(&self, region_id: u64) -> Option<RegionInfo> {
        self.state
            .lock()
            .regions
            .get(region_id)
            .map(|r| RegionInfo::clone(r))
    }

    /// The leader of region `region_id` as last reported.
    pub fn leader_of(&self, region_id: u64) -> Option<Peer> {
        self.state
            .lock()
            .regions
            .get(region_id)
            .and_then(|r| r.leader)
    }

    /// Every known region, in key order.
    pub fn regions(&self) -> Vec<Region> {
        self.state
            .lock()
            .regions
            .iter()
            .map(|r| r.meta.clone())
            .collect()
    }

    /// Installs (replacing any previous one) an operator on `region_id`.
    pub fn add_operator(&self, region_id: u64, op: Operator) {
        self.state.lock().operators.insert(region_id, op);
    }

    /// The unfinished operator of `region_id`, if any.
    pub fn operator(&self, region_id: u64) -> Option<Operator> {
        self.state.lock().operators.get(&region_id).cloned()
    }

    /// Drops the operator of `region_id`.
    pub fn remove_operator(&self, region_id: u64) {
        self.state.lock().operators.remove(&region_id);
    }

    /// The latest statistics store `store_id` reported.
    pub fn store_stats(&self, store_id: u64) -> Option<StoreStats> {
        self.state.lock().store_stats.get(&store_id).cloned()
    }

    /// Heartbeats accepted and rejected as stale so far.
    pub fn heartbeat_counts(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.heartbeats, st.stale_heartbeats)
    }

    /// How many split reports arrived.
    pub fn split_reports(&self) -> u64 {
        self.state.lock().split_reports
    }

    /// Heartbeats that broke an invariant of the store (e.g. membership changed without a
    /// `conf_ver` bump). Suites assert this is empty.
    pub fn violations(&self) -> Vec<String> {
        self.state.lock().violations.clone()
    }

    fn handle_heartbeat(&self, req: RegionHeartbeatRequest) -> Result<()> {
        let info = RegionInfo::from_heartbeat(&req)
            .ok_or_else(|| Error::Pd("region heartbeat without a region".into()))?;
        let mut st = self.state.lock();
        if let Err(e) = st.regions.check_stale(&info) {
            st.stale_heartbeats += 1;
            return Err(Error::Pd(e.to_string()));
        }
        let violation = epoch_violation(st.regions.get(info.id()).map(|r| &**r), &info);
        st.violations.extend(violation);
        st.heartbeats += 1;
        let region_id = info.id();
        let leader_store = info.leader.map(|l| l.store_id);
        let step = st
            .operators
            .get(&region_id)
            .map(|op| op.step(self.cluster_id, &info));
        st.regions.insert(Arc::new(info));
        let resp = match step {
            Some(Step::Done) => {
                st.operators.remove(&region_id);
                None
            }
            Some(Step::Send(resp)) => Some(*resp),
            Some(Step::Wait) | None => None,
        };
        drop(st);
        // Answer outside the lock: the handler feeds the store, which may heartbeat again.
        if let (Some(resp), Some(store)) = (resp, leader_store) {
            let handler = self.handlers.read().get(&store).cloned();
            if let Some(h) = handler {
                h(resp);
            }
        }
        Ok(())
    }
}

/// A change of range or membership must come with a bump of `version` or `conf_ver`; a store
/// reporting otherwise has a bug that would make epoch checks meaningless.
fn epoch_violation(cached: Option<&RegionInfo>, incoming: &RegionInfo) -> Option<String> {
    let cached = cached?;
    let (a, b) = (cached.epoch(), incoming.epoch());
    let mut peers_a: Vec<u64> = cached.peers().iter().map(|p| p.id).collect();
    let mut peers_b: Vec<u64> = incoming.peers().iter().map(|p| p.id).collect();
    peers_a.sort_unstable();
    peers_b.sort_unstable();
    if a.conf_ver == b.conf_ver && peers_a != peers_b {
        return Some(format!(
            "region {}: peers changed from {peers_a:?} to {peers_b:?} at conf_ver {}",
            incoming.id(),
            b.conf_ver
        ));
    }
    if a.version == b.version
        && (cached.start_key() != incoming.start_key() || cached.end_key() != incoming.end_key())
    {
        return Some(format!(
            "region {}: range changed at version {}",
            incoming.id(),
            b.version
        ));
    }
    None
}

/// One store's connection to the [`MockPd`].
pub struct MockPdClient {
    store_id: u64,
    pd: Arc<MockPd>,
}

impl MockPdClient {
    /// The scheduler behind this client.
    pub fn pd(&self) -> &Arc<MockPd> {
        &self.pd
    }
}

impl PdClient for MockPdClient {
    fn cluster_id(&self) -> u64 {
        self.pd.cluster_id
    }

    fn is_cluster_bootstrapped(&self) -> Result<bool> {
        Ok(self.pd.state.lock().bootstrapped)
    }

    fn bootstrap_cluster(&self, store: Store, _region: Region) -> Result<()> {
        self.pd.bootstrap(store)
    }

    fn alloc_id(&self) -> Result<u64> {
        Ok(self.pd.alloc_id())
    }

    fn put_store(&self, store: Store) -> Result<()> {
        if store.id == 0 {
            return Err(Error::Pd("put_store with store id 0".into()));
        }
        self.pd.state.lock().stores.insert(store.id, store);
        Ok(())
    }

    fn get_store(&self, store_id: u64) -> Result<Store> {
        self.pd
            .state
            .lock()
            .stores
            .get(&store_id)
            .cloned()
            .ok_or_else(|| Error::Pd(format!("store {store_id} not found")))
    }

    fn get_region(&self, key: &[u8]) -> Result<Region> {
        self.pd
            .region_by_key(key)
            .ok_or_else(|| Error::Pd(format!("no known region contains key {key:?}")))
    }

    fn get_region_by_id(&self, region_id: u64) -> Result<Option<(Region, Option<Peer>)>> {
        Ok(self
            .pd
            .state
            .lock()
            .regions
            .get(region_id)
            .map(|r| (r.meta.clone(), r.leader)))
    }

    fn region_heartbeat(&self, req: RegionHeartbeatRequest) -> Result<()> {
        self.pd.handle_heartbeat(req)
    }

    fn set_heartbeat_response_handler(&self, handler: HeartbeatResponseHandler) {
        self.pd
            .handlers
            .write()
            .insert(self.store_id, Arc::from(handler));
    }

    fn store_heartbeat(&self, stats: StoreStats) -> Result<()> {
        self.pd
            .state
            .lock()
            .store_stats
            .insert(stats.store_id, stats);
        Ok(())
    }

    fn ask_batch_split(&self, region: Region, count: usize) -> Result<Vec<SplitId>> {
        {
            let st = self.pd.state.lock();
            if let Some(cur) = st.regions.get(region.id) {
                let asked = region.region_epoch.unwrap_or_default();
                if asked.version < cur.version() || asked.conf_ver < cur.conf_ver() {
                    return Err(Error::Pd(format!(
                        "ask split for region {} with stale epoch {asked:?}",
                        region.id
                    )));
                }
            }
        }
        Ok((0..count)
            .map(|_| SplitId {
                new_region_id: self.pd.alloc_id(),
                new_peer_ids: region.peers.iter().map(|_| self.pd.alloc_id()).collect(),
            })
            .collect())
    }

    fn report_batch_split(&self, _regions: Vec<Region>) -> Result<()> {
        // Regions are learned from heartbeats only; the report is just counted.
        self.pd.state.lock().split_reports += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::metapb::RegionEpoch;

    fn peer(id: u64) -> Peer {
        Peer {
            id,
            store_id: id,
            ..Default::default()
        }
    }

    fn region(conf_ver: u64, version: u64, peers: &[u64]) -> Region {
        Region {
            id: 1,
            start_key: vec![],
            end_key: vec![],
            region_epoch: Some(RegionEpoch { conf_ver, version }),
            peers: peers.iter().map(|p| peer(*p)).collect(),
        }
    }

    fn heartbeat(region: Region, leader: u64, term: u64) -> RegionHeartbeatRequest {
        RegionHeartbeatRequest {
            region: Some(region),
            leader: Some(peer(leader)),
            term,
            ..Default::default()
        }
    }

    fn capture(pd: &Arc<MockPd>, store: u64) -> Arc<Mutex<Vec<RegionHeartbeatResponse>>> {
        let got = Arc::new(Mutex::new(vec![]));
        let sink = got.clone();
        pd.client(store)
            .set_heartbeat_response_handler(Box::new(move |r| sink.lock().push(r)));
        got
    }

    #[test]
    fn regions_come_only_from_heartbeats_and_stale_ones_are_refused() {
        let pd = MockPd::new(7, 10);
        let c = pd.client(1);
        pd.bootstrap(Store {
            id: 1,
            ..Default::default()
        })
        .unwrap();
        assert!(c.is_cluster_bootstrapped().unwrap());
        assert!(
            c.get_region(b"a").is_err(),
            "bootstrap does not teach regions"
        );
        c.region_heartbeat(heartbeat(region(1, 1, &[1, 2, 3]), 1, 6))
            .unwrap();
        assert_eq!(c.get_region(b"a").unwrap().id, 1);
        assert_eq!(pd.leader_of(1).unwrap().id, 1);
        // A deposed leader (older term) and an older epoch are both refused.
        assert!(c
            .region_heartbeat(heartbeat(region(1, 1, &[1, 2, 3]), 2, 5))
            .is_err());
        c.region_heartbeat(heartbeat(region(2, 1, &[1, 2]), 2, 7))
            .unwrap();
        assert!(c
            .region_heartbeat(heartbeat(region(1, 1, &[1, 2, 3]), 2, 7))
            .is_err());
        assert_eq!(pd.heartbeat_counts(), (2, 2));
        assert_eq!(pd.leader_of(1).unwrap().id, 2);
        assert!(pd.violations().is_empty());
        // Membership changing at the same conf_ver is a store bug and is recorded.
        c.region_heartbeat(heartbeat(region(2, 1, &[1, 2, 4]), 2, 7))
            .unwrap();
        assert_eq!(pd.violations().len(), 1);
    }

    #[test]
    fn operators_repeat_until_observed() {
        let pd = MockPd::new(7, 10);
        let got = capture(&pd, 1);
        let c = pd.client(1);
        let new_peer = Peer {
            id: 11,
            store_id: 4,
            ..Default::default()
        };
        pd.add_operator(1, Operator::AddPeer(new_peer));
        for _ in 0..2 {
            c.region_heartbeat(heartbeat(region(1, 1, &[1, 2, 3]), 1, 6))
                .unwrap();
        }
        {
            let got = got.lock();
            assert_eq!(got.len(), 2, "re-sent on every heartbeat until observed");
            let cp = got[0].change_peer.as_ref().unwrap();
            assert_eq!(cp.change_type, ConfChangeType::AddNode as i32);
            assert_eq!(cp.peer.unwrap().id, 11);
            assert_eq!(got[0].target_peer.unwrap().id, 1);
        }
        // Member but still pending: wait, without re-sending.
        let mut r = region(2, 1, &[1, 2, 3]);
        r.peers.push(new_peer);
        let mut hb = heartbeat(r.clone(), 1, 6);
        hb.pending_peers = vec![new_peer];
        c.region_heartbeat(hb).unwrap();
        assert_eq!(got.lock().len(), 2);
        assert!(pd.operator(1).is_some());
        c.region_heartbeat(heartbeat(r.clone(), 1, 6)).unwrap();
        assert!(pd.operator(1).is_none(), "done once caught up");

        pd.add_operator(1, Operator::TransferLeader(peer(2)));
        c.region_heartbeat(heartbeat(r.clone(), 1, 6)).unwrap();
        assert_eq!(
            got.lock()
                .last()
                .unwrap()
                .transfer_leader
                .as_ref()
                .unwrap()
                .peer
                .unwrap()
                .id,
            2
        );
        // The new leader's store gets nothing: the operator is done when it reports.
        let got2 = capture(&pd, 2);
        c.region_heartbeat(heartbeat(r, 2, 7)).unwrap();
        assert!(got2.lock().is_empty());
        assert!(pd.operator(1).is_none());
    }

    #[test]
    fn split_ids_are_fresh_and_stale_asks_refused() {
        let pd = MockPd::new(7, 100);
        let c = pd.client(1);
        c.region_heartbeat(heartbeat(region(1, 3, &[1, 2, 3]), 1, 6))
            .unwrap();
        let ids = c.ask_batch_split(region(1, 3, &[1, 2, 3]), 2).unwrap();
        assert_eq!(ids.len(), 2);
        let mut all: Vec<u64> = ids
            .iter()
            .flat_map(|s| std::iter::once(s.new_region_id).chain(s.new_peer_ids.clone()))
            .collect();
        assert_eq!(all.len(), 8);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 8, "every id is unique");
        assert!(all.iter().all(|id| *id >= 100));
        assert!(c.ask_batch_split(region(1, 2, &[1, 2, 3]), 1).is_err());
    }
}
