//! `RawCompareAndSwap`, and puts/deletes flagged `for_cas`.

use proto::kvrpcpb::*;

use crate::harness::*;

/// Sends one CAS on the default CF; `expected = None` means "the key must not exist".
async fn cas(c: &mut Client, key: &[u8], expected: Option<&[u8]>, value: &[u8]) -> RawCasResponse {
    let r = c
        .raw_compare_and_swap(RawCasRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            previous_not_exist: expected.is_none(),
            previous_value: expected.unwrap_or_default().to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty() && r.region_error.is_none(), "{r:?}");
    r
}

#[tokio::test]
async fn cas_success_and_failure_paths() {
    let s = TestServer::start().await;
    let mut c = s.client();

    // Absent, expected absent: swaps.
    let r = cas(&mut c, b"k", None, b"v1").await;
    assert!(r.succeed && r.previous_not_exist && r.previous_value.is_empty());
    assert_eq!(get(&mut c, "", b"k").await, Some(b"v1".to_vec()));

    // Present, expected absent: fails and reports the current value.
    let r = cas(&mut c, b"k", None, b"other").await;
    assert!(!r.succeed && !r.previous_not_exist);
    assert_eq!(r.previous_value, b"v1");

    // Present, wrong expected value: fails, nothing written.
    let r = cas(&mut c, b"k", Some(b"wrong"), b"other").await;
    assert!(!r.succeed && !r.previous_not_exist);
    assert_eq!(r.previous_value, b"v1");
    assert_eq!(get(&mut c, "", b"k").await, Some(b"v1".to_vec()));

    // Present, right expected value: swaps and reports the old value.
    let r = cas(&mut c, b"k", Some(b"v1"), b"v2").await;
    assert!(r.succeed && !r.previous_not_exist);
    assert_eq!(r.previous_value, b"v1");
    assert_eq!(get(&mut c, "", b"k").await, Some(b"v2".to_vec()));

    // Absent, expecting a value (even an empty one): fails.
    let r = cas(&mut c, b"absent", Some(b""), b"x").await;
    assert!(!r.succeed && r.previous_not_exist);
    assert_eq!(get(&mut c, "", b"absent").await, None);
}

#[tokio::test]
async fn cas_honours_the_column_family() {
    let s = TestServer::start().await;
    let mut c = s.client();
    put(&mut c, "write", b"k", b"w").await;
    let r = c
        .raw_compare_and_swap(RawCasRequest {
            key: b"k".to_vec(),
            value: b"new".to_vec(),
            previous_not_exist: true,
            cf: "default".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.succeed, "{r:?}");
    assert_eq!(get(&mut c, "write", b"k").await, Some(b"w".to_vec()));
    assert_eq!(get(&mut c, "default", b"k").await, Some(b"new".to_vec()));
}

#[tokio::test]
async fn for_cas_puts_and_deletes_apply() {
    let s = TestServer::start().await;
    let mut c = s.client();
    let r = c
        .raw_put(RawPutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            for_cas: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty());
    assert!(cas(&mut c, b"k", Some(b"v"), b"v2").await.succeed);
    let r = c
        .raw_batch_delete(RawBatchDeleteRequest {
            keys: vec![b"k".to_vec()],
            for_cas: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty());
    assert!(cas(&mut c, b"k", None, b"v3").await.succeed);
}

/// Concurrent read-modify-write loops through CAS never lose an increment: every successful swap
/// is reflected in the final value. Without the per-key latch two swaps could read the same old
/// value and both succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cas_increments_are_atomic() {
    const WORKERS: usize = 6;
    const INCREMENTS: usize = 10;
    let s = TestServer::start().await;
    let mut c = s.client();
    cas(&mut c, b"counter", None, b"0").await;

    let mut tasks = vec![];
    for _ in 0..WORKERS {
        let mut c = s.client();
        tasks.push(tokio::spawn(async move {
            let mut done = 0;
            let mut current = get(&mut c, "", b"counter").await.unwrap();
            while done < INCREMENTS {
                let n: usize = std::str::from_utf8(&current).unwrap().parse().unwrap();
                let next = (n + 1).to_string();
                let r = cas(&mut c, b"counter", Some(&current), next.as_bytes()).await;
                if r.succeed {
                    done += 1;
                    current = next.into_bytes();
                } else {
                    assert!(!r.previous_not_exist);
                    current = r.previous_value;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let total = (WORKERS * INCREMENTS).to_string();
    assert_eq!(get(&mut c, "", b"counter").await, Some(total.into_bytes()));
}
