//! `RaftGroup`: the driver of one Raft group (a `RawNode` over [`PeerStorage`]).
//!
//! Inputs go in through [`RaftGroup::tick`], [`RaftGroup::step`], [`RaftGroup::propose`] and
//! the other passthroughs; outputs come out of the Ready loop ([`ready`](self::ready)), either in
//! two phases for a store that group-commits many groups, or through the one-call
//! [`RaftGroup::handle_ready`]. Applying committed entries is the owner's job
//! ([`apply`](self::apply)); the owner reports back with [`RaftGroup::on_applied`].

mod apply;
mod proposal;
mod ready;

pub use apply::{AppliedConfChange, Applier, ApplyResult, ApplyTask};
pub use proposal::{Proposal, ProposalCallback, Rejected};
pub use ready::{CollectedReady, PersistedReady, RoleChange, Transport};

use proto::metapb::Peer;
use raft::eraftpb::{ConfChangeV2, Message, MessageType};
use raft::{RawNode, SnapshotStatus, StateRole};

use self::proposal::ProposalQueue;
use crate::conf_change::apply_conf_change_to_region;
use crate::config::RaftConfig;
use crate::engine::RocksWriteBatch;
use crate::errors::{Error, Result};
use crate::logger::raft_logger;
use crate::snap::{decode_descriptor, SnapKey, SnapKind};
use crate::storage::PeerStorage;

/// A point-in-time view of a group, cheap to take; tests and schedulers poll it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupStatus {
    /// The region.
    pub region_id: u64,
    /// This peer.
    pub peer_id: u64,
    /// Leader, follower, candidate or pre-candidate.
    pub role: StateRole,
    /// The leader this peer knows of.
    pub leader_id: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Who this peer voted for in `term` (0: nobody).
    pub vote: u64,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Durable applied index (as reported by the applier).
    pub applied_index: u64,
    /// First index still in the log.
    pub first_index: u64,
    /// Last index in the log (including entries not yet persisted).
    pub last_index: u64,
    /// Voters of the (incoming) configuration.
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// The peer a leader is transferring leadership to.
    pub lead_transferee: Option<u64>,
    /// Proposals waiting for their entries to commit.
    pub pending_proposals: usize,
}

/// One Raft group: raft-rs's `RawNode` over durable [`PeerStorage`], with proposal tracking.
///
/// Between [`RaftGroup::collect_ready`] and [`RaftGroup::on_persisted`] no other method that
/// changes raft state may be called (raft-rs requires a Ready to be advanced before anything
/// else happens); doing so panics.
pub struct RaftGroup<C: ProposalCallback> {
    raw: RawNode<PeerStorage>,
    region_id: u64,
    peer_id: u64,
    proposals: ProposalQueue<C>,
    /// Highest log index whose entry (or snapshot) was handed to the applier.
    handed_index: u64,
    ready_in_flight: bool,
}

impl<C: ProposalCallback> RaftGroup<C> {
    /// Starts the group over `storage`, resuming after its durable applied index.
    pub fn new(cfg: &RaftConfig, storage: PeerStorage) -> Result<Self> {
        cfg.validate()?;
        let (region_id, peer_id) = (storage.region_id(), storage.peer_id());
        let applied = storage.applied_index();
        let raft_cfg = cfg.to_raft_config(peer_id, applied);
        let raw = RawNode::new(&raft_cfg, storage, &raft_logger(region_id, peer_id))?;
        Ok(RaftGroup {
            raw,
            region_id,
            peer_id,
            proposals: ProposalQueue::new(region_id, peer_id),
            handed_index: applied,
            ready_in_flight: false,
        })
    }

    fn assert_idle(&self, what: &str) {
        assert!(
            !self.ready_in_flight,
            "region {} peer {}: {what} between collect_ready and on_persisted",
            self.region_id, self.peer_id
        );
    }

    /// The region id.
    pub fn region_id(&self) -> u64 {
        self.region_id
    }

    /// This peer's id.
    pub fn peer_id(&self) -> u64 {
        self.peer_id
    }

    /// The durable storage.
    pub fn storage(&self) -> &PeerStorage {
        self.raw.store()
    }

    /// raft-rs's node, read-only (for inspection; all changes go through this type).
    pub fn raw_node(&self) -> &RawNode<PeerStorage> {
        &self.raw
    }

