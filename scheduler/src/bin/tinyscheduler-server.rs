//! `tinyscheduler-server`: runs the scheduler until SIGINT or SIGTERM.
//!
//! Settings come from defaults, then the TOML file given with `--config`, then flags (every
//! config key has a flag of the same kebab-case name).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use scheduler::{Config, SchedulerServer};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "tinyscheduler-server",
    version,
    about = "A PD-compatible placement driver"
)]
struct Args {
    /// TOML config file; flags override its values.
    #[arg(long, short = 'C')]
    config: Option<PathBuf>,
    /// Log filter (`info`, `scheduler=debug`, ...).
    #[arg(long, alias = "log-filter", env = "RUST_LOG", default_value = "info")]
    log_level: String,
    /// Member name reported by GetMembers.
    #[arg(long)]
    name: Option<String>,
    /// host:port to serve gRPC and the HTTP status view on [default: 127.0.0.1:2379].
    #[arg(long, alias = "addr")]
    listen_addr: Option<String>,
    /// URL clients are told to use [default: http://<listen address>].
    #[arg(long)]
    advertise_client_url: Option<String>,
    /// Metadata directory [default: default.pd].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// How far ahead the TSO bound is persisted (e.g. 3s).
    #[arg(long, value_parser = humantime::parse_duration)]
    tso_save_interval: Option<Duration>,
    /// Ids reserved per persisted batch.
    #[arg(long)]
    id_batch_size: Option<u64>,
    /// Largest split_count an AskBatchSplit may ask for.
    #[arg(long)]
    max_batch_split_count: Option<u32>,
    /// Replicas per region.
    #[arg(long)]
    max_replicas: Option<usize>,
    /// Heartbeat silence after which a store is down (e.g. 30m).
    #[arg(long, value_parser = humantime::parse_duration)]
    max_store_down_time: Option<Duration>,
    /// How often balance schedulers run (e.g. 1s).
    #[arg(long, value_parser = humantime::parse_duration)]
    schedule_interval: Option<Duration>,
    /// How often the replica checker walks all regions (e.g. 500ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    patrol_interval: Option<Duration>,
    /// Leader-transfer operators running at once.
    #[arg(long)]
    leader_schedule_limit: Option<usize>,
    /// Move-peer operators running at once.
    #[arg(long)]
    region_schedule_limit: Option<usize>,
    /// Replica-repair operators running at once.
    #[arg(long)]
    replica_schedule_limit: Option<usize>,
    /// Timeout of leader-transfer operators (e.g. 10s).
    #[arg(long, value_parser = humantime::parse_duration)]
    leader_operator_timeout: Option<Duration>,
    /// Timeout of operators adding or removing peers (e.g. 10m).
    #[arg(long, value_parser = humantime::parse_duration)]
    region_operator_timeout: Option<Duration>,
    /// Comma-separated balance schedulers (balance-region,balance-leader); empty for none.
    #[arg(long, value_delimiter = ',')]
    schedulers: Option<Vec<String>>,
    /// Whether the replica checker runs.
    #[arg(long)]
    enable_replica_checker: Option<bool>,
}

impl Args {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Config::default(),
        };
        macro_rules! set {
            ($($field:ident => $target:expr),* $(,)?) => {
                $(if let Some(v) = self.$field { $target = v; })*
            };
        }
        set!(
            name => c.name,
            listen_addr => c.listen_addr,
            advertise_client_url => c.advertise_client_url,
            data_dir => c.data_dir,
            tso_save_interval => c.tso_save_interval,
            id_batch_size => c.id_batch_size,
            max_batch_split_count => c.max_batch_split_count,
            max_replicas => c.schedule.max_replicas,
            max_store_down_time => c.schedule.max_store_down_time,
            schedule_interval => c.schedule.schedule_interval,
            patrol_interval => c.schedule.patrol_interval,
            leader_schedule_limit => c.schedule.leader_schedule_limit,
            region_schedule_limit => c.schedule.region_schedule_limit,
            replica_schedule_limit => c.schedule.replica_schedule_limit,
            leader_operator_timeout => c.schedule.leader_operator_timeout,
            region_operator_timeout => c.schedule.region_operator_timeout,
            enable_replica_checker => c.schedule.enable_replica_checker,
        );
        if let Some(s) = self.schedulers {
            c.schedule.schedulers = s.into_iter().filter(|n| !n.is_empty()).collect();
        }
        c.validate()?;
        Ok(c)
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&args.log_level).context("bad --log-level")?)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let config = args.into_config()?;
    let server = SchedulerServer::start(config)
        .await
        .context("starting the scheduler")?;
    tracing::info!(client_url = %server.client_url(), "ready");
    wait_for_signal().await?;
    server.shutdown().await.context("shutting down")?;
    Ok(())
}
