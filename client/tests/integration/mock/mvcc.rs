//! A small in-memory Percolator store with TiKV's semantics for the commands the client sends.
//! Each command is all-or-nothing: a request with any key error changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use proto::kvrpcpb::{self, Action, KeyError, LockInfo, Op};

/// Milliseconds of a TSO timestamp.
pub fn physical(ts: u64) -> u64 {
    ts >> 18
}

#[derive(Clone, Debug)]
pub struct Lock {
    pub primary: Vec<u8>,
    pub start_ts: u64,
    pub ttl: u64,
    /// Put, Del, Lock or PessimisticLock.
    pub op: Op,
    pub value: Vec<u8>,
    pub for_update_ts: u64,
    pub min_commit_ts: u64,
}

impl Lock {
    pub fn is_pessimistic(&self) -> bool {
        self.op == Op::PessimisticLock
    }

    pub fn info(&self, key: &[u8]) -> LockInfo {
        LockInfo {
            primary_lock: self.primary.clone(),
            lock_version: self.start_ts,
            key: key.to_vec(),
            lock_ttl: self.ttl,
            lock_type: self.op as i32,
            lock_for_update_ts: self.for_update_ts,
            min_commit_ts: self.min_commit_ts,
            ..Default::default()
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum WriteKind {
    Put(Vec<u8>),
    Delete,
    Lock,
    Rollback,
}

#[derive(Clone, Debug)]
pub struct Write {
    pub start_ts: u64,
    pub commit_ts: u64,
    pub kind: WriteKind,
}

pub fn locked(lock: LockInfo) -> KeyError {
    KeyError {
        locked: Some(lock),
        ..Default::default()
    }
}

pub fn abort(msg: &str) -> KeyError {
    KeyError {
        abort: msg.into(),
        ..Default::default()
    }
}

#[derive(Default)]
pub struct Mvcc {
    pub locks: BTreeMap<Vec<u8>, Lock>,
    /// Newest first.
    pub writes: BTreeMap<Vec<u8>, Vec<Write>>,
}

impl Mvcc {
    fn writes_of(&self, key: &[u8]) -> &[Write] {
        self.writes.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    fn push_write(&mut self, key: &[u8], w: Write) {
        let list = self.writes.entry(key.to_vec()).or_default();
        list.push(w);
        list.sort_by_key(|w| std::cmp::Reverse(w.commit_ts));
    }

    fn own_write(&self, key: &[u8], start_ts: u64) -> Option<&Write> {
        self.writes_of(key).iter().find(|w| w.start_ts == start_ts)
    }

    /// The committed value visible at `ts`.
    pub fn value_at(&self, key: &[u8], ts: u64) -> Option<Vec<u8>> {
        for w in self.writes_of(key).iter().filter(|w| w.commit_ts <= ts) {
            match &w.kind {
                WriteKind::Put(v) => return Some(v.clone()),
                WriteKind::Delete => return None,
                WriteKind::Lock | WriteKind::Rollback => {}
            }
        }
        None
    }

    /// Newest commit (not a rollback) of another transaction.
    fn newest_commit(&self, key: &[u8]) -> Option<&Write> {
        self.writes_of(key)
            .iter()
            .find(|w| w.kind != WriteKind::Rollback)
    }

    pub fn get(&self, key: &[u8], ts: u64) -> Result<Option<Vec<u8>>, LockInfo> {
        if let Some(l) = self.locks.get(key) {
            if !l.is_pessimistic() && l.start_ts <= ts {
                return Err(l.info(key));
            }
        }
        Ok(self.value_at(key, ts))
    }

    /// Pairs in `[start, end)` at `ts`, locked keys reported as errors.
    pub fn scan(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
        ts: u64,
        key_only: bool,
        reverse: bool,
    ) -> Vec<kvrpcpb::KvPair> {
        let keys: BTreeSet<&Vec<u8>> = self.locks.keys().chain(self.writes.keys()).collect();
        let keys: Vec<&Vec<u8>> = if reverse {
            keys.into_iter().rev().collect()
        } else {
            keys.into_iter().collect()
        };
        let mut out = Vec::new();
        for key in keys {
            if key.as_slice() < start || end.is_some_and(|e| key.as_slice() >= e) {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            match self.get(key, ts) {
                Err(lock) => out.push(kvrpcpb::KvPair {
                    error: Some(locked(lock)),
                    key: key.clone(),
                    value: Vec::new(),
                }),
                Ok(Some(v)) => out.push(kvrpcpb::KvPair {
                    error: None,
                    key: key.clone(),
                    value: if key_only { Vec::new() } else { v },
                }),
                Ok(None) => {}
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    pub fn prewrite(
        &mut self,
        mutations: &[kvrpcpb::Mutation],
        primary: &[u8],
        start_ts: u64,
        ttl: u64,
        for_update_ts: u64,
        actions: &[i32],
    ) -> Vec<KeyError> {
        let mut errors = Vec::new();
        let mut new_locks = Vec::new();
        for (i, m) in mutations.iter().enumerate() {
            let key = &m.key;
            let pessimistic_check = actions.get(i).copied() == Some(1);
            let op = Op::try_from(m.op).unwrap_or(Op::Put);
            match self.locks.get(key) {
                Some(l) if l.start_ts != start_ts => {
                    errors.push(locked(l.info(key)));
                    continue;
                }
                Some(l) if !l.is_pessimistic() => continue, // already prewritten
                Some(_) => {}
                None if pessimistic_check => {
                    errors.push(abort("pessimistic lock not found"));
                    continue;
                }
                None => {}
            }
            if let Some(w) = self.own_write(key, start_ts) {
                if w.kind == WriteKind::Rollback {
                    errors.push(abort("already rolled back"));
                }
                continue;
            }
            if !pessimistic_check {
                if let Some(w) = self.newest_commit(key).filter(|w| w.commit_ts >= start_ts) {
                    errors.push(KeyError {
                        conflict: Some(kvrpcpb::WriteConflict {
                            start_ts,
                            conflict_ts: w.start_ts,
                            conflict_commit_ts: w.commit_ts,
                            key: key.clone(),
                            primary: primary.to_vec(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    });
                    continue;
                }
            }
            if matches!(op, Op::Insert | Op::CheckNotExists)
                && self.value_at(key, u64::MAX).is_some()
            {
                errors.push(KeyError {
                    already_exist: Some(kvrpcpb::AlreadyExist { key: key.clone() }),
                    ..Default::default()
                });
                continue;
            }
            let lock_op = match op {
                Op::CheckNotExists => continue,
                Op::Insert => Op::Put,
                o => o,
            };
            new_locks.push((
                key.clone(),
                Lock {
                    primary: primary.to_vec(),
                    start_ts,
                    ttl,
                    op: lock_op,
                    value: m.value.clone(),
                    for_update_ts,
                    min_commit_ts: 0,
                },
            ));
        }
        if errors.is_empty() {
            self.locks.extend(new_locks);
        }
        errors
    }

    pub fn commit(&mut self, keys: &[Vec<u8>], start_ts: u64, commit_ts: u64) -> Option<KeyError> {
        for key in keys {
            match self.locks.get(key) {
                Some(l) if l.start_ts == start_ts => {
                    if l.is_pessimistic() {
                        return Some(abort("pessimistic lock not prewritten"));
                    }
                    if commit_ts < l.min_commit_ts {
                        return Some(KeyError {
                            commit_ts_expired: Some(kvrpcpb::CommitTsExpired {
                                start_ts,
                                attempted_commit_ts: commit_ts,
                                key: key.clone(),
                                min_commit_ts: l.min_commit_ts,
                            }),
                            ..Default::default()
                        });
                    }
                }
                _ => match self.own_write(key, start_ts) {
                    Some(w) if w.kind != WriteKind::Rollback => {}
                    _ => return Some(abort("txn lock not found")),
                },
            }
        }
        for key in keys {
            if let Some(l) = self
                .locks
                .get(key)
                .filter(|l| l.start_ts == start_ts)
                .cloned()
            {
                self.locks.remove(key);
                let kind = match l.op {
                    Op::Put => WriteKind::Put(l.value),
                    Op::Del => WriteKind::Delete,
                    _ => WriteKind::Lock,
                };
                self.push_write(
                    key,
                    Write {
                        start_ts,
                        commit_ts,
                        kind,
                    },
                );
            }
        }
        None
    }

    pub fn rollback(&mut self, keys: &[Vec<u8>], start_ts: u64) -> Option<KeyError> {
        for key in keys {
            if self
                .own_write(key, start_ts)
                .is_some_and(|w| w.kind != WriteKind::Rollback)
            {
                return Some(abort("already committed"));
            }
        }
        for key in keys {
            if self.locks.get(key).is_some_and(|l| l.start_ts == start_ts) {
                self.locks.remove(key);
            }
            if self.own_write(key, start_ts).is_none() {
                self.push_write(
                    key,
                    Write {
                        start_ts,
                        commit_ts: start_ts,
                        kind: WriteKind::Rollback,
                    },
                );
            }
        }
        None
    }

    pub fn check_txn_status(
        &mut self,
        primary: &[u8],
        lock_ts: u64,
        current_ts: u64,
        rollback_if_not_exist: bool,
    ) -> kvrpcpb::CheckTxnStatusResponse {
        let mut resp = kvrpcpb::CheckTxnStatusResponse::default();
        if let Some(l) = self
            .locks
            .get(primary)
            .filter(|l| l.start_ts == lock_ts)
            .cloned()
        {
            if physical(current_ts) >= physical(lock_ts) + l.ttl {
                if l.is_pessimistic() {
                    self.locks.remove(primary);
                    resp.action = Action::TtlExpirePessimisticRollback as i32;
                } else {
                    self.rollback(&[primary.to_vec()], lock_ts);
                    resp.action = Action::TtlExpireRollback as i32;
                }
            } else {
                resp.lock_ttl = l.ttl;
                resp.lock_info = Some(l.info(primary));
            }
            return resp;
        }
        match self.own_write(primary, lock_ts) {
            Some(w) if w.kind == WriteKind::Rollback => {}
            Some(w) => resp.commit_version = w.commit_ts,
            None if rollback_if_not_exist => {
                self.rollback(&[primary.to_vec()], lock_ts);
                resp.action = Action::LockNotExistRollback as i32;
            }
            None => {
                resp.error = Some(KeyError {
                    txn_not_found: Some(kvrpcpb::TxnNotFound {
                        start_ts: lock_ts,
                        primary_key: primary.to_vec(),
                    }),
                    ..Default::default()
                })
            }
        }
        resp
    }

    /// Commits (`commit_ts > 0`) or rolls back `start_ts`'s locks on `keys`.
    pub fn resolve(&mut self, keys: &[Vec<u8>], start_ts: u64, commit_ts: u64) -> Option<KeyError> {
        let keys: Vec<Vec<u8>> = keys
            .iter()
            .filter(|k| self.locks.get(*k).is_some_and(|l| l.start_ts == start_ts))
            .cloned()
            .collect();
        if commit_ts > 0 {
            self.commit(&keys, start_ts, commit_ts)
        } else {
            self.rollback(&keys, start_ts)
        }
    }

    pub fn heartbeat(
        &mut self,
        primary: &[u8],
        start_ts: u64,
        advise: u64,
    ) -> Result<u64, KeyError> {
        match self.locks.get_mut(primary) {
            Some(l) if l.start_ts == start_ts => {
                l.ttl = l.ttl.max(advise);
                Ok(l.ttl)
            }
            _ => Err(KeyError {
                txn_not_found: Some(kvrpcpb::TxnNotFound {
                    start_ts,
                    primary_key: primary.to_vec(),
                }),
                ..Default::default()
            }),
        }
    }

    /// Latest committed values of `keys` once all are locked, or the errors.
    pub fn pessimistic_lock(
        &mut self,
        keys: &[Vec<u8>],
        primary: &[u8],
        start_ts: u64,
        for_update_ts: u64,
        ttl: u64,
    ) -> Result<Vec<Option<Vec<u8>>>, Vec<KeyError>> {
        let mut errors = Vec::new();
        for key in keys {
            if let Some(l) = self.locks.get(key).filter(|l| l.start_ts != start_ts) {
                errors.push(locked(l.info(key)));
                continue;
            }
            if self
                .own_write(key, start_ts)
                .is_some_and(|w| w.kind == WriteKind::Rollback)
            {
                errors.push(abort("already rolled back"));
                continue;
            }
            if let Some(w) = self
                .newest_commit(key)
                .filter(|w| w.commit_ts > for_update_ts)
            {
                errors.push(KeyError {
                    conflict: Some(kvrpcpb::WriteConflict {
                        start_ts,
                        conflict_ts: w.start_ts,
                        conflict_commit_ts: w.commit_ts,
                        key: key.clone(),
                        primary: primary.to_vec(),
                        reason: kvrpcpb::write_conflict::Reason::PessimisticRetry as i32,
                    }),
                    ..Default::default()
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        for key in keys {
            let lock = self.locks.entry(key.clone()).or_insert(Lock {
                primary: primary.to_vec(),
                start_ts,
                ttl,
                op: Op::PessimisticLock,
                value: Vec::new(),
                for_update_ts,
                min_commit_ts: 0,
            });
            lock.for_update_ts = lock.for_update_ts.max(for_update_ts);
        }
        Ok(keys.iter().map(|k| self.value_at(k, u64::MAX)).collect())
    }

    pub fn pessimistic_rollback(&mut self, keys: &[Vec<u8>], start_ts: u64, for_update_ts: u64) {
        for key in keys {
            if self.locks.get(key).is_some_and(|l| {
                l.start_ts == start_ts && l.is_pessimistic() && l.for_update_ts <= for_update_ts
            }) {
                self.locks.remove(key);
            }
        }
    }
}
