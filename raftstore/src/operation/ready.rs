//! The Ready round: the **one** `handle_raft_ready` of a poller round, plus what feeds raft-rs
//! between rounds (incoming raft messages, apply results).
//!
//! Order of a round (after every FSM of the batch handled its messages, proposed its merged
//! writes and issued its reads):
//!
//! 1. **collect**: every peer with a Ready writes it into the round's two shared batches (kv:
//!    snapshot data and states; raft: entries, hard state, log deletions). Messages a leader may
//!    send before its own log is durable (appends, heartbeats) are sent and flushed right away,
//!    so followers persist in parallel with our fsync; committed entries that are already
//!    durable here (raft-rs hands out nothing else) go to the apply threads right away too, so
//!    a write's answer does not wait for the fsync of the entries proposed after it.
//! 2. **persist**: the kv batch is written first (synced if it holds a snapshot, because the
//!    raft batch about to be synced discards the log the snapshot replaces), then the raft batch
//!    **once**, synced if any peer needs it: one fsync for the whole round (group commit).
//! 3. **advance**: `on_persisted` for each peer; messages that acknowledge durable state (votes,
//!    append responses) are sent and the transport flushed; read states recorded; role changes
//!    handled (reads, scheduler heartbeat).
//! 4. **apply**: committed entries go to the apply threads (data and apply state in one kv
//!    batch there; callbacks answered after that write; results come back as `ApplyRes`).
//! 5. **finish**: reads whose read index is applied are served; due heartbeats are sent; status
//!    is published.

use std::sync::atomic::Ordering;

use proto::raft_serverpb::RaftMessage;
use raft::StateRole;
use raft_core::convert::{IntoProto, TryIntoRaft};
use raft_core::engine::{KvEngine, WriteBatch};
use raft_core::{ApplyTask, RoleChange};

use crate::apply::ExecResult;
use crate::fsm::apply::ApplyMsg;
use crate::fsm::peer::PeerFsm;
use crate::msg::ApplyRes;
use crate::peer::{Peer, ProposalCb};
use crate::poller::PollContext;
use crate::transport::Transport;

/// The round (see the module docs).
pub(crate) fn handle_raft_ready<T: Transport>(
    ctx: &mut PollContext<T>,
    peers: &mut [Box<PeerFsm>],
) {
    // 1. collect
    let (mut must_sync, mut has_snapshot, mut sent_early) = (false, false, false);
    for fsm in peers.iter_mut() {
        let peer = &mut fsm.peer;
        if peer.is_destroyed() || peer.pending_destroy {
            continue;
        }
        peer.ready_blocked = false;
        if !peer.group().has_ready() {
            continue;
        }
        if !peer.reserve_snapshot_range(ctx) {
            peer.ready_blocked = true;
            continue;
        }
        match peer
            .group_mut()
            .collect_ready(&mut ctx.kv_wb, &mut ctx.raft_wb)
        {
            Some(mut collected) => {
                must_sync |= collected.must_sync;
                has_snapshot |= collected.snapshot.is_some();
                if let Some(snap) = &collected.snapshot {
                    peer.on_snapshot_collected(ctx, &snap.prev_region, &snap.region);
                }
                let early = std::mem::take(&mut collected.messages);
                sent_early |= !early.is_empty();
                peer.send_raft_messages(ctx, early);
                // Entries committed by earlier rounds are durable here already: they go to
                // apply now, in parallel with this round's fsync, instead of after it.
                if let Some(task) = peer.group_mut().take_durable_committed(&mut collected) {
                    peer.on_apply_task(&task);
                    ctx.apply_tasks.push(task);
                }
                peer.collected = Some(collected);
            }
            None => peer.ready_blocked = peer.group().has_ready(),
        }
    }
    if sent_early {
        ctx.trans.flush();
    }
    send_apply_tasks(ctx);

    // 2. persist
    if !ctx.kv_wb.is_empty() {
        ctx.engines
            .kv
            .write(&mut ctx.kv_wb, has_snapshot)
            .unwrap_or_else(|e| {
                panic!(
                    "store {}: cannot write the kv batch of a ready round: {e}",
                    ctx.store_id
                )
            });
    }
    if !ctx.raft_wb.is_empty() {
        ctx.engines
            .raft
            .write(&mut ctx.raft_wb, must_sync)
            .unwrap_or_else(|e| {
                panic!(
                    "store {}: cannot write the raft batch of a ready round: {e}",
                    ctx.store_id
                )
            });
        ctx.metrics.raft_writes.fetch_add(1, Ordering::Relaxed);
        if must_sync {
            ctx.metrics.raft_fsyncs.fetch_add(1, Ordering::Relaxed);
            ctx.metrics
                .proposals_synced
                .fetch_add(ctx.round_proposals, Ordering::Relaxed);
        }
    }

    // 3. advance
    let mut sent = false;
    for fsm in peers.iter_mut() {
        let peer = &mut fsm.peer;
        let Some(collected) = peer.collected.take() else {
            continue;
        };
        let persisted = peer.group_mut().on_persisted(collected);
        sent |= !persisted.messages.is_empty();
        peer.send_raft_messages(ctx, persisted.messages);
        if let Some(task) = persisted.apply {
            peer.on_apply_task(&task);
            ctx.apply_tasks.push(task);
        }
        if !persisted.read_states.is_empty() {
            peer.on_read_states(persisted.read_states);
        }
        if let Some(rc) = persisted.role_change {
            peer.on_role_changed(ctx, rc);
        }
    }
    if sent {
        ctx.trans.flush();
    }

    // 4. apply
    send_apply_tasks(ctx);

    // 5. finish
    for fsm in peers.iter_mut() {
        let peer = &mut fsm.peer;
        if peer.is_destroyed() {
            continue;
        }
        peer.renew_lease_from_commits();
        peer.serve_reads(ctx);
        if peer.heartbeat_due {
            peer.heartbeat_pd(ctx);
        }
        peer.publish_status();
    }
}

