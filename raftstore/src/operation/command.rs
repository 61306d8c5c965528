//! Client commands on the leader: classification, header checks, and write proposals (merged
//! per round into as few Raft entries as the size limit allows).
//!
//! Header checks run in this order, each with its own error: the store matches
//! (`StoreNotMatch`), the region is here and initialized (`RegionNotFound`), this peer leads it
//! (`NotLeader` with the leader hint), the command's term is not stale (`StaleCommand`), the
//! epoch matches (`EpochNotMatch` with the current region; version for data commands, conf_ver
//! for membership changes), keys lie in the region (`KeyNotInRegion`), and the command fits in
//! one entry (`RaftEntryTooLarge`).

use prost::Message as _;
use proto::metapb::{Region, RegionEpoch};
use proto::raft_cmdpb::{
    AdminCmdType, AdminResponse, CmdType, RaftCmdRequest, Request, StatusCmdType, StatusResponse,
    TransferLeaderResponse,
};
use raft_core::engine::is_data_cf;
use raft_core::keys;

use crate::cmd_resp;
use crate::errors::{Error, Result};
use crate::msg::{Callback, CmdResponse};
use crate::peer::{Peer, PendingWrite, ProposalCb};
use crate::poller::PollContext;
use crate::transport::Transport;

/// What a command is, decided from its content alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmdKind {
    /// Only `Get`/`Snap`: served by read index, not through the log.
    Read,
    /// Only `Put`/`Delete`/`DeleteRange`: proposed (possibly merged with others).
    Write,
    /// One admin command.
    Admin(AdminCmdType),
    /// A status query answered from the peer's state.
    Status,
}

/// Which parts of the epoch a command must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochCheck {
    pub(crate) version: bool,
    pub(crate) conf_ver: bool,
}

impl CmdKind {
    pub(crate) fn epoch_check(self) -> EpochCheck {
        let (version, conf_ver) = match self {
            CmdKind::Read | CmdKind::Write => (true, false),
            CmdKind::Status => (false, false),
            CmdKind::Admin(t) => match t {
                AdminCmdType::CompactLog | AdminCmdType::InvalidAdmin => (false, false),
                AdminCmdType::ChangePeer | AdminCmdType::ChangePeerV2 => (false, true),
                // Splits map new peer ids to members by position: membership must match too.
                _ => (true, true),
            },
        };
        EpochCheck { version, conf_ver }
    }
}

fn cf_of(cf: &str) -> Result<()> {
    if cf.is_empty() || is_data_cf(cf) {
        Ok(())
    } else {
        Err(Error::InvalidRequest(format!(
            "unknown column family {cf:?}"
        )))
    }
}

