//! The crate's one error type, and how errors map to exit codes.

use std::process::ExitCode;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit status of a successful command.
pub const EXIT_OK: u8 = 0;
/// Exit status when the command failed: the cluster is unreachable, a server refused the
/// request, a transaction conflicted.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for unusable input: bad flags or arguments, bad hex, a script syntax error.
/// (clap uses the same code for the flags it rejects itself.)
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `raw get` / `txn get` when the key does not exist.
pub const EXIT_NOT_FOUND: u8 = 3;

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line or a script is unusable; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// A statement of a `txn exec` script failed; the open transaction was rolled back.
    #[error("line {line}: {source}")]
    Script {
        /// 1-based line number in the script.
        line: usize,
        /// What went wrong.
        source: Box<Error>,
    },
    /// The client library failed (PD or store unreachable, server error, conflict, ...).
    #[error(transparent)]
    Client(#[from] client::Error),
    /// A `pdpb` call made directly (store statistics) failed.
    #[error("{rpc} to {addr} failed: {message}")]
    Pd {
        /// The method.
        rpc: &'static str,
        /// The scheduler address.
        addr: String,
        /// The status or header error.
        message: String,
    },
    /// Reading a script or writing output failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => EXIT_USAGE,
            Error::Script { source, .. } => source.exit_code(),
            Error::Client(client::Error::InvalidArgument(_)) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// The outcome of a command that ran: success, or a successful lookup that found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done.
    Ok,
    /// The key asked for does not exist.
    NotFound,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(match s {
            Status::Ok => EXIT_OK,
            Status::NotFound => EXIT_NOT_FOUND,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_cause() {
        assert_eq!(Error::Usage("x".into()).exit_code(), EXIT_USAGE);
        let script = Error::Script {
            line: 3,
            source: Box::new(Error::Client(client::Error::Config("c".into()))),
        };
        assert_eq!(script.exit_code(), EXIT_FAILURE);
        assert!(script.to_string().starts_with("line 3: "));
        let bad = Error::Client(client::Error::InvalidArgument("limit".into()));
        assert_eq!(bad.exit_code(), EXIT_USAGE);
    }
}
