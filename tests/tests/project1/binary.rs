//! The `tinykv-server` binary end to end: flags, serving, SIGTERM, restart on the same data.
//!
//! The binary belongs to another package, which Cargo does not build for this test target, so it
//! is built here once with the same Cargo (a no-op when it is up to date). Set
//! `TINYKV_SERVER_BIN` to test a binary built elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use proto::kvrpcpb::*;

use crate::harness::*;

/// Generous: on a loaded 2-core machine a debug build opening RocksDB can take a while.
const DEADLINE: Duration = Duration::from_secs(60);

fn server_binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(path) = std::env::var_os("TINYKV_SERVER_BIN") {
            return PathBuf::from(path);
        }
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "-p",
            "kvserver",
            "--bin",
            "tinykv-server",
        ])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit());
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let out = cmd.output().expect("run cargo build for tinykv-server");
        assert!(out.status.success(), "cargo build of tinykv-server failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|msg| {
                msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "tinykv-server"
            })
            .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
            .expect("cargo reported no tinykv-server executable")
    })
}

/// A free loopback port (the kernel picks it; the brief window before the server binds it is the
/// usual, accepted race of this technique).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `tinykv-server` child process whose stderr goes to a file, shown when a check fails.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(args: &[&str], log: PathBuf) -> Process {
        let stderr = std::fs::File::create(&log).unwrap();
        let child = Command::new(server_binary())
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn tinykv-server");
        Process { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls until the process exits, or fails the test at the deadline.
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "tinykv-server did not exit; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls with a real client until the server answers, failing fast if the process died.
    async fn wait_ready(&mut self, addr: &str) -> Client {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "tinykv-server exited early with {status}; log:\n{}",
                    self.log()
                );
            }
            if let Ok(c) =
                proto::tikvpb::tikv_client::TikvClient::connect(format!("http://{addr}")).await
            {
                return c;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "tinykv-server never answered; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and expects a clean exit.
    fn terminate(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our own child.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.wait_exit();
        assert!(
            status.success(),
            "exit after SIGTERM: {status}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A failed assertion must not leave a server running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_stops_on_sigterm_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();

    let addr = format!("127.0.0.1:{}", free_port());
    let mut p = Process::spawn(
        &["--standalone", "--addr", &addr, "--data-dir", data],
        dir.path().join("run1.log"),
    );
    let mut c = p.wait_ready(&addr).await;
    put(&mut c, "", b"durable", b"yes").await;
    let r = c
        .raw_compare_and_swap(RawCasRequest {
            key: b"swapped".to_vec(),
            value: b"1".to_vec(),
            previous_not_exist: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.succeed, "{r:?}");
    drop(c);
    p.terminate();
    let log = p.log();
    assert!(
        log.contains("listening") && log.contains("SIGTERM"),
        "log:\n{log}"
    );

    let addr = format!("127.0.0.1:{}", free_port());
    let mut p = Process::spawn(
        &["--standalone", "--addr", &addr, "--data-dir", data],
        dir.path().join("run2.log"),
    );
    let mut c = p.wait_ready(&addr).await;
    assert_eq!(get(&mut c, "", b"durable").await, Some(b"yes".to_vec()));
    assert_eq!(get(&mut c, "", b"swapped").await, Some(b"1".to_vec()));
    p.terminate();
}

#[test]
fn the_binary_explains_that_cluster_mode_needs_a_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut p = Process::spawn(
        &["--data-dir", data.to_str().unwrap()],
        dir.path().join("err.log"),
    );
    let status = p.wait_exit();
    assert_eq!(status.code(), Some(2), "log:\n{}", p.log());
    let log = p.log();
    assert!(
        log.contains("--scheduler") && log.contains("--standalone"),
        "log:\n{log}"
    );
    // Nothing was created for a configuration that was refused.
    assert!(!data.exists());

    let args = [
        "--standalone",
        "--max-scan-limit",
        "0",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let mut p = Process::spawn(&args, dir.path().join("err2.log"));
    assert_eq!(p.wait_exit().code(), Some(2));
    assert!(p.log().contains("max-scan-limit"), "log:\n{}", p.log());
    assert!(!data.exists());
}
