//! Raw scans and range deletes: walking the regions of a range in either direction.
//!
//! A forward scan keeps a cursor (the smallest key not yet covered). Each step asks the region
//! holding the cursor for `[cursor, min(region end, range end))`. A full page means the region
//! may hold more, so the cursor moves just past the last key; a short page means the region is
//! exhausted, so the cursor jumps to the region's end. The scan stops at the limit, the range
//! end, or the end of the key space. A reverse scan mirrors this with an exclusive upper bound
//! that moves down. After a region error the step is re-planned from the cache, so splits and
//! leader changes mid-scan neither lose nor repeat keys.

use proto::kvrpcpb;

use super::check_error;
use crate::dispatch::Cluster;
use crate::errors::{Error, Result};
use crate::kv::{next_key, BoundRange, KvPair, MAX_SCAN_LIMIT};
use crate::page::check_page;
use crate::region::min_end;

pub(super) async fn scan(
    cluster: &Cluster,
    cf: &str,
    range: BoundRange,
    limit: u32,
    key_only: bool,
    reverse: bool,
) -> Result<Vec<KvPair>> {
    if limit > MAX_SCAN_LIMIT {
        return Err(Error::InvalidArgument(format!(
            "scan limit {limit} exceeds {MAX_SCAN_LIMIT}"
        )));
    }
    let Some((start, end)) = range.into_half_open() else {
        return Ok(Vec::new());
    };
    if limit == 0 {
        return Ok(Vec::new());
    }
    let limit = limit as usize;
    let mut out = Vec::new();
    let mut backoff = cluster.config.region_backoff.start();
    // Forward: the next key to read. Reverse: the exclusive upper bound (None = unbounded).
    let mut cursor = start.clone();
    let mut upper = end.clone();
    loop {
        let page = (limit - out.len()).min(cluster.config.scan_batch_size as usize);
        let (region, req, lower, step_upper) = if reverse {
            let region = cluster
                .cache
                .locate_before(&start, upper.as_deref())
                .await?;
            let lower = region.start_key.clone().max(start.clone());
            let req = kvrpcpb::RawScanRequest {
                // Reverse scans read downwards from `start_key` (exclusive) to `end_key`.
                start_key: upper.clone().unwrap_or_default(),
                end_key: lower.clone(),
                limit: page as u32,
                key_only,
                cf: cf.to_owned(),
                reverse: true,
                ..Default::default()
            };
            let step_upper = upper.clone();
            (region, req, lower, step_upper)
        } else {
            let region = cluster.cache.locate_key(&cursor).await?;
            let step_upper = min_end(region.end(), end.as_deref()).map(<[u8]>::to_vec);
            let req = kvrpcpb::RawScanRequest {
                start_key: cursor.clone(),
                end_key: step_upper.clone().unwrap_or_default(),
                limit: page as u32,
                key_only,
                cf: cf.to_owned(),
                reverse: false,
                ..Default::default()
            };
            (region, req, cursor.clone(), step_upper)
        };
        let resp = match cluster.send_once(&region, req).await? {
            Ok(resp) => resp,
            Err(failure) => {
                cluster
                    .handle_failure(&region, failure, &mut backoff)
                    .await?;
                continue;
            }
        };
        backoff.reset();
        check_page(
            "RawScan",
            &resp.kvs,
            page,
            &lower,
            step_upper.as_deref(),
            reverse,
        )?;
        let full = resp.kvs.len() == page;
        let last = resp.kvs.last().map(|p| p.key.clone());
        out.extend(resp.kvs.into_iter().map(|p| KvPair::new(p.key, p.value)));
        if out.len() >= limit {
            break;
        }
        if reverse {
            if full {
                upper = last;
            } else if region.start_key <= start {
                break;
            } else {
                upper = Some(region.start_key.clone());
            }
        } else if full {
            cursor = next_key(last.expect("a full page is not empty"));
        } else {
            match step_upper {
                Some(u) if end.as_deref() != Some(u.as_slice()) => cursor = u,
                _ => break,
            }
        }
    }
    Ok(out)
}

pub(super) async fn delete_range(cluster: &Cluster, cf: &str, range: BoundRange) -> Result<()> {
    let Some((start, end)) = range.into_half_open() else {
        return Ok(());
    };
    let mut backoff = cluster.config.region_backoff.start();
    let mut cursor = start;
    loop {
        let region = cluster.cache.locate_key(&cursor).await?;
        let step_end = min_end(region.end(), end.as_deref()).map(<[u8]>::to_vec);
        let req = kvrpcpb::RawDeleteRangeRequest {
            start_key: cursor.clone(),
            // Empty: to the end of the key space (only for the last region).
            end_key: step_end.clone().unwrap_or_default(),
            cf: cf.to_owned(),
            ..Default::default()
        };
        match cluster.send_once(&region, req).await? {
            Ok(resp) => check_error("RawDeleteRange", resp.error)?,
            Err(failure) => {
                cluster
                    .handle_failure(&region, failure, &mut backoff)
                    .await?;
                continue;
            }
        }
        backoff.reset();
        match step_end {
            Some(u) if end.as_deref() != Some(u.as_slice()) => cursor = u,
            _ => return Ok(()),
        }
    }
}
