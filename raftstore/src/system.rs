//! Creating a store's runtime before it starts: the [`Router`] (which the transport needs to
//! deliver incoming messages) and the [`RaftSystem`] (pollers and apply threads, started by
//! [`crate::Node::start`]).

use crossbeam_channel::Receiver;

use crate::batch::{self, BatchSystem};
use crate::config::RaftstoreConfig;
use crate::fsm::apply::{ApplyControlFsm, ApplyFsm, ApplyRouter};
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;
use crate::msg::StoreMsg;
use crate::router::Router;

/// The not-yet-started threads of a store: raft pollers and apply pollers.
pub struct RaftSystem {
    pub(crate) raft: BatchSystem<PeerFsm, StoreFsm>,
    pub(crate) apply_router: ApplyRouter,
    pub(crate) apply: BatchSystem<ApplyFsm, ApplyControlFsm>,
    pub(crate) store_rx: Receiver<StoreMsg>,
}

impl RaftSystem {
    /// Stops every thread (apply after raft, so work handed over in a last round is still
    /// drained or answered) and drops every FSM, answering what they hold.
    pub(crate) fn shutdown(&mut self, router: &Router) {
        router.inner.close_all();
        self.raft.shutdown();
        self.apply_router.close_all();
        self.apply.shutdown();
    }
}

/// Creates the router and the (not yet started) system of a store.
pub fn create_system(cfg: &RaftstoreConfig) -> (Router, RaftSystem) {
    let (store_tx, store_rx) = crossbeam_channel::unbounded();
    let (raft_router, raft) = batch::create_system::<PeerFsm, StoreFsm>(
        "raftstore",
        cfg.store_pool_size,
        cfg.max_batch_size,
        store_tx,
    );
    let (ctl_tx, _) = crossbeam_channel::unbounded();
    let (apply_router, apply) = batch::create_system::<ApplyFsm, ApplyControlFsm>(
        "apply",
        cfg.apply_pool_size,
        cfg.max_batch_size,
        ctl_tx,
    );
    apply_router.start_control(ApplyControlFsm::new(apply_router.control_mailbox().clone()));
    (
        Router::new(raft_router, cfg.notify_capacity),
        RaftSystem {
            raft,
            apply_router,
            apply,
            store_rx,
        },
    )
}
