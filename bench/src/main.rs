//! `tinykv-bench`: run a workload against TinyKV or etcd, or compare the two side by side.
//!
//! Exit status: 0 on success, 2 for an unusable configuration, 1 when the benchmark failed
//! (including a run with more failed operations than `--max-error-ratio` allows).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tinykv_bench::backend::Backend;
use tinykv_bench::compare;
use tinykv_bench::config::{
    CompareConfig, Distribution, EtcdConnect, EtcdRead, KeyOrder, Preset, RunConfig, Stop, System,
    TargetConfig, TargetKind, WorkloadConfig,
};
use tinykv_bench::cpu::CpuProbe;
use tinykv_bench::report::{self, table, BenchResult, Comparison};
use tinykv_bench::runner;
use tinykv_bench::workload::Workload;
use tinykv_bench::Error;

#[derive(Debug, Parser)]
#[command(
    name = "tinykv-bench",
    version,
    about = "YCSB-style benchmarks for TinyKV and etcd, and the side-by-side comparison."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// No progress bar (it is also hidden when stderr is not a terminal).
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load the records, then run the workload and print latencies per operation.
    Run(RunArgs),
    /// Only load the records.
    Load(LoadArgs),
    /// Start fresh etcd and TinyKV clusters in turn and compare them on the same workloads.
    Compare(CompareArgs),
    /// Print the table of a saved comparison and redraw its chart.
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct TargetArgs {
    /// The system and API to benchmark.
    #[arg(long, value_enum, default_value = "tinykv-raw")]
    target: TargetKind,
    /// Scheduler (PD) endpoints, host:port, comma-separated (TinyKV targets).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pd: Vec<String>,
    /// etcd endpoints, host:port, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    etcd: Vec<String>,
    /// How etcd serves reads.
    #[arg(long, value_enum, default_value = "linearizable")]
    etcd_read: EtcdRead,
    /// Talk to the etcd leader only, or to all given endpoints.
    #[arg(long, value_enum, default_value = "leader")]
    etcd_connect: EtcdConnect,
}

impl TargetArgs {
    fn config(&self) -> TargetConfig {
        TargetConfig {
            kind: self.target,
            pd_endpoints: self.pd.clone(),
            etcd_endpoints: self.etcd.clone(),
            etcd_read: self.etcd_read,
            etcd_connect: self.etcd_connect,
        }
    }
}

#[derive(Debug, Args)]
struct WorkloadArgs {
    /// YCSB core workload (a-f), or `put` / `get` (100 % updates / reads, uniform).
    #[arg(long, short = 'w', value_enum, default_value = "a")]
    workload: Preset,
    /// Records in the data set.
    #[arg(long)]
    records: Option<u64>,
    /// Bytes per key (at least 12).
    #[arg(long)]
    key_size: Option<usize>,
    /// Bytes per value.
    #[arg(long)]
    value_size: Option<usize>,
    /// Override the preset's read weight.
    #[arg(long)]
    read_proportion: Option<f64>,
    /// Override the preset's update weight.
    #[arg(long)]
    update_proportion: Option<f64>,
    /// Override the preset's insert weight.
    #[arg(long)]
    insert_proportion: Option<f64>,
    /// Override the preset's scan weight.
    #[arg(long)]
    scan_proportion: Option<f64>,
    /// Override the preset's read-modify-write weight.
    #[arg(long)]
    read_modify_write_proportion: Option<f64>,
    /// Override the preset's key choice.
    #[arg(long, value_enum)]
    distribution: Option<Distribution>,
    /// Zipfian skew.
    #[arg(long)]
    zipf_theta: Option<f64>,
    /// Longest scan, records.
    #[arg(long)]
    max_scan_length: Option<u32>,
    /// Key order of record ids.
    #[arg(long, value_enum)]
    key_order: Option<KeyOrder>,
}

