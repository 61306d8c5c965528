//! The transactional API (Percolator over `tikvpb.Tikv`): snapshot reads, buffered or
//! pessimistically locked writes, two-phase commit, lock resolution.
//!
//! Keys are routed in memcomparable-encoded space (region bounds are encoded user keys, see
//! [`crate::codec`]); requests carry the user keys unchanged.

mod buffer;
mod commit;
mod heartbeat;
mod lock;
mod pessimistic;
mod snapshot;
mod transaction;

use std::sync::Arc;

pub use self::snapshot::Snapshot;
pub use self::transaction::Transaction;
use crate::config::Config;
use crate::dispatch::Cluster;
use crate::errors::Result;
use crate::kv::Key;
use crate::pd::PdClient;
use crate::region::{KeyMode, Region};
use crate::timestamp::Timestamp;

/// How a transaction behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionOptions {
    pessimistic: bool,
    heartbeat: bool,
}

impl Default for TransactionOptions {
    fn default() -> Self {
        TransactionOptions::new_optimistic()
    }
}

impl TransactionOptions {
    /// Writes are buffered; conflicts are found at commit.
    pub fn new_optimistic() -> TransactionOptions {
        TransactionOptions {
            pessimistic: false,
            heartbeat: true,
        }
    }

    /// Writes lock their keys as they are made.
    pub fn new_pessimistic() -> TransactionOptions {
        TransactionOptions {
            pessimistic: true,
            heartbeat: true,
        }
    }

    /// Whether to refresh the primary lock's TTL while the transaction holds locks (on by
    /// default; turn off only for transactions known to be short).
    pub fn heartbeat(self, on: bool) -> TransactionOptions {
        TransactionOptions {
            heartbeat: on,
            ..self
        }
    }

    /// True for pessimistic transactions.
    pub fn is_pessimistic(&self) -> bool {
        self.pessimistic
    }
}

/// A client of the transactional API. Cloning is cheap and shares connections and caches.
///
/// ```no_run
/// # async fn demo() -> client::Result<()> {
/// use client::{Error, TransactionClient};
///
/// let client = TransactionClient::new(vec!["127.0.0.1:2379"]).await?;
///
/// // Optimistic: writes are buffered; a conflicting commit fails at commit time.
/// let mut txn = client.begin_optimistic().await?;
/// let balance = txn.get("alice").await?;
/// txn.put("alice", "90").await?;
/// txn.put("bob", "110").await?;
/// match txn.commit().await {
///     Ok(_) => {}
///     Err(Error::WriteConflict(_)) => { /* retry the whole transaction */ }
///     Err(e) => return Err(e),
/// }
///
/// // Pessimistic: get_for_update locks the key until commit or rollback.
/// let mut txn = client.begin_pessimistic().await?;
/// let counter = txn.get_for_update("counter").await?;
/// let next = counter.map_or(0, |v| String::from_utf8_lossy(&v).parse::<u64>().unwrap_or(0)) + 1;
/// txn.put("counter", next.to_string()).await?;
/// txn.commit().await?;
///
/// // A read-only snapshot at the current time.
/// let snapshot = client.snapshot(client.current_timestamp().await?);
/// let pairs = snapshot.scan("a"..="z", 10).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TransactionClient {
    cluster: Arc<Cluster>,
}

impl TransactionClient {
    /// Connects with the default [`Config`].
    pub async fn new<S: Into<String>>(
        pd_endpoints: impl IntoIterator<Item = S>,
    ) -> Result<TransactionClient> {
        TransactionClient::new_with_config(pd_endpoints, Config::default()).await
    }

    /// Connects with `config`.
    pub async fn new_with_config<S: Into<String>>(
        pd_endpoints: impl IntoIterator<Item = S>,
        config: Config,
    ) -> Result<TransactionClient> {
        let endpoints: Vec<String> = pd_endpoints.into_iter().map(Into::into).collect();
        Ok(TransactionClient {
            cluster: Cluster::connect(&endpoints, config, KeyMode::Txn).await?,
        })
    }

    /// Starts an optimistic transaction at a fresh timestamp.
    pub async fn begin_optimistic(&self) -> Result<Transaction> {
        self.begin_with_options(TransactionOptions::new_optimistic())
            .await
    }

    /// Starts a pessimistic transaction at a fresh timestamp.
    pub async fn begin_pessimistic(&self) -> Result<Transaction> {
        self.begin_with_options(TransactionOptions::new_pessimistic())
            .await
    }

    /// Starts a transaction with `options`.
    pub async fn begin_with_options(&self, options: TransactionOptions) -> Result<Transaction> {
        let start_ts = self.cluster.pd.get_timestamp().await?;
        Ok(Transaction::new(self.cluster.clone(), start_ts, options))
    }

    /// A read-only view at `ts`.
    pub fn snapshot(&self, ts: Timestamp) -> Snapshot {
        Snapshot::new(self.cluster.clone(), ts)
    }

    /// A fresh timestamp from PD.
    pub async fn current_timestamp(&self) -> Result<Timestamp> {
        self.cluster.pd.get_timestamp().await
    }

    /// The region serving `key` (from the cache, or PD), bounds decoded to user keys.
    pub async fn region_for_key(&self, key: impl Into<Key>) -> Result<Region> {
        self.cluster.cache.locate_key(key.into().as_bytes()).await
    }

    /// The PD client underneath (cluster inspection).
    pub fn pd(&self) -> &Arc<PdClient> {
        &self.cluster.pd
    }
}
