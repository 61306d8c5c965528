//! A minimal Percolator client over [`TxnCluster`], enough for the bank test: snapshot reads at
//! one timestamp across regions (point reads and scans), two-phase commit with the primary
//! committed first, and lock resolution (check the primary's status, then commit or roll back
//! the lock; read past a lock whose `min_commit_ts` was pushed beyond the read).
//!
//! Transactional failures a real client retries (a conflict, a live lock, being rolled back by a
//! resolver) come back as [`Abort`]; anything else a store answers is a broken invariant and
//! panics with the response.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kvserver::mvcc::key::decode_bytes;
use kvserver::mvcc::lock_expired;
use proto::kvrpcpb::*;
use tests::txn_client::{LocalTso, TxnCluster};

/// Pause before looking at a live lock again.
const LOCK_BACKOFF: Duration = Duration::from_millis(20);

/// Most pairs one scan request returns.
const SCAN_BATCH: u32 = 16;

/// Why a transaction did not commit; the caller may retry with a new start ts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    /// A newer commit on one of our keys (or our own rollback).
    Conflict,
    /// Another transaction's live lock on one of our keys.
    Locked,
    /// A resolver rolled us back before our primary committed.
    RolledBack,
}

/// What became of a lock met by a read or a prewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    /// Committed or rolled back, and the lock is gone.
    Resolved,
    /// Still alive, but it will commit after the reader's ts: read past it.
    Bypass,
    /// Still alive (or its primary not written yet): wait.
    Alive,
}

/// Counts of what the client did, for the test log and its coverage checks.
#[derive(Debug, Default)]
pub struct Stats {
    /// Transactions committed (primary committed).
    pub committed: AtomicU64,
    /// Prewrites or commits that ended in an [`Abort`].
    pub aborted: AtomicU64,
    /// Locks of other transactions resolved by committing them.
    pub resolved_committed: AtomicU64,
    /// Locks of other transactions resolved by rolling them back.
    pub resolved_rolled_back: AtomicU64,
    /// Locks read past because their transaction was pushed beyond the read.
    pub bypassed: AtomicU64,
    /// Commits retried with a newer commit ts after `commit_ts_expired`.
    pub commit_ts_retries: AtomicU64,
}

impl Stats {
    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Where a transaction stops early, to leave its locks behind as a crashed client would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Run to the end.
    Never,
    /// After every key is prewritten: the transaction can only be rolled back.
    AfterPrewrite,
    /// After the primary is committed: the secondaries' locks are left for resolvers.
    AfterPrimary,
}

/// A transaction that ended in a definite state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Committed at this ts.
    Committed(u64),
    /// Stopped at [`CrashPoint::AfterPrewrite`]: it will never commit.
    Abandoned,
}

/// The client: routing, the shared clock, lock TTL and counters.
pub struct Client {
    pub txn: Arc<TxnCluster>,
    pub tso: Arc<LocalTso>,
    /// TTL of our locks, in milliseconds.
    pub lock_ttl: u64,
    pub stats: Arc<Stats>,
}

fn rpc<T>(what: &str, res: tests::Result<T>) -> T {
    res.unwrap_or_else(|e| panic!("{what}: {e}"))
}

impl Client {
    // ---- reads ---------------------------------------------------------------------------------

    /// The values of `keys` at `ts` (absent keys are left out), resolving the locks in the way.
    pub async fn batch_get(&self, keys: &[Vec<u8>], ts: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut bypass = Vec::new();
        let mut todo = keys.to_vec();
        while !todo.is_empty() {
            let ctx = Context {
                resolved_locks: bypass.clone(),
                ..Default::default()
            };
            let groups = self.txn.call_grouped(
                todo,
                |k| k.as_slice(),
                |group| BatchGetRequest {
                    context: Some(ctx.clone()),
                    keys: group.to_vec(),
                    version: ts,
                },
            );
            let mut blocked = Vec::new();
            let mut locks = Vec::new();
            for (_, resp) in rpc("batch get", groups.await) {
                assert!(resp.error.is_none(), "batch get failed: {resp:?}");
                for pair in resp.pairs {
                    match pair.error {
                        None => {
                            out.insert(pair.key, pair.value);
                        }
                        Some(e) => {
                            let Some(lock) = e.locked else {
                                panic!("batch get: a pair error that is not a lock: {e:?}");
                            };
                            locks.push(lock);
                            blocked.push(pair.key);
                        }
                    }
                }
            }
            self.resolve_for_read(&locks, ts, &mut bypass).await;
            todo = blocked;
        }
        out
    }

