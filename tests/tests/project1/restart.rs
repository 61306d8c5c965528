//! Data written through the service survives a clean server restart.

use proto::kvrpcpb::*;

use crate::harness::*;

#[tokio::test]
async fn data_survives_a_restart_of_the_harness_server() {
    let mut s = TestServer::start().await;
    let mut c = s.client();
    put(&mut c, "", b"a", b"1").await;
    put(&mut c, "write", b"a", b"w").await;
    put(&mut c, "", b"gone", b"x").await;
    delete(&mut c, "", b"gone").await;
    let before = s.dump();

    s.restart().await;
    assert_eq!(s.dump(), before);
    let mut c = s.client();
    assert_eq!(get(&mut c, "", b"a").await, Some(b"1".to_vec()));
    assert_eq!(get(&mut c, "write", b"a").await, Some(b"w".to_vec()));
    assert_eq!(get(&mut c, "", b"gone").await, None);
}

/// The public entry point (`server::start`) closes the engine on shutdown: reopening the same
/// data directory in the same process would otherwise fail on RocksDB's lock.
#[tokio::test]
async fn start_shutdown_start_on_the_same_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = test_config(&dir);

    let server = kvserver::server::start(&cfg).await.unwrap();
    let mut c = connect(server.local_addr()).await;
    let pairs = (0..100)
        .map(|i| KvPair {
            key: format!("key{i:03}").into_bytes(),
            value: format!("value{i}").into_bytes(),
            ..Default::default()
        })
        .collect();
    let r = c
        .raw_batch_put(RawBatchPutRequest {
            pairs,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty());
    server.shutdown().await.unwrap();

    let server = kvserver::server::start(&cfg).await.unwrap();
    let mut c = connect(server.local_addr()).await;
    let all = scan(&mut c, scan_req(b"", b"", 1000)).await;
    assert_eq!(all.len(), 100);
    assert_eq!(all[42], (b"key042".to_vec(), b"value42".to_vec()));
    server.shutdown().await.unwrap();
}
