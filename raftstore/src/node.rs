//! `Node`: starts a store's runtime over its engines and stops it.
//!
//! Threads of a running store:
//!
//! | thread | count | does |
//! |---|---|---|
//! | `raftstore-<store>-<i>` | `store-pool-size` | peer FSMs: messages, proposals, the Ready round, one fsync per round |
//! | `apply-<store>-<i>` | `apply-pool-size` | apply FSMs: committed entries, one kv write per round |
//! | `tick-<store>` | 1 | the base tick: every peer's ticks, the store's ticks |
//! | `pd-<store>` | 1 | region and store heartbeats, split ids, stale-peer checks |
//! | `snap-<store>` | 1 | snapshot generation and cleanup |
//! | `split-check-<store>` | 1 | region sizes and split keys |

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{RecvTimeoutError, Sender};
use parking_lot::Mutex;
use proto::metapb;
use proto::raft_serverpb::PeerState;
use raft_core::engine::Engines;
use raft_core::snap::SnapManager;
use raft_core::storage::{state, StorageContext};

use crate::apply::ApplyContext;
use crate::bootstrap::{bootstrap_store, load_regions, load_store_ident, maybe_bootstrap_cluster};
use crate::config::RaftstoreConfig;
use crate::errors::{Error, Result};
use crate::fsm::apply::ApplyPoller;
use crate::fsm::store::StoreFsm;
use crate::msg::{PeerMsg, PeerTicks, StoreMsg, StoreTick};
use crate::operation::life::{
    build_peer, clean_up_tombstones, ensure_split_raft_state, register_peer,
};
use crate::pd_client::PdClient;
use crate::poller::{PollContext, RaftPoller, StoreHandles};
use crate::router::Router;
use crate::status::StoreStatus;
use crate::store_meta::StoreMeta;
use crate::system::RaftSystem;
use crate::transport::Transport;
use crate::worker::pd::PdRunner;
use crate::worker::snap::{SnapRunner, WorkerSnapGenerator};
use crate::worker::split_check::SplitCheckRunner;
use crate::worker::Worker;

/// A running store.
pub struct Node {
    store_id: u64,
    router: Router,
    system: Option<RaftSystem>,
    workers: Vec<Worker>,
    ticker: Option<(Sender<()>, JoinHandle<()>)>,
}

fn spawn_err(e: std::io::Error) -> Error {
    Error::Other(format!("cannot spawn a store thread: {e}"))
}

