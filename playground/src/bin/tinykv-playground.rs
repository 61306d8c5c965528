//! `tinykv-playground`: a local cluster in one command (`make playground`).
//!
//! Starts 1 scheduler and 3 stores on loopback from prebuilt binaries, data under one folder
//! (default `./.playground`, reused on the next start), waits until the cluster serves,
//! prints the endpoints and a sample `tinykv-ctl` command, and stops everything cleanly on
//! Ctrl-C or SIGTERM (a second signal kills the processes at once).
//!
//! Exit status: 0 after a clean stop, 2 for bad flags, 1 for anything else.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tinykv_playground::{
    Binaries, ClusterConfig, ProcessCluster, DEFAULT_DATA_DIR, DEFAULT_PD_PORT, DEFAULT_STORE_PORT,
    LOCAL_STORE_CONFIG, MAX_STORES,
};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// How often running processes are checked for unexpected exits.
const WATCH_INTERVAL: Duration = Duration::from_millis(500);
/// A second signal forces an immediate kill only this long after the first.
const FORCE_AFTER: Duration = Duration::from_secs(1);

#[derive(Debug, Parser)]
#[command(
    name = "tinykv-playground",
    version,
    about = "Run a local TinyKV cluster: 1 scheduler and N stores on 127.0.0.1",
    after_help = "Data and logs stay in --dir; starting again reuses them (--clean starts fresh).\n\
                  Endpoints and PIDs are written to <dir>/cluster.json while the cluster runs."
)]
struct Args {
    /// Folder for all data, logs and cluster.json.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    dir: PathBuf,
    /// Number of stores.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=MAX_STORES as i64))]
    stores: u16,
    /// Scheduler (PD) port; 0 picks a free one.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_PD_PORT)]
    pd_port: u16,
    /// Port of store 0; store i listens on PORT + i. 0 picks free ports.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_STORE_PORT)]
    store_port: u16,
    /// Directory holding tinyscheduler-server and tinykv-server [default: next to this
    /// program, or $CARGO_TARGET_DIR/release].
    #[arg(long, value_name = "DIR", env = "TINYKV_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// A tinykv-server config file (TOML) for every store, instead of the playground's
    /// tuning (100 ms Raft ticks, 1 s scheduler heartbeats).
    #[arg(long, value_name = "FILE")]
    store_config: Option<PathBuf>,
    /// Delete the folder's previous data before starting.
    #[arg(long)]
    clean: bool,
    /// Log filter of the servers (their logs go to <dir>/logs).
    #[arg(long, value_name = "FILTER", default_value = "info")]
    log_filter: String,
    /// How long to wait for the cluster to become ready (e.g. 2m).
    #[arg(long, value_name = "DURATION", default_value = "3m", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// SIGINT or SIGTERM, installed before anything starts so an early Ctrl-C still stops the
/// processes through their owner.
struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tinykv-playground: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tinykv-playground: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut signals =
        Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let binaries = match &args.bin_dir {
        Some(dir) => Binaries::in_dir(dir).ok_or_else(|| {
            format!(
                "{} does not hold both tinyscheduler-server and tinykv-server",
                dir.display()
            )
        })?,
        None => Binaries::locate().map_err(|e| e.to_string())?,
    };
    let store_config = match &args.store_config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => Some(LOCAL_STORE_CONFIG.to_string()),
    };
    if args.clean {
        clean(&args.dir)?;
    }
    let config = ClusterConfig {
        store_config,
        data_dir: args.dir.clone(),
        stores: usize::from(args.stores),
        pd_port: args.pd_port,
        store_port_base: args.store_port,
        binaries: Some(binaries),
        log_filter: args.log_filter.clone(),
        start_timeout: args.timeout,
        ..ClusterConfig::default()
    };
    config.validate().map_err(|e| e.to_string())?;

    eprintln!(
        "Starting 1 scheduler and {} store{} (data in {}; logs in {}) ...",
        args.stores,
        if args.stores == 1 { "" } else { "s" },
        args.dir.display(),
        args.dir.join("logs").display()
    );
    // A signal during start drops the half-started cluster, which stops what was started.
    let mut cluster = tokio::select! {
        started = ProcessCluster::start(config) => started.map_err(|e| e.to_string())?,
        sig = signals.recv() => {
            eprintln!("{sig} received during start; stopping");
            return Ok(());
        }
    };
    print_ready(&cluster);

    let sig = loop {
        tokio::select! {
            sig = signals.recv() => break sig,
            () = tokio::time::sleep(WATCH_INTERVAL) => {
                for e in cluster.exited() {
                    eprintln!("warning: {e}");
                }
            }
        }
    };
    eprintln!("{sig} received; stopping the stores, then the scheduler (again to force) ...");
    let first = tokio::time::Instant::now();
    let stop = cluster.stop();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            stopped = &mut stop => {
                stopped.map_err(|e| e.to_string())?;
                break;
            }
            sig = signals.recv() => {
                // One keypress can arrive twice (a terminal's process group and a wrapper that
                // forwards signals); only a later, deliberate second signal forces.
                if first.elapsed() < FORCE_AFTER {
                    continue;
                }
                // Dropping the stop future kills the processes still running.
                return Err(format!("{sig} received again; processes were killed"));
            }
        }
    }
    eprintln!("Stopped. Data kept in {}.", args.dir.display());
    Ok(())
}

