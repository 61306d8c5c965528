//! The raw gRPC service round trip over loopback against `StandaloneStorage`: what a request
//! costs in tonic, the service layer and the engine, without Raft. Compare with the cluster
//! numbers of `tinykv-bench` to see how much of a request's time is replication.
//!
//! - `get/1`: one RawGet in flight (latency of the whole stack).
//! - `get/32`: 32 RawGets in flight on one connection (throughput; per-op time is wall / ops).
//! - `put/1`, `put/32`: the same for RawPut. Standalone writes are synced, so these are bound
//!   by fsync; group commit in RocksDB shows up as the 32-in-flight speedup.
//! - `batch_get/32`: 32 RawGets in one `BatchCommands` message on an open stream, waiting for
//!   all 32 answers (per-op time is wall / 32): the same work as `get/32` without a unary
//!   call's HTTP/2 stream per request.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kvserver::config::Limits;
use kvserver::server::RunningServer;
use kvserver::service::TikvService;
use kvserver::storage::StandaloneStorage;
use proto::kvrpcpb::{RawGetRequest, RawPutRequest};
use proto::tikvpb::batch_commands_request::request::Cmd;
use proto::tikvpb::batch_commands_request::Request as BatchRequest;
use proto::tikvpb::batch_commands_response::response::Cmd as RespCmd;
use proto::tikvpb::tikv_client::TikvClient;
use proto::tikvpb::{BatchCommandsRequest, BatchCommandsResponse};
use raft_core::config::EngineConfig;
use tonic::transport::Channel;

const KEYS: u64 = 1_000;

fn key(i: u64) -> Vec<u8> {
    format!("user{:012}", i % KEYS).into_bytes()
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    client: TikvClient<Channel>,
    // Held for the benchmark's lifetime: dropping them stops the server / deletes the data.
    _server: RunningServer,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let storage = StandaloneStorage::open(dir.path(), &EngineConfig::default()).unwrap();
    let service = TikvService::new(storage, Limits::default());
    let (server, client) = rt.block_on(async {
        let server = RunningServer::start(
            "127.0.0.1:0".parse().unwrap(),
            service,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        let client = TikvClient::connect(format!("http://{}", server.local_addr()))
            .await
            .unwrap();
        (server, client)
    });
    let f = Fixture {
        rt,
        client,
        _server: server,
        _dir: dir,
    };
    // Every get finds its key.
    f.rt.block_on(async {
        for i in 0..KEYS {
            put(&mut f.client.clone(), i).await;
        }
    });
    f
}

async fn get(client: &mut TikvClient<Channel>, i: u64) {
    let resp = client
        .raw_get(RawGetRequest {
            key: key(i),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_empty() && !resp.not_found, "{resp:?}");
    black_box(resp);
}

async fn put(client: &mut TikvClient<Channel>, i: u64) {
    let resp = client
        .raw_put(RawPutRequest {
            key: key(i),
            value: vec![0x5a; 128],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.error.is_empty(), "{resp:?}");
}

/// Runs `iters` operations with `in_flight` of them outstanding at a time; returns wall time.
fn timed<F, Fut>(f: &Fixture, iters: u64, in_flight: u64, op: F) -> Duration
where
    F: Fn(TikvClient<Channel>, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let op = Arc::new(op);
    let client = f.client.clone();
    f.rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..in_flight)
            .map(|t| {
                let (op, client) = (op.clone(), client.clone());
                tokio::spawn(async move {
                    let mut i = t;
                    while i < iters {
                        op(client.clone(), i).await;
                        i += in_flight;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        start.elapsed()
    })
}

/// One open `BatchCommands` stream.
struct BatchStream {
    requests: tokio::sync::mpsc::UnboundedSender<BatchCommandsRequest>,
    responses: tonic::Streaming<BatchCommandsResponse>,
}

async fn open_batch(client: &mut TikvClient<Channel>) -> BatchStream {
    let (requests, rx) = tokio::sync::mpsc::unbounded_channel();
    let responses = client
        .batch_commands(tokio_stream::wrappers::UnboundedReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    BatchStream {
        requests,
        responses,
    }
}

/// Sends `n` RawGets in one message and waits for every answer.
async fn batch_get(s: &mut BatchStream, first: u64, n: u64) {
    let req = BatchCommandsRequest {
        requests: (first..first + n)
            .map(|i| BatchRequest {
                cmd: Some(Cmd::RawGet(RawGetRequest {
                    key: key(i),
                    ..Default::default()
                })),
            })
            .collect(),
        request_ids: (first..first + n).collect(),
    };
    s.requests.send(req).unwrap();
    let mut answered = 0;
    while answered < n {
        let resp = s.responses.message().await.unwrap().unwrap();
        for r in resp.responses {
            match r.cmd {
                Some(RespCmd::RawGet(g)) => assert!(!g.not_found, "{g:?}"),
                other => panic!("{other:?}"),
            }
            answered += 1;
        }
    }
}

fn bench_raw(c: &mut Criterion) {
    let f = fixture();
    let mut g = c.benchmark_group("grpc_raw");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    for in_flight in [1u64, 32] {
        g.bench_function(BenchmarkId::new("get", in_flight), |b| {
            b.iter_custom(|iters| {
                timed(&f, iters, in_flight, |mut c, i| async move {
                    get(&mut c, i).await
                })
            })
        });
        g.bench_function(BenchmarkId::new("put", in_flight), |b| {
            b.iter_custom(|iters| {
                timed(&f, iters, in_flight, |mut c, i| async move {
                    put(&mut c, i).await
                })
            })
        });
    }
    const BATCH: u64 = 32;
    let mut stream = f.rt.block_on(open_batch(&mut f.client.clone()));
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function(BenchmarkId::new("batch_get", BATCH), |b| {
        let mut next = 0;
        b.iter(|| {
            f.rt.block_on(batch_get(&mut stream, next, BATCH));
            next += BATCH;
        })
    });
    g.finish();
}

criterion_group!(benches, bench_raw);
criterion_main!(benches);
