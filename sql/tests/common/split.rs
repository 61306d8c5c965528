//! Forced region splits through the stores' `tikvpb.Tikv/SplitRegion` RPC, and region counts
//! from the scheduler.
//!
//! Split keys are transactional user keys: the store memcomparable-encodes them, as it stores
//! transactional data, and the scheduler reports region bounds encoded. All keys falling in one
//! region go to its leader in a single request; the loop then polls the scheduler until every
//! key starts a region with a leader, re-sending only to regions that changed (a leader moved,
//! an earlier split not yet reported).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use client::codec::encode_bytes;
use client::{PdClient, RegionWithLeader};
use proto::kvrpcpb::{Context, SplitRegionRequest};
use proto::tikvpb::tikv_client::TikvClient;
use tokio::time::Instant;

/// Pause between two looks at the scheduler.
const POLL: Duration = Duration::from_millis(100);

/// Splits the cluster at `user_keys` and returns the number of regions once the scheduler
/// shows every key as the start of a region with a leader.
pub async fn pre_split(
    pd_endpoints: &[String],
    user_keys: &[Vec<u8>],
    timeout: Duration,
) -> Result<usize, String> {
    let deadline = Instant::now() + timeout;
    let pd = PdClient::connect(pd_endpoints, client::Config::default())
        .await
        .map_err(|e| format!("cannot reach the scheduler: {e}"))?;
    // (encoded, user) pairs in key order.
    let mut keys: Vec<(Vec<u8>, Vec<u8>)> = user_keys
        .iter()
        .map(|k| (encode_bytes(k), k.clone()))
        .collect();
    keys.sort();
    keys.dedup();
    // Region versions a split was accepted for: the scheduler has not seen the result yet.
    let mut sent: HashSet<(u64, u64)> = HashSet::new();
    loop {
        let last_problem = match split_round(&pd, &keys, &mut sent).await {
            Ok(Some(regions)) => return Ok(regions),
            Ok(None) => "waiting for the scheduler to see the splits".to_string(),
            Err(problem) => problem,
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "the split keys are not all region starts after {timeout:?}: {last_problem}"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One look at the scheduler: `Some(regions)` when done, else splits what is missing.
async fn split_round(
    pd: &PdClient,
    keys: &[(Vec<u8>, Vec<u8>)],
    sent: &mut HashSet<(u64, u64)>,
) -> Result<Option<usize>, String> {
    let regions = pd
        .scan_regions(b"", b"", 0)
        .await
        .map_err(|e| format!("ScanRegions: {e}"))?;
    let starts: HashSet<&[u8]> = regions
        .iter()
        .map(|r| r.region.start_key.as_slice())
        .collect();
    let missing: Vec<&(Vec<u8>, Vec<u8>)> = keys
        .iter()
        .filter(|(encoded, _)| !starts.contains(encoded.as_slice()))
        .collect();
    if missing.is_empty() {
        return match regions.iter().find(|r| r.leader.is_none()) {
            Some(r) => Err(format!("region {} has no leader yet", r.region.id)),
            None => Ok(Some(regions.len())),
        };
    }
    // The region holding each missing key (regions are in key order and cover everything).
    let mut groups: BTreeMap<usize, Vec<Vec<u8>>> = BTreeMap::new();
    for (encoded, user) in missing {
        let at = regions
            .iter()
            .position(|r| contains(r, encoded))
            .ok_or_else(|| format!("no region holds split key {}", user.escape_ascii()))?;
        groups.entry(at).or_default().push(user.clone());
    }
    for (at, user_keys) in groups {
        let region = &regions[at];
        let epoch = region.region.region_epoch.unwrap_or_default();
        if sent.contains(&(region.region.id, epoch.version)) {
            continue;
        }
        let Some(leader) = region.leader else {
            return Err(format!("region {} has no leader", region.region.id));
        };
        let store = pd
            .get_store(leader.store_id)
            .await
            .map_err(|e| format!("GetStore {}: {e}", leader.store_id))?;
        let mut kv = TikvClient::connect(format!("http://{}", store.address))
            .await
            .map_err(|e| {
                pd.invalidate_store(leader.store_id);
                format!("connect to store {}: {e}", store.address)
            })?;
        let req = SplitRegionRequest {
            context: Some(Context {
                region_id: region.region.id,
                region_epoch: Some(epoch),
                peer: Some(leader),
                ..Default::default()
            }),
            split_keys: user_keys,
            is_raw_kv: false,
            ..Default::default()
        };
        let resp = kv
            .split_region(req)
            .await
            .map_err(|s| format!("SplitRegion of region {}: {s}", region.region.id))?
            .into_inner();
        if let Some(e) = resp.region_error {
            // A stale view (leader moved, epoch changed): the next round re-reads.
            return Err(format!(
                "SplitRegion of region {}: region error {}",
                region.region.id, e.message
            ));
        }
        sent.insert((region.region.id, epoch.version));
    }
    Ok(None)
}

fn contains(region: &RegionWithLeader, encoded: &[u8]) -> bool {
    let r = &region.region;
    r.start_key.as_slice() <= encoded && (r.end_key.is_empty() || encoded < r.end_key.as_slice())
}

/// How many regions hold some key of the user-key range `[start, end)`.
pub fn count_regions(pd_endpoints: &[String], start: &[u8], end: &[u8]) -> Result<usize, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a runtime: {e}"))?;
    runtime.block_on(async {
        let pd = PdClient::connect(pd_endpoints, client::Config::default())
            .await
            .map_err(|e| format!("cannot reach the scheduler: {e}"))?;
        let regions = pd
            .scan_regions(&encode_bytes(start), &encode_bytes(end), 0)
            .await
            .map_err(|e| format!("ScanRegions: {e}"))?;
        Ok(regions.len())
    })
}
