//! Membership changes on the leader: `ChangePeer` (one change) and `ChangePeerV2` (several, as
//! a joint change), proposed as raft-rs conf change entries whose context is the command.
//!
//! Checks before proposing, each with its own error (the scheduler re-sends an operator until it
//! sees the result, so duplicates must be refused cleanly, never applied twice):
//! - `conf_ver` of the command matches the region (`EpochNotMatch` otherwise: a stale or
//!   already-applied request);
//! - every named peer has an id and a store; an added peer is not a member yet and its store
//!   holds no other peer of the region; a removed peer is a member (`InvalidRequest`);
//! - no other membership change is still being applied (`ServerIsBusy`: retry later);
//! - raft-core's validation of the resulting membership (no voter removed inside a joint
//!   change, at least one voter left).
//!
//! **Removing (or demoting) the leader itself.** The leader never proposes its own removal.
//! It hands leadership to the most up-to-date voter and answers `NotLeader` naming it; the
//! re-sent request reaches the new leader, which removes the old one as an ordinary follower.
//! This keeps the group writable throughout and is the only way that works for a two-peer
//! group: had the leader committed its own removal and destroyed itself at once, the remaining
//! peer might not know the removal committed — its membership would still count the departed
//! leader, and it could never win an election.
//!
//! A leader can still apply its own removal when it was proposed by an earlier leader. It then
//! stops serving commands but keeps replicating (heartbeats carry the commit index) until every
//! remaining voter has acknowledged the removal entry as committed, and only then destroys
//! itself. With two or more remaining voters a quorum of the old membership survives without it,
//! so the wait is bounded by two election timeouts; with one it waits for that voter.
//!
//! Joint changes are proposed with an explicit transition; once the leader applies the entering
//! change it proposes the empty change that leaves the joint state (again after a leader change,
//! from the heartbeat tick, until the region is no longer joint).

use prost::Message as _;
use proto::eraftpb::ConfChangeType;
use proto::metapb::{Peer, PeerRole};
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, ChangePeerV2Request, RaftCmdRequest, RaftRequestHeader,
};
use raft::eraftpb::{ConfChangeTransition, ConfChangeV2};
use raft_core::conf_change::{conf_change_single, is_joint};

use crate::apply::command_peers;
use crate::errors::{Error, Result};
use crate::msg::Callback;
use crate::peer::{Peer as RegionPeer, ProposalCb, RemoveWait};
use crate::poller::PollContext;
use crate::transport::Transport;

/// The changes a membership command asks for, in order.
fn command_changes(req: &RaftCmdRequest) -> Result<Vec<(ConfChangeType, Peer)>> {
    let admin = req.admin_request.as_ref().expect("classified as admin");
    let (_, peers) = command_peers(req)?;
    let types: Vec<i32> = match admin.cmd_type() {
        AdminCmdType::ChangePeer => vec![admin.change_peer.as_ref().expect("checked").change_type],
        _ => admin
            .change_peer_v2
            .as_ref()
            .expect("checked")
            .changes
            .iter()
            .map(|c| c.change_type)
            .collect(),
    };
    types
        .into_iter()
        .zip(peers)
        .map(|(t, p)| {
            let t = ConfChangeType::try_from(t)
                .map_err(|_| Error::InvalidRequest(format!("unknown conf change type {t}")))?;
            Ok((t, p))
        })
        .collect()
}

/// raft-rs's conf change for `changes`: one change applies in one step; several form a joint
/// change left explicitly; none leaves the current joint state.
fn to_conf_change(changes: &[(ConfChangeType, Peer)]) -> ConfChangeV2 {
    let mut cc = ConfChangeV2::default();
    for (t, p) in changes {
        let t = match t {
            ConfChangeType::AddNode => raft::eraftpb::ConfChangeType::AddNode,
            ConfChangeType::RemoveNode => raft::eraftpb::ConfChangeType::RemoveNode,
            ConfChangeType::AddLearnerNode => raft::eraftpb::ConfChangeType::AddLearnerNode,
        };
        cc.changes.push(conf_change_single(p.id, t));
    }
    if changes.len() > 1 {
        cc.set_transition(ConfChangeTransition::Explicit);
    }
    cc
}

