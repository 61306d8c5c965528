//! 4A: the MVCC layer — where locks, values and write records live, and what a reader sees at a
//! timestamp.

use kvserver::mvcc::key::{decode_user_key, split_ts};
use kvserver::mvcc::{Key, LockType, MvccTxn, ReadOptions, ScanOptions, Scanner, Write, WriteType};
use raft_core::engine::{CF_DEFAULT, CF_LOCK, CF_WRITE};

use crate::helpers::{scenarios, Server};

fn only_entry(s: &Server, cf: &str) -> (Vec<u8>, Vec<u8>) {
    let dump = s.dump();
    let mut entries = dump.iter().filter(|((c, _), _)| *c == cf);
    let ((_, k), v) = entries.next().expect("one entry");
    assert!(entries.next().is_none(), "more than one entry in {cf}");
    (k.clone(), v.clone())
}

/// k committed by txn 40 at 42.
fn committed_at_42(s: &Server) {
    s.put_committed(b"k", b"v42", 40, 42);
}

scenarios! {
    async fn put_and_delete_lock(s) {
        let key = Key::from_raw(b"k");
        let lock = Server::lock(LockType::Put, b"pk", 10, 3000);
        let mut txn = MvccTxn::new(10);
        txn.put_lock(&key, &lock);
        s.apply(txn);
        // The lock CF key is the encoded user key, without a timestamp.
        let (k, v) = only_entry(&s, CF_LOCK);
        assert_eq!(k, key.as_encoded());
        assert_eq!(kvserver::mvcc::Lock::parse(&v).unwrap(), lock);

        let mut txn = MvccTxn::new(10);
        txn.unlock_key(&key);
        s.apply(txn);
        assert_eq!(s.cf_len(CF_LOCK), 0);
    }

    async fn put_write_is_keyed_by_commit_ts(s) {
        let mut txn = MvccTxn::new(10);
        txn.put_write(
            &Key::from_raw(b"k"),
            12,
            &Write::new(WriteType::Put, 10, None),
        );
        s.apply(txn);
        let (k, v) = only_entry(&s, CF_WRITE);
        assert_eq!(
            split_ts(&k).unwrap(),
            (Key::from_raw(b"k").as_encoded(), 12)
        );
        assert_eq!(decode_user_key(&k).unwrap(), b"k");
        assert_eq!(Write::parse(&v).unwrap().start_ts, 10);
    }

    async fn put_and_delete_value_keyed_by_start_ts(s) {
        let key = Key::from_raw(b"k");
        let mut txn = MvccTxn::new(10);
        txn.put_value(&key, b"v".to_vec());
        s.apply(txn);
        let (k, v) = only_entry(&s, CF_DEFAULT);
        assert_eq!(k, key.append_ts(10));
        assert_eq!(v, b"v");
        let mut txn = MvccTxn::new(10);
        txn.delete_value(&key);
        s.apply(txn);
        assert_eq!(s.cf_len(CF_DEFAULT), 0);
    }

    async fn get_lock(s) {
        let mut lock = Server::lock(LockType::Delete, b"pk", 10, 3000);
        lock.for_update_ts = 11;
        s.put_lock(b"k", lock.clone());
        assert_eq!(s.lock_of(b"k"), Some(lock));
        assert_eq!(s.lock_of(b"other"), None);
    }

    async fn get_value_simple_missing_and_too_early(s) {
        committed_at_42(&s);
        let mut r = s.reader();
        let k = Key::from_raw(b"k");
        assert_eq!(r.get(&k, 43).unwrap(), Some(b"v42".to_vec()));
        assert_eq!(
            r.get(&k, 42).unwrap(),
            Some(b"v42".to_vec()),
            "commit ts <= read ts is visible"
        );
        assert_eq!(r.get(&k, 41).unwrap(), None);
        assert_eq!(r.get(&Key::from_raw(b"j"), 43).unwrap(), None);
        assert_eq!(r.get(&Key::from_raw(b"l"), 43).unwrap(), None);
    }

    async fn get_value_overwritten_and_not_overwritten(s) {
        committed_at_42(&s);
        s.put_committed(b"k", b"v52", 50, 52);
        let mut r = s.reader();
        let k = Key::from_raw(b"k");
        assert_eq!(r.get(&k, 52).unwrap(), Some(b"v52".to_vec()));
        assert_eq!(r.get(&k, 51).unwrap(), Some(b"v42".to_vec()));
        assert_eq!(r.get(&k, 50).unwrap(), Some(b"v42".to_vec()));
    }

    async fn get_value_deleted_and_not_deleted(s) {
        committed_at_42(&s);
        s.put_write(b"k", 52, Write::new(WriteType::Delete, 50, None));
        let mut r = s.reader();
        let k = Key::from_raw(b"k");
        assert_eq!(r.get(&k, 55).unwrap(), None);
        assert_eq!(r.get(&k, 51).unwrap(), Some(b"v42".to_vec()));
    }

    async fn lock_and_rollback_records_do_not_hide_values(s) {
        committed_at_42(&s);
        s.put_write(b"k", 52, Write::new(WriteType::Lock, 50, None));
        s.put_write(b"k", 60, Write::new_rollback(60));
        assert_eq!(
            s.reader().get(&Key::from_raw(b"k"), 70).unwrap(),
            Some(b"v42".to_vec())
        );
    }

    async fn long_values_live_in_the_default_cf(s) {
        let long = vec![b'x'; 1000];
        s.put_committed(b"k", &long, 40, 42);
        assert_eq!(s.value_at(b"k", 40), Some(long.clone()));
        assert_eq!(
            s.reader().get(&Key::from_raw(b"k"), 50).unwrap(),
            Some(long)
        );
    }

    async fn current_write_finds_the_record_of_a_txn(s) {
        committed_at_42(&s);
        s.put_write(b"k", 52, Write::new(WriteType::Delete, 50, None));
        s.put_write(b"k", 60, Write::new_rollback(60));
        let mut r = s.reader();
        let k = Key::from_raw(b"k");
        let (ts, w) = r.current_write(&k, 40).unwrap().unwrap();
        assert_eq!((ts, w.write_type), (42, WriteType::Put));
        let (ts, w) = r.current_write(&k, 50).unwrap().unwrap();
        assert_eq!((ts, w.write_type), (52, WriteType::Delete));
        let (ts, w) = r.current_write(&k, 60).unwrap().unwrap();
        assert_eq!((ts, w.write_type), (60, WriteType::Rollback));
        assert_eq!(r.current_write(&k, 45).unwrap(), None);
        assert_eq!(r.current_write(&Key::from_raw(b"x"), 40).unwrap(), None);
    }

    async fn most_recent_write_ignores_other_keys(s) {
        committed_at_42(&s);
        s.put_write(b"k", 52, Write::new(WriteType::Delete, 50, None));
        // "k\0" shares a prefix with "k" in raw form; its versions must never be mistaken for k's.
        s.put_committed(b"k\0", b"other", 60, 62);
        s.put_committed(b"kk", b"other", 60, 62);
        let mut r = s.reader();
        let (ts, w) = r.most_recent_write(&Key::from_raw(b"k")).unwrap().unwrap();
        assert_eq!((ts, w.write_type), (52, WriteType::Delete));
        assert_eq!(r.most_recent_write(&Key::from_raw(b"j")).unwrap(), None);
    }

    async fn write_cf_orders_by_key_then_newest_first(s) {
        for (k, ts) in [(&b"b"[..], 5), (b"a", 7), (b"a", 9), (b"ab", 1), (b"a", 8)] {
            s.put_write(k, ts, Write::new(WriteType::Put, ts - 1, Some(vec![])));
        }
        let order: Vec<(Vec<u8>, u64)> = s
            .dump()
            .keys()
            .filter(|(cf, _)| *cf == CF_WRITE)
            .map(|(_, k)| (decode_user_key(k).unwrap(), split_ts(k).unwrap().1))
            .collect();
        let expected: Vec<(Vec<u8>, u64)> =
            [(&b"a"[..], 9), (b"a", 8), (b"a", 7), (b"ab", 1), (b"b", 5)]
                .into_iter()
                .map(|(k, ts)| (k.to_vec(), ts))
                .collect();
        assert_eq!(order, expected);
    }

    async fn scanner_reads_each_key_at_the_timestamp(s) {
        s.put_committed(b"a", b"a1", 1, 2);
        s.put_committed(b"b", b"b1", 1, 2);
        s.put_committed(b"b", b"b2", 5, 6);
        s.put_write(b"c", 4, Write::new(WriteType::Delete, 3, None));
        s.put_committed(b"d", &[b'd'; 600], 1, 2);
        let scan = |ts, reverse| {
            let opts = ScanOptions {
                ts,
                reverse,
                read: ReadOptions::default(),
                ..Default::default()
            };
            let mut scanner = Scanner::new(s.reader().snapshot().clone(), opts).unwrap();
            scanner
                .scan(100)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, v.unwrap()))
                .collect::<Vec<_>>()
        };
        let at3 = scan(3, false);
        assert_eq!(at3.len(), 3);
        assert_eq!(at3[1], (b"b".to_vec(), b"b1".to_vec()));
        assert_eq!(at3[2].1.len(), 600);
        let at6 = scan(6, true);
        let keys: Vec<&[u8]> = at6.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [&b"d"[..], b"b", b"a"]);
        assert_eq!(at6[1].1, b"b2");
    }
}
