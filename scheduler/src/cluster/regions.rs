//! Region heartbeats, region lookups and split id allocation.

use std::sync::Arc;
use std::time::Instant;

use proto::metapb;
use proto::pdpb::{RegionHeartbeatRequest, SplitId};

use super::Cluster;
use crate::core::{Change, RegionInfo};
use crate::errors::{Error, Result};

impl Cluster {
    /// Validates a heartbeat from a store, applies it, and sends the region's pending operator
    /// command (if any) to the leader's stream.
    ///
    /// Stricter than [`Cluster::process_region_heartbeat`]: a store's heartbeat must name a
    /// leader that is one of the region's peers.
    pub fn handle_region_heartbeat(&self, req: &RegionHeartbeatRequest) -> Result<()> {
        let region = RegionInfo::from_heartbeat(req)
            .ok_or_else(|| Error::InvalidRequest("heartbeat without region".into()))?;
        let leader = req
            .leader
            .as_ref()
            .ok_or_else(|| Error::InvalidRequest("heartbeat without leader".into()))?;
        if region.peers().is_empty() {
            return Err(Error::InvalidRequest(format!(
                "region {} has no peers",
                region.id()
            )));
        }
        if !region
            .peers()
            .iter()
            .any(|p| p.id == leader.id && p.store_id == leader.store_id)
        {
            return Err(Error::InvalidRequest(format!(
                "leader peer {} on store {} is not a peer of region {}",
                leader.id,
                leader.store_id,
                region.id()
            )));
        }
        {
            let st = self.state.read();
            Self::ensure_bootstrapped(&st)?;
            if st
                .stores
                .get(&leader.store_id)
                .is_some_and(|s| s.is_tombstone())
            {
                return Err(Error::StoreTombstone(leader.store_id));
            }
        }
        let region = self.process_region_heartbeat(region)?;
        let resp = self.operators.lock().on_region(&region, Instant::now());
        if let Some(resp) = resp {
            self.send_to_leader(&region, resp);
        }
        Ok(())
    }

    /// Applies the heartbeat rules to `region` and caches it: rejects stale reports, evicts
    /// overlapped regions, refreshes per-store statistics and persists metadata changes.
    /// Accepts anything else, including region id 0, no peers, no leader and no epoch.
    /// Returns the cached region.
    pub fn process_region_heartbeat(&self, region: RegionInfo) -> Result<Arc<RegionInfo>> {
        if !region.has_valid_range() {
            return Err(Error::InvalidRequest(format!(
                "region {} has start key >= end key",
                region.id()
            )));
        }
        let mut st = self.state.write();
        st.regions.check_stale(&region)?;
        let change = st.regions.change_of(&region);
        if change == Change::None {
            return Ok(st
                .regions
                .get(region.id())
                .cloned()
                .expect("unchanged region is cached"));
        }
        let region = Arc::new(region);
        if change == Change::Meta {
            let evicted: Vec<u64> = st
                .regions
                .overlaps(&region)
                .iter()
                .map(|r| r.id())
                .collect();
            self.meta.update_regions(&[&region.meta], &evicted)?;
            tracing::debug!(
                region_id = region.id(),
                conf_ver = region.conf_ver(),
                version = region.version(),
                evicted = ?evicted,
                "region metadata updated"
            );
        }
        st.regions.insert(region.clone());
        Ok(region)
    }

    /// The region containing `key`.
    pub fn region_by_key(&self, key: &[u8]) -> Result<Arc<RegionInfo>> {
        let st = self.state.read();
        Self::ensure_bootstrapped(&st)?;
        st.regions
            .search(key)
            .cloned()
            .ok_or_else(|| Error::RegionNotFound(format!("no region contains key {key:?}")))
    }

    /// The region ending where the one containing `key` starts.
    pub fn prev_region(&self, key: &[u8]) -> Result<Arc<RegionInfo>> {
        let st = self.state.read();
        Self::ensure_bootstrapped(&st)?;
        st.regions
            .search_prev(key)
            .cloned()
            .ok_or_else(|| Error::RegionNotFound(format!("no region before key {key:?}")))
    }

    /// The region with this id.
    pub fn region_by_id(&self, id: u64) -> Result<Arc<RegionInfo>> {
        let st = self.state.read();
        Self::ensure_bootstrapped(&st)?;
        st.regions
            .get(id)
            .cloned()
            .ok_or_else(|| Error::RegionNotFound(format!("no region with id {id}")))
    }

    /// Regions intersecting `[start, end)` in key order, at most `limit` (0 = all).
    pub fn scan_regions(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Arc<RegionInfo>>> {
        if !end.is_empty() && start >= end {
            return Err(Error::InvalidRequest(
                "scan start key must be below the end key".into(),
            ));
        }
        let st = self.state.read();
        Self::ensure_bootstrapped(&st)?;
        Ok(st.regions.scan(start, end, limit))
    }

    /// All cached regions in key order.
    pub fn regions(&self) -> Vec<Arc<RegionInfo>> {
        self.state.read().regions.iter().cloned().collect()
    }

    /// Allocates ids for splitting `region` into `count + 1` regions: per new region, a region
    /// id and one peer id for each of the region's peers.
    pub fn ask_split(&self, region: Option<&metapb::Region>, count: u32) -> Result<Vec<SplitId>> {
        let region = region.ok_or_else(|| Error::InvalidRequest("missing region".into()))?;
        if count == 0 || count > self.max_batch_split_count {
            return Err(Error::InvalidRequest(format!(
                "split count must be in 1..={}, got {count}",
                self.max_batch_split_count
            )));
        }
        if region.peers.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "region {} has no peers",
                region.id
            )));
        }
        {
            let st = self.state.read();
            Self::ensure_bootstrapped(&st)?;
            let cur = st
                .regions
                .get(region.id)
                .ok_or_else(|| Error::RegionNotFound(format!("no region with id {}", region.id)))?;
            let asked = region.region_epoch.unwrap_or_default();
            if asked.version < cur.version() {
                return Err(Error::StaleRegion {
                    region_id: region.id,
                    reason: format!(
                        "split asked at version {}, the region is at version {}",
                        asked.version,
                        cur.version()
                    ),
                });
            }
        }
        let per_split = 1 + region.peers.len();
        let ids = self.ids.alloc_many(per_split * count as usize)?;
        let splits: Vec<SplitId> = ids
            .chunks(per_split)
            .map(|c| SplitId {
                new_region_id: c[0],
                new_peer_ids: c[1..].to_vec(),
            })
            .collect();
        tracing::info!(
            region_id = region.id,
            new_regions = ?splits.iter().map(|s| s.new_region_id).collect::<Vec<_>>(),
            "split ids allocated"
        );
        Ok(splits)
    }

    /// Accepts a split report. The regions themselves are taken from their leaders' heartbeats,
    /// which carry leadership too; the report is checked and logged.
    pub fn report_split(&self, regions: &[metapb::Region]) -> Result<()> {
        if regions.len() < 2 {
            return Err(Error::InvalidRequest(format!(
                "a split report needs at least two regions, got {}",
                regions.len()
            )));
        }
        Self::ensure_bootstrapped(&self.state.read())?;
        tracing::info!(
            regions = ?regions.iter().map(|r| r.id).collect::<Vec<_>>(),
            "split reported"
        );
        Ok(())
    }
}
