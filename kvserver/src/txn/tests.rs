//! Command-level tests of edge cases the staged suite (tests/tests/project4) does not reach
//! through the service: overlapped rollbacks, min-commit-ts pushing, batching, concurrency, and
//! the error → `KeyError` mapping.

use std::collections::HashMap;
use std::sync::Arc;

use proto::kvrpcpb::{write_conflict::Reason, Context};
use raft_core::engine::CF_WRITE;

use super::actions::{Mutation, MutationOp, PessimisticAction, PessimisticLockProps, TxnProps};
use super::*;
use crate::errors::{txn_error_fields, Error, TxnError};
use crate::latches::Latches;
use crate::mvcc::test_util::TestStore;
use crate::mvcc::{compose_ts, Key, Lock, LockType, ReadOptions, Write, WriteType};
use crate::storage::{Modify, StandaloneStorage};

struct Env {
    store: TestStore,
    latches: Latches,
    ctx: Context,
}

impl Env {
    fn new() -> Env {
        Env {
            store: TestStore::new(),
            latches: Latches::new(256),
            ctx: Context::default(),
        }
    }

    fn exec(&self) -> Executor<'_, StandaloneStorage> {
        Executor::new(&self.store.storage, &self.latches)
    }

    async fn prewrite(
        &self,
        muts: &[(&[u8], Option<&[u8]>)],
        primary: &[u8],
        ts: u64,
    ) -> PrewriteResult {
        self.prewrite_with(muts, primary, ts, 0, 0).await
    }

    async fn prewrite_with(
        &self,
        muts: &[(&[u8], Option<&[u8]>)],
        primary: &[u8],
        ts: u64,
        for_update_ts: u64,
        min_commit_ts: u64,
    ) -> PrewriteResult {
        let mutations = muts
            .iter()
            .map(|(k, v)| Mutation {
                op: if v.is_some() {
                    MutationOp::Put
                } else {
                    MutationOp::Delete
                },
                key: k.to_vec(),
                value: v.unwrap_or_default().to_vec(),
                pessimistic_action: if for_update_ts != 0 {
                    PessimisticAction::DoPessimisticCheck
                } else {
                    PessimisticAction::Skip
                },
            })
            .collect();
        Prewrite {
            start_ts: ts,
            props: TxnProps {
                primary: primary.to_vec(),
                lock_ttl: 3000,
                txn_size: muts.len() as u64,
                for_update_ts,
                min_commit_ts,
                skip_constraint_check: false,
            },
            mutations,
        }
        .execute(&self.exec(), &self.ctx)
        .await
        .unwrap()
    }

    async fn must_prewrite_put(&self, key: &[u8], value: &[u8], primary: &[u8], ts: u64) {
        let res = self.prewrite(&[(key, Some(value))], primary, ts).await;
        assert!(res.errors.is_empty(), "{:?}", res.errors);
    }

    async fn commit(&self, keys: &[&[u8]], start_ts: u64, commit_ts: u64) -> crate::Result<()> {
        Commit {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            start_ts,
            commit_ts,
        }
        .execute(&self.exec(), &self.ctx)
        .await
    }

    async fn rollback(&self, keys: &[&[u8]], start_ts: u64) -> crate::Result<()> {
        BatchRollback {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            start_ts,
        }
        .execute(&self.exec(), &self.ctx)
        .await
    }

    async fn get(&self, key: &[u8], ts: u64) -> crate::Result<Option<Vec<u8>>> {
        Get {
            key: key.to_vec(),
            ts,
            read: ReadOptions::default(),
        }
        .execute(&self.exec(), &self.ctx)
        .await
    }

    fn must_locked(&self, key: &[u8]) -> Lock {
        self.store
            .reader()
            .load_lock(&Key::from_raw(key))
            .unwrap()
            .expect("key is locked")
    }

    fn write_at(&self, key: &[u8], ts: u64) -> Option<Write> {
        let mut r = self.store.reader();
        let k = Key::from_raw(key);
        match r.seek_write(&k, ts).unwrap() {
            Some((found, w)) if found == ts => Some(w),
            _ => None,
        }
    }
}

fn txn_error(e: &Error) -> &TxnError {
    match e {
        Error::Txn(t) => t,
        other => panic!("expected a transactional error, got {other}"),
    }
}

#[tokio::test]
async fn rollback_on_a_commit_record_sets_the_overlapped_flag() {
    let env = Env::new();
    env.must_prewrite_put(b"k", b"v", b"k", 10).await;
    env.commit(&[b"k"], 10, 20).await.unwrap();

    // Txn 20 (whose start ts equals that commit ts) is rolled back on k.
    env.rollback(&[b"k"], 20).await.unwrap();
    let w = env.write_at(b"k", 20).unwrap();
    assert_eq!(
        (w.write_type, w.start_ts),
        (WriteType::Put, 10),
        "commit record kept"
    );
    assert!(w.has_overlapped_rollback);
    assert_eq!(env.get(b"k", 25).await.unwrap(), Some(b"v".to_vec()));

    // A late prewrite of txn 20 must fail.
    let res = env.prewrite(&[(b"k", Some(b"x"))], b"k", 20).await;
    let err = txn_error(&res.errors[0]);
    assert!(matches!(
        err,
        TxnError::WriteConflict {
            reason: Reason::SelfRolledBack,
            ..
        }
    ));
}