    /// Whether this peer is the leader.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The leader this peer knows of.
    pub fn leader_id(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|id| *id != raft::INVALID_ID)
    }

    /// Current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// Whether this peer is still listed in its region (it was not removed).
    pub fn is_member(&self) -> bool {
        self.storage()
            .region()
            .peers
            .iter()
            .any(|p| p.id == self.peer_id)
    }

    /// A status snapshot.
    pub fn status(&self) -> GroupStatus {
        let raft = &self.raw.raft;
        let conf = raft.prs().conf().to_conf_state();
        GroupStatus {
            region_id: self.region_id,
            peer_id: self.peer_id,
            role: raft.state,
            leader_id: self.leader_id(),
            term: raft.term,
            vote: raft.vote,
            commit_index: raft.raft_log.committed,
            applied_index: self.storage().applied_index(),
            first_index: self.storage().first_index(),
            last_index: raft.raft_log.last_index(),
            voters: conf.voters,
            learners: conf.learners,
            lead_transferee: raft.lead_transferee,
            pending_proposals: self.proposals.len(),
        }
    }

    /// Advances the logical clock by one tick; returns whether there may be a Ready.
    pub fn tick(&mut self) -> bool {
        self.assert_idle("tick");
        self.raw.tick()
    }

    /// Starts an election now.
    pub fn campaign(&mut self) -> Result<()> {
        self.assert_idle("campaign");
        Ok(self.raw.campaign()?)
    }

    /// Feeds a message from another peer. A `MsgSnapshot` is only accepted once its snapshot
    /// file was received in full (and verified) into the snapshot directory.
    pub fn step(&mut self, msg: Message) -> Result<()> {
        self.assert_idle("step");
        if msg.to != self.peer_id {
            return Err(Error::InvalidMessage(format!(
                "message to peer {} delivered to peer {} of region {}",
                msg.to, self.peer_id, self.region_id
            )));
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            self.check_received_snapshot(&msg)?;
        }
        Ok(self.raw.step(msg)?)
    }

    fn check_received_snapshot(&self, msg: &Message) -> Result<()> {
        let snap = msg.get_snapshot();
        let desc = decode_descriptor(snap.get_data())?;
        let region_id = desc.region.as_ref().map_or(0, |r| r.id);
        if region_id != self.region_id {
            return Err(Error::InvalidMessage(format!(
                "snapshot of region {region_id} sent to region {}",
                self.region_id
            )));
        }
        let key = SnapKey::from_snapshot(self.region_id, snap);
        let path = self.storage().snap_mgr().path(&key, SnapKind::Received);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(_) => return Err(Error::SnapshotNotFound(key.to_string())),
        };
        if len != desc.file_size {
            return Err(Error::CorruptedSnapshot(format!(
                "snapshot {key} is {len} bytes, descriptor says {}",
                desc.file_size
            )));
        }
        Ok(())
    }

    fn check_leader(&self) -> Result<()> {
        if self.is_leader() {
            Ok(())
        } else {
            Err(Error::NotLeader {
                region_id: self.region_id,
                peer_id: self.peer_id,
                leader_id: self.leader_id(),
            })
        }
    }

    /// Proposes `data` (with `context`) on the leader. Returns the log index it was appended at;
    /// `callback` is then answered exactly once (applied, stale, or an error). A proposal
    /// refused up front (not leader, leader transfer in progress, too many uncommitted bytes)
    /// returns the callback unanswered inside [`Rejected`].
    pub fn propose(
        &mut self,
        context: Vec<u8>,
        data: Vec<u8>,
        callback: C,
    ) -> std::result::Result<u64, Rejected<C>> {
        self.assert_idle("propose");
        if let Err(error) = self.check_leader() {
            return Err(Rejected { error, callback });
        }
        let last = self.raw.raft.raft_log.last_index();
        if let Err(e) = self.raw.propose(context, data) {
            return Err(Rejected {
                error: e.into(),
                callback,
            });
        }
        let index = self.raw.raft.raft_log.last_index();
        if index == last {
            return Err(Rejected {
                error: raft::Error::ProposalDropped.into(),
                callback,
            });
        }
        self.proposals.push(Proposal {
            index,
            term: self.raw.raft.term,
            is_conf_change: false,
            callback,
        });
        Ok(index)
    }

    /// Proposes a membership change. Simple changes (one change, `Auto` transition) apply in
    /// one step; joint changes must use `ConfChangeTransition::Explicit` and be followed by an
    /// empty `ConfChangeV2` proposal once applied, to leave the joint state (see
    /// [`crate::conf_change`]). Refused up front: not leader, another change still unapplied,
    /// or a change the region cannot represent.
    pub fn propose_conf_change(
        &mut self,
        context: Vec<u8>,
        cc: ConfChangeV2,
        callback: C,
    ) -> std::result::Result<u64, Rejected<C>> {
        self.assert_idle("propose_conf_change");
        let reject = |error, callback| Err(Rejected { error, callback });
        if let Err(error) = self.check_leader() {
            return reject(error, callback);
        }
        if self.raw.raft.has_pending_conf() {
            return reject(
                Error::InvalidConfChange {
                    region_id: self.region_id,
                    reason: "another conf change is not applied yet".into(),
                },
                callback,
            );
        }
        // Validate against the region with placeholder stores for peers it does not list yet;
        // the applier supplies the real ones.
        let placeholders: Vec<Peer> = cc
            .get_changes()
            .iter()
            .map(|c| Peer {
                id: c.node_id,
                ..Default::default()
            })
            .collect();
        if let Err(error) = apply_conf_change_to_region(self.storage().region(), &cc, &placeholders)
        {
            return reject(error, callback);
        }
        let last = self.raw.raft.raft_log.last_index();
        if let Err(e) = self.raw.propose_conf_change(context, cc) {
            return reject(e.into(), callback);
        }
        let index = self.raw.raft.raft_log.last_index();
        if index == last {
            return reject(raft::Error::ProposalDropped.into(), callback);
        }
        if self.raw.raft.pending_conf_index != index {
            // raft-rs appended an empty normal entry instead of the change.
            return reject(
                Error::InvalidConfChange {
                    region_id: self.region_id,
                    reason: "refused by raft (conf change pending or joint state mismatch)".into(),
                },
                callback,
            );
        }
        self.proposals.push(Proposal {
            index,
            term: self.raw.raft.term,
            is_conf_change: true,
            callback,
        });
        Ok(index)
    }

    /// Asks the leader (this peer, or the leader it forwards to) to hand leadership to
    /// `transferee` once it is caught up. Transferring to the current leader cancels a pending
    /// transfer; a non-member or a learner is ignored.
    pub fn transfer_leader(&mut self, transferee: u64) {
        self.assert_idle("transfer_leader");
        self.raw.transfer_leader(transferee);
    }

    /// Requests a linearizable read point: a `ReadState` with `ctx` and the read index shows up
    /// in a later [`PersistedReady::read_states`]; the read may be served once the applied
    /// index reaches it.
    pub fn read_index(&mut self, ctx: Vec<u8>) {
        self.assert_idle("read_index");
        self.raw.read_index(ctx);
    }

    /// Whether a leader skips telling followers about a commit index that moved without new
    /// entries (see [`crate::config::RaftConfig::skip_bcast_commit`]); off while followers
    /// must apply promptly (a split their new peers wait for).
    pub fn set_skip_bcast_commit(&mut self, skip: bool) {
        self.raw.skip_bcast_commit(skip);
    }

    /// Tells raft-rs a message to `to` could not be sent, so it probes instead of streaming.
    pub fn report_unreachable(&mut self, to: u64) {
        self.assert_idle("report_unreachable");
        self.raw.report_unreachable(to);
    }

    /// Tells raft-rs how sending a snapshot to `to` ended.
    pub fn report_snapshot(&mut self, to: u64, status: SnapshotStatus) {
        self.assert_idle("report_snapshot");
        self.raw.report_snapshot(to, status);
    }

    /// Stops the group, answering pending proposals with [`Error::Shutdown`]. (Dropping the
    /// group does the same.)
    pub fn shutdown(self) {}

    /// Removes this peer for good: pending proposals are answered with
    /// [`Error::PeerDestroyed`], and the deletion of its log and raft/apply states plus a
    /// `Tombstone` region state (and, with `clear_data`, its data range) are added to the
    /// batches, which the caller writes (kv first).
    pub fn destroy(
        mut self,
        kv_wb: &mut RocksWriteBatch,
        raft_wb: &mut RocksWriteBatch,
        clear_data: bool,
    ) -> Result<()> {
        self.assert_idle("destroy");
        let (region_id, peer_id) = (self.region_id, self.peer_id);
        self.proposals
            .fail_all(|| Error::PeerDestroyed { region_id, peer_id });
        self.raw.mut_store().clear(kv_wb, raft_wb, clear_data)?;
        tracing::info!(region_id, peer_id, "destroyed peer");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Cb;

    impl ProposalCallback for Cb {
        fn fail(self, _: Error) {}
    }

    fn assert_send<T: Send>() {}

    #[test]
    fn groups_and_their_outputs_move_between_threads() {
        // A multi-raft store polls groups on worker threads and applies on others.
        assert_send::<RaftGroup<Cb>>();
        assert_send::<CollectedReady>();
        assert_send::<PersistedReady<Cb>>();
        assert_send::<ApplyTask<Cb>>();
    }
}
