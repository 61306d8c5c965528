//! Reads at one timestamp (`KvGet`, `KvBatchGet`, `KvScan`), resolving the locks they meet.

use std::sync::Arc;

use proto::kvrpcpb;

use super::lock::resolve_or_wait;
use crate::dispatch::Cluster;
use crate::errors::{Error, Result};
use crate::kv::{next_key, BoundRange, Key, KvPair, Value, MAX_SCAN_LIMIT};
use crate::page::check_page;
use crate::region::min_end;
use crate::timestamp::Timestamp;

/// A read-only view of the database at one timestamp. Reads that meet a lock of an unfinished
/// transaction settle it (or wait for it) first, so they see every transaction committed before
/// the timestamp and nothing after.
///
/// ```no_run
/// # async fn demo(client: client::TransactionClient) -> client::Result<()> {
/// let ts = client.current_timestamp().await?;
/// let snapshot = client.snapshot(ts);
/// let value = snapshot.get("k1").await?;
/// let pairs = snapshot.scan("a".."z", 100).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Snapshot {
    cluster: Arc<Cluster>,
    ts: Timestamp,
}

impl Snapshot {
    pub(crate) fn new(cluster: Arc<Cluster>, ts: Timestamp) -> Snapshot {
        Snapshot { cluster, ts }
    }

    /// The timestamp reads are made at.
    pub fn timestamp(&self) -> Timestamp {
        self.ts
    }

    /// The value of `key`, or `None`.
    pub async fn get(&self, key: impl Into<Key>) -> Result<Option<Value>> {
        self.get_raw(key.into().as_bytes()).await
    }

    /// The pairs that exist among `keys`, sorted by key.
    pub async fn batch_get(
        &self,
        keys: impl IntoIterator<Item = impl Into<Key>>,
    ) -> Result<Vec<KvPair>> {
        self.batch_get_raw(keys.into_iter().map(|k| k.into().into_inner()).collect())
            .await
    }

    /// Up to `limit` pairs in `range`, ascending.
    pub async fn scan(&self, range: impl Into<BoundRange>, limit: u32) -> Result<Vec<KvPair>> {
        check_limit(limit)?;
        match range.into().into_half_open() {
            Some((start, end)) => self.scan_raw(start, end, limit as usize, false).await,
            None => Ok(Vec::new()),
        }
    }

    /// Up to `limit` pairs in `range`, descending (from the range's end down).
    pub async fn scan_reverse(
        &self,
        range: impl Into<BoundRange>,
        limit: u32,
    ) -> Result<Vec<KvPair>> {
        check_limit(limit)?;
        match range.into().into_half_open() {
            Some((start, end)) => self.scan_raw_reverse(start, end, limit as usize).await,
            None => Ok(Vec::new()),
        }
    }

    /// Up to `limit` keys in `range`, ascending, without values.
    pub async fn scan_keys(&self, range: impl Into<BoundRange>, limit: u32) -> Result<Vec<Key>> {
        check_limit(limit)?;
        match range.into().into_half_open() {
            Some((start, end)) => Ok(self
                .scan_raw(start, end, limit as usize, true)
                .await?
                .into_iter()
                .map(|p| p.key)
                .collect()),
            None => Ok(Vec::new()),
        }
    }

    pub(crate) async fn get_raw(&self, key: &[u8]) -> Result<Option<Value>> {
        let mut lock_backoff = self.cluster.config.lock_backoff.start();
        loop {
            let req = kvrpcpb::GetRequest {
                key: key.to_vec(),
                version: self.ts.version(),
                ..Default::default()
            };
            let resp = self.cluster.execute_key(key, req).await?;
            if let Some(mut e) = resp.error {
                match e.locked.take() {
                    Some(lock) => {
                        resolve_or_wait(
                            &self.cluster,
                            vec![lock],
                            self.ts.version(),
                            &mut lock_backoff,
                        )
                        .await?;
                        continue;
                    }
                    None => return Err(e.into()),
                }
            }
            return Ok((!resp.not_found).then_some(resp.value));
        }
    }

    pub(crate) async fn batch_get_raw(&self, mut keys: Vec<Vec<u8>>) -> Result<Vec<KvPair>> {
        keys.sort();
        keys.dedup();
        let version = self.ts.version();
        let mut lock_backoff = self.cluster.config.lock_backoff.start();
        let mut found = Vec::new();
        let mut pending = keys;
        while !pending.is_empty() {
            let results = self
                .cluster
                .execute_sharded(
                    std::mem::take(&mut pending),
                    |k| k.as_slice(),
                    |_, keys| kvrpcpb::BatchGetRequest {
                        keys: keys.to_vec(),
                        version,
                        ..Default::default()
                    },
                )
                .await?;
            let mut locks = Vec::new();
            for (keys, resp) in results {
                if let Some(mut e) = resp.error {
                    match e.locked.take() {
                        Some(lock) => {
                            locks.push(lock);
                            pending.extend(keys);
                            continue;
                        }
                        None => return Err(e.into()),
                    }
                }
                for pair in resp.pairs {
                    match pair.error {
                        Some(mut e) => match e.locked.take() {
                            Some(lock) => {
                                locks.push(lock);
                                pending.push(pair.key);
                            }
                            None => return Err(e.into()),
                        },
                        None => found.push(KvPair::new(pair.key, pair.value)),
                    }
                }
            }
            if !pending.is_empty() {
                resolve_or_wait(&self.cluster, locks, version, &mut lock_backoff).await?;
            }
        }
        found.sort();
        Ok(found)
    }

