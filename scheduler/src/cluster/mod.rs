//! The cluster runtime: metadata in memory and on disk, heartbeats, operators.
//!
//! [`Cluster`] is shared (`Arc`) by the gRPC handlers and the [`coordinator`] loop. Locks, always
//! taken one at a time and never across an `.await`:
//! - `state` (`RwLock`): bootstrap record, stores, region tree — heartbeats write, lookups read;
//! - `operators` (`Mutex`): the operator controller;
//! - the heartbeat stream table (inside [`HeartbeatStreams`]).
//!
//! Every change to stores or regions is written to the [`MetaStore`] while `state` is held, so
//! disk and memory change in the same order.

pub mod coordinator;
pub mod operators;
mod regions;
pub mod status;
pub mod streams;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};
use proto::metapb::{self, StoreState};
use proto::pdpb::{RegionHeartbeatResponse, ResponseHeader, StoreStats};
use rand::Rng;

use crate::config::{Config, ScheduleConfig};
use crate::core::{RegionInfo, RegionTree, StoreInfo};
use crate::errors::{Error, Result};
use crate::id::IdAllocator;
use crate::schedule::{ClusterView, OpKind, Operator, StoreView};
use crate::storage::{MetaKey, MetaStore};
use crate::tso::TimestampOracle;

pub use operators::{FinishedOperator, OperatorController, Outcome};
pub use streams::HeartbeatStreams;

/// Mutable cluster metadata.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// The bootstrap record; `None` until `Bootstrap`.
    pub bootstrapped: Option<metapb::Cluster>,
    /// Registered stores by id.
    pub stores: BTreeMap<u64, StoreInfo>,
    /// The region cache.
    pub regions: RegionTree,
}

/// The scheduler's cluster: identity, allocators, metadata, operators.
#[derive(Debug)]
pub struct Cluster {
    cluster_id: u64,
    member_id: u64,
    schedule: ScheduleConfig,
    max_batch_split_count: u32,
    meta: Arc<MetaStore>,
    ids: IdAllocator,
    tso: TimestampOracle,
    gc_safe_point: Mutex<u64>,
    state: RwLock<ClusterState>,
    operators: Mutex<OperatorController>,
    streams: HeartbeatStreams,
}

/// A new cluster id: creation time in the high bits and randomness below, like PD, so ids of
/// clusters created on different machines or days do not collide.
fn new_cluster_id() -> u64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs << 32) | u64::from(rand::thread_rng().gen::<u32>())
}

