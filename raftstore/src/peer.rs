//! `Peer`: the state of this store's replica of one region, independent of how it is scheduled.
//!
//! What a peer does lives in `operation/` (one module per feature, each an `impl Peer` block);
//! `fsm/peer.rs` only dispatches messages to it.

use std::collections::HashMap;

use proto::metapb;
use proto::raft_cmdpb::RaftCmdRequest;
use raft_core::config::RaftConfig;
use raft_core::storage::StorageContext;
use raft_core::{CollectedReady, PeerStorage, ProposalCallback, RaftGroup};

use crate::errors::{Error, Result};
use crate::msg::{Callback, CmdResponse};
use crate::operation::lease::Lease;
use crate::operation::read::ReadQueue;
use crate::status::StatusSlot;

/// How a Raft proposal is answered: the callbacks of every client command merged into its
/// entry, each with the number of requests it contributed (to split the responses back).
pub struct ProposalCb {
    cbs: Vec<(Callback, usize)>,
}

impl ProposalCb {
    /// One command's callback.
    pub fn new(cb: Callback, requests: usize) -> Self {
        ProposalCb {
            cbs: vec![(cb, requests)],
        }
    }

    /// Adds a merged command's callback.
    pub fn push(&mut self, cb: Callback, requests: usize) {
        self.cbs.push((cb, requests));
    }

    /// Number of client commands answered by this proposal.
    pub fn commands(&self) -> usize {
        self.cbs.len()
    }

    /// Answers every command: an error response goes to all of them; otherwise each gets its
    /// own slice of `resp.responses`, and the admin response goes to the single admin caller.
    pub fn done(self, mut resp: proto::raft_cmdpb::RaftCmdResponse) {
        let failed = resp.header.as_ref().is_some_and(|h| h.error.is_some());
        if failed || self.cbs.len() == 1 {
            let n = self.cbs.len();
            for (i, (cb, _)) in self.cbs.into_iter().enumerate() {
                let r = if i + 1 == n {
                    std::mem::take(&mut resp)
                } else {
                    resp.clone()
                };
                cb.done(CmdResponse {
                    response: r,
                    snapshot: None,
                });
            }
            return;
        }
        let mut responses = std::mem::take(&mut resp.responses).into_iter();
        for (cb, n) in self.cbs {
            let mut r = proto::raft_cmdpb::RaftCmdResponse {
                header: resp.header.clone(),
                ..Default::default()
            };
            r.responses.extend(responses.by_ref().take(n));
            cb.done(CmdResponse {
                response: r,
                snapshot: None,
            });
        }
    }

    /// Answers every command with `err`.
    pub fn fail_with(self, err: Error, term: u64) {
        self.done(crate::cmd_resp::err_resp(err, term));
    }
}

impl ProposalCallback for ProposalCb {
    fn fail(self, err: raft_core::Error) {
        self.fail_with(err.into(), 0);
    }
}

impl std::fmt::Debug for ProposalCb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ProposalCb({} commands)", self.cbs.len())
    }
}

/// A removed leader waiting for the remaining voters to learn its removal committed (see
/// `operation/conf_change.rs`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RemoveWait {
    /// Index of the removal entry.
    pub(crate) index: u64,
    /// Ticks before it gives up waiting (`u64::MAX`: never).
    pub(crate) ticks_left: u64,
}

/// The leader's view of its region's size and of splits in flight (see `operation/split.rs`).
#[derive(Debug, Default)]
pub(crate) struct SplitState {
    /// Bytes written to the region since the last size check was scheduled.
    pub(crate) size_diff: u64,
    /// Approximate size and keys from the last check (reported in region heartbeats).
    pub(crate) approximate_size: Option<u64>,
    pub(crate) approximate_keys: Option<u64>,
    /// Tick at which a check was scheduled whose result has not come back.
    pub(crate) checking_since: Option<u64>,
    /// Tick at which split keys went to the scheduler for ids; no new split is started for
    /// the same epoch until it applies or times out.
    pub(crate) asked_since: Option<u64>,
}