/// Removes a previous playground's data, refusing anything that does not look like one.
fn clean(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    let looks_like_ours = dir.join("pd").is_dir() || dir.join("logs").is_dir();
    let empty = std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !looks_like_ours && !empty {
        return Err(format!(
            "--clean refuses to delete {}: it does not look like a playground folder",
            dir.display()
        ));
    }
    if dir.join("cluster.json").exists() {
        return Err(format!(
            "{} has a cluster.json: a playground may be running there; stop it first",
            dir.display()
        ));
    }
    std::fs::remove_dir_all(dir).map_err(|e| format!("cannot delete {}: {e}", dir.display()))
}

/// Where `tinykv-ctl` is, for the sample command: next to this program if it was built there.
fn ctl_command() -> String {
    let next_to_us = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("tinykv-ctl")))
        .filter(|p| p.is_file());
    match next_to_us {
        Some(path) => {
            // Shorter when it is under the working directory.
            let cwd = std::env::current_dir().ok();
            let shown = cwd
                .and_then(|c| path.strip_prefix(c).ok().map(Path::to_path_buf))
                .unwrap_or(path);
            shown.display().to_string()
        }
        None => "tinykv-ctl".to_string(),
    }
}

fn print_ready(cluster: &ProcessCluster) {
    let m = cluster.manifest();
    let pid = |p: Option<u32>| p.map_or("-".to_string(), |p| p.to_string());
    println!();
    println!("TinyKV playground is ready.");
    println!();
    println!("  {:<16} {:<18} {:>8}  log", "process", "address", "pid");
    println!(
        "  {:<16} {:<18} {:>8}  {}",
        "scheduler (PD)",
        m.scheduler.addr,
        pid(m.scheduler.pid),
        m.scheduler.log.display()
    );
    for s in &m.stores {
        let name = match s.store_id {
            Some(id) => format!("store {} (id {id})", s.index),
            None => format!("store {}", s.index),
        };
        println!(
            "  {:<16} {:<18} {:>8}  {}",
            name,
            s.addr,
            pid(s.pid),
            s.log.display()
        );
    }
    let ctl = ctl_command();
    let pd_flag = if m.pd == format!("127.0.0.1:{DEFAULT_PD_PORT}") {
        String::new()
    } else {
        format!(" --pd {}", m.pd)
    };
    println!();
    println!("Try it from another terminal:");
    println!("  {ctl}{pd_flag} raw put a 1 && {ctl}{pd_flag} raw get a");
    println!("  {ctl}{pd_flag} cluster stores");
    println!();
    println!(
        "Endpoints and PIDs: {}. Press Ctrl-C to stop.",
        cluster.manifest_path().display()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("tinykv-playground").chain(argv.iter().copied()))
    }

    #[test]
    fn defaults_are_the_well_known_ports() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.dir, PathBuf::from(".playground"));
        assert_eq!((a.stores, a.pd_port, a.store_port), (3, 2379, 20160));
        assert_eq!(a.timeout, Duration::from_secs(180));
        assert!(!a.clean);
    }

    #[test]
    fn bad_flags_are_rejected() {
        assert!(parse(&["--stores", "0"]).is_err());
        assert!(parse(&["--stores", "1000"]).is_err());
        assert!(parse(&["--timeout", "soon"]).is_err());
        assert!(parse(&["--pd-port", "70000"]).is_err());
        let a = parse(&[
            "--stores",
            "5",
            "--pd-port",
            "0",
            "--timeout",
            "90s",
            "--store-config",
            "s.toml",
        ])
        .unwrap();
        assert_eq!((a.stores, a.pd_port), (5, 0));
        assert_eq!(a.timeout, Duration::from_secs(90));
        assert_eq!(a.store_config, Some(PathBuf::from("s.toml")));
    }

    #[test]
    fn clean_refuses_foreign_folders() {
        let dir = tempfile::tempdir().unwrap();
        let foreign = dir.path().join("photos");
        std::fs::create_dir_all(&foreign).unwrap();
        std::fs::write(foreign.join("cat.jpg"), b"meow").unwrap();
        assert!(clean(&foreign).unwrap_err().contains("does not look like"));
        assert!(foreign.join("cat.jpg").exists());

        let ours = dir.path().join("pg");
        std::fs::create_dir_all(ours.join("pd")).unwrap();
        std::fs::write(ours.join("cluster.json"), b"{}").unwrap();
        assert!(clean(&ours).unwrap_err().contains("running"));
        std::fs::remove_file(ours.join("cluster.json")).unwrap();
        clean(&ours).unwrap();
        assert!(!ours.exists());
        clean(&ours).unwrap();
    }
}