/// Unix nanoseconds now.
fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl Cluster {
    /// Opens the metadata in `config.data_dir`, choosing and persisting a cluster id on first
    /// start, and loads stores and regions.
    pub fn open(config: &Config) -> Result<Arc<Cluster>> {
        config.validate()?;
        let meta = Arc::new(MetaStore::open(&config.data_dir)?);
        let cluster_id = match meta.load_u64(MetaKey::ClusterId)? {
            Some(id) => id,
            None => {
                let id = new_cluster_id();
                meta.save_u64(MetaKey::ClusterId, id)?;
                tracing::info!(cluster_id = id, "created new cluster id");
                id
            }
        };
        let member_id = match meta.load_u64(MetaKey::MemberId)? {
            Some(id) => id,
            None => {
                let id = rand::thread_rng().gen_range(1..u64::MAX);
                meta.save_u64(MetaKey::MemberId, id)?;
                id
            }
        };
        let ids = IdAllocator::open(meta.clone(), config.id_batch_size)?;
        let tso = TimestampOracle::open(meta.clone(), config.tso_save_interval)?;
        let gc_safe_point = meta.load_u64(MetaKey::GcSafePoint)?.unwrap_or(0);

        let now = Instant::now();
        let mut state = ClusterState {
            bootstrapped: meta.load_cluster()?,
            ..Default::default()
        };
        for s in meta.load_stores()? {
            state.stores.insert(s.id, StoreInfo::new(s, now));
        }
        // Loaded in id order; overlaps (from records an eviction did not get to delete) resolve
        // to the newer version, as they would through heartbeats.
        let mut dropped = Vec::new();
        for r in meta.load_regions()? {
            let info = RegionInfo::new(r, None);
            if state.regions.check_stale(&info).is_err() {
                dropped.push(info.id());
                continue;
            }
            dropped.extend(state.regions.insert(Arc::new(info)).iter().map(|e| e.id()));
        }
        meta.update_regions(&[], &dropped)?;
        tracing::info!(
            cluster_id,
            bootstrapped = state.bootstrapped.is_some(),
            stores = state.stores.len(),
            regions = state.regions.len(),
            data_dir = %config.data_dir.display(),
            "cluster loaded"
        );
        Ok(Arc::new(Cluster {
            cluster_id,
            member_id,
            schedule: config.schedule.clone(),
            max_batch_split_count: config.max_batch_split_count,
            meta,
            ids,
            tso,
            gc_safe_point: Mutex::new(gc_safe_point),
            state: RwLock::new(state),
            operators: Mutex::new(OperatorController::default()),
            streams: HeartbeatStreams::default(),
        }))
    }

    /// The cluster id (the same in every response, across restarts).
    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// This scheduler's member id.
    pub fn member_id(&self) -> u64 {
        self.member_id
    }

    /// The scheduling policy.
    pub fn schedule_config(&self) -> &ScheduleConfig {
        &self.schedule
    }

    /// The id allocator.
    pub fn ids(&self) -> &IdAllocator {
        &self.ids
    }

    /// The timestamp oracle.
    pub fn tso(&self) -> &TimestampOracle {
        &self.tso
    }

    /// The heartbeat stream table.
    pub fn streams(&self) -> &HeartbeatStreams {
        &self.streams
    }

    /// A response header without error.
    pub fn header(&self) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.cluster_id,
            error: None,
        }
    }

    /// Read access to the metadata (tests and status).
    pub fn state(&self) -> parking_lot::RwLockReadGuard<'_, ClusterState> {
        self.state.read()
    }

    /// Whether `Bootstrap` has happened.
    pub fn is_bootstrapped(&self) -> bool {
        self.state.read().bootstrapped.is_some()
    }

    fn ensure_bootstrapped(state: &ClusterState) -> Result<()> {
        if state.bootstrapped.is_none() {
            return Err(Error::NotBootstrapped);
        }
        Ok(())
    }

    /// The cluster record (`GetClusterConfig`).
    pub fn cluster_meta(&self) -> Result<metapb::Cluster> {
        let st = self.state.read();
        let mut c = st.bootstrapped.ok_or(Error::NotBootstrapped)?;
        c.max_peer_count = self.schedule.max_replicas as u32;
        Ok(c)
    }

    /// Bootstraps the cluster with its first store and the region covering all keys.
    pub fn bootstrap(&self, store: metapb::Store, region: metapb::Region) -> Result<()> {
        validate_store(&store)?;
        if region.id == 0 {
            return Err(Error::InvalidRequest("bootstrap region id is 0".into()));
        }
        if !region.start_key.is_empty() || !region.end_key.is_empty() {
            return Err(Error::InvalidRequest(
                "bootstrap region must cover all keys (empty start and end key)".into(),
            ));
        }
        if region.peers.is_empty() {
            return Err(Error::InvalidRequest(
                "bootstrap region has no peers".into(),
            ));
        }
        if let Some(p) = region
            .peers
            .iter()
            .find(|p| p.store_id != store.id || p.id == 0)
        {
            return Err(Error::InvalidRequest(format!(
                "bootstrap region peer {} on store {} does not belong to store {}",
                p.id, p.store_id, store.id
            )));
        }
        let mut store = store;
        store.state = StoreState::Up as i32;
        let record = metapb::Cluster {
            id: self.cluster_id,
            max_peer_count: self.schedule.max_replicas as u32,
        };
        let mut st = self.state.write();
        if st.bootstrapped.is_some() {
            return Err(Error::AlreadyBootstrapped);
        }
        let info = RegionInfo::new(region, None);
        self.meta.save_bootstrap(&record, &store, &info.meta)?;
        tracing::info!(
            cluster_id = self.cluster_id,
            store_id = store.id,
            region_id = info.id(),
            "cluster bootstrapped"
        );
        st.stores
            .insert(store.id, StoreInfo::new(store, Instant::now()));
        st.regions.insert(Arc::new(info));
        st.bootstrapped = Some(record);
        Ok(())
    }

    /// Registers or updates a store (`PutStore`). The registration state is the scheduler's:
    /// a store cannot bring itself back from offline or tombstone.
    pub fn put_store(&self, store: metapb::Store) -> Result<()> {
        validate_store(&store)?;
        let mut st = self.state.write();
        Self::ensure_bootstrapped(&st)?;
        if let Some(other) = st
            .stores
            .values()
            .find(|s| s.id() != store.id && !s.is_tombstone() && s.meta.address == store.address)
        {
            return Err(Error::InvalidRequest(format!(
                "address {} is already used by store {}",
                store.address,
                other.id()
            )));
        }
        let mut meta = store;
        match st.stores.get(&meta.id) {
            Some(cur) if cur.is_tombstone() => return Err(Error::StoreTombstone(meta.id)),
            Some(cur) => {
                meta.state = cur.meta.state;
                meta.last_heartbeat = cur.meta.last_heartbeat;
            }
            None => meta.state = StoreState::Up as i32,
        }
        self.meta.save_store(&meta)?;
        tracing::info!(store_id = meta.id, address = %meta.address, "store registered");
        match st.stores.get_mut(&meta.id) {
            Some(cur) => cur.meta = meta,
            None => {
                st.stores
                    .insert(meta.id, StoreInfo::new(meta, Instant::now()));
            }
        }
        Ok(())
    }

    /// One store.
    pub fn get_store(&self, store_id: u64) -> Result<StoreInfo> {
        let st = self.state.read();
        Self::ensure_bootstrapped(&st)?;
        st.stores
            .get(&store_id)
            .cloned()
            .ok_or(Error::StoreNotFound(store_id))
    }

    /// All stores, optionally without tombstones.
    pub fn get_stores(&self, exclude_tombstone: bool) -> Result<Vec<metapb::Store>> {
        let st = self.state.read();
        Self::ensure_bootstrapped(&st)?;
        Ok(st
            .stores
            .values()
            .filter(|s| !(exclude_tombstone && s.is_tombstone()))
            .map(|s| s.meta.clone())
            .collect())
    }

    /// Records a store heartbeat.
    pub fn store_heartbeat(&self, stats: StoreStats) -> Result<()> {
        let mut st = self.state.write();
        Self::ensure_bootstrapped(&st)?;
        let id = stats.store_id;
        let store = st.stores.get_mut(&id).ok_or(Error::StoreNotFound(id))?;
        if store.is_tombstone() {
            return Err(Error::StoreTombstone(id));
        }
        if !store.heartbeat_seen {
            tracing::info!(store_id = id, "first store heartbeat");
        }
        store.on_heartbeat(stats, Instant::now(), wall_ns());
        Ok(())
    }

    /// Changes a store's registration state (operator action from the status API). A store may
    /// become tombstone only once it holds no region.
    pub fn set_store_state(&self, store_id: u64, state: StoreState) -> Result<()> {
        let mut st = self.state.write();
        Self::ensure_bootstrapped(&st)?;
        let regions = st.regions.store_stats(store_id).region_count;
        let store = st
            .stores
            .get_mut(&store_id)
            .ok_or(Error::StoreNotFound(store_id))?;
        if store.is_tombstone() {
            return Err(Error::StoreTombstone(store_id));
        }
        if state == StoreState::Tombstone && regions > 0 {
            return Err(Error::InvalidRequest(format!(
                "store {store_id} still holds {regions} regions; set it offline and wait"
            )));
        }
        let mut meta = store.meta.clone();
        meta.state = state as i32;
        self.meta.save_store(&meta)?;
        tracing::info!(store_id, state = ?state, "store state changed");
        store.meta = meta;
        Ok(())
    }

    /// The GC safe point.
    pub fn gc_safe_point(&self) -> u64 {
        *self.gc_safe_point.lock()
    }

    /// Raises the GC safe point to `safe_point` (it never goes back); returns the new value.
    pub fn update_gc_safe_point(&self, safe_point: u64) -> Result<u64> {
        let mut cur = self.gc_safe_point.lock();
        if safe_point > *cur {
            self.meta.save_u64(MetaKey::GcSafePoint, safe_point)?;
            tracing::info!(safe_point, "gc safe point updated");
            *cur = safe_point;
        }
        Ok(*cur)
    }

    /// A snapshot for scheduling, with the running operators' influence folded in.
    pub fn view(&self, seed: u64) -> ClusterView {
        let now = Instant::now();
        let mut view = ClusterView::new(
            self.schedule.max_replicas,
            self.schedule.max_store_down_time,
        );
        view.seed = seed;
        {
            let st = self.state.read();
            for s in st.stores.values() {
                let stats = st.regions.store_stats(s.id());
                view.put_store(StoreView {
                    id: s.id(),
                    state: s.state(),
                    since_heartbeat: s.since_heartbeat(now),
                    is_busy: s.stats.is_busy,
                    region_count: stats.region_count,
                    leader_count: stats.leader_count,
                    region_size: stats.region_size,
                    leader_size: stats.leader_size,
                    pending_peer_count: stats.pending_peer_count,
                });
            }
            for r in st.regions.iter() {
                view.regions.insert(r.id(), r.clone());
            }
        }
        let ops = self.operators.lock();
        for op in ops.running() {
            view.apply_influence(op);
        }
        view
    }

    /// Running operators of `kind`.
    pub fn operator_count(&self, kind: OpKind) -> usize {
        self.operators.lock().count(kind)
    }

    /// Runs `f` on the operator controller.
    pub fn with_operators<T>(&self, f: impl FnOnce(&mut OperatorController) -> T) -> T {
        f(&mut self.operators.lock())
    }

    /// Admits an operator: allocates its new peer ids, stamps its timeout, and sends its first
    /// command to the region's leader right away (rather than waiting for the next heartbeat).
    /// Returns false if the region is unknown or already has an operator.
    pub fn add_operator(&self, mut op: Operator) -> Result<bool> {
        let Some(region) = self.state.read().regions.get(op.region_id).cloned() else {
            return Ok(false);
        };
        if self.operators.lock().get(op.region_id).is_some() {
            return Ok(false);
        }
        op.assign_peer_ids(|| self.ids.alloc())?;
        op.created_at = Instant::now();
        op.timeout = match op.kind {
            OpKind::Leader => self.schedule.leader_operator_timeout,
            OpKind::Region | OpKind::Replica => self.schedule.region_operator_timeout,
        };
        let resp = {
            let mut ops = self.operators.lock();
            if !ops.add(op) {
                return Ok(false);
            }
            ops.on_region(&region, Instant::now())
        };
        if let Some(resp) = resp {
            self.send_to_leader(&region, resp);
        }
        Ok(true)
    }

    /// Sends an operator command to the stream of the region leader's store.
    fn send_to_leader(&self, region: &RegionInfo, mut resp: RegionHeartbeatResponse) {
        let Some(store_id) = region.leader_store_id() else {
            return;
        };
        resp.header = Some(self.header());
        self.streams.send(store_id, resp);
    }

    /// Ends operators that ran out of time.
    pub fn remove_timed_out_operators(&self) {
        self.operators.lock().remove_timed_out(Instant::now());
    }
}

/// Checks a store registration from a client.
fn validate_store(store: &metapb::Store) -> Result<()> {
    if store.id == 0 {
        return Err(Error::InvalidRequest("store id is 0".into()));
    }
    if store.address.is_empty() {
        return Err(Error::InvalidRequest(format!(
            "store {} has no address",
            store.id
        )));
    }
    Ok(())
}
