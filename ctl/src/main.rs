//! `tinykv-ctl`: parse the command line, run the command, print its output, exit with its
//! status (see the crate documentation for the codes).

use std::process::ExitCode;

use clap::Parser;
use tinykv_ctl::{run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .init();
    let json = cli.json;
    // Two workers: `txn exec` at a prompt blocks one on the terminal while the client's
    // background tasks (TSO stream, heartbeats) run on the other.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tinykv-ctl: cannot start the async runtime: {e}");
            return ExitCode::from(tinykv_ctl::errors::EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(out) => {
            out.print(json);
            out.status.into()
        }
        Err(e) => {
            eprintln!("tinykv-ctl: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