#[tokio::test]
async fn commit_over_a_rollback_record_keeps_the_rollback() {
    let env = Env::new();
    env.must_prewrite_put(b"k", b"v", b"k", 25).await;
    // Txn 30 is rolled back on k (which txn 25 holds) before it ever prewrote...
    env.rollback(&[b"k"], 30).await.unwrap();
    assert_eq!(
        env.write_at(b"k", 30).unwrap().write_type,
        WriteType::Rollback
    );
    // ...then txn 25 commits k at exactly 30.
    env.commit(&[b"k"], 25, 30).await.unwrap();
    let w = env.write_at(b"k", 30).unwrap();
    assert_eq!((w.write_type, w.start_ts), (WriteType::Put, 25));
    assert!(w.has_overlapped_rollback);
    let res = env.prewrite(&[(b"k", Some(b"x"))], b"k", 30).await;
    assert!(matches!(
        txn_error(&res.errors[0]),
        TxnError::WriteConflict { .. }
    ));
}

#[tokio::test]
async fn check_txn_status_pushes_min_commit_ts_and_commit_respects_it() {
    let env = Env::new();
    let start = compose_ts(1000, 0);
    let res = env
        .prewrite_with(&[(b"k", Some(b"v"))], b"k", start, 0, start + 1)
        .await;
    assert!(res.errors.is_empty());
    let caller = compose_ts(1001, 0);
    let status = CheckTxnStatus {
        primary_key: b"k".to_vec(),
        lock_ts: start,
        caller_start_ts: caller,
        current_ts: compose_ts(1000, 5),
        rollback_if_not_exist: false,
        resolving_pessimistic_lock: false,
        verify_is_primary: true,
    }
    .execute(&env.exec(), &env.ctx)
    .await
    .unwrap();
    assert!(matches!(
        status,
        TxnStatus::Uncommitted { ref lock, min_commit_ts_pushed: true } if lock.min_commit_ts == caller + 1
    ));
    assert_eq!(env.must_locked(b"k").min_commit_ts, caller + 1);

    let err = env.commit(&[b"k"], start, caller).await.unwrap_err();
    assert!(matches!(
        txn_error(&err),
        TxnError::CommitTsExpired { min_commit_ts, .. } if *min_commit_ts == caller + 1
    ));
    assert_eq!(
        err.key_error().commit_ts_expired.unwrap().min_commit_ts,
        caller + 1
    );
    env.commit(&[b"k"], start, caller + 2).await.unwrap();
    assert_eq!(
        env.get(b"k", caller + 2).await.unwrap(),
        Some(b"v".to_vec())
    );
}

#[tokio::test]
async fn resolve_lock_covers_more_locks_than_one_batch() {
    let env = Env::new();
    let n = RESOLVE_LOCK_BATCH_SIZE * 2 + 7;
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("key{i:05}").into_bytes()).collect();
    let muts: Vec<(&[u8], Option<&[u8]>)> = keys
        .iter()
        .map(|k| (k.as_slice(), Some(&b"v"[..])))
        .collect();
    assert!(env.prewrite(&muts, &keys[0], 10).await.errors.is_empty());
    // Another transaction's lock in the middle must survive.
    env.must_prewrite_put(b"key00100x", b"other", b"key00100x", 11)
        .await;

    ResolveLock {
        txn_status: HashMap::from([(10, 15)]),
        keys: vec![],
    }
    .execute(&env.exec(), &env.ctx)
    .await
    .unwrap();
    let r = env.store.reader();
    let (left, _) = r.scan_locks(b"", b"", |_| true, 0).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1.ts, 11);
    assert_eq!(
        env.get(&keys[n - 1], 20).await.unwrap(),
        Some(b"v".to_vec())
    );
}