    /// Every pair in `[start, end)` at `ts`, region by region, resolving the locks in the way.
    pub async fn scan(&self, start: &[u8], end: &[u8], ts: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut bypass = Vec::new();
        let mut cur = start.to_vec();
        loop {
            let req = ScanRequest {
                context: Some(Context {
                    resolved_locks: bypass.clone(),
                    ..Default::default()
                }),
                start_key: cur.clone(),
                end_key: end.to_vec(),
                limit: SCAN_BATCH,
                version: ts,
                ..Default::default()
            };
            let (region, resp) = rpc("scan", self.txn.call_routed(req).await);
            let locks: Vec<LockInfo> = resp
                .pairs
                .iter()
                .filter_map(|p| p.error.as_ref())
                .map(|e| {
                    e.locked
                        .clone()
                        .unwrap_or_else(|| panic!("scan: a pair error that is not a lock: {e:?}"))
                })
                .collect();
            if !locks.is_empty() {
                // Scan this batch again once the locks are dealt with.
                self.resolve_for_read(&locks, ts, &mut bypass).await;
                continue;
            }
            let full = resp.pairs.len() == SCAN_BATCH as usize;
            if let Some(last) = resp.pairs.last() {
                cur = last.key.iter().copied().chain([0]).collect();
            }
            out.extend(resp.pairs.into_iter().map(|p| (p.key, p.value)));
            if full {
                continue;
            }
            // This region is exhausted: go on from its end, if the range goes further.
            if region.end_key.is_empty() {
                return out;
            }
            let (region_end, _) = decode_bytes(&region.end_key).expect("an encoded region bound");
            if !end.is_empty() && region_end.as_slice() >= end {
                return out;
            }
            cur = region_end;
        }
    }

    /// Deals with the locks a read at `ts` met: resolves them, adds pushed transactions to
    /// `bypass`, and waits a little if any is still alive.
    async fn resolve_for_read(&self, locks: &[LockInfo], ts: u64, bypass: &mut Vec<u64>) {
        let mut alive = false;
        let mut seen = HashSet::new();
        for lock in locks {
            if !seen.insert((lock.lock_version, lock.key.clone())) {
                continue;
            }
            match self.resolve(lock, ts).await {
                Resolution::Resolved => {}
                Resolution::Bypass => {
                    Stats::bump(&self.stats.bypassed);
                    if !bypass.contains(&lock.lock_version) {
                        bypass.push(lock.lock_version);
                    }
                }
                Resolution::Alive => alive = true,
            }
        }
        if alive {
            tokio::time::sleep(LOCK_BACKOFF).await;
        }
    }

