//! `tinykv-server`: parse flags and the optional config file, then serve until SIGINT/SIGTERM.
//!
//! Exit status: 0 after a clean shutdown, 2 for an unusable configuration, 1 for a runtime failure.

use std::process::ExitCode;

use clap::Parser;
use kvserver::config::{ServerArgs, ServerConfig};
use kvserver::server;

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    let cfg = match ServerConfig::load(&args) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("tinykv-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        match toml::to_string(&cfg) {
            Ok(text) => {
                print!("{text}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("tinykv-server: cannot print config: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = server::init_tracing(&cfg.log_filter) {
        eprintln!("tinykv-server: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tinykv-grpc")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tinykv-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(server::run(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server failed");
            eprintln!("tinykv-server: {e}");
            ExitCode::FAILURE
        }
    }
}
