//! Engine conformance suite: behaviour every engine implementation must have. Each check is a
//! generic function over [`KvEngine`]; `rocks_*` tests run them against RocksDB.

use super::*;
use crate::config::EngineConfig;

fn open_kv(dir: &tempfile::TempDir) -> RocksEngine {
    RocksEngine::open_kv(dir.path(), &EngineConfig::new_test_config()).unwrap()
}

fn put<E: KvEngine>(e: &E, cf: &str, kvs: &[(&[u8], &[u8])]) {
    let mut wb = e.write_batch();
    for (k, v) in kvs {
        wb.put_cf(cf, k, v).unwrap();
    }
    e.write(&mut wb, false).unwrap();
    assert!(wb.is_empty(), "write must leave the batch empty");
}

fn collect<I: Iterable>(r: &I, cf: &str, start: &[u8], end: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = vec![];
    r.scan_cf(cf, start, end, true, |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(true)
    })
    .unwrap();
    out
}

fn check_point_reads_and_cfs_are_independent<E: KvEngine>(e: &E) {
    put(e, CF_DEFAULT, &[(b"k", b"d")]);
    put(e, CF_WRITE, &[(b"k", b"w")]);
    assert_eq!(e.get_value_cf(CF_DEFAULT, b"k").unwrap().unwrap(), b"d");
    assert_eq!(e.get_value_cf(CF_WRITE, b"k").unwrap().unwrap(), b"w");
    assert_eq!(e.get_value_cf(CF_LOCK, b"k").unwrap(), None);
    assert!(matches!(
        e.get_value_cf("nope", b"k"),
        Err(crate::Error::UnknownCf(_))
    ));
    let mut wb = e.write_batch();
    assert!(matches!(
        wb.put_cf("nope", b"k", b"v"),
        Err(crate::Error::UnknownCf(_))
    ));
}

fn check_batch_is_atomic_and_ordered<E: KvEngine>(e: &E) {
    let mut wb = e.write_batch();
    wb.put_cf(CF_DEFAULT, b"a", b"1").unwrap();
    wb.put_cf(CF_DEFAULT, b"a", b"2").unwrap();
    wb.put_cf(CF_DEFAULT, b"b", b"1").unwrap();
    wb.delete_cf(CF_DEFAULT, b"b").unwrap();
    assert_eq!(wb.count(), 4);
    assert!(wb.data_size() > 0);
    // Nothing is visible before the write.
    assert_eq!(e.get_value_cf(CF_DEFAULT, b"a").unwrap(), None);
    e.write(&mut wb, true).unwrap();
    assert_eq!(e.get_value_cf(CF_DEFAULT, b"a").unwrap().unwrap(), b"2");
    assert_eq!(e.get_value_cf(CF_DEFAULT, b"b").unwrap(), None);
    // An empty synced write is allowed (it only syncs).
    e.write(&mut wb, true).unwrap();
}

fn check_snapshot_is_point_in_time<E: KvEngine>(e: &E) {
    put(e, CF_DEFAULT, &[(b"s1", b"old"), (b"s2", b"x")]);
    let snap = e.snapshot();
    put(e, CF_DEFAULT, &[(b"s1", b"new"), (b"s3", b"y")]);
    let mut wb = e.write_batch();
    wb.delete_cf(CF_DEFAULT, b"s2").unwrap();
    e.write(&mut wb, false).unwrap();

    assert_eq!(
        snap.get_value_cf(CF_DEFAULT, b"s1").unwrap().unwrap(),
        b"old"
    );
    assert_eq!(snap.get_value_cf(CF_DEFAULT, b"s2").unwrap().unwrap(), b"x");
    assert_eq!(snap.get_value_cf(CF_DEFAULT, b"s3").unwrap(), None);
    let keys: Vec<_> = collect(&snap, CF_DEFAULT, b"s", b"t")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"s1".to_vec(), b"s2".to_vec()]);
    // A clone shares the same view, also from another thread.
    let clone = snap.clone();
    std::thread::spawn(move || {
        assert_eq!(
            clone.get_value_cf(CF_DEFAULT, b"s1").unwrap().unwrap(),
            b"old"
        );
    })
    .join()
    .unwrap();
    assert_eq!(e.get_value_cf(CF_DEFAULT, b"s1").unwrap().unwrap(), b"new");
}

