//! Applying `BatchSplit` (and the deprecated single `Split`): one region becomes several, at
//! the same place in the log on every replica.
//!
//! The split keys are checked again against the region as apply sees it (epoch `version`, keys
//! strictly inside the range and increasing, one new peer id per existing peer). Every region
//! the split produces gets `version + number of new regions`; the derived region (same id) keeps
//! the leftmost range, or the rightmost with `right_derive`. All of them are written in **one**
//! batch with the apply state, synced, so after a crash either the whole split is durable or
//! none of it (and the entry is applied again).
//!
//! A new region's initial states (region, apply state at index 5) are only written when this
//! store has no initialized peer of it and no tombstone newer than the split: a peer created by
//! a snapshot first keeps its data; a peer removed after the split stays removed (and the range's
//! data here, which nobody owns any more, is deleted). The data itself does not move: the new
//! regions own their part of the range in the same engine.

use proto::metapb::{Peer, Region, RegionEpoch};
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, AdminResponse, BatchSplitResponse, SplitRequest, SplitResponse,
};
use proto::raft_serverpb::{PeerState, RaftApplyState, RaftTruncatedState};
use raft_core::engine::{Mutable, CF_DEFAULT, DATA_CFS};
use raft_core::keys;
use raft_core::storage::state::{
    load_region_state, write_peer_state, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM,
};

use super::{ApplyContext, ApplyDelegate, ExecResult, Executed};
use crate::errors::{Error, Result};

/// The split requests of a `BatchSplit` (or a deprecated `Split`) and whether the original
/// region keeps the rightmost range.
pub(crate) fn split_requests(admin: &AdminRequest) -> Result<(Vec<SplitRequest>, bool)> {
    #[allow(deprecated)]
    match admin.cmd_type() {
        AdminCmdType::BatchSplit => {
            let b = admin
                .splits
                .as_ref()
                .ok_or_else(|| Error::InvalidRequest("batch split without requests".into()))?;
            Ok((b.requests.clone(), b.right_derive))
        }
        AdminCmdType::Split => {
            let s = admin
                .split
                .as_ref()
                .ok_or_else(|| Error::InvalidRequest("split without a request".into()))?;
            Ok((vec![s.clone()], s.right_derive))
        }
        other => Err(Error::InvalidRequest(format!(
            "{other:?} is not a split command"
        ))),
    }
}

/// Checks split `requests` against `region`: at least one; every key non-empty, strictly
/// inside the region and greater than the previous one; fresh, distinct region and peer ids,
/// one peer id per member.
pub(crate) fn validate_split(region: &Region, requests: &[SplitRequest]) -> Result<()> {
    let invalid = |m: String| Err(Error::InvalidRequest(m));
    if requests.is_empty() {
        return invalid("split without split keys".into());
    }
    let mut ids = std::collections::HashSet::new();
    ids.insert(region.id);
    for p in &region.peers {
        ids.insert(p.id);
    }
    let mut prev: &[u8] = &region.start_key;
    for (i, r) in requests.iter().enumerate() {
        let key = r.split_key.as_slice();
        if key.is_empty() {
            return invalid(format!("split key #{i} is empty"));
        }
        if !keys::key_in_region(key, region) {
            return Err(Error::KeyNotInRegion {
                key: key.to_vec(),
                region: Box::new(region.clone()),
            });
        }
        if key <= prev {
            return invalid(format!(
                "split key #{i} {:?} is not after the region start or the previous split key",
                key.escape_ascii().to_string()
            ));
        }
        prev = key;
        if r.new_peer_ids.len() != region.peers.len() {
            return invalid(format!(
                "split #{i} has {} new peer ids for {} peers",
                r.new_peer_ids.len(),
                region.peers.len()
            ));
        }
        for id in std::iter::once(r.new_region_id).chain(r.new_peer_ids.iter().copied()) {
            if id == 0 || !ids.insert(id) {
                return invalid(format!("split #{i} reuses or lacks an id ({id})"));
            }
        }
    }
    Ok(())
}