    /// Scans `[start, end)` forward, region by region, at most `limit` pairs (no cap check:
    /// transactions widen the limit to make room for their own deletes).
    pub(crate) async fn scan_raw(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
        key_only: bool,
    ) -> Result<Vec<KvPair>> {
        let version = self.ts.version();
        let mut out = Vec::new();
        let mut region_backoff = self.cluster.config.region_backoff.start();
        let mut lock_backoff = self.cluster.config.lock_backoff.start();
        let mut cursor = start;
        while out.len() < limit {
            let page = (limit - out.len()).min(self.cluster.config.scan_batch_size as usize);
            let region = self.cluster.cache.locate_key(&cursor).await?;
            let step_end = min_end(region.end(), end.as_deref()).map(<[u8]>::to_vec);
            let req = kvrpcpb::ScanRequest {
                start_key: cursor.clone(),
                end_key: step_end.clone().unwrap_or_default(),
                limit: page as u32,
                version,
                key_only,
                reverse: false,
                ..Default::default()
            };
            let resp = match self.cluster.send_once(&region, req).await? {
                Ok(resp) => resp,
                Err(failure) => {
                    self.cluster
                        .handle_failure(&region, failure, &mut region_backoff)
                        .await?;
                    continue;
                }
            };
            region_backoff.reset();
            let mut locks = Vec::new();
            if let Some(mut e) = resp.error {
                match e.locked.take() {
                    Some(lock) => locks.push(lock),
                    None => return Err(e.into()),
                }
            }
            for pair in &resp.pairs {
                if let Some(e) = &pair.error {
                    match &e.locked {
                        Some(lock) => locks.push(lock.clone()),
                        None => return Err(e.clone().into()),
                    }
                }
            }
            if !locks.is_empty() {
                // Settle the locks, then read the same page again.
                resolve_or_wait(&self.cluster, locks, version, &mut lock_backoff).await?;
                continue;
            }
            check_page(
                "KvScan",
                &resp.pairs,
                page,
                &cursor,
                step_end.as_deref(),
                false,
            )?;
            let full = resp.pairs.len() == page;
            let last = resp.pairs.last().map(|p| p.key.clone());
            out.extend(resp.pairs.into_iter().map(|p| KvPair::new(p.key, p.value)));
            if full {
                cursor = next_key(last.expect("a full page is not empty"));
                continue;
            }
            match step_end {
                Some(e) if end.as_deref() != Some(e.as_slice()) => cursor = e,
                _ => break,
            }
        }
        Ok(out)
    }
}

impl Snapshot {
    /// Scans `[start, end)` backward, region by region, at most `limit` pairs. Mirrors
    /// [`scan_raw`](Self::scan_raw) with an exclusive upper bound that moves down: each step asks
    /// the region holding the greatest keys below it; a full page moves the bound to the last
    /// (smallest) key read, a short one to the region's start.
    pub(crate) async fn scan_raw_reverse(
        &self,
        start: Vec<u8>,
        end: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<KvPair>> {
        let version = self.ts.version();
        let mut out = Vec::new();
        let mut region_backoff = self.cluster.config.region_backoff.start();
        let mut lock_backoff = self.cluster.config.lock_backoff.start();
        let mut upper = end;
        while out.len() < limit {
            let page = (limit - out.len()).min(self.cluster.config.scan_batch_size as usize);
            let region = self
                .cluster
                .cache
                .locate_before(&start, upper.as_deref())
                .await?;
            let lower = region.start_key.clone().max(start.clone());
            let req = kvrpcpb::ScanRequest {
                // Reverse scans read downwards from `start_key` (exclusive) to `end_key`.
                start_key: upper.clone().unwrap_or_default(),
                end_key: lower.clone(),
                limit: page as u32,
                version,
                reverse: true,
                ..Default::default()
            };
            let resp = match self.cluster.send_once(&region, req).await? {
                Ok(resp) => resp,
                Err(failure) => {
                    self.cluster
                        .handle_failure(&region, failure, &mut region_backoff)
                        .await?;
                    continue;
                }
            };
            region_backoff.reset();
            let mut locks = Vec::new();
            if let Some(mut e) = resp.error {
                match e.locked.take() {
                    Some(lock) => locks.push(lock),
                    None => return Err(e.into()),
                }
            }
            for pair in &resp.pairs {
                if let Some(e) = &pair.error {
                    match &e.locked {
                        Some(lock) => locks.push(lock.clone()),
                        None => return Err(e.clone().into()),
                    }
                }
            }
            if !locks.is_empty() {
                resolve_or_wait(&self.cluster, locks, version, &mut lock_backoff).await?;
                continue;
            }
            check_page("KvScan", &resp.pairs, page, &lower, upper.as_deref(), true)?;
            let full = resp.pairs.len() == page;
            let last = resp.pairs.last().map(|p| p.key.clone());
            out.extend(resp.pairs.into_iter().map(|p| KvPair::new(p.key, p.value)));
            if full {
                upper = last;
            } else if region.start_key <= start {
                break;
            } else {
                upper = Some(region.start_key.clone());
            }
        }
        Ok(out)
    }
}

fn check_limit(limit: u32) -> Result<()> {
    if limit > MAX_SCAN_LIMIT {
        return Err(Error::InvalidArgument(format!(
            "scan limit {limit} exceeds {MAX_SCAN_LIMIT}"
        )));
    }
    Ok(())
}
