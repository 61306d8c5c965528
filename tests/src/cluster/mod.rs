//! [`Cluster`]: N stores of the real store runtime in one process, each with its own engines in a
//! temporary directory, connected by a [`SimNetwork`] and scheduled by a [`MockPd`].
//!
//! Life cycle: [`Cluster::new`] bootstraps every store with the same first region (id 1, the
//! whole key space, epoch (1, 1), peer `i` on store `i`) the way TinyKV's harness does, so the
//! cluster starts with a fully replicated region and no conf change; [`Cluster::start`] starts
//! every store. Stores can then be stopped and restarted from the same engines
//! ([`Cluster::stop_store`], [`Cluster::start_store`]); dropping the cluster stops them all and
//! deletes the directory.
//!
//! Client operations live in `request.rs` (routing with retries), waiting and inspection in
//! `inspect.rs`, membership and leadership operators in `membership.rs`, splits in `split.rs`.

mod inspect;
mod membership;
mod request;
mod split;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use proto::metapb::{Peer, Region, RegionEpoch, Store};
use raft_core::engine::{Engines, KvEngine};
use raft_core::snap::SnapManager;
use raft_core::storage::state::write_initial_states;
use raftstore::node::Node;
use raftstore::{bootstrap, Router};
use tempfile::TempDir;

use crate::config::ClusterConfig;
use crate::errors::{Error, Result};
use crate::pd::MockPd;
use crate::transport::{Filter, FilterId, SimNetwork};

pub use inspect::wait_for;
pub use request::KvPair;
pub(crate) use request::{describe, newest_region, pick_peer};

/// One store's durable parts (kept across restarts) and its running node, if any.
struct StoreSlot {
    engines: Engines,
    snap_mgr: SnapManager,
    node: Option<Node>,
}

/// An in-process cluster of stores. Every method takes `&self`, so an `Arc<Cluster>` can be
/// shared by client threads, a chaos thread and the test body.
pub struct Cluster {
    cfg: ClusterConfig,
    pd: Arc<MockPd>,
    net: SimNetwork,
    stores: RwLock<BTreeMap<u64, StoreSlot>>,
    /// Leaders learned from `NotLeader` hints, fresher than the scheduler's view.
    leader_hints: Mutex<HashMap<u64, Peer>>,
    /// Declared last: removed after every store has stopped and released its engines.
    dir: TempDir,
}

impl Cluster {
    /// Creates and bootstraps `count` stores (ids 1..=count) sharing one first region covering
    /// every key. Nothing runs until [`Cluster::start`].
    pub fn new(count: usize, cfg: ClusterConfig) -> Result<Cluster> {
        Cluster::with_regions(count, cfg, &[])
    }

    /// Like [`Cluster::new`], but the key space is bootstrapped already cut at `split_keys`
    /// (sorted, distinct, non-empty) into `split_keys.len() + 1` regions, each replicated on every
    /// store: region 1 is the leftmost with peers `i` on store `i`; the others get fresh ids.
    /// Used by benchmarks and suites that need many regions without exercising split.
    pub fn with_regions(
        count: usize,
        cfg: ClusterConfig,
        split_keys: &[Vec<u8>],
    ) -> Result<Cluster> {
        cfg.validate()?;
        if count == 0 {
            return Err(Error::InvalidConfig(
                "a cluster needs at least one store".into(),
            ));
        }
        if split_keys.iter().any(|k| k.is_empty()) || !split_keys.windows(2).all(|w| w[0] < w[1]) {
            return Err(Error::InvalidConfig(
                "split keys must be non-empty, sorted and distinct".into(),
            ));
        }
        let count = count as u64;
        let regions = initial_regions(count, split_keys);
        let next_id = regions
            .iter()
            .flat_map(|r| std::iter::once(r.id).chain(r.peers.iter().map(|p| p.id)))
            .max()
            .unwrap_or(0)
            .max(count)
            + 1;
        let pd = MockPd::new(cfg.cluster_id, next_id);
        let dir = tempfile::Builder::new()
            .prefix("tinykv-cluster-")
            .tempdir()?;
        let mut stores = BTreeMap::new();
        for store_id in 1..=count {
            let store_dir = dir.path().join(format!("store-{store_id}"));
            let engines = Engines::open(&store_dir, &cfg.raftstore.engine)?;
            let snap_mgr = SnapManager::new(store_dir.join("snap"))?;
            bootstrap::bootstrap_store(&engines, cfg.cluster_id, store_id)?;
            bootstrap::prepare_bootstrap_region(&engines, &regions[0])?;
            write_extra_regions(&engines, &regions[1..])?;
            stores.insert(
                store_id,
                StoreSlot {
                    engines,
                    snap_mgr,
                    node: None,
                },
            );
        }
        pd.bootstrap(store_meta(1))?;
        let net = SimNetwork::new(cfg.raftstore.raft.snap_chunk_size);
        Ok(Cluster {
            cfg,
            pd,
            net,
            stores: RwLock::new(stores),
            leader_hints: Mutex::new(HashMap::new()),
            dir,
        })
    }

    /// Starts every store that is not running.
    pub fn start(&self) -> Result<()> {
        for id in self.store_ids() {
            if !self.is_running(id) {
                self.start_store(id)?;
            }
        }
        Ok(())
    }

