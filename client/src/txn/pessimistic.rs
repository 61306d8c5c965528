//! Pessimistic locks: taken as the transaction writes, so conflicts surface (and wait) at once
//! rather than failing the commit.
//!
//! The first key locked becomes the primary and is locked alone first (`is_first_lock`); the
//! rest follow grouped by region. Each attempt uses a fresh for-update timestamp: a write
//! conflict (someone committed after our for-update ts) is retried with a newer one, a lock of
//! another transaction is resolved or waited for (`wait_timeout = 0`: stores never block).
//! If a call fails, the locks it took are released before the error is returned.

use std::collections::HashMap;

use proto::kvrpcpb;
use tracing::{debug, warn};

use super::lock::{pessimistic_rollback, resolve_or_wait};
use super::transaction::Transaction;
use crate::errors::{Error, Result};
use crate::kv::Value;

/// Latest committed values of the keys locked with `need_values`.
type LockedValues = HashMap<Vec<u8>, Option<Value>>;

impl Transaction {
    /// Locks `keys`. With `need_values` every key is (re)locked and its latest committed value
    /// returned; otherwise keys this transaction already holds are skipped.
    pub(super) async fn acquire_pessimistic_locks(
        &mut self,
        mut keys: Vec<Vec<u8>>,
        need_values: bool,
    ) -> Result<LockedValues> {
        keys.sort();
        keys.dedup();
        if !need_values {
            keys.retain(|k| !self.locked.contains(k));
        }
        let mut values = LockedValues::new();
        if keys.is_empty() {
            return Ok(values);
        }
        if self.primary.is_none() {
            let primary = keys.remove(0);
            self.primary = Some(primary.clone());
            match self
                .lock_batch(vec![primary.clone()], need_values, true)
                .await
            {
                Ok(v) => values.extend(v),
                Err(e) => {
                    self.primary = None;
                    return Err(e);
                }
            }
            self.buffer.lock(primary.clone());
            self.locked.insert(primary);
            self.ensure_heartbeat();
        }
        if !keys.is_empty() {
            values.extend(self.lock_batch(keys.clone(), need_values, false).await?);
            for key in keys {
                // A locked key is prewritten at commit even if the transaction never writes it
                // (its lock must be released with the transaction).
                self.buffer.lock(key.clone());
                self.locked.insert(key);
            }
        }
        Ok(values)
    }

    /// One locking call over `keys`; on failure releases what it newly locked.
    async fn lock_batch(
        &mut self,
        keys: Vec<Vec<u8>>,
        need_values: bool,
        is_first_lock: bool,
    ) -> Result<LockedValues> {
        let mut acquired = Vec::new();
        let mut values = LockedValues::new();
        let outcome = self
            .lock_batch_inner(keys, need_values, is_first_lock, &mut acquired, &mut values)
            .await;
        if let Err(e) = outcome {
            let fresh: Vec<Vec<u8>> = acquired
                .into_iter()
                .filter(|k| !self.locked.contains(k))
                .collect();
            if !fresh.is_empty() {
                debug!(
                    start_ts = self.start_version(),
                    keys = fresh.len(),
                    "releasing locks of a failed lock call"
                );
                let for_update_ts = self.for_update_ts.max(self.start_version());
                if let Err(re) =
                    pessimistic_rollback(&self.cluster, self.start_version(), for_update_ts, fresh)
                        .await
                {
                    warn!(start_ts = self.start_version(), error = %re, "releasing pessimistic locks failed; they expire after their ttl");
                }
            }
            return Err(e);
        }
        Ok(values)
    }