/// Hands the round's apply tasks to the apply threads, in the order they were collected (a
/// region's tasks are contiguous and in log order).
fn send_apply_tasks<T>(ctx: &mut PollContext<T>) {
    for task in ctx.apply_tasks.drain(..) {
        let region_id = task.region_id;
        if ctx
            .apply_router
            .force_send(region_id, ApplyMsg::Apply(Box::new(task)))
            .is_err()
        {
            // Only at shutdown or after destruction: the task's callbacks are answered as it
            // is dropped.
            tracing::warn!(
                region_id,
                "apply fsm is gone; committed entries not applied"
            );
        }
    }
}

impl Peer {
    /// The split this leader proposed is applied, or leadership changed: lease reads and
    /// `skip_bcast_commit` go back to normal (see `operation/lease.rs`).
    fn end_split_pending<T>(&mut self, ctx: &PollContext<T>) {
        if self.split_proposed != 0 {
            self.split_proposed = 0;
            let skip = ctx.cfg.raft.skip_bcast_commit;
            self.group_mut().set_skip_bcast_commit(skip);
        }
    }

    /// Bookkeeping for committed entries handed to the applier.
    fn on_apply_task(&mut self, task: &ApplyTask<ProposalCb>) {
        self.log_bytes_since_compact += task
            .entries
            .iter()
            .map(|e| e.data.len() as u64)
            .sum::<u64>();
    }

