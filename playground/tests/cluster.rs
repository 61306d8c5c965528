//! `ProcessCluster` and the `tinykv-playground` binary with real server processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tinykv_playground::{Binaries, ClusterConfig, Error, Manifest, ProcessCluster, MAX_STORES};

/// How long a process or a cluster may take to do something on a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(180);

/// The server binaries, built once (a no-op when up to date).
fn binaries() -> &'static Binaries {
    static BINS: OnceLock<Binaries> = OnceLock::new();
    BINS.get_or_init(|| Binaries::build_with_cargo(!cfg!(debug_assertions)).expect("build servers"))
}

/// Tests that start servers take turns: two clusters at once on a 2-core machine only make
/// both slower and flakier.
static SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn alive(pid: u32) -> bool {
    // Zombies are dead for our purpose; /proc/<pid>/stat's third field is the state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn config(dir: &Path) -> ClusterConfig {
    ClusterConfig {
        data_dir: dir.to_path_buf(),
        binaries: Some(binaries().clone()),
        ..ClusterConfig::new_test_config()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_folders_and_ports_are_refused_before_anything_starts() {
    // Fake binaries: nothing may be spawned, so they are never run.
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake-server");
    std::fs::write(&fake, b"").unwrap();
    let fakes = Binaries {
        scheduler: fake.clone(),
        server: fake,
    };

    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let busy_port = ClusterConfig {
        data_dir: dir.path().join("a"),
        binaries: Some(fakes.clone()),
        pd_port: port,
        ..ClusterConfig::new_test_config()
    };
    let err = ProcessCluster::start(busy_port)
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(err, Error::PortInUse { port: p, .. } if p == port),
        "{err}"
    );

    let missing = ClusterConfig {
        data_dir: dir.path().join("b"),
        binaries: Some(Binaries {
            scheduler: dir.path().join("nope"),
            server: dir.path().join("nope"),
        }),
        ..ClusterConfig::new_test_config()
    };
    let err = ProcessCluster::start(missing).await.err().expect("refused");
    assert!(matches!(err, Error::BinaryNotFound { .. }), "{err}");
    let err = ProcessCluster::start(ClusterConfig::new_test_config())
        .await
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_stop_restart_and_join_and_drop_leaves_nothing_running() {
    let _turn = SERVERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("c");
    // One replica per region: the test is about processes, not replication.
    let cfg = ClusterConfig {
        stores: 2,
        max_replicas: Some(1),
        ..config(&root)
    };
    let mut cluster = ProcessCluster::start(cfg.clone()).await.expect("start");
    assert_eq!(cluster.store_count(), 2);

    // A second cluster on the same folder is refused while this one runs.
    let err = ProcessCluster::start(cfg).await.err().expect("refused");
    assert!(matches!(err, Error::DirInUse { .. }), "{err}");

    // cluster.json describes the running processes.
    let m = Manifest::read_from(&cluster.manifest_path()).unwrap();
    assert_eq!(m, cluster.manifest());
    assert_eq!(m.pd, cluster.pd_endpoint());
    assert_eq!(m.stores.len(), 2);
    assert!(m
        .stores
        .iter()
        .all(|s| s.store_id.is_some() && s.pid.is_some()));
    assert_eq!(m.pids().len(), 3);
    assert_eq!(cluster.pids().len(), 3);
    assert!(root.join("pd").is_dir() && root.join("store-1").is_dir());
    assert!(cluster.store_log(1).unwrap().starts_with(root.join("logs")));

    // Graceful stop: exit status 0, and the pid is gone.
    let pid = cluster.store_pid(1).unwrap().unwrap();
    let id = cluster.store_id(1).unwrap();
    cluster.stop_store(1).await.expect("clean exit on SIGTERM");
    assert!(!alive(pid));
    assert_eq!(cluster.store_pid(1).unwrap(), None);
    assert_eq!(
        Manifest::read_from(&cluster.manifest_path())
            .unwrap()
            .stores[1]
            .pid,
        None
    );
    assert!(matches!(cluster.kill_store(1), Err(Error::NotRunning(_))));
    assert!(matches!(
        cluster.restart_store(0).await,
        Err(Error::Running(_))
    ));
    assert!(matches!(
        cluster.stop_store(7).await,
        Err(Error::NoSuchStore { index: 7, count: 2 })
    ));

    // Restart keeps the identity and the address.
    let addr = cluster.store_addr(1).unwrap();
    cluster.restart_store(1).await.expect("restart");
    assert_eq!(cluster.store_id(1).unwrap(), id);
    assert_eq!(cluster.store_addr(1).unwrap(), addr);

    // A new store joins and registers.
    let new = cluster.add_store().await.expect("add");
    assert_eq!(new, 2);
    let new_id = cluster.store_id(new).unwrap().expect("registered");
    assert_eq!(cluster.store_index(new_id), Some(new));
    cluster.wait_ready().await.expect("ready with three stores");

    // Dropping the cluster stops every process and removes cluster.json.
    let pids: Vec<u32> = cluster.pids().into_iter().map(|(_, p)| p).collect();
    assert_eq!(pids.len(), 4);
    let manifest = cluster.manifest_path();
    drop(cluster);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} survived the drop");
    }
    assert!(!manifest.exists());
}