    async fn lock_batch_inner(
        &mut self,
        keys: Vec<Vec<u8>>,
        need_values: bool,
        is_first_lock: bool,
        acquired: &mut Vec<Vec<u8>>,
        values: &mut LockedValues,
    ) -> Result<()> {
        let primary = self
            .primary
            .clone()
            .expect("primary is chosen before locking");
        let start_version = self.start_version();
        let mut lock_backoff = self.cluster.config.lock_backoff.start();
        let mut pending = keys;
        while !pending.is_empty() {
            let for_update_ts = self.cluster.pd.get_timestamp().await?.version();
            let lock_ttl = self.lock_ttl_ms(self.cluster.config.pessimistic_lock_ttl);
            let results = self
                .cluster
                .execute_sharded(
                    std::mem::take(&mut pending),
                    |k| k.as_slice(),
                    |_, keys| kvrpcpb::PessimisticLockRequest {
                        mutations: keys
                            .iter()
                            .map(|k| kvrpcpb::Mutation {
                                op: kvrpcpb::Op::PessimisticLock as i32,
                                key: k.clone(),
                                ..Default::default()
                            })
                            .collect(),
                        primary_lock: primary.clone(),
                        start_version,
                        lock_ttl,
                        for_update_ts,
                        is_first_lock,
                        wait_timeout: 0,
                        return_values: need_values,
                        ..Default::default()
                    },
                )
                .await?;
            let mut locks = Vec::new();
            let mut conflict = None;
            let mut errors = Vec::new();
            for (keys, resp) in results {
                if resp.errors.is_empty() {
                    if need_values {
                        record_values(&keys, resp, values)?;
                    }
                    self.for_update_ts = self.for_update_ts.max(for_update_ts);
                    acquired.extend(keys);
                    continue;
                }
                for mut e in resp.errors {
                    if let Some(lock) = e.locked.take() {
                        locks.push(lock);
                    } else if let Some(c) = e.conflict.take() {
                        conflict = Some(c);
                    } else {
                        errors.push(Error::from(e));
                    }
                }
                // A request with errors locks nothing: retry all its keys.
                pending.extend(keys);
            }
            if !errors.is_empty() {
                return Err(Error::from_key_errors(errors));
            }
            if pending.is_empty() {
                break;
            }
            if !locks.is_empty() {
                resolve_or_wait(&self.cluster, locks, start_version, &mut lock_backoff).await?;
            } else if let Some(c) = conflict {
                // Someone committed after our for-update ts: retry with a newer one.
                if !lock_backoff.consume() {
                    return Err(Error::WriteConflict(Box::new(c)));
                }
            }
        }
        Ok(())
    }
}

/// Reads the values a `return_values` lock call returned, in request key order. `not_founds`
/// is either empty (then an empty value means "absent") or parallel to `values`.
fn record_values(
    keys: &[Vec<u8>],
    resp: kvrpcpb::PessimisticLockResponse,
    values: &mut LockedValues,
) -> Result<()> {
    let rpc = "KvPessimisticLock";
    if resp.values.len() != keys.len() {
        return Err(Error::invalid_response(
            rpc,
            format!("{} values for {} keys", resp.values.len(), keys.len()),
        ));
    }
    if !resp.not_founds.is_empty() && resp.not_founds.len() != keys.len() {
        return Err(Error::invalid_response(
            rpc,
            format!(
                "{} not_founds for {} keys",
                resp.not_founds.len(),
                keys.len()
            ),
        ));
    }
    for (i, (key, value)) in keys.iter().zip(resp.values).enumerate() {
        let absent = resp.not_founds.get(i).copied().unwrap_or(value.is_empty());
        values.insert(key.clone(), (!absent).then_some(value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_follow_key_order_and_not_founds() {
        let keys = vec![b"a".to_vec(), b"b".to_vec()];
        let mut values = LockedValues::new();
        let resp = kvrpcpb::PessimisticLockResponse {
            values: vec![b"1".to_vec(), Vec::new()],
            not_founds: vec![false, true],
            ..Default::default()
        };
        record_values(&keys, resp, &mut values).unwrap();
        assert_eq!(values[&b"a".to_vec()], Some(b"1".to_vec()));
        assert_eq!(values[&b"b".to_vec()], None);

        // Without not_founds an empty value means absent.
        let resp = kvrpcpb::PessimisticLockResponse {
            values: vec![Vec::new(), b"2".to_vec()],
            ..Default::default()
        };
        record_values(&keys, resp, &mut values).unwrap();
        assert_eq!(values[&b"a".to_vec()], None);

        let short = kvrpcpb::PessimisticLockResponse {
            values: vec![b"1".to_vec()],
            ..Default::default()
        };
        assert!(record_values(&keys, short, &mut values).is_err());
    }
}
