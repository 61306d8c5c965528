//! `tinykv-ctl` as a user runs it: the real binary against a real scheduler process (and, in
//! `cluster.rs`, a whole process cluster). Checks output, JSON and exit codes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value as Json;
use tinykv_playground::Binaries;

mod cluster;

/// Generous: a debug scheduler opening RocksDB on a loaded 2-core machine can be slow.
const DEADLINE: Duration = Duration::from_secs(120);

/// The server binaries, built once per test run (a no-op when up to date).
fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| Binaries::build_with_cargo(!cfg!(debug_assertions)).expect("build servers"))
}

/// Runs `tinykv-ctl` with `args` and the given stdin.
fn ctl_with_stdin(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tinykv-ctl"))
        .args(args)
        .env_remove("TINYKV_PD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tinykv-ctl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn ctl(args: &[&str]) -> Output {
    ctl_with_stdin(args, "")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Json {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(out), stderr(out)))
}

#[track_caller]
fn assert_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        stdout(out),
        stderr(out)
    );
}

/// An endpoint nobody listens on.
fn dead_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("127.0.0.1:{port}")
}

/// A lone scheduler process (no stores: the cluster is not bootstrapped).
struct Scheduler {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Scheduler {
    fn start() -> Scheduler {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = dead_endpoint();
        let log = std::fs::File::create(dir.path().join("pd.log")).unwrap();
        let child = Command::new(&binaries().scheduler)
            .arg(format!("--listen-addr={endpoint}"))
            .arg(format!("--data-dir={}", dir.path().join("pd").display()))
            .arg("--log-level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn tinyscheduler-server");
        let mut s = Scheduler {
            child,
            endpoint,
            _dir: dir,
        };
        s.wait_ready();
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("pd.log")).unwrap_or_default()
    }

    /// Polls `cluster members` until it answers.
    fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("scheduler exited with {status}:\n{}", self.log());
            }
            if ctl(&["--pd", &self.endpoint, "cluster", "members"])
                .status
                .success()
            {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "scheduler not ready:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn tso_and_members_against_a_real_scheduler() {
    let pd = Scheduler::start();
    let pd_flag = ["--pd", pd.endpoint.as_str()];

    let first = ctl(&[&pd_flag[..], &["--json", "tso"]].concat());
    assert_code(&first, 0);
    let second = ctl(&[&pd_flag[..], &["tso", "--json"]].concat());
    let (a, b) = (json(&first), json(&second));
    assert!(
        b["tso"].as_u64().unwrap() > a["tso"].as_u64().unwrap(),
        "{a} then {b}"
    );
    assert_eq!(
        a["tso"].as_u64().unwrap() >> 18,
        a["physical"].as_u64().unwrap()
    );

    let table = ctl(&[&pd_flag[..], &["tso"]].concat());
    assert_code(&table, 0);
    assert!(stdout(&table).contains("| TSO "), "{}", stdout(&table));

    let members = ctl(&[&pd_flag[..], &["cluster", "members", "--json"]].concat());
    assert_code(&members, 0);
    let m = json(&members);
    let leader = m["leader"].as_u64().expect("a leader");
    let me = &m["members"][0];
    assert_eq!(me["member_id"].as_u64(), Some(leader));
    assert_eq!(me["leader"], Json::Bool(true));
    assert_eq!(
        me["client_urls"][0].as_str(),
        Some(format!("http://{}", pd.endpoint).as_str())
    );
}

#[test]
fn an_unbootstrapped_cluster_is_a_clear_failure() {
    let pd = Scheduler::start();
    let out = ctl(&["--pd", &pd.endpoint, "cluster", "stores"]);
    assert_code(&out, 1);
    assert!(stderr(&out).contains("NotBootstrapped"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn an_unreachable_scheduler_fails_quickly_with_a_message() {
    let dead = dead_endpoint();
    let start = Instant::now();
    let out = ctl(&["--pd", &dead, "raw", "get", "a"]);
    assert_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("tinykv-ctl:") && err.contains(&dead), "{err}");
    // Not a timing assertion on speed: only that the tool gives up instead of hanging.
    assert!(start.elapsed() < DEADLINE, "took {:?}", start.elapsed());
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    // The scheduler is unreachable: exit status 2 (not 1) proves nothing was attempted.
    let dead = dead_endpoint();
    let cases: &[(&[&str], &str, &str)] = &[
        (&["raw", "put", "a"], "", "VALUE"),
        (&["--hex", "raw", "get", "zz"], "", "not hex"),
        (&["raw", "scan", "--limit", "0"], "", "limit"),
        (
            &["txn", "exec"],
            "put a 1\nfrobnicate\ncommit\n",
            "line 2: unknown statement",
        ),
        (
            &["txn", "exec"],
            "put a 1\n",
            "line 1: this write is never committed",
        ),
        (
            &["txn", "exec"],
            "commit\n",
            "line 1: commit without a transaction",
        ),
    ];
    for (args, stdin, needle) in cases {
        let out = ctl_with_stdin(&[&["--pd", dead.as_str()], *args].concat(), stdin);
        assert_code(&out, 2);
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn a_script_file_that_does_not_exist_is_named() {
    let missing = Path::new("/nonexistent/script.txn");
    let out = ctl(&[
        "--pd",
        &dead_endpoint(),
        "txn",
        "exec",
        missing.to_str().unwrap(),
    ]);
    assert_code(&out, 1);
    assert!(
        stderr(&out).contains("/nonexistent/script.txn"),
        "{}",
        stderr(&out)
    );
}

/// Writes `text` to a file in `dir` and returns its path.
fn script_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("script.txn");
    std::fs::write(&path, text).unwrap();
    path
}
