//! Apply: committed entries → the kv engine, for many regions per write.
//!
//! Each region has an [`ApplyDelegate`] (its region, as apply sees it, and its apply state),
//! owned by that region's apply FSM. An apply round ([`ApplyContext`]) runs every queued task of
//! every FSM in its batch into **one** kv write batch, adding each region's `RaftApplyState`
//! (and region state, for membership and range changes) to the same batch, then:
//!
//! 1. writes the batch — unsynced, unless it carries an admin command that changes what the raft
//!    log may hold (`CompactLog`: the raft-engine deletion that follows must never outlive a
//!    lost apply state) or creates regions (`BatchSplit`), in which case synced;
//! 2. answers the callbacks of the applied proposals (so a client never sees a write that a
//!    later snapshot could miss);
//! 3. reports an [`ApplyRes`] per task to the region's peer, which only then tells raft-rs the
//!    new applied index.
//!
//! Ordering guarantees: entries of a region are applied in log order by one thread at a time
//! (one FSM, one owner). Apply never runs ahead of the raft log's fsync: raft-rs only hands out
//! entries that are committed *and* durable locally. After a crash the kv engine may have lost
//! unsynced applies; the durable `RaftApplyState` says where to resume, and the log still holds
//! everything after it.
//!
//! Admin commands that change the region live in their own modules: [`conf_change`]
//! (`ChangePeer`/`ChangePeerV2` entries) and [`split`] (`BatchSplit`). Both write the new
//! `RegionLocalState`s into the same batch as the apply state, and report an [`ExecResult`] so
//! the peer can act on the change (destroy itself, create the new regions' peers).

mod conf_change;
mod split;

pub(crate) use conf_change::command_peers;
pub(crate) use split::{split_requests, validate_split};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use prost::Message as _;
use proto::metapb::Region;
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, AdminResponse, CmdType, CompactLogResponse, DeleteRangeResponse,
    DeleteResponse, PutResponse, RaftCmdRequest, RaftCmdResponse, Response,
};
use proto::raft_serverpb::{RaftApplyState, RaftTruncatedState};
use raft::eraftpb::{Entry, EntryType};
use raft_core::engine::{Engines, KvEngine, Mutable, RocksWriteBatch, WriteBatch, CF_DEFAULT};
use raft_core::{keys, AppliedConfChange, ApplyResult, ApplyTask};

use crate::cmd_resp;
use crate::errors::{Error, Result};
use crate::msg::{ApplyRes, PeerMsg};
use crate::operation::command::{check_epoch, check_keys, classify, CmdKind};
use crate::peer::ProposalCb;
use crate::router::Router;
use crate::status::StoreMetrics;

/// One region's apply state, owned by its apply FSM.
#[derive(Debug)]
pub struct ApplyDelegate {
    pub(crate) region_id: u64,
    pub(crate) peer_id: u64,
    pub(crate) region: Region,
    pub(crate) apply_state: RaftApplyState,
    /// This peer was removed from the region by an applied conf change: nothing after that
    /// entry is applied (the peer is about to be destroyed).
    pub(crate) removed: bool,
    /// Tells this apply FSM apart from an earlier one of the same peer (see
    /// `PeerMsg::ApplyDestroyed`).
    pub(crate) incarnation: u64,
}

static NEXT_INCARNATION: AtomicU64 = AtomicU64::new(1);

