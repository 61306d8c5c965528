//! Two-phase commit and rollback.
//!
//! ```text
//!  prewrite primary ──▶ prewrite secondaries (grouped by region, concurrently)
//!     │ locks met: resolve / wait, retry        │ key error: roll back, fail
//!     ▼
//!  commit ts (TSO) ──▶ commit primary ── the transaction is committed here
//!     │ commit_ts_expired: new ts, retry        │ no answer: UndeterminedCommit
//!     ▼
//!  commit secondaries (failures only logged: readers resolve them from the primary)
//! ```
//!
//! Rollback of a transaction whose commit started rolls the primary back first: if that fails
//! because the primary committed, the secondaries are left for readers to commit; rolling them
//! back would split the transaction.

use std::sync::Arc;

use proto::kvrpcpb;
use tracing::{debug, warn};

use super::lock::{batch_rollback, pessimistic_rollback, resolve_or_wait};
use super::transaction::{Transaction, TxnState};
use crate::dispatch::Cluster;
use crate::errors::{Error, Result};
use crate::timestamp::Timestamp;

/// How the primary commit ended without success.
enum PrimaryCommitError {
    /// The store refused (or it was never sent): the transaction is not committed.
    Rejected(Error),
    /// Sent, but no definite answer came back.
    Unknown(Error),
}

/// The work needed to undo a transaction on the stores.
pub(super) struct RollbackPlan {
    cluster: Arc<Cluster>,
    start_ts: u64,
    for_update_ts: u64,
    /// Set once commit started: rolled back first, alone.
    primary: Option<Vec<u8>>,
    /// Keys that may carry prewrite locks (all mutation keys once commit started).
    prewritten: Vec<Vec<u8>>,
    /// Keys holding pessimistic locks.
    pessimistic: Vec<Vec<u8>>,
}

impl RollbackPlan {
    pub fn is_empty(&self) -> bool {
        self.primary.is_none() && self.prewritten.is_empty() && self.pessimistic.is_empty()
    }

    pub async fn run(self) -> Result<()> {
        if let Some(primary) = &self.primary {
            // Fails with an abort if the primary is committed: then nothing else may be undone.
            batch_rollback(&self.cluster, self.start_ts, vec![primary.clone()]).await?;
        }
        let secondaries: Vec<Vec<u8>> = self
            .prewritten
            .into_iter()
            .filter(|k| Some(k) != self.primary.as_ref())
            .collect();
        batch_rollback(&self.cluster, self.start_ts, secondaries).await?;
        pessimistic_rollback(
            &self.cluster,
            self.start_ts,
            self.for_update_ts,
            self.pessimistic,
        )
        .await
    }
}

impl Transaction {
    /// Commits the buffered writes. Returns the commit timestamp, or `None` when there was
    /// nothing to write. On a key error (write conflict, duplicate insert, ...) the transaction
    /// is rolled back and the error returned.
    pub async fn commit(&mut self) -> Result<Option<Timestamp>> {
        self.check_active()?;
        let mutations = self.buffer.mutations();
        if mutations.is_empty() {
            self.state = TxnState::Committed;
            self.heartbeat = None;
            return Ok(None);
        }
        let primary = self
            .primary
            .clone()
            .unwrap_or_else(|| mutations[0].key.clone());
        assert!(
            mutations.iter().any(|m| m.key == primary),
            "primary of txn {} has no mutation",
            self.start_version()
        );
        self.primary = Some(primary.clone());
        self.state = TxnState::Committing;
        self.ensure_heartbeat();
        let start_ts = self.start_version();

        if let Err(e) = self.prewrite(&primary, mutations).await {
            debug!(start_ts, error = %e, "prewrite failed, rolling back");
            self.abort_after_failed_commit().await;
            return Err(e);
        }
        let commit_ts = match self.commit_primary(&primary).await {
            Ok(ts) => ts,
            Err(PrimaryCommitError::Rejected(e)) => {
                debug!(start_ts, error = %e, "primary commit refused, rolling back");
                self.abort_after_failed_commit().await;
                return Err(e);
            }
            Err(PrimaryCommitError::Unknown(e)) => {
                self.state = TxnState::Undetermined;
                self.heartbeat = None;
                return Err(Error::UndeterminedCommit {
                    start_ts,
                    source: Box::new(e),
                });
            }
        };
        self.state = TxnState::Committed;
        self.heartbeat = None;
        let secondaries: Vec<Vec<u8>> = self
            .buffer
            .mutations()
            .into_iter()
            .map(|m| m.key)
            .filter(|k| *k != primary)
            .collect();
        self.commit_secondaries(secondaries, commit_ts).await;
        Ok(Some(Timestamp::from_version(commit_ts)))
    }

