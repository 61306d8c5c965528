//! The raw key-value API: no transactions, no MVCC; each call is atomic only per region.
//!
//! Keys are routed in raw key space (region bounds are raw keys). A batch call splits its keys
//! by region and sends one request per region; if any part fails the call returns the error
//! (parts already applied stay applied, as in TiKV).

mod scan;

use std::collections::BTreeMap;
use std::sync::Arc;

use proto::kvrpcpb;

use crate::config::Config;
use crate::dispatch::Cluster;
use crate::errors::{Error, Result};
use crate::kv::{BoundRange, Key, KvPair, Value};
use crate::pd::PdClient;
use crate::region::{KeyMode, Region};

/// A client of the raw API. Cloning is cheap and shares connections and caches.
///
/// ```no_run
/// # async fn demo() -> client::Result<()> {
/// use client::RawClient;
///
/// let raw = RawClient::new(vec!["127.0.0.1:2379"]).await?;
/// raw.put("k1", "v1").await?;
/// assert_eq!(raw.get("k1").await?, Some(b"v1".to_vec()));
/// raw.batch_put(vec![("k2", "v2"), ("k3", "v3")]).await?;
/// let pairs = raw.scan("k1"..="k3", 10).await?;
/// assert_eq!(pairs.len(), 3);
/// let newest_first = raw.scan_reverse("k1".., 2).await?;
/// assert_eq!(newest_first[0].key, "k3".into());
/// let (previous, swapped) = raw.compare_and_swap("k1", Some(b"v1".to_vec()), "v9").await?;
/// assert!(swapped && previous == Some(b"v1".to_vec()));
/// raw.delete_range("k1".."k9").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RawClient {
    cluster: Arc<Cluster>,
    cf: String,
    for_cas: bool,
}

impl RawClient {
    /// Connects with the default [`Config`].
    pub async fn new<S: Into<String>>(
        pd_endpoints: impl IntoIterator<Item = S>,
    ) -> Result<RawClient> {
        RawClient::new_with_config(pd_endpoints, Config::default()).await
    }

    /// Connects with `config`.
    pub async fn new_with_config<S: Into<String>>(
        pd_endpoints: impl IntoIterator<Item = S>,
        config: Config,
    ) -> Result<RawClient> {
        let endpoints: Vec<String> = pd_endpoints.into_iter().map(Into::into).collect();
        Ok(RawClient {
            cluster: Cluster::connect(&endpoints, config, KeyMode::Raw).await?,
            cf: String::new(),
            for_cas: false,
        })
    }

    /// A client on the same connections that works on column family `cf` (empty: default).
    pub fn with_cf(&self, cf: impl Into<String>) -> RawClient {
        RawClient {
            cf: cf.into(),
            ..self.clone()
        }
    }

    /// A client whose puts and deletes are marked `for_cas`, so servers that serialize
    /// compare-and-swap with plain writes (TiKV's "atomic for CAS" mode) do so.
    pub fn with_atomic_for_cas(&self) -> RawClient {
        RawClient {
            for_cas: true,
            ..self.clone()
        }
    }

    /// The PD client underneath (cluster inspection, timestamps).
    pub fn pd(&self) -> &Arc<PdClient> {
        &self.cluster.pd
    }

    /// The region serving `key` (from the cache, or PD), bounds in raw key space.
    pub async fn region_for_key(&self, key: impl Into<Key>) -> Result<Region> {
        self.cluster.cache.locate_key(key.into().as_bytes()).await
    }

    /// The value of `key`, or `None`.
    pub async fn get(&self, key: impl Into<Key>) -> Result<Option<Value>> {
        let key = key.into().into_inner();
        let req = kvrpcpb::RawGetRequest {
            key: key.clone(),
            cf: self.cf.clone(),
            ..Default::default()
        };
        let resp = self.cluster.execute_key(&key, req).await?;
        check_error("RawGet", resp.error)?;
        Ok((!resp.not_found).then_some(resp.value))
    }

    /// The pairs that exist among `keys`, sorted by key.
    pub async fn batch_get(
        &self,
        keys: impl IntoIterator<Item = impl Into<Key>>,
    ) -> Result<Vec<KvPair>> {
        let mut keys: Vec<Vec<u8>> = keys.into_iter().map(|k| k.into().into_inner()).collect();
        keys.sort();
        keys.dedup();
        let cf = &self.cf;
        let results = self
            .cluster
            .execute_sharded(
                keys,
                |k| k.as_slice(),
                |_, keys| kvrpcpb::RawBatchGetRequest {
                    keys: keys.to_vec(),
                    cf: cf.clone(),
                    ..Default::default()
                },
            )
            .await?;
        let mut pairs = Vec::new();
        for (_, resp) in results {
            for p in resp.pairs {
                if let Some(e) = p.error {
                    return Err(e.into());
                }
                pairs.push(KvPair::new(p.key, p.value));
            }
        }
        pairs.sort();
        Ok(pairs)
    }