fn check_iterator_bounds_and_directions<E: KvEngine>(e: &E) {
    put(
        e,
        CF_LOCK,
        &[
            (b"i1", b"1"),
            (b"i2", b"2"),
            (b"i3", b"3"),
            (b"i4", b"4"),
            (b"j", b"5"),
        ],
    );
    let mut it = e
        .iterator_cf(CF_LOCK, IterOptions::new(b"i2".to_vec(), b"i4".to_vec()))
        .unwrap();
    assert!(it.seek_to_first().unwrap());
    assert_eq!(it.key(), b"i2");
    assert!(it.next().unwrap());
    assert_eq!((it.key(), it.value()), (&b"i3"[..], &b"3"[..]));
    assert!(!it.next().unwrap(), "upper bound is exclusive");
    assert!(it.seek_to_last().unwrap());
    assert_eq!(it.key(), b"i3");
    assert!(it.prev().unwrap());
    assert_eq!(it.key(), b"i2");
    assert!(!it.prev().unwrap(), "lower bound is inclusive");
    assert!(it.seek(b"i25").unwrap());
    assert_eq!(it.key(), b"i3");
    assert!(it.seek_for_prev(b"i25").unwrap());
    assert_eq!(it.key(), b"i2");
    assert!(!it.seek(b"i4").unwrap());
    assert!(!it.valid().unwrap());

    let all = collect(e, CF_LOCK, b"", b"\xff");
    assert_eq!(all.len(), 5);
    let mut n = 0;
    e.scan_cf(CF_LOCK, b"", b"\xff", false, |_, _| {
        n += 1;
        Ok(n < 2)
    })
    .unwrap();
    assert_eq!(n, 2, "scan stops when the callback returns false");
}

fn check_delete_range<E: KvEngine>(e: &E) {
    put(e, CF_WRITE, &[(b"r1", b"1"), (b"r2", b"2"), (b"r3", b"3")]);
    let before = e.snapshot();
    let mut wb = e.write_batch();
    wb.delete_range_cf(CF_WRITE, b"r1", b"r3").unwrap();
    e.write(&mut wb, false).unwrap();
    let left: Vec<_> = collect(e, CF_WRITE, b"r", b"s")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, vec![b"r3".to_vec()]);
    assert_eq!(collect(&before, CF_WRITE, b"r", b"s").len(), 3);
}

fn check_messages_round_trip<E: KvEngine>(e: &E) {
    let state = proto::raft_serverpb::RaftApplyState {
        applied_index: 42,
        truncated_state: Some(proto::raft_serverpb::RaftTruncatedState { index: 5, term: 5 }),
        ..Default::default()
    };
    let key = crate::keys::apply_state_key(7);
    let mut wb = e.write_batch();
    wb.put_msg_cf(CF_DEFAULT, &key, &state).unwrap();
    e.write(&mut wb, false).unwrap();
    let back: proto::raft_serverpb::RaftApplyState =
        e.get_msg_cf(CF_DEFAULT, &key).unwrap().unwrap();
    assert_eq!(back, state);
    let missing: Option<proto::raft_serverpb::RaftApplyState> = e
        .get_msg_cf(CF_DEFAULT, &crate::keys::apply_state_key(8))
        .unwrap();
    assert!(missing.is_none());
}

fn check_approximate_size_grows<E: KvEngine>(e: &E) {
    let empty = e.approximate_size_cf(CF_DEFAULT, b"a", b"b").unwrap();
    let value = vec![7u8; 1024];
    let mut wb = e.write_batch();
    for i in 0..1000u32 {
        wb.put_cf(CF_DEFAULT, format!("a{i:06}").as_bytes(), &value)
            .unwrap();
    }
    e.write(&mut wb, false).unwrap();
    let full = e.approximate_size_cf(CF_DEFAULT, b"a", b"b").unwrap();
    assert!(full > empty + 500 * 1024, "empty={empty} full={full}");
}

#[test]
fn rocks_conformance() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_kv(&dir);
    check_point_reads_and_cfs_are_independent(&e);
    check_batch_is_atomic_and_ordered(&e);
    check_snapshot_is_point_in_time(&e);
    check_iterator_bounds_and_directions(&e);
    check_delete_range(&e);
    check_messages_round_trip(&e);
    check_approximate_size_grows(&e);
}

#[test]
fn rocks_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let e = open_kv(&dir);
        put(&e, CF_DEFAULT, &[(b"persist", b"yes")]);
        let mut wb = e.write_batch();
        e.write(&mut wb, true).unwrap();
    }
    let e = open_kv(&dir);
    assert_eq!(
        e.get_value_cf(CF_DEFAULT, b"persist").unwrap().unwrap(),
        b"yes"
    );
}

#[test]
fn engines_open_both() {
    let dir = tempfile::tempdir().unwrap();
    let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
    assert!(engines.kv.path().ends_with("kv"));
    assert!(engines.raft.path().ends_with("raft"));
    // The raft engine only has the default CF.
    assert!(engines.raft.get_value_cf(CF_LOCK, b"k").is_err());
    engines.raft.put_cf(CF_DEFAULT, b"k", b"v").unwrap();
    assert!(engines.kv.get_value_cf(CF_DEFAULT, b"k").unwrap().is_none());
}
