//! The `pdpb.PD` service through a real gRPC server on an ephemeral port: the client-facing
//! contract (headers, errors, members), TSO and id monotonicity across concurrent streams and
//! restarts, thousands of concurrent region heartbeats, and the HTTP status view.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::*;
use proto::metapb::{self, Peer, RegionEpoch};
use proto::pdpb::pd_client::PdClient;
use proto::pdpb::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

fn error_type(h: &Option<ResponseHeader>) -> Option<ErrorType> {
    h.as_ref()
        .expect("every response has a header")
        .error
        .as_ref()
        .map(|e| ErrorType::try_from(e.r#type).unwrap())
}

/// A scheduler bootstrapped with stores 1–3 and one region (`region_id`) covering all keys.
struct Bootstrapped {
    _dir: tempfile::TempDir,
    server: scheduler::SchedulerServer,
    c: PdClient<Channel>,
    cid: u64,
    region_id: u64,
}

async fn bootstrapped() -> Bootstrapped {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path(), |_| {})).await;
    let mut c = connect(&server).await;
    let cid = server.cluster().cluster_id();
    let region_id = c
        .alloc_id(AllocIdRequest {
            header: header(cid),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    bootstrap(&mut c, cid, 3, region_id, region_id + 1000).await;
    Bootstrapped {
        _dir: dir,
        server,
        c,
        cid,
        region_id,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_headers_and_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path(), |_| {})).await;
    let mut c = connect(&server).await;

    // GetMembers without a header, as clients send it.
    let m = c
        .get_members(GetMembersRequest::default())
        .await
        .unwrap()
        .into_inner();
    let cid = m.header.as_ref().unwrap().cluster_id;
    assert_ne!(cid, 0);
    assert_eq!(cid, server.cluster().cluster_id());
    let leader = m.leader.expect("leader present");
    assert_eq!(leader.client_urls, vec![server.client_url().to_string()]);
    assert!(server.client_url().starts_with("http://127.0.0.1:"));
    assert_eq!(m.members.len(), 1);

    // Before bootstrap: NOT_BOOTSTRAPPED in the header, same cluster id.
    let r = c
        .get_region(GetRegionRequest {
            header: header(cid),
            region_key: b"a".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&r.header), Some(ErrorType::NotBootstrapped));
    assert_eq!(r.header.unwrap().cluster_id, cid);
    let b = c
        .is_bootstrapped(IsBootstrappedRequest {
            header: header(cid),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!b.bootstrapped);

    // Another cluster's request is refused outright.
    let err = c
        .alloc_id(AllocIdRequest {
            header: header(cid + 1),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);

    // Bootstrap validation, then bootstrap, then a second bootstrap.
    let bad = c
        .bootstrap(BootstrapRequest {
            header: header(cid),
            store: Some(metapb::Store {
                id: 1,
                address: store_addr(1),
                ..Default::default()
            }),
            region: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&bad.header), Some(ErrorType::InvalidValue));
    let region_id = c
        .alloc_id(AllocIdRequest {
            header: header(cid),
        })
        .await
        .unwrap()
        .into_inner()
        .id;
    bootstrap(&mut c, cid, 3, region_id, region_id + 1000).await;
    let again = c
        .bootstrap(BootstrapRequest {
            header: header(cid),
            store: Some(metapb::Store {
                id: 9,
                address: store_addr(9),
                ..Default::default()
            }),
            region: Some(metapb::Region {
                id: 99,
                peers: vec![Peer {
                    id: 98,
                    store_id: 9,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        error_type(&again.header),
        Some(ErrorType::AlreadyBootstrapped)
    );

    // Methods we do not serve answer UNIMPLEMENTED.
    let err = c
        .scatter_region(ScatterRegionRequest {
            header: header(cid),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unimplemented);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_lookups_scans_and_stores() {
    let Bootstrapped {
        _dir,
        server,
        mut c,
        cid,
        region_id,
    } = bootstrapped().await;

    // Routing lookups: the bootstrap region covers everything, with an epoch.
    let r = c
        .get_region(GetRegionRequest {
            header: header(cid),
            region_key: b"anything".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&r.header), None);
    let region = r.region.unwrap();
    assert_eq!(region.id, region_id);
    assert!(region.region_epoch.is_some());
    let r = c
        .get_region_by_id(GetRegionByIdRequest {
            header: header(cid),
            region_id: 424242,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&r.header), Some(ErrorType::RegionNotFound));
    let r = c
        .get_prev_region(GetRegionRequest {
            header: header(cid),
            region_key: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&r.header), Some(ErrorType::RegionNotFound));

    // Stores.
    let s = c
        .get_store(GetStoreRequest {
            header: header(cid),
            store_id: 2,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.store.unwrap().address, store_addr(2));
    let s = c
        .get_store(GetStoreRequest {
            header: header(cid),
            store_id: 77,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(s.store.is_none());
    assert_eq!(error_type(&s.header), Some(ErrorType::Unknown));
    let all = c
        .get_all_stores(GetAllStoresRequest {
            header: header(cid),
            exclude_tombstone_stores: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.stores.len(), 3);
    let dup = c
        .put_store(PutStoreRequest {
            header: header(cid),
            store: Some(metapb::Store {
                id: 4,
                address: store_addr(2),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&dup.header), Some(ErrorType::InvalidValue));
    let hb = c
        .store_heartbeat(StoreHeartbeatRequest {
            header: header(cid),
            stats: Some(StoreStats {
                store_id: 55,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&hb.header), Some(ErrorType::Unknown));

    // ScanRegions fills both layouts.
    let scan = c
        .scan_regions(ScanRegionsRequest {
            header: header(cid),
            start_key: vec![],
            limit: 0,
            end_key: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(scan.regions.len(), 1);
    assert_eq!(scan.region_metas.len(), 1);
    assert_eq!(scan.leaders.len(), 1);

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_ids_reports_and_gc_safe_point() {
    let Bootstrapped {
        _dir,
        server,
        mut c,
        cid,
        region_id,
    } = bootstrapped().await;

    // Splits: one region id plus one peer id per existing peer, all fresh.
    let asked = metapb::Region {
        id: region_id,
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![
            Peer {
                id: 1,
                store_id: 1,
                ..Default::default()
            },
            Peer {
                id: 2,
                store_id: 2,
                ..Default::default()
            },
        ],
        ..Default::default()
    };
    let one = c
        .ask_split(AskSplitRequest {
            header: header(cid),
            region: Some(asked.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&one.header), None);
    assert_eq!(one.new_peer_ids.len(), 2);
    let batch = c
        .ask_batch_split(AskBatchSplitRequest {
            header: header(cid),
            region: Some(asked.clone()),
            split_count: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.ids.len(), 3);
    let mut ids: Vec<u64> = vec![one.new_region_id];
    ids.extend(&one.new_peer_ids);
    for s in &batch.ids {
        assert_eq!(s.new_peer_ids.len(), 2);
        ids.push(s.new_region_id);
        ids.extend(&s.new_peer_ids);
    }
    let unique: HashSet<u64> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len());
    assert!(ids.iter().all(|&i| i > region_id));
    for bad in [
        AskBatchSplitRequest {
            header: header(cid),
            region: Some(asked.clone()),
            split_count: 0,
        },
        AskBatchSplitRequest {
            header: header(cid),
            region: None,
            split_count: 1,
        },
        AskBatchSplitRequest {
            header: header(cid),
            region: Some(metapb::Region {
                id: 31337,
                ..asked.clone()
            }),
            split_count: 1,
        },
    ] {
        let r = c.ask_batch_split(bad).await.unwrap().into_inner();
        assert!(error_type(&r.header).is_some());
    }
    let rep = c
        .report_batch_split(ReportBatchSplitRequest {
            header: header(cid),
            regions: vec![asked.clone(), asked],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(error_type(&rep.header), None);

    // GC safe point only moves forward.
    for (ask, expect) in [(100, 100), (50, 100), (200, 200)] {
        let r = c
            .update_gc_safe_point(UpdateGcSafePointRequest {
                header: header(cid),
                safe_point: ask,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.new_safe_point, expect);
    }
    let gc = c
        .get_gc_safe_point(GetGcSafePointRequest {
            header: header(cid),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gc.safe_point, 200);

    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_status_view_on_the_grpc_port() {
    let Bootstrapped {
        _dir,
        server,
        cid,
        region_id,
        ..
    } = bootstrapped().await;
    let body = http_get(server.addr(), "/pd/api/v1/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["cluster_id"].as_u64(), Some(cid));
    assert_eq!(v["bootstrapped"].as_bool(), Some(true));
    assert_eq!(v["stores"].as_array().unwrap().len(), 3);
    let body = http_get(server.addr(), "/pd/api/v1/regions").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v[0]["id"].as_u64(), Some(region_id));

    let body = http_get(server.addr(), &format!("/pd/api/v1/region/id/{region_id}")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["peers"][0]["store_id"].as_u64(), Some(1));
    let (status, _) = http_request(server.addr(), "GET", "/pd/api/v1/region/id/424242").await;
    assert_eq!(status, 404);
    let (status, _) = http_request(server.addr(), "GET", "/no/such/route").await;
    assert_eq!(status, 404);
    let (status, body) =
        http_request(server.addr(), "POST", "/pd/api/v1/store/2/state/Offline").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        server.cluster().get_store(2).unwrap().meta.state,
        metapb::StoreState::Offline as i32
    );
    let (status, _) = http_request(server.addr(), "POST", "/pd/api/v1/store/2/state/Gone").await;
    assert_eq!(status, 400);

    // Operators by hand (PD's body); every refusal names its reason.
    let add = |body: String| http_post_json(server.addr(), "/pd/api/v1/operators", body);
    let (status, body) = add("{".into()).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = add(format!(
        r#"{{"name":"add-peer","region_id":{region_id},"to_store_id":2}}"#
    ))
    .await;
    assert!(status == 400 && body.contains("transfer-leader"), "{body}");
    let (status, _) =
        add(r#"{"name":"transfer-leader","region_id":424242,"to_store_id":2}"#.into()).await;
    assert_eq!(status, 404);
    let (status, body) = add(format!(
        r#"{{"name":"transfer-leader","region_id":{region_id},"to_store_id":3}}"#
    ))
    .await;
    assert!(status == 400 || status == 409, "{status} {body}");
    server.shutdown().await.unwrap();
}

/// A plain HTTP/1.1 request; returns the status code and the body.
async fn http_request(addr: std::net::SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    let (_, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, body.to_string())
}

/// A POST with a JSON body; returns the status code and the body.
async fn http_post_json(addr: std::net::SocketAddr, path: &str, json: String) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    let (_, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, body.to_string())
}

/// A GET that must succeed; returns the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let (status, body) = http_request(addr, "GET", path).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Runs `streams` TSO streams of `requests` requests each, concurrently. Returns, per stream,
/// the `(first, last)` composed timestamps of each answer.
async fn tso_streams(
    server: &scheduler::SchedulerServer,
    streams: usize,
    requests: usize,
) -> Vec<Vec<(u64, u64)>> {
    let cid = server.cluster().cluster_id();
    let mut tasks = Vec::new();
    for s in 0..streams {
        let mut client = connect(server).await;
        tasks.push(tokio::spawn(async move {
            let (tx, rx) = mpsc::channel(8);
            let mut inbound = client
                .tso(ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            let mut out = Vec::new();
            for i in 0..requests {
                let count = 1 + ((s * 31 + i * 7) % 64) as u32;
                tx.send(TsoRequest {
                    header: header(cid),
                    count,
                    dc_location: String::new(),
                })
                .await
                .unwrap();
                let resp = inbound
                    .message()
                    .await
                    .unwrap()
                    .expect("one answer per request");
                assert_eq!(resp.count, count);
                let ts = resp.timestamp.unwrap();
                assert!(ts.logical >= i64::from(count));
                let last = scheduler::tso::compose(&ts);
                out.push((last - u64::from(count) + 1, last));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.push(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tso_and_ids_are_monotonic_across_streams_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut max_ts = 0u64;
    let mut ids_seen: Vec<u64> = Vec::new();
    let mut cluster_id = None;
    for round in 0..3 {
        let server = start(config(dir.path(), |c| c.id_batch_size = 50)).await;
        let cid = server.cluster().cluster_id();
        assert_eq!(
            *cluster_id.get_or_insert(cid),
            cid,
            "same cluster after restart"
        );

        let per_stream = tso_streams(&server, 4, 100).await;
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for stream in &per_stream {
            for w in stream.windows(2) {
                assert!(w[1].0 > w[0].1, "a stream's timestamps increase");
            }
            ranges.extend(stream);
        }
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            assert!(w[1].0 > w[0].1, "ranges of different streams never overlap");
        }
        assert!(
            ranges[0].0 > max_ts,
            "round {round}: {} is not above {max_ts} from before the restart",
            ranges[0].0
        );
        max_ts = ranges.last().unwrap().1;

        // Ids from concurrent callers: all distinct, and above everything before the restart.
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let mut client = connect(&server).await;
            tasks.push(tokio::spawn(async move {
                let mut v = Vec::new();
                for _ in 0..40 {
                    let r = client
                        .alloc_id(AllocIdRequest {
                            header: header(cid),
                        })
                        .await
                        .unwrap()
                        .into_inner();
                    v.push(r.id);
                }
                v
            }));
        }
        let before = ids_seen.iter().copied().max().unwrap_or(0);
        for t in tasks {
            let v = t.await.unwrap();
            assert!(v.iter().all(|&id| id > before));
            ids_seen.extend(v);
        }
        server.shutdown().await.unwrap();
    }
    let unique: HashSet<u64> = ids_seen.iter().copied().collect();
    assert_eq!(unique.len(), ids_seen.len(), "ids unique across restarts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tso_rejects_bad_requests_without_killing_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path(), |_| {})).await;
    let cid = server.cluster().cluster_id();
    let mut c = connect(&server).await;
    for bad in [
        TsoRequest {
            header: header(cid),
            count: 0,
            ..Default::default()
        },
        TsoRequest {
            header: header(cid + 1),
            count: 1,
            ..Default::default()
        },
    ] {
        let (tx, rx) = mpsc::channel(1);
        let mut inbound = c.tso(ReceiverStream::new(rx)).await.unwrap().into_inner();
        tx.send(bad).await.unwrap();
        assert!(inbound.message().await.is_err());
    }
    let ok = tso_streams(&server, 1, 3).await;
    assert_eq!(ok[0].len(), 3);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_region_heartbeats() {
    const REGIONS: u64 = 2000;
    const STREAMS_PER_STORE: u64 = 2;
    let dir = tempfile::tempdir().unwrap();
    let server = start(config(dir.path(), |_| {})).await;
    let cid = server.cluster().cluster_id();
    let mut c = connect(&server).await;
    bootstrap(&mut c, cid, 3, 1, 2).await;
    for s in 1..=3 {
        c.store_heartbeat(StoreHeartbeatRequest {
            header: header(cid),
            stats: Some(StoreStats {
                store_id: s,
                capacity: 1000 << 20,
                available: 1000 << 20,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    }

    // Adjacent single-peer regions; region i is led from store (i % 3) + 1. Half of them carry
    // no epoch at all (read as {0, 0}), as a store's first heartbeats may.
    let key = |i: u64| format!("{i:05}").into_bytes();
    let region = |i: u64| {
        let store_id = i % 3 + 1;
        let peer = Peer {
            id: 100_000 + i,
            store_id,
            ..Default::default()
        };
        RegionHeartbeatRequest {
            header: header(cid),
            region: Some(metapb::Region {
                id: 10 + i,
                start_key: if i == 0 { vec![] } else { key(i) },
                end_key: if i == REGIONS - 1 { vec![] } else { key(i + 1) },
                region_epoch: (i % 2 == 1).then_some(RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peers: vec![peer],
            }),
            leader: Some(peer),
            ..Default::default()
        }
    };

    // Each stream sends its share concurrently and records the commands it receives.
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<(u64, RegionHeartbeatResponse)>();
    let mut senders = Vec::new();
    for store_id in 1..=3u64 {
        for s in 0..STREAMS_PER_STORE {
            let mut client = connect(&server).await;
            let cmd_tx = cmd_tx.clone();
            let mine: Vec<RegionHeartbeatRequest> = (0..REGIONS)
                .filter(|i| i % 3 + 1 == store_id && (i / 3) % STREAMS_PER_STORE == s)
                .map(region)
                .collect();
            senders.push(tokio::spawn(async move {
                let (tx, rx) = mpsc::channel(64);
                let mut inbound = client
                    .region_heartbeat(ReceiverStream::new(rx))
                    .await
                    .unwrap()
                    .into_inner();
                tokio::spawn(async move {
                    while let Ok(Some(resp)) = inbound.message().await {
                        if cmd_tx.send((store_id, resp)).is_err() {
                            break;
                        }
                    }
                });
                for req in mine {
                    tx.send(req).await.unwrap();
                }
                // Keep the stream open so commands can still arrive.
                tx
            }));
        }
    }
    drop(cmd_tx);
    let mut open_streams = Vec::new();
    for t in senders {
        open_streams.push(t.await.unwrap());
    }

    // All regions arrive; per-store counts match.
    let cluster = server.cluster().clone();
    wait_for("all heartbeats applied", || {
        let status = cluster.status();
        async move {
            (status.region_count == REGIONS as usize
                && status.stores.iter().all(|s| {
                    s.regions.region_count
                        == (0..REGIONS).filter(|i| i % 3 + 1 == s.id).count() as u64
                        && s.regions.leader_count == s.regions.region_count
                }))
            .then_some(())
        }
    })
    .await;
    for i in [0, 1, REGIONS / 2, REGIONS - 1] {
        let r = cluster.region_by_key(&key(i)).unwrap();
        assert_eq!(r.id(), 10 + i);
        assert_eq!(r.leader_store_id(), Some(i % 3 + 1));
    }

    // The replica checker wants 3 replicas: commands reach the leader's store streams.
    let mut received: BTreeMap<u64, usize> = BTreeMap::new();
    let (store_id, resp) = tokio::time::timeout(DEADLINE, cmd_rx.recv())
        .await
        .expect("a command within the deadline")
        .expect("command channel open");
    let mut check = |store_id: u64, resp: RegionHeartbeatResponse| {
        let h = resp.header.as_ref().unwrap();
        assert!(
            h.error.is_none(),
            "no heartbeat was rejected: {:?}",
            h.error
        );
        assert_eq!(h.cluster_id, cid);
        let leader_store = (resp.region_id - 10) % 3 + 1;
        assert_eq!(
            store_id, leader_store,
            "command routed to the leader's store"
        );
        let cp = resp.change_peer.expect("an add-peer command");
        assert_ne!(cp.peer.unwrap().store_id, store_id);
        *received.entry(store_id).or_default() += 1;
    };
    check(store_id, resp);
    while let Ok((s, r)) = cmd_rx.try_recv() {
        check(s, r);
    }
    assert!(!received.is_empty());
    drop(open_streams);
    server.shutdown().await.unwrap();
}
