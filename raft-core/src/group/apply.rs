//! The hand-off to the applier and the report back.
//!
//! The group hands out [`ApplyTask`]s; the applier (on another thread, or inline through
//! [`Applier`]) applies them, persisting the data and the new `RaftApplyState` (and any
//! changed `RegionLocalState`) in one kv batch, answers the proposals, and reports an
//! [`ApplyResult`] to [`RaftGroup::on_applied`]. Only then does raft-rs learn the new applied
//! index, so after a crash it replays exactly the entries that were not durably applied.

use proto::metapb::Region;
use proto::raft_serverpb::RaftApplyState;
use raft::eraftpb::{ConfChangeV2, ConfState, Entry};

use super::{Proposal, ProposalCallback, RaftGroup};
use crate::conf_change::conf_state_from_region;
use crate::errors::Result;
use crate::storage::AppliedSnapshot;

/// Work for the applier, in order: adopt the snapshot (if any), then apply the entries.
pub struct ApplyTask<C> {
    /// The region.
    pub region_id: u64,
    /// The peer handing the work out.
    pub peer_id: u64,
    /// A snapshot this peer just applied to its storage (data, apply and region state are
    /// already durable). The applier must reset its apply state and region to it first.
    pub snapshot: Option<AppliedSnapshot>,
    /// Committed entries, contiguous and in order, starting right after what the applier has
    /// applied (or after the snapshot).
    pub entries: Vec<Entry>,
    /// The tracked proposals among `entries` (same index and term), in index order; the
    /// applier answers each exactly once.
    pub proposals: Vec<Proposal<C>>,
}

impl<C> std::fmt::Debug for ApplyTask<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyTask")
            .field("region_id", &self.region_id)
            .field("snapshot", &self.snapshot)
            .field("first", &self.entries.first().map(|e| e.index))
            .field("last", &self.entries.last().map(|e| e.index))
            .field("proposals", &self.proposals.len())
            .finish()
    }
}

/// A conf change the applier applied (and persisted the region of).
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedConfChange {
    /// Index of its entry.
    pub index: u64,
    /// The change, as raft-rs applies it.
    pub change: ConfChangeV2,
    /// The region after it (see [`crate::conf_change::apply_conf_change_to_region`]).
    pub region: Region,
}

/// What the applier reports back after making a task durable.
#[derive(Debug, Clone, PartialEq)]
pub struct ApplyResult {
    /// The apply state now durable in the kv engine: applied index, and truncated state if the
    /// applier compacted the log (see [`crate::storage::PeerStorage::compact_log_state`]).
    pub apply_state: RaftApplyState,
    /// Conf changes applied, in log order. The applier must not report a change it refused.
    pub conf_changes: Vec<AppliedConfChange>,
    /// The region after a range change that is not a membership change (e.g. a split).
    pub region: Option<Region>,
}

/// Applies committed work inline, for [`RaftGroup::handle_ready`].
pub trait Applier<C> {
    /// Applies `task` (see [`ApplyTask`] for the order), persists the result in one kv batch,
    /// answers its proposals, and reports what is now durable.
    fn apply(&mut self, task: ApplyTask<C>) -> Result<ApplyResult>;
}

fn same_members(a: &ConfState, b: &ConfState) -> bool {
    let sorted = |v: &[u64]| {
        let mut v = v.to_vec();
        v.sort_unstable();
        v
    };
    sorted(&a.voters) == sorted(&b.voters)
        && sorted(&a.learners) == sorted(&b.learners)
        && sorted(&a.voters_outgoing) == sorted(&b.voters_outgoing)
        && sorted(&a.learners_next) == sorted(&b.learners_next)
}

impl<C: ProposalCallback> RaftGroup<C> {
    /// Adopts what the applier made durable: conf changes reach raft-rs (in order), the region
    /// and apply state are updated (a newer truncated state compacts the log), and raft-rs's
    /// applied index moves forward, which may let it hand out more entries or, on a leader,
    /// accept the next conf change.
    pub fn on_applied(&mut self, result: ApplyResult) {
        self.assert_idle("on_applied");
        let (region_id, peer_id) = (self.region_id, self.peer_id);
        for cc in result.conf_changes {
            let cs = self.raw.apply_conf_change(&cc.change).unwrap_or_else(|e| {
                panic!("region {region_id} peer {peer_id}: raft refused applied conf change at {}: {e}", cc.index)
            });
            let expected = conf_state_from_region(&cc.region);
            assert!(
                same_members(&cs, &expected),
                "region {region_id} peer {peer_id}: conf change at {} gave {cs:?} but the region says {expected:?}",
                cc.index
            );
            tracing::info!(region_id, peer_id, index = cc.index, voters = ?cs.voters, learners = ?cs.learners, "applied conf change");
            self.raw.mut_store().set_region(cc.region);
        }
        if let Some(region) = result.region {
            self.raw.mut_store().set_region(region);
        }
        let applied = result.apply_state.applied_index;
        assert!(
            applied <= self.handed_index,
            "region {region_id} peer {peer_id}: applied {applied} beyond what was handed out ({})",
            self.handed_index
        );
        self.raw.mut_store().on_applied(result.apply_state);
        if applied > self.raw.raft.raft_log.applied {
            self.raw.advance_apply_to(applied);
        }
    }
}