    /// Addresses raft-rs's messages to the region's peers and hands them to the transport.
    pub(crate) fn send_raft_messages<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        msgs: Vec<raft::eraftpb::Message>,
    ) {
        if msgs.is_empty() {
            return;
        }
        let region = self.region();
        let (epoch, start, end) = (
            region.region_epoch,
            region.start_key.clone(),
            region.end_key.clone(),
        );
        for m in msgs {
            self.on_message_sent(m.get_msg_type());
            let Some(to) = self.peer_cache.get(&m.to).cloned() else {
                tracing::warn!(
                    region_id = self.region_id,
                    peer_id = self.meta.id,
                    to = m.to,
                    "message to an unknown peer dropped"
                );
                continue;
            };
            let msg = RaftMessage {
                region_id: self.region_id,
                from_peer: Some(self.meta),
                to_peer: Some(to),
                message: Some(m.into_proto()),
                region_epoch: epoch,
                is_tombstone: false,
                start_key: start.clone(),
                end_key: end.clone(),
                extra_msg: None,
            };
            ctx.metrics.messages_sent.fetch_add(1, Ordering::Relaxed);
            if let Err(e) = ctx.trans.send(msg) {
                tracing::debug!(region_id = self.region_id, peer_id = self.meta.id, error = %e, "raft message not sent");
            }
        }
    }

    /// A raft message from another store.
    pub(crate) fn on_raft_message<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        msg: RaftMessage,
    ) {
        let region_id = self.region_id;
        if self.pending_destroy {
            return;
        }
        let to = msg.to_peer.as_ref().map_or(0, |p| p.id);
        if to != self.meta.id {
            tracing::debug!(
                region_id,
                peer_id = self.meta.id,
                to,
                "message for another peer id"
            );
            return self.on_message_for_other_peer(ctx, to);
        }
        if msg.is_tombstone {
            return self.on_gc_message(ctx, &msg);
        }
        if self.maybe_reply_tombstone(ctx, &msg) {
            return;
        }
        if let Some(from) = msg.from_peer {
            self.peer_cache.entry(from.id).or_insert(from);
        }
        let Some(m) = msg.message else {
            return;
        };
        let m = match m.try_into_raft() {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(region_id, peer_id = self.meta.id, error = %e, "undecodable raft message dropped");
                return;
            }
        };
        if self.should_drop_vote(&m) {
            tracing::debug!(
                region_id,
                peer_id = self.meta.id,
                from = m.from,
                "vote request dropped: restarted peer may have granted a leader lease"
            );
            return;
        }
        use raft::eraftpb::MessageType;
        match m.get_msg_type() {
            MessageType::MsgSnapshot => {
                if !self.check_snapshot(ctx, &m) {
                    return;
                }
                self.leader_missing_ticks = 0;
            }
            MessageType::MsgAppend | MessageType::MsgHeartbeat => self.leader_missing_ticks = 0,
            _ => {}
        }
        if let Err(e) = self.group_mut().step(m) {
            tracing::debug!(region_id, peer_id = self.meta.id, error = %e, "raft message refused");
        }
    }

    /// The applier made a task durable.
    pub(crate) fn on_apply_res<T: Transport>(&mut self, ctx: &mut PollContext<T>, res: ApplyRes) {
        if res.peer_id != self.meta.id || self.is_destroyed() {
            return;
        }
        let before = self.group().storage().truncated_index();
        self.group_mut().on_applied(res.result);
        if self.split_proposed != 0 && self.group().storage().applied_index() >= self.split_proposed
        {
            self.end_split_pending(ctx);
        }
        let after = self.group().storage().truncated_index();
        if after > before {
            self.log_bytes_since_compact = 0;
        }
        if self.compact_proposed != 0
            && self.group().storage().applied_index() >= self.compact_proposed
        {
            self.compact_proposed = 0;
        }
        self.written_bytes += res.written_bytes;
        self.written_keys += res.written_keys;
        self.split.size_diff += res.written_bytes;
        for exec in res.exec_results {
            match exec {
                ExecResult::ChangePeer {
                    index,
                    region,
                    removed_self,
                } => {
                    self.refresh_peer_cache();
                    self.heartbeat_due = true;
                    if removed_self {
                        self.on_removed(ctx, index);
                        return;
                    }
                    ctx.store_meta.lock().set_region(&region);
                    self.maybe_leave_joint(ctx);
                }
                ExecResult::Split {
                    derived,
                    regions,
                    new_regions,
                } => self.on_split_applied(ctx, derived, regions, new_regions),
            }
        }
    }

    /// The role or the known leader changed.
    pub(crate) fn on_role_changed<T>(&mut self, ctx: &PollContext<T>, rc: RoleChange) {
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            term = self.term(),
            role = ?rc.role,
            leader = ?rc.leader_id,
            "role changed"
        );
        // A split proposed in an earlier leadership is covered by the new leader's own rule
        // (no lease reads before it applied an entry of its term, see `operation/lease.rs`).
        self.end_split_pending(ctx);
        if rc.role == StateRole::Leader {
            self.heartbeat_due = true;
            self.compact_proposed = 0;
            self.leader_missing_ticks = 0;
            // A fresh leader knows nothing of the region's size yet.
            self.split = Default::default();
        } else {
            self.on_leadership_lost();
        }
    }
}
