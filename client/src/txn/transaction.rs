//! The transaction handle: reads at the start timestamp merged with buffered writes.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tracing::warn;

use super::buffer::Buffer;
use super::heartbeat::{self, Heartbeat};
use super::snapshot::Snapshot;
use super::TransactionOptions;
use crate::dispatch::Cluster;
use crate::errors::{Error, Result};
use crate::kv::{BoundRange, Key, KvPair, Value, MAX_SCAN_LIMIT};
use crate::timestamp::Timestamp;

/// Where a transaction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxnState {
    /// Reading and buffering.
    Active,
    /// Commit started: locks may exist on the stores.
    Committing,
    Committed,
    RolledBack,
    /// The primary commit was sent but its outcome is unknown.
    Undetermined,
}

/// A transaction (Percolator, snapshot isolation). Reads see the database at the start
/// timestamp plus the transaction's own writes; writes are buffered until [`commit`]
/// (optimistic mode) or also lock their keys as they are made (pessimistic mode).
///
/// Finish every transaction with [`commit`] or [`rollback`]. Dropping one that holds locks on
/// the stores (pessimistic locks, or an interrupted commit) logs a warning and rolls back in
/// the background when a tokio runtime is available; otherwise the locks expire after their
/// TTL. A transaction whose commit outcome is undetermined is left for readers to settle.
///
/// [`commit`]: Transaction::commit
/// [`rollback`]: Transaction::rollback
pub struct Transaction {
    pub(super) cluster: Arc<Cluster>,
    pub(super) snapshot: Snapshot,
    pub(super) options: TransactionOptions,
    pub(super) buffer: Buffer,
    pub(super) state: TxnState,
    /// Primary key: the first pessimistically locked key, or chosen at commit.
    pub(super) primary: Option<Vec<u8>>,
    /// Keys holding a pessimistic lock of this transaction.
    pub(super) locked: BTreeSet<Vec<u8>>,
    /// Largest for-update timestamp used for pessimistic locks.
    pub(super) for_update_ts: u64,
    pub(super) heartbeat: Option<Heartbeat>,
}

impl Transaction {
    pub(super) fn new(
        cluster: Arc<Cluster>,
        start_ts: Timestamp,
        options: TransactionOptions,
    ) -> Transaction {
        Transaction {
            snapshot: Snapshot::new(cluster.clone(), start_ts),
            cluster,
            options,
            buffer: Buffer::default(),
            state: TxnState::Active,
            primary: None,
            locked: BTreeSet::new(),
            for_update_ts: 0,
            heartbeat: None,
        }
    }

    /// The start timestamp: reads see the database as of this moment.
    pub fn start_timestamp(&self) -> Timestamp {
        self.snapshot.timestamp()
    }

    /// True for a pessimistic transaction.
    pub fn is_pessimistic(&self) -> bool {
        self.options.pessimistic
    }

    pub(super) fn start_version(&self) -> u64 {
        self.start_timestamp().version()
    }

    pub(super) fn check_active(&self) -> Result<()> {
        match self.state {
            TxnState::Active => Ok(()),
            TxnState::Committing => Err(Error::TransactionFinished("committing")),
            TxnState::Committed => Err(Error::TransactionFinished("committed")),
            TxnState::RolledBack => Err(Error::TransactionFinished("rolled back")),
            TxnState::Undetermined => Err(Error::TransactionFinished("in an undetermined state")),
        }
    }

    /// The TTL for new locks: the configured TTL past the transaction's current age, since
    /// stores count TTLs from the start timestamp.
    pub(super) fn lock_ttl_ms(&self, base: Duration) -> u64 {
        self.start_timestamp().elapsed_ms() + base.as_millis() as u64
    }

    pub(super) fn base_ttl(&self) -> Duration {
        if self.options.pessimistic {
            self.cluster.config.pessimistic_lock_ttl
        } else {
            self.cluster.config.txn_lock_ttl
        }
    }

    /// Starts heartbeats once the primary is known, if enabled.
    pub(super) fn ensure_heartbeat(&mut self) {
        if self.heartbeat.is_some() || !self.options.heartbeat {
            return;
        }
        if let Some(primary) = &self.primary {
            self.heartbeat = Some(heartbeat::start(
                self.cluster.clone(),
                primary.clone(),
                self.start_timestamp(),
                self.base_ttl(),
            ));
        }
    }

    /// The value of `key` as this transaction sees it.
    pub async fn get(&mut self, key: impl Into<Key>) -> Result<Option<Value>> {
        self.check_active()?;
        let key = key.into().into_inner();
        if let Some(buffered) = self.buffer.read(&key) {
            return Ok(buffered.cloned());
        }
        self.snapshot.get_raw(&key).await
    }

    /// The pairs that exist among `keys` as this transaction sees them, sorted by key.
    pub async fn batch_get(
        &mut self,
        keys: impl IntoIterator<Item = impl Into<Key>>,
    ) -> Result<Vec<KvPair>> {
        self.check_active()?;
        let mut from_buffer = Vec::new();
        let mut from_store = Vec::new();
        for key in keys {
            let key = key.into().into_inner();
            match self.buffer.read(&key) {
                Some(Some(v)) => from_buffer.push(KvPair::new(key, v.clone())),
                Some(None) => {}
                None => from_store.push(key),
            }
        }
        let mut pairs = self.snapshot.batch_get_raw(from_store).await?;
        pairs.extend(from_buffer);
        pairs.sort();
        pairs.dedup_by(|a, b| a.key == b.key);
        Ok(pairs)
    }