impl Node {
    /// Loads or creates the store identity (the id is `store.id` if set, else allocated by
    /// `pd`), bootstraps the cluster through `pd` if nobody did yet (the first region, with one
    /// peer here), registers the store with `pd`, loads every region from the kv engine, and
    /// starts the pollers, apply threads, workers and the tick timer. `store.address` is what
    /// other stores and clients dial.
    #[allow(clippy::too_many_arguments)]
    pub fn start<T: Transport, P: PdClient>(
        system: RaftSystem,
        router: Router,
        cfg: RaftstoreConfig,
        store: metapb::Store,
        engines: Engines,
        snap_mgr: SnapManager,
        transport: T,
        pd: Arc<P>,
    ) -> Result<Node> {
        cfg.validate()?;
        let cfg = Arc::new(cfg);
        let store_id = Self::check_store(&engines, &store, pd.as_ref())?;
        let mut store = store;
        store.id = store_id;
        router.set_store_id(store_id);
        maybe_bootstrap_cluster(&engines, &store, pd.as_ref())?;
        pd.put_store(store.clone())?;

        let mut node = Node {
            store_id,
            router: router.clone(),
            system: Some(system),
            workers: vec![],
            ticker: None,
        };
        // From here on, a failure stops whatever was started (`Drop`).
        let (snap_sched, snap_worker) = Worker::start(
            "snap",
            format!("snap-{store_id}"),
            SnapRunner::new(snap_mgr.clone()),
        )
        .map_err(spawn_err)?;
        node.workers.push(snap_worker);
        let (pd_sched, pd_worker) = Worker::start(
            "pd",
            format!("pd-{store_id}"),
            PdRunner::new(pd.clone(), router.clone()),
        )
        .map_err(spawn_err)?;
        node.workers.push(pd_worker);
        let (split_check_sched, split_check_worker) = Worker::start(
            "split-check",
            format!("split-check-{store_id}"),
            SplitCheckRunner::new(engines.kv.clone(), router.clone()),
        )
        .map_err(spawn_err)?;
        node.workers.push(split_check_worker);
        let storage_ctx = StorageContext {
            engines: engines.clone(),
            snap_mgr,
            snap_gen: Arc::new(WorkerSnapGenerator::new(snap_sched.clone())),
            entry_cache_limit: cfg.raft.entry_cache_limit,
        };

        let system = node.system.as_mut().expect("just set");
        let registry = router.registry.clone();
        let mut peers = vec![];
        let regions = load_regions(&engines)?;
        clean_up_tombstones(&engines, &regions)?;
        let mut store_meta = StoreMeta::default();
        for (region, state) in regions {
            if state != PeerState::Normal {
                continue;
            }
            let Some(meta) = region
                .peers
                .iter()
                .find(|p| p.store_id == store_id)
                .cloned()
            else {
                tracing::warn!(
                    region_id = region.id,
                    store_id,
                    "region state without a peer on this store; skipped"
                );
                continue;
            };
            // A split's region whose peer was not created before a crash has no raft state yet.
            let fresh = state::load_apply_state(&engines.kv, region.id)?
                .is_some_and(|a| a.applied_index == state::RAFT_INIT_LOG_INDEX);
            if fresh {
                ensure_split_raft_state(&engines, region.id)?;
            }
            store_meta.set_region(&region);
            let region_id = region.id;
            let (tx, mut fsm) = build_peer(
                &cfg,
                &storage_ctx,
                &registry,
                &system.apply_router,
                region,
                meta,
            )?;
            // Before the restart this peer may have helped grant a leader its lease; it does
            // not vote until that lease has surely run out (see `operation/lease.rs`).
            fsm.peer.vote_guard_ticks = cfg.raft.election_tick as u64;
            peers.push((region_id, tx, fsm));
        }
        tracing::info!(store_id, regions = peers.len(), "loaded regions");

        system.apply.set_name(format!("apply-{store_id}"));
        system
            .apply
            .spawn(|_| ApplyPoller {
                ctx: ApplyContext::new(engines.clone(), router.clone(), registry.metrics().clone()),
                messages_per_tick: cfg.messages_per_tick,
                batch_bytes: cfg.apply_batch_bytes,
            })
            .map_err(spawn_err)?;
        for (region_id, tx, fsm) in peers {
            register_peer(&router, region_id, tx, fsm);
        }
        system.raft.set_name(format!("raftstore-{store_id}"));
        let apply_router = system.apply_router.clone();
        let handles = StoreHandles {
            pd_scheduler: pd_sched.clone(),
            snap_scheduler: snap_sched.clone(),
            split_check_scheduler: split_check_sched,
            registry: registry.clone(),
            store_meta: Arc::new(Mutex::new(store_meta)),
        };
        system
            .raft
            .spawn(|_| RaftPoller {
                ctx: PollContext::new(
                    cfg.clone(),
                    store_id,
                    storage_ctx.clone(),
                    router.clone(),
                    apply_router.clone(),
                    transport.clone(),
                    handles.clone(),
                ),
            })
            .map_err(spawn_err)?;
        let store_rx = system.store_rx.clone();
        router.inner.start_control(StoreFsm::new(
            store_rx,
            router.inner.control_mailbox().clone(),
        ));
        router.send_store(StoreMsg::Start)?;

        let handler_router = router.clone();
        pd.set_heartbeat_response_handler(Box::new(move |resp| {
            let region_id = resp.region_id;
            let _ = handler_router.send_peer(region_id, PeerMsg::SchedulerOperator(Box::new(resp)));
        }));
        node.ticker = Some(spawn_ticker(&cfg, router.clone(), store_id)?);
        tracing::info!(store_id, address = %store.address, "node started");
        Ok(node)
    }

    /// The store id from the engines, or a fresh one (bootstrapping the store).
    fn check_store<P: PdClient>(engines: &Engines, store: &metapb::Store, pd: &P) -> Result<u64> {
        match load_store_ident(engines)? {
            Some(ident) => {
                if ident.cluster_id != pd.cluster_id() {
                    return Err(Error::Other(format!(
                        "store belongs to cluster {}, the scheduler runs cluster {}",
                        ident.cluster_id,
                        pd.cluster_id()
                    )));
                }
                if store.id != 0 && store.id != ident.store_id {
                    return Err(Error::Other(format!(
                        "engines belong to store {}, asked to start store {}",
                        ident.store_id, store.id
                    )));
                }
                Ok(ident.store_id)
            }
            None => {
                let id = if store.id != 0 {
                    store.id
                } else {
                    pd.alloc_id()?
                };
                bootstrap_store(engines, pd.cluster_id(), id)?;
                Ok(id)
            }
        }
    }

