//! [`SqlStorage`]: GlueSQL's ten storage traits over one [`KvTxn`] at a time.
//!
//! A session's storage holds at most one KV transaction:
//!
//! ```text
//!   (none) ──read──▶ Snapshot ──begin(true)──▶ Autocommit ──commit/rollback──▶ (none)
//!     │                 │ begin(false): dropped, a fresh one starts
//!     └──begin(false)──▶ Explicit ──COMMIT / ROLLBACK──▶ (none)
//! ```
//!
//! GlueSQL plans a statement (reading schemas) before it calls `begin`, so a read with no
//! transaction opens a *snapshot* transaction, which the autocommit `begin(true)` that follows
//! adopts: planning and execution then see one snapshot and cost one timestamp. An explicit
//! `BEGIN` always starts fresh so that its snapshot is not older than the `BEGIN`.
//!
//! Reads go through `&self` (GlueSQL's `Store` is `&self` and returns lazy row iterators), so
//! the transaction sits behind a mutex; every write goes through [`SqlStorage::write`], which
//! refuses to run in an aborted transaction and aborts an explicit transaction whose statement
//! failed after buffering writes (so a half-applied statement can never commit).

mod alter;
mod catalog;
mod function;
mod rows;
mod secondary;
mod store;
mod sync;
mod transaction;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use gluesql_core::data::CustomFunction as Function;
use gluesql_core::error::Result as GlueResult;
use gluesql_core::plan::StatementPlan;
use gluesql_core::planner::{
    fetch_schema_map, plan_aggregate, plan_hash_join, plan_index, plan_primary_key,
    plan_schemaless, validate,
};
use gluesql_core::store::Planner;
use parking_lot::Mutex;
use tracing::warn;

pub(crate) use self::catalog::TableRecord;
use crate::config::Config;
use crate::errors::{Error, Result};
use crate::keys::KeySpace;
use crate::kv::{KvBackend, KvPair, KvTxn};

/// Version of the key layout and value encodings. Bump it when either changes: GlueSQL's
/// bincode-encoded `Schema` and `Value` change shape between its releases.
pub const FORMAT_VERSION: u32 = 1;

/// How the open transaction was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxnKind {
    /// Opened by a read outside any transaction (statement planning).
    Snapshot,
    /// One statement; committed or rolled back by the executor when it ends.
    Autocommit,
    /// `BEGIN` ... `COMMIT` / `ROLLBACK`.
    Explicit,
}

/// The open KV transaction and what this session knows about it.
struct ActiveTxn {
    kv: Box<dyn KvTxn>,
    kind: TxnKind,
    /// Set when an explicit transaction must not commit; holds the cause.
    aborted: Option<String>,
    /// Writes buffered so far (puts, deletes and locks): tells whether a failure left any.
    mutations: u64,
    /// Rows appended so far: the low half of generated row keys.
    appended: u32,
    /// Table records read or written in this transaction (`None`: known not to exist).
    tables: HashMap<String, Option<Arc<TableRecord>>>,
}

/// A GlueSQL storage over TinyKV transactions. One per SQL session: GlueSQL drives it from one
/// thread, and it holds the session's open transaction.
pub struct SqlStorage {
    backend: Arc<dyn KvBackend>,
    keys: KeySpace,
    scan_batch: u32,
    txn: Mutex<Option<ActiveTxn>>,
    /// Custom functions of the current snapshot, loaded on first use. GlueSQL's
    /// `CustomFunction` returns references, so they live here rather than behind the mutex;
    /// every `&mut self` method that changes the snapshot resets it.
    functions: OnceLock<BTreeMap<String, Function>>,
}

/// Access to the open transaction for the catalog, row, index and guard code.
pub(crate) struct Ctx<'a> {
    txn: &'a mut ActiveTxn,
    keys: &'a KeySpace,
    scan_batch: u32,
}

impl SqlStorage {
    /// A storage for `config.namespace` on `backend`. Creates the namespace's format record on
    /// first use and refuses a namespace written by an incompatible version.
    pub fn open(backend: Arc<dyn KvBackend>, config: &Config) -> Result<SqlStorage> {
        if config.scan_batch_size == 0 {
            return Err(Error::Config("scan-batch-size must be at least 1".into()));
        }
        let storage = SqlStorage {
            backend,
            keys: KeySpace::new(&config.namespace),
            scan_batch: config.scan_batch_size,
            txn: Mutex::new(None),
            functions: OnceLock::new(),
        };
        storage.check_format()?;
        Ok(storage)
    }

