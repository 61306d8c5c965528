//! The peer FSM: a peer's mailbox and the flat dispatch of its messages to `operation/`.

use crossbeam_channel::{Receiver, Sender};
use raft::SnapshotStatus;

use crate::batch::{BasicMailbox, Fsm};
use crate::errors::Error;
use crate::msg::{PeerMsg, PeerTicks};
use crate::peer::Peer;
use crate::poller::PollContext;
use crate::transport::Transport;

/// A peer and its mailbox.
pub struct PeerFsm {
    pub(crate) peer: Peer,
    receiver: Receiver<PeerMsg>,
    mailbox: Option<BasicMailbox<PeerFsm>>,
    stopped: bool,
}

impl PeerFsm {
    /// Wraps `peer`; returns the sender of its mailbox.
    pub(crate) fn new(peer: Peer) -> (Sender<PeerMsg>, Box<PeerFsm>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            tx,
            Box::new(PeerFsm {
                peer,
                receiver: rx,
                mailbox: None,
                stopped: false,
            }),
        )
    }

    pub(crate) fn set_mailbox(&mut self, mailbox: BasicMailbox<PeerFsm>) {
        self.mailbox = Some(mailbox);
    }

    /// Handles up to `messages_per_tick` messages, then proposes the round's merged writes and
    /// issues its reads.
    pub(crate) fn handle_msgs<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        for _ in 0..ctx.cfg.messages_per_tick {
            if self.stopped {
                // Whatever is left is answered as the FSM is dropped.
                break;
            }
            let Ok(msg) = self.receiver.try_recv() else {
                break;
            };
            match msg {
                PeerMsg::RaftMessage(m) => self.peer.on_raft_message(ctx, *m),
                PeerMsg::RaftCommand(c) => {
                    let c = *c;
                    if self.peer.is_destroyed() {
                        let region_id = self.peer.region_id;
                        c.callback.fail(Error::RegionNotFound(region_id), 0);
                        continue;
                    }
                    self.peer.on_raft_command(ctx, c.request, c.callback)
                }
                PeerMsg::Tick(ticks) => self.on_ticks(ctx, ticks),
                PeerMsg::ApplyRes(res) => self.peer.on_apply_res(ctx, *res),
                PeerMsg::Unreachable { to_peer_id } => {
                    if !self.peer.pending_destroy {
                        self.peer.group_mut().report_unreachable(to_peer_id)
                    }
                }
                PeerMsg::SnapshotStatus {
                    to_peer_id,
                    finished,
                } => {
                    if self.peer.pending_destroy {
                        continue;
                    }
                    let status = if finished {
                        SnapshotStatus::Finish
                    } else {
                        SnapshotStatus::Failure
                    };
                    self.peer.group_mut().report_snapshot(to_peer_id, status)
                }
                PeerMsg::SchedulerOperator(resp) => self.peer.on_scheduler_operator(ctx, *resp),
                PeerMsg::SplitCheckResult(res) => self.peer.on_split_check_result(ctx, *res),
                PeerMsg::AskSplit(ask) => self.peer.on_ask_split(ctx, *ask),
                PeerMsg::SplitInit(init) => self.on_split_init(ctx, *init),
                PeerMsg::StaleCheck { peer_id, region } => {
                    self.peer.on_stale_check(ctx, peer_id, region.map(|r| *r))
                }
                PeerMsg::Start => {
                    self.peer.heartbeat_due = self.peer.is_leader();
                    self.peer.maybe_campaign_on_start();
                }
                PeerMsg::Destroy => self.peer.start_destroy(ctx),
                PeerMsg::ApplyDestroyed { incarnation } => {
                    self.peer
                        .finish_destroy(ctx, incarnation, &mut self.stopped)
                }
            }
        }
        if !self.stopped {
            self.peer.propose_pending_write(ctx);
            self.peer.issue_reads(ctx);
        }
    }

    fn on_ticks<T: Transport>(&mut self, ctx: &mut PollContext<T>, ticks: PeerTicks) {
        let peer = &mut self.peer;
        if peer.pending_destroy {
            return;
        }
        if ticks.contains(PeerTicks::RAFT) {
            peer.group_mut().tick();
            peer.ticks += 1;
            peer.vote_guard_ticks = peer.vote_guard_ticks.saturating_sub(1);
            if peer.pending_remove {
                // A removed leader keeps replicating until the others learned its removal.
                return peer.tick_remove_wait(ctx);
            }
            peer.tick_leader_missing(ctx);
        }
        if peer.pending_remove {
            return;
        }
        if ticks.contains(PeerTicks::RAFT_LOG_GC) {
            peer.on_raft_log_gc_tick(ctx);
        }
        if ticks.contains(PeerTicks::PD_HEARTBEAT) && peer.is_leader() {
            peer.heartbeat_due = true;
            // Retries leaving a joint state a previous leader entered.
            peer.maybe_leave_joint(ctx);
        }
        if ticks.contains(PeerTicks::SPLIT_CHECK) {
            peer.on_split_check_tick(ctx);
        }
    }
}

impl Fsm for PeerFsm {
    type Message = PeerMsg;

    fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn has_pending_work(&self) -> bool {
        !self.stopped
            && !self.peer.is_destroyed()
            && !self.peer.pending_destroy
            && !self.peer.ready_blocked
            && self.peer.group().has_ready()
    }

    fn mailbox(&self) -> &BasicMailbox<Self> {
        self.mailbox.as_ref().expect("registered fsm has a mailbox")
    }
}

impl Drop for PeerFsm {
    fn drop(&mut self) {
        // Commands still queued are answered as their callbacks drop; reads and proposals in
        // flight are answered here and by the raft group's drop.
        for msg in self.receiver.try_iter() {
            drop(msg);
        }
        let term = if self.peer.is_destroyed() {
            0
        } else {
            self.peer.term()
        };
        let region_id = self.peer.region_id;
        if self.peer.is_destroyed() {
            self.peer
                .reads
                .fail_all(|| Error::RegionNotFound(region_id), term);
        } else {
            self.peer.reads.fail_all(|| Error::Shutdown, term);
        }
    }
}
