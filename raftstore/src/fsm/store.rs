//! The store FSM: the raft system's control FSM. It handles the store's periodic duties and
//! raft messages for regions this store has no peer of (which may create one).

use std::collections::HashMap;

use crossbeam_channel::Receiver;
use proto::pdpb::StoreStats;
use raft_core::engine::KvEngine;

use crate::batch::{BasicMailbox, Fsm};
use crate::msg::{StoreMsg, StoreTick};
use crate::poller::PollContext;
use crate::status::MetricsSnapshot;
use crate::transport::Transport;
use crate::worker::pd::{disk_stats, PdTask};
use crate::worker::snap::SnapTask;

/// The store-level FSM.
pub struct StoreFsm {
    receiver: Receiver<StoreMsg>,
    mailbox: BasicMailbox<StoreFsm>,
    start_time: u64,
    /// The counters at the last store heartbeat (heartbeats report and log the deltas).
    last_metrics: MetricsSnapshot,
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
            last_metrics: MetricsSnapshot::default(),
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
        let d = m.since(&self.last_metrics);
        self.last_metrics = m;
        // How well the write path batches, once per heartbeat: commands per Raft entry,
        // entries per fsync, and how many reads needed no heartbeat round.
        tracing::info!(
            store_id = ctx.store_id,
            commands = d.proposed_commands,
            proposals = d.proposals,
            fsyncs = d.raft_fsyncs,
            proposals_per_fsync = format!("{:.1}", d.proposals_per_fsync()),
            entries_applied = d.entries_applied,
            apply_writes = d.apply_writes,
            reads = d.reads,
            lease_reads = d.lease_reads,
            read_indexes = d.read_indexes,
            messages_sent = d.messages_sent,
            "store write path since the last heartbeat"
        );
        let stats = StoreStats {
            store_id: ctx.store_id,
            capacity,
            available,
            region_count: ctx.router.region_count() as u32,
            start_time: self.start_time as u32,
            used_size: capacity.saturating_sub(available),
            keys_written: d.proposed_commands,
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
