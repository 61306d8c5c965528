//! 4B: KvGet, KvBatchGet, KvPrewrite and KvCommit through the service.

use kvserver::mvcc::{LockType, WriteType};
use proto::kvrpcpb::*;
use raft_core::engine::{CF_DEFAULT, CF_LOCK, CF_WRITE};
use tonic::Code;

use crate::helpers::*;

scenarios! {
    // ---- KvGet / KvBatchGet ---------------------------------------------------------------------

    async fn get_value(s) {
        s.put_committed(b"k", b"v", 90, 99);
        assert_eq!(s.must_get(b"k", u64::MAX).await, Some(b"v".to_vec()));
        // Repeatable: the same read twice gives the same answer.
        assert_eq!(s.must_get(b"k", 100).await, Some(b"v".to_vec()));
        assert_eq!(s.must_get(b"k", 100).await, Some(b"v".to_vec()));
    }

    async fn get_empty_and_absent(s) {
        let resp = s.get(b"k", 100).await;
        assert!(resp.not_found && resp.value.is_empty() && resp.error.is_none());
        s.put_committed(b"a", b"1", 90, 95);
        s.put_committed(b"c", b"3", 90, 95);
        assert_eq!(s.must_get(b"b", 100).await, None);
    }

    async fn get_versions(s) {
        s.put_committed(b"k", b"v1", 100, 101);
        s.put_committed(b"k", b"v2", 200, 201);
        s.put_committed(b"k", b"v3", 300, 301);
        assert_eq!(s.must_get(b"k", 99).await, None);
        for (ts, want) in [
            (101, "v1"),
            (200, "v1"),
            (201, "v2"),
            (300, "v2"),
            (1000, "v3"),
        ] {
            assert_eq!(
                s.must_get(b"k", ts).await,
                Some(want.as_bytes().to_vec()),
                "at {ts}"
            );
        }
    }

    async fn get_deleted(s) {
        s.put_committed(b"k", b"v1", 100, 101);
        s.put_write(
            b"k",
            201,
            kvserver::mvcc::Write::new(WriteType::Delete, 200, None),
        );
        s.put_committed(b"k", b"v3", 300, 301);
        assert_eq!(s.must_get(b"k", 150).await, Some(b"v1".to_vec()));
        assert_eq!(s.must_get(b"k", 250).await, None);
        assert_eq!(s.must_get(b"k", 300).await, None);
        assert_eq!(s.must_get(b"k", 301).await, Some(b"v3".to_vec()));
    }

    async fn get_locked(s) {
        s.put_committed(b"k", b"v1", 50, 51);
        s.put_lock(b"k", Server::lock(LockType::Put, b"pk", 200, 3000));
        // Older snapshots read past the lock.
        assert_eq!(s.must_get(b"k", 55).await, Some(b"v1".to_vec()));
        // Snapshots at or after the lock's ts must wait for it to be resolved.
        for ts in [200, 300] {
            let resp = s.get(b"k", ts).await;
            let info = locked(&resp.error);
            assert_eq!(info.key, b"k");
            assert_eq!(info.primary_lock, b"pk");
            assert_eq!((info.lock_version, info.lock_ttl), (200, 3000));
            assert_eq!(info.lock_type, Op::Put as i32);
        }
        // A lock-only lock (read-for-update) never blocks readers.
        s.put_lock(b"l", Server::lock(LockType::Lock, b"pk", 200, 3000));
        assert_eq!(s.must_get(b"l", 300).await, None);
    }

    async fn batch_get_reports_values_and_locks_per_key(s) {
        s.put_committed(b"a", b"1", 10, 11);
        s.put_committed(b"c", b"3", 10, 11);
        s.put_lock(b"c", Server::lock(LockType::Put, b"c", 20, 3000));
        let resp = s.batch_get(&[b"a", b"b", b"c"], 30).await;
        assert!(resp.region_error.is_none() && resp.error.is_none());
        // Absent keys are omitted; a locked key carries its lock.
        assert_eq!(resp.pairs.len(), 2);
        assert_eq!(
            (resp.pairs[0].key.as_slice(), resp.pairs[0].value.as_slice()),
            (&b"a"[..], &b"1"[..])
        );
        assert_eq!(locked(&resp.pairs[1].error).lock_version, 20);
        let resp = s.batch_get(&[b"a", b"b", b"c"], 15).await;
        assert_eq!(resp.pairs.len(), 2);
        assert!(resp.pairs.iter().all(|p| p.error.is_none()));
    }

    async fn read_committed_ignores_locks(s) {
        s.put_committed(b"k", b"v1", 10, 11);
        s.put_lock(b"k", Server::lock(LockType::Put, b"k", 20, 3000));
        let resp = s
            .call(GetRequest {
                key: b"k".to_vec(),
                version: 30,
                context: Some(Context {
                    isolation_level: IsolationLevel::Rc as i32,
                    ..Default::default()
                }),
            })
            .await;
        assert_eq!(resp.value, b"v1");
        // A transaction the client already resolved as not visible does not block (resolved_locks).
        let resp = s
            .call(GetRequest {
                key: b"k".to_vec(),
                version: 30,
                context: Some(Context {
                    resolved_locks: vec![20],
                    ..Default::default()
                }),
            })
            .await;
        assert_eq!(resp.value, b"v1");
    }

    // ---- KvPrewrite -----------------------------------------------------------------------------

    async fn empty_prewrite(s) {
        s.must_prewrite(vec![], b"pk", 100).await;
        assert!(s.dump().is_empty());
    }

    async fn single_prewrite_short_and_long_values(s) {
        s.must_prewrite(vec![put(b"k", b"v")], b"k", 100).await;
        // A short value rides in the lock; nothing in the default CF.
        let lock = s.lock_of(b"k").unwrap();
        assert_eq!(
            (lock.lock_type, lock.ts, lock.ttl, lock.primary.as_slice()),
            (LockType::Put, 100, 3000, &b"k"[..])
        );
        assert_eq!(lock.short_value.as_deref(), Some(&b"v"[..]));
        assert_eq!(
            (s.cf_len(CF_DEFAULT), s.cf_len(CF_LOCK), s.cf_len(CF_WRITE)),
            (0, 1, 0)
        );

        let long = vec![7u8; 1000];
        s.must_prewrite(vec![put(b"l", &long)], b"k", 100).await;
        assert_eq!(s.lock_of(b"l").unwrap().short_value, None);
        assert_eq!(s.value_at(b"l", 100), Some(long));
        assert_eq!((s.cf_len(CF_DEFAULT), s.cf_len(CF_LOCK)), (1, 2));
    }

    async fn prewrite_locked(s) {
        s.must_prewrite(vec![put(b"k", b"v1")], b"k", 100).await;
        let before = s.dump();
        let resp = s
            .prewrite_muts(vec![put(b"k", b"v2"), put(b"j", b"x")], b"k", 110)
            .await;
        assert_eq!(resp.errors.len(), 1);
        assert_eq!(locked(&Some(resp.errors[0].clone())).lock_version, 100);
        // All or nothing: "j" was not locked either, and the first txn is intact.
        assert_eq!(s.dump(), before);
    }

    async fn prewrite_written_conflicts(s) {
        s.put_committed(b"k", b"v1", 90, 101);
        let before = s.dump();
        let resp = s.prewrite_muts(vec![put(b"k", b"v2")], b"k", 100).await;
        assert_eq!(resp.errors.len(), 1);
        let conflict = resp.errors[0].conflict.as_ref().expect("write conflict");
        assert_eq!(
            (
                conflict.start_ts,
                conflict.conflict_ts,
                conflict.conflict_commit_ts
            ),
            (100, 90, 101)
        );
        assert_eq!(conflict.key, b"k");
        assert_eq!(s.dump(), before);
    }

    async fn prewrite_written_before_start_is_no_conflict(s) {
        s.put_committed(b"k", b"v1", 80, 90);
        s.must_prewrite(vec![put(b"k", b"v2")], b"k", 100).await;
        assert_eq!(s.lock_of(b"k").unwrap().ts, 100);
    }

    async fn multiple_prewrites_on_different_keys(s) {
        s.must_prewrite(vec![put(b"a", b"1")], b"a", 100).await;
        s.must_prewrite(vec![put(b"b", b"2")], b"b", 101).await;
        assert_eq!(s.lock_of(b"a").unwrap().ts, 100);
        assert_eq!(s.lock_of(b"b").unwrap().ts, 101);
    }

    async fn prewrite_overwrite_last_mutation_wins(s) {
        s.must_prewrite(vec![put(b"k", b"v1"), put(b"k", b"v2")], b"k", 100)
            .await;
        assert_eq!(s.cf_len(CF_LOCK), 1);
        assert_eq!(
            s.lock_of(b"k").unwrap().short_value.as_deref(),
            Some(&b"v2"[..])
        );
    }

    async fn prewrite_multiple_mutations_over_four_keys(s) {
        let long = vec![9u8; 400];
        s.must_prewrite(
            vec![
                put(b"a", &long),
                put(b"b", b"2"),
                del(b"a"),
                put(b"c", b"3"),
                put(b"a", b"final"),
                mutation(Op::Lock, b"d", b""),
            ],
            b"a",
            100,
        )
        .await;
        assert_eq!(s.cf_len(CF_LOCK), 4);
        // The long value of the first mutation of "a" was never stored.
        assert_eq!(s.cf_len(CF_DEFAULT), 0);
        assert_eq!(
            s.lock_of(b"a").unwrap().short_value.as_deref(),
            Some(&b"final"[..])
        );
        assert_eq!(s.lock_of(b"d").unwrap().lock_type, LockType::Lock);
        s.must_commit(&[b"a", b"b", b"c", b"d"], 100, 110).await;
        assert_eq!(s.must_get(b"a", 120).await, Some(b"final".to_vec()));
        assert_eq!(s.must_get(b"d", 120).await, None);
        assert_eq!(s.write_at(b"d", 110).unwrap().write_type, WriteType::Lock);
    }

    async fn prewrite_is_idempotent(s) {
        s.must_prewrite(vec![put(b"k", b"v")], b"k", 100).await;
        let before = s.dump();
        s.must_prewrite(vec![put(b"k", b"v")], b"k", 100).await;
        assert_eq!(s.dump(), before);
    }

    async fn prewrite_after_own_rollback_fails(s) {
        assert!(s.rollback(&[b"k"], 100).await.error.is_none());
        let resp = s.prewrite_muts(vec![put(b"k", b"v")], b"k", 100).await;
        let conflict = resp.errors[0].conflict.as_ref().expect("conflict");
        assert_eq!(
            conflict.reason,
            write_conflict::Reason::SelfRolledBack as i32
        );
        assert!(s.lock_of(b"k").is_none());
    }

    async fn insert_on_existing_key_is_already_exist(s) {
        s.put_committed(b"k", b"v", 80, 90);
        let before = s.dump();
        for op in [Op::Insert, Op::CheckNotExists] {
            let resp = s
                .prewrite_muts(vec![mutation(op, b"k", b"x")], b"k", 100)
                .await;
            assert_eq!(resp.errors.len(), 1, "{op:?}");
            assert_eq!(resp.errors[0].already_exist.as_ref().unwrap().key, b"k");
            assert_eq!(s.dump(), before);
        }
        // A lock record on top does not hide the value.
        s.put_write(
            b"k",
            95,
            kvserver::mvcc::Write::new(WriteType::Lock, 92, None),
        );
        let resp = s
            .prewrite_muts(vec![mutation(Op::Insert, b"k", b"x")], b"k", 100)
            .await;
        assert!(resp.errors[0].already_exist.is_some());
    }

    async fn insert_on_absent_or_deleted_key_succeeds(s) {
        s.put_committed(b"d", b"v", 80, 90);
        s.put_write(
            b"d",
            92,
            kvserver::mvcc::Write::new(WriteType::Delete, 91, None),
        );
        s.must_prewrite(
            vec![
                mutation(Op::Insert, b"d", b"new"),
                mutation(Op::Insert, b"n", b"new"),
                mutation(Op::CheckNotExists, b"x", b""),
            ],
            b"d",
            100,
        )
        .await;
        // CheckNotExists writes nothing.
        assert_eq!(s.cf_len(CF_LOCK), 2);
        assert!(s.lock_of(b"x").is_none());
        s.must_commit(&[b"d", b"n"], 100, 101).await;
        assert_eq!(s.must_get(b"d", 105).await, Some(b"new".to_vec()));
    }

    async fn pessimistic_prewrite_requires_the_pessimistic_lock(s) {
        let req = |key: &[u8]| PrewriteRequest {
            mutations: vec![put(key, b"v")],
            primary_lock: b"k".to_vec(),
            start_version: 100,
            for_update_ts: 105,
            lock_ttl: 3000,
            pessimistic_actions: vec![
                prewrite_request::PessimisticAction::DoPessimisticCheck as i32,
            ],
            ..Default::default()
        };
        let resp = s.prewrite(req(b"k")).await;
        assert!(
            !resp.errors[0].abort.is_empty(),
            "no pessimistic lock: {resp:?}"
        );
        let lock = s
            .pessimistic_lock(PessimisticLockRequest {
                mutations: vec![mutation(Op::PessimisticLock, b"k", b"")],
                primary_lock: b"k".to_vec(),
                start_version: 100,
                for_update_ts: 105,
                lock_ttl: 20000,
                ..Default::default()
            })
            .await;
        assert!(lock.errors.is_empty());
        let resp = s.prewrite(req(b"k")).await;
        assert!(resp.errors.is_empty(), "{resp:?}");
        let l = s.lock_of(b"k").unwrap();
        assert_eq!(
            (l.lock_type, l.for_update_ts, l.ttl),
            (LockType::Put, 105, 20000)
        );
    }

    async fn prewrite_rejects_malformed_requests(s) {
        let base = PrewriteRequest {
            mutations: vec![put(b"k", b"v")],
            primary_lock: b"k".to_vec(),
            start_version: 100,
            lock_ttl: 3000,
            ..Default::default()
        };
        let bad = [
            PrewriteRequest {
                start_version: 0,
                ..base.clone()
            },
            PrewriteRequest {
                mutations: vec![mutation(Op::Rollback, b"k", b"")],
                ..base.clone()
            },
            PrewriteRequest {
                mutations: vec![Mutation {
                    op: 42,
                    key: b"k".to_vec(),
                    ..Default::default()
                }],
                ..base.clone()
            },
            PrewriteRequest {
                mutations: vec![put(&vec![b'k'; 10_000], b"v")],
                ..base.clone()
            },
            PrewriteRequest {
                mutations: vec![put(b"k", &vec![0; 2 << 20])],
                ..base.clone()
            },
            PrewriteRequest {
                mutations: vec![put(b"k", b"v"), put(b"l", b"v")],
                pessimistic_actions: vec![0],
                ..base.clone()
            },
            PrewriteRequest {
                context: Some(Context {
                    api_version: ApiVersion::V2 as i32,
                    ..Default::default()
                }),
                ..base.clone()
            },
        ];
        for req in bad {
            let code = refused(s.try_call(req.clone()).await);
            assert_eq!(code, Code::InvalidArgument, "{req:?}");
        }
        assert!(s.dump().is_empty());
    }

    // ---- KvCommit -------------------------------------------------------------------------------

    async fn empty_commit(s) {
        s.must_commit(&[], 100, 110).await;
        assert!(s.dump().is_empty());
    }

    async fn single_commit(s) {
        s.must_prewrite(vec![put(b"k", b"v")], b"k", 100).await;
        s.must_commit(&[b"k"], 100, 110).await;
        assert!(s.lock_of(b"k").is_none());
        let w = s.write_at(b"k", 110).unwrap();
        assert_eq!((w.write_type, w.start_ts), (WriteType::Put, 100));
        assert_eq!(w.short_value.as_deref(), Some(&b"v"[..]));
        assert_eq!((s.cf_len(CF_LOCK), s.cf_len(CF_WRITE)), (0, 1));
        assert_eq!(s.must_get(b"k", 110).await, Some(b"v".to_vec()));
        assert_eq!(s.must_get(b"k", 109).await, None);
    }

    async fn commit_long_value_keeps_default_entry(s) {
        let long = vec![3u8; 700];
        s.must_prewrite(vec![put(b"k", &long)], b"k", 100).await;
        s.must_commit(&[b"k"], 100, 110).await;
        assert_eq!(s.value_at(b"k", 100), Some(long.clone()));
        assert_eq!(s.write_at(b"k", 110).unwrap().short_value, None);
        assert_eq!(s.must_get(b"k", 120).await, Some(long));
    }

    async fn commit_overwrite_adds_a_version(s) {
        s.put_committed(b"k", b"old", 80, 90);
        s.must_prewrite(vec![put(b"k", b"new")], b"k", 100).await;
        s.must_commit(&[b"k"], 100, 110).await;
        assert_eq!(s.cf_len(CF_WRITE), 2);
        assert_eq!(s.must_get(b"k", 100).await, Some(b"old".to_vec()));
        assert_eq!(s.must_get(b"k", 110).await, Some(b"new".to_vec()));
    }

    async fn commit_multiple_keys_leaves_others_alone(s) {
        s.put_committed(b"z", b"old", 10, 20);
        s.must_prewrite(vec![put(b"a", b"1"), put(b"b", b"2"), del(b"c")], b"a", 100)
            .await;
        s.must_prewrite(vec![put(b"x", b"9")], b"x", 101).await;
        s.must_commit(&[b"a", b"b", b"c"], 100, 110).await;
        assert_eq!(s.cf_len(CF_LOCK), 1, "txn 101's lock remains");
        assert_eq!(s.lock_of(b"x").unwrap().ts, 101);
        assert_eq!(s.write_at(b"c", 110).unwrap().write_type, WriteType::Delete);
        assert_eq!(s.cf_len(CF_WRITE), 4);
    }

    async fn recommit_key_listed_twice_commits_once(s) {
        s.must_prewrite(vec![put(b"k", b"v")], b"k", 100).await;
        s.must_commit(&[b"k", b"k"], 100, 110).await;
        assert_eq!(s.cf_len(CF_WRITE), 1);
    }

    async fn commit_after_rollback_fails(s) {
        s.must_prewrite(vec![put(b"k", b"v")], b"k", 100).await;
        assert!(s.rollback(&[b"k"], 100).await.error.is_none());
        let before = s.dump();
        let resp = s.commit(&[b"k"], 100, 110).await;
        let err = resp.error.expect("commit of a rolled-back txn must fail");
        assert!(!err.retryable.is_empty(), "{err:?}");
        assert_eq!(s.dump(), before);
    }

    async fn commit_conflict_race_with_other_txn_lock(s) {
        s.must_prewrite(vec![put(b"k", b"v")], b"k", 105).await;
        let before = s.dump();
        let resp = s.commit(&[b"k"], 100, 110).await;
        assert!(!resp.error.expect("error").retryable.is_empty());
        assert_eq!(s.dump(), before);
    }

    async fn commit_is_idempotent(s) {
        s.must_prewrite(vec![put(b"k", b"v")], b"k", 100).await;
        s.must_commit(&[b"k"], 100, 110).await;
        let before = s.dump();
        s.must_commit(&[b"k"], 100, 110).await;
        assert_eq!(s.dump(), before);
    }

    async fn commit_missing_prewrite_is_lock_not_found(s) {
        // TinyKV answers success here; TiKV (and we) report that the lock is missing, because the
        // client would otherwise believe a transaction committed that never wrote anything.
        let resp = s.commit(&[b"k"], 100, 110).await;
        assert!(!resp.error.expect("error").retryable.is_empty());
        assert!(s.dump().is_empty());
    }

    async fn commit_is_all_or_nothing(s) {
        s.must_prewrite(vec![put(b"a", b"1")], b"a", 100).await;
        let before = s.dump();
        // "b" was never prewritten: the whole commit fails and "a" stays locked.
        let resp = s.commit(&[b"a", b"b"], 100, 110).await;
        assert!(resp.error.is_some());
        assert_eq!(s.dump(), before);
    }

    async fn commit_below_min_commit_ts_is_commit_ts_expired(s) {
        let resp = s
            .prewrite(PrewriteRequest {
                mutations: vec![put(b"k", b"v")],
                primary_lock: b"k".to_vec(),
                start_version: 100,
                lock_ttl: 3000,
                min_commit_ts: 120,
                ..Default::default()
            })
            .await;
        assert!(resp.errors.is_empty());
        let resp = s.commit(&[b"k"], 100, 110).await;
        let expired = resp
            .error
            .unwrap()
            .commit_ts_expired
            .expect("commit_ts_expired");
        assert_eq!(
            (
                expired.start_ts,
                expired.attempted_commit_ts,
                expired.min_commit_ts
            ),
            (100, 110, 120)
        );
        assert_eq!(expired.key, b"k");
        s.must_commit(&[b"k"], 100, 121).await;
    }

    async fn commit_rejects_bad_timestamps(s) {
        for (start, commit) in [(0, 10), (100, 100), (100, 99)] {
            let req = CommitRequest {
                keys: vec![b"k".to_vec()],
                start_version: start,
                commit_version: commit,
                ..Default::default()
            };
            assert_eq!(
                refused(s.try_call(req).await),
                Code::InvalidArgument
            );
        }
    }
}
