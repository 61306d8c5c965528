//! `tinykv-sql`: a SQL shell on a TinyKV cluster.
//!
//! ```text
//! tinykv-sql [--pd 127.0.0.1:2379] [--namespace default] [-e "SQL"]
//! ```
//!
//! With `-e` it runs the statements and exits (status 1 if one fails); otherwise it reads SQL
//! from a pipe, or prompts on a terminal.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tinykv_sql::{shell, ClusterBackend, Config, Session};

#[derive(Parser, Debug)]
#[command(name = "tinykv-sql", about = "SQL shell for a TinyKV cluster", version)]
struct Args {
    /// Scheduler (PD) address; repeat for several.
    #[arg(
        long = "pd",
        env = "TINYKV_PD",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    pd: Vec<String>,
    /// Database namespace (keyspace prefix).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Run these statements and exit.
    #[arg(short = 'e', long = "execute")]
    execute: Option<String>,
    /// Extra attempts for an autocommit statement that loses a write conflict.
    #[arg(long, default_value_t = Config::default().autocommit_retries)]
    retries: u32,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let config = Config {
        pd_endpoints: args.pd,
        namespace: args.namespace,
        autocommit_retries: args.retries,
        ..Config::default()
    };
    match run(&config, args.execute.as_deref()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: &Config, execute: Option<&str>) -> tinykv_sql::Result<bool> {
    let backend = Arc::new(ClusterBackend::connect(config)?);
    let mut session = Session::open(backend, config)?;
    match execute {
        Some(sql) => shell::run_script(
            &mut session,
            sql,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
        )
        .map_err(|e| tinykv_sql::Error::Backend(format!("writing output: {e}"))),
        None => shell::run_input(&mut session),
    }
}