impl WorkloadArgs {
    fn config(&self) -> WorkloadConfig {
        let mut w = self.workload.workload();
        macro_rules! set {
            ($($field:ident => $target:ident),* $(,)?) => {
                $(if let Some(v) = self.$field { w.$target = v; })*
            };
        }
        set!(
            records => record_count,
            key_size => key_size,
            value_size => value_size,
            read_proportion => read_proportion,
            update_proportion => update_proportion,
            insert_proportion => insert_proportion,
            scan_proportion => scan_proportion,
            read_modify_write_proportion => read_modify_write_proportion,
            distribution => distribution,
            zipf_theta => zipf_theta,
            max_scan_length => max_scan_length,
            key_order => key_order,
        );
        w
    }
}

#[derive(Debug, Args)]
struct DriveArgs {
    /// Closed-loop clients.
    #[arg(long, short = 'c', default_value_t = 64)]
    concurrency: usize,
    /// Independent client instances (connections) shared round-robin by the clients.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Measured run time (e.g. 30s, 2m).
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "operations")]
    duration: Option<Duration>,
    /// Measured operations, instead of a duration.
    #[arg(long)]
    operations: Option<u64>,
    /// Unmeasured warm-up before measuring.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    warmup: Duration,
    /// Seed of the generator.
    #[arg(long)]
    seed: Option<u64>,
    /// Records per load request (at most 128).
    #[arg(long, default_value_t = 100)]
    load_batch_size: usize,
    /// Retries of a transaction after a write conflict or lock.
    #[arg(long, default_value_t = 3)]
    txn_retries: u32,
    /// Fraction of failed operations above which the run fails.
    #[arg(long, default_value_t = 0.01)]
    max_error_ratio: f64,
    /// Per-request deadline.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    request_timeout: Duration,
}

impl DriveArgs {
    fn config(&self) -> RunConfig {
        let defaults = RunConfig::default();
        RunConfig {
            concurrency: self.concurrency,
            connections: self.connections,
            stop: match (self.operations, self.duration) {
                (Some(n), _) => Stop::Operations(n),
                (None, Some(d)) => Stop::Duration(d),
                (None, None) => defaults.stop,
            },
            warmup: self.warmup,
            seed: self.seed.unwrap_or(defaults.seed),
            load_batch_size: self.load_batch_size,
            txn_retries: self.txn_retries,
            max_error_ratio: self.max_error_ratio,
            request_timeout: self.request_timeout,
        }
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    drive: DriveArgs,
    /// Skip the load phase (the records are already there).
    #[arg(long)]
    skip_load: bool,
    /// A server process whose CPU is accounted (repeat for each; sum over all of them).
    #[arg(long = "server-pid", value_name = "PID")]
    server_pids: Vec<u32>,
    /// Write the result as JSON here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Name of the run in the output.
    #[arg(long)]
    id: Option<String>,
}

#[derive(Debug, Args)]
struct LoadArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    workload: WorkloadArgs,
    #[command(flatten)]
    drive: DriveArgs,
}

#[derive(Debug, Args)]
struct CompareArgs {
    /// Systems to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "etcd,tinykv")]
    systems: Vec<System>,
    /// Measured time per run.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    duration: Duration,
    /// Unmeasured warm-up per run.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    warmup: Duration,
    /// Records loaded before each run.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Bytes per key.
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    value_size: usize,
    /// Client instances (connections) per run.
    #[arg(long, default_value_t = 1)]
    connections: usize,
    /// Talk to the etcd leader only, or to all members.
    #[arg(long, value_enum, default_value = "leader")]
    etcd_connect: EtcdConnect,
    /// Folder for the JSON, Markdown and SVG results.
    #[arg(long, default_value = "results")]
    out_dir: PathBuf,
    /// Folder for cluster data and logs [default: <tmp>/tinykv-bench-compare].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep each run's data directories and logs.
    #[arg(long)]
    keep_data: bool,
    /// The etcd executable.
    #[arg(long, default_value = "etcd")]
    etcd_bin: PathBuf,
    /// The tinykv-server executable.
    #[arg(long, default_value = "tinykv-server")]
    tinykv_server: PathBuf,
    /// The tinyscheduler-server executable.
    #[arg(long, default_value = "tinyscheduler-server")]
    scheduler_bin: PathBuf,
    /// First loopback port used (etcd: +0..+5, TinyKV: +10..+13); moves up past busy ports.
    #[arg(long, default_value_t = 27490)]
    base_port: u16,
    /// How long a cluster may take to become ready.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "90s")]
    ready_timeout: Duration,
}

