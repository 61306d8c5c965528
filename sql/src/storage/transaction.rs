//! GlueSQL's transaction protocol over one KV transaction (see the module docs of `storage`).
//!
//! - `begin(true)` (every statement): inside `BEGIN` → `Ok(false)`, the statement joins it;
//!   otherwise adopt the planning snapshot (or start one) as the statement's transaction and
//!   return `Ok(true)`: the executor commits it when the statement succeeds, rolls it back when
//!   it fails.
//! - `begin(false)` (`BEGIN`): error inside `BEGIN`; otherwise start a fresh transaction.
//! - `commit` / `rollback`: end the open transaction; with none open they do nothing. A commit
//!   that loses a conflict returns a retryable error and leaves no transaction open.

use gluesql_core::error::Result;
use gluesql_core::store::Transaction;
use tracing::debug;

use super::{ActiveTxn, SqlStorage, TxnKind};
use crate::errors::Error;

impl Transaction for SqlStorage {
    fn begin(&mut self, autocommit: bool) -> Result<bool> {
        let slot = self.txn.get_mut();
        match (slot.as_ref().map(|t| t.kind), autocommit) {
            // A statement joins the transaction already open (the executor never leaves an
            // autocommit one open; a caller driving the traits by hand may).
            (Some(TxnKind::Explicit | TxnKind::Autocommit), true) => return Ok(false),
            (Some(TxnKind::Explicit | TxnKind::Autocommit), false) => {
                return Err(Error::NestedTransaction.into());
            }
            (Some(TxnKind::Snapshot), true) => {
                let txn = slot.as_mut().expect("matched Some");
                txn.kind = TxnKind::Autocommit;
                return Ok(true);
            }
            (Some(TxnKind::Snapshot), false) => self.finish(false)?,
            (None, _) => {}
        }
        self.functions = Default::default();
        let kv = self.backend.begin()?;
        let kind = if autocommit {
            TxnKind::Autocommit
        } else {
            TxnKind::Explicit
        };
        debug!(start_ts = kv.start_ts(), ?kind, "sql transaction begins");
        *self.txn.get_mut() = Some(ActiveTxn::new(kv, kind));
        Ok(autocommit)
    }

    fn rollback(&mut self) -> Result<()> {
        Ok(self.finish(false)?)
    }

    fn commit(&mut self) -> Result<()> {
        Ok(self.finish(true)?)
    }
}
