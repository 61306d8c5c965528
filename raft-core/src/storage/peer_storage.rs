//! `PeerStorage`: raft-rs's `Storage` over the raft engine (log, `RaftLocalState`) and the kv
//! engine (`RaftApplyState`, `RegionLocalState`), plus the writes of a Ready into caller batches.

use std::cell::{Cell, RefCell};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use proto::metapb::Region;
use proto::raft_serverpb::{PeerState, RaftApplyState, RaftLocalState, RaftTruncatedState};
use protobuf::Message as _;
use raft::eraftpb::{Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::entry_cache::{encoded_size, EntryCache};
use super::state::{self, is_initialized, truncated};
use crate::conf_change::conf_state_from_region;
use crate::convert::{IntoProto, TryIntoRaft};
use crate::engine::{Engines, Iterable, Mutable, Peekable, RocksWriteBatch, CF_DEFAULT, DATA_CFS};
use crate::errors::{Error, Result};
use crate::keys;
use crate::snap::{SnapGenerator, SnapKey, SnapManager};

/// Up to this many log entries are deleted one by one; larger ranges use a range delete.
const GC_POINT_DELETE_LIMIT: u64 = 1024;

/// What every peer of a store shares: the engines, the snapshot directory, the snapshot
/// generator, and the per-peer entry cache budget.
#[derive(Clone)]
pub struct StorageContext {
    /// The store's kv and raft engines.
    pub engines: Engines,
    /// The store's snapshot directory.
    pub snap_mgr: SnapManager,
    /// Runs snapshot generation off the Raft thread.
    pub snap_gen: Arc<dyn SnapGenerator>,
    /// Bytes of recent entries each peer keeps in memory.
    pub entry_cache_limit: usize,
}

/// The outcome of applying a snapshot, for the owner's applier (which must adopt this state
/// before applying any later entry).
#[derive(Debug, Clone, PartialEq)]
pub struct AppliedSnapshot {
    /// The snapshot applied.
    pub key: SnapKey,
    /// The region before the snapshot.
    pub prev_region: Region,
    /// The region the snapshot carried (now in `RegionLocalState`).
    pub region: Region,
    /// The apply state the snapshot set (applied and truncated at its index).
    pub apply_state: RaftApplyState,
}

pub(super) enum GenState {
    Idle,
    /// A task is out; its result arrives on the channel.
    Generating(Receiver<Snapshot>),
}

/// raft-rs's storage for one peer. See the crate docs for who writes what where.
pub struct PeerStorage {
    pub(super) ctx: StorageContext,
    pub(super) peer_id: u64,
    pub(super) region: Region,
    pub(super) raft_state: RaftLocalState,
    pub(super) last_term: u64,
    pub(super) apply_state: RaftApplyState,
    pub(super) cache: EntryCache,
    pub(super) gen_state: RefCell<GenState>,
    pub(super) gen_failures: Cell<u64>,
    /// Log indexes `[start, end)` to delete with the next raft-engine write (compacted or
    /// replaced by a snapshot).
    pub(super) pending_gc: Option<(u64, u64)>,
    /// The in-memory `RaftLocalState` is ahead of what was last handed to a batch.
    pub(super) raft_state_dirty: bool,
}

impl std::fmt::Debug for PeerStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerStorage")
            .field("region_id", &self.region.id)
            .field("peer_id", &self.peer_id)
            .field("raft_state", &self.raft_state)
            .field("apply_state", &self.apply_state)
            .finish()
    }
}

