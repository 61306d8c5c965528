//! The etcd backend, the runner and `compare` against a real 3-member etcd on loopback.
//!
//! Needs the `etcd` binary (Debian `etcd-server`; `make bench-compare` installs it). Without it
//! the tests say so and pass, so the suite still runs on machines without etcd.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tinykv_bench::backend::Backend;
use tinykv_bench::compare::etcd::EtcdCluster;
use tinykv_bench::compare::{self};
use tinykv_bench::config::{
    CompareConfig, EtcdConnect, EtcdRead, Preset, RunConfig, Stop, System, TargetConfig,
    TargetKind, WorkloadConfig,
};
use tinykv_bench::cpu::CpuProbe;
use tinykv_bench::report::Comparison;
use tinykv_bench::runner;
use tinykv_bench::workload::Workload;

fn etcd_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
}

/// A base port with `n` free ports after it (tests run in parallel, so each picks its own).
fn free_ports(n: u16) -> u16 {
    for _ in 0..50 {
        let base = 30_000 + (rand::random::<u16>() % 20_000);
        let all_free = (0..n).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no {n} consecutive free ports found");
}

async fn cluster(dir: &std::path::Path, bin: &std::path::Path) -> EtcdCluster {
    let mut c = EtcdCluster::start(bin, dir, free_ports(6), "bench-test").unwrap();
    c.wait_ready(Duration::from_secs(60)).await.unwrap();
    c
}

fn target(c: &EtcdCluster, read: EtcdRead, members: EtcdConnect) -> TargetConfig {
    TargetConfig {
        kind: TargetKind::Etcd,
        etcd_endpoints: c.endpoints(),
        etcd_read: read,
        etcd_connect: members,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ycsb_workloads_run_against_etcd() {
    let Some(bin) = etcd_bin() else {
        eprintln!("etcd not installed: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = cluster(dir.path(), &bin).await;
    let run = RunConfig {
        concurrency: 8,
        connections: 2,
        stop: Stop::Operations(400),
        ..RunConfig::new_test_config()
    };
    let backends = Backend::connect_all(
        &target(&etcd, EtcdRead::Linearizable, EtcdConnect::Leader),
        &run,
    )
    .await
    .unwrap();
    backends[0].probe(Duration::from_secs(10)).await.unwrap();
    let probe = CpuProbe::new(etcd.pids()).unwrap();

    for preset in [Preset::A, Preset::D, Preset::E, Preset::F] {
        let workload: Arc<Workload> = Workload::new(WorkloadConfig {
            record_count: 300,
            ..preset.workload()
        })
        .unwrap();
        let load = runner::load(&backends, &workload, &run, false)
            .await
            .unwrap();
        assert_eq!(load.records, 300);
        let report = runner::run(&backends, &workload, &run, &probe, false)
            .await
            .unwrap();
        let t = &report.total;
        assert_eq!(t.ok, 400, "{preset:?}: {report:?}");
        assert_eq!(t.errors, 0, "{preset:?}: {:?}", report.error_samples);
        // Every read targets a loaded or acknowledged record: none may be missing.
        assert_eq!(t.not_found, 0, "{preset:?}: {report:?}");
        assert!(t.latency.p50_ms > 0.0 && t.latency.p99_ms >= t.latency.p50_ms);
        assert!(
            report.server_cpu_us_per_op.unwrap() > 0.0,
            "{preset:?}: {report:?}"
        );
        assert_eq!(report.cpu.per_server.len(), 3);
        report.check_errors(0.0).unwrap();
    }
    etcd.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_endpoint_is_a_member_that_leads() {
    let Some(bin) = etcd_bin() else {
        eprintln!("etcd not installed: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = cluster(dir.path(), &bin).await;
    let leader =
        tinykv_bench::backend::etcd_leader_endpoint(&etcd.endpoints(), Duration::from_secs(5))
            .await
            .unwrap();
    assert!(etcd.endpoints().contains(&leader), "{leader}");
    let mut client = tinykv_bench::backend::etcd_connect(&[leader], Duration::from_secs(5))
        .await
        .unwrap();
    let status = client.status().await.unwrap();
    assert_eq!(status.leader(), status.header().unwrap().member_id());
    etcd.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_reads_see_loaded_records() {
    let Some(bin) = etcd_bin() else {
        eprintln!("etcd not installed: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut etcd = cluster(dir.path(), &bin).await;
    let run = RunConfig {
        stop: Stop::Duration(Duration::from_millis(500)),
        ..RunConfig::new_test_config()
    };
    let backends = Backend::connect_all(
        &target(&etcd, EtcdRead::Serializable, EtcdConnect::All),
        &run,
    )
    .await
    .unwrap();
    let workload = Workload::new(WorkloadConfig {
        record_count: 200,
        ..Preset::Get.workload()
    })
    .unwrap();
    runner::load(&backends, &workload, &run, false)
        .await
        .unwrap();
    // A serializable read may lag the leader, but loaded records were committed before the
    // run started and members apply quickly: poll until one member-local read sees the last.
    let last = workload.key(199);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = backends[0]
            .execute(&tinykv_bench::workload::Op::Read { key: last.clone() })
            .await
            .unwrap();
        if found == tinykv_bench::stats::Outcome::Ok {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "record never became visible"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = runner::run(&backends, &workload, &run, &CpuProbe::default(), false)
        .await
        .unwrap();
    assert!(
        report.total.ok > 0 && report.total.errors == 0,
        "{report:?}"
    );
    assert!(report.server_cpu_us_per_op.is_none());
    etcd.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_runs_the_etcd_half_and_writes_results() {
    let Some(bin) = etcd_bin() else {
        eprintln!("etcd not installed: skipping");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let cfg = CompareConfig {
        systems: vec![System::Etcd],
        etcd_bin: bin,
        out_dir: dir.path().join("results"),
        work_dir: dir.path().join("work"),
        base_port: free_ports(6),
        ..CompareConfig::new_test_config()
    };
    let (cmp, json) = compare::compare(&cfg, false).await.unwrap();
    assert!(cmp.failures.is_empty(), "{:?}", cmp.failures);
    assert_eq!(cmp.runs.len(), 5);
    for run in &cmp.runs {
        assert!(run.result.total.ok > 0, "{}: {:?}", run.id, run.result);
        assert_eq!(
            run.result.total.errors, 0,
            "{}: {:?}",
            run.id, run.result.error_samples
        );
        assert!(run.result.server_cpu_us_per_op.is_some(), "{}", run.id);
    }
    let put1 = cmp.run("etcd/put-1").unwrap();
    assert_eq!(put1.run.concurrency, 1);
    // Outputs: JSON that reads back, the Markdown table and the chart.
    // (Floats may differ in the last digit after a JSON round trip: compare the structure.)
    let back = Comparison::read_json(&json).unwrap();
    assert_eq!(back.rows, cmp.rows);
    assert_eq!(back.config, cmp.config);
    let ok = |c: &Comparison| {
        c.runs
            .iter()
            .map(|r| (r.id.clone(), r.result.total.ok))
            .collect::<Vec<_>>()
    };
    assert_eq!(ok(&back), ok(&cmp));
    let md = std::fs::read_to_string(json.with_extension("md")).unwrap();
    assert!(md.contains("raw put, 64 clients"), "{md}");
    let svg = std::fs::read_to_string(json.with_extension("svg")).unwrap();
    assert!(svg.contains("put/64"));
    // Data directories are removed after each run.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("work"))
        .map(|d| d.collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // No etcd member is left running on the ports.
    for port in cfg.base_port..cfg.base_port + 6 {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port} busy"
        );
    }
}