impl ApplyDelegate {
    /// A delegate for peer `peer_id` of `region`, resuming at `apply_state`.
    pub(crate) fn new(peer_id: u64, region: Region, apply_state: RaftApplyState) -> Self {
        ApplyDelegate {
            region_id: region.id,
            peer_id,
            region,
            apply_state,
            removed: false,
            incarnation: NEXT_INCARNATION.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// A change of the region made at apply, for the peer to act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecResult {
    /// A membership change (or the end of a joint one) was applied.
    ChangePeer {
        /// Index of its entry.
        index: u64,
        /// The region after it.
        region: Region,
        /// This peer is no longer a member: it must destroy itself.
        removed_self: bool,
    },
    /// The region was split.
    Split {
        /// The region after the split (same id, a part of the old range).
        derived: Region,
        /// Every region of the old range after the split, in key order (`derived` included).
        regions: Vec<Region>,
        /// The new regions, each with whether this apply wrote its initial states (`false`:
        /// an initialized or newer removed peer of it already exists on this store).
        new_regions: Vec<(Region, bool)>,
    },
}

/// An apply round's shared state (one per apply thread).
pub(crate) struct ApplyContext {
    pub(crate) engines: Engines,
    pub(crate) router: Router,
    pub(crate) metrics: Arc<StoreMetrics>,
    kv_wb: RocksWriteBatch,
    /// The batch must be synced (it holds a log compaction).
    sync: bool,
    cbs: Vec<(ProposalCb, RaftCmdResponse)>,
    results: Vec<ApplyRes>,
    entries: u64,
}

impl ApplyContext {
    pub(crate) fn new(engines: Engines, router: Router, metrics: Arc<StoreMetrics>) -> Self {
        ApplyContext {
            kv_wb: engines.kv.write_batch(),
            engines,
            router,
            metrics,
            sync: false,
            cbs: vec![],
            results: vec![],
            entries: 0,
        }
    }

    /// Bytes buffered so far.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.kv_wb.data_size()
    }

    /// Writes what is buffered, answers the callbacks, reports the results (see the module
    /// docs for why in this order).
    pub(crate) fn flush(&mut self) {
        if self.results.is_empty() && self.kv_wb.is_empty() {
            return;
        }
        if !self.kv_wb.is_empty() {
            self.engines
                .kv
                .write(&mut self.kv_wb, self.sync)
                .unwrap_or_else(|e| panic!("cannot write applied entries to the kv engine: {e}"));
            self.metrics.apply_writes.fetch_add(1, Ordering::Relaxed);
        }
        self.sync = false;
        self.metrics
            .entries_applied
            .fetch_add(std::mem::take(&mut self.entries), Ordering::Relaxed);
        for (cb, resp) in self.cbs.drain(..) {
            cb.done(resp);
        }
        for res in self.results.drain(..) {
            let region_id = res.region_id;
            // Fails only when the peer is gone (destroyed, shutting down).
            if self
                .router
                .force_send_peer(region_id, PeerMsg::ApplyRes(Box::new(res)))
                .is_err()
            {
                tracing::debug!(region_id, "peer gone; apply result dropped");
            }
        }
    }
}

/// The outcome of one entry.
struct Executed {
    resp: RaftCmdResponse,
    written_bytes: u64,
    written_keys: u64,
    /// A conf change raft-rs must apply too.
    conf_change: Option<AppliedConfChange>,
    /// A region change the peer must act on.
    exec: Option<ExecResult>,
}

impl ApplyDelegate {
    /// Applies `task` into `ctx`'s batch (see [`ApplyTask`] for the order) and queues its
    /// callbacks and result.
    pub(crate) fn handle_task(&mut self, ctx: &mut ApplyContext, task: ApplyTask<ProposalCb>) {
        let ApplyTask {
            snapshot,
            entries,
            proposals,
            ..
        } = task;
        if let Some(snap) = snapshot {
            // Data, apply and region state were written by the peer with the snapshot.
            self.region = snap.region;
            self.apply_state = snap.apply_state;
        }
        let mut proposals = proposals.into_iter().peekable();
        let (mut written_bytes, mut written_keys) = (0, 0);
        let (mut conf_changes, mut exec_results) = (vec![], vec![]);
        let mut region_changed = false;
        for entry in &entries {
            if self.removed {
                // Entries after this peer's removal are not its business any more.
                break;
            }
            let expected = self.apply_state.applied_index + 1;
            assert_eq!(
                entry.index, expected,
                "region {} peer {}: entry {} handed to apply, expected {expected}",
                self.region_id, self.peer_id, entry.index
            );
            let executed = self.apply_entry(ctx, entry);
            self.apply_state.applied_index = entry.index;
            self.apply_state.commit_index = entry.index;
            self.apply_state.commit_term = entry.term;
            ctx.entries += 1;
            let mut resp = executed.resp;
            written_bytes += executed.written_bytes;
            written_keys += executed.written_keys;
            conf_changes.extend(executed.conf_change);
            if let Some(exec) = executed.exec {
                region_changed = true;
                exec_results.push(exec);
            }
            while let Some(p) = proposals.next_if(|p| p.index <= entry.index) {
                debug_assert_eq!(p.index, entry.index, "proposals come in entry order");
                ctx.cbs.push((p.callback, std::mem::take(&mut resp)));
            }
        }
        for p in proposals {
            if self.removed {
                p.callback
                    .fail_with(Error::RegionNotFound(self.region_id), p.term);
                continue;
            }
            // raft-core matches proposals to the task's entries; one left over is a bug there,
            // but its client still deserves an answer.
            tracing::error!(
                region_id = self.region_id,
                index = p.index,
                "proposal without an entry in its apply task"
            );
            p.callback.fail_with(Error::StaleCommand, p.term);
        }
        ctx.kv_wb
            .put_msg_cf(
                CF_DEFAULT,
                &keys::apply_state_key(self.region_id),
                &self.apply_state,
            )
            .expect("default column family exists");
        ctx.results.push(ApplyRes {
            region_id: self.region_id,
            peer_id: self.peer_id,
            result: ApplyResult {
                apply_state: self.apply_state,
                conf_changes,
                // The region after every change of the task (raft-core adopts it last).
                region: region_changed.then(|| self.region.clone()),
            },
            written_bytes,
            written_keys,
            exec_results,
        });
    }