/// Write commands accepted this round, merged into one entry at the end of it.
pub(crate) struct PendingWrite {
    pub(crate) request: RaftCmdRequest,
    pub(crate) cb: ProposalCb,
    pub(crate) size: u64,
}

/// This store's replica of one region.
pub struct Peer {
    pub(crate) region_id: u64,
    /// This peer (id and store).
    pub(crate) meta: metapb::Peer,
    group: Option<RaftGroup<ProposalCb>>,
    /// Peers of the region (and peers seen in messages), to address messages and leader hints.
    pub(crate) peer_cache: HashMap<u64, metapb::Peer>,
    pub(crate) pending_write: Option<PendingWrite>,
    pub(crate) reads: ReadQueue,
    /// Phase-1 output held until the round's batches are written.
    pub(crate) collected: Option<CollectedReady>,
    /// `collect_ready` declined although raft-rs has a Ready (a snapshot waits for the
    /// applier): no point in polling again before the next apply result.
    pub(crate) ready_blocked: bool,
    pub(crate) status: StatusSlot,
    /// Index of the last `CompactLog` proposed and not yet applied (0: none).
    pub(crate) compact_proposed: u64,
    /// Approximate bytes of log entries applied since the last compaction.
    pub(crate) log_bytes_since_compact: u64,
    /// Destruction started: waiting for the apply FSM to stop.
    pub(crate) pending_destroy: bool,
    /// A region heartbeat should be sent at the end of this round.
    pub(crate) heartbeat_due: bool,
    /// Bytes and keys written since the last region heartbeat.
    pub(crate) written_bytes: u64,
    pub(crate) written_keys: u64,
    /// (is_leader, leader id, term, commit, applied) as last published, to skip no-op updates.
    pub(crate) last_published: Option<(bool, Option<u64>, u64, u64, u64)>,
    /// This peer applied its own removal: it serves nothing and is about to be destroyed.
    pub(crate) pending_remove: bool,
    /// A removed leader's wait before destroying itself.
    pub(crate) remove_wait: Option<RemoveWait>,
    /// The region to record in the tombstone when destroyed, if newer than the peer's own
    /// (the epoch of the member that told it it was removed).
    pub(crate) tombstone_region: Option<proto::metapb::Region>,
    /// The apply FSM's incarnation (see `PeerMsg::ApplyDestroyed`).
    pub(crate) apply_incarnation: u64,
    /// Raft ticks since start (a logical clock for the timers below).
    pub(crate) ticks: u64,
    /// Ticks since a leader was last heard from (or this peer led).
    pub(crate) leader_missing_ticks: u64,
    /// Size checks and splits.
    pub(crate) split: SplitState,
    /// Campaign right after the first round (a split created this peer next to its parent's
    /// leader).
    pub(crate) campaign_on_start: bool,
    /// The leader lease (see `operation/lease.rs`).
    pub(crate) lease: Lease,
    /// Index of the last split this leader proposed (no lease reads until it is applied).
    pub(crate) split_proposed: u64,
    /// Raft ticks left during which vote requests are dropped (a peer loaded at store start,
    /// see [`Peer::should_drop_vote`]).
    pub(crate) vote_guard_ticks: u64,
}