    /// Finds out what became of `lock`'s transaction from its primary and resolves `lock`
    /// accordingly. `caller_start_ts` is the reader's ts (0 for a writer): a live transaction
    /// is pushed past it so the reader need not wait.
    async fn resolve(&self, lock: &LockInfo, caller_start_ts: u64) -> Resolution {
        let current_ts = self.tso.next();
        let req = CheckTxnStatusRequest {
            primary_key: lock.primary_lock.clone(),
            lock_ts: lock.lock_version,
            caller_start_ts,
            current_ts,
            // Only a lock that outlived its TTL may have its missing primary rolled back: the
            // primary's prewrite may still be on its way.
            rollback_if_not_exist: lock_expired(lock.lock_version, lock.lock_ttl, current_ts),
            verify_is_primary: true,
            ..Default::default()
        };
        let status = rpc("check txn status", self.txn.call(req).await);
        if let Some(e) = &status.error {
            assert!(e.txn_not_found.is_some(), "check txn status: {status:?}");
            return Resolution::Alive;
        }
        if status.lock_ttl > 0 {
            let info = status
                .lock_info
                .as_ref()
                .expect("a live lock comes with its info");
            let pushed = caller_start_ts > 0 && info.min_commit_ts > caller_start_ts;
            return if pushed {
                Resolution::Bypass
            } else {
                Resolution::Alive
            };
        }
        let commit_version = status.commit_version;
        // Resolve just this key, or every lock of the transaction in the key's region: both are
        // what clients do (the latter when they meet many locks of one transaction). Alternate
        // on the transaction's ts so both paths run.
        let resolve_region = lock.lock_version.is_multiple_of(2);
        let req = ResolveLockRequest {
            start_version: lock.lock_version,
            commit_version,
            keys: if resolve_region {
                vec![]
            } else {
                vec![lock.key.clone()]
            },
            ..Default::default()
        };
        let (_, resp) = rpc("resolve lock", self.txn.call_at(&lock.key, req).await);
        assert!(resp.error.is_none(), "resolve lock: {resp:?}");
        if commit_version > 0 {
            Stats::bump(&self.stats.resolved_committed);
        } else {
            Stats::bump(&self.stats.resolved_rolled_back);
        }
        Resolution::Resolved
    }

    // ---- two-phase commit ----------------------------------------------------------------------

    /// Commits `mutations` (primary = the first) as transaction `start_ts`, stopping at `crash`.
    pub async fn commit_txn(
        &self,
        mutations: Vec<Mutation>,
        start_ts: u64,
        crash: CrashPoint,
    ) -> Result<Outcome, Abort> {
        let primary = mutations[0].key.clone();
        let keys: Vec<Vec<u8>> = mutations.iter().map(|m| m.key.clone()).collect();
        if let Err(abort) = self.prewrite(&mutations, &primary, start_ts).await {
            self.rollback(&keys, start_ts).await;
            Stats::bump(&self.stats.aborted);
            return Err(abort);
        }
        if crash == CrashPoint::AfterPrewrite {
            return Ok(Outcome::Abandoned);
        }
        let commit_ts = match self.commit_primary(&primary, start_ts).await {
            Ok(ts) => ts,
            Err(abort) => {
                self.rollback(&keys[1..], start_ts).await;
                Stats::bump(&self.stats.aborted);
                return Err(abort);
            }
        };
        Stats::bump(&self.stats.committed);
        if crash != CrashPoint::AfterPrimary && keys.len() > 1 {
            let groups = self
                .txn
                .call_grouped(
                    keys[1..].to_vec(),
                    |k| k.as_slice(),
                    |group| CommitRequest {
                        keys: group.to_vec(),
                        start_version: start_ts,
                        commit_version: commit_ts,
                        ..Default::default()
                    },
                )
                .await;
            for (_, resp) in rpc("commit secondaries", groups) {
                // Once the primary is committed nobody may roll a secondary back.
                assert!(
                    resp.error.is_none(),
                    "commit of secondaries failed: {resp:?}"
                );
            }
        }
        Ok(Outcome::Committed(commit_ts))
    }

