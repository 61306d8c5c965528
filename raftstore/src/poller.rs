//! The raft poller: what one poller thread owns (its [`PollContext`]) and how a round maps onto
//! the batch system's [`PollHandler`] seams. The round itself is `operation::ready`.

use std::sync::Arc;

use parking_lot::Mutex;
use raft_core::engine::{Engines, KvEngine, RocksWriteBatch};
use raft_core::storage::StorageContext;
use raft_core::ApplyTask;

use crate::batch::PollHandler;
use crate::config::RaftstoreConfig;
use crate::fsm::apply::ApplyRouter;
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;
use crate::peer::ProposalCb;
use crate::router::Router;
use crate::status::{StatusRegistry, StoreMetrics};
use crate::store_meta::StoreMeta;
use crate::transport::Transport;
use crate::worker::pd::PdTask;
use crate::worker::snap::SnapTask;
use crate::worker::split_check::SplitCheckTask;
use crate::worker::Scheduler;

/// The store-wide handles every poller shares.
#[derive(Clone)]
pub(crate) struct StoreHandles {
    pub(crate) pd_scheduler: Scheduler<PdTask>,
    pub(crate) snap_scheduler: Scheduler<SnapTask>,
    pub(crate) split_check_scheduler: Scheduler<SplitCheckTask>,
    pub(crate) registry: StatusRegistry,
    pub(crate) store_meta: Arc<Mutex<StoreMeta>>,
}

/// Everything a poller thread needs while handling FSMs; one per poller.
pub(crate) struct PollContext<T> {
    pub(crate) cfg: Arc<RaftstoreConfig>,
    pub(crate) store_id: u64,
    pub(crate) engines: Engines,
    pub(crate) storage_ctx: StorageContext,
    pub(crate) router: Router,
    pub(crate) apply_router: ApplyRouter,
    pub(crate) trans: T,
    pub(crate) pd_scheduler: Scheduler<PdTask>,
    pub(crate) snap_scheduler: Scheduler<SnapTask>,
    pub(crate) split_check_scheduler: Scheduler<SplitCheckTask>,
    pub(crate) registry: StatusRegistry,
    pub(crate) metrics: Arc<StoreMetrics>,
    /// Which ranges the store's initialized regions own (see `store_meta.rs`).
    pub(crate) store_meta: Arc<Mutex<StoreMeta>>,
    /// The round's shared batches: every peer's Ready goes into these two.
    pub(crate) kv_wb: RocksWriteBatch,
    pub(crate) raft_wb: RocksWriteBatch,
    /// Raft entries proposed this round (they ride this round's fsync).
    pub(crate) round_proposals: u64,
    /// Work for the apply threads, handed over at the end of the round.
    pub(crate) apply_tasks: Vec<ApplyTask<ProposalCb>>,
}

impl<T> PollContext<T> {
    /// A context over the store's shared handles.
    pub(crate) fn new(
        cfg: Arc<RaftstoreConfig>,
        store_id: u64,
        storage_ctx: StorageContext,
        router: Router,
        apply_router: ApplyRouter,
        trans: T,
        handles: StoreHandles,
    ) -> Self {
        let StoreHandles {
            pd_scheduler,
            snap_scheduler,
            split_check_scheduler,
            registry,
            store_meta,
        } = handles;
        let engines = storage_ctx.engines.clone();
        PollContext {
            cfg,
            store_id,
            kv_wb: engines.kv.write_batch(),
            raft_wb: engines.raft.write_batch(),
            engines,
            storage_ctx,
            router,
            apply_router,
            trans,
            pd_scheduler,
            snap_scheduler,
            split_check_scheduler,
            metrics: registry.metrics().clone(),
            registry,
            store_meta,
            round_proposals: 0,
            apply_tasks: vec![],
        }
    }
}

/// The raft system's [`PollHandler`].
pub(crate) struct RaftPoller<T> {
    pub(crate) ctx: PollContext<T>,
}

impl<T: Transport> PollHandler<PeerFsm, StoreFsm> for RaftPoller<T> {
    fn begin(&mut self, _batch_size: usize) {
        self.ctx.round_proposals = 0;
    }

    fn handle_control(&mut self, store: &mut StoreFsm) {
        store.handle_msgs(&mut self.ctx);
    }

    fn handle_normal(&mut self, peer: &mut PeerFsm) {
        peer.handle_msgs(&mut self.ctx);
    }

    fn end(&mut self, peers: &mut [Box<PeerFsm>]) {
        crate::operation::ready::handle_raft_ready(&mut self.ctx, peers);
    }
}