/// The regions `region` splits into (in key order) and the index of the derived one.
pub(crate) fn split_regions(
    region: &Region,
    requests: &[SplitRequest],
    right_derive: bool,
) -> (Vec<Region>, usize) {
    let epoch = region.region_epoch.unwrap_or_default();
    let version = epoch.version + requests.len() as u64;
    let new_epoch = Some(RegionEpoch {
        conf_ver: epoch.conf_ver,
        version,
    });
    let mut bounds: Vec<&[u8]> = vec![&region.start_key];
    bounds.extend(requests.iter().map(|r| r.split_key.as_slice()));
    bounds.push(&region.end_key);
    let derived_at = if right_derive { requests.len() } else { 0 };
    let mut new_ids = requests.iter();
    let regions = bounds
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let mut r = Region {
                id: region.id,
                start_key: w[0].to_vec(),
                end_key: w[1].to_vec(),
                region_epoch: new_epoch,
                peers: region.peers.clone(),
            };
            if i != derived_at {
                let req = new_ids.next().expect("one request per new region");
                r.id = req.new_region_id;
                r.peers = region
                    .peers
                    .iter()
                    .zip(&req.new_peer_ids)
                    .map(|(p, id)| Peer { id: *id, ..*p })
                    .collect();
            }
            r
        })
        .collect();
    (regions, derived_at)
}

impl ApplyDelegate {
    /// Applies a split (see the module docs).
    pub(super) fn exec_split(
        &mut self,
        ctx: &mut ApplyContext,
        admin: &AdminRequest,
        out: &mut Executed,
    ) -> Result<AdminResponse> {
        let (requests, right_derive) = split_requests(admin)?;
        validate_split(&self.region, &requests)?;
        let (regions, derived_at) = split_regions(&self.region, &requests, right_derive);
        let mut new_regions = Vec::with_capacity(regions.len() - 1);
        for (i, r) in regions.iter().enumerate() {
            if i == derived_at {
                write_peer_state(&mut ctx.kv_wb, r, PeerState::Normal)?;
                continue;
            }
            let existing = load_region_state(&ctx.engines.kv, r.id)?;
            let removed = existing
                .as_ref()
                .is_some_and(|s| s.state() == PeerState::Tombstone);
            let create = match &existing {
                Some(s) if s.state() == PeerState::Normal => false,
                Some(s) => {
                    let removed_at = s.region.as_ref().and_then(|x| x.region_epoch);
                    let born = r.region_epoch.unwrap_or_default();
                    removed_at.unwrap_or_default().conf_ver < born.conf_ver
                }
                None => true,
            };
            if create {
                write_peer_state(&mut ctx.kv_wb, r, PeerState::Normal)?;
                ctx.kv_wb.put_msg_cf(
                    CF_DEFAULT,
                    &keys::apply_state_key(r.id),
                    &initial_apply_state(),
                )?;
            } else if removed {
                // Removed from this store after the split: nobody here owns this part any more.
                let (start, end) = (keys::data_key(&r.start_key), keys::data_end_key(&r.end_key));
                for cf in DATA_CFS {
                    ctx.kv_wb.delete_range_cf(cf, &start, &end)?;
                }
            }
            new_regions.push((r.clone(), create));
        }
        ctx.sync = true;
        let derived = regions[derived_at].clone();
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.peer_id,
            version = derived.region_epoch.unwrap_or_default().version,
            new = ?new_regions.iter().map(|(r, c)| (r.id, *c)).collect::<Vec<_>>(),
            "region split at apply"
        );
        self.region = derived.clone();
        let mut resp = AdminResponse {
            cmd_type: admin.cmd_type,
            ..Default::default()
        };
        #[allow(deprecated)]
        if admin.cmd_type() == AdminCmdType::Split {
            resp.split = Some(SplitResponse {
                left: regions.first().cloned(),
                right: regions.last().cloned(),
            });
        } else {
            resp.splits = Some(BatchSplitResponse {
                regions: regions.clone(),
            });
        }
        out.exec = Some(ExecResult::Split {
            derived,
            regions,
            new_regions,
        });
        Ok(resp)
    }
}

/// The apply state a region created by a split starts with: applied and truncated at
/// ([`RAFT_INIT_LOG_INDEX`], [`RAFT_INIT_LOG_TERM`]), as a bootstrapped region.
pub(crate) fn initial_apply_state() -> RaftApplyState {
    RaftApplyState {
        applied_index: RAFT_INIT_LOG_INDEX,
        truncated_state: Some(RaftTruncatedState {
            index: RAFT_INIT_LOG_INDEX,
            term: RAFT_INIT_LOG_TERM,
        }),
        last_commit_index: 0,
        commit_index: RAFT_INIT_LOG_INDEX,
        commit_term: RAFT_INIT_LOG_TERM,
    }
}