    /// Prewrites every mutation, resolving the locks in the way; all-or-nothing per region,
    /// so on an abort some regions may hold our locks (the caller rolls back).
    async fn prewrite(
        &self,
        mutations: &[Mutation],
        primary: &[u8],
        start_ts: u64,
    ) -> Result<(), Abort> {
        loop {
            let groups = self.txn.call_grouped(
                mutations.to_vec(),
                |m| m.key.as_slice(),
                |group| {
                    PrewriteRequest {
                        mutations: group.to_vec(),
                        primary_lock: primary.to_vec(),
                        start_version: start_ts,
                        lock_ttl: self.lock_ttl,
                        txn_size: mutations.len() as u64,
                        // Lets readers push our commit past their ts instead of waiting for us.
                        min_commit_ts: start_ts + 1,
                        ..Default::default()
                    }
                },
            );
            let mut locks = Vec::new();
            for (_, resp) in rpc("prewrite", groups.await) {
                for e in resp.errors {
                    if let Some(lock) = e.locked {
                        locks.push(lock);
                    } else if e.conflict.is_some() {
                        return Err(Abort::Conflict);
                    } else {
                        panic!("prewrite of txn {start_ts} failed: {e:?}");
                    }
                }
            }
            if locks.is_empty() {
                return Ok(());
            }
            for lock in &locks {
                if self.resolve(lock, 0).await != Resolution::Resolved {
                    return Err(Abort::Locked);
                }
            }
            // Every lock in the way is gone: prewrite again (regions that succeeded find their
            // own locks and answer success).
        }
    }

    /// Commits the primary: the transaction's commit point.
    async fn commit_primary(&self, primary: &[u8], start_ts: u64) -> Result<u64, Abort> {
        let mut commit_ts = self.tso.next();
        loop {
            let req = CommitRequest {
                keys: vec![primary.to_vec()],
                start_version: start_ts,
                commit_version: commit_ts,
                ..Default::default()
            };
            let resp = rpc("commit primary", self.txn.call(req).await);
            let Some(e) = resp.error else {
                return Ok(commit_ts);
            };
            if let Some(expired) = &e.commit_ts_expired {
                // A reader pushed us past its ts: commit later than that.
                Stats::bump(&self.stats.commit_ts_retries);
                commit_ts = self.tso.next().max(expired.min_commit_ts);
            } else if !e.retryable.is_empty() {
                // "lock not found": a resolver rolled us back after our TTL ran out.
                return Err(Abort::RolledBack);
            } else {
                panic!("commit of primary of txn {start_ts} failed: {e:?}");
            }
        }
    }

    /// Rolls `keys` of transaction `start_ts` back (best effort: resolvers would otherwise do
    /// it once the TTL runs out).
    async fn rollback(&self, keys: &[Vec<u8>], start_ts: u64) {
        if keys.is_empty() {
            return;
        }
        let groups = self
            .txn
            .call_grouped(
                keys.to_vec(),
                |k| k.as_slice(),
                |group| BatchRollbackRequest {
                    keys: group.to_vec(),
                    start_version: start_ts,
                    ..Default::default()
                },
            )
            .await;
        for (_, resp) in rpc("rollback", groups) {
            assert!(
                resp.error.is_none(),
                "rollback of txn {start_ts} failed: {resp:?}"
            );
        }
    }

    /// Every lock in `[start, end)` with start ts at or below `max_version`, region by region.
    pub async fn scan_locks(&self, start: &[u8], end: &[u8], max_version: u64) -> Vec<LockInfo> {
        let mut out = Vec::new();
        let mut cur = start.to_vec();
        loop {
            let req = ScanLockRequest {
                max_version,
                start_key: cur.clone(),
                end_key: end.to_vec(),
                ..Default::default()
            };
            let (region, resp) = rpc("scan lock", self.txn.call_routed(req).await);
            assert!(resp.error.is_none(), "scan lock: {resp:?}");
            out.extend(resp.locks);
            if region.end_key.is_empty() {
                return out;
            }
            let (region_end, _) = decode_bytes(&region.end_key).expect("an encoded region bound");
            if !end.is_empty() && region_end.as_slice() >= end {
                return out;
            }
            cur = region_end;
        }
    }

    /// Resolves every lock left in `[start, end)` (waiting for live ones to expire).
    pub async fn resolve_all_locks(&self, start: &[u8], end: &[u8]) {
        loop {
            let locks = self.scan_locks(start, end, self.tso.next()).await;
            if locks.is_empty() {
                return;
            }
            let mut alive = false;
            for lock in &locks {
                alive |= self.resolve(lock, 0).await != Resolution::Resolved;
            }
            if alive {
                tokio::time::sleep(LOCK_BACKOFF).await;
            }
        }
    }
}
