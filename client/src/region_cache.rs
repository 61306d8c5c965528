//! The region cache: which region (and leader) serves a key, learned from PD and corrected by
//! the region errors stores return.
//!
//! Invariant: the cached regions never overlap. Inserting a region evicts every cached region
//! whose range intersects it (and any older entry with the same id), so a lookup by key finds
//! at most one candidate. An incoming region is refused when an overlapping cached region is
//! newer (higher epoch version, or same id with a higher conf version): PD answers and store
//! hints can arrive out of order.
//!
//! Bounds are kept in the caller's key space. In transactional mode keys are
//! memcomparable-encoded before asking PD and the bounds PD returns are decoded
//! (see [`crate::codec`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::RwLock;
use proto::metapb;
use tracing::{debug, warn};

use crate::codec::encode_bytes;
use crate::errors::{Error, Result};
use crate::pd::PdClient;
use crate::region::{KeyMode, Region, RegionVerId};

/// Regions fetched per `ScanRegions` call when a range walk misses the cache.
const SCAN_REGIONS_BATCH: i32 = 64;

/// What to do after an EpochNotMatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EpochOutcome {
    /// The cache now holds the store's current regions (or nothing): retry at once.
    RetryNow,
    /// The store is behind our cache: keep the cache, back off and retry.
    StoreBehind,
}

/// The cache's data structure, without IO.
#[derive(Debug, Default)]
pub(crate) struct RegionMap {
    by_start: BTreeMap<Vec<u8>, u64>,
    by_id: HashMap<u64, Region>,
}

impl RegionMap {
    pub fn get_by_key(&self, key: &[u8]) -> Option<&Region> {
        let (_, id) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        let region = &self.by_id[id];
        region.contains(key).then_some(region)
    }

    #[cfg(test)]
    pub fn get_by_id(&self, id: u64) -> Option<&Region> {
        self.by_id.get(&id)
    }

    /// The region holding the greatest keys below `upper` (`None`: the last region).
    pub fn get_before(&self, upper: Option<&[u8]>) -> Option<&Region> {
        let region = match upper {
            None => {
                let (_, id) = self.by_start.iter().next_back()?;
                &self.by_id[id]
            }
            Some(u) => {
                let (_, id) = self
                    .by_start
                    .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(u)))
                    .next_back()?;
                &self.by_id[id]
            }
        };
        match (region.end(), upper) {
            (None, _) => Some(region),
            (Some(end), Some(u)) if end >= u => Some(region),
            _ => None,
        }
    }

    /// Ids of cached regions intersecting `[start, end)` (`end` empty: unbounded), relying on
    /// the no-overlap invariant to stop early.
    fn overlapping(&self, start: &[u8], end: &[u8]) -> Vec<u64> {
        let candidates: Box<dyn DoubleEndedIterator<Item = (&Vec<u8>, &u64)>> = if end.is_empty() {
            Box::new(self.by_start.iter())
        } else {
            Box::new(
                self.by_start
                    .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(end))),
            )
        };
        let mut ids = Vec::new();
        for (_, id) in candidates.rev() {
            let r = &self.by_id[id];
            if r.end_key.is_empty() || r.end_key.as_slice() > start {
                ids.push(*id);
            } else {
                break;
            }
        }
        ids
    }

    /// Inserts `region`, evicting what it overlaps; false (and no change) when a cached
    /// overlapping region is newer.
    pub fn insert(&mut self, region: Region) -> bool {
        let overlapping = self.overlapping(&region.start_key, &region.end_key);
        let newer = |r: &Region| {
            r.epoch.version > region.epoch.version
                || (r.id == region.id
                    && r.epoch.version == region.epoch.version
                    && r.epoch.conf_ver > region.epoch.conf_ver)
        };
        if overlapping.iter().any(|id| newer(&self.by_id[id])) {
            return false;
        }
        if self.by_id.get(&region.id).is_some_and(newer) {
            return false;
        }
        for id in overlapping {
            self.remove_id(id);
        }
        self.remove_id(region.id);
        self.by_start.insert(region.start_key.clone(), region.id);
        self.by_id.insert(region.id, region);
        true
    }

    fn remove_id(&mut self, id: u64) -> Option<Region> {
        let r = self.by_id.remove(&id)?;
        self.by_start.remove(&r.start_key);
        Some(r)
    }

    /// Drops the region if the cached entry is still this version.
    pub fn remove(&mut self, ver: RegionVerId) -> bool {
        if self.by_id.get(&ver.id).is_some_and(|r| r.ver_id() == ver) {
            self.remove_id(ver.id);
            true
        } else {
            false
        }
    }

    /// Points the cached region at a new leader; false when the region changed meanwhile or the
    /// peer is not one of its replicas.
    pub fn update_leader(&mut self, ver: RegionVerId, leader: metapb::Peer) -> bool {
        match self.by_id.get_mut(&ver.id) {
            Some(r) if r.ver_id() == ver => {
                if !r.peers.is_empty() && !r.peers.iter().any(|p| p.id == leader.id) {
                    return false;
                }
                r.leader = Some(leader);
                true
            }
            _ => false,
        }
    }

    #[cfg(test)]
    fn check_invariant(&self) {
        assert_eq!(self.by_start.len(), self.by_id.len());
        let mut prev_end: Option<Vec<u8>> = None;
        for (start, id) in &self.by_start {
            let r = &self.by_id[id];
            assert_eq!(&r.start_key, start);
            if let Some(pe) = &prev_end {
                assert!(!pe.is_empty() && pe <= start, "overlap at {start:?}");
            }
            prev_end = Some(r.end_key.clone());
        }
    }
}