/// Classifies `req` and validates what can be validated without the region: the request mix,
/// command types and column families.
pub(crate) fn classify(req: &RaftCmdRequest) -> Result<CmdKind> {
    if req.header.is_none() {
        return Err(Error::InvalidRequest("missing header".into()));
    }
    if let Some(status) = &req.status_request {
        if req.admin_request.is_some() || !req.requests.is_empty() {
            return Err(Error::InvalidRequest(
                "a status request cannot carry other requests".into(),
            ));
        }
        return match status.cmd_type() {
            StatusCmdType::RegionLeader | StatusCmdType::RegionDetail => Ok(CmdKind::Status),
            StatusCmdType::InvalidStatus => {
                Err(Error::InvalidRequest("invalid status command".into()))
            }
        };
    }
    if let Some(admin) = &req.admin_request {
        if !req.requests.is_empty() {
            return Err(Error::InvalidRequest(
                "admin and normal requests cannot be mixed".into(),
            ));
        }
        #[allow(deprecated)]
        return match admin.cmd_type() {
            t @ (AdminCmdType::CompactLog
            | AdminCmdType::TransferLeader
            | AdminCmdType::ChangePeer
            | AdminCmdType::ChangePeerV2
            | AdminCmdType::BatchSplit
            | AdminCmdType::Split) => Ok(CmdKind::Admin(t)),
            AdminCmdType::InvalidAdmin => {
                Err(Error::InvalidRequest("invalid admin command".into()))
            }
            other => Err(Error::InvalidRequest(format!(
                "admin command {other:?} is not supported by this store"
            ))),
        };
    }
    if req.requests.is_empty() {
        return Err(Error::InvalidRequest("empty command".into()));
    }
    let (mut reads, mut writes) = (0, 0);
    for r in &req.requests {
        match r.cmd_type() {
            CmdType::Get => {
                let get = r
                    .get
                    .as_ref()
                    .ok_or_else(|| Error::InvalidRequest("get without body".into()))?;
                cf_of(&get.cf)?;
                reads += 1;
            }
            CmdType::Snap => reads += 1,
            CmdType::Put => {
                let put = r
                    .put
                    .as_ref()
                    .ok_or_else(|| Error::InvalidRequest("put without body".into()))?;
                cf_of(&put.cf)?;
                writes += 1;
            }
            CmdType::Delete => {
                let del = r
                    .delete
                    .as_ref()
                    .ok_or_else(|| Error::InvalidRequest("delete without body".into()))?;
                cf_of(&del.cf)?;
                writes += 1;
            }
            CmdType::DeleteRange => {
                let dr = r
                    .delete_range
                    .as_ref()
                    .ok_or_else(|| Error::InvalidRequest("delete range without body".into()))?;
                cf_of(&dr.cf)?;
                if !dr.end_key.is_empty() && dr.start_key > dr.end_key {
                    return Err(Error::InvalidRequest(
                        "delete range with start > end".into(),
                    ));
                }
                writes += 1;
            }
            other => {
                return Err(Error::InvalidRequest(format!(
                    "command type {other:?} is not supported"
                )))
            }
        }
    }
    match (reads, writes) {
        (_, 0) => Ok(CmdKind::Read),
        (0, _) => Ok(CmdKind::Write),
        _ => Err(Error::InvalidRequest(
            "read and write requests cannot be mixed in one command".into(),
        )),
    }
}

/// Whether `req_epoch` matches `region`'s epoch in the parts `check` names.
pub(crate) fn check_epoch(
    region: &Region,
    req_epoch: Option<&RegionEpoch>,
    check: EpochCheck,
) -> Result<()> {
    if !check.version && !check.conf_ver {
        return Ok(());
    }
    let current = region.region_epoch.unwrap_or_default();
    let req = req_epoch.copied().unwrap_or_default();
    let stale = (check.version && req.version != current.version)
        || (check.conf_ver && req.conf_ver != current.conf_ver);
    if stale {
        return Err(Error::EpochNotMatch {
            message: format!(
                "current epoch of region {} is (conf_ver {}, version {}), request has (conf_ver {}, version {})",
                region.id, current.conf_ver, current.version, req.conf_ver, req.version
            ),
            regions: vec![region.clone()],
        });
    }
    Ok(())
}

fn key_in(region: &Region, key: &[u8]) -> Result<()> {
    if keys::key_in_region(key, region) {
        Ok(())
    } else {
        Err(Error::KeyNotInRegion {
            key: key.to_vec(),
            region: Box::new(region.clone()),
        })
    }
}

/// Whether every key of `requests` lies in `region`.
pub(crate) fn check_keys(region: &Region, requests: &[Request]) -> Result<()> {
    for r in requests {
        if let Some(g) = &r.get {
            key_in(region, &g.key)?;
        }
        if let Some(p) = &r.put {
            key_in(region, &p.key)?;
        }
        if let Some(d) = &r.delete {
            key_in(region, &d.key)?;
        }
        if let Some(dr) = &r.delete_range {
            key_in(region, &dr.start_key)?;
            if !keys::range_in_region(&dr.start_key, &dr.end_key, region) {
                let key = if dr.end_key.is_empty() {
                    dr.start_key.clone()
                } else {
                    dr.end_key.clone()
                };
                return Err(Error::KeyNotInRegion {
                    key,
                    region: Box::new(region.clone()),
                });
            }
        }
    }
    Ok(())
}

