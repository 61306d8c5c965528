//! The conformance scenarios driven with TiKV's Rust client (`tikv-client` 0.4), each in its own
//! key namespace ([`crate::keys`]), each asserting what that client returns *and* reading its
//! writes back through our own client (the client can report success for writes that never
//! reached a store: reference notes §5.2).
//!
//! - [`raw`]: get/put/delete, batches, delete_range, compare-and-swap, column families, the
//!   refused TTL, and the scans the client gets right.
//! - [`txn`]: commit and read-back, rollback, write conflict, `lock_keys`, insert on an existing
//!   key, snapshot reads at an older timestamp, scans across regions, and what the client's 1PC
//!   and async-commit options do here.
//! - [`locks`]: transactions abandoned between prewrite and commit, found by a lock scan and
//!   resolved by later readers.
//! - [`pessimistic`]: `get_for_update`, pessimistic puts, lock conflicts and rollback.
//!
//! The topology tests (`tests/rust_client.rs`) run them on one region, after forced splits,
//! around leader transfers, epoch changes and a killed store.

pub mod locks;
pub mod pessimistic;
pub mod raw;
pub mod txn;

use std::collections::BTreeMap;

use crate::cluster::CompatCluster;
use crate::errors::{Error, Result};
use crate::keys::Namespace;

/// Pairs in key order, as every read-back compares them.
pub type Pairs = BTreeMap<Vec<u8>, Vec<u8>>;

/// The clients under test, built once per cluster.
pub struct Clients {
    /// Raw API, plain (API v1).
    pub raw: tikv_client::RawClient,
    /// Raw API with `for_cas` writes, the only mode that allows compare-and-swap.
    pub cas: tikv_client::RawClient,
    /// Transactional API.
    pub txn: tikv_client::TransactionClient,
}

impl Clients {
    /// Connects each client to the cluster's PD.
    pub async fn connect(c: &CompatCluster) -> Result<Clients> {
        let raw = c.tikv_raw().await?;
        let cas = raw.with_atomic_for_cas();
        let txn = c.tikv_txn().await?;
        Ok(Clients { raw, cas, txn })
    }
}

/// Adds the failed operation's name to an error of TiKV's client.
pub trait Ctx<T> {
    /// `Err(e)` becomes [`Error::TikvClient`] naming `what`.
    fn ctx(self, what: &str) -> Result<T>;
}

impl<T> Ctx<T> for std::result::Result<T, tikv_client::Error> {
    fn ctx(self, what: &str) -> Result<T> {
        self.map_err(Error::tikv(what))
    }
}

/// Every namespace the scenarios use, raw ones first: the key ranges a split topology cuts in two.
pub fn namespaces() -> Vec<Namespace> {
    raw::namespaces()
        .into_iter()
        .chain(txn::namespaces())
        .chain(locks::namespaces())
        .chain(pessimistic::namespaces())
        .collect()
}

/// Runs every scenario once.
pub async fn run_all(c: &CompatCluster, t: &Clients) -> Result<()> {
    raw::run(c, t).await?;
    txn::run(c, t).await?;
    locks::run(c, t).await?;
    pessimistic::run(c, t).await?;
    Ok(())
}

/// Raw pairs of `ns` read back through our client.
pub async fn our_raw_pairs(c: &CompatCluster, ns: &Namespace) -> Result<Pairs> {
    let range = ns.range();
    Ok(c.raw()
        .scan(range.start..range.end, client::MAX_SCAN_LIMIT)
        .await?
        .into_iter()
        .map(|p| (p.key.into_inner(), p.value))
        .collect())
}

/// Transactional pairs of `ns` read back through our client, at a fresh timestamp.
pub async fn our_txn_pairs(c: &CompatCluster, ns: &Namespace) -> Result<Pairs> {
    let ts = c.txn().current_timestamp().await?;
    our_txn_pairs_at(c, ns, ts.version()).await
}

/// Transactional pairs of `ns` read back through our client at `version`.
pub async fn our_txn_pairs_at(c: &CompatCluster, ns: &Namespace, version: u64) -> Result<Pairs> {
    let range = ns.range();
    Ok(c.txn()
        .snapshot(client::Timestamp::from_version(version))
        .scan(range.start..range.end, client::MAX_SCAN_LIMIT)
        .await?
        .into_iter()
        .map(|p| (p.key.into_inner(), p.value))
        .collect())
}

/// TiKV client pairs as a map (the client returns them in key order per region, but batch
/// reads in no particular order).
pub fn tikv_pairs(pairs: impl IntoIterator<Item = tikv_client::KvPair>) -> Pairs {
    pairs
        .into_iter()
        .map(|p| {
            let (k, v): (tikv_client::Key, tikv_client::Value) = p.into();
            (k.into(), v)
        })
        .collect()
}

/// TiKV client pairs as a list, keeping the client's order (scans).
pub fn tikv_list(pairs: impl IntoIterator<Item = tikv_client::KvPair>) -> Vec<(Vec<u8>, Vec<u8>)> {
    pairs
        .into_iter()
        .map(|p| {
            let (k, v): (tikv_client::Key, tikv_client::Value) = p.into();
            (k.into(), v)
        })
        .collect()
}

/// A map as printable `key=value` text for assertion messages.
pub fn show(pairs: &Pairs) -> Vec<String> {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
        .collect()
}
