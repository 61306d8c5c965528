//! Transactional requests over an in-process [`Cluster`]: the real `tikvpb.Tikv` handlers over
//! `RaftStorage`, one service per store, reached the way a TiKV client reaches them.
//!
//! ```text
//!  test client ── kvproto request ──▶ TxnCluster::call / call_grouped
//!                                        │ 1. region of the (encoded) key: scheduler view, or a
//!                                        │    fresher one learned from EpochNotMatch
//!                                        │ 2. peer: NotLeader hint, scheduler's leader, else any
//!                                        │ 3. Context = (region id, epoch, peer)
//!                                        ▼
//!                         store N's TikvService<RaftStorage> (its own latches) ──▶ raftstore
//!                                        │ region_error? retry per kind; gRPC status? returned
//!                                        ▼
//!                                    response
//! ```
//!
//! Each store has exactly one service, as a `tinykv-server` process does, so the store's latches
//! serialize every command it runs. A restarted store gets a fresh service: stop and start stores
//! through [`TxnCluster::stop_store`] / [`TxnCluster::start_store`] so no service outlives its
//! router.
//!
//! Transactional keys are routed in the memcomparable-encoded key space (regions are split on
//! encoded user keys). Requests may be retried after a timeout although the first attempt was
//! applied: every transactional command is idempotent for its own transaction, so this is safe.
//! What to *do* with transactional errors (locks, conflicts) is left to the caller.

mod rpc;
mod tso;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kvserver::config::Limits;
use kvserver::mvcc::key::encode_bytes;
use kvserver::service::TikvService;
use kvserver::storage::RaftStorage;
use parking_lot::Mutex;
use proto::errorpb;
use proto::metapb::{Peer, Region};
use raft_core::keys;

use crate::cluster::{describe, Cluster};
use crate::errors::{Error, Result};

pub use rpc::{RpcFuture, TxnRpc};
pub use tso::LocalTso;

/// How long one command may wait inside a store (read index, proposal) before the service
/// answers `ServerIsBusy` and the client tries again, possibly elsewhere.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);

/// Routes transactional requests to region leaders of a cluster. Share it (`Arc`) between the
/// client tasks of a test.
pub struct TxnCluster {
    cluster: Arc<Cluster>,
    limits: Limits,
    timeout: Duration,
    /// Store id → that store's service, created on first use.
    services: Mutex<HashMap<u64, TikvService<RaftStorage>>>,
    /// Region id → the peer that last served a request (so it is the leader).
    leaders: Mutex<HashMap<u64, Peer>>,
}

/// What one attempt led to.
enum Step<T> {
    /// A response without a region error.
    Done(Region, T),
    /// The region serving the first key does not hold every key: group them again.
    Regroup,
    /// Try again: right away, or after the retry interval.
    Again { why: String, backoff: bool },
}

impl TxnCluster {
    /// Routes over `cluster` (started or not), with [`Limits::new_test_config`] and a deadline
    /// of three times the cluster's request timeout per call.
    pub fn new(cluster: Arc<Cluster>) -> TxnCluster {
        let timeout = cluster.config().request_timeout * 3;
        TxnCluster {
            cluster,
            limits: Limits::new_test_config(),
            timeout,
            services: Mutex::new(HashMap::new()),
            leaders: Mutex::new(HashMap::new()),
        }
    }

    /// Sets how long one call keeps retrying (it also makes at least the cluster's
    /// `min_attempts` attempts).
    pub fn with_timeout(mut self, timeout: Duration) -> TxnCluster {
        self.timeout = timeout;
        self
    }

    /// The cluster.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// Stops store `store_id` and forgets its service.
    pub fn stop_store(&self, store_id: u64) {
        // Held until the store is down, so nobody caches a service over the dying router (a
        // second service after the restart would mean a second latch table on one store).
        let mut services = self.services.lock();
        services.remove(&store_id);
        self.cluster.stop_store(store_id);
    }

    /// Starts store `store_id` unless it runs; its next request gets a fresh service over the
    /// new router.
    pub fn start_store(&self, store_id: u64) -> Result<()> {
        if self.cluster.is_running(store_id) {
            return Ok(());
        }
        // Nothing can be cached while the store is down; this only matters if it was stopped
        // behind our back.
        self.services.lock().remove(&store_id);
        self.cluster.start_store(store_id)
    }

    /// The service of running store `store_id`.
    pub fn service(&self, store_id: u64) -> Result<TikvService<RaftStorage>> {
        // The lock covers the router lookup too, so a concurrent stop/start cannot leave a
        // service over a dead router in the map.
        let mut services = self.services.lock();
        if let Some(svc) = services.get(&store_id) {
            return Ok(svc.clone());
        }
        let router = self.cluster.router(store_id)?;
        let storage = RaftStorage::new(router).with_timeout(COMMAND_TIMEOUT);
        let svc = TikvService::new(storage, self.limits.clone());
        services.insert(store_id, svc.clone());
        Ok(svc)
    }