impl CompareArgs {
    fn config(&self) -> CompareConfig {
        let defaults = CompareConfig::default();
        CompareConfig {
            systems: self.systems.clone(),
            duration: self.duration,
            warmup: self.warmup,
            record_count: self.records,
            key_size: self.key_size,
            value_size: self.value_size,
            connections: self.connections,
            etcd_connect: self.etcd_connect,
            out_dir: self.out_dir.clone(),
            work_dir: self.work_dir.clone().unwrap_or(defaults.work_dir),
            keep_data: self.keep_data,
            etcd_bin: self.etcd_bin.clone(),
            tinykv_server_bin: self.tinykv_server.clone(),
            scheduler_bin: self.scheduler_bin.clone(),
            base_port: self.base_port,
            ready_timeout: self.ready_timeout,
            replicas: defaults.replicas,
        }
    }
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// A compare-*.json file.
    file: PathBuf,
    /// Where to write the chart [default: next to the file, .svg].
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tinykv-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let progress = !cli.no_progress;
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = execute(cli.command, progress) => r,
            _ = tokio::signal::ctrl_c() => Err(Error::Interrupted),
        }
    });
    // Dropping the runtime drops any cluster still running, which kills its processes.
    drop(runtime);
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tinykv-bench: {e}");
            if matches!(e, Error::Config(_)) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

async fn execute(command: Command, progress: bool) -> tinykv_bench::Result<()> {
    match command {
        Command::Run(args) => run(args, progress).await,
        Command::Load(args) => {
            let target = args.target.config();
            let drive = args.drive.config();
            drive.validate()?;
            let workload = Workload::new(args.workload.config())?;
            let backends = Backend::connect_all(&target, &drive).await?;
            let load = runner::load(&backends, &workload, &drive, progress).await?;
            println!(
                "loaded {} records in {:.1} s ({} records/s)",
                load.records,
                load.elapsed_secs,
                table::thousands(load.records_per_sec)
            );
            Ok(())
        }
        Command::Compare(args) => {
            let cfg = args.config();
            cfg.validate()?;
            eprintln!(
                "comparing {:?}: about {} min",
                cfg.systems,
                compare::estimated_duration(&cfg).as_secs().div_ceil(60)
            );
            compare::compare(&cfg, progress).await.map(drop)
        }
        Command::Report(args) => {
            let cmp = Comparison::read_json(&args.file)?;
            print!("{}", table::render_comparison(&cmp));
            let svg = args.svg.unwrap_or_else(|| args.file.with_extension("svg"));
            report::chart::write_svg(&cmp, &svg)?;
            println!("chart: {}", svg.display());
            Ok(())
        }
    }
}

async fn run(args: RunArgs, progress: bool) -> tinykv_bench::Result<()> {
    let target = args.target.config();
    let workload_cfg = args.workload.config();
    let drive = args.drive.config();
    target.validate()?;
    drive.validate()?;
    let workload = Workload::new(workload_cfg.clone())?;
    let servers = args
        .server_pids
        .iter()
        .map(|&pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            (format!("{} {pid}", comm.trim()), pid)
        })
        .collect();
    let probe = CpuProbe::new(servers)?;
    let backends = Backend::connect_all(&target, &drive).await?;
    let load = if args.skip_load {
        None
    } else {
        let load = runner::load(&backends, &workload, &drive, progress).await?;
        eprintln!(
            "loaded {} records in {:.1} s",
            load.records, load.elapsed_secs
        );
        Some(load)
    };
    let report = runner::run(&backends, &workload, &drive, &probe, progress).await?;
    let result = BenchResult {
        id: args.id.unwrap_or_else(|| {
            format!("{}/{:?}", target.kind.system(), args.workload.workload).to_lowercase()
        }),
        system: target.kind.system().into(),
        target,
        workload: workload_cfg,
        run: drive.clone(),
        load,
        result: report,
        finished_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    print!("{}", table::render_run(&result));
    if let Some(path) = &args.json {
        report::write_json(path, &result)?;
        println!("result: {}", path.display());
    }
    result.result.check_errors(drive.max_error_ratio)
}
