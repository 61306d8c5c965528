//! 4C: rollback, check-txn-status, resolve-lock and scan, plus the pessimistic and GC RPCs
//! (heartbeat, scan-lock, check-secondary-locks, batch resolve).

use kvserver::mvcc::{LockType, Write, WriteType};
use proto::kvrpcpb::*;
use raft_core::engine::{CF_DEFAULT, CF_LOCK, CF_WRITE};
use tonic::Code;

use crate::helpers::*;

/// TSO-shaped timestamps: the lock at physical 5 << 22 ms, "now" at 6 << 22 ms.
fn lock_ts() -> u64 {
    compose_ts(5 << 22, 0)
}

fn now_ts() -> u64 {
    compose_ts(6 << 22, 0)
}

fn status_req(key: &[u8], lock_ts: u64, current_ts: u64) -> CheckTxnStatusRequest {
    CheckTxnStatusRequest {
        primary_key: key.to_vec(),
        lock_ts,
        caller_start_ts: 0,
        current_ts,
        rollback_if_not_exist: true,
        verify_is_primary: true,
        ..Default::default()
    }
}

fn resolve_req(start: u64, commit: u64) -> ResolveLockRequest {
    ResolveLockRequest {
        start_version: start,
        commit_version: commit,
        ..Default::default()
    }
}

/// Txn 100 locks a, b (long value) and c; txn 110 locks d.
async fn two_txns_locked(s: &Server) {
    s.must_prewrite(
        vec![put(b"a", b"1"), put(b"b", &[2u8; 400]), del(b"c")],
        b"a",
        100,
    )
    .await;
    s.must_prewrite(vec![put(b"d", b"4")], b"d", 110).await;
}

/// Keys k01..k14, all committed at ts <= 100 except k13/k14 (committed at 120), with a few
/// overwrites and deletes, k07 deleted at 90 and k08 locked by txn 150.
fn scan_data(s: &Server) {
    for i in 1..=12u8 {
        let key = format!("k{i:02}").into_bytes();
        s.put_committed(&key, format!("v{i}").as_bytes(), 10, 20);
    }
    s.put_committed(b"k03", b"v3-new", 50, 60);
    s.put_committed(b"k13", b"late", 110, 120);
    s.put_committed(b"k14", b"late", 110, 120);
    s.put_write(b"k07", 90, Write::new(WriteType::Delete, 85, None));
    s.put_write(b"k05", 95, Write::new_rollback(95));
    s.put_lock(b"k08", Server::lock(LockType::Put, b"k08", 150, 3000));
}

fn scan_req(start: &[u8], limit: u32, version: u64) -> ScanRequest {
    ScanRequest {
        start_key: start.to_vec(),
        limit,
        version,
        ..Default::default()
    }
}

fn keys_of(resp: &ScanResponse) -> Vec<String> {
    resp.pairs
        .iter()
        .map(|p| String::from_utf8(p.key.clone()).unwrap())
        .collect()
}

fn lock_req(keys: &[&[u8]], start: u64, for_update: u64) -> PessimisticLockRequest {
    PessimisticLockRequest {
        mutations: keys
            .iter()
            .map(|k| mutation(Op::PessimisticLock, k, b""))
            .collect(),
        primary_lock: keys[0].to_vec(),
        start_version: start,
        for_update_ts: for_update,
        lock_ttl: 20000,
        ..Default::default()
    }
}

