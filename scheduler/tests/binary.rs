//! The `tinyscheduler-server` binary: flags, serving, clean exit on SIGTERM and SIGINT, and the
//! same cluster after a restart.

use std::process::Stdio;
use std::time::Duration;

use proto::pdpb::pd_client::PdClient;
use proto::pdpb::GetMembersRequest;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const DEADLINE: Duration = Duration::from_secs(60);

/// Starts the binary on an ephemeral port; returns it with the client URL it logged.
async fn spawn(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tinyscheduler-server"))
        .args(["--listen-addr", "127.0.0.1:0", "--max-replicas", "1"])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--max-store-down-time", "90s", "--log-level", "info"])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn tinyscheduler-server");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(DEADLINE, async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(" ready ") {
                let url = line.split("client_url=").nth(1).expect("url logged");
                return url.trim().to_string();
            }
        }
        panic!("the server exited before it was ready");
    })
    .await
    .expect("server ready in time");
    // Keep draining the log so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

async fn cluster_id(url: &str) -> u64 {
    let mut c = PdClient::connect(url.to_string()).await.unwrap();
    let m = c
        .get_members(GetMembersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.leader.unwrap().client_urls, vec![url.to_string()]);
    m.header.unwrap().cluster_id
}

async fn stop(mut child: Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(DEADLINE, child.wait())
        .await
        .expect("exits after the signal")
        .unwrap();
    assert!(exit.success(), "clean exit, got {exit}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_and_exits_cleanly_on_signals() {
    let dir = tempfile::tempdir().unwrap();
    let (child, url) = spawn(dir.path()).await;
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let id = cluster_id(&url).await;
    stop(child, "-TERM").await;

    let (child, url) = spawn(dir.path()).await;
    assert_eq!(cluster_id(&url).await, id, "same cluster after restart");
    stop(child, "-INT").await;
}

#[tokio::test]
async fn bad_flags_fail_fast() {
    let out = Command::new(env!("CARGO_BIN_EXE_tinyscheduler-server"))
        .args([
            "--max-replicas",
            "0",
            "--data-dir",
            "/nonexistent/never-created",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("max-replicas"), "{err}");
}
