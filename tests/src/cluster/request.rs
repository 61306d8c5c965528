//! Client operations: route a command to the leader of the region owning a key, retrying the way
//! a real client does.
//!
//! Routing starts from the freshest knowledge available: a leader named by an earlier
//! `NotLeader` hint, else the scheduler's view (learned from heartbeats), else any running peer.
//! `NotLeader` hints are followed; `EpochNotMatch` refreshes the region from the regions the store
//! returned; a peer that times out or refuses is avoided until every peer has failed. An
//! operation fails only after [`ClusterConfig::request_timeout`] **and**
//! [`ClusterConfig::min_attempts`] attempts.
//!
//! [`ClusterConfig::request_timeout`]: crate::ClusterConfig::request_timeout
//! [`ClusterConfig::min_attempts`]: crate::ClusterConfig::min_attempts

use std::collections::HashSet;
use std::time::{Duration, Instant};

use proto::errorpb;
use proto::metapb::{Peer, Region};
use proto::raft_cmdpb::{CmdType, RaftCmdRequest, Request};
use raft_core::engine::CF_DEFAULT;
use raft_core::keys;
use raftstore::CmdResponse;

use super::Cluster;
use crate::cmd;
use crate::errors::{Error, Result};

/// A key and its value, as scans return them.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// Counts attempts and decides when an operation has tried long enough.
struct Attempts {
    what: String,
    deadline: Instant,
    min: usize,
    n: usize,
    last: String,
}

impl Attempts {
    fn new(what: String, timeout: Duration, min: usize) -> Attempts {
        Attempts {
            what,
            deadline: Instant::now() + timeout,
            min,
            n: 0,
            last: String::new(),
        }
    }

    /// Records a failed attempt; errors out once both budgets are spent.
    fn failed(&mut self, why: String) -> Result<()> {
        self.n += 1;
        tracing::debug!(attempt = self.n, what = %self.what, why = %why, "request attempt failed");
        self.last = why;
        if self.n >= self.min && Instant::now() >= self.deadline {
            return Err(Error::Timeout {
                what: std::mem::take(&mut self.what),
                attempts: self.n,
                last: std::mem::take(&mut self.last),
            });
        }
        Ok(())
    }
}

/// What to do after one answer.
enum Verdict {
    /// Try again right away (a fresh leader hint or region to use).
    Retry,
    /// Try again after the retry interval (no leader yet, store busy, ...).
    Backoff,
}

impl Cluster {
    /// Sends `req` to store `store_id` and waits up to `timeout` for its answer, without any
    /// retry or routing.
    pub fn call_command_on_store(
        &self,
        store_id: u64,
        req: RaftCmdRequest,
        timeout: Duration,
    ) -> Result<CmdResponse> {
        let router = self.router(store_id)?;
        Ok(router.execute_blocking(req, timeout)?)
    }

    /// Sends `req` to the leader of the region named in its header, following `NotLeader` hints
    /// and retrying timeouts and stale commands, for up to `timeout`. The header's epoch is kept
    /// as given, so any other region error (`EpochNotMatch`, `KeyNotInRegion`, ...) is returned
    /// in the response for the caller to inspect.
    pub fn call_command_on_leader(
        &self,
        mut req: RaftCmdRequest,
        timeout: Duration,
    ) -> Result<CmdResponse> {
        let region_id = req.header.as_ref().map_or(0, |h| h.region_id);
        let mut attempts = Attempts::new(
            format!("command on the leader of region {region_id}"),
            timeout,
            self.cfg.min_attempts,
        );
        let mut avoid = HashSet::new();
        loop {
            let Some(region) = self.pd.region_info(region_id).map(|r| r.meta) else {
                attempts.failed(format!("region {region_id} is not known to the scheduler"))?;
                std::thread::sleep(self.cfg.retry_interval);
                continue;
            };
            let Some(peer) = self.choose_peer(&region, &mut avoid, attempts.n) else {
                attempts.failed(format!("no running peer of region {region_id}"))?;
                std::thread::sleep(self.cfg.retry_interval);
                continue;
            };
            req.header.get_or_insert_with(Default::default).peer = Some(peer);
            let resp =
                match self.call_command_on_store(peer.store_id, req.clone(), self.cfg.send_timeout)
                {
                    Ok(resp) => resp,
                    Err(e) => {
                        self.send_failed(region_id, peer, &mut avoid);
                        attempts
                            .failed(format!("peer {} on store {}: {e}", peer.id, peer.store_id))?;
                        continue;
                    }
                };
            let Some(err) = resp.response.header.as_ref().and_then(|h| h.error.as_ref()) else {
                return Ok(resp);
            };
            let verdict = if err.not_leader.is_some() || err.region_not_found.is_some() {
                self.on_not_leader(region_id, peer, err, &mut avoid)
            } else if err.stale_command.is_some() || err.server_is_busy.is_some() {
                Verdict::Backoff
            } else {
                return Ok(resp);
            };
            attempts.failed(describe(err))?;
            if let Verdict::Backoff = verdict {
                std::thread::sleep(self.cfg.retry_interval);
            }
        }
    }