    /// Up to `limit` pairs in `range`, ascending, as this transaction sees them.
    pub async fn scan(&mut self, range: impl Into<BoundRange>, limit: u32) -> Result<Vec<KvPair>> {
        self.check_active()?;
        if limit > MAX_SCAN_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "scan limit {limit} exceeds {MAX_SCAN_LIMIT}"
            )));
        }
        let Some((start, end)) = range.into().into_half_open() else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Buffered deletes may hide store rows: read that many more.
        let widened = limit as usize + self.buffer.deletes_in(&start, end.as_deref());
        let store = self
            .snapshot
            .scan_raw(start.clone(), end.clone(), widened, false)
            .await?;
        Ok(self
            .buffer
            .merge_scan(store, &start, end.as_deref(), limit as usize))
    }

    /// Up to `limit` pairs in `range`, descending (from the range's end down), as this
    /// transaction sees them.
    pub async fn scan_reverse(
        &mut self,
        range: impl Into<BoundRange>,
        limit: u32,
    ) -> Result<Vec<KvPair>> {
        self.check_active()?;
        if limit > MAX_SCAN_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "scan limit {limit} exceeds {MAX_SCAN_LIMIT}"
            )));
        }
        let Some((start, end)) = range.into().into_half_open() else {
            return Ok(Vec::new());
        };
        if limit == 0 {
            return Ok(Vec::new());
        }
        let widened = limit as usize + self.buffer.deletes_in(&start, end.as_deref());
        let store = self
            .snapshot
            .scan_raw_reverse(start.clone(), end.clone(), widened)
            .await?;
        Ok(self
            .buffer
            .merge_scan_reverse(store, &start, end.as_deref(), limit as usize))
    }

    /// Reads `key` and locks it so no other transaction can change it before this one commits.
    /// Pessimistic: takes the lock now and returns the latest committed value (or this
    /// transaction's own write). Optimistic: reads at the start timestamp and adds a lock
    /// mutation, so the commit fails on a concurrent write.
    pub async fn get_for_update(&mut self, key: impl Into<Key>) -> Result<Option<Value>> {
        self.check_active()?;
        let key = key.into().into_inner();
        if !self.options.pessimistic {
            let value = self.get(key.clone()).await?;
            self.buffer.lock(key);
            return Ok(value);
        }
        let mut values = self
            .acquire_pessimistic_locks(vec![key.clone()], true)
            .await?;
        self.buffer.lock(key.clone());
        if let Some(buffered) = self.buffer.read(&key) {
            return Ok(buffered.cloned());
        }
        Ok(values.remove(&key).flatten())
    }

    /// Buffers a write of `key`.
    pub async fn put(&mut self, key: impl Into<Key>, value: impl Into<Value>) -> Result<()> {
        self.check_active()?;
        let key = key.into().into_inner();
        self.lock_if_pessimistic(&key).await?;
        self.buffer.put(key, value.into());
        Ok(())
    }

    /// Buffers a write of `key` that fails with [`Error::AlreadyExists`] if the key exists:
    /// at once in pessimistic mode (the lock returns the current value), at commit otherwise.
    pub async fn insert(&mut self, key: impl Into<Key>, value: impl Into<Value>) -> Result<()> {
        self.check_active()?;
        let key = key.into().into_inner();
        if self.options.pessimistic && self.buffer.read(&key).is_none() {
            let mut values = self
                .acquire_pessimistic_locks(vec![key.clone()], true)
                .await?;
            if values.remove(&key).flatten().is_some() {
                return Err(Error::AlreadyExists { key });
            }
        } else {
            self.lock_if_pessimistic(&key).await?;
        }
        self.buffer.insert(key, value.into())
    }

    /// Buffers a delete of `key`.
    pub async fn delete(&mut self, key: impl Into<Key>) -> Result<()> {
        self.check_active()?;
        let key = key.into().into_inner();
        self.lock_if_pessimistic(&key).await?;
        self.buffer.delete(key);
        Ok(())
    }

    /// Locks `keys` without writing them: the commit fails if another transaction writes them
    /// meanwhile (optimistic), or they are locked now (pessimistic).
    pub async fn lock_keys(
        &mut self,
        keys: impl IntoIterator<Item = impl Into<Key>>,
    ) -> Result<()> {
        self.check_active()?;
        let keys: Vec<Vec<u8>> = keys.into_iter().map(|k| k.into().into_inner()).collect();
        if self.options.pessimistic {
            self.acquire_pessimistic_locks(keys.clone(), false).await?;
        }
        for key in keys {
            self.buffer.lock(key);
        }
        Ok(())
    }

    async fn lock_if_pessimistic(&mut self, key: &[u8]) -> Result<()> {
        if self.options.pessimistic && !self.locked.contains(key) {
            self.acquire_pessimistic_locks(vec![key.to_vec()], false)
                .await?;
        }
        Ok(())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !matches!(self.state, TxnState::Active | TxnState::Committing) {
            return;
        }
        let start_ts = self.start_version();
        let plan = self.rollback_plan();
        if plan.is_empty() {
            if !self.buffer.is_empty() {
                warn!(
                    start_ts,
                    "transaction dropped without commit or rollback; buffered writes discarded"
                );
            }
            return;
        }
        warn!(
            start_ts,
            "transaction dropped while holding locks; rolling back in the background"
        );
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = plan.run().await {
                        warn!(start_ts, error = %e, "background rollback failed; locks expire after their ttl");
                    }
                });
            }
            Err(_) => warn!(start_ts, "no tokio runtime; locks expire after their ttl"),
        }
    }
}
