//! Looking inside the cluster: status snapshots of the running stores, the scheduler's routing
//! view, direct engine reads, and waiting for any of them to reach a condition.
//!
//! Every wait polls with a deadline ([`crate::ClusterConfig::wait_timeout`]) — never a fixed
//! sleep — and the panicking variants say what they were waiting for.

use std::time::{Duration, Instant};

use proto::metapb::{Peer, Region};
use proto::raft_serverpb::RaftApplyState;
use raft_core::engine::{Peekable, CF_DEFAULT};
use raft_core::keys;
use raft_core::storage::state::load_apply_state;
use raftstore::{RegionStatus, StoreStatus};

use super::Cluster;

/// How often waits re-check their condition.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Polls `cond` until it holds (`true`) or `timeout` passes (`false`).
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

impl Cluster {
    /// Waits until `cond` holds, for up to the configured wait timeout; panics naming `what`
    /// otherwise.
    pub fn must_wait(&self, what: &str, cond: impl FnMut() -> bool) {
        let timeout = self.cfg.wait_timeout;
        assert!(
            wait_for(timeout, cond),
            "timed out after {timeout:?} waiting for {what}"
        );
    }

    /// The status of a running store; `None` if it is stopped.
    pub fn store_status(&self, store_id: u64) -> Option<StoreStatus> {
        let stores = self.stores.read();
        stores.get(&store_id)?.node.as_ref().map(|n| n.status())
    }

    /// The status of store `store_id`'s peer of `region_id`, if the store runs and hosts one.
    pub fn region_status(&self, store_id: u64, region_id: u64) -> Option<RegionStatus> {
        self.store_status(store_id)?
            .regions
            .into_iter()
            .find(|r| r.region.id == region_id)
    }

    /// The region containing `key` as the scheduler knows it, waiting until one is reported.
    pub fn get_region(&self, key: &[u8]) -> Region {
        let mut found = None;
        self.must_wait(
            &format!("a region containing {:?}", String::from_utf8_lossy(key)),
            || {
                found = self.pd.region_by_key(key);
                found.is_some()
            },
        );
        found.expect("waited for it")
    }

    /// The leader of `region_id` as the scheduler knows it, waiting up to the wait timeout for
    /// one to be reported; `None` if none was.
    pub fn leader_of_region(&self, region_id: u64) -> Option<Peer> {
        let mut leader = None;
        wait_for(self.cfg.wait_timeout, || {
            leader = self.pd.leader_of(region_id);
            leader.is_some()
        });
        leader
    }

    /// Reads `key` of `cf` straight from store `store_id`'s kv engine (what it has applied).
    pub fn engine_get_cf(&self, store_id: u64, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
        let engines = self.engines(store_id).expect("store of this cluster");
        engines
            .kv
            .get_value_cf(cf, &keys::data_key(key))
            .unwrap_or_else(|e| panic!("read store {store_id}'s engine: {e}"))
    }

    /// Waits until store `store_id` has applied `key` = `value` in `cf`.
    pub fn must_get_cf_equal_on(&self, store_id: u64, cf: &str, key: &[u8], value: &[u8]) {
        let mut last = None;
        let ok = wait_for(self.cfg.wait_timeout, || {
            last = self.engine_get_cf(store_id, cf, key);
            last.as_deref() == Some(value)
        });
        assert!(
            ok,
            "store {store_id}: {cf} {:?} is {:?}, expected {:?}",
            String::from_utf8_lossy(key),
            last.as_deref().map(String::from_utf8_lossy),
            String::from_utf8_lossy(value)
        );
    }

    /// Waits until store `store_id` has no `key` in `cf`.
    pub fn must_get_cf_none_on(&self, store_id: u64, cf: &str, key: &[u8]) {
        let mut last = None;
        let ok = wait_for(self.cfg.wait_timeout, || {
            last = self.engine_get_cf(store_id, cf, key);
            last.is_none()
        });
        assert!(
            ok,
            "store {store_id}: {cf} {:?} is still {:?}",
            String::from_utf8_lossy(key),
            last.as_deref().map(String::from_utf8_lossy)
        );
    }

    /// [`Cluster::must_get_cf_equal_on`] in `CF_DEFAULT`.
    pub fn must_get_equal_on(&self, store_id: u64, key: &[u8], value: &[u8]) {
        self.must_get_cf_equal_on(store_id, CF_DEFAULT, key, value);
    }

    /// [`Cluster::must_get_cf_none_on`] in `CF_DEFAULT`.
    pub fn must_get_none_on(&self, store_id: u64, key: &[u8]) {
        self.must_get_cf_none_on(store_id, CF_DEFAULT, key);
    }

    /// The durable apply state of `region_id` on store `store_id` (running or not).
    pub fn apply_state(&self, store_id: u64, region_id: u64) -> Option<RaftApplyState> {
        let engines = self.engines(store_id).expect("store of this cluster");
        load_apply_state(&engines.kv, region_id)
            .unwrap_or_else(|e| panic!("read store {store_id}'s apply state: {e}"))
    }

    /// Waits until, on every running store, every peer's log is trimmed to within twice the
    /// GC count limit of its applied index (`applied - truncated <= 2 * limit`); panics listing
    /// the peers that are not.
    pub fn must_respect_log_gc(&self, limit: u64) {
        let mut offenders = vec![];
        let ok = wait_for(self.cfg.wait_timeout, || {
            offenders.clear();
            for store_id in self.running_store_ids() {
                let Some(status) = self.store_status(store_id) else {
                    continue;
                };
                for r in status.regions {
                    let kept = r.applied_index.saturating_sub(r.truncated_index);
                    if kept > 2 * limit {
                        offenders.push(format!(
                            "store {store_id} region {}: applied {} truncated {}",
                            r.region.id, r.applied_index, r.truncated_index
                        ));
                    }
                }
            }
            offenders.is_empty()
        });
        assert!(
            ok,
            "logs not trimmed to 2 x {limit} entries: {}",
            offenders.join("; ")
        );
    }
}