/// The region cache shared by all requests of one client.
pub(crate) struct RegionCache {
    pd: Arc<PdClient>,
    mode: KeyMode,
    map: RwLock<RegionMap>,
}

impl RegionCache {
    pub fn new(pd: Arc<PdClient>, mode: KeyMode) -> RegionCache {
        RegionCache {
            pd,
            mode,
            map: RwLock::new(RegionMap::default()),
        }
    }

    /// A key as PD indexes it.
    fn to_pd_key<'a>(&self, key: &'a [u8]) -> Cow<'a, [u8]> {
        match self.mode {
            KeyMode::Raw => Cow::Borrowed(key),
            KeyMode::Txn => Cow::Owned(encode_bytes(key)),
        }
    }

    fn insert(&self, region: Region) {
        if !self.map.write().insert(region.clone()) {
            debug!(region_id = region.id, "ignored stale region");
        }
    }

    /// The region containing `key`.
    pub async fn locate_key(&self, key: &[u8]) -> Result<Region> {
        if let Some(r) = self.map.read().get_by_key(key) {
            return Ok(r.clone());
        }
        self.load_key(key).await
    }

    async fn load_key(&self, key: &[u8]) -> Result<Region> {
        let found = self.pd.get_region(&self.to_pd_key(key)).await?;
        let region = Region::from_pd(found, self.mode)?;
        if !region.contains(key) {
            return Err(Error::invalid_response(
                "GetRegion",
                format!(
                    "region {} [\"{}\", \"{}\") does not contain key \"{}\"",
                    region.id,
                    region.start_key.escape_ascii(),
                    region.end_key.escape_ascii(),
                    key.escape_ascii()
                ),
            ));
        }
        self.insert(region.clone());
        Ok(region)
    }

    /// The regions covering `[start, end)` (`end == None`: to the end of the key space), in key
    /// order and contiguous. Misses are filled with `ScanRegions`.
    pub async fn locate_range(&self, start: &[u8], end: Option<&[u8]>) -> Result<Vec<Region>> {
        let mut out = Vec::new();
        let mut cursor = start.to_vec();
        loop {
            let cached = self.map.read().get_by_key(&cursor).cloned();
            let region = match cached {
                Some(r) => r,
                None => self.load_range(&cursor, end).await?,
            };
            let done = match region.end() {
                None => true,
                Some(e) => end.is_some_and(|end| e >= end),
            };
            cursor = region.end_key.clone();
            out.push(region);
            if done {
                return Ok(out);
            }
        }
    }

    /// Loads the regions from `cursor` towards `end` in one call and returns the one holding
    /// `cursor`. Falls back to `GetRegion` when PD has no `ScanRegions` or its answer does not
    /// cover `cursor`.
    async fn load_range(&self, cursor: &[u8], end: Option<&[u8]>) -> Result<Region> {
        let pd_end = end
            .map(|e| self.to_pd_key(e).into_owned())
            .unwrap_or_default();
        let scanned = match self
            .pd
            .scan_regions(&self.to_pd_key(cursor), &pd_end, SCAN_REGIONS_BATCH)
            .await
        {
            Ok(list) => list,
            Err(Error::Grpc { status, .. }) if status.code() == tonic::Code::Unimplemented => {
                return self.load_key(cursor).await;
            }
            Err(e) => return Err(e),
        };
        let mut found = None;
        for r in scanned {
            let region = Region::from_pd(r, self.mode)?;
            if region.contains(cursor) {
                found = Some(region.clone());
            }
            self.insert(region);
        }
        match found {
            Some(r) => Ok(r),
            None => self.load_key(cursor).await,
        }
    }

    /// The region holding the greatest keys of `[lower, upper)` (`upper == None`: unbounded);
    /// the caller guarantees the range is not empty. Used by reverse scans.
    pub async fn locate_before(&self, lower: &[u8], upper: Option<&[u8]>) -> Result<Region> {
        if let Some(r) = self.map.read().get_before(upper) {
            return Ok(r.clone());
        }
        let mut regions = self.locate_range(lower, upper).await?;
        Ok(regions
            .pop()
            .expect("locate_range returns at least one region"))
    }

    /// Groups items by the region holding their key, in key order. Any lookup failure fails the
    /// whole grouping: a batch is never silently shortened.
    pub async fn group_by_region<T>(
        &self,
        mut items: Vec<T>,
        key_of: impl Fn(&T) -> &[u8],
    ) -> Result<Vec<(Region, Vec<T>)>> {
        items.sort_by(|a, b| key_of(a).cmp(key_of(b)));
        let mut groups: Vec<(Region, Vec<T>)> = Vec::new();
        for item in items {
            if let Some((region, group)) = groups.last_mut() {
                if region.contains(key_of(&item)) {
                    group.push(item);
                    continue;
                }
            }
            let region = self.locate_key(key_of(&item)).await?;
            groups.push((region, vec![item]));
        }
        Ok(groups)
    }

    /// Forgets the region if the cache still holds this version of it.
    pub fn invalidate(&self, ver: RegionVerId) {
        if self.map.write().remove(ver) {
            debug!(region_id = ver.id, "region dropped from cache");
        }
    }

    /// Applies a NotLeader hint; false when the cache could not use it.
    pub fn update_leader(&self, ver: RegionVerId, leader: metapb::Peer) -> bool {
        self.map.write().update_leader(ver, leader)
    }

    /// Applies an EpochNotMatch from `store_id`: the store's current regions replace ours.
    /// Their leader is guessed to be the peer on the store that answered (regions born from a
    /// split start with their leader there); a wrong guess costs one NotLeader.
    pub fn on_epoch_not_match(
        &self,
        ver: RegionVerId,
        current: Vec<metapb::Region>,
        store_id: u64,
    ) -> EpochOutcome {
        if current.is_empty() {
            self.invalidate(ver);
            return EpochOutcome::RetryNow;
        }
        let behind = current.iter().any(|r| {
            r.id == ver.id
                && r.region_epoch
                    .is_some_and(|e| e.version < ver.version || e.conf_ver < ver.conf_ver)
        });
        if behind {
            return EpochOutcome::StoreBehind;
        }
        self.invalidate(ver);
        for meta in current {
            let leader = meta.peers.iter().find(|p| p.store_id == store_id).copied();
            match Region::from_meta(meta, leader, self.mode) {
                Ok(region) => self.insert(region),
                Err(e) => {
                    warn!(region_id = ver.id, error = %e, "unusable region in epoch not match")
                }
            }
        }
        EpochOutcome::RetryNow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &str, end: &str, version: u64) -> Region {
        Region {
            id,
            start_key: start.as_bytes().to_vec(),
            end_key: end.as_bytes().to_vec(),
            epoch: metapb::RegionEpoch {
                conf_ver: 1,
                version,
            },
            peers: vec![
                metapb::Peer {
                    id: id * 10 + 1,
                    store_id: 1,
                    ..Default::default()
                },
                metapb::Peer {
                    id: id * 10 + 2,
                    store_id: 2,
                    ..Default::default()
                },
            ],
            leader: None,
        }
    }

    #[test]
    fn lookup_by_key_respects_bounds() {
        let mut m = RegionMap::default();
        assert!(m.insert(region(1, "", "b", 1)));
        assert!(m.insert(region(2, "d", "", 1)));
        m.check_invariant();
        assert_eq!(m.get_by_key(b"a").unwrap().id, 1);
        assert!(m.get_by_key(b"b").is_none(), "gap between b and d");
        assert!(m.get_by_key(b"c").is_none());
        assert_eq!(m.get_by_key(b"d").unwrap().id, 2);
        assert_eq!(m.get_by_key(b"zzz").unwrap().id, 2);
    }

    #[test]
    fn insert_evicts_overlaps_and_keeps_invariant() {
        let mut m = RegionMap::default();
        m.insert(region(1, "", "c", 1));
        m.insert(region(2, "c", "f", 1));
        m.insert(region(3, "f", "", 1));
        // A merged region covering b..g replaces all three.
        assert!(m.insert(region(4, "b", "g", 2)));
        m.check_invariant();
        assert_eq!(m.by_id.len(), 1);
        assert!(m.get_by_key(b"a").is_none());
        assert_eq!(m.get_by_key(b"e").unwrap().id, 4);
        // Same id with a new range replaces the old entry.
        assert!(m.insert(region(4, "b", "d", 3)));
        m.check_invariant();
        assert!(m.get_by_key(b"e").is_none());
        assert_eq!(m.get_by_key(b"b").unwrap().id, 4);
    }

    #[test]
    fn stale_regions_are_refused() {
        let mut m = RegionMap::default();
        m.insert(region(1, "", "m", 2));
        m.insert(region(2, "m", "", 2));
        // The pre-split version of region 1 must not evict the split halves.
        assert!(!m.insert(region(1, "", "", 1)));
        m.check_invariant();
        assert_eq!(m.get_by_key(b"z").unwrap().id, 2);
        let mut older_conf = region(1, "", "m", 2);
        older_conf.epoch.conf_ver = 0;
        assert!(!m.insert(older_conf));
    }

    #[test]
    fn get_before_finds_the_region_below_a_bound() {
        let mut m = RegionMap::default();
        m.insert(region(1, "", "c", 1));
        m.insert(region(2, "c", "f", 1));
        assert_eq!(m.get_before(Some(b"c")).unwrap().id, 1);
        assert_eq!(m.get_before(Some(b"d")).unwrap().id, 2);
        assert_eq!(m.get_before(Some(b"f")).unwrap().id, 2);
        assert!(m.get_before(Some(b"g")).is_none(), "f.. is not cached");
        assert!(m.get_before(None).is_none(), "last region not cached");
        m.insert(region(3, "f", "", 1));
        assert_eq!(m.get_before(None).unwrap().id, 3);
    }

    #[test]
    fn remove_and_update_leader_check_the_version() {
        let mut m = RegionMap::default();
        m.insert(region(1, "", "", 2));
        let old = RegionVerId {
            id: 1,
            conf_ver: 1,
            version: 1,
        };
        let cur = m.get_by_id(1).unwrap().ver_id();
        let peer2 = m.get_by_id(1).unwrap().peers[1];
        assert!(!m.update_leader(old, peer2));
        assert!(m.update_leader(cur, peer2));
        assert_eq!(m.get_by_id(1).unwrap().leader, Some(peer2));
        let stranger = metapb::Peer {
            id: 99,
            store_id: 9,
            ..Default::default()
        };
        assert!(!m.update_leader(cur, stranger), "not a replica");
        assert!(!m.remove(old));
        assert!(m.remove(cur));
        assert!(m.get_by_key(b"a").is_none());
    }
}