    /// Starts store `store_id` from its engines (first start or restart).
    pub fn start_store(&self, store_id: u64) -> Result<()> {
        let (engines, snap_mgr) = {
            let stores = self.stores.read();
            let slot = stores.get(&store_id).ok_or(Error::UnknownStore(store_id))?;
            if slot.node.is_some() {
                return Ok(());
            }
            (slot.engines.clone(), slot.snap_mgr.clone())
        };
        let (router, system) = raftstore::create_system(&self.cfg.raftstore);
        // Reachable before it starts: messages and reports that arrive early wait in mailboxes.
        self.net.register(
            store_id,
            Arc::new(router.clone()),
            router.report_sink(),
            snap_mgr.clone(),
        );
        let started = Node::start(
            system,
            router,
            self.cfg.raftstore.clone(),
            store_meta(store_id),
            engines,
            snap_mgr,
            self.net.transport(store_id),
            self.pd.client(store_id),
        );
        match started {
            Ok(node) => {
                self.stores
                    .write()
                    .get_mut(&store_id)
                    .expect("slot checked above")
                    .node = Some(node);
                tracing::info!(store_id, "store started");
                Ok(())
            }
            Err(e) => {
                self.net.unregister(store_id);
                Err(e.into())
            }
        }
    }

    /// Stops store `store_id` (a crash as far as the others can tell: its messages stop, its
    /// pending requests fail). Its engines stay, for [`Cluster::start_store`].
    pub fn stop_store(&self, store_id: u64) {
        let node = {
            let mut stores = self.stores.write();
            stores.get_mut(&store_id).and_then(|s| s.node.take())
        };
        self.net.unregister(store_id);
        self.pd.remove_handler(store_id);
        if let Some(node) = node {
            node.stop();
            tracing::info!(store_id, "store stopped");
        }
    }

    /// Stops every running store.
    pub fn shutdown(&self) {
        for id in self.store_ids() {
            self.stop_store(id);
        }
    }

    /// Ids of every store of the cluster, running or not.
    pub fn store_ids(&self) -> Vec<u64> {
        self.stores.read().keys().copied().collect()
    }

    /// Ids of the running stores.
    pub fn running_store_ids(&self) -> Vec<u64> {
        self.stores
            .read()
            .iter()
            .filter(|(_, s)| s.node.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Whether store `store_id` is running.
    pub fn is_running(&self, store_id: u64) -> bool {
        self.stores
            .read()
            .get(&store_id)
            .is_some_and(|s| s.node.is_some())
    }

    /// The router of a running store.
    pub fn router(&self, store_id: u64) -> Result<Router> {
        let stores = self.stores.read();
        let slot = stores.get(&store_id).ok_or(Error::UnknownStore(store_id))?;
        slot.node
            .as_ref()
            .map(|n| n.router().clone())
            .ok_or(Error::StoreNotRunning(store_id))
    }

    /// The engines of a store (running or not).
    pub fn engines(&self, store_id: u64) -> Result<Engines> {
        self.stores
            .read()
            .get(&store_id)
            .map(|s| s.engines.clone())
            .ok_or(Error::UnknownStore(store_id))
    }

    /// The directory holding store `store_id`'s engines and snapshots.
    pub fn store_dir(&self, store_id: u64) -> PathBuf {
        self.dir.path().join(format!("store-{store_id}"))
    }

    /// The scheduler.
    pub fn pd(&self) -> &Arc<MockPd> {
        &self.pd
    }

    /// The network (filters, statistics).
    pub fn net(&self) -> &SimNetwork {
        &self.net
    }

    /// The configuration the cluster was built with.
    pub fn config(&self) -> &ClusterConfig {
        &self.cfg
    }

    /// Installs a network filter.
    pub fn add_filter(&self, f: impl Filter) -> FilterId {
        self.net.add_filter(f)
    }

    /// Removes every network filter.
    pub fn clear_filters(&self) {
        self.net.clear_filters();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What the cluster registers for a store: the in-process network needs no address, but the
/// field must name something for logs and `get_store`.
fn store_meta(store_id: u64) -> Store {
    Store {
        id: store_id,
        address: format!("sim://store-{store_id}"),
        ..Default::default()
    }
}

/// The regions a cluster is bootstrapped with: region 1 (peers `i` on store `i`) then one region
/// per split key with ids allocated after the store ids.
fn initial_regions(count: u64, split_keys: &[Vec<u8>]) -> Vec<Region> {
    let epoch = Some(RegionEpoch {
        conf_ver: 1,
        version: 1,
    });
    let mut bounds: Vec<Vec<u8>> = vec![vec![]];
    bounds.extend(split_keys.iter().cloned());
    bounds.push(vec![]);
    let mut next_id = count + 1;
    let mut alloc = || {
        next_id += 1;
        next_id - 1
    };
    bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let (id, peers) = if i == 0 {
                (1, (1..=count).map(|s| peer(s, s)).collect())
            } else {
                let id = alloc();
                (id, (1..=count).map(|s| peer(alloc(), s)).collect())
            };
            Region {
                id,
                start_key: w[0].clone(),
                end_key: w[1].clone(),
                region_epoch: epoch,
                peers,
            }
        })
        .collect()
}

fn peer(id: u64, store_id: u64) -> Peer {
    Peer {
        id,
        store_id,
        ..Default::default()
    }
}

/// Writes regions besides the first exactly as a split would have created them.
fn write_extra_regions(engines: &Engines, regions: &[Region]) -> Result<()> {
    if regions.is_empty() {
        return Ok(());
    }
    let mut kv_wb = engines.kv.write_batch();
    let mut raft_wb = engines.raft.write_batch();
    for r in regions {
        write_initial_states(&mut kv_wb, &mut raft_wb, r)?;
    }
    engines.raft.write(&mut raft_wb, true)?;
    engines.kv.write(&mut kv_wb, true)?;
    Ok(())
}

#[cfg(test)]
mod tests;