    fn apply_entry(&mut self, ctx: &mut ApplyContext, entry: &Entry) -> Executed {
        let mut executed = Executed {
            resp: cmd_resp::new_resp(entry.term),
            written_bytes: 0,
            written_keys: 0,
            conf_change: None,
            exec: None,
        };
        match entry.get_entry_type() {
            EntryType::EntryNormal if entry.data.is_empty() => {
                // A new leader's empty entry.
            }
            EntryType::EntryNormal => {
                let req = RaftCmdRequest::decode(entry.get_data()).unwrap_or_else(|e| {
                    panic!(
                        "region {} peer {}: entry {} holds no command: {e}",
                        self.region_id, self.peer_id, entry.index
                    )
                });
                match self.exec(ctx, entry, &req, &mut executed) {
                    Ok(()) => {}
                    Err(e) => {
                        tracing::debug!(region_id = self.region_id, peer_id = self.peer_id, index = entry.index, error = %e, "command failed at apply");
                        executed.resp = cmd_resp::err_resp(e, entry.term);
                    }
                }
            }
            EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                if let Err(e) = self.exec_conf_change(ctx, entry, &mut executed) {
                    tracing::debug!(region_id = self.region_id, peer_id = self.peer_id, index = entry.index, error = %e, "conf change refused at apply");
                    executed.resp = cmd_resp::err_resp(e, entry.term);
                }
            }
        }
        executed
    }

    fn exec(
        &mut self,
        ctx: &mut ApplyContext,
        entry: &Entry,
        req: &RaftCmdRequest,
        out: &mut Executed,
    ) -> Result<()> {
        let kind = classify(req)?;
        let header = req.header.as_ref().expect("classified");
        // The region may have changed between proposal and apply.
        check_epoch(
            &self.region,
            header.region_epoch.as_ref(),
            kind.epoch_check(),
        )?;
        match kind {
            CmdKind::Write => {
                check_keys(&self.region, &req.requests)?;
                for r in &req.requests {
                    let (bytes, resp) = self.exec_write(&mut ctx.kv_wb, r);
                    out.written_bytes += bytes;
                    out.written_keys += 1;
                    out.resp.responses.push(resp);
                }
                Ok(())
            }
            CmdKind::Admin(_) => {
                let admin = req.admin_request.as_ref().expect("classified");
                let resp = self.exec_admin(ctx, entry, admin, out)?;
                out.resp.admin_response = Some(resp);
                Ok(())
            }
            CmdKind::Read | CmdKind::Status => Err(Error::InvalidRequest(
                "read commands are not replicated".into(),
            )),
        }
    }

