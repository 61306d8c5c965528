//! The leader's side of the scheduler protocol: region heartbeats (on becoming leader, after
//! the region changes, and every `pd-heartbeat-tick-interval`), and the operators that come back
//! in heartbeat responses.

use proto::eraftpb::ConfChangeType;
use proto::pdpb::RegionHeartbeatResponse;

use crate::peer::Peer;
use crate::poller::PollContext;
use crate::transport::Transport;
use crate::worker::pd::{PdTask, RegionHeartbeat};

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
        if !self.is_leader() {
            return;
        }
        let hb = RegionHeartbeat {
            region: self.region().clone(),
            leader: self.meta,
            pending_peers: self.pending_peers(),
            term: self.term(),
            written_bytes: std::mem::take(&mut self.written_bytes),
            written_keys: std::mem::take(&mut self.written_keys),
            approximate_size: 0,
            approximate_keys: 0,
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

    /// An operator from the scheduler. Only the leader acts, and only on an operator built for
    /// the region as it is now (the scheduler re-sends until it sees the result).
    pub(crate) fn on_scheduler_operator<T: Transport>(
        &mut self,
        _ctx: &mut PollContext<T>,
        resp: RegionHeartbeatResponse,
    ) {
        if !self.is_leader() || resp.region_id != self.region_id {
            return;
        }
        let current = self.region().region_epoch.unwrap_or_default();
        if let Some(epoch) = resp.region_epoch {
            if epoch.version < current.version || epoch.conf_ver < current.conf_ver {
                tracing::debug!(region_id = self.region_id, "stale operator ignored");
                return;
            }
        }
        if let Some(tl) = resp.transfer_leader {
            if let Some(target) = tl.peer {
                self.transfer_leader(&target);
            }
            return;
        }
        if let Some(cp) = resp.change_peer {
            // Membership changes arrive with the multi-raft work; until then the scheduler's
            // operator stays pending and is re-sent.
            let change = ConfChangeType::try_from(cp.change_type)
                .map(|t| t.as_str_name())
                .unwrap_or("unknown");
            tracing::debug!(region_id = self.region_id, change, peer = ?cp.peer, "change peer operator not supported yet");
        }
    }
}
