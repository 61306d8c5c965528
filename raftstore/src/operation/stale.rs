//! Finding out that this peer was removed while it could not hear about it (partitioned, or its
//! store was down), and telling removed peers so.
//!
//! - A member that receives a message from a peer outside its region with an older `conf_ver`
//!   answers with a tombstone message (`is_tombstone`); the receiver trusts it only if its epoch
//!   is newer than its own region's (an uninitialized peer has none), and destroys itself.
//! - A peer that has heard from no leader for `max-leader-missing-duration` asks the scheduler
//!   for its region (`CheckStalePeer`) and destroys itself if the scheduler's region is newer and
//!   does not list it. This also covers a region whose other members are all gone.
//! - A message addressed to a newer peer id of the same region on this store means this peer
//!   was removed and the store re-added with a new id: the old peer goes, and the next message
//!   creates the new one.
//!
//! In every case the tombstone records the epoch of whoever said so, so the old group's late
//! messages cannot bring the peer back.

use proto::metapb::Region;
use proto::raft_serverpb::RaftMessage;

use crate::peer::Peer;
use crate::poller::PollContext;
use crate::transport::Transport;
use crate::worker::pd::PdTask;

impl Peer {
    /// A raft message to a peer id other than this one: an older id is a stale message; a newer
    /// id means this store's peer was removed and re-added, so this one is stale and goes.
    pub(crate) fn on_message_for_other_peer<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        to: u64,
    ) {
        if to > self.meta.id && !self.pending_remove {
            tracing::info!(
                region_id = self.region_id,
                peer_id = self.meta.id,
                new_peer = to,
                "a newer peer of this region is addressed on this store; destroying the stale one"
            );
            self.start_destroy(ctx);
        }
    }

    /// A tombstone message: a member whose region no longer lists this peer says so. Trusted
    /// when its epoch is newer than this peer's region (an uninitialized peer has none).
    pub(crate) fn on_gc_message<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        msg: &RaftMessage,
    ) {
        if self.pending_remove {
            return;
        }
        let theirs = msg.region_epoch.unwrap_or_default();
        let initialized = self.group().storage().is_initialized();
        let ours = self.region().region_epoch.unwrap_or_default();
        if initialized && theirs.conf_ver <= ours.conf_ver {
            tracing::debug!(
                region_id = self.region_id,
                peer_id = self.meta.id,
                "stale tombstone message ignored"
            );
            return;
        }
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            conf_ver = theirs.conf_ver,
            "told by a member that this peer was removed"
        );
        let mut tomb = self.region().clone();
        tomb.region_epoch = Some(theirs);
        self.tombstone_region = Some(tomb);
        self.start_destroy(ctx);
    }

    /// Answers a message from `from` with a tombstone message when `from` is not a member and
    /// its epoch is older than ours: it was removed and missed it. Returns whether it did (the
    /// message is then dropped).
    pub(crate) fn maybe_reply_tombstone<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        msg: &RaftMessage,
    ) -> bool {
        let Some(from) = msg.from_peer else {
            return false;
        };
        if !self.group().storage().is_initialized()
            || self.region().peers.iter().any(|p| p.id == from.id)
        {
            return false;
        }
        let theirs = msg.region_epoch.unwrap_or_default();
        let ours = self.region().region_epoch.unwrap_or_default();
        if theirs.conf_ver >= ours.conf_ver {
            return false;
        }
        tracing::debug!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            to = from.id,
            "telling a removed peer it is gone"
        );
        let gc = RaftMessage {
            region_id: self.region_id,
            from_peer: Some(self.meta),
            to_peer: Some(from),
            // The network requires a payload; the receiver never steps it.
            message: Some(proto::eraftpb::Message::default()),
            region_epoch: self.region().region_epoch,
            is_tombstone: true,
            start_key: self.region().start_key.clone(),
            end_key: self.region().end_key.clone(),
            extra_msg: None,
        };
        if let Err(e) = ctx.trans.send(gc) {
            tracing::debug!(region_id = self.region_id, error = %e, "tombstone message not sent");
        }
        true
    }

    /// A raft tick: a peer that has heard from no leader for `max-leader-missing-duration` asks
    /// the scheduler whether it is still a member.
    pub(crate) fn tick_leader_missing<T>(&mut self, ctx: &PollContext<T>) {
        if self.is_leader() {
            self.leader_missing_ticks = 0;
            return;
        }
        self.leader_missing_ticks += 1;
        let limit = ctx.cfg.leader_missing_ticks();
        if self.leader_missing_ticks < limit || !self.leader_missing_ticks.is_multiple_of(limit) {
            return;
        }
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            ticks = self.leader_missing_ticks,
            "no leader heard from for long; asking the scheduler whether this peer is stale"
        );
        let task = PdTask::CheckStalePeer {
            region_id: self.region_id,
            peer_id: self.meta.id,
        };
        if ctx.pd_scheduler.schedule(task).is_err() {
            tracing::debug!(
                region_id = self.region_id,
                "pd worker stopped; stale check dropped"
            );
        }
    }

    /// The scheduler's answer to the stale check: destroy this peer if the scheduler's region is
    /// newer and does not list it.
    pub(crate) fn on_stale_check<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        peer_id: u64,
        region: Option<Region>,
    ) {
        if peer_id != self.meta.id || self.pending_remove || self.pending_destroy {
            return;
        }
        let Some(region) = region else {
            return;
        };
        let theirs = region.region_epoch.unwrap_or_default();
        let ours = self.region().region_epoch.unwrap_or_default();
        let initialized = self.group().storage().is_initialized();
        let newer = !initialized || theirs.conf_ver > ours.conf_ver;
        if !newer || region.peers.iter().any(|p| p.id == self.meta.id) {
            return;
        }
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            conf_ver = theirs.conf_ver,
            "the scheduler's region no longer lists this peer; destroying it"
        );
        let mut tomb = self.region().clone();
        tomb.region_epoch = Some(theirs);
        self.tombstone_region = Some(tomb);
        self.start_destroy(ctx);
    }
}