    /// The region holding transactional (raw user) key `key`, as the scheduler knows it.
    pub fn region_of(&self, key: &[u8]) -> Option<Region> {
        self.cluster.pd().region_by_key(&encode_bytes(key))
    }

    /// Sends `req` to the leader of the region of its route key, retrying region errors until
    /// the call's deadline. A gRPC status is returned as [`Error::Rpc`] without retrying.
    pub async fn call<R: TxnRpc>(&self, req: R) -> Result<R::Resp> {
        self.call_routed(req).await.map(|(_, resp)| resp)
    }

    /// [`TxnCluster::call`], also returning the region that answered (scans continue at its
    /// end).
    pub async fn call_routed<R: TxnRpc>(&self, req: R) -> Result<(Region, R::Resp)> {
        let key = req.route_key().to_vec();
        self.call_at(&key, req).await
    }

    /// Like [`TxnCluster::call_routed`], but sent to the region holding raw key `key`: for
    /// requests that cover a whole region (resolving every lock of a transaction there, scanning
    /// locks) or a reverse scan.
    pub async fn call_at<R: TxnRpc>(&self, key: &[u8], req: R) -> Result<(Region, R::Resp)> {
        match self.route(&[encode_bytes(key)], req).await? {
            Some(done) => Ok(done),
            None => unreachable!("a single key always lies in the region routed by it"),
        }
    }

