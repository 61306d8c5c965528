//! The leader's side of the scheduler protocol: region heartbeats (on becoming leader, after
//! the region changes, and every `pd-heartbeat-tick-interval`), and the operators that come back
//! in heartbeat responses.
//!
//! An operator is acted on only by the leader it was meant for (`target_peer`) and only if it
//! was built for the region as it is now (`region_epoch`): the scheduler re-sends each step
//! until a heartbeat shows it done, so a stale one is simply ignored. Membership changes become
//! ordinary `ChangePeer`/`ChangePeerV2` commands (with every check of a client's command),
//! leader transfers go to raft-rs directly, and a split operator either names its keys or has
//! the region split in the middle.

use proto::pdpb::RegionHeartbeatResponse;
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, ChangePeerRequest, ChangePeerV2Request, RaftCmdRequest,
    RaftRequestHeader,
};

use crate::msg::{AskSplit, Callback};
use crate::peer::Peer;
use crate::poller::PollContext;
use crate::transport::Transport;
use crate::worker::pd::{PdTask, RegionHeartbeat};
use crate::worker::split_check::CheckPolicy;

impl Peer {
    /// Peers that need a snapshot to catch up: their replicated index is behind the truncated
    /// index (or they have replicated nothing yet).
    pub(crate) fn pending_peers(&self) -> Vec<proto::metapb::Peer> {
        let raft = &self.group().raw_node().raft;
        let truncated = self.group().storage().truncated_index();
        self.region()
            .peers
            .iter()
            .filter(|p| p.id != self.meta.id)
            .filter(|p| raft.prs().get(p.id).is_none_or(|pr| pr.matched < truncated))
            .cloned()
            .collect()
    }

    /// Sends the region heartbeat (leader only).
    pub(crate) fn heartbeat_pd<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        self.heartbeat_due = false;
        if !self.is_leader() || self.pending_remove {
            return;
        }
        let hb = RegionHeartbeat {
            region: self.region().clone(),
            leader: self.meta,
            pending_peers: self.pending_peers(),
            term: self.term(),
            written_bytes: std::mem::take(&mut self.written_bytes),
            written_keys: std::mem::take(&mut self.written_keys),
            approximate_size: self.split.approximate_size.unwrap_or(0),
            approximate_keys: self.split.approximate_keys.unwrap_or(0),
        };
        if ctx
            .pd_scheduler
            .schedule(PdTask::RegionHeartbeat(Box::new(hb)))
            .is_err()
        {
            tracing::debug!(
                region_id = self.region_id,
                "pd worker stopped; heartbeat dropped"
            );
        }
    }

    /// An operator from the scheduler (see the module docs).
    pub(crate) fn on_scheduler_operator<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        resp: RegionHeartbeatResponse,
    ) {
        if !self.is_leader() || self.pending_remove || resp.region_id != self.region_id {
            return;
        }
        if resp.target_peer.is_some_and(|p| p.id != self.meta.id) {
            tracing::debug!(
                region_id = self.region_id,
                "operator for another leader ignored"
            );
            return;
        }
        let current = self.region().region_epoch.unwrap_or_default();
        let epoch = resp.region_epoch.unwrap_or(current);
        if epoch != current {
            tracing::debug!(
                region_id = self.region_id,
                ?epoch,
                ?current,
                "operator for another epoch of the region ignored"
            );
            return;
        }
        let region_id = self.region_id;
        let log = move |what: &'static str| {
            Callback::new(move |r| {
                if let Some(e) = r.error() {
                    tracing::info!(region_id, what, error = %e.message, "scheduler operator not done; the scheduler retries");
                }
            })
        };
        if let Some(tl) = resp.transfer_leader {
            if let Some(target) = tl.peer {
                if let Err(e) = self.transfer_leader(&ctx.cfg, &target) {
                    tracing::info!(region_id, target = target.id, error = %e, "leader transfer operator refused");
                }
            }
            return;
        }
        let admin = if let Some(cp) = resp.change_peer {
            AdminRequest {
                cmd_type: AdminCmdType::ChangePeer as i32,
                change_peer: Some(ChangePeerRequest {
                    change_type: cp.change_type,
                    peer: cp.peer,
                }),
                ..Default::default()
            }
        } else if let Some(v2) = resp.change_peer_v2 {
            AdminRequest {
                cmd_type: AdminCmdType::ChangePeerV2 as i32,
                change_peer_v2: Some(ChangePeerV2Request {
                    changes: v2
                        .changes
                        .into_iter()
                        .map(|c| ChangePeerRequest {
                            change_type: c.change_type,
                            peer: c.peer,
                        })
                        .collect(),
                }),
                ..Default::default()
            }
        } else if let Some(split) = resp.split_region {
            if split.keys.is_empty() {
                self.schedule_split_check(ctx, CheckPolicy::Half);
            } else {
                let ask = AskSplit {
                    epoch,
                    split_keys: split.keys,
                    callback: log("split"),
                };
                self.on_ask_split(ctx, ask);
            }
            return;
        } else {
            return;
        };
        let req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id,
                peer: Some(self.meta),
                region_epoch: Some(epoch),
                ..Default::default()
            }),
            admin_request: Some(admin),
            ..Default::default()
        };
        self.on_raft_command(ctx, req, log("change peer"));
    }
}