    fn check_format(&self) -> Result<()> {
        let key = self.keys.format_version();
        let mut attempts = 0;
        loop {
            let mut txn = self.backend.begin()?;
            let found = match txn.get(&key)? {
                Some(bytes) => Some(decode_u32(&key, &bytes)?),
                None => None,
            };
            match found {
                Some(FORMAT_VERSION) => return txn.rollback(),
                Some(found) => {
                    txn.rollback()?;
                    return Err(Error::FormatVersion {
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                None => {
                    txn.put(key.clone(), FORMAT_VERSION.to_be_bytes().to_vec())?;
                    match txn.commit() {
                        Ok(()) => return Ok(()),
                        // Another session initialised it at the same moment: read it again.
                        Err(e) if e.is_retryable() && attempts < 5 => attempts += 1,
                        Err(e) => return Err(e),
                    }
                }
            }
        }
    }

    /// True inside `BEGIN` ... `COMMIT`/`ROLLBACK`.
    pub fn in_explicit_transaction(&self) -> bool {
        matches!(&*self.txn.lock(), Some(t) if t.kind == TxnKind::Explicit)
    }

    /// Writes buffered by the open transaction so far (0 with none open).
    pub fn mutation_count(&self) -> u64 {
        self.txn.lock().as_ref().map_or(0, |t| t.mutations)
    }

    /// Marks the open explicit transaction aborted: every later statement fails, and `COMMIT`
    /// rolls it back and reports `reason`. A no-op outside an explicit transaction.
    pub fn abort_transaction(&mut self, reason: &str) {
        if let Some(t) = self.txn.get_mut() {
            if t.kind == TxnKind::Explicit && t.aborted.is_none() {
                t.aborted = Some(reason.to_owned());
            }
        }
    }

    /// Drops a snapshot opened by reads outside a transaction, so that the next statement
    /// reads at a fresh timestamp.
    pub fn release_snapshot(&mut self) {
        if matches!(self.txn.get_mut(), Some(t) if t.kind == TxnKind::Snapshot) {
            self.finish(false).ok();
        }
    }

    /// Runs `f` on the open transaction, opening a snapshot if none is open.
    fn read<T>(&self, f: impl FnOnce(&mut Ctx<'_>) -> Result<T>) -> Result<T> {
        let mut slot = self.txn.lock();
        if slot.is_none() {
            *slot = Some(ActiveTxn::new(self.backend.begin()?, TxnKind::Snapshot));
        }
        let txn = slot.as_mut().expect("opened above");
        if let Some(reason) = &txn.aborted {
            return Err(Error::Aborted(reason.clone()));
        }
        f(&mut Ctx {
            txn,
            keys: &self.keys,
            scan_batch: self.scan_batch,
        })
    }

    /// Runs `f` on the statement's transaction. A failure after `f` buffered writes aborts an
    /// explicit transaction (an autocommit one is rolled back by the executor anyway).
    fn write<T>(&mut self, f: impl FnOnce(&mut Ctx<'_>) -> Result<T>) -> Result<T> {
        let txn = match self.txn.get_mut() {
            Some(t) if t.kind != TxnKind::Snapshot => t,
            _ => return Err(Error::NoTransaction),
        };
        if let Some(reason) = &txn.aborted {
            return Err(Error::Aborted(reason.clone()));
        }
        let before = txn.mutations;
        let result = f(&mut Ctx {
            txn,
            keys: &self.keys,
            scan_batch: self.scan_batch,
        });
        if let Err(e) = &result {
            if txn.kind == TxnKind::Explicit && txn.mutations != before {
                warn!(start_ts = txn.kv.start_ts(), error = %e, "statement failed after writing; transaction aborted");
                txn.aborted = Some(e.to_string());
            }
        }
        result
    }

    /// Ends the open transaction, committing it if `commit`.
    fn finish(&mut self, commit: bool) -> Result<()> {
        self.functions = OnceLock::new();
        let Some(txn) = self.txn.get_mut().take() else {
            return Ok(());
        };
        match (&txn.aborted, commit) {
            (Some(reason), true) => {
                let reason = reason.clone();
                txn.kv.rollback()?;
                Err(Error::RolledBack(reason))
            }
            (None, true) => txn.kv.commit(),
            (_, false) => txn.kv.rollback(),
        }
    }
}

impl Drop for SqlStorage {
    fn drop(&mut self) {
        if let Err(e) = self.finish(false) {
            warn!(error = %e, "rollback of the open sql transaction failed");
        }
    }
}

impl ActiveTxn {
    fn new(kv: Box<dyn KvTxn>, kind: TxnKind) -> ActiveTxn {
        ActiveTxn {
            kv,
            kind,
            aborted: None,
            mutations: 0,
            appended: 0,
            tables: HashMap::new(),
        }
    }
}

impl Ctx<'_> {
    pub fn keys(&self) -> &KeySpace {
        self.keys
    }

    pub fn start_ts(&self) -> u64 {
        self.txn.kv.start_ts()
    }

    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.txn.kv.get(key)
    }

    pub fn batch_get(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<KvPair>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.txn.kv.batch_get(keys)
    }

    /// One page (the configured batch size) of `[start, end)` in scan order.
    pub fn scan_page(&mut self, start: &[u8], end: &[u8], reverse: bool) -> Result<Vec<KvPair>> {
        self.txn.kv.scan(start, end, self.scan_batch, reverse)
    }

    /// Every pair of `[start, end)`, ascending, page by page. For DDL that rewrites a table;
    /// callers may write keys of the range in `f` (pages resume after the last key seen).
    pub fn for_each(
        &mut self,
        start: &[u8],
        end: &[u8],
        mut f: impl FnMut(&mut Ctx<'_>, Vec<u8>, Vec<u8>) -> Result<()>,
    ) -> Result<()> {
        let mut cursor = start.to_vec();
        loop {
            let page = self.scan_page(&cursor, end, false)?;
            let full = page.len() == self.scan_batch as usize;
            let Some(last) = page.last().map(|(k, _)| k.clone()) else {
                return Ok(());
            };
            for (k, v) in page {
                f(self, k, v)?;
            }
            if !full {
                return Ok(());
            }
            cursor = last;
            cursor.push(0);
        }
    }

    /// Deletes every key of `[start, end)`.
    pub fn delete_range(&mut self, start: &[u8], end: &[u8]) -> Result<()> {
        self.for_each(start, end, |ctx, k, _| ctx.delete(k))
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.txn.mutations += 1;
        self.txn.kv.put(key, value)
    }

    pub fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.txn.mutations += 1;
        self.txn.kv.delete(key)
    }

    pub fn lock(&mut self, keys: Vec<Vec<u8>>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        self.txn.mutations += 1;
        self.txn.kv.lock(keys)
    }

    /// A fresh row key for a table without a primary key: `start_ts ++ seq`, unique across
    /// transactions (start timestamps are) and increasing in insertion order within one.
    pub fn next_row_key(&mut self) -> Result<Vec<u8>> {
        let seq = self.txn.appended;
        self.txn.appended = seq.checked_add(1).ok_or_else(|| {
            Error::Backend("more than 2^32 rows appended in one transaction".into())
        })?;
        let mut key = self.start_ts().to_be_bytes().to_vec();
        key.extend(seq.to_be_bytes());
        Ok(key)
    }
}

pub(crate) fn decode_u32(key: &[u8], bytes: &[u8]) -> Result<u32> {
    let raw: [u8; 4] = bytes
        .try_into()
        .map_err(|_| Error::corrupted("u32", key, format!("{} bytes", bytes.len())))?;
    Ok(u32::from_be_bytes(raw))
}

pub(crate) fn decode_u64(key: &[u8], bytes: &[u8]) -> Result<u64> {
    let raw: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::corrupted("u64", key, format!("{} bytes", bytes.len())))?;
    Ok(u64::from_be_bytes(raw))
}

/// GlueSQL's planner does not use secondary indexes unless the storage asks: this is its
/// default pipeline with `plan_index` added after the primary-key step.
impl Planner for SqlStorage {
    fn plan(&self, statement: StatementPlan) -> GlueResult<StatementPlan> {
        let schema_map = fetch_schema_map(self, &statement)?;
        validate(&schema_map, &statement)?;
        let statement = plan_schemaless(&schema_map, statement)?;
        let statement = plan_primary_key(&schema_map, statement);
        let statement = plan_index(&schema_map, statement);
        let statement = plan_hash_join(&schema_map, statement);
        Ok(plan_aggregate(statement))
    }
}