    /// Adds one validated write to `wb`; returns the bytes written and its response.
    fn exec_write(
        &self,
        wb: &mut RocksWriteBatch,
        r: &proto::raft_cmdpb::Request,
    ) -> (u64, Response) {
        let cf = |cf: &str| {
            if cf.is_empty() {
                CF_DEFAULT.to_string()
            } else {
                cf.to_string()
            }
        };
        let mut resp = Response {
            cmd_type: r.cmd_type,
            ..Default::default()
        };
        // Column families were validated by `classify`, so the batch cannot refuse them.
        let bytes = match r.cmd_type() {
            CmdType::Put => {
                let p = r.put.as_ref().expect("classified");
                wb.put_cf(&cf(&p.cf), &keys::data_key(&p.key), &p.value)
                    .expect("valid cf");
                resp.put = Some(PutResponse {});
                (p.key.len() + p.value.len()) as u64
            }
            CmdType::Delete => {
                let d = r.delete.as_ref().expect("classified");
                wb.delete_cf(&cf(&d.cf), &keys::data_key(&d.key))
                    .expect("valid cf");
                resp.delete = Some(DeleteResponse {});
                d.key.len() as u64
            }
            CmdType::DeleteRange => {
                let d = r.delete_range.as_ref().expect("classified");
                wb.delete_range_cf(
                    &cf(&d.cf),
                    &keys::data_key(&d.start_key),
                    &keys::data_end_key(&d.end_key),
                )
                .expect("valid cf");
                resp.delte_range = Some(DeleteRangeResponse {});
                (d.start_key.len() + d.end_key.len()) as u64
            }
            other => unreachable!("{other:?} classified as write"),
        };
        (bytes, resp)
    }

    fn exec_admin(
        &mut self,
        ctx: &mut ApplyContext,
        entry: &Entry,
        admin: &AdminRequest,
        out: &mut Executed,
    ) -> Result<AdminResponse> {
        match admin.cmd_type() {
            AdminCmdType::CompactLog => {
                let req = admin
                    .compact_log
                    .as_ref()
                    .ok_or_else(|| Error::InvalidRequest("compact log without body".into()))?;
                self.exec_compact_log(ctx, entry, req.compact_index, req.compact_term)?;
                Ok(AdminResponse {
                    cmd_type: AdminCmdType::CompactLog as i32,
                    compact_log: Some(CompactLogResponse {}),
                    ..Default::default()
                })
            }
            #[allow(deprecated)]
            AdminCmdType::BatchSplit | AdminCmdType::Split => self.exec_split(ctx, admin, out),
            AdminCmdType::ChangePeer | AdminCmdType::ChangePeerV2 => Err(Error::InvalidRequest(
                "membership changes must be proposed as conf change entries".into(),
            )),
            other => Err(Error::InvalidRequest(format!(
                "admin command {other:?} is not supported by this store"
            ))),
        }
    }

    fn exec_compact_log(
        &mut self,
        ctx: &mut ApplyContext,
        entry: &Entry,
        index: u64,
        term: u64,
    ) -> Result<()> {
        let truncated = self.apply_state.truncated_state.unwrap_or_default();
        if index <= truncated.index {
            // Already compacted further (a duplicate or an older proposal): nothing to do.
            return Ok(());
        }
        if index >= entry.index || term == 0 || term > entry.term {
            return Err(Error::InvalidRequest(format!(
                "cannot compact to index {index} term {term} at entry {} term {}",
                entry.index, entry.term
            )));
        }
        self.apply_state.truncated_state = Some(RaftTruncatedState { index, term });
        ctx.sync = true;
        tracing::debug!(
            region_id = self.region_id,
            peer_id = self.peer_id,
            index,
            term,
            "log compacted at apply"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
