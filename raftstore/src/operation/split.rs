//! Region splits, on the leader: when to measure the region, asking the scheduler for ids, and
//! what every replica does once a split is applied.
//!
//! ```text
//!  SPLIT_CHECK tick (leader, region written to since the last check)
//!     └─▶ split-check worker: size (RocksDB estimate, or a bounded scan), split keys
//!           └─▶ SplitCheckResult ─▶ keys? ─▶ pd worker: AskBatchSplit (ids) ─▶ BatchSplit
//!               (size/keys kept for heartbeats)         proposed like any admin command
//!  SplitRegion RPC / scheduler operator ─▶ AskSplit(keys) ─────────┘
//!  apply (every replica): new regions persisted in one batch ─▶ ApplyRes ─▶ on_split_applied:
//!     ranges recorded, new peers created (campaigning at once next to the old leader),
//!     leader: heartbeat + ReportBatchSplit
//! ```
//!
//! Split keys are chosen by the worker (see `worker/split_check.rs` for the key rule) or given
//! by the caller; the proposal and apply check them again against the region's epoch and range.

use proto::metapb::Region;
use raft_core::storage::state::is_initialized;

use crate::errors::{Error, Result};
use crate::msg::{AskSplit, Callback, SplitCheckResult};
use crate::peer::Peer;
use crate::poller::PollContext;
use crate::transport::Transport;
use crate::worker::pd::PdTask;
use crate::worker::split_check::{CheckPolicy, SplitCheckTask};

/// Ticks after which a size check whose result never came back (it is droppable) may run
/// again.
const CHECK_RETRY_TICKS: u64 = 100;
/// Ticks after which split keys sent to the scheduler that never turned into an applied split
/// (the scheduler or the proposal failed) may be chosen again.
const ASK_RETRY_TICKS: u64 = 100;

/// Checks caller-supplied split keys against `region`: non-empty, strictly increasing, inside
/// the region and after its start.
pub(crate) fn check_split_keys(region: &Region, split_keys: &[Vec<u8>]) -> Result<()> {
    if split_keys.is_empty() {
        return Err(Error::InvalidRequest("no split key given".into()));
    }
    let mut prev: &[u8] = &region.start_key;
    for key in split_keys {
        if key.is_empty() {
            return Err(Error::InvalidRequest("empty split key".into()));
        }
        if !raft_core::keys::key_in_region(key, region) {
            return Err(Error::KeyNotInRegion {
                key: key.clone(),
                region: Box::new(region.clone()),
            });
        }
        if key.as_slice() <= prev {
            return Err(Error::InvalidRequest(format!(
                "split key {:?} is not after the region start or the previous split key",
                key.escape_ascii().to_string()
            )));
        }
        prev = key;
    }
    Ok(())
}

impl Peer {
    /// The split-check tick: a leader whose region was written to since the last check (or
    /// whose size is unknown) has the split-check worker measure it.
    pub(crate) fn on_split_check_tick<T>(&mut self, ctx: &mut PollContext<T>) {
        if !self.is_leader() || self.pending_remove || !is_initialized(self.region()) {
            return;
        }
        let now = self.ticks;
        let retry = |since: Option<u64>, after: u64| since.is_none_or(|s| now - s >= after);
        if !retry(self.split.checking_since, CHECK_RETRY_TICKS)
            || !retry(self.split.asked_since, ASK_RETRY_TICKS)
        {
            return;
        }
        let unknown = self.split.approximate_size.is_none();
        if !unknown
            && (self.split.size_diff == 0 || self.split.size_diff < ctx.cfg.region_split_check_diff)
        {
            return;
        }
        self.schedule_split_check(ctx, CheckPolicy::Size);
    }

    /// Queues a size check of the region with `policy`.
    pub(crate) fn schedule_split_check<T>(
        &mut self,
        ctx: &mut PollContext<T>,
        policy: CheckPolicy,
    ) {
        let task = SplitCheckTask {
            region: self.region().clone(),
            policy,
            max_size: ctx.cfg.region_max_size,
            split_size: ctx.cfg.region_split_size,
            batch_limit: ctx.cfg.batch_split_limit,
            scan_limit: ctx.cfg.split_check_scan_limit,
        };
        if ctx.split_check_scheduler.schedule(task).is_err() {
            tracing::debug!(region_id = self.region_id, "split-check worker stopped");
            return;
        }
        self.split.checking_since = Some(self.ticks);
        self.split.size_diff = 0;
    }

