//! `SplitRegion`: split the region a request names at the given keys.
//!
//! Split keys are user keys. Transactional ones (the default) are memcomparable-encoded first,
//! because that is how transactional data is stored and how its region boundaries are
//! expressed; with `is_raw_kv` they are used as they are. Keys are sorted and deduplicated; an
//! empty or oversized key is refused before anything reaches the store. The store checks the
//! rest (leader, epoch, keys inside the region) and answers with every resulting region in key
//! order; the deprecated `left`/`right` carry the first and the last of them.

use proto::kvrpcpb::{SplitRegionRequest, SplitRegionResponse};
use tonic::Status;

use super::ServiceCtx;
use crate::errors::{raw_response, Error, Result};
use crate::mvcc::key::encode_bytes;
use crate::storage::Storage;

/// Most split keys one request may carry (each becomes a region).
const MAX_SPLIT_KEYS: usize = 1000;

/// The `SplitRegion` handler.
pub(super) async fn split_region<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: SplitRegionRequest,
) -> std::result::Result<SplitRegionResponse, Status> {
    let region_id = req.context.as_ref().map_or(0, |c| c.region_id);
    let res = split(ctx, req).await;
    match &res {
        Ok(r) => tracing::info!(
            region_id,
            regions = r.regions.len(),
            "region split by request"
        ),
        Err(Error::Region(e)) => {
            tracing::debug!(region_id, error = %e.message, "split request hit a region error")
        }
        Err(e) => tracing::info!(region_id, error = %e, "split request refused"),
    }
    raw_response(res)
}

async fn split<S: Storage>(
    ctx: &ServiceCtx<S>,
    req: SplitRegionRequest,
) -> Result<SplitRegionResponse> {
    let context = req.context.unwrap_or_default();
    #[allow(deprecated)]
    let single = req.split_key;
    let mut keys = req.split_keys;
    if !single.is_empty() {
        keys.push(single);
    }
    if keys.is_empty() {
        return Err(Error::InvalidArgument("no split key given".into()));
    }
    if keys.len() > MAX_SPLIT_KEYS {
        return Err(Error::InvalidArgument(format!(
            "{} split keys in one request; at most {MAX_SPLIT_KEYS}",
            keys.len()
        )));
    }
    for k in &keys {
        if k.is_empty() {
            return Err(Error::InvalidArgument("empty split key".into()));
        }
        if k.len() > ctx.limits.max_key_size {
            return Err(Error::InvalidArgument(format!(
                "split key of {} bytes exceeds the {}-byte key limit",
                k.len(),
                ctx.limits.max_key_size
            )));
        }
    }
    let mut keys: Vec<Vec<u8>> = if req.is_raw_kv {
        keys
    } else {
        keys.iter().map(|k| encode_bytes(k)).collect()
    };
    keys.sort();
    keys.dedup();
    let regions = ctx.storage.split_region(&context, keys).await?;
    #[allow(deprecated)]
    let resp = SplitRegionResponse {
        region_error: None,
        left: regions.first().cloned(),
        right: regions.last().cloned(),
        regions,
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use proto::kvrpcpb::Context;
    use proto::metapb::Region;
    use raftstore::Node;

    use super::*;
    use crate::config::Limits;
    use crate::storage::{RaftStorage, StandaloneStorage};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn splits_encode_transactional_keys_and_answer_every_region() {
        let dir = tempfile::tempdir().unwrap();
        let (node, router, region) = crate::test_util::single_store_node(dir.path()).await;
        let svc = super::super::TikvService::new(
            RaftStorage::new(router.clone()),
            Limits::new_test_config(),
        );
        let ctx = |r: &Region| Context {
            region_id: r.id,
            region_epoch: r.region_epoch,
            peer: r.peers.first().copied(),
            ..Default::default()
        };

        // Raw keys as they are, unsorted and duplicated on input.
        let req = SplitRegionRequest {
            context: Some(ctx(&region)),
            split_keys: vec![b"m".to_vec(), b"c".to_vec(), b"m".to_vec()],
            is_raw_kv: true,
            ..Default::default()
        };
        let resp = split_region(svc.ctx(), req).await.unwrap();
        assert!(resp.region_error.is_none(), "{resp:?}");
        let bounds: Vec<(Vec<u8>, Vec<u8>)> = resp
            .regions
            .iter()
            .map(|r| (r.start_key.clone(), r.end_key.clone()))
            .collect();
        assert_eq!(
            bounds,
            vec![
                (vec![], b"c".to_vec()),
                (b"c".to_vec(), b"m".to_vec()),
                (b"m".to_vec(), vec![])
            ]
        );
        #[allow(deprecated)]
        let (left, right) = (resp.left.clone().unwrap(), resp.right.clone().unwrap());
        assert_eq!((left.id, right.end_key.len()), (region.id, 0));

        // The old epoch is refused with the current regions (once the new ones are up).
        bounds_region(&node, b"m", 3).await;
        let req = SplitRegionRequest {
            context: Some(ctx(&region)),
            split_keys: vec![b"x".to_vec()],
            is_raw_kv: true,
            ..Default::default()
        };
        let resp = split_region(svc.ctx(), req).await.unwrap();
        let e = resp.region_error.expect("epoch not match");
        let current = e.epoch_not_match.unwrap().current_regions;
        assert_eq!(current.len(), 3, "{current:?}");

        // Transactional keys are encoded: the split lands on enc("x").
        let last = bounds_region(&node, b"x", 3).await;
        let req = SplitRegionRequest {
            context: Some(ctx(&last)),
            split_keys: vec![b"x".to_vec()],
            ..Default::default()
        };
        let resp = split_region(svc.ctx(), req).await.unwrap();
        assert!(resp.region_error.is_none(), "{resp:?}");
        assert_eq!(resp.regions[1].start_key, encode_bytes(b"x"));

        // A key outside the region.
        let first = bounds_region(&node, b"a", 3).await;
        let req = SplitRegionRequest {
            context: Some(ctx(&first)),
            split_keys: vec![b"z".to_vec()],
            is_raw_kv: true,
            ..Default::default()
        };
        let resp = split_region(svc.ctx(), req).await.unwrap();
        assert!(resp.region_error.unwrap().key_not_in_region.is_some());
        tokio::task::spawn_blocking(move || node.stop())
            .await
            .unwrap();
    }

    /// The region of this store holding `key` at `version` or later, once its peer leads it.
    async fn bounds_region(node: &Node, key: &[u8], version: u64) -> Region {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let found = node.status().regions.into_iter().find(|r| {
                r.is_leader
                    && r.region.region_epoch.unwrap_or_default().version >= version
                    && raft_core::keys::key_in_region(key, &r.region)
            });
            if let Some(r) = found {
                return r.region;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no leader for {key:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn bad_requests_are_refused_and_a_standalone_server_cannot_split() {
        let dir = tempfile::tempdir().unwrap();
        let storage = StandaloneStorage::open(
            dir.path(),
            &raft_core::config::EngineConfig::new_test_config(),
        )
        .unwrap();
        let svc = super::super::TikvService::new(storage, Limits::new_test_config());
        let ctx = svc.ctx();
        let status = split_region(ctx, SplitRegionRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        let req = SplitRegionRequest {
            split_keys: vec![b"a".to_vec(), vec![]],
            ..Default::default()
        };
        let status = split_region(ctx, req).await.unwrap_err();
        assert!(status.message().contains("empty split key"), "{status:?}");
        let req = SplitRegionRequest {
            split_keys: vec![b"a".to_vec()],
            ..Default::default()
        };
        let status = split_region(ctx, req).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("cluster mode"), "{status:?}");
    }
}
