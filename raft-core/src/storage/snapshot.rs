//! Snapshots of one peer: requesting generation (leader side) and applying a received one
//! (follower side).

use std::sync::mpsc::{self, TryRecvError};

use proto::raft_serverpb::{PeerState, RaftApplyState, RaftTruncatedState};
use raft::eraftpb::Snapshot;
use raft::StorageError;

use super::peer_storage::{GenState, PeerStorage};
use super::state::{self, truncated};
use super::AppliedSnapshot;
use crate::conf_change::conf_state_from_region;
use crate::engine::{KvEngine, Mutable, RocksWriteBatch, CF_DEFAULT};
use crate::errors::{Error, Result};
use crate::keys;
use crate::snap::{apply_snapshot_data, decode_descriptor, GenSnapTask, SnapKey, SnapKind};

impl PeerStorage {
    /// Applies the snapshot of a Ready: the region's data and the new apply, region and
    /// snapshot-raft states go to `kv_wb`; the old log's deletion and the new raft state go to
    /// `raft_wb` (with the next `persist_state`). `kv_wb` must be written before `raft_wb`;
    /// the copy of the raft state in `kv_wb` lets a restart finish the apply if only `kv_wb`
    /// made it to disk. Call after `set_hard_state` of the same Ready.
    pub(crate) fn apply_snapshot(
        &mut self,
        snap: &Snapshot,
        kv_wb: &mut RocksWriteBatch,
    ) -> Result<AppliedSnapshot> {
        let region_id = self.region.id;
        let (index, term) = (snap.get_metadata().index, snap.get_metadata().term);
        let desc = decode_descriptor(snap.get_data())?;
        let region = desc.region.clone().expect("descriptor validated");
        if region.id != region_id {
            return Err(Error::CorruptedSnapshot(format!(
                "snapshot of region {} applied to region {region_id}",
                region.id
            )));
        }
        let key = SnapKey::new(region_id, term, index);
        let records = apply_snapshot_data(&self.ctx.snap_mgr, &key, &desc, kv_wb)?;

        // From index 0, not the first index: compaction deletions lost in a crash may have left
        // older entries, and restart recovery relies on no entry at or below `index` surviving.
        if self.raft_state.last_index > 0 {
            self.schedule_gc(0, self.last_index() + 1);
        }
        self.raft_state.last_index = index;
        self.last_term = term;
        let hs = self
            .raft_state
            .hard_state
            .get_or_insert_with(Default::default);
        hs.commit = hs.commit.max(index);
        self.raft_state_dirty = true;
        self.apply_state = RaftApplyState {
            applied_index: index,
            truncated_state: Some(RaftTruncatedState { index, term }),
            last_commit_index: 0,
            commit_index: index,
            commit_term: term,
        };
        kv_wb.put_msg_cf(
            CF_DEFAULT,
            &keys::apply_state_key(region_id),
            &self.apply_state,
        )?;
        state::write_peer_state(kv_wb, &region, PeerState::Normal)?;
        kv_wb.put_msg_cf(
            CF_DEFAULT,
            &keys::snapshot_raft_state_key(region_id),
            &self.raft_state,
        )?;
        self.cache.clear();
        self.cancel_generating();
        let prev_region = std::mem::replace(&mut self.region, region.clone());
        tracing::info!(
            region_id,
            peer_id = self.peer_id,
            index,
            term,
            records,
            "applied snapshot"
        );
        Ok(AppliedSnapshot {
            key,
            prev_region,
            region,
            apply_state: self.apply_state,
        })
    }

    pub(super) fn cancel_generating(&self) {
        // Dropping the receiver tells the generator nobody wants the result.
        *self.gen_state.borrow_mut() = GenState::Idle;
    }

    fn start_generating(&self, to: u64) -> Result<()> {
        let region_id = self.region.id;
        let kv_snap = self.ctx.engines.kv.snapshot();
        // Data, apply state and region state are written together by the applier, so this one
        // RocksDB snapshot sees them consistently.
        let apply_state = state::load_apply_state(&kv_snap, region_id)?
            .ok_or_else(|| Error::Other(format!("region {region_id} has no apply state")))?;
        let region = state::load_region_state(&kv_snap, region_id)?
            .and_then(|s| s.region)
            .ok_or_else(|| Error::Other(format!("region {region_id} has no region state")))?;
        let index = apply_state.applied_index;
        let trunc = truncated(&apply_state);
        let term = if index == trunc.index {
            trunc.term
        } else {
            raft::Storage::term(self, index)?
        };
        let (tx, rx) = mpsc::sync_channel(1);
        let task = GenSnapTask {
            region_id,
            to_peer: to,
            index,
            term,
            conf_state: conf_state_from_region(&region),
            region,
            kv_snapshot: kv_snap,
            notifier: tx,
        };
        *self.gen_state.borrow_mut() = GenState::Generating(rx);
        tracing::info!(
            region_id,
            peer_id = self.peer_id,
            index,
            term,
            to_peer = to,
            "requesting snapshot generation"
        );
        self.ctx.snap_gen.schedule(task);
        Ok(())
    }

    /// Returns a generated snapshot once its generator reported back (and it is still recent
    /// enough: at or after `request_index` and the truncated index); otherwise starts a
    /// generation and answers `SnapshotTemporarilyUnavailable`, which makes raft-rs retry on a
    /// later heartbeat. Never returns another error: raft-rs treats those as fatal.
    pub(super) fn snapshot_for(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let region_id = self.region.id;
        let generating = std::mem::replace(&mut *self.gen_state.borrow_mut(), GenState::Idle);
        if let GenState::Generating(rx) = generating {
            match rx.try_recv() {
                Ok(snap) => {
                    let index = snap.get_metadata().index;
                    if index >= request_index && index >= self.truncated_index() {
                        self.gen_failures.set(0);
                        return Ok(snap);
                    }
                    tracing::info!(
                        region_id,
                        peer_id = self.peer_id,
                        index,
                        request_index,
                        "generated snapshot is stale, regenerating"
                    );
                    let key = SnapKey::from_snapshot(region_id, &snap);
                    if let Err(e) = self.ctx.snap_mgr.delete(&key, SnapKind::Generated) {
                        tracing::warn!(region_id, error = %e, "cannot delete stale snapshot");
                    }
                }
                Err(TryRecvError::Empty) => {
                    *self.gen_state.borrow_mut() = GenState::Generating(rx);
                    return Err(raft::Error::Store(
                        StorageError::SnapshotTemporarilyUnavailable,
                    ));
                }
                Err(TryRecvError::Disconnected) => {
                    self.gen_failures.set(self.gen_failures.get() + 1);
                    tracing::warn!(
                        region_id,
                        peer_id = self.peer_id,
                        failures = self.gen_failures.get(),
                        "snapshot generation failed, retrying"
                    );
                }
            }
        }
        if let Err(e) = self.start_generating(to) {
            tracing::warn!(region_id, peer_id = self.peer_id, error = %e, "cannot start snapshot generation");
        }
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    }
}
