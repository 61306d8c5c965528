//! A SQL session: statements in, payloads out, one statement at a time.
//!
//! [`Session`] is what the shell and applications use on top of [`SqlStorage`]. Unlike
//! `Glue::execute` (which plans every statement of a string before running the first, so a
//! script cannot create a table and then use it), it plans each statement right before running
//! it, and it adds two behaviours GlueSQL leaves to the storage's user:
//!
//! - **Autocommit retry.** A statement outside `BEGIN` is its own transaction. When its commit
//!   loses a write conflict, nothing of it was written, so it is planned and run again at a
//!   fresh snapshot, up to `autocommit_retries` times with a short randomized backoff. Updates
//!   such as `SET v = v + 1` therefore never lose an increment: the retry re-reads.
//! - **Failed statements inside `BEGIN`.** A statement that fails before buffering any write
//!   (parse, plan or validation errors, duplicate keys found by the executor) leaves the
//!   transaction usable. One that fails after buffering writes aborts it, as PostgreSQL does:
//!   every later statement fails until `ROLLBACK`, and `COMMIT` rolls back and reports the
//!   cause. A half-applied statement can never commit.
//!
//! Conflicts inside an explicit transaction surface at `COMMIT` (or at the statement that
//! meets them) as retryable errors ([`Error::is_retryable`]); retrying the whole transaction is
//! the application's call.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use gluesql_core::ast::Statement;
use gluesql_core::executor::Payload;
use gluesql_core::parse_sql::parse;
use gluesql_core::prelude::Glue;
use gluesql_core::sqlparser::ast::Statement as SqlStatement;
use gluesql_core::store::Planner;
use gluesql_core::translate::translate;
use rand::Rng;
use tracing::debug;

use crate::config::Config;
use crate::errors::{is_retryable, Error, Result};
use crate::kv::KvBackend;
use crate::storage::SqlStorage;

/// One SQL connection. Not shared between threads: open one per thread, over one backend.
pub struct Session {
    glue: Glue<SqlStorage>,
    retries: u32,
}

impl Session {
    /// A session on `backend` with `config`'s namespace and retry budget.
    pub fn open(backend: Arc<dyn KvBackend>, config: &Config) -> Result<Session> {
        let storage = SqlStorage::open(backend, config)?;
        Ok(Session::new(storage, config.autocommit_retries))
    }

    /// A session over an existing storage.
    pub fn new(storage: SqlStorage, autocommit_retries: u32) -> Session {
        Session {
            glue: Glue::new(storage),
            retries: autocommit_retries,
        }
    }

    /// Parses `sql` into statements (nothing runs).
    pub fn parse(sql: &str) -> Result<Vec<SqlStatement>> {
        Ok(parse(sql)?)
    }

    /// Runs every statement of `sql` in order, stopping at the first failure. Statements that
    /// ran before it keep their effects (each autocommit statement commits on its own).
    pub fn execute(&mut self, sql: &str) -> Result<Vec<Payload>> {
        Session::parse(sql)?
            .iter()
            .map(|statement| self.execute_statement(statement))
            .collect()
    }

    /// Runs one parsed statement.
    pub fn execute_statement(&mut self, statement: &SqlStatement) -> Result<Payload> {
        let statement = translate(statement)?;
        let control = matches!(
            statement,
            Statement::StartTransaction | Statement::Commit | Statement::Rollback
        );
        let mut attempt = 0;
        loop {
            let explicit = self.glue.storage.in_explicit_transaction();
            if !explicit {
                // Plan and run at a fresh snapshot, not one left by an earlier failure.
                self.glue.storage.release_snapshot();
            }
            let before = self.glue.storage.mutation_count();
            let result = self
                .glue
                .storage
                .plan(statement.clone().into())
                .and_then(|plan| self.glue.execute_stmt(&plan));
            let error = match result {
                Ok(payload) => return Ok(payload),
                Err(e) => e,
            };
            let storage = &mut self.glue.storage;
            if explicit && !control && storage.mutation_count() != before {
                storage.abort_transaction(&error.to_string());
            }
            if explicit || control || !is_retryable(&error) || attempt >= self.retries {
                return Err(Error::Sql(error));
            }
            attempt += 1;
            debug!(attempt, error = %error, "autocommit statement lost a conflict; retrying");
            thread::sleep(backoff(attempt));
        }
    }

    /// True inside `BEGIN` ... `COMMIT`/`ROLLBACK`.
    pub fn in_transaction(&self) -> bool {
        self.glue.storage.in_explicit_transaction()
    }

    /// The storage underneath (GlueSQL's traits, for callers that drive them directly).
    pub fn storage_mut(&mut self) -> &mut SqlStorage {
        &mut self.glue.storage
    }
}

/// Randomized exponential backoff: spreads competing retries apart, capped at 100 ms.
fn backoff(attempt: u32) -> Duration {
    let cap_ms = (1u64 << attempt.min(7)).min(100);
    Duration::from_millis(rand::thread_rng().gen_range(0..=cap_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Session>();
    }
}
