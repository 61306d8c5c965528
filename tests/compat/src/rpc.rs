//! The harness's own calls to the cluster, outside any client under test: `SplitRegion` to force
//! splits, `KvPrewrite`/`KvCommit` to leave a transaction half-done as a crashed client would,
//! and the scheduler's operator route to move a leader.
//!
//! Requests go to the region leader PD reports, with that region's id, epoch and leader peer in
//! the context (what any client sends); region errors are retried until the deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use client::RegionWithLeader;
use proto::kvrpcpb::{CommitRequest, Context, Mutation, Op, PrewriteRequest, SplitRegionRequest};
use proto::tikvpb::tikv_client::TikvClient;
use tonic::transport::Channel;

use crate::cluster::CompatCluster;
use crate::errors::{Error, Result};
use crate::keys::Api;

/// How long one HTTP call to the scheduler may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// `[start, end)` as PD indexes that API's keys: raw keys as they are, transactional keys
/// memcomparable-encoded.
pub fn pd_range(api: Api, start: &[u8], end: &[u8]) -> (Vec<u8>, Vec<u8>) {
    match api {
        Api::Raw => (start.to_vec(), end.to_vec()),
        Api::Txn => (
            client::codec::encode_bytes(start),
            client::codec::encode_bytes(end),
        ),
    }
}

