//! Linearizable reads: under the leader lease at once, else by read index, batched — every
//! read a leader accepts in one round shares one `read_index` request.
//!
//! ```text
//!  Get/Snap ──checks──▶ lease valid (operation/lease.rs)? ──▶ local: end of the peer's turn,
//!     │                                                       one fresh kv snapshot answers all
//!     └──▶ unissued ──end of round, leader has committed in its term──▶ read_index(id)
//!                                                                         │
//!  ReadState{id, index} (a heartbeat round confirmed leadership: renews the lease) ◀──┘
//!        ▼
//!  applied ≥ index? ──▶ fresh kv snapshot bounded by the region ──▶ answer every read of the batch
//! ```
//!
//! raft-rs drops a read-index request while the leader has not committed an entry of its term,
//! so reads wait unissued until it has. Reads never come from a possibly stale replica: a
//! follower refuses them with `NotLeader`, and a leader that loses its role answers the reads
//! it has not confirmed with `NotLeader` too.

use std::collections::VecDeque;
use std::time::Instant;

use proto::raft_cmdpb::{CmdType, GetResponse, RaftCmdRequest, Response, SnapResponse};
use raft::ReadState;
use raft_core::engine::{KvEngine, RegionSnapshot, CF_DEFAULT};

use super::command::{check_epoch, check_keys, CmdKind};
use crate::cmd_resp;
use crate::errors::{Error, Result};
use crate::msg::{Callback, CmdResponse};
use crate::peer::Peer;
use crate::poller::PollContext;
use crate::transport::Transport;

struct ReadCmd {
    request: RaftCmdRequest,
    cb: Callback,
}

struct ReadBatch {
    id: u64,
    /// When the read index was asked for (a confirmation renews the lease from then).
    issued_at: Instant,
    /// Set once raft-rs confirmed the read point.
    read_index: Option<u64>,
    cmds: Vec<ReadCmd>,
}

/// A peer's reads in flight.
#[derive(Default)]
pub(crate) struct ReadQueue {
    next_id: u64,
    /// Accepted under the lease; served at the end of the peer's turn.
    local: Vec<ReadCmd>,
    unissued: Vec<ReadCmd>,
    waiting: VecDeque<ReadBatch>,
}

impl ReadQueue {
    /// Answers every read with an error made by `make`.
    pub(crate) fn fail_all(&mut self, make: impl Fn() -> Error, term: u64) {
        for c in self.local.drain(..).chain(self.unissued.drain(..)) {
            c.cb.fail(make(), term);
        }
        for b in self.waiting.drain(..) {
            for c in b.cmds {
                c.cb.fail(make(), term);
            }
        }
    }
}

fn read_id(ctx: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(ctx.try_into().ok()?))
}

impl Peer {
    /// Queues a read that passed the header checks: served locally at the end of the peer's
    /// turn if the lease allows, else issued as a read index then.
    pub(crate) fn push_read(&mut self, request: RaftCmdRequest, cb: Callback) {
        let cmd = ReadCmd { request, cb };
        if self.can_read_locally(Instant::now()) {
            self.reads.local.push(cmd);
        } else {
            self.reads.unissued.push(cmd);
        }
    }

