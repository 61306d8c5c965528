//! The Ready loop, in two phases (for group commit) or in one call.
//!
//! Phase 1, [`RaftGroup::collect_ready`]: take raft-rs's Ready and write what it asks to persist
//! into the caller's batches: the snapshot (kv batch: data, apply/region state; raft batch: log
//! reset), new entries and the hard state (raft batch). Messages a leader may send before its
//! own log is durable come back right away.
//!
//! Between the phases the caller writes the kv batch, then the raft batch, syncing when
//! [`CollectedReady::must_sync`] says so. A store writes many groups' batches with one fsync.
//!
//! Phase 2, [`RaftGroup::on_persisted`]: tell raft-rs the Ready is durable and get back what
//! may only happen after that: messages that acknowledge the new log (votes, append
//! responses), committed entries with their proposals for the applier, read states.

use raft::eraftpb::Message;
use raft::{ReadState, Ready, StateRole};

use super::apply::{Applier, ApplyTask};
use super::{ProposalCallback, RaftGroup};
use crate::engine::{KvEngine, RocksWriteBatch, WriteBatch};
use crate::errors::Result;
use crate::snap::SnapKind;
use crate::storage::AppliedSnapshot;

/// Where a group's outgoing messages go.
pub trait Transport {
    /// Sends `msg` to peer `msg.to` (best effort: raft-rs retries what gets lost).
    fn send(&mut self, msg: Message);
}

impl<F: FnMut(Message)> Transport for F {
    fn send(&mut self, msg: Message) {
        self(msg)
    }
}

/// Phase 1's output: raft-rs's Ready, held until the batches are durable.
pub struct CollectedReady {
    ready: Ready,
    /// Messages that may be sent before the batches are written (a leader's appends and
    /// heartbeats: raft-rs lets the leader replicate while it persists its own copy).
    pub messages: Vec<Message>,
    /// Whether the batches must be synced before phase 2 (new entries, a new term or vote, a
    /// snapshot). A commit-index-only Ready need not be.
    pub must_sync: bool,
    /// A snapshot was applied into the kv batch: it must be written before the raft batch.
    pub snapshot: Option<AppliedSnapshot>,
}

impl std::fmt::Debug for CollectedReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollectedReady")
            .field("number", &self.ready.number())
            .field("messages", &self.messages.len())
            .field("must_sync", &self.must_sync)
            .field("snapshot", &self.snapshot)
            .finish()
    }
}

/// A change of role or of known leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleChange {
    /// The new role.
    pub role: StateRole,
    /// The leader now known (`None` while there is none).
    pub leader_id: Option<u64>,
}

/// Phase 2's output.
pub struct PersistedReady<C> {
    /// Messages to send now.
    pub messages: Vec<Message>,
    /// Work for the applier: a snapshot to adopt and/or committed entries with their proposals.
    pub apply: Option<ApplyTask<C>>,
    /// Results of `read_index` requests.
    pub read_states: Vec<ReadState>,
    /// Set when the role or the known leader changed.
    pub role_change: Option<RoleChange>,
}

impl<C: ProposalCallback> RaftGroup<C> {
    /// Whether there is anything for the Ready loop (raft-rs output, or state to persist).
    pub fn has_ready(&self) -> bool {
        !self.ready_in_flight && (self.raw.has_ready() || self.storage().needs_persist())
    }

    /// Phase 1 (see the module docs). Returns `None` when there is nothing to do, or when a
    /// received snapshot waits for the applier to finish the entries already handed to it
    /// (the snapshot replaces the same data; retry after [`RaftGroup::on_applied`]).
    ///
    /// Writing the batches is the caller's job; failing to, and then calling
    /// [`RaftGroup::on_persisted`] anyway, breaks Raft's safety.
    pub fn collect_ready(
        &mut self,
        kv_wb: &mut RocksWriteBatch,
        raft_wb: &mut RocksWriteBatch,
    ) -> Option<CollectedReady> {
        self.assert_idle("collect_ready");
        if !self.has_ready() {
            return None;
        }
        let snapshot_pending = self.raw.snap().is_some_and(|s| !s.is_empty());
        if snapshot_pending && self.storage().applied_index() < self.handed_index {
            return None;
        }
        let (region_id, peer_id) = (self.region_id, self.peer_id);
        let mut rd = self.raw.ready();
        let messages = rd.take_messages();
        let store = self.raw.mut_store();
        if let Some(hs) = rd.hs() {
            store.set_hard_state(hs);
        }
        let snapshot = if rd.snapshot().is_empty() {
            None
        } else {
            // The file was verified when it was received (`step` refuses a MsgSnapshot
            // without it); failing now means the local disk lost or corrupted it, and raft-rs
            // cannot take a Ready back.
            Some(
                store
                    .apply_snapshot(rd.snapshot(), kv_wb)
                    .unwrap_or_else(|e| {
                        panic!("region {region_id} peer {peer_id}: cannot apply snapshot: {e}")
                    }),
            )
        };
        store
            .append(rd.entries(), raft_wb)
            .and_then(|()| store.persist_state(raft_wb))
            .unwrap_or_else(|e| {
                panic!("region {region_id} peer {peer_id}: cannot stage raft writes: {e}")
            });
        let must_sync = rd.must_sync() || snapshot.is_some();
        self.ready_in_flight = true;
        Some(CollectedReady {
            ready: rd,
            messages,
            must_sync,
            snapshot,
        })
    }

