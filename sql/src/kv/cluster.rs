//! [`KvBackend`] over `client::TransactionClient`: the SQL layer on a real cluster.
//!
//! GlueSQL 0.20's storage traits are synchronous while the client is async (tokio/tonic). The
//! backend owns a small dedicated runtime; every call is spawned onto it and the calling thread
//! waits on a plain channel. That never nests a `block_on` inside an async task (which would
//! panic, or deadlock a current-thread runtime): SQL sessions run on ordinary threads (or in
//! `spawn_blocking`), the client's futures run on the backend's own workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::Arc;

use client::{TransactionClient, TransactionOptions};
use tracing::{debug, warn};

use super::{KvBackend, KvPair, KvTxn};
use crate::config::Config;
use crate::errors::{Error, Result};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs futures on a dedicated runtime for synchronous callers.
struct Bridge {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Bridge {
    fn new(threads: usize) -> Result<Bridge> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("tinykv-sql-client")
            .enable_all()
            .build()
            .map_err(|e| Error::Backend(format!("cannot start the client runtime: {e}")))?;
        Ok(Bridge {
            runtime: Some(runtime),
        })
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the bridge")
            .handle()
    }

    /// Runs `fut` on the runtime and waits for its output on this thread.
    fn run<T, F>(&self, fut: F) -> Result<T>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = mpsc::sync_channel(1);
        self.handle().spawn(async move {
            // The receiver only disappears if the waiting thread died: nothing to report to.
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .map_err(|_| Error::Backend("the client task failed (panicked or cancelled)".into()))
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics when the last owner is an async task.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A TinyKV cluster reached through its scheduler (PD).
#[derive(Clone)]
pub struct ClusterBackend {
    bridge: Arc<Bridge>,
    client: TransactionClient,
}

impl ClusterBackend {
    /// Connects to the scheduler at `config.pd_endpoints`.
    pub fn connect(config: &Config) -> Result<ClusterBackend> {
        config.validate()?;
        let bridge = Arc::new(Bridge::new(config.runtime_threads)?);
        let endpoints = config.pd_endpoints.clone();
        let client = bridge.run(TransactionClient::new(endpoints))??;
        Ok(ClusterBackend { bridge, client })
    }
}

impl KvBackend for ClusterBackend {
    fn begin(&self) -> Result<Box<dyn KvTxn>> {
        let client = self.client.clone();
        // SQL statements are short; a long explicit transaction still keeps its locks alive
        // through the client's heartbeat.
        let options = TransactionOptions::new_optimistic();
        let txn = self
            .bridge
            .run(async move { client.begin_with_options(options).await })??;
        let start_ts = txn.start_timestamp().version();
        debug!(start_ts, "sql transaction started");
        Ok(Box::new(ClusterTxn {
            bridge: self.bridge.clone(),
            txn: Some(txn),
            start_ts,
        }))
    }
}

struct ClusterTxn {
    bridge: Arc<Bridge>,
    /// Moved onto the runtime for each call and back; `None` only after a failed call.
    txn: Option<client::Transaction>,
    start_ts: u64,
}

impl ClusterTxn {
    fn call<T, F>(&mut self, op: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut client::Transaction) -> BoxFuture<'t, client::Result<T>>
            + Send
            + 'static,
    {
        let mut txn = self.txn.take().ok_or_else(|| {
            Error::Backend(format!(
                "transaction {} was lost by an earlier client failure",
                self.start_ts
            ))
        })?;
        let (txn, result) = self.bridge.run(async move {
            let result = op(&mut txn).await;
            (txn, result)
        })?;
        self.txn = Some(txn);
        Ok(result?)
    }
}

impl KvTxn for ClusterTxn {
    fn start_ts(&self) -> u64 {
        self.start_ts
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = key.to_vec();
        self.call(move |t| Box::pin(t.get(key)))
    }

    fn batch_get(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<KvPair>> {
        let pairs = self.call(move |t| Box::pin(t.batch_get(keys)))?;
        Ok(pairs
            .into_iter()
            .map(|p| (p.key.into_inner(), p.value))
            .collect())
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Result<Vec<KvPair>> {
        let range = start.to_vec()..end.to_vec();
        let pairs = if reverse {
            self.call(move |t| Box::pin(t.scan_reverse(range, limit)))?
        } else {
            self.call(move |t| Box::pin(t.scan(range, limit)))?
        };
        Ok(pairs
            .into_iter()
            .map(|p| (p.key.into_inner(), p.value))
            .collect())
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.call(move |t| Box::pin(t.put(key, value)))
    }

    fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.call(move |t| Box::pin(t.delete(key)))
    }

    fn lock(&mut self, keys: Vec<Vec<u8>>) -> Result<()> {
        self.call(move |t| Box::pin(t.lock_keys(keys)))
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let start_ts = self.start_ts;
        let result = self.call(|t| Box::pin(async move { t.commit().await.map(|_| ()) }));
        // Committed, rolled back by the client after a key error, or undetermined: in every
        // case the transaction is over.
        self.txn = None;
        match &result {
            Ok(()) => debug!(start_ts, "sql transaction committed"),
            Err(e) => debug!(start_ts, error = %e, "sql transaction commit failed"),
        }
        result
    }

    fn rollback(mut self: Box<Self>) -> Result<()> {
        let result = self.call(|t| Box::pin(t.rollback()));
        self.txn = None;
        result
    }
}

impl Drop for ClusterTxn {
    fn drop(&mut self) {
        if let Some(mut txn) = self.txn.take() {
            let start_ts = self.start_ts;
            // Optimistic and uncommitted: nothing is locked on the stores, so this only settles
            // the client's state; don't make the dropping thread wait for it.
            self.bridge.handle().spawn(async move {
                if let Err(e) = txn.rollback().await {
                    warn!(start_ts, error = %e, "rollback of a dropped sql transaction failed");
                }
            });
        }
    }
}
