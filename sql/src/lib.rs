//! SQL over TinyKV transactions: a [GlueSQL](https://gluesql.org) storage backend, a session
//! API, and the `tinykv-sql` shell.
//!
//! # Data flow
//!
//! ```text
//!  SQL text ──▶ Session: parse ─▶ plan (schema reads) ─▶ execute ─▶ Payload
//!                  │ autocommit retry on conflict, abort-on-failure inside BEGIN
//!                  ▼
//!  GlueSQL executor ──▶ SqlStorage (the ten storage traits)
//!                  │ schemas ─▶ table records   rows ─▶ row keys (table id + PK cmp bytes)
//!                  │ indexes, UNIQUE guards, FK parent locks kept in step with every row write
//!                  ▼
//!  KvTxn (one per SQL transaction: snapshot at start_ts, buffered writes, first committer wins)
//!        ├── ClusterBackend: client::TransactionClient on a dedicated runtime (the product)
//!        └── MemoryBackend: in-process MVCC with the same semantics (tests)
//! ```
//!
//! - Every SQL transaction is one Percolator transaction: autocommit statements commit on
//!   their own, `BEGIN`..`COMMIT` spans one, a lost conflict rolls back everything of it.
//! - The key layout is in [`keys`]; the transaction protocol in [`storage`]'s docs; the
//!   concurrency guarantees in [`session`] and `docs/SQL.md`.
//!
//! ```
//! use std::sync::Arc;
//! use tinykv_sql::{Config, MemoryBackend, Session};
//!
//! let backend = Arc::new(MemoryBackend::new());
//! let mut session = Session::open(backend, &Config::new_test_config()).unwrap();
//! session.execute("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").unwrap();
//! session.execute("INSERT INTO t VALUES (1, 'a')").unwrap();
//! let payloads = session.execute("SELECT v FROM t WHERE id = 1").unwrap();
//! assert_eq!(payloads.len(), 1);
//! ```

#![warn(missing_docs)]

mod config;
mod errors;
pub mod keys;
mod kv;
mod session;
pub mod shell;
pub mod storage;

pub use self::config::Config;
pub use self::errors::{is_retryable, Error, Result, RETRYABLE_PREFIX};
pub use self::kv::{ClusterBackend, KvBackend, KvPair, KvTxn, MemoryBackend};
pub use self::session::Session;
pub use self::storage::{SqlStorage, FORMAT_VERSION};

/// GlueSQL, re-exported at the pinned version this crate implements.
pub use gluesql_core;