/// Lines the playground prints on stdout, read on a thread.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Ports for a playground that keeps them across restarts: the scheduler's, and a base with
/// three free ports for the stores (the scheduler's port stays outside the range the config
/// reserves for stores).
fn fixed_ports() -> (u16, u16) {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    for _ in 0..100 {
        let base = free();
        if u32::from(base) + MAX_STORES as u32 > u32::from(u16::MAX) {
            continue;
        }
        if !(base..base + 3).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok()) {
            continue;
        }
        let reserved = base..base + MAX_STORES as u16;
        if let Some(pd) = (0..100).map(|_| free()).find(|p| !reserved.contains(p)) {
            return (pd, base);
        }
    }
    panic!("no free ports");
}

struct Playground {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Playground {
    fn start(dir: &Path, pd_port: u16, store_port: u16) -> Playground {
        let bin_dir = binaries().server.parent().unwrap();
        let stderr = dir.with_extension(format!("stderr-{}", std::process::id()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_tinykv-playground"))
            .arg(format!("--dir={}", dir.display()))
            .arg(format!("--pd-port={pd_port}"))
            .arg(format!("--store-port={store_port}"))
            .arg(format!("--bin-dir={}", bin_dir.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("spawn tinykv-playground");
        let lines = stdout_lines(&mut child);
        let mut p = Playground {
            child,
            lines,
            stderr,
        };
        p.wait_for_line("TinyKV playground is ready.");
        p
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait_for_line(&mut self, wanted: &str) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        let mut seen = Vec::new();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "playground exited with {status}; stderr:\n{}",
                    self.stderr()
                );
            }
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) if line.contains(wanted) => return seen,
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!("playground closed stdout; stderr:\n{}", self.stderr())
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {wanted:?}; stderr:\n{}",
                self.stderr()
            );
        }
    }

    /// Sends `sig` and expects a clean exit.
    fn stop_with(mut self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own, unreaped child.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "playground did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(status.success(), "{status}; stderr:\n{}", self.stderr());
    }
}

impl Drop for Playground {
    fn drop(&mut self) {
        // Only reached on failure: make sure the servers go too (SIGTERM lets it stop them).
        if self.child.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on our own, unreaped child.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
            }
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_playground_serves_stops_on_signals_and_keeps_its_data() {
    let _turn = SERVERS.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pg");
    let (pd_port, store_port) = fixed_ports();

    let pg = Playground::start(&root, pd_port, store_port);
    let manifest = Manifest::read_from(&root.join("cluster.json")).expect("cluster.json");
    assert_eq!(manifest.pd, format!("127.0.0.1:{pd_port}"));
    assert_eq!(manifest.stores.len(), 3);
    assert_eq!(
        manifest.stores[2].addr,
        format!("127.0.0.1:{}", store_port + 2)
    );
    let pids = manifest.pids();
    assert_eq!(pids.len(), 4);

    let raw = client::RawClient::new(vec![manifest.pd.clone()])
        .await
        .unwrap();
    raw.put("a", "1").await.unwrap();
    assert_eq!(raw.get("a").await.unwrap(), Some(b"1".to_vec()));
    drop(raw);

    pg.stop_with(libc::SIGTERM);
    for pid in pids {
        assert!(!alive(pid), "pid {pid} outlived the playground");
    }
    assert!(!root.join("cluster.json").exists());

    // Same folder, same ports: the same cluster, with its data.
    let pg = Playground::start(&root, pd_port, store_port);
    let raw = client::RawClient::new(vec![format!("127.0.0.1:{pd_port}")])
        .await
        .unwrap();
    assert_eq!(raw.get("a").await.unwrap(), Some(b"1".to_vec()));
    drop(raw);
    pg.stop_with(libc::SIGINT);
}