    /// Serves the reads accepted under the lease from one fresh snapshot, then issues one read
    /// index for every other read queued since the last one (end of the peer's turn).
    pub(crate) fn issue_reads<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        self.serve_local_reads(ctx);
        if self.reads.unissued.is_empty() {
            return;
        }
        if !self.is_leader() {
            let term = self.term();
            for c in std::mem::take(&mut self.reads.unissued) {
                c.cb.fail(self.not_leader(), term);
            }
            return;
        }
        if !self.group().raw_node().raft.commit_to_current_term() {
            // raft-rs would drop the request; retried after the next apply result.
            return;
        }
        let id = self.reads.next_id;
        self.reads.next_id += 1;
        self.group_mut().read_index(id.to_be_bytes().to_vec());
        ctx.metrics
            .read_indexes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let cmds = std::mem::take(&mut self.reads.unissued);
        self.reads.waiting.push_back(ReadBatch {
            id,
            issued_at: Instant::now(),
            read_index: None,
            cmds,
        });
    }

    /// Answers the reads accepted under the lease. The lease was checked when each arrived, in
    /// this same turn of the peer (nothing can have revoked it since: no message was sent).
    fn serve_local_reads<T>(&mut self, ctx: &mut PollContext<T>) {
        if self.reads.local.is_empty() {
            return;
        }
        let snap = RegionSnapshot::new(ctx.engines.kv.snapshot(), self.region().clone());
        let term = self.term();
        let cmds = std::mem::take(&mut self.reads.local);
        let n = cmds.len() as u64;
        ctx.metrics
            .lease_reads
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        ctx.metrics
            .reads
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        for c in cmds {
            let resp = match self.exec_read(&snap, &c.request) {
                Ok(r) => r,
                Err(e) => CmdResponse::from_error(e, term),
            };
            c.cb.done(resp);
        }
    }

    /// Records the read points raft-rs confirmed; each confirmation renews the lease from when
    /// its read index was asked for.
    pub(crate) fn on_read_states(&mut self, states: Vec<ReadState>) {
        let term = self.term();
        let leader = self.is_leader();
        for rs in states {
            let Some(id) = read_id(&rs.request_ctx) else {
                continue;
            };
            if let Some(b) = self.reads.waiting.iter_mut().find(|b| b.id == id) {
                b.read_index = Some(rs.index);
                if leader {
                    self.lease.renew(term, b.issued_at);
                }
            }
        }
    }

    /// Serves every confirmed read whose read index is applied, in order.
    pub(crate) fn serve_reads<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        let applied = self.group().storage().applied_index();
        let ready = self
            .reads
            .waiting
            .front()
            .and_then(|b| b.read_index)
            .is_some_and(|idx| idx <= applied);
        if !ready {
            return;
        }
        // One fresh snapshot serves every batch that is ready now: it reflects at least
        // everything applied up to `applied`.
        let snap = RegionSnapshot::new(ctx.engines.kv.snapshot(), self.region().clone());
        let term = self.term();
        while let Some(b) = self.reads.waiting.front() {
            match b.read_index {
                Some(idx) if idx <= applied => {}
                _ => break,
            }
            let b = self.reads.waiting.pop_front().expect("non-empty");
            for c in b.cmds {
                ctx.metrics
                    .reads
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let resp = match self.exec_read(&snap, &c.request) {
                    Ok(r) => r,
                    Err(e) => CmdResponse::from_error(e, term),
                };
                c.cb.done(resp);
            }
        }
    }

    fn exec_read(&self, snap: &RegionSnapshot, req: &RaftCmdRequest) -> Result<CmdResponse> {
        // The region may have changed (split, conf change) since the read was accepted.
        let header = req.header.as_ref().expect("checked");
        let region = snap.region();
        check_epoch(
            region,
            header.region_epoch.as_ref(),
            CmdKind::Read.epoch_check(),
        )?;
        check_keys(region, &req.requests)?;
        let mut resp = cmd_resp::new_resp(self.term());
        let mut snapshot = None;
        for r in &req.requests {
            let mut out = Response {
                cmd_type: r.cmd_type,
                ..Default::default()
            };
            match r.cmd_type() {
                CmdType::Get => {
                    let get = r.get.as_ref().expect("classified");
                    let cf = if get.cf.is_empty() {
                        CF_DEFAULT
                    } else {
                        &get.cf
                    };
                    let value = snap.get_value_cf(cf, &get.key)?.unwrap_or_default();
                    out.get = Some(GetResponse { value });
                }
                CmdType::Snap => {
                    out.snap = Some(SnapResponse {
                        region: Some(region.clone()),
                    });
                    snapshot = Some(snap.clone());
                }
                other => unreachable!("{other:?} classified as read"),
            }
            resp.responses.push(out);
        }
        Ok(CmdResponse {
            response: resp,
            snapshot,
        })
    }

    /// After a role or term change: reads not yet confirmed by this leadership cannot be
    /// (raft-rs forgot them); confirmed ones stay valid and are served once applied.
    pub(crate) fn on_leadership_lost(&mut self) {
        let term = self.term();
        let leader = self.leader();
        let region_id = self.region_id;
        let not_leader = || Error::NotLeader { region_id, leader };
        for c in self
            .reads
            .local
            .drain(..)
            .chain(self.reads.unissued.drain(..))
        {
            c.cb.fail(not_leader(), term);
        }
        let mut kept = VecDeque::new();
        for b in self.reads.waiting.drain(..) {
            if b.read_index.is_some() {
                kept.push_back(b);
            } else {
                for c in b.cmds {
                    c.cb.fail(not_leader(), term);
                }
            }
        }
        self.reads.waiting = kept;
    }
}