    /// Writes one pair.
    pub async fn put(&self, key: impl Into<Key>, value: impl Into<Value>) -> Result<()> {
        let key = key.into().into_inner();
        let req = kvrpcpb::RawPutRequest {
            key: key.clone(),
            value: value.into(),
            cf: self.cf.clone(),
            for_cas: self.for_cas,
            ..Default::default()
        };
        let resp = self.cluster.execute_key(&key, req).await?;
        check_error("RawPut", resp.error)
    }

    /// Writes several pairs; a key given twice keeps its last value.
    pub async fn batch_put(
        &self,
        pairs: impl IntoIterator<Item = impl Into<KvPair>>,
    ) -> Result<()> {
        let unique: BTreeMap<Key, Value> = pairs
            .into_iter()
            .map(|p| {
                let p = p.into();
                (p.key, p.value)
            })
            .collect();
        let pairs: Vec<kvrpcpb::KvPair> = unique
            .into_iter()
            .map(|(key, value)| kvrpcpb::KvPair {
                key: key.into_inner(),
                value,
                error: None,
            })
            .collect();
        let (cf, for_cas) = (&self.cf, self.for_cas);
        let results = self
            .cluster
            .execute_sharded(
                pairs,
                |p| p.key.as_slice(),
                |_, pairs| kvrpcpb::RawBatchPutRequest {
                    pairs: pairs.to_vec(),
                    cf: cf.clone(),
                    for_cas,
                    ..Default::default()
                },
            )
            .await?;
        for (_, resp) in results {
            check_error("RawBatchPut", resp.error)?;
        }
        Ok(())
    }

    /// Deletes one key (deleting a missing key is not an error).
    pub async fn delete(&self, key: impl Into<Key>) -> Result<()> {
        let key = key.into().into_inner();
        let req = kvrpcpb::RawDeleteRequest {
            key: key.clone(),
            cf: self.cf.clone(),
            for_cas: self.for_cas,
            ..Default::default()
        };
        let resp = self.cluster.execute_key(&key, req).await?;
        check_error("RawDelete", resp.error)
    }

    /// Deletes several keys.
    pub async fn batch_delete(&self, keys: impl IntoIterator<Item = impl Into<Key>>) -> Result<()> {
        let mut keys: Vec<Vec<u8>> = keys.into_iter().map(|k| k.into().into_inner()).collect();
        keys.sort();
        keys.dedup();
        let (cf, for_cas) = (&self.cf, self.for_cas);
        let results = self
            .cluster
            .execute_sharded(
                keys,
                |k| k.as_slice(),
                |_, keys| kvrpcpb::RawBatchDeleteRequest {
                    keys: keys.to_vec(),
                    cf: cf.clone(),
                    for_cas,
                    ..Default::default()
                },
            )
            .await?;
        for (_, resp) in results {
            check_error("RawBatchDelete", resp.error)?;
        }
        Ok(())
    }

    /// Up to `limit` pairs in `range`, in ascending key order, across regions.
    pub async fn scan(&self, range: impl Into<BoundRange>, limit: u32) -> Result<Vec<KvPair>> {
        scan::scan(&self.cluster, &self.cf, range.into(), limit, false, false).await
    }

    /// Up to `limit` keys in `range`, ascending, without their values.
    pub async fn scan_keys(&self, range: impl Into<BoundRange>, limit: u32) -> Result<Vec<Key>> {
        let pairs = scan::scan(&self.cluster, &self.cf, range.into(), limit, true, false).await?;
        Ok(pairs.into_iter().map(|p| p.key).collect())
    }

    /// Up to `limit` pairs in `range`, in descending key order (the largest keys first).
    pub async fn scan_reverse(
        &self,
        range: impl Into<BoundRange>,
        limit: u32,
    ) -> Result<Vec<KvPair>> {
        scan::scan(&self.cluster, &self.cf, range.into(), limit, false, true).await
    }

    /// Deletes every key in `range`, region by region.
    pub async fn delete_range(&self, range: impl Into<BoundRange>) -> Result<()> {
        scan::delete_range(&self.cluster, &self.cf, range.into()).await
    }

    /// Sets `key` to `new` only if its current value is `previous` (`None`: the key must not
    /// exist). Returns the value found before and whether the swap happened.
    ///
    /// If the call times out and is retried, the retry may find its own earlier write and
    /// report "not swapped"; read the key to tell the cases apart.
    pub async fn compare_and_swap(
        &self,
        key: impl Into<Key>,
        previous: Option<Value>,
        new: impl Into<Value>,
    ) -> Result<(Option<Value>, bool)> {
        let key = key.into().into_inner();
        let req = kvrpcpb::RawCasRequest {
            key: key.clone(),
            value: new.into(),
            previous_not_exist: previous.is_none(),
            previous_value: previous.unwrap_or_default(),
            cf: self.cf.clone(),
            ..Default::default()
        };
        let resp = self.cluster.execute_key(&key, req).await?;
        check_error("RawCompareAndSwap", resp.error)?;
        let found = (!resp.previous_not_exist).then_some(resp.previous_value);
        Ok((found, resp.succeed))
    }
}

/// Raw responses report failures as a string.
fn check_error(rpc: &'static str, error: String) -> Result<()> {
    if error.is_empty() {
        Ok(())
    } else {
        Err(Error::Kv {
            rpc,
            message: error,
        })
    }
}