/// A key for messages: text when printable, else hex.
pub fn show(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => format!("{s:?}"),
        _ => key.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// The context a client sends to `region`'s leader.
fn context(region: &RegionWithLeader) -> std::result::Result<Context, String> {
    let leader = region
        .leader
        .ok_or_else(|| format!("region {} has no leader yet", region.region.id))?;
    Ok(Context {
        region_id: region.region.id,
        region_epoch: region.region.region_epoch,
        peer: Some(leader),
        ..Default::default()
    })
}

/// A connection to the store leading `region`.
async fn leader_client(
    c: &CompatCluster,
    region: &RegionWithLeader,
) -> std::result::Result<TikvClient<Channel>, String> {
    let leader = region
        .leader
        .ok_or_else(|| format!("region {} has no leader yet", region.region.id))?;
    let store = c
        .pd()
        .get_store(leader.store_id)
        .await
        .map_err(|e| format!("GetStore {}: {e}", leader.store_id))?;
    TikvClient::connect(format!("http://{}", store.address))
        .await
        .map_err(|e| {
            c.pd().invalidate_store(leader.store_id);
            format!(
                "connect to store {} at {}: {e}",
                leader.store_id, store.address
            )
        })
}

/// Splits the region holding `key` (raw, or a transactional user key the store encodes) at
/// `key`, and waits until PD shows a led region starting there.
pub async fn split(c: &CompatCluster, api: Api, key: &[u8]) -> Result<()> {
    let pd_key = pd_range(api, key, key).0;
    let what = format!("split at {}", show(key));
    c.poll(&what, || async {
        let region = c
            .region_at(&pd_key)
            .await
            .map_err(|e| format!("GetRegion: {e}"))?;
        if region.region.start_key == pd_key {
            return match region.leader {
                Some(_) => Ok(()),
                None => Err("the new region has no leader yet".into()),
            };
        }
        let mut kv = leader_client(c, &region).await?;
        let req = SplitRegionRequest {
            context: Some(context(&region)?),
            split_keys: vec![key.to_vec()],
            is_raw_kv: api == Api::Raw,
            ..Default::default()
        };
        match kv.split_region(req).await {
            Ok(resp) => match resp.into_inner().region_error {
                Some(e) => Err(format!("SplitRegion region error: {}", e.message)),
                // Done on the store; PD learns it from the next heartbeat.
                None => Err("split; waiting for PD to show it".into()),
            },
            Err(s) => Err(format!("SplitRegion: {s}")),
        }
    })
    .await
}

/// Transactional user keys grouped by the region PD says holds them, in key order.
async fn by_region(
    c: &CompatCluster,
    keys: &[Vec<u8>],
) -> std::result::Result<Vec<(RegionWithLeader, Vec<Vec<u8>>)>, String> {
    let mut groups: BTreeMap<Vec<u8>, (RegionWithLeader, Vec<Vec<u8>>)> = BTreeMap::new();
    for key in keys {
        let region = c
            .region_at(&client::codec::encode_bytes(key))
            .await
            .map_err(|e| format!("GetRegion: {e}"))?;
        groups
            .entry(region.region.start_key.clone())
            .or_insert_with(|| (region, Vec::new()))
            .1
            .push(key.clone());
    }
    Ok(groups.into_values().collect())
}

/// Prewrites `puts` (transactional user keys) as transaction `start_ts` with `primary` and a
/// `ttl_ms` lock TTL, region by region, and never commits: the state a client leaves when it
/// crashes between prewrite and commit.
pub async fn prewrite_only(
    c: &CompatCluster,
    primary: &[u8],
    puts: &[(Vec<u8>, Vec<u8>)],
    start_ts: u64,
    ttl_ms: u64,
) -> Result<()> {
    let values: BTreeMap<Vec<u8>, Vec<u8>> = puts.iter().cloned().collect();
    let keys: Vec<Vec<u8>> = values.keys().cloned().collect();
    let what = format!("prewrite of {} keys at {start_ts}", keys.len());
    // Outer error: retry (region errors, no leader yet); inner: the scenario's keys were not
    // as it assumed, which no retry fixes.
    let outcome: std::result::Result<(), String> = c
        .poll(&what, || async {
            for (region, keys) in by_region(c, &keys).await? {
                let req = PrewriteRequest {
                    context: Some(context(&region)?),
                    mutations: keys
                        .iter()
                        .map(|k| Mutation {
                            op: Op::Put as i32,
                            key: k.clone(),
                            value: values[k].clone(),
                            ..Default::default()
                        })
                        .collect(),
                    primary_lock: primary.to_vec(),
                    start_version: start_ts,
                    lock_ttl: ttl_ms,
                    txn_size: keys.len() as u64,
                    ..Default::default()
                };
                let resp = leader_client(c, &region)
                    .await?
                    .kv_prewrite(req)
                    .await
                    .map_err(|s| format!("KvPrewrite: {s}"))?
                    .into_inner();
                if let Some(e) = resp.region_error {
                    return Err(format!("KvPrewrite region error: {}", e.message));
                }
                if !resp.errors.is_empty() {
                    return Ok(Err(format!("key errors: {:?}", resp.errors)));
                }
            }
            Ok(Ok(()))
        })
        .await?;
    outcome.map_err(|message| Error::Rpc {
        rpc: "KvPrewrite",
        message,
    })
}

/// Commits `keys` of transaction `start_ts` at `commit_ts`, region by region (the primary
/// alone, say, to leave the secondaries for a reader to resolve).
pub async fn commit(
    c: &CompatCluster,
    keys: &[Vec<u8>],
    start_ts: u64,
    commit_ts: u64,
) -> Result<()> {
    let what = format!("commit of {} keys of {start_ts} at {commit_ts}", keys.len());
    let outcome: std::result::Result<(), String> = c
        .poll(&what, || async {
            for (region, keys) in by_region(c, keys).await? {
                let req = CommitRequest {
                    context: Some(context(&region)?),
                    start_version: start_ts,
                    keys,
                    commit_version: commit_ts,
                };
                let resp = leader_client(c, &region)
                    .await?
                    .kv_commit(req)
                    .await
                    .map_err(|s| format!("KvCommit: {s}"))?
                    .into_inner();
                if let Some(e) = resp.region_error {
                    return Err(format!("KvCommit region error: {}", e.message));
                }
                if let Some(e) = resp.error {
                    return Ok(Err(format!("key error: {e:?}")));
                }
            }
            Ok(Ok(()))
        })
        .await?;
    outcome.map_err(|message| Error::Rpc {
        rpc: "KvCommit",
        message,
    })
}

/// Asks the scheduler for a `transfer-leader` operator (`POST /pd/api/v1/operators`, PD's body).
pub async fn post_transfer_leader(url: &str, region_id: u64, to_store: u64) -> Result<()> {
    let body = serde_json::json!({
        "name": "transfer-leader",
        "region_id": region_id,
        "to_store_id": to_store,
    });
    let url = url.to_string();
    tokio::task::spawn_blocking(move || {
        let http = |message: String| Error::Http {
            path: url.clone(),
            message,
        };
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(HTTP_TIMEOUT))
            .build()
            .into();
        let mut resp = agent
            .post(&url)
            .send_json(&body)
            .map_err(|e| http(e.to_string()))?;
        let status = resp.status();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        if status.is_success() {
            Ok(())
        } else {
            Err(http(format!("{status}: {text}")))
        }
    })
    .await
    .map_err(|e| Error::Http {
        path: "/pd/api/v1/operators".into(),
        message: format!("request task failed: {e}"),
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transactional_ranges_are_encoded_raw_ones_are_not() {
        assert_eq!(
            pd_range(Api::Raw, b"a", b"b"),
            (b"a".to_vec(), b"b".to_vec())
        );
        let (s, e) = pd_range(Api::Txn, b"a", b"b");
        assert_eq!(client::codec::decode_bytes(&s).unwrap(), b"a".to_vec());
        assert!(s < e);
        assert_eq!(show(b"t/x"), "\"t/x\"");
        assert_eq!(show(&[0, 255]), "00ff");
    }
}