    /// Runs `reqs` on the region owning `key`, routed and retried until it succeeds or `timeout`
    /// passes. Only a response without a region error is returned.
    pub fn request(
        &self,
        key: &[u8],
        reqs: Vec<Request>,
        timeout: Duration,
    ) -> Result<CmdResponse> {
        let mut attempts = Attempts::new(
            format!("request for key {:?}", String::from_utf8_lossy(key)),
            timeout,
            self.cfg.min_attempts,
        );
        let mut avoid = HashSet::new();
        // A region newer than the scheduler's, learned from an EpochNotMatch.
        let mut fresher: Option<Region> = None;
        loop {
            let Some(region) = self.route(key, &fresher) else {
                attempts.failed("no known region contains the key".into())?;
                std::thread::sleep(self.cfg.retry_interval);
                continue;
            };
            let Some(peer) = self.choose_peer(&region, &mut avoid, attempts.n) else {
                attempts.failed(format!("no running peer of region {}", region.id))?;
                std::thread::sleep(self.cfg.retry_interval);
                continue;
            };
            let req = cmd::request(&region, peer, reqs.clone());
            let resp = match self.call_command_on_store(peer.store_id, req, self.cfg.send_timeout) {
                Ok(resp) => resp,
                Err(e) => {
                    self.send_failed(region.id, peer, &mut avoid);
                    attempts.failed(format!("peer {} on store {}: {e}", peer.id, peer.store_id))?;
                    continue;
                }
            };
            let Some(err) = resp.response.header.as_ref().and_then(|h| h.error.as_ref()) else {
                // Only the leader serves commands: remember it for the next request.
                self.leader_hints.lock().insert(region.id, peer);
                return Ok(resp);
            };
            let verdict = if err.not_leader.is_some() || err.region_not_found.is_some() {
                self.on_not_leader(region.id, peer, err, &mut avoid)
            } else if let Some(e) = &err.epoch_not_match {
                fresher = e
                    .current_regions
                    .iter()
                    .find(|r| keys::key_in_region(key, r))
                    .cloned();
                if fresher.is_some() {
                    Verdict::Retry
                } else {
                    Verdict::Backoff
                }
            } else {
                if err.key_not_in_region.is_some() || err.store_not_match.is_some() {
                    fresher = None;
                }
                Verdict::Backoff
            };
            attempts.failed(describe(err))?;
            if let Verdict::Backoff = verdict {
                std::thread::sleep(self.cfg.retry_interval);
            }
        }
    }

    /// The region to send a request for `key` to: see [`newest_region`].
    fn route(&self, key: &[u8], fresher: &Option<Region>) -> Option<Region> {
        newest_region(self.pd.region_by_key(key), fresher)
    }

    /// The peer of `region` to try next: see [`pick_peer`].
    fn choose_peer(
        &self,
        region: &Region,
        avoid: &mut HashSet<u64>,
        attempt: usize,
    ) -> Option<Peer> {
        let hints = [
            self.leader_hints.lock().get(&region.id).copied(),
            self.pd.leader_of(region.id),
        ];
        pick_peer(region, hints, |s| self.is_running(s), avoid, attempt)
    }

    /// A peer did not answer (stopped store, timeout): route around it.
    fn send_failed(&self, region_id: u64, peer: Peer, avoid: &mut HashSet<u64>) {
        avoid.insert(peer.id);
        let mut hints = self.leader_hints.lock();
        if hints.get(&region_id).is_some_and(|h| h.id == peer.id) {
            hints.remove(&region_id);
        }
    }

