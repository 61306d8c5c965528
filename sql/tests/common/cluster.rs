//! One real cluster per test process: 1 scheduler + 3 stores from the playground's
//! `ProcessCluster`, pre-split, alive until the process exits.
//!
//! Life cycle, and why:
//!
//! - The cluster is started on a dedicated thread that never returns. The stores and the
//!   scheduler are spawned with `die_with_parent` (Linux `PR_SET_PDEATHSIG`), which follows the
//!   *spawning thread*: started from a test's own thread, they would be killed as soon as that
//!   test finished. The dedicated thread lives as long as the process, so they die exactly
//!   when it exits — also when it crashes or is killed. A `static` is never dropped, so
//!   `ProcessCluster`'s `Drop` never runs; that signal is what stops them.
//! - Data and logs go to `$CARGO_TARGET_TMPDIR/tinykv-sql-clusters/<binary>-<pid>`: several
//!   runs (other engineers, other binaries) never share one. A binary's directories whose
//!   process is gone are removed when that binary starts again, so a failed run keeps its logs
//!   until then.
//! - Readiness is the launcher's (every store up, every region led and fully replicated, a raw
//!   round trip), then the split plan is applied and readiness is checked again.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tinykv_playground::{Binaries, ClusterConfig, ProcessCluster};

use super::split;

/// How long the split plan may take to show in the scheduler, on a loaded 2-core machine.
const SPLIT_TIMEOUT: Duration = Duration::from_secs(120);

/// A cluster serving this process.
pub struct Running {
    /// The scheduler endpoint, `127.0.0.1:<port>`.
    pub pd: String,
    /// Data and logs (`logs/`), kept after the process exits.
    pub data_dir: PathBuf,
    /// Regions right after the pre-split.
    pub regions: usize,
    /// How long starting the processes until ready took.
    pub start_time: Duration,
    /// How long the pre-split took, until the cluster was ready again.
    pub split_time: Duration,
}

/// Starts the process's cluster, split at `split_keys` (transactional user keys), and returns
/// once it serves; a failure names the step and where the logs are.
pub fn start(split_keys: Vec<Vec<u8>>) -> Result<Running, String> {
    let binaries = Binaries::build_with_cargo(!cfg!(debug_assertions))
        .map_err(|e| format!("building the servers: {e}"))?;
    let data_dir = fresh_data_dir()?;
    let (ready_tx, ready_rx) = mpsc::channel();
    let dir = data_dir.clone();
    std::thread::Builder::new()
        .name("sql-test-cluster".into())
        .spawn(move || own_cluster(binaries, dir, split_keys, ready_tx))
        .map_err(|e| format!("cannot start the cluster thread: {e}"))?;
    let running = ready_rx
        .recv()
        .map_err(|_| "the cluster thread died while starting the cluster".to_string())?
        .map_err(|e| format!("{e} (data and logs: {})", data_dir.display()))?;
    eprintln!(
        "sql tests: cluster at {} ready with {} regions (started in {:.1?}, split in {:.1?}; \
         data and logs: {})",
        running.pd,
        running.regions,
        running.start_time,
        running.split_time,
        running.data_dir.display()
    );
    Ok(running)
}

/// The body of the cluster thread: start, split, report, then hold the cluster forever.
fn own_cluster(
    binaries: Binaries,
    data_dir: PathBuf,
    split_keys: Vec<Vec<u8>>,
    ready: mpsc::Sender<Result<Running, String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot build the cluster runtime: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let config = ClusterConfig {
            data_dir: data_dir.clone(),
            binaries: Some(binaries),
            ..ClusterConfig::new_test_config()
        };
        let started = async {
            let begin = Instant::now();
            let mut cluster = ProcessCluster::start(config)
                .await
                .map_err(|e| format!("starting the cluster: {e}"))?;
            let start_time = begin.elapsed();
            let pd = cluster.pd_endpoint();
            let regions = split::pre_split(&cluster.pd_endpoints(), &split_keys, SPLIT_TIMEOUT)
                .await
                .map_err(|e| format!("pre-splitting the cluster: {e}"))?;
            cluster
                .wait_ready()
                .await
                .map_err(|e| format!("waiting for the split cluster: {e}"))?;
            Ok::<_, String>((
                cluster,
                Running {
                    pd,
                    data_dir,
                    regions,
                    start_time,
                    split_time: begin.elapsed() - start_time,
                },
            ))
        };
        match started.await {
            Ok((cluster, running)) => {
                let _ = ready.send(Ok(running));
                // Keep the processes (and this thread, which they die with) until exit.
                std::future::pending::<()>().await;
                drop(cluster);
            }
            // Dropping a half-started cluster stops what was started.
            Err(e) => {
                let _ = ready.send(Err(e));
            }
        }
    });
}

/// A new, empty directory for this process's cluster. Directories an earlier run of the same
/// test binary left behind are removed first; those of other binaries stay, so after a `make
/// sql` every binary's last cluster (and its logs) can still be inspected.
fn fresh_data_dir() -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tinykv-sql-clusters");
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    let binary = binary_name();
    remove_orphans(&root, &binary);
    let dir = root.join(format!("{binary}-{}", std::process::id()));
    // A leftover of an earlier process with the same pid: that process is gone (we are it).
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(dir)
}

/// The test binary's name without Cargo's hash suffix (`gluesql_suite-1a2b...` → `gluesql_suite`).
fn binary_name() -> String {
    let stem = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "sql-tests".into());
    match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name.to_owned()
        }
        _ => stem,
    }
}

/// Removes `<binary>-<pid>` directories whose process is gone. Best effort: an error only
/// leaves a directory behind.
fn remove_orphans(root: &Path, binary: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(binary)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !process_exists(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks that the pid exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    // EPERM: it exists, owned by someone else.
    alive || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