impl RegionPeer {
    /// Checks each change against the region (see the module docs).
    fn check_changes(&self, changes: &[(ConfChangeType, Peer)]) -> Result<()> {
        let region = self.region();
        let invalid = |m: String| Err(Error::InvalidRequest(m));
        for (t, p) in changes {
            if p.id == 0 || p.store_id == 0 {
                return invalid(format!("peer {p:?} needs an id and a store"));
            }
            let member = region.peers.iter().find(|x| x.id == p.id);
            if let Some(m) = member {
                if m.store_id != p.store_id {
                    return invalid(format!(
                        "peer {} is on store {}, not {}",
                        p.id, m.store_id, p.store_id
                    ));
                }
            }
            match (t, member) {
                (ConfChangeType::AddNode, Some(m)) if m.role() == PeerRole::Voter => {
                    return invalid(format!("peer {} is already a voter", p.id));
                }
                (ConfChangeType::AddLearnerNode, Some(m)) if m.role() == PeerRole::Learner => {
                    return invalid(format!("peer {} is already a learner", p.id));
                }
                (ConfChangeType::AddNode | ConfChangeType::AddLearnerNode, None) => {
                    if let Some(other) = region.peers.iter().find(|x| x.store_id == p.store_id) {
                        return invalid(format!(
                            "store {} already holds peer {} of region {}",
                            p.store_id, other.id, self.region_id
                        ));
                    }
                }
                (ConfChangeType::RemoveNode, None) => {
                    return invalid(format!(
                        "peer {} is not a member of region {}",
                        p.id, self.region_id
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Handles a `ChangePeer`/`ChangePeerV2` command that passed the header checks (see the
    /// module docs).
    pub(crate) fn propose_conf_change_cmd<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        req: RaftCmdRequest,
        cb: Callback,
    ) {
        let term = self.term();
        let changes = match command_changes(&req).and_then(|c| self.check_changes(&c).map(|()| c)) {
            Ok(c) => c,
            Err(e) => return cb.fail(e, term),
        };
        if changes.is_empty() && !is_joint(self.region()) {
            return cb.fail(
                Error::InvalidRequest("empty membership change outside a joint state".into()),
                term,
            );
        }
        let demotes_self = changes.iter().any(|(t, p)| {
            p.id == self.meta.id
                && matches!(
                    t,
                    ConfChangeType::RemoveNode | ConfChangeType::AddLearnerNode
                )
        });
        if demotes_self {
            return match self.hand_over_leadership(ctx) {
                Ok(target) => cb.fail(
                    Error::NotLeader {
                        region_id: self.region_id,
                        leader: Some(target),
                    },
                    term,
                ),
                Err(e) => cb.fail(e, term),
            };
        }
        if self.group().raw_node().raft.has_pending_conf() {
            return cb.fail(
                Error::ServerIsBusy("another membership change is being applied".into()),
                term,
            );
        }
        self.propose_conf_change(ctx, req, &changes, ProposalCb::new(cb, 0));
    }

    fn propose_conf_change<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        req: RaftCmdRequest,
        changes: &[(ConfChangeType, Peer)],
        cb: ProposalCb,
    ) {
        let cc = to_conf_change(changes);
        let context = req.encode_to_vec();
        if context.len() as u64 > ctx.cfg.raft_entry_max_size {
            return cb.fail_with(
                Error::RaftEntryTooLarge {
                    region_id: self.region_id,
                    entry_size: context.len() as u64,
                },
                self.term(),
            );
        }
        match self.group_mut().propose_conf_change(context, cc, cb) {
            Ok(index) => {
                ctx.round_proposals += 1;
                tracing::info!(
                    region_id = self.region_id,
                    peer_id = self.meta.id,
                    term = self.term(),
                    index,
                    changes = ?changes.iter().map(|(t, p)| (t.as_str_name(), p.id, p.store_id)).collect::<Vec<_>>(),
                    "proposed conf change"
                );
            }
            Err(rejected) => {
                let err = match rejected.error {
                    raft_core::Error::NotLeader { .. } => self.not_leader(),
                    raft_core::Error::InvalidConfChange { reason, .. } => {
                        Error::InvalidRequest(reason)
                    }
                    raft_core::Error::Raft(raft::Error::ProposalDropped) => Error::ServerIsBusy(
                        "proposal dropped by raft (leadership transfer in progress)".into(),
                    ),
                    other => other.into(),
                };
                rejected.callback.fail_with(err, self.term());
            }
        }
    }

    /// Hands leadership to the voter with the most log (before this leader's own removal);
    /// returns it.
    fn hand_over_leadership<T>(&mut self, ctx: &PollContext<T>) -> Result<Peer> {
        let raft = &self.group().raw_node().raft;
        let voters = raft.prs().conf().voters().ids();
        let best = self
            .region()
            .peers
            .iter()
            .filter(|p| p.id != self.meta.id && voters.contains(p.id))
            .filter_map(|p| raft.prs().get(p.id).map(|pr| (pr.matched, *p)))
            .max_by_key(|(matched, p)| (*matched, std::cmp::Reverse(p.id)))
            .map(|(_, p)| p);
        let Some(target) = best else {
            return Err(Error::InvalidRequest(format!(
                "peer {} is the only voter of region {}",
                self.meta.id, self.region_id
            )));
        };
        self.transfer_leader(&ctx.cfg, &target)?;
        Ok(target)
    }

    /// After applying the change that entered a joint state, the leader leaves it.
    pub(crate) fn maybe_leave_joint<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        if !self.is_leader() || self.pending_remove || !is_joint(self.region()) {
            return;
        }
        if self.group().raw_node().raft.has_pending_conf() {
            return;
        }
        let req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id: self.region_id,
                peer: Some(self.meta),
                region_epoch: self.region().region_epoch,
                ..Default::default()
            }),
            admin_request: Some(AdminRequest {
                cmd_type: AdminCmdType::ChangePeerV2 as i32,
                change_peer_v2: Some(ChangePeerV2Request { changes: vec![] }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let region_id = self.region_id;
        let cb = Callback::new(move |resp| {
            if let Some(e) = resp.error() {
                tracing::info!(region_id, error = %e.message, "leaving the joint state failed; retried");
            }
        });
        self.propose_conf_change(ctx, req, &[], ProposalCb::new(cb, 0));
    }

    /// This peer applied its own removal (entry `index`): it destroys itself, a leader only
    /// once the remaining voters know the removal committed (see the module docs).
    pub(crate) fn on_removed<T: Transport>(&mut self, ctx: &mut PollContext<T>, index: u64) {
        self.pending_remove = true;
        self.reads
            .fail_all(|| Error::RegionNotFound(self.region_id), self.term());
        if let Some(p) = self.pending_write.take() {
            p.cb.fail_with(Error::RegionNotFound(self.region_id), self.term());
        }
        if !self.is_leader() {
            return self.start_destroy(ctx);
        }
        let remaining = self
            .group()
            .raw_node()
            .raft
            .prs()
            .conf()
            .voters()
            .ids()
            .len();
        let max_ticks = if remaining > 1 {
            2 * ctx.cfg.raft.election_tick as u64
        } else {
            u64::MAX
        };
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            index,
            remaining,
            "leader removed; waiting for the remaining voters to learn the commit"
        );
        self.remove_wait = Some(RemoveWait {
            index,
            ticks_left: max_ticks,
        });
        self.check_remove_wait(ctx);
    }

    /// A removed leader destroys itself once every remaining voter acknowledged the removal as
    /// committed, or its wait ran out.
    pub(crate) fn check_remove_wait<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        let Some(wait) = self.remove_wait else {
            return;
        };
        let raft = &self.group().raw_node().raft;
        let voters = raft.prs().conf().voters().ids();
        let learned = voters.iter().all(|id| {
            id == self.meta.id
                || raft
                    .prs()
                    .get(id)
                    .is_some_and(|pr| pr.committed_index >= wait.index)
        });
        if learned || wait.ticks_left == 0 || !self.is_leader() {
            self.remove_wait = None;
            self.start_destroy(ctx);
        }
    }

    /// One tick of a removed leader's wait.
    pub(crate) fn tick_remove_wait<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        if let Some(w) = self.remove_wait.as_mut() {
            w.ticks_left = w.ticks_left.saturating_sub(1);
            self.check_remove_wait(ctx);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(id: u64) -> Peer {
        Peer {
            id,
            store_id: id,
            ..Default::default()
        }
    }

    #[test]
    fn one_change_is_simple_and_several_are_an_explicit_joint_change() {
        let one = to_conf_change(&[(ConfChangeType::AddNode, peer(4))]);
        assert_eq!(one.get_transition(), ConfChangeTransition::Auto);
        assert!(!one.leave_joint());
        let two = to_conf_change(&[
            (ConfChangeType::AddNode, peer(4)),
            (ConfChangeType::AddLearnerNode, peer(2)),
        ]);
        assert_eq!(two.get_transition(), ConfChangeTransition::Explicit);
        assert_eq!(two.get_changes()[1].node_id, 2);
        assert!(to_conf_change(&[]).leave_joint());
    }
}