    /// Undoes the transaction: releases pessimistic locks and, if commit started, rolls the
    /// prewritten keys back. A transaction that never reached the stores just ends.
    pub async fn rollback(&mut self) -> Result<()> {
        match self.state {
            TxnState::Committed => return Err(Error::TransactionFinished("committed")),
            TxnState::RolledBack => return Err(Error::TransactionFinished("rolled back")),
            TxnState::Active | TxnState::Committing | TxnState::Undetermined => {}
        }
        self.heartbeat = None;
        let plan = self.rollback_plan();
        self.state = TxnState::RolledBack;
        plan.run().await
    }

    pub(super) fn rollback_plan(&self) -> RollbackPlan {
        let commit_started = matches!(self.state, TxnState::Committing | TxnState::Undetermined);
        RollbackPlan {
            cluster: self.cluster.clone(),
            start_ts: self.start_version(),
            for_update_ts: self.for_update_ts.max(self.start_version()),
            primary: if commit_started {
                self.primary.clone()
            } else {
                None
            },
            prewritten: if commit_started {
                self.buffer.mutations().into_iter().map(|m| m.key).collect()
            } else {
                Vec::new()
            },
            pessimistic: self.locked.iter().cloned().collect(),
        }
    }

    async fn abort_after_failed_commit(&mut self) {
        self.heartbeat = None;
        let plan = self.rollback_plan();
        self.state = TxnState::RolledBack;
        if let Err(e) = plan.run().await {
            warn!(start_ts = self.start_version(), error = %e, "rollback after failed commit failed; locks expire after their ttl");
        }
    }

    /// Prewrites the primary's mutation, then the rest.
    async fn prewrite(&self, primary: &[u8], mutations: Vec<kvrpcpb::Mutation>) -> Result<()> {
        let (first, rest): (Vec<_>, Vec<_>) = mutations.into_iter().partition(|m| m.key == primary);
        self.prewrite_batch(primary, first).await?;
        self.prewrite_batch(primary, rest).await
    }

    async fn prewrite_batch(
        &self,
        primary: &[u8],
        mutations: Vec<kvrpcpb::Mutation>,
    ) -> Result<()> {
        let start_version = self.start_version();
        let txn_size = self.buffer.len() as u64;
        let pessimistic = self.options.pessimistic;
        let for_update_ts = if pessimistic { self.for_update_ts } else { 0 };
        let mut lock_backoff = self.cluster.config.lock_backoff.start();
        let mut pending = mutations;
        while !pending.is_empty() {
            let lock_ttl = self.lock_ttl_ms(self.base_ttl());
            let results = self
                .cluster
                .execute_sharded(
                    std::mem::take(&mut pending),
                    |m| m.key.as_slice(),
                    |_, ms| kvrpcpb::PrewriteRequest {
                        mutations: ms.to_vec(),
                        primary_lock: primary.to_vec(),
                        start_version,
                        lock_ttl,
                        txn_size,
                        for_update_ts,
                        pessimistic_actions: if pessimistic {
                            ms.iter().map(|m| self.pessimistic_action(&m.key)).collect()
                        } else {
                            Vec::new()
                        },
                        ..Default::default()
                    },
                )
                .await?;
            let mut locks = Vec::new();
            let mut errors = Vec::new();
            for (ms, resp) in results {
                if resp.errors.is_empty() {
                    continue;
                }
                for mut e in resp.errors {
                    match e.locked.take() {
                        Some(lock) => locks.push(lock),
                        None => errors.push(Error::from(e)),
                    }
                }
                // Prewrite is idempotent for this transaction: retry the whole request.
                pending.extend(ms);
            }
            if !errors.is_empty() {
                return Err(Error::from_key_errors(errors));
            }
            if !pending.is_empty() {
                resolve_or_wait(&self.cluster, locks, start_version, &mut lock_backoff).await?;
            }
        }
        Ok(())
    }

