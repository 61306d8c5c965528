//! The store FSM: the raft system's control FSM. It handles the store's periodic duties and
//! raft messages for regions this store has no peer of (which may create one).

use std::collections::HashMap;

use crossbeam_channel::Receiver;
use proto::pdpb::StoreStats;
use raft_core::engine::KvEngine;

use crate::batch::{BasicMailbox, Fsm};
use crate::msg::{StoreMsg, StoreTick};
use crate::poller::PollContext;
use crate::transport::Transport;
use crate::worker::pd::{disk_stats, PdTask};
use crate::worker::snap::SnapTask;

/// The store-level FSM.
pub struct StoreFsm {
    receiver: Receiver<StoreMsg>,
    mailbox: BasicMailbox<StoreFsm>,
    start_time: u64,
    /// Write commands counted at the last store heartbeat (heartbeats report the delta).
    last_commands: u64,
}

impl StoreFsm {
    /// The store FSM reading `receiver` (its mailbox's channel).
    pub(crate) fn new(
        receiver: Receiver<StoreMsg>,
        mailbox: BasicMailbox<StoreFsm>,
    ) -> Box<StoreFsm> {
        let start_time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Box::new(StoreFsm {
            receiver,
            mailbox,
            start_time,
            last_commands: 0,
        })
    }

    pub(crate) fn handle_msgs<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        for _ in 0..ctx.cfg.messages_per_tick {
            let Ok(msg) = self.receiver.try_recv() else {
                break;
            };
            match msg {
                StoreMsg::RaftMessage(m) => crate::operation::life::on_store_raft_message(ctx, *m),
                StoreMsg::Tick(StoreTick::PdStoreHeartbeat) => self.on_store_heartbeat_tick(ctx),
                StoreMsg::Tick(StoreTick::SnapGc) => self.on_snap_gc_tick(ctx),
                StoreMsg::Start => {
                    tracing::info!(
                        store_id = ctx.store_id,
                        regions = ctx.router.region_count(),
                        "store started"
                    );
                }
            }
        }
    }

    fn on_store_heartbeat_tick<T>(&mut self, ctx: &mut PollContext<T>) {
        let (capacity, available) = disk_stats(KvEngine::path(&ctx.engines.kv));
        let m = ctx.metrics.snapshot();
        let stats = StoreStats {
            store_id: ctx.store_id,
            capacity,
            available,
            region_count: ctx.router.region_count() as u32,
            start_time: self.start_time as u32,
            used_size: capacity.saturating_sub(available),
            keys_written: m.proposed_commands.saturating_sub(self.last_commands),
            ..Default::default()
        };
        if ctx
            .pd_scheduler
            .schedule(PdTask::StoreHeartbeat(Box::new(stats)))
            .is_err()
        {
            tracing::debug!(
                store_id = ctx.store_id,
                "pd worker stopped; store heartbeat dropped"
            );
        }
    }

    fn on_snap_gc_tick<T>(&mut self, ctx: &mut PollContext<T>) {
        let status = ctx.registry.snapshot(ctx.store_id);
        let regions: HashMap<u64, u64> = status
            .regions
            .iter()
            .map(|r| (r.region.id, r.truncated_index))
            .collect();
        let _ = ctx.snap_scheduler.schedule(SnapTask::Gc { regions });
    }
}

impl Fsm for StoreFsm {
    type Message = StoreMsg;

    fn is_stopped(&self) -> bool {
        false
    }

    fn mailbox(&self) -> &BasicMailbox<Self> {
        &self.mailbox
    }
}