    /// What the split-check worker found.
    pub(crate) fn on_split_check_result<T>(
        &mut self,
        ctx: &mut PollContext<T>,
        res: SplitCheckResult,
    ) {
        self.split.checking_since = None;
        if self.region().region_epoch.unwrap_or_default() != res.epoch {
            // Measured an older shape of the region; the next tick measures again.
            self.split.approximate_size = None;
            return;
        }
        self.split.approximate_size = Some(res.approximate_size);
        self.split.approximate_keys = Some(res.approximate_keys);
        if res.split_keys.is_empty() || !self.is_leader() || self.pending_remove {
            return;
        }
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            size = res.approximate_size,
            keys = res.split_keys.len(),
            "region is too large; splitting"
        );
        let region_id = self.region_id;
        let cb = Callback::new(move |resp| {
            if let Some(e) = resp.error() {
                tracing::info!(region_id, error = %e.message, "automatic split failed; retried later");
            }
        });
        self.ask_split(ctx, res.split_keys, cb);
    }

    /// A split at given keys (`SplitRegion` RPC, scheduler operator).
    pub(crate) fn on_ask_split<T: Transport>(&mut self, ctx: &mut PollContext<T>, ask: AskSplit) {
        let term = self.term();
        if self.pending_destroy || self.pending_remove || !is_initialized(self.region()) {
            return ask
                .callback
                .fail(Error::RegionNotFound(self.region_id), term);
        }
        if !self.is_leader() {
            return ask.callback.fail(self.not_leader(), term);
        }
        let current = self.region().region_epoch.unwrap_or_default();
        if ask.epoch != current {
            let e = Error::EpochNotMatch {
                message: format!(
                    "split asked for epoch (conf_ver {}, version {}), region {} is at (conf_ver {}, version {})",
                    ask.epoch.conf_ver, ask.epoch.version, self.region_id, current.conf_ver, current.version
                ),
                regions: vec![],
            };
            return ask.callback.fail(self.with_split_siblings(ctx, e), term);
        }
        if let Err(e) = check_split_keys(self.region(), &ask.split_keys) {
            return ask.callback.fail(e, term);
        }
        if ask.split_keys.len() > ctx.cfg.batch_split_limit.max(1) * 10 {
            return ask.callback.fail(
                Error::InvalidRequest(format!(
                    "{} split keys in one request; at most {}",
                    ask.split_keys.len(),
                    ctx.cfg.batch_split_limit.max(1) * 10
                )),
                term,
            );
        }
        self.ask_split(ctx, ask.split_keys, ask.callback);
    }

    /// Asks the scheduler for ids for a split at `split_keys`; the pd worker proposes the
    /// `BatchSplit`, and `cb` gets its answer.
    fn ask_split<T>(&mut self, ctx: &mut PollContext<T>, split_keys: Vec<Vec<u8>>, cb: Callback) {
        let task = PdTask::AskBatchSplit {
            region: self.region().clone(),
            split_keys,
            peer: self.meta,
            callback: cb,
        };
        if let Err(PdTask::AskBatchSplit { callback, .. }) = ctx.pd_scheduler.schedule(task) {
            callback.fail(Error::Shutdown, self.term());
            return;
        }
        self.split.asked_since = Some(self.ticks);
    }

    /// Every replica, once a split is applied: record the ranges, create the new regions' peers
    /// (they campaign at once if this peer leads, so the new regions get leaders without an
    /// election timeout), and on the leader tell the scheduler.
    pub(crate) fn on_split_applied<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        derived: Region,
        regions: Vec<Region>,
        new_regions: Vec<(Region, bool)>,
    ) {
        let campaign = self.is_leader();
        {
            let meta = ctx.store_meta.clone();
            let mut meta = meta.lock();
            meta.set_region(&derived);
            for (region, created) in &new_regions {
                if *created {
                    crate::operation::life::create_split_peer(ctx, &mut meta, region, campaign);
                }
            }
        }
        self.split = Default::default();
        if self.is_leader() {
            self.heartbeat_due = true;
            if ctx
                .pd_scheduler
                .schedule(PdTask::ReportBatchSplit { regions })
                .is_err()
            {
                tracing::debug!(
                    region_id = self.region_id,
                    "pd worker stopped; split report dropped"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keys_must_be_inside_increasing_and_after_the_start() {
        let r = Region {
            id: 1,
            start_key: b"b".to_vec(),
            end_key: b"y".to_vec(),
            ..Default::default()
        };
        check_split_keys(&r, &[b"c".to_vec(), b"d".to_vec()]).unwrap();
        assert!(check_split_keys(&r, &[]).is_err());
        assert!(check_split_keys(&r, &[b"b".to_vec()]).is_err(), "the start");
        assert!(check_split_keys(&r, &[b"d".to_vec(), b"c".to_vec()]).is_err());
        assert!(check_split_keys(&r, &[b"d".to_vec(), b"d".to_vec()]).is_err());
        assert!(matches!(
            check_split_keys(&r, &[b"z".to_vec()]),
            Err(Error::KeyNotInRegion { .. })
        ));
        assert!(check_split_keys(&r, &[vec![]]).is_err());
    }
}