    /// Between the phases: the committed entries of `collected` that may be applied **before**
    /// its batches are written. raft-rs only hands out committed entries that are already
    /// durable in this peer's log (`min(committed, persisted)`), so applying them need not wait
    /// for the fsync of the new entries this Ready appends — which would otherwise add a whole
    /// fsync to every write's latency. Not for a Ready carrying a snapshot (the snapshot must be
    /// adopted first; [`RaftGroup::on_persisted`] hands both out together).
    ///
    /// The task must reach the applier before the one [`RaftGroup::on_persisted`] returns for
    /// the same Ready (entries are handed out in log order).
    pub fn take_durable_committed(
        &mut self,
        collected: &mut CollectedReady,
    ) -> Option<ApplyTask<C>> {
        assert!(
            self.ready_in_flight,
            "region {} peer {}: take_durable_committed without collect_ready",
            self.region_id, self.peer_id
        );
        if collected.snapshot.is_some() || !collected.ready.snapshot().is_empty() {
            return None;
        }
        let committed = collected.ready.take_committed_entries();
        let last = committed.last()?.index;
        let proposals = self.proposals.take_committed(&committed);
        self.handed_index = last;
        Some(ApplyTask {
            region_id: self.region_id,
            peer_id: self.peer_id,
            snapshot: None,
            entries: committed,
            proposals,
        })
    }

    /// Phase 2 (see the module docs): the batches of `collected` are durable.
    pub fn on_persisted(&mut self, collected: CollectedReady) -> PersistedReady<C> {
        assert!(
            self.ready_in_flight,
            "region {} peer {}: on_persisted without collect_ready",
            self.region_id, self.peer_id
        );
        let CollectedReady {
            ready: mut rd,
            snapshot,
            ..
        } = collected;
        let mut messages = rd.take_persisted_messages();
        let mut committed = rd.take_committed_entries();
        let read_states = rd.take_read_states();
        let role_change = rd.ss().map(|ss| RoleChange {
            role: ss.raft_state,
            leader_id: Some(ss.leader_id).filter(|id| *id != raft::INVALID_ID),
        });
        let mut light = self.raw.advance_append(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit_index(commit);
        }
        messages.extend(light.take_messages());
        committed.extend(light.take_committed_entries());

        if let Some(s) = &snapshot {
            // The snapshot is applied: raft-rs must not hand out anything at or below it.
            let index = s.apply_state.applied_index;
            self.raw.advance_apply_to(index);
            self.proposals.fail_up_to(index);
            self.handed_index = index;
            if let Err(e) = self.storage().snap_mgr().delete(&s.key, SnapKind::Received) {
                tracing::warn!(region_id = self.region_id, error = %e, "cannot delete applied snapshot file");
            }
        }
        let proposals = self.proposals.take_committed(&committed);
        if let Some(last) = committed.last() {
            self.handed_index = last.index;
        }
        let apply = (snapshot.is_some() || !committed.is_empty()).then(|| ApplyTask {
            region_id: self.region_id,
            peer_id: self.peer_id,
            snapshot,
            entries: committed,
            proposals,
        });
        self.ready_in_flight = false;
        PersistedReady {
            messages,
            apply,
            read_states,
            role_change,
        }
    }

    /// Handles one Ready end to end for a group that owns its engines alone. Order:
    ///
    /// 1. **persist**: collect the Ready into fresh batches and write them, kv first, then raft,
    ///    synced when raft-rs requires it;
    /// 2. **send**: every message, the early ones and those that needed the log durable;
    /// 3. **apply**: hand the snapshot and committed entries (with their proposals) to
    ///    `applier`, which persists data and `RaftApplyState` in one kv batch;
    /// 4. **advance**: tell raft-rs the log is durable (inside step 2's bookkeeping) and what
    ///    is now applied (conf changes included).
    ///
    /// Returns whether there was a Ready. A write failure panics (the Ready cannot be taken
    /// back); an applier error is returned, and the group must then be dropped (the entries it
    /// was given will not be handed out again).
    pub fn handle_ready<T: Transport, A: Applier<C>>(
        &mut self,
        transport: &mut T,
        applier: &mut A,
    ) -> Result<bool> {
        let engines = self.storage().engines().clone();
        let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
        let Some(mut collected) = self.collect_ready(&mut kv_wb, &mut raft_wb) else {
            return Ok(false);
        };
        let sync = collected.must_sync;
        for (engine, wb, name) in [
            (&engines.kv, &mut kv_wb, "kv"),
            (&engines.raft, &mut raft_wb, "raft"),
        ] {
            if !wb.is_empty() {
                engine.write(wb, sync).unwrap_or_else(|e| {
                    panic!(
                        "region {} peer {}: cannot write the {name} batch of a ready: {e}",
                        self.region_id, self.peer_id
                    )
                });
            }
        }
        let early = std::mem::take(&mut collected.messages);
        let persisted = self.on_persisted(collected);
        for msg in early.into_iter().chain(persisted.messages) {
            transport.send(msg);
        }
        if let Some(task) = persisted.apply {
            let result = applier.apply(task)?;
            self.on_applied(result);
        }
        Ok(true)
    }
}
