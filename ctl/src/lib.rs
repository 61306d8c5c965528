//! `tinykv-ctl`: a command line for TinyKV clusters, built on the `client` crate.
//!
//! # Data flow
//!
//! ```text
//!  argv ──clap──▶ Cli (global: --pd, --json, --hex, --timeout) ──▶ Ctx (endpoints, Codec,
//!        │                                                         client Config)
//!        ▼
//!  raw get|put|delete|scan ──▶ RawClient (per column family)      ─┐
//!  txn get|put|delete|scan ──▶ TransactionClient (snapshot / 1-write txn)
//!  txn exec ──▶ script parser ──▶ checks ──▶ Session (one txn at a time) ─┤──▶ Output
//!  cluster members|stores|regions|region, tso ──▶ PdClient (+ pdpb GetStore for stats)
//!        │                                                          │
//!        ▼                                                          ▼
//!  Error ──▶ message on stderr + exit code     Output: table/text (default) or JSON line
//! ```
//!
//! Exit codes: 0 success, 1 the command failed (cluster unreachable, server error, conflict),
//! 2 bad usage (flags, hex, script syntax), 3 key not found (`raw get`, `txn get`).
//! Nothing is sent before the arguments (and a whole script) have been checked.

pub mod cli;
pub mod cluster;
pub mod ctx;
pub mod errors;
pub mod format;
pub mod kv;
pub mod raw;
pub mod script;
pub mod session;
pub mod txn;

pub use self::cli::Cli;
pub use self::errors::{Error, Result};

use crate::cli::Command;
use crate::ctx::Ctx;
use crate::format::Output;

/// Runs a parsed command line and returns what to print.
pub async fn run(cli: Cli) -> Result<Output> {
    let ctx = Ctx::from_cli(&cli);
    match cli.command {
        Command::Raw(cmd) => raw::run(&ctx, cmd).await,
        Command::Txn(cmd) => txn::run(&ctx, cmd).await,
        Command::Cluster(cmd) => cluster::run(&ctx, cmd).await,
        Command::Tso => cluster::tso(&ctx).await,
    }
}