    /// `NotLeader` / `RegionNotFound` from `peer`: follow the hint if there is a new one.
    fn on_not_leader(
        &self,
        region_id: u64,
        peer: Peer,
        err: &errorpb::Error,
        avoid: &mut HashSet<u64>,
    ) -> Verdict {
        let hint = err
            .not_leader
            .as_ref()
            .and_then(|nl| nl.leader)
            .filter(|l| l.id != 0 && l.id != peer.id);
        match hint {
            Some(leader) => {
                self.leader_hints.lock().insert(region_id, leader);
                avoid.remove(&leader.id);
                Verdict::Retry
            }
            None => {
                self.send_failed(region_id, peer, avoid);
                Verdict::Backoff
            }
        }
    }

    fn run_one(&self, key: &[u8], req: Request, expect: CmdType) -> Result<CmdResponse> {
        let resp = self.request(key, vec![req], self.cfg.request_timeout)?;
        let got = resp.response.responses.first().map(|r| r.cmd_type);
        if resp.response.responses.len() != 1 || got != Some(expect as i32) {
            return Err(Error::UnexpectedResponse(format!(
                "expected one {expect:?} response, got {:?}",
                resp.response.responses
            )));
        }
        Ok(resp)
    }

    /// Writes `key` = `value` in `cf` through Raft.
    pub fn put_cf(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.run_one(key, cmd::put(cf, key, value), CmdType::Put)
            .map(|_| ())
    }

    /// Reads `key` in `cf` through the leader (linearizable). `raft_cmdpb` cannot tell an empty
    /// value from a missing key, so both read as `None`.
    pub fn get_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let resp = self.run_one(key, cmd::get(cf, key), CmdType::Get)?;
        let value = resp.response.responses[0]
            .get
            .as_ref()
            .map(|g| g.value.clone())
            .unwrap_or_default();
        Ok((!value.is_empty()).then_some(value))
    }

    /// Deletes `key` in `cf` through Raft.
    pub fn delete_cf(&self, cf: &str, key: &[u8]) -> Result<()> {
        self.run_one(key, cmd::delete(cf, key), CmdType::Delete)
            .map(|_| ())
    }

    /// Every pair of `cf` in `[start, end)` (`end` empty = no bound), read region by region from
    /// each region leader's consistent snapshot.
    pub fn try_scan_cf(&self, cf: &str, start: &[u8], end: &[u8]) -> Result<Vec<KvPair>> {
        let mut out = vec![];
        let mut cur = start.to_vec();
        loop {
            let resp = self.run_one(&cur, cmd::snap(), CmdType::Snap)?;
            let snap = resp.snapshot.ok_or_else(|| {
                Error::UnexpectedResponse("Snap response without a snapshot".into())
            })?;
            let region = snap.region().clone();
            if !keys::key_in_region(&cur, &region) {
                return Err(Error::UnexpectedResponse(format!(
                    "snapshot of region {} does not cover the key it was routed by",
                    region.id
                )));
            }
            snap.scan_cf(cf, &cur, end, |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                Ok(true)
            })?;
            if region.end_key.is_empty() || (!end.is_empty() && region.end_key.as_slice() >= end) {
                return Ok(out);
            }
            cur = region.end_key;
        }
    }

    /// [`Cluster::put_cf`] in `CF_DEFAULT`; panics if it cannot be done.
    pub fn must_put(&self, key: &[u8], value: &[u8]) {
        self.must_put_cf(CF_DEFAULT, key, value);
    }

    /// [`Cluster::put_cf`]; panics if it cannot be done.
    pub fn must_put_cf(&self, cf: &str, key: &[u8], value: &[u8]) {
        if let Err(e) = self.put_cf(cf, key, value) {
            panic!("put {:?} in {cf}: {e}", String::from_utf8_lossy(key));
        }
    }

    /// Reads `key` in `CF_DEFAULT`; panics if the read cannot be done.
    pub fn must_get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.must_get_cf(CF_DEFAULT, key)
    }

    /// [`Cluster::get_cf`]; panics if the read cannot be done.
    pub fn must_get_cf(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.get_cf(cf, key)
            .unwrap_or_else(|e| panic!("get {:?} in {cf}: {e}", String::from_utf8_lossy(key)))
    }

    /// Reads `key` and asserts it is `value`.
    pub fn must_get_equal(&self, key: &[u8], value: &[u8]) {
        let got = self.must_get(key);
        assert_eq!(
            got.as_deref(),
            Some(value),
            "value of {:?}",
            String::from_utf8_lossy(key)
        );
    }

    /// Reads `key` and asserts it is absent.
    pub fn must_get_none(&self, key: &[u8]) {
        let got = self.must_get(key);
        assert_eq!(got, None, "value of {:?}", String::from_utf8_lossy(key));
    }

    /// [`Cluster::delete_cf`] in `CF_DEFAULT`; panics if it cannot be done.
    pub fn must_delete(&self, key: &[u8]) {
        self.must_delete_cf(CF_DEFAULT, key);
    }

    /// [`Cluster::delete_cf`]; panics if it cannot be done.
    pub fn must_delete_cf(&self, cf: &str, key: &[u8]) {
        if let Err(e) = self.delete_cf(cf, key) {
            panic!("delete {:?} in {cf}: {e}", String::from_utf8_lossy(key));
        }
    }

    /// [`Cluster::try_scan_cf`] of `CF_DEFAULT`; panics if it cannot be done.
    pub fn scan(&self, start: &[u8], end: &[u8]) -> Vec<KvPair> {
        self.scan_cf(CF_DEFAULT, start, end)
    }

    /// [`Cluster::try_scan_cf`]; panics if it cannot be done.
    pub fn scan_cf(&self, cf: &str, start: &[u8], end: &[u8]) -> Vec<KvPair> {
        self.try_scan_cf(cf, start, end).unwrap_or_else(|e| {
            panic!(
                "scan [{:?}, {:?}) in {cf}: {e}",
                String::from_utf8_lossy(start),
                String::from_utf8_lossy(end)
            )
        })
    }
}