    /// Sends one request per region for `items` (grouped by the raw key `key` returns), built
    /// by `build` from the group; returns each group with its response, in key order of the
    /// groups' first items. A group that turns out to span regions (they split or merged since
    /// the scheduler's view) is split again and resent.
    pub async fn call_grouped<T, R, K, B>(
        &self,
        items: Vec<T>,
        key: K,
        build: B,
    ) -> Result<Vec<(Vec<T>, R::Resp)>>
    where
        T: Clone,
        R: TxnRpc,
        K: Fn(&T) -> &[u8],
        B: Fn(&[T]) -> R,
    {
        let deadline = Instant::now() + self.timeout;
        let mut pending: VecDeque<Vec<T>> = self.group_by_region(items, &key).into();
        let mut out = Vec::with_capacity(pending.len());
        while let Some(group) = pending.pop_front() {
            let keys: Vec<Vec<u8>> = group.iter().map(|t| encode_bytes(key(t))).collect();
            match self.route(&keys, build(&group)).await? {
                Some((_, resp)) => out.push((group, resp)),
                None => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout {
                            what: "grouping keys by region".into(),
                            attempts: 0,
                            last: "the scheduler's regions keep disagreeing with the stores'"
                                .into(),
                        });
                    }
                    tokio::time::sleep(self.cluster.config().retry_interval).await;
                    for g in self.group_by_region(group, &key).into_iter().rev() {
                        pending.push_front(g);
                    }
                }
            }
        }
        Ok(out)
    }

    /// `items` split by the region (scheduler's view) of their keys, in key order; items of an
    /// unknown region each form their own group (routing waits for the region to appear).
    pub fn group_by_region<T>(&self, items: Vec<T>, key: impl Fn(&T) -> &[u8]) -> Vec<Vec<T>> {
        let mut groups: Vec<(Vec<u8>, Option<u64>, Vec<T>)> = Vec::new();
        for item in items {
            let enc = encode_bytes(key(&item));
            let region = self.cluster.pd().region_by_key(&enc);
            let id = region.as_ref().map(|r| r.id);
            match groups.iter_mut().find(|(_, g, _)| id.is_some() && *g == id) {
                Some((_, _, members)) => members.push(item),
                None => groups.push((region.map_or(enc, |r| r.start_key), id, vec![item])),
            }
        }
        groups.sort_by(|a, b| a.0.cmp(&b.0));
        groups.into_iter().map(|(_, _, g)| g).collect()
    }

    /// Retries `req` until a response without region error; `None` if the region of `keys[0]`
    /// does not hold the other keys.
    async fn route<R: TxnRpc>(
        &self,
        keys: &[Vec<u8>],
        req: R,
    ) -> Result<Option<(Region, R::Resp)>> {
        let cfg = self.cluster.config();
        let deadline = Instant::now() + self.timeout;
        let mut fresher: Option<Region> = None;
        let mut avoid = HashSet::new();
        let mut attempts = 0;
        loop {
            let (why, backoff) = match self
                .attempt(keys, &req, &mut fresher, &mut avoid, attempts)
                .await?
            {
                Step::Done(region, resp) => return Ok(Some((region, resp))),
                Step::Regroup => return Ok(None),
                Step::Again { why, backoff } => (why, backoff),
            };
            attempts += 1;
            tracing::debug!(attempt = attempts, why = %why, "transactional request retried");
            if attempts >= cfg.min_attempts && Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!(
                        "transactional request for key {:?}",
                        keys[0].escape_ascii().to_string()
                    ),
                    attempts,
                    last: why,
                });
            }
            if backoff {
                tokio::time::sleep(cfg.retry_interval).await;
            }
        }
    }

    async fn attempt<R: TxnRpc>(
        &self,
        keys: &[Vec<u8>],
        req: &R,
        fresher: &mut Option<Region>,
        avoid: &mut HashSet<u64>,
        attempt: usize,
    ) -> Result<Step<R::Resp>> {
        let again = |why: String, backoff| Ok(Step::Again { why, backoff });
        let Some(region) = self.route_region(&keys[0], fresher) else {
            return again("no known region contains the key".into(), true);
        };
        if keys[1..].iter().any(|k| !keys::key_in_region(k, &region)) {
            return Ok(Step::Regroup);
        }
        let Some(peer) = self.choose_peer(&region, avoid, attempt) else {
            return again(format!("no running peer of region {}", region.id), true);
        };
        let svc = match self.service(peer.store_id) {
            Ok(svc) => svc,
            Err(e) => {
                self.avoid(region.id, peer, avoid);
                return again(e.to_string(), false);
            }
        };
        let mut req = req.clone();
        let ctx = req.context_mut();
        ctx.region_id = region.id;
        ctx.region_epoch = region.region_epoch;
        ctx.peer = Some(peer);
        let resp = R::call(&svc, req)
            .await
            .map_err(|status| Error::Rpc(Box::new(status)))?
            .into_inner();
        let Some(err) = R::region_error(&resp) else {
            self.leaders.lock().insert(region.id, peer);
            return Ok(Step::Done(region, resp));
        };
        let why = format!(
            "region {} peer {} on store {}: {}",
            region.id,
            peer.id,
            peer.store_id,
            describe(err)
        );
        let backoff = self.on_region_error(&region, peer, err, &keys[0], fresher, avoid);
        again(why, backoff)
    }

    /// Updates the routing state after `err` from `peer`; whether to wait before retrying.
    fn on_region_error(
        &self,
        region: &Region,
        peer: Peer,
        err: &errorpb::Error,
        key: &[u8],
        fresher: &mut Option<Region>,
        avoid: &mut HashSet<u64>,
    ) -> bool {
        if let Some(nl) = &err.not_leader {
            match nl.leader.filter(|l| l.id != 0 && l.id != peer.id) {
                Some(leader) => {
                    self.leaders.lock().insert(region.id, leader);
                    avoid.remove(&leader.id);
                    false
                }
                None => {
                    self.avoid(region.id, peer, avoid);
                    true
                }
            }
        } else if let Some(e) = &err.epoch_not_match {
            *fresher = e
                .current_regions
                .iter()
                .find(|r| keys::key_in_region(key, r))
                .cloned();
            fresher.is_none()
        } else if err.key_not_in_region.is_some() {
            *fresher = None;
            true
        } else if err.stale_command.is_some() {
            true
        } else {
            // RegionNotFound, ServerIsBusy (a proposal or read index that timed out: the peer
            // may be a deposed leader), StoreNotMatch, a store shutting down: ask elsewhere.
            self.avoid(region.id, peer, avoid);
            true
        }
    }

    /// The region to send a request for encoded key `key` to: the scheduler's, unless
    /// `fresher` (from a store's `EpochNotMatch`) is at least as new.
    fn route_region(&self, key: &[u8], fresher: &Option<Region>) -> Option<Region> {
        crate::cluster::newest_region(self.cluster.pd().region_by_key(key), fresher)
    }

    /// The peer of `region` to try: the last known leader, else the scheduler's, else running
    /// peers in turn, skipping those in `avoid` (reset once every peer failed).
    fn choose_peer(
        &self,
        region: &Region,
        avoid: &mut HashSet<u64>,
        attempt: usize,
    ) -> Option<Peer> {
        let hints = [
            self.leaders.lock().get(&region.id).copied(),
            self.cluster.pd().leader_of(region.id),
        ];
        crate::cluster::pick_peer(
            region,
            hints,
            |s| self.cluster.is_running(s),
            avoid,
            attempt,
        )
    }

    /// Stops sending this call to `peer` and forgets it as the region's leader.
    fn avoid(&self, region_id: u64, peer: Peer, avoid: &mut HashSet<u64>) {
        avoid.insert(peer.id);
        let mut leaders = self.leaders.lock();
        if leaders.get(&region_id).is_some_and(|l| l.id == peer.id) {
            leaders.remove(&region_id);
        }
    }
}

#[cfg(test)]
mod tests;