fn storage_error(e: Error) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl PeerStorage {
    /// Loads the storage of peer `peer_id` of `region` (from its `RegionLocalState`, or an
    /// uninitialized region with no peers for a peer created by a message) and repairs what a
    /// crash can leave behind:
    /// - a snapshot whose kv-engine half (data, apply/region state) became durable but whose
    ///   raft-engine half (log reset, `RaftLocalState`) did not is finished from the copy of the
    ///   raft state stored with the snapshot;
    /// - a commit index behind the applied index (the commit index is persisted lazily) is
    ///   raised to it.
    ///
    /// A missing state of an initialized region, or states that contradict each other, are
    /// corruption and panic.
    pub fn new(ctx: &StorageContext, region: Region, peer_id: u64) -> Result<PeerStorage> {
        let region_id = region.id;
        let engines = &ctx.engines;
        let initialized = is_initialized(&region);
        let mut raft_state = match state::load_raft_state(&engines.raft, region_id)? {
            Some(s) => s,
            None if initialized => panic!("region {region_id}: initialized but no raft state"),
            None => RaftLocalState::default(),
        };
        let apply_state = match state::load_apply_state(&engines.kv, region_id)? {
            Some(s) => s,
            None if initialized => panic!("region {region_id}: initialized but no apply state"),
            None => RaftApplyState::default(),
        };
        let mut pending_gc = None;
        let mut dirty = false;

        let snap_raft_state: Option<RaftLocalState> = engines
            .kv
            .get_msg_cf(CF_DEFAULT, &keys::snapshot_raft_state_key(region_id))?;
        if let Some(snap_state) = snap_raft_state {
            let s = snap_state.last_index;
            // After the raft half of that snapshot's apply, no entry at or below its index is
            // left and the log never ends before it. Either seen means the half is missing.
            let mut stale = false;
            engines.raft.scan_cf(
                CF_DEFAULT,
                &keys::raft_log_key(region_id, 0),
                &keys::raft_log_key(region_id, s + 1),
                false,
                |_, _| {
                    stale = true;
                    Ok(false)
                },
            )?;
            if stale || raft_state.last_index < s {
                tracing::warn!(
                    region_id,
                    peer_id,
                    index = s,
                    "finishing an interrupted snapshot apply"
                );
                pending_gc = Some((0, raft_state.last_index.max(s) + 1));
                raft_state = snap_state;
                dirty = true;
            }
        }

        let hs = raft_state.hard_state.get_or_insert_with(Default::default);
        if hs.commit < apply_state.applied_index {
            hs.commit = apply_state.applied_index;
            dirty = true;
        }
        let trunc = truncated(&apply_state);
        assert!(
            trunc.index <= apply_state.applied_index && apply_state.applied_index <= raft_state.last_index,
            "region {region_id} peer {peer_id}: inconsistent states: truncated {trunc:?}, applied {}, last index {}",
            apply_state.applied_index,
            raft_state.last_index
        );
        let last_term = if raft_state.last_index == trunc.index {
            trunc.term
        } else {
            let idx = raft_state.last_index;
            read_entry(&engines.raft, region_id, idx)?
                .unwrap_or_else(|| panic!("region {region_id}: last log entry {idx} is missing"))
                .term
        };
        tracing::info!(
            region_id,
            peer_id,
            term = raft_state.hard_state.as_ref().map_or(0, |h| h.term),
            index = raft_state.last_index,
            applied = apply_state.applied_index,
            "loaded peer storage"
        );
        Ok(PeerStorage {
            ctx: ctx.clone(),
            peer_id,
            region,
            raft_state,
            last_term,
            apply_state,
            cache: EntryCache::new(ctx.entry_cache_limit),
            gen_state: RefCell::new(GenState::Idle),
            gen_failures: Cell::new(0),
            pending_gc,
            raft_state_dirty: dirty,
        })
    }

    /// The region as of the last applied membership change or snapshot.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The region id.
    pub fn region_id(&self) -> u64 {
        self.region.id
    }

    /// This peer's id.
    pub fn peer_id(&self) -> u64 {
        self.peer_id
    }

    /// Whether the region has a range and members (an uninitialized peer waits for a snapshot).
    pub fn is_initialized(&self) -> bool {
        is_initialized(&self.region)
    }

    /// The store's engines.
    pub fn engines(&self) -> &Engines {
        &self.ctx.engines
    }

    /// The store's snapshot directory.
    pub fn snap_mgr(&self) -> &SnapManager {
        &self.ctx.snap_mgr
    }

    /// The raft state as of the last Ready (persisted, or in a batch about to be).
    pub fn raft_state(&self) -> &RaftLocalState {
        &self.raft_state
    }

    /// The apply state as last reported by the applier (durable in the kv engine).
    pub fn apply_state(&self) -> &RaftApplyState {
        &self.apply_state
    }

    /// The durable applied index.
    pub fn applied_index(&self) -> u64 {
        self.apply_state.applied_index
    }

    /// Index of the last compacted entry (its term is still known).
    pub fn truncated_index(&self) -> u64 {
        truncated(&self.apply_state).index
    }

    /// Term of the last compacted entry.
    pub fn truncated_term(&self) -> u64 {
        truncated(&self.apply_state).term
    }

    /// Index of the first entry still in the log.
    pub fn first_index(&self) -> u64 {
        self.truncated_index() + 1
    }

    /// Index of the last entry in the log.
    pub fn last_index(&self) -> u64 {
        self.raft_state.last_index
    }

    /// Term of the last entry in the log.
    pub fn last_term(&self) -> u64 {
        self.last_term
    }

    /// Whether a snapshot is being generated for this peer.
    pub fn is_generating_snapshot(&self) -> bool {
        matches!(*self.gen_state.borrow(), GenState::Generating(_))
    }

    /// Number of entries currently cached in memory.
    pub fn cached_entries(&self) -> usize {
        self.cache.len()
    }

    /// The truncated state compacting the log up to and including `compact_index` produces,
    /// for the applier to record in `RaftApplyState` (with the applied data) and report back
    /// through `RaftGroup::on_applied`, which then deletes the entries.
    ///
    /// Invariants enforced:
    /// - never past the applied index: an entry still to be applied (possibly again, after a
    ///   restart) must stay in the log;
    /// - strictly after the current truncated index: compaction only moves forward;
    /// - the term of `compact_index` is taken from the log before it goes, so `term(index)`
    ///   keeps answering for the new truncated index (raft-rs needs it to match appends).
    pub fn compact_log_state(&self, compact_index: u64) -> Result<RaftTruncatedState> {
        let invalid = |reason: String| Error::InvalidCompact {
            region_id: self.region.id,
            index: compact_index,
            reason,
        };
        if compact_index <= self.truncated_index() {
            return Err(invalid(format!(
                "already compacted to {}",
                self.truncated_index()
            )));
        }
        if compact_index > self.applied_index() {
            return Err(invalid(format!(
                "past the applied index {}",
                self.applied_index()
            )));
        }
        let term = raft::Storage::term(self, compact_index).map_err(Error::Raft)?;
        Ok(RaftTruncatedState {
            index: compact_index,
            term,
        })
    }

    // ---- writes of the Ready loop (driven by `RaftGroup`) ----

    /// Adds `entries` (from a Ready) to `raft_wb`, replacing any conflicting suffix of the log.
    pub(crate) fn append(
        &mut self,
        entries: &[Entry],
        raft_wb: &mut RocksWriteBatch,
    ) -> Result<()> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        let region_id = self.region.id;
        assert!(
            first.index > self.truncated_index() && first.index <= self.last_index() + 1,
            "region {region_id}: append of [{}, {}] to a log of [{}, {}]",
            first.index,
            last.index,
            self.first_index(),
            self.last_index()
        );
        for e in entries {
            raft_wb.put_cf(
                CF_DEFAULT,
                &keys::raft_log_key(region_id, e.index),
                &e.write_to_bytes()?,
            )?;
        }
        // A shorter replacement leaves an old tail that must not come back after a restart.
        for idx in last.index + 1..=self.raft_state.last_index {
            raft_wb.delete_cf(CF_DEFAULT, &keys::raft_log_key(region_id, idx))?;
        }
        self.cache.append(entries);
        self.raft_state.last_index = last.index;
        self.last_term = last.term;
        self.raft_state_dirty = true;
        Ok(())
    }

    /// Records the hard state of a Ready.
    pub(crate) fn set_hard_state(&mut self, hs: &HardState) {
        self.raft_state.hard_state = Some(hs.clone().into_proto());
        self.raft_state_dirty = true;
    }

    /// Records a commit index learned after persistence (raft-rs's `LightReady`). It is written
    /// with the next batch; losing it is harmless because a restart raises the commit index to
    /// the durable applied index, and raft-rs re-learns the rest from the leader.
    pub(crate) fn set_commit_index(&mut self, commit: u64) {
        let hs = self
            .raft_state
            .hard_state
            .get_or_insert_with(Default::default);
        if commit > hs.commit {
            hs.commit = commit;
            self.raft_state_dirty = true;
        }
    }

    /// Whether state changes wait for a raft-engine write.
    pub(crate) fn needs_persist(&self) -> bool {
        self.raft_state_dirty || self.pending_gc.is_some()
    }

    /// Adds the pending state changes (raft state, log deletions) to `raft_wb`.
    pub(crate) fn persist_state(&mut self, raft_wb: &mut RocksWriteBatch) -> Result<()> {
        let region_id = self.region.id;
        if let Some((start, end)) = self.pending_gc.take() {
            if start > 0 && end - start <= GC_POINT_DELETE_LIMIT {
                for idx in start..end {
                    raft_wb.delete_cf(CF_DEFAULT, &keys::raft_log_key(region_id, idx))?;
                }
            } else {
                raft_wb.delete_range_cf(
                    CF_DEFAULT,
                    &keys::raft_log_key(region_id, start),
                    &keys::raft_log_key(region_id, end),
                )?;
            }
        }
        if self.raft_state_dirty {
            raft_wb.put_msg_cf(
                CF_DEFAULT,
                &keys::raft_state_key(region_id),
                &self.raft_state,
            )?;
            self.raft_state_dirty = false;
        }
        Ok(())
    }

    pub(super) fn schedule_gc(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        self.pending_gc = Some(match self.pending_gc {
            Some((s, e)) => (s.min(start), e.max(end)),
            None => (start, end),
        });
    }

    /// Adopts the apply state the applier made durable: the applied index moves forward and a
    /// newer truncated state drops the compacted entries (from the cache now, from the engine
    /// with the next raft-engine write).
    pub(crate) fn on_applied(&mut self, apply_state: RaftApplyState) {
        let region_id = self.region.id;
        assert!(
            apply_state.applied_index >= self.apply_state.applied_index
                && apply_state.applied_index <= self.last_index(),
            "region {region_id}: applied index moved from {} to {} (last index {})",
            self.apply_state.applied_index,
            apply_state.applied_index,
            self.last_index()
        );
        let (old, new) = (truncated(&self.apply_state), truncated(&apply_state));
        assert!(
            new.index >= old.index && new.index <= apply_state.applied_index,
            "region {region_id}: truncated state moved from {old:?} to {new:?} (applied {})",
            apply_state.applied_index
        );
        if new.index > old.index {
            self.cache.compact_to(new.index + 1);
            self.schedule_gc(old.index + 1, new.index + 1);
            tracing::debug!(
                region_id,
                peer_id = self.peer_id,
                index = new.index,
                term = new.term,
                "compacted raft log"
            );
        }
        self.apply_state = apply_state;
    }

    /// Replaces the region (after the applier persisted a membership change).
    pub(crate) fn set_region(&mut self, region: Region) {
        self.region = region;
    }

    /// Adds the deletion of every raft-owned record of this peer (log, raft state, apply state,
    /// snapshot raft state) to the batches, and a `Tombstone` region state so stale messages do
    /// not recreate it. With `clear_data`, the region's data range goes too.
    pub(crate) fn clear(
        &mut self,
        kv_wb: &mut RocksWriteBatch,
        raft_wb: &mut RocksWriteBatch,
        clear_data: bool,
    ) -> Result<()> {
        let region_id = self.region.id;
        raft_wb.delete_range_cf(
            CF_DEFAULT,
            &keys::raft_log_key(region_id, 0),
            &keys::raft_log_key(
                region_id,
                self.last_index().max(self.pending_gc.map_or(0, |g| g.1)) + 1,
            ),
        )?;
        raft_wb.delete_cf(CF_DEFAULT, &keys::raft_state_key(region_id))?;
        kv_wb.delete_cf(CF_DEFAULT, &keys::apply_state_key(region_id))?;
        kv_wb.delete_cf(CF_DEFAULT, &keys::snapshot_raft_state_key(region_id))?;
        state::write_peer_state(kv_wb, &self.region, PeerState::Tombstone)?;
        if clear_data && self.is_initialized() {
            let start = keys::data_key(&self.region.start_key);
            let end = keys::data_end_key(&self.region.end_key);
            for cf in DATA_CFS {
                kv_wb.delete_range_cf(cf, &start, &end)?;
            }
        }
        self.pending_gc = None;
        self.raft_state_dirty = false;
        self.cache.clear();
        self.cancel_generating();
        Ok(())
    }

    fn check_range(&self, low: u64, high: u64) -> raft::Result<()> {
        if low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if low <= self.truncated_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last_index() + 1,
            "region {}: entries [{low}, {high}) requested beyond last index {}",
            self.region.id,
            self.last_index()
        );
        Ok(())
    }

    /// Reads entries `[low, high)` from the engine into `out` within `budget`; returns whether
    /// the budget stopped it.
    fn fetch_from_engine(
        &self,
        low: u64,
        high: u64,
        out: &mut Vec<Entry>,
        budget: &mut u64,
    ) -> raft::Result<bool> {
        let region_id = self.region.id;
        let mut next = low;
        let mut stopped = false;
        let mut decode_err = None;
        self.ctx
            .engines
            .raft
            .scan_cf(
                CF_DEFAULT,
                &keys::raft_log_key(region_id, low),
                &keys::raft_log_key(region_id, high),
                true,
                |_, v| {
                    let e = match Entry::parse_from_bytes(v) {
                        Ok(e) => e,
                        Err(err) => {
                            decode_err = Some(err);
                            return Ok(false);
                        }
                    };
                    if e.index != next {
                        return Ok(false);
                    }
                    let size = encoded_size(&e);
                    if !out.is_empty() && size > *budget {
                        stopped = true;
                        return Ok(false);
                    }
                    *budget = budget.saturating_sub(size);
                    out.push(e);
                    next += 1;
                    Ok(true)
                },
            )
            .map_err(storage_error)?;
        if let Some(err) = decode_err {
            return Err(storage_error(err.into()));
        }
        if !stopped && next != high {
            tracing::error!(
                region_id,
                peer_id = self.peer_id,
                index = next,
                "raft log entry missing"
            );
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(stopped)
    }
}

