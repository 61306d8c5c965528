//! Point reads and writes through the service, column families, and snapshot isolation.

use kvserver::storage::Storage;
use proto::kvrpcpb::*;
use raft_core::engine::EngineIterator;

use crate::harness::*;

#[tokio::test]
async fn raw_get_returns_a_value_written_to_storage() {
    let s = TestServer::start().await;
    s.put_direct("default", b"42", b"value");
    assert_eq!(
        get(&mut s.client(), "", b"42").await,
        Some(b"value".to_vec())
    );
    assert_eq!(
        get(&mut s.client(), "default", b"42").await,
        Some(b"value".to_vec())
    );
}

#[tokio::test]
async fn raw_get_of_a_missing_key_reports_not_found() {
    let s = TestServer::start().await;
    let mut c = s.client();
    let r = c
        .raw_get(RawGetRequest {
            key: b"missing".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.not_found && r.error.is_empty() && r.region_error.is_none());

    // A stored empty value is found: `not_found` is what tells the two apart on the wire.
    put(&mut c, "", b"empty", b"").await;
    assert_eq!(get(&mut c, "", b"empty").await, Some(vec![]));
}

#[tokio::test]
async fn raw_put_is_visible_in_storage_and_overwrites() {
    let s = TestServer::start().await;
    let mut c = s.client();
    put(&mut c, "", b"k", b"v1").await;
    assert_eq!(s.get_direct("default", b"k"), Some(b"v1".to_vec()));
    put(&mut c, "default", b"k", b"v2").await;
    assert_eq!(s.get_direct("default", b"k"), Some(b"v2".to_vec()));
    assert_eq!(get(&mut c, "", b"k").await, Some(b"v2".to_vec()));
}

#[tokio::test]
async fn column_families_are_independent() {
    let s = TestServer::start().await;
    let mut c = s.client();
    put(&mut c, "default", b"k", b"in-default").await;
    put(&mut c, "write", b"k", b"in-write").await;
    put(&mut c, "lock", b"k", b"in-lock").await;
    put(&mut c, "write", b"only-write", b"w").await;
    assert_eq!(
        get(&mut c, "default", b"k").await,
        Some(b"in-default".to_vec())
    );
    assert_eq!(get(&mut c, "write", b"k").await, Some(b"in-write".to_vec()));
    assert_eq!(get(&mut c, "lock", b"k").await, Some(b"in-lock".to_vec()));
    assert_eq!(get(&mut c, "default", b"only-write").await, None);

    delete(&mut c, "write", b"k").await;
    assert_eq!(get(&mut c, "write", b"k").await, None);
    assert_eq!(
        get(&mut c, "default", b"k").await,
        Some(b"in-default".to_vec())
    );
    assert_eq!(get(&mut c, "lock", b"k").await, Some(b"in-lock".to_vec()));

    let write_cf = scan(
        &mut c,
        RawScanRequest {
            cf: "write".into(),
            limit: 10,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(write_cf, kv(&[("only-write", "w")]));
    assert_eq!(s.get_direct("lock", b"k"), Some(b"in-lock".to_vec()));
}

#[tokio::test]
async fn raw_delete_removes_the_key() {
    let s = TestServer::start().await;
    let mut c = s.client();
    put(&mut c, "", b"k", b"v").await;
    delete(&mut c, "", b"k").await;
    assert_eq!(get(&mut c, "", b"k").await, None);
    // A missing key is a plain miss at the storage level too, not an error.
    assert_eq!(s.get_direct("default", b"k"), None);
    // Deleting an absent key succeeds.
    delete(&mut c, "", b"never-written").await;
}

#[tokio::test]
async fn a_reader_taken_before_a_delete_still_sees_the_key() {
    let s = TestServer::start().await;
    let mut c = s.client();
    for k in [&b"a"[..], b"b", b"c"] {
        put(&mut c, "", k, b"v").await;
    }
    // Both a snapshot and an iterator opened from it before the writes.
    let snap = s.storage().snapshot(&Context::default()).await.unwrap();
    let mut it = snap.iter_cf("default", b"", b"").unwrap();

    delete(&mut c, "", b"b").await;
    put(&mut c, "", b"d", b"new").await;
    assert_eq!(get(&mut c, "", b"b").await, None);

    assert_eq!(
        snap.get_value_cf("default", b"b").unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(snap.get_value_cf("default", b"d").unwrap(), None);
    let mut seen = vec![];
    let mut ok = it.seek_to_first().unwrap();
    while ok {
        seen.push(it.key().to_vec());
        ok = it.next().unwrap();
    }
    assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}
