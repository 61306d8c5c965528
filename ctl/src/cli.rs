//! The command line: global flags and one subcommand per operation.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Largest scan limit, the same cap the servers and TiKV's clients use.
pub const MAX_LIMIT: u32 = client::MAX_SCAN_LIMIT;

#[derive(Debug, Parser)]
#[command(
    name = "tinykv-ctl",
    version,
    about = "Read and write a TinyKV cluster, and inspect it, from the command line",
    after_help = "Examples:\n  \
        tinykv-ctl raw put a 1 && tinykv-ctl raw get a\n  \
        tinykv-ctl raw scan a z --limit 10\n  \
        tinykv-ctl txn put k v\n  \
        printf 'put x 1\\nput y 2\\ncommit\\n' | tinykv-ctl txn exec\n  \
        tinykv-ctl --json cluster stores\n\n\
        Exit status: 0 success, 1 the command failed, 2 bad usage, 3 key not found."
)]
pub struct Cli {
    /// Scheduler (PD) endpoints, host:port, comma-separated.
    #[arg(
        long,
        global = true,
        env = "TINYKV_PD",
        value_name = "HOST:PORT",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub pd: Vec<String>,
    /// Print JSON (one document per line) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Keys and values are hex, in arguments and output.
    #[arg(long, global = true)]
    pub hex: bool,
    /// Deadline of each request (e.g. 2s, 500ms) [default: the client's, 2s].
    #[arg(long, global = true, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be positive".into());
    }
    Ok(d)
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Raw key-value API (no transactions, per column family).
    #[command(subcommand)]
    Raw(RawCommand),
    /// Transactional API: single operations or a script of them.
    #[command(subcommand)]
    Txn(TxnCommand),
    /// What the scheduler knows: members, stores, regions.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// A fresh timestamp from the scheduler's oracle.
    Tso,
}

/// A column family of the raw API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Cf {
    /// `default`.
    Default,
    /// `lock`.
    Lock,
    /// `write`.
    Write,
}

impl Cf {
    /// The name the servers expect.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Default => "default",
            Cf::Lock => "lock",
            Cf::Write => "write",
        }
    }
}

/// The column family flag shared by raw commands.
#[derive(Debug, Clone, Args)]
pub struct CfArg {
    /// Column family.
    #[arg(long, value_enum, default_value = "default")]
    pub cf: Cf,
}

/// A key range and how much of it to read.
#[derive(Debug, Clone, Args)]
pub struct ScanArgs {
    /// First key (inclusive) [default: the start of the key space].
    pub from: Option<String>,
    /// End key (exclusive) [default: the end of the key space].
    pub to: Option<String>,
    /// Most pairs to return.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=MAX_LIMIT as i64))]
    pub limit: u32,
    /// Largest keys first (the range stays [FROM, TO)).
    #[arg(long)]
    pub reverse: bool,
    /// Keys without values.
    #[arg(long)]
    pub keys_only: bool,
}

/// `tinykv-ctl raw ...`.
#[derive(Debug, Subcommand)]
pub enum RawCommand {
    /// Print a key's value (exit status 3 if absent).
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        cf: CfArg,
    },
    /// Set a key.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
        #[command(flatten)]
        cf: CfArg,
    },
    /// Delete a key (deleting an absent key succeeds).
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        cf: CfArg,
    },
    /// List pairs of a key range, across regions.
    Scan {
        #[command(flatten)]
        scan: ScanArgs,
        #[command(flatten)]
        cf: CfArg,
    },
}

