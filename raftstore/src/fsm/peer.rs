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
                PeerMsg::RaftMessage(m) => self.peer.on_raft_message(*m),
                PeerMsg::RaftCommand(c) => {
                    let c = *c;
                    self.peer.on_raft_command(ctx, c.request, c.callback)
                }
                PeerMsg::Tick(ticks) => self.on_ticks(ctx, ticks),
                PeerMsg::ApplyRes(res) => self.peer.on_apply_res(*res),
                PeerMsg::Unreachable { to_peer_id } => {
                    self.peer.group_mut().report_unreachable(to_peer_id)
                }
                PeerMsg::SnapshotStatus {
                    to_peer_id,
                    finished,
                } => {
                    let status = if finished {
                        SnapshotStatus::Finish
                    } else {
                        SnapshotStatus::Failure
                    };
                    self.peer.group_mut().report_snapshot(to_peer_id, status)
                }
                PeerMsg::SchedulerOperator(resp) => self.peer.on_scheduler_operator(ctx, *resp),
                PeerMsg::Start => self.peer.heartbeat_due = self.peer.is_leader(),
                PeerMsg::Destroy => self.peer.start_destroy(ctx),
                PeerMsg::ApplyDestroyed => self.peer.finish_destroy(ctx, &mut self.stopped),
            }
        }
        if !self.stopped {
            self.peer.propose_pending_write(ctx);
            self.peer.issue_reads(ctx);
        }
    }

    fn on_ticks<T: Transport>(&mut self, ctx: &mut PollContext<T>, ticks: PeerTicks) {
        if self.peer.pending_destroy {
            return;
        }
        if ticks.contains(PeerTicks::RAFT) {
            self.peer.group_mut().tick();
        }
        if ticks.contains(PeerTicks::RAFT_LOG_GC) {
            self.peer.on_raft_log_gc_tick(ctx);
        }
        if ticks.contains(PeerTicks::PD_HEARTBEAT) && self.peer.is_leader() {
            self.peer.heartbeat_due = true;
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