fn read_entry(raft: &impl Peekable, region_id: u64, idx: u64) -> Result<Option<Entry>> {
    match raft.get_value_cf(CF_DEFAULT, &keys::raft_log_key(region_id, idx))? {
        Some(v) => Ok(Some(Entry::parse_from_bytes(&v)?)),
        None => Ok(None),
    }
}

impl raft::Storage for PeerStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let hs = self
            .raft_state
            .hard_state
            .unwrap_or_default()
            .try_into_raft()
            .map_err(storage_error)?;
        Ok(RaftState::new(hs, conf_state_from_region(&self.region)))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.check_range(low, high)?;
        let mut out = Vec::with_capacity(((high - low) as usize).min(1024));
        if low == high {
            return Ok(out);
        }
        let mut budget = max_size.into().unwrap_or(raft::NO_LIMIT);
        let cache_first = self.cache.first_index().unwrap_or(u64::MAX);
        if low < cache_first
            && self.fetch_from_engine(low, high.min(cache_first), &mut out, &mut budget)?
        {
            return Ok(out);
        }
        if cache_first < high {
            let from = low.max(cache_first);
            if self.cache.fetch(from, high, &mut out, &mut budget) {
                return Ok(out);
            }
        }
        if out.len() as u64 != high - low {
            tracing::error!(
                region_id = self.region.id,
                peer_id = self.peer_id,
                low,
                high,
                got = out.len(),
                "raft log entries missing"
            );
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let trunc = truncated(&self.apply_state);
        if idx == trunc.index {
            return Ok(trunc.term);
        }
        if idx < trunc.index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        if idx == self.last_index() {
            return Ok(self.last_term);
        }
        if let Some(term) = self.cache.term(idx) {
            return Ok(term);
        }
        match read_entry(&self.ctx.engines.raft, self.region.id, idx).map_err(storage_error)? {
            Some(e) => Ok(e.term),
            None => {
                tracing::error!(
                    region_id = self.region.id,
                    peer_id = self.peer_id,
                    index = idx,
                    "raft log entry missing"
                );
                Err(raft::Error::Store(StorageError::Unavailable))
            }
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(PeerStorage::first_index(self))
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(PeerStorage::last_index(self))
    }

    /// Generated off the Raft thread; see `storage/snapshot.rs`.
    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.snapshot_for(request_index, to)
    }
}
