//! TinyKV through the workspace's `client` crate: raw API and Percolator transactions.

use std::time::Duration;

use client::{Config, RawClient, Transaction, TransactionClient};

use super::Ops;
use crate::errors::Result;

fn client_config(timeout: Duration) -> Config {
    Config {
        timeout,
        ..Config::default()
    }
}

/// A raw-API client.
#[derive(Clone)]
pub struct RawBackend {
    raw: RawClient,
}

impl RawBackend {
    /// Connects to the scheduler at `pd` (the client finds the stores through it).
    pub async fn connect(pd: &[String], timeout: Duration) -> Result<RawBackend> {
        Ok(RawBackend {
            raw: RawClient::new_with_config(pd.iter().cloned(), client_config(timeout)).await?,
        })
    }

    /// The client underneath.
    pub fn client(&self) -> &RawClient {
        &self.raw
    }
}

impl Ops for RawBackend {
    async fn read(&self, key: &[u8]) -> Result<bool> {
        Ok(self.raw.get(key).await?.is_some())
    }

    async fn write(&self, key: &[u8], value: &[u8]) -> Result<()> {
        Ok(self.raw.put(key, value.to_vec()).await?)
    }

    async fn scan(&self, start: &[u8], limit: u32) -> Result<bool> {
        Ok(!self.raw.scan(start.to_vec().., limit).await?.is_empty())
    }

    /// Not atomic, as in YCSB's raw bindings: a read, then a write.
    async fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        let found = self.raw.get(key).await?.is_some();
        self.raw.put(key, value.to_vec()).await?;
        Ok(found)
    }

    async fn load(&self, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        Ok(self.raw.batch_put(records).await?)
    }
}

/// A transactional client: every operation is its own optimistic transaction.
#[derive(Clone)]
pub struct TxnBackend {
    txn: TransactionClient,
}

impl TxnBackend {
    /// Connects to the scheduler at `pd`.
    pub async fn connect(pd: &[String], timeout: Duration) -> Result<TxnBackend> {
        Ok(TxnBackend {
            txn: TransactionClient::new_with_config(pd.iter().cloned(), client_config(timeout))
                .await?,
        })
    }

    /// The client underneath.
    pub fn client(&self) -> &TransactionClient {
        &self.txn
    }

    /// Commits `txn`; on a definite failure rolls it back so no lock is left for readers to
    /// clean up. An undetermined commit is left alone: it may have committed.
    async fn commit(mut txn: Transaction) -> Result<()> {
        match txn.commit().await {
            Ok(_) => Ok(()),
            Err(e) => {
                if !matches!(e, client::Error::UndeterminedCommit { .. }) {
                    if let Err(rollback) = txn.rollback().await {
                        tracing::debug!(error = %rollback, "rollback after a failed commit");
                    }
                }
                Err(e.into())
            }
        }
    }
}

impl Ops for TxnBackend {
    /// A read-only snapshot at a fresh timestamp: what `begin; get; commit` costs without the
    /// empty commit.
    async fn read(&self, key: &[u8]) -> Result<bool> {
        let ts = self.txn.current_timestamp().await?;
        Ok(self.txn.snapshot(ts).get(key).await?.is_some())
    }

    async fn write(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut txn = self.txn.begin_optimistic().await?;
        txn.put(key, value.to_vec()).await?;
        Self::commit(txn).await
    }

    async fn scan(&self, start: &[u8], limit: u32) -> Result<bool> {
        let ts = self.txn.current_timestamp().await?;
        Ok(!self
            .txn
            .snapshot(ts)
            .scan(start.to_vec().., limit)
            .await?
            .is_empty())
    }

    /// Atomic: the read and the write are one transaction.
    async fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<bool> {
        let mut txn = self.txn.begin_optimistic().await?;
        let found = match txn.get(key).await {
            Ok(v) => v.is_some(),
            Err(e) => {
                let _ = txn.rollback().await;
                return Err(e.into());
            }
        };
        txn.put(key, value.to_vec()).await?;
        Self::commit(txn).await?;
        Ok(found)
    }

    async fn load(&self, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        let mut txn = self.txn.begin_optimistic().await?;
        for (key, value) in records {
            txn.put(key, value).await?;
        }
        Self::commit(txn).await
    }
}
