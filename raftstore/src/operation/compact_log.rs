//! Raft-log GC: the leader proposes `CompactLog` so every replica truncates its log.
//!
//! Applying `CompactLog` moves the truncated state in `RaftApplyState` (written with the
//! applied data, synced); raft-core then stages the deletion of the compacted entries into the
//! peer's next raft-engine batch. Because the apply write is synced first, a crash can never
//! leave the log shorter than the durable applied index.

use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, CompactLogRequest, RaftCmdRequest, RaftRequestHeader,
};

use crate::config::RaftstoreConfig;
use crate::peer::{Peer, ProposalCb};
use crate::poller::PollContext;
use crate::transport::Transport;

/// The log's state as the GC decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LogState {
    /// Durable applied index of the leader.
    pub(crate) applied: u64,
    /// Last compacted index.
    pub(crate) truncated: u64,
    /// Smallest index every voter has replicated.
    pub(crate) replicated: u64,
    /// Approximate bytes of entries since the last compaction.
    pub(crate) log_bytes: u64,
}

/// Where to compact the log to, if anywhere (TiKV's policy):
/// - beyond the count or size limit, up to the applied index, even if a follower lags (it will
///   be sent a snapshot);
/// - otherwise up to the slowest voter, once that is more than the threshold past the
///   truncated index, so followers keep catching up from the log.
pub(crate) fn compact_index(cfg: &RaftstoreConfig, s: LogState) -> Option<u64> {
    if s.applied <= s.truncated {
        return None;
    }
    let idx = if s.applied - s.truncated > cfg.raft_log_gc_count_limit
        || s.log_bytes >= cfg.raft_log_gc_size_limit
    {
        s.applied
    } else if s.replicated > s.truncated && s.replicated - s.truncated > cfg.raft_log_gc_threshold {
        s.replicated.min(s.applied)
    } else {
        return None;
    };
    (idx > s.truncated).then_some(idx)
}

impl Peer {
    /// The raft-log GC tick (leader only).
    pub(crate) fn on_raft_log_gc_tick<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        if !self.is_leader() {
            self.compact_proposed = 0;
            return;
        }
        let storage = self.group().storage();
        let truncated = storage.truncated_index();
        if self.compact_proposed > truncated {
            // The last one is not applied yet.
            return;
        }
        let raft = &self.group().raw_node().raft;
        let replicated = raft
            .prs()
            .iter()
            .filter(|(id, _)| raft.prs().conf().voters().contains(**id))
            .map(|(_, p)| p.matched)
            .min()
            .unwrap_or(0);
        let state = LogState {
            applied: storage.applied_index(),
            truncated,
            replicated,
            log_bytes: self.log_bytes_since_compact,
        };
        let Some(index) = compact_index(&ctx.cfg, state) else {
            return;
        };
        let term = match raft::Storage::term(self.group().storage(), index) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(region_id = self.region_id, peer_id = self.meta.id, index, error = %e, "cannot compact: term unknown");
                return;
            }
        };
        let req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id: self.region_id,
                peer: Some(self.meta),
                region_epoch: self.region().region_epoch,
                ..Default::default()
            }),
            admin_request: Some(AdminRequest {
                cmd_type: AdminCmdType::CompactLog as i32,
                compact_log: Some(CompactLogRequest {
                    compact_index: index,
                    compact_term: term,
                    voter_replicated_index: replicated,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        tracing::debug!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            index,
            term,
            "proposing log compaction"
        );
        self.propose_pending_write(ctx);
        let before = self.group().raw_node().raft.raft_log.last_index();
        // Nobody waits for the answer.
        self.propose(
            ctx,
            req,
            ProposalCb::new(crate::msg::Callback::new(|_| {}), 0),
        );
        let after = self.group().raw_node().raft.raft_log.last_index();
        if after > before {
            self.compact_proposed = after;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(count: u64, threshold: u64) -> RaftstoreConfig {
        RaftstoreConfig {
            raft_log_gc_count_limit: count,
            raft_log_gc_threshold: threshold,
            raft_log_gc_size_limit: 1 << 20,
            ..RaftstoreConfig::new_test_config()
        }
    }

    fn s(applied: u64, truncated: u64, replicated: u64, log_bytes: u64) -> LogState {
        LogState {
            applied,
            truncated,
            replicated,
            log_bytes,
        }
    }

    #[test]
    fn gc_decisions() {
        let c = cfg(100, 10);
        // Nothing applied past the truncated index.
        assert_eq!(compact_index(&c, s(5, 5, 5, 0)), None);
        // Over the count limit: up to applied even though a follower is far behind.
        assert_eq!(compact_index(&c, s(200, 5, 6, 0)), Some(200));
        // At the limit exactly: wait for the slowest voter instead.
        assert_eq!(compact_index(&c, s(105, 5, 10, 0)), None);
        assert_eq!(compact_index(&c, s(105, 5, 16, 0)), Some(16));
        // Over the size limit.
        assert_eq!(compact_index(&c, s(20, 5, 6, 2 << 20)), Some(20));
        // The replicated index never goes past applied.
        assert_eq!(compact_index(&c, s(30, 5, 50, 0)), Some(30));
        // Small gaps are left alone.
        assert_eq!(compact_index(&c, s(14, 5, 14, 0)), None);
    }
}