    fn pessimistic_action(&self, key: &[u8]) -> i32 {
        use kvrpcpb::prewrite_request::PessimisticAction;
        if self.locked.contains(key) {
            PessimisticAction::DoPessimisticCheck as i32
        } else {
            PessimisticAction::SkipPessimisticCheck as i32
        }
    }

    /// Commits the primary key with a fresh commit timestamp, retrying when the store requires
    /// a larger one.
    async fn commit_primary(&self, primary: &[u8]) -> Result<u64, PrimaryCommitError> {
        let start_version = self.start_version();
        let mut backoff = self.cluster.config.pd_backoff.start();
        let mut min_commit_ts = 0;
        loop {
            let commit_ts = self
                .cluster
                .pd
                .get_timestamp()
                .await
                .map_err(PrimaryCommitError::Rejected)?
                .version();
            if commit_ts <= min_commit_ts {
                // PD's clock has not passed the store's minimum yet.
                if !backoff.wait().await {
                    return Err(PrimaryCommitError::Rejected(Error::CommitTsExpired(
                        Box::new(kvrpcpb::CommitTsExpired {
                            start_ts: start_version,
                            attempted_commit_ts: commit_ts,
                            key: primary.to_vec(),
                            min_commit_ts,
                        }),
                    )));
                }
                continue;
            }
            let req = kvrpcpb::CommitRequest {
                start_version,
                keys: vec![primary.to_vec()],
                commit_version: commit_ts,
                ..Default::default()
            };
            let resp = self
                .cluster
                .execute_key(primary, req)
                .await
                .map_err(PrimaryCommitError::Unknown)?;
            match resp.error {
                None => return Ok(commit_ts),
                Some(e) => match &e.commit_ts_expired {
                    Some(expired) if backoff.consume() => {
                        debug!(
                            start_ts = start_version,
                            commit_ts,
                            min_commit_ts = expired.min_commit_ts,
                            "commit ts expired, retrying"
                        );
                        min_commit_ts = expired.min_commit_ts;
                    }
                    _ => return Err(PrimaryCommitError::Rejected(e.into())),
                },
            }
        }
    }

    /// Commits the other keys. The transaction is already committed, so failures only leave
    /// locks that readers resolve through the primary; they are logged, not returned.
    async fn commit_secondaries(&self, keys: Vec<Vec<u8>>, commit_ts: u64) {
        if keys.is_empty() {
            return;
        }
        let start_version = self.start_version();
        let outcome = self
            .cluster
            .execute_sharded(
                keys,
                |k| k.as_slice(),
                |_, keys| kvrpcpb::CommitRequest {
                    start_version,
                    keys: keys.to_vec(),
                    commit_version: commit_ts,
                    ..Default::default()
                },
            )
            .await;
        match outcome {
            Ok(results) => {
                for (_, resp) in results {
                    if let Some(e) = resp.error {
                        warn!(start_ts = start_version, commit_ts, error = ?e, "secondary commit failed; readers will resolve");
                    }
                }
            }
            Err(e) => {
                warn!(start_ts = start_version, commit_ts, error = %e, "secondary commit failed; readers will resolve")
            }
        }
    }
}
