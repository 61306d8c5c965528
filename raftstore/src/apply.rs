//! Apply: committed entries → the kv engine, for many regions per write.
//!
//! Each region has an [`ApplyDelegate`] (its region, as apply sees it, and its apply state),
//! owned by that region's apply FSM. An apply round ([`ApplyContext`]) runs every queued task of
//! every FSM in its batch into **one** kv write batch, adding each region's `RaftApplyState`
//! (and region state, for membership and range changes) to the same batch, then:
//!
//! 1. writes the batch — unsynced, unless it carries an admin command that changes what the raft
//!    log may hold (`CompactLog`: the raft-engine deletion that follows must never outlive a
//!    lost apply state), in which case synced;
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

use std::sync::atomic::Ordering;
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
use raft_core::{keys, ApplyResult, ApplyTask};

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
        for entry in &entries {
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
            while let Some(p) = proposals.next_if(|p| p.index <= entry.index) {
                debug_assert_eq!(p.index, entry.index, "proposals come in entry order");
                ctx.cbs.push((p.callback, std::mem::take(&mut resp)));
            }
        }
        for p in proposals {
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
                conf_changes: vec![],
                region: None,
            },
            written_bytes,
            written_keys,
        });
    }

    fn apply_entry(&mut self, ctx: &mut ApplyContext, entry: &Entry) -> Executed {
        let mut executed = Executed {
            resp: cmd_resp::new_resp(entry.term),
            written_bytes: 0,
            written_keys: 0,
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
                // This store never proposes membership changes yet (they are refused at
                // proposal), so such an entry came from a newer leader: leave it to a version
                // that understands it rather than guess.
                tracing::error!(
                    region_id = self.region_id,
                    peer_id = self.peer_id,
                    index = entry.index,
                    "conf change entry skipped: membership changes are not supported"
                );
                executed.resp = cmd_resp::err_resp(
                    Error::InvalidRequest("membership changes are not supported".into()),
                    entry.term,
                );
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
                let resp = self.exec_admin(ctx, entry, admin)?;
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
mod tests {
    use std::sync::mpsc;

    use proto::metapb::RegionEpoch;
    use proto::raft_cmdpb::{CompactLogRequest, PutRequest, RaftRequestHeader, Request};
    use raft_core::config::EngineConfig;
    use raft_core::engine::Peekable;
    use raft_core::storage::state;
    use raft_core::Proposal;

    use super::*;
    use crate::msg::Callback;

    fn region() -> Region {
        Region {
            id: 1,
            region_epoch: Some(RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            peers: vec![proto::metapb::Peer {
                id: 1,
                store_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn put_cmd(key: &[u8], version: u64) -> RaftCmdRequest {
        RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id: 1,
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version,
                }),
                ..Default::default()
            }),
            requests: vec![Request {
                cmd_type: CmdType::Put as i32,
                put: Some(PutRequest {
                    cf: String::new(),
                    key: key.to_vec(),
                    value: b"v".to_vec(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn entry(index: u64, cmd: &RaftCmdRequest) -> Entry {
        Entry {
            index,
            term: 6,
            data: cmd.encode_to_vec().into(),
            ..Default::default()
        }
    }

    /// (index, response, value of `k<index>` in the engine when the callback ran)
    type Answer = (u64, RaftCmdResponse, Option<Vec<u8>>);

    /// A proposal whose callback records its answer and what the engine held at that moment.
    fn proposal(index: u64, engines: &Engines, tx: &mpsc::Sender<Answer>) -> Proposal<ProposalCb> {
        let (tx, kv) = (tx.clone(), engines.kv.clone());
        let key = keys::data_key(format!("k{index}").as_bytes());
        let cb = Callback::new(move |resp| {
            let seen = kv.get_value_cf(CF_DEFAULT, &key).unwrap();
            tx.send((index, resp.response, seen)).unwrap();
        });
        Proposal {
            index,
            term: 6,
            is_conf_change: false,
            callback: ProposalCb::new(cb, 1),
        }
    }

    fn setup() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
        let cfg = crate::config::RaftstoreConfig::new_test_config();
        let (router, _system) = crate::system::create_system(&cfg);
        let metrics = router.registry.metrics().clone();
        let ctx = ApplyContext::new(engines.clone(), router, metrics);
        let delegate = ApplyDelegate {
            region_id: 1,
            peer_id: 1,
            region: region(),
            apply_state: RaftApplyState {
                applied_index: 5,
                truncated_state: Some(RaftTruncatedState { index: 5, term: 5 }),
                ..Default::default()
            },
        };
        let (tx, rx) = mpsc::channel();
        Fixture {
            _dir: dir,
            engines,
            ctx,
            delegate,
            tx,
            rx,
        }
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        engines: Engines,
        ctx: ApplyContext,
        delegate: ApplyDelegate,
        tx: mpsc::Sender<Answer>,
        rx: mpsc::Receiver<Answer>,
    }

    fn task(entries: Vec<Entry>, proposals: Vec<Proposal<ProposalCb>>) -> ApplyTask<ProposalCb> {
        ApplyTask {
            region_id: 1,
            peer_id: 1,
            snapshot: None,
            entries,
            proposals,
        }
    }

    #[test]
    fn callbacks_are_answered_after_the_write_in_log_order() {
        let Fixture {
            engines,
            mut ctx,
            delegate: mut d,
            tx,
            rx,
            ..
        } = setup();
        let (c6, c7) = (put_cmd(b"k6", 1), put_cmd(b"k7", 1));
        d.handle_task(
            &mut ctx,
            task(vec![entry(6, &c6)], vec![proposal(6, &engines, &tx)]),
        );
        d.handle_task(
            &mut ctx,
            task(vec![entry(7, &c7)], vec![proposal(7, &engines, &tx)]),
        );
        assert!(rx.try_recv().is_err(), "answered before the write");
        ctx.flush();
        for want in [6, 7] {
            let (index, resp, seen) = rx.try_recv().unwrap();
            assert_eq!(index, want);
            assert!(resp.header.unwrap().error.is_none());
            assert_eq!(
                seen.as_deref(),
                Some(&b"v"[..]),
                "write visible when answered"
            );
        }
        let durable = state::load_apply_state(&engines.kv, 1).unwrap().unwrap();
        assert_eq!(durable.applied_index, 7);
        assert_eq!(d.apply_state.applied_index, 7);
    }

    #[test]
    fn stale_epoch_at_apply_writes_nothing() {
        let Fixture {
            engines,
            mut ctx,
            delegate: mut d,
            tx,
            rx,
            ..
        } = setup();
        let stale = put_cmd(b"k6", 0);
        d.handle_task(
            &mut ctx,
            task(vec![entry(6, &stale)], vec![proposal(6, &engines, &tx)]),
        );
        ctx.flush();
        let (_, resp, seen) = rx.try_recv().unwrap();
        assert!(resp
            .header
            .unwrap()
            .error
            .unwrap()
            .epoch_not_match
            .is_some());
        assert_eq!(seen, None);
        // The entry still counts as applied.
        assert_eq!(
            state::load_apply_state(&engines.kv, 1)
                .unwrap()
                .unwrap()
                .applied_index,
            6
        );
    }

    #[test]
    fn compact_log_moves_the_truncated_state_once() {
        let Fixture {
            engines,
            mut ctx,
            delegate: mut d,
            ..
        } = setup();
        let c6 = put_cmd(b"k6", 1);
        let compact = |index: u64| RaftCmdRequest {
            header: Some(RaftRequestHeader::default()),
            admin_request: Some(AdminRequest {
                cmd_type: AdminCmdType::CompactLog as i32,
                compact_log: Some(CompactLogRequest {
                    compact_index: index,
                    compact_term: 6,
                    voter_replicated_index: 0,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let entries = vec![
            entry(6, &c6),
            entry(7, &compact(6)),
            entry(8, &compact(6)),
            entry(9, &compact(20)),
        ];
        d.handle_task(&mut ctx, task(entries, vec![]));
        assert!(ctx.sync, "a compaction is written synced");
        ctx.flush();
        let durable = state::load_apply_state(&engines.kv, 1).unwrap().unwrap();
        assert_eq!(durable.applied_index, 9);
        let t = durable.truncated_state.unwrap();
        assert_eq!((t.index, t.term), (6, 6));
    }
}