impl Peer {
    /// Loads the peer `meta` of `region` from the engines in `ctx`.
    pub fn new(
        raft_cfg: &RaftConfig,
        ctx: &StorageContext,
        region: metapb::Region,
        meta: metapb::Peer,
        status: StatusSlot,
    ) -> Result<Peer> {
        let region_id = region.id;
        let storage = PeerStorage::new(ctx, region, meta.id)?;
        let group = RaftGroup::new(raft_cfg, storage)?;
        let mut peer = Peer {
            region_id,
            meta,
            group: Some(group),
            peer_cache: HashMap::new(),
            pending_write: None,
            reads: ReadQueue::default(),
            collected: None,
            ready_blocked: false,
            status,
            compact_proposed: 0,
            log_bytes_since_compact: 0,
            pending_destroy: false,
            heartbeat_due: false,
            written_bytes: 0,
            written_keys: 0,
            last_published: None,
            pending_remove: false,
            remove_wait: None,
            tombstone_region: None,
            apply_incarnation: 0,
            ticks: 0,
            leader_missing_ticks: 0,
            split: SplitState::default(),
            campaign_on_start: false,
            lease: Lease::new(std::time::Duration::ZERO),
            split_proposed: 0,
            vote_guard_ticks: 0,
        };
        peer.refresh_peer_cache();
        peer.publish_status();
        Ok(peer)
    }

    /// The raft group. Panics after the peer was destroyed (nothing may use it then).
    pub(crate) fn group(&self) -> &RaftGroup<ProposalCb> {
        self.group.as_ref().expect("peer used after destroy")
    }

    /// The raft group, mutably.
    pub(crate) fn group_mut(&mut self) -> &mut RaftGroup<ProposalCb> {
        self.group.as_mut().expect("peer used after destroy")
    }

    /// Takes the group out for destruction.
    pub(crate) fn take_group(&mut self) -> Option<RaftGroup<ProposalCb>> {
        self.group.take()
    }

    /// Whether the peer was destroyed.
    pub fn is_destroyed(&self) -> bool {
        self.group.is_none()
    }

    /// The region id.
    pub fn region_id(&self) -> u64 {
        self.region_id
    }

    /// This peer's id.
    pub fn peer_id(&self) -> u64 {
        self.meta.id
    }

    /// The region as of the last applied change.
    pub fn region(&self) -> &metapb::Region {
        self.group().storage().region()
    }

    /// Whether this peer leads the region.
    pub fn is_leader(&self) -> bool {
        self.group().is_leader()
    }

    /// Current term.
    pub fn term(&self) -> u64 {
        self.group().term()
    }

    /// The leader as a full peer (with its store), if known.
    pub fn leader(&self) -> Option<metapb::Peer> {
        let id = self.group().leader_id()?;
        self.peer_cache.get(&id).cloned().or(Some(metapb::Peer {
            id,
            ..Default::default()
        }))
    }

    /// The `NotLeader` error this peer answers with.
    pub(crate) fn not_leader(&self) -> Error {
        Error::NotLeader {
            region_id: self.region_id,
            leader: self.leader(),
        }
    }

    /// Rebuilds the peer cache from the region (keeping peers learned from messages).
    pub(crate) fn refresh_peer_cache(&mut self) {
        let peers = self.region().peers.clone();
        for p in peers {
            self.peer_cache.insert(p.id, p);
        }
    }

    /// Publishes the status snapshot if anything it shows changed (every round: kept cheap,
    /// no allocation unless the region changed).
    pub(crate) fn publish_status(&mut self) {
        let group = self.group();
        let raft = &group.raw_node().raft;
        let storage = group.storage();
        let key = (
            group.is_leader(),
            group.leader_id(),
            raft.term,
            raft.raft_log.committed,
            storage.applied_index(),
        );
        let (truncated, last) = (storage.truncated_index(), raft.raft_log.last_index());
        let region = storage.region();
        let mut slot = self.status.lock();
        if self.last_published == Some(key)
            && slot.truncated_index == truncated
            && slot.last_index == last
            && slot.region.region_epoch == region.region_epoch
            && slot.region.peers.len() == region.peers.len()
        {
            return;
        }
        if slot.region != *region {
            slot.region = region.clone();
        }
        slot.peer_id = self.meta.id;
        slot.is_leader = key.0;
        slot.leader_id = key.1;
        slot.term = key.2;
        slot.commit_index = key.3;
        slot.applied_index = key.4;
        slot.truncated_index = truncated;
        slot.last_index = last;
        drop(slot);
        self.last_published = Some(key);
    }
}