/// A short description of a region error for the retry log.
pub(crate) fn describe(err: &errorpb::Error) -> String {
    let kind = if err.not_leader.is_some() {
        "not leader"
    } else if err.epoch_not_match.is_some() {
        "epoch not match"
    } else if err.stale_command.is_some() {
        "stale command"
    } else if err.region_not_found.is_some() {
        "region not found"
    } else if err.key_not_in_region.is_some() {
        "key not in region"
    } else if err.store_not_match.is_some() {
        "store not match"
    } else if err.server_is_busy.is_some() {
        "server is busy"
    } else {
        "region error"
    };
    if err.message.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", err.message)
    }
}

/// The region to route to: the scheduler's (`known`), unless `fresher` (from a store's
/// `EpochNotMatch`) is at least as new in both version and conf_ver.
pub(crate) fn newest_region(known: Option<Region>, fresher: &Option<Region>) -> Option<Region> {
    match (known, fresher) {
        (Some(k), Some(f)) => {
            let (ke, fe) = (
                k.region_epoch.unwrap_or_default(),
                f.region_epoch.unwrap_or_default(),
            );
            if fe.version >= ke.version && fe.conf_ver >= ke.conf_ver {
                Some(f.clone())
            } else {
                Some(k)
            }
        }
        (k, f) => k.or_else(|| f.clone()),
    }
}

/// The peer of `region` to try next: the first of `hints` (a remembered leader, the scheduler's
/// leader) that is a member on a running store and not in `avoid`, else running peers in turn
/// by `attempt`, skipping `avoid` (which is reset once every running peer failed).
pub(crate) fn pick_peer(
    region: &Region,
    hints: [Option<Peer>; 2],
    is_running: impl Fn(u64) -> bool,
    avoid: &mut HashSet<u64>,
    attempt: usize,
) -> Option<Peer> {
    let member = |p: &Peer| region.peers.iter().any(|x| x.id == p.id);
    let usable = |p: &Peer| is_running(p.store_id) && !avoid.contains(&p.id);
    if let Some(p) = hints.into_iter().flatten().find(|p| member(p) && usable(p)) {
        return Some(p);
    }
    let mut live: Vec<Peer> = region.peers.iter().filter(|p| usable(p)).copied().collect();
    if live.is_empty() {
        avoid.clear();
        live = region
            .peers
            .iter()
            .filter(|p| is_running(p.store_id))
            .copied()
            .collect();
    }
    (!live.is_empty()).then(|| live[attempt % live.len()])
}