    /// This store's id.
    pub fn store_id(&self) -> u64 {
        self.store_id
    }

    /// The store's router.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// A snapshot of every region's status and the store's counters (cheap; for polling).
    pub fn status(&self) -> StoreStatus {
        self.router.registry.snapshot(self.store_id)
    }

    /// Stops every thread and joins it; pending commands are answered with a shutdown error.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some((tx, handle)) = self.ticker.take() {
            let _ = tx.send(());
            let _ = handle.join();
        }
        if let Some(mut system) = self.system.take() {
            system.shutdown(&self.router);
        }
        for mut w in self.workers.drain(..) {
            w.stop();
        }
        tracing::info!(store_id = self.store_id, "node stopped");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.system.is_some() {
            self.shutdown();
        }
    }
}

/// Tick periods, in base ticks.
struct TickPlan {
    raft_log_gc: u64,
    pd_heartbeat: u64,
    split_check: u64,
    store_heartbeat: u64,
    snap_gc: u64,
}

impl TickPlan {
    fn new(cfg: &RaftstoreConfig) -> Self {
        TickPlan {
            raft_log_gc: cfg.ticks_of(cfg.raft_log_gc_tick_interval),
            pd_heartbeat: cfg.ticks_of(cfg.pd_heartbeat_tick_interval),
            split_check: cfg.ticks_of(cfg.split_region_check_tick_interval),
            store_heartbeat: cfg.ticks_of(cfg.pd_store_heartbeat_tick_interval),
            snap_gc: cfg.ticks_of(cfg.snap_gc_interval),
        }
    }

    /// The peer duties due at base tick `n` (counting from 1).
    fn peer_ticks(&self, n: u64) -> PeerTicks {
        let mut t = PeerTicks::RAFT;
        if n.is_multiple_of(self.raft_log_gc) {
            t.insert(PeerTicks::RAFT_LOG_GC);
        }
        if n.is_multiple_of(self.pd_heartbeat) {
            t.insert(PeerTicks::PD_HEARTBEAT);
        }
        if n.is_multiple_of(self.split_check) {
            t.insert(PeerTicks::SPLIT_CHECK);
        }
        t
    }
}

/// The one timer of the store: every base tick, one message per peer carrying every duty due.
fn spawn_ticker(
    cfg: &RaftstoreConfig,
    router: Router,
    store_id: u64,
) -> Result<(Sender<()>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::bounded::<()>(1);
    let base = cfg.base_tick();
    let plan = TickPlan::new(cfg);
    let handle = std::thread::Builder::new()
        .name(format!("tick-{store_id}"))
        .spawn(move || {
            let mut next = Instant::now() + base;
            let mut n: u64 = 0;
            loop {
                let wait = next.saturating_duration_since(Instant::now());
                match rx.recv_timeout(wait) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                n += 1;
                next += base;
                let now = Instant::now();
                if next < now {
                    // Fell behind (a loaded machine): skip the missed ticks rather than burst.
                    next = now + base;
                }
                let ticks = plan.peer_ticks(n);
                router.broadcast(|| PeerMsg::Tick(ticks));
                if n.is_multiple_of(plan.store_heartbeat) {
                    let _ = router.send_store(StoreMsg::Tick(StoreTick::PdStoreHeartbeat));
                }
                if n.is_multiple_of(plan.snap_gc) {
                    let _ = router.send_store(StoreMsg::Tick(StoreTick::SnapGc));
                }
            }
        })
        .map_err(spawn_err)?;
    Ok((tx, handle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_plan_spreads_duties() {
        let cfg = RaftstoreConfig::new_test_config();
        let plan = TickPlan::new(&cfg);
        let t1 = plan.peer_ticks(1);
        assert!(t1.contains(PeerTicks::RAFT) && t1.contains(PeerTicks::RAFT_LOG_GC));
        assert!(!t1.contains(PeerTicks::PD_HEARTBEAT));
        assert!(plan.peer_ticks(2).contains(PeerTicks::PD_HEARTBEAT));
        assert_eq!(plan.store_heartbeat, 10);
    }
}
