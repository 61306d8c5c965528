//! The SQL layer's error type, and how it crosses into GlueSQL.
//!
//! GlueSQL's storage traits return `gluesql_core::error::Error`; backend failures travel as
//! `Error::StorageMsg(String)`. Our errors are typed until that boundary ([`Error::into_glue`]),
//! and the message of a retryable failure starts with [`RETRYABLE_PREFIX`] so that callers
//! holding only the GlueSQL error ([`is_retryable`]) can still tell a conflict from a bug.

use gluesql_core::error::Error as GlueError;

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Start of every retryable error message: the transaction lost a race and was rolled back,
/// so running it again from the start is safe.
pub const RETRYABLE_PREFIX: &str = "write conflict";

/// Everything that can go wrong below the SQL executor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another transaction committed a conflicting write first (or holds a lock that did not go
    /// away). Nothing of this transaction was committed; retrying it is safe.
    #[error("{RETRYABLE_PREFIX}: {0}; the transaction was rolled back, retry it")]
    Conflict(String),
    /// The commit was sent but its outcome is unknown: it may or may not be committed, so it
    /// must not be retried blindly.
    #[error("commit outcome unknown: {0}")]
    Undetermined(String),
    /// The key-value backend failed (unreachable, timed out, protocol error, ...).
    #[error("storage backend: {0}")]
    Backend(String),
    /// Stored bytes that do not decode: written by another format version, or damaged.
    #[error("corrupted {what} at key \"{key}\": {reason}")]
    Corrupted {
        /// What the bytes should have been (row, schema, index entry, ...).
        what: &'static str,
        /// The key, escaped.
        key: String,
        /// Why decoding failed.
        reason: String,
    },
    /// The keyspace was written by an incompatible version of this crate.
    #[error("storage format version {found} is not supported (this build reads {supported})")]
    FormatVersion {
        /// Version found in the keyspace.
        found: u32,
        /// Version this build writes.
        supported: u32,
    },
    /// A value would duplicate another row's value in a UNIQUE column.
    #[error("duplicate value {value} in UNIQUE column \"{column}\" of table \"{table}\"")]
    DuplicateUnique {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The duplicated value, as SQL shows it.
        value: String,
    },
    /// `BEGIN` inside an open transaction.
    #[error("nested transaction is not supported")]
    NestedTransaction,
    /// A statement in a transaction that an earlier failed statement aborted.
    #[error("transaction aborted by an earlier failed statement ({0}); ROLLBACK to end it")]
    Aborted(String),
    /// COMMIT of an aborted transaction: it was rolled back instead.
    #[error("transaction aborted by an earlier failed statement ({0}); it was rolled back")]
    RolledBack(String),
    /// A write with no transaction open (the executor always begins one first).
    #[error("no transaction is open")]
    NoTransaction,
    /// The table does not exist.
    #[error("table not found: {0}")]
    TableNotFound(String),
    /// The index does not exist on the table.
    #[error("index \"{index}\" not found on table \"{table}\"")]
    IndexNotFound {
        /// The table.
        table: String,
        /// The index.
        index: String,
    },
    /// An unusable configuration value.
    #[error("invalid config: {0}")]
    Config(String),
    /// The SQL engine rejected the statement (parse, plan, validation, execution).
    #[error("{0}")]
    Sql(GlueError),
}

impl Error {
    /// True when running the transaction again from the start is safe and may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Conflict(_) => true,
            Error::Sql(e) => is_retryable(e),
            _ => false,
        }
    }

    /// The error as GlueSQL's storage traits return it.
    pub fn into_glue(self) -> GlueError {
        match self {
            Error::Sql(e) => e,
            other => GlueError::StorageMsg(other.to_string()),
        }
    }

    pub(crate) fn corrupted(what: &'static str, key: &[u8], reason: impl ToString) -> Error {
        Error::Corrupted {
            what,
            key: key.escape_ascii().to_string(),
            reason: reason.to_string(),
        }
    }
}

impl From<GlueError> for Error {
    fn from(e: GlueError) -> Error {
        Error::Sql(e)
    }
}

/// GlueSQL's own error kinds, raised by the storage where GlueSQL's executor expects them
/// (its fixtures check the variant, e.g. `AlterTable.TableNotFound`).
macro_rules! from_glue_kind {
    ($($kind:ty),*) => {$(
        impl From<$kind> for Error {
            fn from(e: $kind) -> Error {
                Error::Sql(e.into())
            }
        }
    )*};
}

from_glue_kind!(
    gluesql_core::store::AlterTableError,
    gluesql_core::store::IndexError,
    gluesql_core::executor::AlterError
);

impl From<Error> for GlueError {
    fn from(e: Error) -> GlueError {
        e.into_glue()
    }
}

impl From<client::Error> for Error {
    fn from(e: client::Error) -> Error {
        if is_conflict(&e) {
            // Lost a race: the client rolled the transaction back (or never prewrote it).
            Error::Conflict(e.to_string())
        } else if matches!(e, client::Error::UndeterminedCommit { .. }) {
            Error::Undetermined(e.to_string())
        } else {
            Error::Backend(e.to_string())
        }
    }
}

fn is_conflict(e: &client::Error) -> bool {
    use client::Error as C;
    match e {
        C::WriteConflict(_)
        | C::AlreadyExists { .. }
        | C::KeyLocked(_)
        | C::Deadlock(_)
        | C::CommitTsExpired(_)
        | C::Retryable(_)
        | C::TxnNotFound(_)
        | C::Aborted(_) => true,
        C::MultipleKeyErrors(errors) => errors.iter().all(is_conflict),
        _ => false,
    }
}

/// True when a GlueSQL error carries one of our retryable storage failures.
pub fn is_retryable(e: &GlueError) -> bool {
    matches!(e, GlueError::StorageMsg(m) if m.starts_with(RETRYABLE_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_retryable_through_gluesql() {
        let e = Error::Conflict("key \"k\"".into());
        assert!(e.is_retryable());
        let glue = e.into_glue();
        assert!(is_retryable(&glue), "{glue:?}");
        assert!(!is_retryable(&Error::Backend("down".into()).into_glue()));
        assert!(!Error::Undetermined("timeout".into()).is_retryable());
    }

    #[test]
    fn client_errors_are_classified() {
        let conflict = client::Error::WriteConflict(Box::default());
        assert!(matches!(Error::from(conflict), Error::Conflict(_)));
        let undetermined = client::Error::UndeterminedCommit {
            start_ts: 1,
            source: Box::new(client::Error::Aborted("x".into())),
        };
        assert!(matches!(Error::from(undetermined), Error::Undetermined(_)));
        let multi = client::Error::MultipleKeyErrors(vec![
            client::Error::WriteConflict(Box::default()),
            client::Error::KeyLocked(Box::default()),
        ]);
        assert!(Error::from(multi).is_retryable());
        let other = client::Error::InvalidArgument("bad".into());
        assert!(matches!(Error::from(other), Error::Backend(_)));
    }
}