#[tokio::test]
async fn latches_let_only_one_of_many_concurrent_prewrites_win() {
    let env = Arc::new(Env::new());
    let mut tasks = Vec::new();
    for ts in 1..=16u64 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            env.prewrite(&[(b"hot", Some(b"v")), (b"other", None)], b"hot", ts * 10)
                .await
                .errors
                .is_empty()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

#[tokio::test]
async fn pessimistic_lock_then_prewrite_then_commit() {
    let env = Env::new();
    // Committed before the transaction's for_update_ts: fine to lock.
    env.must_prewrite_put(b"k", b"old", b"k", 5).await;
    env.commit(&[b"k"], 5, 8).await.unwrap();

    let lock = |for_update_ts, need_value| PessimisticLock {
        start_ts: 10,
        props: PessimisticLockProps {
            primary: b"k".to_vec(),
            lock_ttl: 20000,
            for_update_ts,
            min_commit_ts: 0,
            need_value,
            need_check_existence: false,
            lock_only_if_exists: false,
        },
        keys: vec![(b"k".to_vec(), false)],
    };
    let res = lock(12, true).execute(&env.exec(), &env.ctx).await.unwrap();
    assert!(res.errors.is_empty());
    assert_eq!(res.values, vec![Some(b"old".to_vec())]);
    assert_eq!(env.must_locked(b"k").lock_type, LockType::Pessimistic);

    // Prewrite must find the pessimistic lock; a key without one fails.
    let res = env
        .prewrite_with(&[(b"nolock", Some(b"x"))], b"k", 10, 12, 0)
        .await;
    assert!(matches!(
        txn_error(&res.errors[0]),
        TxnError::PessimisticLockNotFound { .. }
    ));
    let res = env
        .prewrite_with(&[(b"k", Some(b"new"))], b"k", 10, 12, 0)
        .await;
    assert!(res.errors.is_empty(), "{:?}", res.errors);
    let l = env.must_locked(b"k");
    assert_eq!(
        (l.lock_type, l.ttl, l.for_update_ts),
        (LockType::Put, 20000, 12)
    );
    env.commit(&[b"k"], 10, 13).await.unwrap();
    assert_eq!(env.get(b"k", 14).await.unwrap(), Some(b"new".to_vec()));

    // Locking with a for_update_ts older than the newest commit is a conflict.
    let stale = PessimisticLock {
        start_ts: 11,
        ..lock(12, false)
    };
    let res = stale.execute(&env.exec(), &env.ctx).await.unwrap();
    assert!(matches!(
        txn_error(&res.errors[0]),
        TxnError::WriteConflict {
            reason: Reason::PessimisticRetry,
            conflict_commit_ts: 13,
            ..
        }
    ));

    // A rolled-back transaction cannot take the lock afterwards.
    env.rollback(&[b"k"], 20).await.unwrap();
    let late = PessimisticLock {
        start_ts: 20,
        ..lock(21, false)
    };
    let res = late.execute(&env.exec(), &env.ctx).await.unwrap();
    assert!(matches!(
        txn_error(&res.errors[0]),
        TxnError::PessimisticLockRolledBack { .. }
    ));
}

#[tokio::test]
async fn malformed_stored_data_is_an_error_not_a_panic() {
    let env = Env::new();
    // What a raw-API client writing into the write CF could leave behind.
    env.store
        .storage
        .write_sync(vec![Modify::Put {
            cf: CF_WRITE,
            key: Key::from_raw(b"k").append_ts(5),
            value: b"garbage".to_vec(),
        }])
        .unwrap();
    let err = env.get(b"k", 10).await.unwrap_err();
    assert!(matches!(txn_error(&err), TxnError::BadFormat(_)));
    assert!(!err.key_error().abort.is_empty());
}

#[test]
fn key_errors_fill_the_fields_clients_read() {
    let conflict: Error = TxnError::WriteConflict {
        start_ts: 1,
        conflict_start_ts: 2,
        conflict_commit_ts: 3,
        key: b"k".to_vec(),
        primary: b"p".to_vec(),
        reason: Reason::Optimistic,
    }
    .into();
    let ke = conflict.key_error();
    let c = ke.conflict.unwrap();
    assert_eq!((c.start_ts, c.conflict_ts, c.conflict_commit_ts), (1, 2, 3));
    assert!(!ke.retryable.is_empty());

    let not_found: Error = TxnError::TxnLockNotFound {
        start_ts: 1,
        commit_ts: 2,
        key: b"k".to_vec(),
    }
    .into();
    assert!(!not_found.key_error().retryable.is_empty());

    let committed: Error = TxnError::Committed {
        start_ts: 1,
        commit_ts: 9,
        key: b"k".to_vec(),
    }
    .into();
    assert!(!committed.key_error().abort.is_empty());
    assert_eq!(committed.committed_ts(), Some(9));

    let txn_not_found: Error = TxnError::TxnNotFound {
        start_ts: 4,
        key: b"p".to_vec(),
    }
    .into();
    assert_eq!(txn_not_found.key_error().txn_not_found.unwrap().start_ts, 4);

    let exists: Error = TxnError::AlreadyExist {
        key: b"k".to_vec(),
        existing_start_ts: 1,
    }
    .into();
    assert_eq!(exists.key_error().already_exist.unwrap().key, b"k");

    let mut info = Lock::new(LockType::Put, b"p".to_vec(), 7, 100).into_lock_info(b"k".to_vec());
    info.lock_ttl = 100;
    let locked: Error = TxnError::KeyIsLocked(Box::new(info.clone())).into();
    assert_eq!(locked.key_error().locked, Some(info));

    let region: Error = raft_core::Error::KeyNotInRegion {
        key: b"k".to_vec(),
        region: Box::default(),
    }
    .into();
    let (re, ke) = txn_error_fields(&region);
    assert!(re.is_some() && ke.is_none());
    let (re, ke) = txn_error_fields(&locked);
    assert!(re.is_none() && ke.unwrap().locked.is_some());
}