impl Peer {
    /// Header checks (see the module docs), in order.
    pub(crate) fn check_header(
        &self,
        store_id: u64,
        req: &RaftCmdRequest,
        kind: CmdKind,
    ) -> Result<()> {
        let header = req
            .header
            .as_ref()
            .expect("classified commands have a header");
        if let Some(p) = &header.peer {
            if p.store_id != store_id {
                return Err(Error::StoreNotMatch {
                    requested: p.store_id,
                    actual: store_id,
                });
            }
        }
        if self.pending_destroy || self.pending_remove || !self.group().storage().is_initialized() {
            return Err(Error::RegionNotFound(self.region_id));
        }
        if kind == CmdKind::Status {
            return Ok(());
        }
        if !self.is_leader() {
            return Err(self.not_leader());
        }
        // A client that saw an older term may be acting on a stale view of the group.
        if header.term != 0 && header.term + 1 < self.term() {
            return Err(Error::StaleCommand);
        }
        let region = self.region();
        check_epoch(region, header.region_epoch.as_ref(), kind.epoch_check())?;
        check_keys(region, &req.requests)
    }

    /// Handles a command from a client (see the module docs for the checks).
    pub(crate) fn on_raft_command<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        req: RaftCmdRequest,
        cb: Callback,
    ) {
        let term = self.term();
        let kind = match classify(&req)
            .and_then(|k| self.check_header(ctx.store_id, &req, k).map(|()| k))
        {
            Ok(k) => k,
            Err(e) => {
                let e = self.with_split_siblings(ctx, e);
                tracing::debug!(region_id = self.region_id, peer_id = self.meta.id, error = %e, "command refused");
                return cb.fail(e, term);
            }
        };
        #[allow(deprecated)]
        match kind {
            CmdKind::Read => self.push_read(req, cb),
            CmdKind::Write => self.push_write(ctx, req, cb),
            CmdKind::Status => cb.done(self.status_response(&req)),
            CmdKind::Admin(AdminCmdType::TransferLeader) => {
                self.on_transfer_leader_cmd(ctx, req, cb)
            }
            CmdKind::Admin(AdminCmdType::ChangePeer | AdminCmdType::ChangePeerV2) => {
                self.propose_pending_write(ctx);
                self.propose_conf_change_cmd(ctx, req, cb);
            }
            CmdKind::Admin(AdminCmdType::BatchSplit | AdminCmdType::Split) => {
                let checked = crate::apply::split_requests(
                    req.admin_request.as_ref().expect("classified as admin"),
                )
                .and_then(|(requests, _)| crate::apply::validate_split(self.region(), &requests));
                if let Err(e) = checked {
                    return cb.fail(e, term);
                }
                self.propose_admin(ctx, req, cb);
            }
            CmdKind::Admin(_) => self.propose_admin(ctx, req, cb),
        }
    }

    /// An `EpochNotMatch` names the regions a recent split made next to this one too, so the
    /// client can route keys of the old range without asking the scheduler.
    pub(crate) fn with_split_siblings<T>(&self, ctx: &PollContext<T>, e: Error) -> Error {
        match e {
            Error::EpochNotMatch { message, .. } => Error::EpochNotMatch {
                message,
                regions: ctx.store_meta.lock().with_right_siblings(self.region()),
            },
            other => other,
        }
    }

    /// Proposes an admin command as its own entry.
    fn propose_admin<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        req: RaftCmdRequest,
        cb: Callback,
    ) {
        // Admin commands are never merged; keep their order relative to writes.
        self.propose_pending_write(ctx);
        let size = req.encoded_len() as u64;
        if let Err(e) = self.check_size(ctx, size) {
            return cb.fail(e, self.term());
        }
        let is_split = req.admin_request.as_ref().is_some_and(|a| {
            #[allow(deprecated)]
            let split = matches!(a.cmd_type(), AdminCmdType::BatchSplit | AdminCmdType::Split);
            split
        });
        let index = self.propose(ctx, req, ProposalCb::new(cb, 0));
        if let (true, Some(index)) = (is_split, index) {
            // The keys may move to a new region with a leader elsewhere: no lease reads until
            // this peer applied the split (see `operation/lease.rs`). The followers' new peers
            // wait for the split too: tell them about its commit at once.
            self.split_proposed = index;
            self.group_mut().set_skip_bcast_commit(false);
        }
    }

    fn check_size<T>(&self, ctx: &PollContext<T>, size: u64) -> Result<()> {
        if size > ctx.cfg.raft_entry_max_size {
            return Err(Error::RaftEntryTooLarge {
                region_id: self.region_id,
                entry_size: size,
            });
        }
        Ok(())
    }

    /// Adds a write command to this round's merged entry (proposing the entry first if the
    /// command would make it too big).
    fn push_write<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        req: RaftCmdRequest,
        cb: Callback,
    ) {
        let size = req.encoded_len() as u64;
        if let Err(e) = self.check_size(ctx, size) {
            return cb.fail(e, self.term());
        }
        let limit = ctx.cfg.merged_entry_limit();
        let n = req.requests.len();
        ctx.metrics
            .proposed_commands
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(pending) = &mut self.pending_write {
            if pending.size + size <= limit {
                pending.request.requests.extend(req.requests);
                pending.cb.push(cb, n);
                pending.size += size;
                return;
            }
            self.propose_pending_write(ctx);
        }
        let mut request = req;
        // The merged entry carries the current epoch: every command in it passed the check
        // against it, and apply checks it again.
        if let Some(h) = request.header.as_mut() {
            h.region_epoch = self.region().region_epoch;
        }
        self.pending_write = Some(PendingWrite {
            request,
            cb: ProposalCb::new(cb, n),
            size,
        });
    }

    /// Proposes this round's merged write entry, if any.
    pub(crate) fn propose_pending_write<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        if let Some(p) = self.pending_write.take() {
            let _ = self.propose(ctx, p.request, p.cb);
        }
    }

    /// Proposes `req` as one Raft entry; returns its index, or `None` if it was refused (the
    /// callback is answered then).
    pub(crate) fn propose<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        req: RaftCmdRequest,
        cb: ProposalCb,
    ) -> Option<u64> {
        let data = req.encode_to_vec();
        match self.group_mut().propose(vec![], data, cb) {
            Ok(index) => {
                let term = self.term();
                self.lease
                    .on_proposed(term, index, std::time::Instant::now());
                ctx.round_proposals += 1;
                ctx.metrics
                    .proposals
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::trace!(
                    region_id = self.region_id,
                    peer_id = self.meta.id,
                    index,
                    "proposed"
                );
                Some(index)
            }
            Err(rejected) => {
                let err = match rejected.error {
                    raft_core::Error::NotLeader { .. } => self.not_leader(),
                    // Dropped while leadership is being handed over: NotLeader without a
                    // hint, as TiKV answers, so clients look the leader up again. TiKV's
                    // clients do not retry ServerIsBusy (docs/COMPATIBILITY.md).
                    raft_core::Error::Raft(raft::Error::ProposalDropped) => Error::NotLeader {
                        region_id: self.region_id,
                        leader: None,
                    },
                    other => other.into(),
                };
                rejected.callback.fail_with(err, self.term());
                None
            }
        }
    }

    fn status_response(&self, req: &RaftCmdRequest) -> CmdResponse {
        let status = req.status_request.as_ref().expect("classified as status");
        let mut resp = cmd_resp::new_resp(self.term());
        let mut sr = StatusResponse {
            cmd_type: status.cmd_type,
            ..Default::default()
        };
        match status.cmd_type() {
            StatusCmdType::RegionLeader => {
                sr.region_leader = Some(proto::raft_cmdpb::RegionLeaderResponse {
                    leader: self.leader(),
                });
            }
            StatusCmdType::RegionDetail => {
                sr.region_detail = Some(proto::raft_cmdpb::RegionDetailResponse {
                    region: Some(self.region().clone()),
                    leader: self.leader(),
                });
            }
            StatusCmdType::InvalidStatus => unreachable!("refused by classify"),
        }
        resp.status_response = Some(sr);
        CmdResponse {
            response: resp,
            snapshot: None,
        }
    }

    /// `TransferLeader` is not replicated: the leader asks raft-rs directly and answers at once
    /// (the caller watches the leader change through heartbeats or status). Refused (see
    /// [`Peer::transfer_leader`]) when the target could not take over soon.
    fn on_transfer_leader_cmd<T>(
        &mut self,
        ctx: &PollContext<T>,
        req: RaftCmdRequest,
        cb: Callback,
    ) {
        let admin = req.admin_request.as_ref().expect("classified as admin");
        let Some(target) = admin.transfer_leader.as_ref().and_then(|t| t.peer) else {
            return cb.fail(
                Error::InvalidRequest("transfer leader without a target peer".into()),
                self.term(),
            );
        };
        if let Err(e) = self.transfer_leader(&ctx.cfg, &target) {
            return cb.fail(e, self.term());
        }
        let mut resp = cmd_resp::new_resp(self.term());
        resp.admin_response = Some(AdminResponse {
            cmd_type: AdminCmdType::TransferLeader as i32,
            transfer_leader: Some(TransferLeaderResponse {}),
            ..Default::default()
        });
        cb.done(CmdResponse {
            response: resp,
            snapshot: None,
        });
    }

    /// Starts handing leadership to `target` (a no-op for this peer itself). Refused when the
    /// target is not a voter of the region, when a membership change is still being applied
    /// (the new leader could commit a change it is not part of), when the target is being
    /// sent a snapshot, when it has not answered within the last election timeout, or when its
    /// log lags by more than `leader-transfer-max-log-lag` entries: raft-rs would stop taking
    /// proposals until it caught up.
    pub(crate) fn transfer_leader(
        &mut self,
        cfg: &crate::config::RaftstoreConfig,
        target: &proto::metapb::Peer,
    ) -> Result<()> {
        if target.id == self.meta.id {
            return Ok(());
        }
        let busy = |why: String| {
            Err(Error::ServerIsBusy(format!(
                "transfer leader refused: {why}"
            )))
        };
        let is_voter = self
            .region()
            .peers
            .iter()
            .any(|p| p.id == target.id && p.role() != proto::metapb::PeerRole::Learner);
        if !is_voter {
            return Err(Error::InvalidRequest(format!(
                "transfer leader to peer {} which is not a voter of region {}",
                target.id, self.region_id
            )));
        }
        let raft = &self.group().raw_node().raft;
        if raft.has_pending_conf() {
            return busy("a membership change is being applied".into());
        }
        let Some(pr) = raft.prs().get(target.id) else {
            return busy(format!("no progress known for peer {}", target.id));
        };
        if pr.state == raft::ProgressState::Snapshot || pr.pending_request_snapshot != 0 {
            return busy(format!("peer {} is receiving a snapshot", target.id));
        }
        // check_quorum clears this each election timeout unless the peer answered: a peer on a
        // crashed store (the scheduler may not know yet) would never take over, and raft-rs
        // drops every proposal until the transfer times out.
        if !pr.recent_active {
            return busy(format!("peer {} has not answered recently", target.id));
        }
        let lag = raft.raft_log.last_index().saturating_sub(pr.matched);
        if lag > cfg.leader_transfer_max_log_lag {
            return busy(format!(
                "peer {} lags {lag} entries (limit {})",
                target.id, cfg.leader_transfer_max_log_lag
            ));
        }
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            term = self.term(),
            target = target.id,
            lag,
            "transferring leadership"
        );
        self.group_mut().transfer_leader(target.id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proto::raft_cmdpb::{
        AdminRequest, DeleteRangeRequest, GetRequest, PutRequest, RaftRequestHeader, SnapRequest,
    };

    use super::*;

    fn put(key: &[u8]) -> Request {
        Request {
            cmd_type: CmdType::Put as i32,
            put: Some(PutRequest {
                cf: String::new(),
                key: key.to_vec(),
                value: b"v".to_vec(),
            }),
            ..Default::default()
        }
    }

    fn get(key: &[u8], cf: &str) -> Request {
        Request {
            cmd_type: CmdType::Get as i32,
            get: Some(GetRequest {
                cf: cf.into(),
                key: key.to_vec(),
            }),
            ..Default::default()
        }
    }

    fn cmd(requests: Vec<Request>) -> RaftCmdRequest {
        RaftCmdRequest {
            header: Some(RaftRequestHeader::default()),
            requests,
            ..Default::default()
        }
    }

    #[test]
    fn classify_sorts_commands_and_refuses_bad_mixes() {
        assert_eq!(
            classify(&cmd(vec![put(b"a"), put(b"b")])).unwrap(),
            CmdKind::Write
        );
        let snap = Request {
            cmd_type: CmdType::Snap as i32,
            snap: Some(SnapRequest {}),
            ..Default::default()
        };
        assert_eq!(
            classify(&cmd(vec![get(b"a", "lock"), snap])).unwrap(),
            CmdKind::Read
        );
        for bad in [
            cmd(vec![]),
            cmd(vec![put(b"a"), get(b"a", "")]),
            cmd(vec![get(b"a", "nope")]),
            cmd(vec![Request {
                cmd_type: CmdType::Prewrite as i32,
                ..Default::default()
            }]),
            cmd(vec![Request {
                cmd_type: CmdType::Put as i32,
                ..Default::default()
            }]),
            RaftCmdRequest::default(),
        ] {
            assert!(
                matches!(classify(&bad), Err(Error::InvalidRequest(_))),
                "{bad:?}"
            );
        }
        let mut admin = cmd(vec![]);
        admin.admin_request = Some(AdminRequest {
            cmd_type: AdminCmdType::CompactLog as i32,
            ..Default::default()
        });
        assert_eq!(
            classify(&admin).unwrap(),
            CmdKind::Admin(AdminCmdType::CompactLog)
        );
        admin.requests.push(put(b"a"));
        assert!(classify(&admin).is_err());
    }

    fn region() -> Region {
        Region {
            id: 1,
            start_key: b"b".to_vec(),
            end_key: b"d".to_vec(),
            region_epoch: Some(RegionEpoch {
                conf_ver: 3,
                version: 5,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn epoch_checks_compare_the_right_parts() {
        let r = region();
        let data = CmdKind::Write.epoch_check();
        assert!(check_epoch(
            &r,
            Some(&RegionEpoch {
                conf_ver: 1,
                version: 5
            }),
            data
        )
        .is_ok());
        let err = check_epoch(
            &r,
            Some(&RegionEpoch {
                conf_ver: 3,
                version: 4,
            }),
            data,
        )
        .unwrap_err();
        match err {
            Error::EpochNotMatch { regions, .. } => assert_eq!(regions, vec![r.clone()]),
            other => panic!("{other:?}"),
        }
        assert!(check_epoch(&r, None, data).is_err());
        let conf = CmdKind::Admin(AdminCmdType::ChangePeer).epoch_check();
        assert!(check_epoch(
            &r,
            Some(&RegionEpoch {
                conf_ver: 3,
                version: 1
            }),
            conf
        )
        .is_ok());
        assert!(check_epoch(
            &r,
            Some(&RegionEpoch {
                conf_ver: 2,
                version: 5
            }),
            conf
        )
        .is_err());
        let compact = CmdKind::Admin(AdminCmdType::CompactLog).epoch_check();
        assert!(check_epoch(&r, None, compact).is_ok());
    }

    #[test]
    fn keys_outside_the_region_are_refused() {
        let r = region();
        assert!(check_keys(&r, &[put(b"b"), put(b"c\xff")]).is_ok());
        match check_keys(&r, &[put(b"c"), put(b"d")]).unwrap_err() {
            Error::KeyNotInRegion { key, region } => {
                assert_eq!(key, b"d");
                assert_eq!(region.id, 1);
            }
            other => panic!("{other:?}"),
        }
        assert!(check_keys(&r, &[get(b"a", "")]).is_err());
        let dr = |s: &[u8], e: &[u8]| Request {
            cmd_type: CmdType::DeleteRange as i32,
            delete_range: Some(DeleteRangeRequest {
                cf: String::new(),
                start_key: s.to_vec(),
                end_key: e.to_vec(),
                notify_only: false,
            }),
            ..Default::default()
        };
        assert!(check_keys(&r, &[dr(b"b", b"d")]).is_ok());
        assert!(check_keys(&r, &[dr(b"b", b"")]).is_err());
        assert!(check_keys(&r, &[dr(b"a", b"c")]).is_err());
    }
}