/// `tinykv-ctl txn ...`.
#[derive(Debug, Subcommand)]
pub enum TxnCommand {
    /// Read a key at a fresh timestamp (exit status 3 if absent).
    Get {
        /// The key.
        key: String,
    },
    /// Set a key in its own transaction; prints the commit timestamp.
    Put {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// Delete a key in its own transaction; prints the commit timestamp.
    Delete {
        /// The key.
        key: String,
    },
    /// List pairs of a key range at a fresh timestamp.
    Scan {
        #[command(flatten)]
        scan: ScanArgs,
    },
    /// Run statements from a file or stdin (a prompt when stdin is a terminal).
    ///
    /// One statement per line: `begin [optimistic|pessimistic]`, `get KEY`, `put KEY VALUE`,
    /// `insert KEY VALUE`, `delete KEY`, `scan FROM TO [LIMIT]`, `commit`, `rollback`. A
    /// statement outside a transaction begins one. Words may be "quoted" with \" \\ \n \t
    /// \xNN escapes; a word starting with `#` starts a comment. Scripts are checked before
    /// anything runs (writes left uncommitted at the end are an error); a script stops at
    /// the first failing statement and rolls the open transaction back.
    Exec {
        /// Script file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// Transactions begun implicitly are pessimistic.
        #[arg(long)]
        pessimistic: bool,
    },
}

/// `tinykv-ctl cluster ...`.
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The scheduler's members and which one leads.
    Members,
    /// Every store: address, state, region and leader counts, capacity.
    Stores,
    /// Regions in key order: range, epoch, peers, leader.
    Regions {
        /// Most regions to list (0: all).
        #[arg(long, default_value_t = 0)]
        limit: u32,
        /// Show bounds decoded from transactional (memcomparable) keys.
        #[arg(long)]
        txn: bool,
    },
    /// The region holding a key.
    Region {
        /// The key.
        key: String,
        /// The key is a transactional key: look it up encoded, show bounds decoded.
        #[arg(long)]
        txn: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tinykv-ctl").chain(argv.iter().copied()))
    }

    #[test]
    fn the_quick_start_commands_parse() {
        let cli = parse(&["raw", "put", "a", "1"]).unwrap();
        assert_eq!(cli.pd, vec!["127.0.0.1:2379".to_string()]);
        assert!(!cli.json && !cli.hex && cli.timeout.is_none());
        match cli.command {
            Command::Raw(RawCommand::Put { key, value, cf }) => {
                assert_eq!(
                    (key.as_str(), value.as_str(), cf.cf),
                    ("a", "1", Cf::Default)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["raw", "get", "a"]).unwrap().command,
            Command::Raw(RawCommand::Get { .. })
        ));
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&[
            "raw",
            "scan",
            "a",
            "z",
            "--limit",
            "7",
            "--reverse",
            "--cf",
            "write",
            "--json",
            "--pd",
            "h1:1,h2:2",
            "--timeout",
            "500ms",
        ])
        .unwrap();
        assert!(cli.json);
        assert_eq!(cli.pd, vec!["h1:1".to_string(), "h2:2".to_string()]);
        assert_eq!(cli.timeout, Some(Duration::from_millis(500)));
        match cli.command {
            Command::Raw(RawCommand::Scan { scan, cf }) => {
                assert_eq!(scan.from.as_deref(), Some("a"));
                assert_eq!(scan.to.as_deref(), Some("z"));
                assert_eq!(scan.limit, 7);
                assert!(scan.reverse && !scan.keys_only);
                assert_eq!(cf.cf.name(), "write");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_usage_is_rejected_before_anything_runs() {
        for argv in [
            &["raw", "get"][..],
            &["raw", "put", "a"],
            &["raw", "get", "a", "--cf", "raft"],
            &["raw", "scan", "--limit", "0"],
            &["raw", "scan", "--limit", "10241"],
            &["txn", "scan", "a", "b", "c"],
            &["tso", "--timeout", "0s"],
            &["tso", "--timeout", "soon"],
            &["cluster", "nodes"],
            &[],
        ] {
            let err = parse(argv).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{argv:?}: {err}");
        }
    }

    #[test]
    fn scripts_and_cluster_commands_parse() {
        match parse(&["txn", "exec", "-", "--pessimistic"])
            .unwrap()
            .command
        {
            Command::Txn(TxnCommand::Exec { file, pessimistic }) => {
                assert_eq!(file, Some(PathBuf::from("-")));
                assert!(pessimistic);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["cluster", "region", "k", "--txn"]).unwrap().command {
            Command::Cluster(ClusterCommand::Region { key, txn }) => {
                assert_eq!(key, "k");
                assert!(txn);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(&["--hex", "tso"]).unwrap().command,
            Command::Tso
        ));
    }
}
