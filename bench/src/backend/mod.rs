//! The systems under test, behind one set of operations.
//!
//! Every backend gets the same [`Op`]s from the same generator; what an operation means on each
//! system:
//!
//! | op | TinyKV raw | TinyKV txn | etcd |
//! |---|---|---|---|
//! | read | RawGet | TSO + KvGet at that ts | Range (linearizable or serializable) |
//! | update, insert | RawPut | TSO + prewrite + TSO + commit (one key) | Put |
//! | scan | RawScan | TSO + KvScan | Range from the key, with a limit |
//! | read-modify-write | RawGet, then RawPut | one transaction: get + put + commit | Range, then Put |
//! | load batch | RawBatchPut | one transaction | one Txn of puts |
//!
//! Writes are durable on both systems (etcd fsyncs its WAL; TinyKV its raft log).

mod etcd;
mod tinykv;

use std::time::Duration;

use crate::config::{RunConfig, TargetConfig, TargetKind};
use crate::errors::Result;
use crate::stats::Outcome;
use crate::workload::Op;

pub use self::etcd::{
    connect as etcd_connect, leader_endpoint as etcd_leader_endpoint, EtcdBackend,
};
pub use self::tinykv::{RawBackend, TxnBackend};

/// The operations each system implements. Reads and scans return whether they found anything.
pub(crate) trait Ops {
    async fn read(&self, key: &[u8]) -> Result<bool>;
    async fn write(&self, key: &[u8], value: &[u8]) -> Result<()>;
    async fn scan(&self, start: &[u8], limit: u32) -> Result<bool>;
    async fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<bool>;
    async fn load(&self, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()>;
}

async fn execute_on<B: Ops>(b: &B, op: &Op) -> Result<Outcome> {
    let found = |f: bool| if f { Outcome::Ok } else { Outcome::NotFound };
    match op {
        Op::Read { key } => b.read(key).await.map(found),
        Op::Update { key, value } | Op::Insert { key, value, .. } => {
            b.write(key, value).await.map(|()| Outcome::Ok)
        }
        Op::Scan { start, limit } => b.scan(start, *limit).await.map(found),
        Op::ReadModifyWrite { key, value } => b.read_modify_write(key, value).await.map(found),
    }
}

/// A connected client of one system.
#[derive(Clone)]
pub enum Backend {
    /// TinyKV's raw API.
    Raw(RawBackend),
    /// TinyKV transactions.
    Txn(TxnBackend),
    /// etcd (boxed: its client is ten times the size of the others).
    Etcd(Box<EtcdBackend>),
}

impl Backend {
    /// Connects one client instance to `target`.
    pub async fn connect(target: &TargetConfig, run: &RunConfig) -> Result<Backend> {
        target.validate()?;
        let timeout = run.request_timeout;
        Ok(match target.kind {
            TargetKind::TinykvRaw => {
                Backend::Raw(RawBackend::connect(&target.pd_endpoints, timeout).await?)
            }
            TargetKind::TinykvTxn => {
                Backend::Txn(TxnBackend::connect(&target.pd_endpoints, timeout).await?)
            }
            TargetKind::Etcd => Backend::Etcd(Box::new(
                EtcdBackend::connect(
                    &target.etcd_endpoints,
                    target.etcd_read,
                    target.etcd_connect,
                    timeout,
                )
                .await?,
            )),
        })
    }

    /// Connects `run.connections` independent client instances.
    pub async fn connect_all(target: &TargetConfig, run: &RunConfig) -> Result<Vec<Backend>> {
        let mut all = Vec::with_capacity(run.connections);
        for _ in 0..run.connections {
            all.push(Backend::connect(target, run).await?);
        }
        Ok(all)
    }

    /// Executes one operation.
    pub async fn execute(&self, op: &Op) -> Result<Outcome> {
        match self {
            Backend::Raw(b) => execute_on(b, op).await,
            Backend::Txn(b) => execute_on(b, op).await,
            Backend::Etcd(b) => execute_on(b.as_ref(), op).await,
        }
    }

    /// Writes a batch of records in one request (load phase).
    pub async fn load(&self, records: Vec<(Vec<u8>, Vec<u8>)>) -> Result<()> {
        match self {
            Backend::Raw(b) => b.load(records).await,
            Backend::Txn(b) => b.load(records).await,
            Backend::Etcd(b) => b.load(records).await,
        }
    }

    /// Writes `key` and reads it back until both succeed or `timeout` passes: proof that the
    /// cluster serves this client end to end. Returns the last error on timeout.
    pub async fn probe(&self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let key = b"tinykv-bench/probe".to_vec();
        loop {
            let attempt = async {
                self.execute(&Op::Update {
                    key: key.clone(),
                    value: b"ok".to_vec(),
                })
                .await?;
                self.execute(&Op::Read { key: key.clone() }).await
            };
            match attempt.await {
                Ok(Outcome::Ok) => return Ok(()),
                Ok(Outcome::NotFound) => {
                    return Err(crate::errors::Error::process(
                        "probe",
                        "a key just written reads back as missing",
                    ))
                }
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "probe failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}
