//! The TinyKV backends (raw and transactional) through the real client, the real scheduler and
//! a real store's gRPC service.
//!
//! Until cluster mode exists, the store is a standalone `kvserver` (one engine, no Raft),
//! registered with an in-process scheduler the way a store registers itself: `Bootstrap` with
//! the store and a region covering all keys, then one region heartbeat naming the leader. The
//! client then routes every request to that store, exactly as it would in a cluster.

use std::sync::Arc;
use std::time::Duration;

use kvserver::config::ServerConfig;
use kvserver::server::{start_standalone, RunningServer};
use proto::metapb::{Peer, Region, RegionEpoch, Store};
use proto::pdpb::pd_client::PdClient as PdGrpc;
use proto::pdpb::{BootstrapRequest, GetMembersRequest, RegionHeartbeatRequest, RequestHeader};
use scheduler::{ScheduleConfig, SchedulerServer};
use tinykv_bench::backend::Backend;
use tinykv_bench::config::{
    Distribution, Preset, RunConfig, Stop, TargetConfig, TargetKind, WorkloadConfig,
};
use tinykv_bench::cpu::CpuProbe;
use tinykv_bench::runner;
use tinykv_bench::workload::Workload;

/// A scheduler and one standalone store it routes every key to.
struct SingleStore {
    _store: RunningServer,
    scheduler: SchedulerServer,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn single_store() -> SingleStore {
    let store_dir = tempfile::tempdir().unwrap();
    let store = start_standalone(&ServerConfig {
        data_dir: store_dir.path().to_owned(),
        ..ServerConfig::new_test_config()
    })
    .await
    .unwrap();

    let pd_dir = tempfile::tempdir().unwrap();
    let scheduler = SchedulerServer::start(scheduler::Config {
        data_dir: pd_dir.path().to_owned(),
        schedule: ScheduleConfig {
            max_replicas: 1,
            schedulers: vec![],
            enable_replica_checker: false,
            ..ScheduleConfig::new_test_config()
        },
        ..scheduler::Config::new_test_config()
    })
    .await
    .unwrap();

    let mut pd = PdGrpc::connect(scheduler.client_url().to_owned())
        .await
        .unwrap();
    let cluster_id = pd
        .get_members(GetMembersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .cluster_id;
    let header = Some(RequestHeader {
        cluster_id,
        ..Default::default()
    });
    let peer = Peer {
        id: 3,
        store_id: 1,
        ..Default::default()
    };
    let region = Region {
        id: 2,
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![peer],
        ..Default::default()
    };
    let resp = pd
        .bootstrap(BootstrapRequest {
            header,
            store: Some(Store {
                id: 1,
                address: store.local_addr().to_string(),
                ..Default::default()
            }),
            region: Some(region.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(resp.header.unwrap().error.is_none());
    // One heartbeat names the leader; the stream stays open (a closed stream is fine too, but
    // this is what a store does).
    let heartbeat = RegionHeartbeatRequest {
        header,
        region: Some(region),
        leader: Some(peer),
        term: 1,
        ..Default::default()
    };
    let requests = futures::stream::iter([heartbeat]).chain(futures::stream::pending());
    let mut responses = pd.region_heartbeat(requests).await.unwrap().into_inner();
    tokio::spawn(async move { while let Ok(Some(_)) = responses.message().await {} });

    // Ready when the scheduler knows the leader.
    let client = client::PdClient::connect(
        &[scheduler
            .client_url()
            .trim_start_matches("http://")
            .to_owned()],
        client::Config::new_test_config(),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client
        .get_region(b"")
        .await
        .map(|r| r.leader.is_none())
        .unwrap_or(true)
    {
        assert!(tokio::time::Instant::now() < deadline, "no leader reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    SingleStore {
        _store: store,
        scheduler,
        _dirs: (store_dir, pd_dir),
    }
}

use futures::StreamExt as _;

async fn run_presets(kind: TargetKind, workloads: &[WorkloadConfig]) {
    let cluster = single_store().await;
    let target = TargetConfig {
        kind,
        pd_endpoints: vec![cluster
            .scheduler
            .client_url()
            .trim_start_matches("http://")
            .to_owned()],
        ..Default::default()
    };
    let run = RunConfig {
        concurrency: 8,
        connections: 2,
        stop: Stop::Operations(300),
        ..RunConfig::new_test_config()
    };
    let backends = Backend::connect_all(&target, &run).await.unwrap();
    backends[0].probe(Duration::from_secs(10)).await.unwrap();
    // This process is the store and the scheduler: account it as the server.
    let probe = CpuProbe::new(vec![("self".into(), std::process::id())]).unwrap();
    for w in workloads {
        let preset = (w.proportions(), w.distribution);
        let workload: Arc<Workload> = Workload::new(w.clone()).unwrap();
        let load = runner::load(&backends, &workload, &run, false)
            .await
            .unwrap();
        assert_eq!(load.records, w.record_count);
        let report = runner::run(&backends, &workload, &run, &probe, false)
            .await
            .unwrap();
        let t = &report.total;
        assert_eq!(t.ok, 300, "{kind:?} {preset:?}: {:?}", report.error_samples);
        assert_eq!(
            t.errors, 0,
            "{kind:?} {preset:?}: {:?}",
            report.error_samples
        );
        assert_eq!(t.not_found, 0, "{kind:?} {preset:?}: {report:?}");
        let kinds = report.per_op.len();
        assert!((1..=2).contains(&kinds), "{kind:?} {preset:?}: {report:?}");
        assert!(report.server_cpu_us_per_op.unwrap() > 0.0);
    }
}

fn workloads(presets: &[Preset]) -> Vec<WorkloadConfig> {
    presets
        .iter()
        .map(|p| WorkloadConfig {
            record_count: 200,
            ..p.workload()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_backend_runs_ycsb_workloads() {
    run_presets(
        TargetKind::TinykvRaw,
        &workloads(&[Preset::A, Preset::D, Preset::E, Preset::F]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_backend_runs_ycsb_workloads() {
    let mut w = workloads(&[Preset::Put, Preset::B, Preset::E, Preset::F]);
    // Zipfian read-modify-writes of 8 clients over 200 records conflict more often than 3
    // retries absorb; spread them (conflicts are the next test's subject).
    w[3] = WorkloadConfig {
        record_count: 2_000,
        distribution: Distribution::Uniform,
        ..w[3].clone()
    };
    run_presets(TargetKind::TinykvTxn, &w).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_transactions_are_retried_and_counted() {
    let cluster = single_store().await;
    let target = TargetConfig {
        kind: TargetKind::TinykvTxn,
        pd_endpoints: vec![cluster
            .scheduler
            .client_url()
            .trim_start_matches("http://")
            .to_owned()],
        ..Default::default()
    };
    let run = RunConfig {
        concurrency: 8,
        stop: Stop::Operations(300),
        txn_retries: 2,
        ..RunConfig::new_test_config()
    };
    let backends = Backend::connect_all(&target, &run).await.unwrap();
    // Eight clients read-modify-writing 4 records: conflicts on every key.
    let workload = Workload::new(WorkloadConfig {
        record_count: 4,
        read_proportion: 0.0,
        ..Preset::F.workload()
    })
    .unwrap();
    runner::load(&backends, &workload, &run, false)
        .await
        .unwrap();
    let report = runner::run(&backends, &workload, &run, &CpuProbe::default(), false)
        .await
        .unwrap();
    let t = &report.total;
    assert_eq!(t.ok + t.errors, 300, "{report:?}");
    assert!(t.retries > 0, "no conflict was retried: {report:?}");
    // Whatever gave up did so on a conflict or a lock, never on something else.
    for e in &report.error_samples {
        assert!(e.contains("write conflict") || e.contains("locked"), "{e}");
    }
}