scenarios! {
    // ---- KvBatchRollback ------------------------------------------------------------------------

    async fn empty_rollback(s) {
        assert!(s.rollback(&[], 100).await.error.is_none());
        assert!(s.dump().is_empty());
    }

    async fn rollback_removes_lock_and_value_and_leaves_a_marker(s) {
        let long = vec![1u8; 500];
        s.must_prewrite(vec![put(b"k", &long), put(b"s", b"short")], b"k", 100)
            .await;
        assert!(s.rollback(&[b"k", b"s"], 100).await.error.is_none());
        assert_eq!((s.cf_len(CF_LOCK), s.cf_len(CF_DEFAULT)), (0, 0));
        for key in [&b"k"[..], b"s"] {
            let w = s.write_at(key, 100).unwrap();
            assert_eq!((w.write_type, w.start_ts), (WriteType::Rollback, 100));
        }
        assert_eq!(s.must_get(b"k", 200).await, None);
    }

    async fn rollback_duplicate_keys(s) {
        s.must_prewrite(vec![put(b"a", b"1"), put(b"b", b"2")], b"a", 100)
            .await;
        assert!(s.rollback(&[b"a", b"b", b"a"], 100).await.error.is_none());
        assert_eq!((s.cf_len(CF_WRITE), s.cf_len(CF_LOCK)), (2, 0));
    }

    async fn rollback_missing_prewrite_still_writes_a_marker(s) {
        assert!(s.rollback(&[b"k"], 100).await.error.is_none());
        assert_eq!(
            s.write_at(b"k", 100).unwrap().write_type,
            WriteType::Rollback
        );
        assert_eq!(s.cf_len(CF_WRITE), 1);
    }

    async fn rollback_committed_is_abort(s) {
        s.must_put(&[(b"k", b"v")], 100, 110).await;
        let before = s.dump();
        let resp = s.rollback(&[b"k"], 100).await;
        assert!(!resp.error.expect("error").abort.is_empty());
        assert_eq!(s.dump(), before);
    }

    async fn rollback_twice_changes_nothing(s) {
        assert!(s.rollback(&[b"k"], 100).await.error.is_none());
        let before = s.dump();
        assert!(s.rollback(&[b"k"], 100).await.error.is_none());
        assert_eq!(s.dump(), before);
    }

    async fn rollback_with_other_txn_lock_keeps_it(s) {
        let long = vec![2u8; 500];
        s.must_prewrite(vec![put(b"k", &long)], b"k", 105).await;
        assert!(s.rollback(&[b"k"], 100).await.error.is_none());
        assert_eq!(s.lock_of(b"k").unwrap().ts, 105);
        assert_eq!(s.value_at(b"k", 105), Some(long));
        assert_eq!(
            s.write_at(b"k", 100).unwrap().write_type,
            WriteType::Rollback
        );
    }

    // ---- KvCheckTxnStatus -----------------------------------------------------------------------

    async fn check_txn_status_ttl_expired_rolls_back(s) {
        let long = vec![5u8; 500];
        s.must_prewrite(vec![put(b"k", &long)], b"k", lock_ts())
            .await;
        let mut lock = s.lock_of(b"k").unwrap();
        lock.ttl = 8;
        s.put_lock(b"k", lock);
        let resp = s
            .check_txn_status(status_req(b"k", lock_ts(), now_ts()))
            .await;
        assert_eq!(resp.action, Action::TtlExpireRollback as i32);
        assert!(s.lock_of(b"k").is_none());
        assert_eq!(s.value_at(b"k", lock_ts()), None);
        assert_eq!(
            s.write_at(b"k", lock_ts()).unwrap().write_type,
            WriteType::Rollback
        );
    }

    async fn check_txn_status_ttl_not_expired_reports_the_lock(s) {
        s.must_prewrite(vec![put(b"k", b"v")], b"k", lock_ts())
            .await;
        let before = s.dump();
        // The TTL (3000 ms) is compared with the physical parts only: 2999 ms later it is alive.
        let current = compose_ts((5 << 22) + 2999, (1 << 18) - 1);
        let resp = s
            .check_txn_status(status_req(b"k", lock_ts(), current))
            .await;
        assert_eq!(resp.action, Action::NoAction as i32);
        assert_eq!((resp.lock_ttl, resp.commit_version), (3000, 0));
        let info = resp.lock_info.expect("lock info");
        assert_eq!(
            (info.lock_version, info.key.as_slice()),
            (lock_ts(), &b"k"[..])
        );
        assert_eq!(s.dump(), before);
    }

    async fn check_txn_status_rolled_back(s) {
        assert!(s.rollback(&[b"k"], lock_ts()).await.error.is_none());
        s.put_lock(b"k", Server::lock(LockType::Put, b"k", lock_ts() + 1, 3000));
        let before = s.dump();
        let resp = s
            .check_txn_status(status_req(b"k", lock_ts(), now_ts()))
            .await;
        assert_eq!(resp.action, Action::NoAction as i32);
        assert_eq!((resp.commit_version, resp.lock_ttl), (0, 0));
        assert_eq!(s.dump(), before);
    }

    async fn check_txn_status_committed(s) {
        s.must_put(&[(b"k", b"v")], lock_ts(), lock_ts() + 10).await;
        let before = s.dump();
        let resp = s
            .check_txn_status(status_req(b"k", lock_ts(), now_ts()))
            .await;
        assert_eq!(resp.action, Action::NoAction as i32);
        assert_eq!(resp.commit_version, lock_ts() + 10);
        assert_eq!(s.dump(), before);
    }

    async fn check_txn_status_no_lock_no_write(s) {
        // Without rollback_if_not_exist the client learns the txn is not found (and waits for the
        // lock it saw to expire)...
        let resp = s
            .check_txn_status(CheckTxnStatusRequest {
                rollback_if_not_exist: false,
                ..status_req(b"k", lock_ts(), now_ts())
            })
            .await;
        let not_found = resp
            .error
            .expect("error")
            .txn_not_found
            .expect("txn_not_found");
        assert_eq!(
            (not_found.start_ts, not_found.primary_key.as_slice()),
            (lock_ts(), &b"k"[..])
        );
        assert!(s.dump().is_empty());
        // ...with it, the txn is rolled back so it can never commit.
        let resp = s
            .check_txn_status(status_req(b"k", lock_ts(), now_ts()))
            .await;
        assert_eq!(resp.action, Action::LockNotExistRollback as i32);
        assert_eq!(
            s.write_at(b"k", lock_ts()).unwrap().write_type,
            WriteType::Rollback
        );
    }

    async fn check_txn_status_verifies_the_primary(s) {
        s.must_prewrite(vec![put(b"p", b"1"), put(b"s", b"2")], b"p", lock_ts())
            .await;
        let resp = s
            .check_txn_status(status_req(b"s", lock_ts(), now_ts()))
            .await;
        let mismatch = resp
            .error
            .expect("error")
            .primary_mismatch
            .expect("primary_mismatch");
        assert_eq!(mismatch.lock_info.unwrap().primary_lock, b"p");
    }

    async fn check_txn_status_pushes_min_commit_ts_for_readers(s) {
        let resp = s
            .prewrite(PrewriteRequest {
                mutations: vec![put(b"k", b"v")],
                primary_lock: b"k".to_vec(),
                start_version: lock_ts(),
                lock_ttl: 3000,
                min_commit_ts: lock_ts() + 1,
                ..Default::default()
            })
            .await;
        assert!(resp.errors.is_empty());
        let caller = lock_ts() + 100;
        let resp = s
            .check_txn_status(CheckTxnStatusRequest {
                caller_start_ts: caller,
                ..status_req(b"k", lock_ts(), lock_ts() + 50)
            })
            .await;
        assert_eq!(resp.action, Action::MinCommitTsPushed as i32);
        assert_eq!(resp.lock_info.unwrap().min_commit_ts, caller + 1);
        // The reader at `caller` now reads past the lock; committing below the pushed bound fails.
        assert_eq!(s.must_get(b"k", caller).await, None);
        let resp = s.commit(&[b"k"], lock_ts(), caller).await;
        assert!(resp.error.unwrap().commit_ts_expired.is_some());
    }

    // ---- KvResolveLock --------------------------------------------------------------------------

    async fn empty_resolve(s) {
        assert!(s.resolve(resolve_req(100, 0)).await.error.is_none());
        assert!(s.dump().is_empty());
    }

    async fn resolve_commit(s) {
        two_txns_locked(&s).await;
        assert!(s.resolve(resolve_req(100, 120)).await.error.is_none());
        assert_eq!(s.cf_len(CF_LOCK), 1);
        assert_eq!(s.lock_of(b"d").unwrap().ts, 110);
        for key in [&b"a"[..], b"b", b"c"] {
            assert_eq!(s.write_at(key, 120).unwrap().start_ts, 100);
        }
        assert_eq!(s.must_get(b"b", 130).await, Some(vec![2u8; 400]));
    }

    async fn resolve_rollback(s) {
        two_txns_locked(&s).await;
        assert!(s.resolve(resolve_req(100, 0)).await.error.is_none());
        assert_eq!(s.cf_len(CF_LOCK), 1);
        assert_eq!(s.cf_len(CF_DEFAULT), 0);
        for key in [&b"a"[..], b"b", b"c"] {
            assert_eq!(
                s.write_at(key, 100).unwrap().write_type,
                WriteType::Rollback
            );
        }
    }

    async fn resolve_when_nothing_is_locked_changes_nothing(s) {
        // Txn 100 is committed and then resolved as committed; txn 110 as rolled back.
        for (key, start, commit) in [(&b"a"[..], 100, 120), (b"b", 110, 0)] {
            s.must_put(&[(key, b"1")], start, start + 5).await;
            let before = s.dump();
            assert!(s.resolve(resolve_req(start, commit)).await.error.is_none());
            assert_eq!(s.dump(), before);
        }
    }

    async fn batch_resolve_with_txn_infos(s) {
        two_txns_locked(&s).await;
        s.must_prewrite(vec![put(b"e", b"5")], b"e", 130).await;
        let resp = s
            .resolve(ResolveLockRequest {
                txn_infos: vec![
                    TxnInfo {
                        txn: 100,
                        status: 120,
                        ..Default::default()
                    },
                    TxnInfo {
                        txn: 110,
                        status: 0,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            })
            .await;
        assert!(resp.error.is_none());
        assert_eq!(s.cf_len(CF_LOCK), 1, "txn 130 was not listed");
        assert_eq!(s.write_at(b"a", 120).unwrap().write_type, WriteType::Put);
        assert_eq!(
            s.write_at(b"d", 110).unwrap().write_type,
            WriteType::Rollback
        );
    }

    async fn resolve_only_listed_keys(s) {
        two_txns_locked(&s).await;
        let resp = s
            .resolve(ResolveLockRequest {
                keys: vec![b"a".to_vec()],
                ..resolve_req(100, 120)
            })
            .await;
        assert!(resp.error.is_none());
        assert!(s.lock_of(b"a").is_none());
        assert!(s.lock_of(b"b").is_some());
    }

    async fn resolve_rejects_bad_requests(s) {
        let bad = [
            resolve_req(0, 0),
            resolve_req(100, 100),
            ResolveLockRequest {
                txn_infos: vec![TxnInfo {
                    txn: 5,
                    status: 3,
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResolveLockRequest {
                txn_infos: vec![TxnInfo {
                    txn: 5,
                    status: 0,
                    ..Default::default()
                }],
                keys: vec![b"k".to_vec()],
                ..Default::default()
            },
        ];
        for req in bad {
            let code = refused(s.try_call(req.clone()).await);
            assert_eq!(code, Code::InvalidArgument, "{req:?}");
        }
    }

    // ---- KvScan ---------------------------------------------------------------------------------

    async fn scan_empty_and_limit_zero(s) {
        scan_data(&s);
        assert!(s.scan(scan_req(b"k99", 10, 100)).await.pairs.is_empty());
        assert!(s.scan(scan_req(b"", 0, 100)).await.pairs.is_empty());
    }

    async fn scan_all_at_a_snapshot(s) {
        scan_data(&s);
        let resp = s.scan(scan_req(b"", 100, 100)).await;
        // 12 keys committed by 100, minus the deleted k07.
        let expected: Vec<String> = (1..=12)
            .filter(|i| *i != 7)
            .map(|i| format!("k{i:02}"))
            .collect();
        assert_eq!(keys_of(&resp), expected);
        assert!(resp.pairs.iter().all(|p| p.error.is_none()));
        assert_eq!(resp.pairs[2].value, b"v3-new");
        // At 55 the old k03 is visible and k07 is not yet deleted.
        let resp = s.scan(scan_req(b"k03", 5, 55)).await;
        assert_eq!(keys_of(&resp), ["k03", "k04", "k05", "k06", "k07"]);
        assert_eq!(resp.pairs[0].value, b"v3");
    }

    async fn scan_limit_and_end_key(s) {
        scan_data(&s);
        let resp = s.scan(scan_req(b"k04", 6, 100)).await;
        assert_eq!(keys_of(&resp), ["k04", "k05", "k06", "k08", "k09", "k10"]);
        let resp = s
            .scan(ScanRequest {
                end_key: b"k06".to_vec(),
                ..scan_req(b"k02", 100, 100)
            })
            .await;
        assert_eq!(keys_of(&resp), ["k02", "k03", "k04", "k05"]);
    }

    async fn scan_reports_locks_in_place(s) {
        scan_data(&s);
        let resp = s.scan(scan_req(b"k07", 3, 200)).await;
        assert_eq!(keys_of(&resp), ["k08", "k09", "k10"]);
        assert_eq!(locked(&resp.pairs[0].error).lock_version, 150);
        assert_eq!(resp.pairs[0].value, b"");
    }

    async fn scan_reverse_and_key_only(s) {
        scan_data(&s);
        // Reverse: start_key is the exclusive upper bound, end_key the inclusive lower one.
        let resp = s
            .scan(ScanRequest {
                reverse: true,
                end_key: b"k03".to_vec(),
                ..scan_req(b"k07", 10, 100)
            })
            .await;
        assert_eq!(keys_of(&resp), ["k06", "k05", "k04", "k03"]);
        let resp = s
            .scan(ScanRequest {
                reverse: true,
                key_only: true,
                ..scan_req(b"", 3, 130)
            })
            .await;
        assert_eq!(keys_of(&resp), ["k14", "k13", "k12"]);
        assert!(resp.pairs.iter().all(|p| p.value.is_empty()));
    }

    async fn scan_deleted_then_rewritten(s) {
        s.put_committed(b"a", b"1", 90, 95);
        s.put_committed(b"k", b"old", 90, 95);
        s.put_write(b"k", 101, Write::new(WriteType::Delete, 99, None));
        s.put_committed(b"k", b"new", 110, 116);
        assert_eq!(keys_of(&s.scan(scan_req(b"", 10, 100)).await), ["a", "k"]);
        assert_eq!(keys_of(&s.scan(scan_req(b"", 10, 105)).await), ["a"]);
        let resp = s.scan(scan_req(b"", 10, 120)).await;
        assert_eq!(resp.pairs[1].value, b"new");
    }

    async fn scan_rejects_a_limit_over_the_cap(s) {
        let code = refused(s.try_call(scan_req(b"", 1 << 20, 100)).await);
        assert_eq!(code, Code::InvalidArgument);
    }

    // ---- KvTxnHeartBeat -------------------------------------------------------------------------

    async fn heart_beat_extends_but_never_shortens_the_ttl(s) {
        let start = compose_ts(1_000, 0);
        let at = |ms: u64| compose_ts(1_000 + ms, 0);
        s.must_prewrite(vec![put(b"p", b"1")], b"p", start).await;
        assert_eq!(s.heart_beat(b"p", start, 10_000).await.lock_ttl, 10_000);
        assert_eq!(s.lock_of(b"p").unwrap().ttl, 10_000);
        assert_eq!(s.heart_beat(b"p", start, 5_000).await.lock_ttl, 10_000);
        assert_eq!(s.lock_of(b"p").unwrap().ttl, 10_000);
        // 9 s after the start the original 3 s TTL would have expired; the extended one has not.
        let resp = s.check_txn_status(status_req(b"p", start, at(9_000))).await;
        assert_eq!(
            (resp.lock_ttl, resp.action),
            (10_000, Action::NoAction as i32)
        );
        // Once the txn is gone, heartbeats fail.
        s.must_commit(&[b"p"], start, at(9_001)).await;
        let resp = s.heart_beat(b"p", start, 20_000).await;
        assert!(resp.error.expect("error").txn_not_found.is_some());
    }

    // ---- KvScanLock -----------------------------------------------------------------------------

    async fn scan_lock_filters_by_version_range_and_limit(s) {
        s.must_prewrite(vec![put(b"a", b"1"), put(b"c", b"3")], b"a", 100)
            .await;
        s.must_prewrite(vec![put(b"b", b"2")], b"b", 200).await;
        s.must_prewrite(vec![put(b"d", b"4")], b"d", 300).await;
        let scan = |max_version, start: &[u8], end: &[u8], limit| ScanLockRequest {
            max_version,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            limit,
            ..Default::default()
        };
        let keys = |resp: ScanLockResponse| -> Vec<Vec<u8>> {
            assert!(resp.error.is_none());
            resp.locks.into_iter().map(|l| l.key).collect()
        };
        assert_eq!(
            keys(s.scan_lock(scan(200, b"", b"", 0)).await),
            [b"a", b"b", b"c"]
        );
        assert_eq!(
            keys(s.scan_lock(scan(1000, b"b", b"d", 0)).await),
            [b"b", b"c"]
        );
        assert_eq!(
            keys(s.scan_lock(scan(1000, b"", b"", 2)).await),
            [b"a", b"b"]
        );
        let resp = s.scan_lock(scan(100, b"", b"", 0)).await;
        let info = &resp.locks[0];
        assert_eq!(
            (
                info.lock_version,
                info.primary_lock.as_slice(),
                info.lock_ttl
            ),
            (100, &b"a"[..], 3000)
        );
    }

    // ---- KvCheckSecondaryLocks ------------------------------------------------------------------

    async fn check_secondary_locks_reports_locked_committed_or_rolled_back(s) {
        s.must_prewrite(
            vec![put(b"p", b"1"), put(b"s1", b"2"), put(b"s2", b"3")],
            b"p",
            100,
        )
        .await;
        let resp = s.check_secondary_locks(&[b"s1", b"s2"], 100).await;
        assert_eq!((resp.locks.len(), resp.commit_ts), (2, 0));

        s.must_commit(&[b"s1"], 100, 110).await;
        let resp = s.check_secondary_locks(&[b"s2", b"s1"], 100).await;
        assert_eq!((resp.locks.len(), resp.commit_ts), (0, 110));

        // A key the txn never locked is rolled back, so it can never commit there.
        let resp = s.check_secondary_locks(&[b"x"], 200).await;
        assert!(resp.error.is_none() && resp.locks.is_empty() && resp.commit_ts == 0);
        assert_eq!(
            s.write_at(b"x", 200).unwrap().write_type,
            WriteType::Rollback
        );
        let late = s.prewrite_muts(vec![put(b"x", b"v")], b"p", 200).await;
        assert!(late.errors[0].conflict.is_some());
    }

    // ---- KvPessimisticLock / KVPessimisticRollback ----------------------------------------------

    async fn pessimistic_lock_returns_values_in_request_order(s) {
        s.put_committed(b"a", b"1", 10, 20);
        s.put_committed(b"c", &[3u8; 300], 10, 20);
        let resp = s
            .pessimistic_lock(PessimisticLockRequest {
                return_values: true,
                ..lock_req(&[b"c", b"b", b"a"], 100, 100)
            })
            .await;
        assert!(resp.errors.is_empty() && resp.region_error.is_none());
        assert_eq!(resp.values, [vec![3u8; 300], vec![], b"1".to_vec()]);
        assert_eq!(resp.not_founds, [false, true, false]);
        for key in [&b"a"[..], b"b", b"c"] {
            let l = s.lock_of(key).unwrap();
            assert_eq!(
                (l.lock_type, l.for_update_ts, l.primary.as_slice()),
                (LockType::Pessimistic, 100, &b"c"[..])
            );
        }
        // Pessimistic locks do not block readers.
        assert_eq!(s.must_get(b"a", 200).await, Some(b"1".to_vec()));
    }

    async fn pessimistic_lock_on_a_locked_key_fails_at_once(s) {
        s.must_prewrite(vec![put(b"a", b"1")], b"a", 90).await;
        let before = s.dump();
        let resp = s
            .pessimistic_lock(PessimisticLockRequest {
                wait_timeout: 1000,
                ..lock_req(&[b"b", b"a"], 100, 100)
            })
            .await;
        assert_eq!(resp.errors.len(), 1);
        assert_eq!(locked(&Some(resp.errors[0].clone())).lock_version, 90);
        assert!(resp.values.is_empty());
        // Nothing locked, not even "b".
        assert_eq!(s.dump(), before);
    }

    async fn pessimistic_lock_conflicts_with_newer_commits(s) {
        s.must_put(&[(b"a", b"1")], 105, 110).await;
        let resp = s.pessimistic_lock(lock_req(&[b"a"], 100, 108)).await;
        let conflict = resp.errors[0].conflict.as_ref().expect("conflict");
        assert_eq!(conflict.conflict_commit_ts, 110);
        assert_eq!(
            conflict.reason,
            write_conflict::Reason::PessimisticRetry as i32
        );
        // Retrying with a newer for_update_ts works.
        assert!(s
            .pessimistic_lock(lock_req(&[b"a"], 100, 111))
            .await
            .errors
            .is_empty());
    }

    async fn pessimistic_lock_asserting_not_exist(s) {
        s.put_committed(b"a", b"1", 10, 20);
        let mut req = lock_req(&[b"a"], 100, 100);
        req.mutations[0].assertion = Assertion::NotExist as i32;
        let resp = s.pessimistic_lock(req).await;
        assert!(resp.errors[0].already_exist.is_some());
    }

    async fn pessimistic_rollback_releases_only_pessimistic_locks(s) {
        assert!(s
            .pessimistic_lock(lock_req(&[b"a", b"b"], 100, 100))
            .await
            .errors
            .is_empty());
        s.must_prewrite(vec![put(b"c", b"3")], b"c", 100).await;
        let resp = s.pessimistic_rollback(&[b"a", b"b", b"c"], 100, 100).await;
        assert!(resp.errors.is_empty());
        assert!(s.lock_of(b"a").is_none() && s.lock_of(b"b").is_none());
        assert_eq!(s.lock_of(b"c").unwrap().lock_type, LockType::Put);
        // No rollback records: the txn may lock these keys again.
        assert_eq!(s.cf_len(CF_WRITE), 0);
        assert!(s
            .pessimistic_lock(lock_req(&[b"a"], 100, 101))
            .await
            .errors
            .is_empty());
    }

    async fn pessimistic_lock_rejects_bad_requests(s) {
        let mut wrong_op = lock_req(&[b"a"], 100, 100);
        wrong_op.mutations[0].op = Op::Put as i32;
        let bad = [
            lock_req(&[b"a"], 0, 100),
            lock_req(&[b"a"], 100, 0),
            wrong_op,
            PessimisticLockRequest {
                lock_only_if_exists: true,
                ..lock_req(&[b"a"], 100, 100)
            },
        ];
        for req in bad {
            let code = refused(s.try_call(req.clone()).await);
            assert_eq!(code, Code::InvalidArgument, "{req:?}");
        }
        assert!(s.dump().is_empty());
    }

    // ---- A whole optimistic transaction lifecycle with a crashed client -------------------------

    async fn reader_resolves_an_abandoned_transaction(s) {
        let start = compose_ts(1_000, 0);
        // The client prewrote, committed the primary, then died before the secondaries.
        s.must_prewrite(vec![put(b"p", b"1"), put(b"s", b"2")], b"p", start)
            .await;
        s.must_commit(&[b"p"], start, start + 1).await;
        let read_ts = compose_ts(1_001, 0);
        let lock = locked(&s.get(b"s", read_ts).await.error).clone();
        // What a client does on meeting the lock: ask the primary, then resolve.
        let status = s
            .check_txn_status(status_req(&lock.primary_lock, lock.lock_version, read_ts))
            .await;
        assert_eq!(status.commit_version, start + 1);
        let resp = s
            .resolve(resolve_req(lock.lock_version, status.commit_version))
            .await;
        assert!(resp.error.is_none());
        assert_eq!(s.must_get(b"s", read_ts).await, Some(b"2".to_vec()));
        assert_eq!(s.cf_len(CF_LOCK), 0);
    }
}
