//! The region cache: regions by id and by start key, the heartbeat staleness rules, and per-store
//! statistics kept up to date incrementally.
//!
//! Invariant: the ranges of the regions in the tree never overlap. Inserting a region evicts every
//! cached region that overlaps it (they are older: the staleness check ran first), which can leave
//! a gap until the region that now covers it reports — lookups in a gap find nothing.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde::Serialize;

use super::region::RegionInfo;
use crate::errors::{Error, Result};

/// Per-store totals over the regions in the tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreRegionStats {
    /// Regions with a peer on the store.
    pub region_count: u64,
    /// Regions whose leader is on the store.
    pub leader_count: u64,
    /// Sum of `size_mb` over `region_count`.
    pub region_size: u64,
    /// Sum of `size_mb` over `leader_count`.
    pub leader_size: u64,
    /// Pending peers on the store.
    pub pending_peer_count: u64,
}

impl StoreRegionStats {
    fn apply(&mut self, region: &RegionInfo, store_id: u64, sign: i64) {
        let add = |v: &mut u64, d: u64| {
            *v = if sign > 0 {
                *v + d
            } else {
                v.checked_sub(d)
                    .expect("store statistics underflow: region removed twice")
            }
        };
        let size = region.size_mb();
        add(&mut self.region_count, 1);
        add(&mut self.region_size, size);
        if region.is_leader_on(store_id) {
            add(&mut self.leader_count, 1);
            add(&mut self.leader_size, size);
        }
        if region.is_pending_on(store_id) {
            add(&mut self.pending_peer_count, 1);
        }
    }
}

/// What a heartbeat changes compared with the cached region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing changed; the heartbeat is a no-op.
    None,
    /// Only leader-reported state changed (leader, pending/down peers, size, term).
    Stats,
    /// The region is new, or its range, epoch or peers changed: it must be persisted.
    Meta,
}

/// Regions by id and by start key.
#[derive(Debug, Default)]
pub struct RegionTree {
    by_start: BTreeMap<Vec<u8>, u64>,
    by_id: HashMap<u64, Arc<RegionInfo>>,
    stores: HashMap<u64, StoreRegionStats>,
}

impl RegionTree {
    /// An empty tree.
    pub fn new() -> RegionTree {
        RegionTree::default()
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether the tree is empty.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The region with this id.
    pub fn get(&self, id: u64) -> Option<&Arc<RegionInfo>> {
        self.by_id.get(&id)
    }

    /// The region containing `key`.
    pub fn search(&self, key: &[u8]) -> Option<&Arc<RegionInfo>> {
        let (_, id) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()?;
        let r = &self.by_id[id];
        r.contains(key).then_some(r)
    }

    /// The region right before the one containing `key` (the one ending where it starts).
    pub fn search_prev(&self, key: &[u8]) -> Option<&Arc<RegionInfo>> {
        let cur = self.search(key)?;
        if cur.start_key().is_empty() {
            return None;
        }
        let (_, id) = self
            .by_start
            .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(cur.start_key())))
            .next_back()?;
        let prev = &self.by_id[id];
        (prev.end_key() == cur.start_key()).then_some(prev)
    }

    /// Regions intersecting `[start, end)` (empty `end` = +infinity) in key order, at most
    /// `limit` of them (`0` = no limit).
    pub fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Vec<Arc<RegionInfo>> {
        let mut out: Vec<Arc<RegionInfo>> = Vec::new();
        let first = self.search(start).map(|r| r.start_key().to_vec());
        let from = first.as_deref().unwrap_or(start);
        for (k, id) in self
            .by_start
            .range::<[u8], _>((Bound::Included(from), Bound::Unbounded))
        {
            if !end.is_empty() && k.as_slice() >= end {
                break;
            }
            if limit > 0 && out.len() >= limit {
                break;
            }
            out.push(self.by_id[id].clone());
        }
        out
    }

    /// All regions in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<RegionInfo>> + '_ {
        self.by_start.values().map(|id| &self.by_id[id])
    }

    /// Regions whose range intersects `region`'s, other than `region` itself (by id).
    pub fn overlaps(&self, region: &RegionInfo) -> Vec<Arc<RegionInfo>> {
        self.scan(region.start_key(), region.end_key(), 0)
            .into_iter()
            .filter(|r| r.id() != region.id())
            .collect()
    }

    /// Totals for `store_id` (zero for an unknown store).
    pub fn store_stats(&self, store_id: u64) -> StoreRegionStats {
        self.stores.get(&store_id).copied().unwrap_or_default()
    }

    /// Recomputes every store's totals from scratch (for checking the incremental ones).
    pub fn recompute_store_stats(&self) -> HashMap<u64, StoreRegionStats> {
        let mut out: HashMap<u64, StoreRegionStats> = HashMap::new();
        for r in self.by_id.values() {
            for s in r.store_ids() {
                out.entry(s).or_default().apply(r, s, 1);
            }
        }
        out.retain(|_, v| *v != StoreRegionStats::default());
        out
    }

    /// Applies the heartbeat staleness rules to `incoming`:
    /// - against the cached region with the same id: neither `version` nor `conf_ver` may go
    ///   back, and a reported non-zero term may not go back either (a deposed leader);
    /// - against every other overlapping cached region: `version` may not go back. `conf_ver` is
    ///   not compared across regions: a merge keeps the target's conf_ver, which may be lower
    ///   than the source's.
    pub fn check_stale(&self, incoming: &RegionInfo) -> Result<()> {
        let stale = |reason: String| Error::StaleRegion {
            region_id: incoming.id(),
            reason,
        };
        if let Some(cur) = self.by_id.get(&incoming.id()) {
            let (e, c) = (incoming.epoch(), cur.epoch());
            if e.version < c.version || e.conf_ver < c.conf_ver {
                return Err(stale(format!(
                    "epoch (conf_ver {}, version {}) is older than the cached (conf_ver {}, version {})",
                    e.conf_ver, e.version, c.conf_ver, c.version
                )));
            }
            if incoming.term > 0 && incoming.term < cur.term {
                return Err(stale(format!(
                    "term {} is older than the cached term {}",
                    incoming.term, cur.term
                )));
            }
        }
        for o in self.overlaps(incoming) {
            if incoming.version() < o.version() {
                return Err(stale(format!(
                    "version {} is older than overlapping region {} (version {})",
                    incoming.version(),
                    o.id(),
                    o.version()
                )));
            }
        }
        Ok(())
    }

    /// What accepting `incoming` would change.
    pub fn change_of(&self, incoming: &RegionInfo) -> Change {
        let Some(cur) = self.by_id.get(&incoming.id()) else {
            return Change::Meta;
        };
        if cur.meta != incoming.meta {
            Change::Meta
        } else if **cur != *incoming {
            Change::Stats
        } else {
            Change::None
        }
    }

    /// Puts `region` in the tree, replacing the cached region with its id and evicting every
    /// region it overlaps. Returns the evicted regions (other ids). Call
    /// [`RegionTree::check_stale`] first.
    pub fn insert(&mut self, region: Arc<RegionInfo>) -> Vec<Arc<RegionInfo>> {
        self.remove(region.id());
        let evicted = self.overlaps(&region);
        for o in &evicted {
            self.remove(o.id());
        }
        for s in region.store_ids() {
            self.stores.entry(s).or_default().apply(&region, s, 1);
        }
        self.by_start
            .insert(region.start_key().to_vec(), region.id());
        self.by_id.insert(region.id(), region);
        evicted
    }

    /// Removes the region with this id.
    pub fn remove(&mut self, id: u64) -> Option<Arc<RegionInfo>> {
        let old = self.by_id.remove(&id)?;
        if self.by_start.get(old.start_key()) == Some(&id) {
            self.by_start.remove(old.start_key());
        }
        for s in old.store_ids() {
            if let Some(st) = self.stores.get_mut(&s) {
                st.apply(&old, s, -1);
                if *st == StoreRegionStats::default() {
                    self.stores.remove(&s);
                }
            }
        }
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::metapb::{self, Peer, RegionEpoch};

    fn region(id: u64, start: &[u8], end: &[u8], version: u64, stores: &[u64]) -> RegionInfo {
        let peers: Vec<Peer> = stores
            .iter()
            .map(|s| Peer {
                id: id * 100 + s,
                store_id: *s,
                ..Default::default()
            })
            .collect();
        let leader = peers.first().cloned();
        RegionInfo::new(
            metapb::Region {
                id,
                start_key: start.to_vec(),
                end_key: end.to_vec(),
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version,
                }),
                peers,
            },
            leader,
        )
    }

    fn ids(v: &[Arc<RegionInfo>]) -> Vec<u64> {
        v.iter().map(|r| r.id()).collect()
    }

    #[test]
    fn search_scan_and_prev() {
        let mut t = RegionTree::new();
        t.insert(Arc::new(region(1, b"", b"c", 1, &[1])));
        t.insert(Arc::new(region(2, b"c", b"f", 1, &[1])));
        t.insert(Arc::new(region(3, b"h", b"", 1, &[2])));
        assert_eq!(t.search(b"").unwrap().id(), 1);
        assert_eq!(t.search(b"c").unwrap().id(), 2);
        assert!(t.search(b"g").is_none(), "gap between f and h");
        assert_eq!(t.search(b"zzz").unwrap().id(), 3);
        assert_eq!(t.search_prev(b"d").unwrap().id(), 1);
        assert!(t.search_prev(b"a").is_none());
        assert!(
            t.search_prev(b"x").is_none(),
            "region 3 is not adjacent to 2"
        );
        assert_eq!(ids(&t.scan(b"b", b"", 0)), vec![1, 2, 3]);
        assert_eq!(ids(&t.scan(b"d", b"h", 0)), vec![2]);
        assert_eq!(ids(&t.scan(b"", b"", 2)), vec![1, 2]);
        assert_eq!(ids(&t.scan(b"g", b"", 0)), vec![3]);
    }

    #[test]
    fn insert_evicts_overlaps_and_keeps_stats_exact() {
        let mut t = RegionTree::new();
        t.insert(Arc::new(region(1, b"", b"", 1, &[1, 2, 3])));
        assert_eq!(t.store_stats(1).leader_count, 1);
        // Split: the new right half arrives first and evicts the whole old range.
        let evicted = t.insert(Arc::new(region(2, b"m", b"", 2, &[2, 3])));
        assert_eq!(ids(&evicted), vec![1]);
        assert_eq!(t.len(), 1);
        assert!(t.search(b"a").is_none());
        t.insert(Arc::new(region(1, b"", b"m", 2, &[1, 2, 3])));
        assert_eq!(t.len(), 2);
        assert_eq!(t.store_stats(2).region_count, 2);
        assert_eq!(t.store_stats(2).leader_count, 1);
        assert_eq!(t.store_stats(3).leader_count, 0);
        // Same id, new start key: the old start entry goes away.
        t.insert(Arc::new(region(2, b"p", b"", 3, &[3])));
        assert!(t.search(b"n").is_none());
        assert_eq!(t.search(b"q").unwrap().id(), 2);
        let expected: HashMap<u64, StoreRegionStats> = [1, 2, 3]
            .into_iter()
            .map(|s| (s, t.store_stats(s)))
            .filter(|(_, v)| *v != StoreRegionStats::default())
            .collect();
        assert_eq!(t.recompute_store_stats(), expected);
        t.remove(1);
        t.remove(2);
        assert!(t.recompute_store_stats().is_empty());
        assert_eq!(t.store_stats(3), StoreRegionStats::default());
    }

    #[test]
    fn staleness_rules() {
        let mut t = RegionTree::new();
        t.insert(Arc::new(region(1, b"", b"m", 5, &[1])));
        let mut older = region(1, b"", b"m", 4, &[1]);
        older.meta.region_epoch.as_mut().unwrap().conf_ver = 9;
        assert!(matches!(
            t.check_stale(&older),
            Err(Error::StaleRegion { .. })
        ));
        let mut lower_conf = region(1, b"", b"m", 5, &[1]);
        lower_conf.meta.region_epoch.as_mut().unwrap().conf_ver = 0;
        assert!(t.check_stale(&lower_conf).is_err());
        // Another id overlapping with a lower version is stale; equal is fine.
        assert!(t.check_stale(&region(7, b"a", b"z", 4, &[1])).is_err());
        t.check_stale(&region(7, b"a", b"z", 5, &[1])).unwrap();
        // A lower term from a deposed leader is stale.
        let mut cur = region(1, b"", b"m", 5, &[1]);
        cur.term = 8;
        t.insert(Arc::new(cur.clone()));
        let mut deposed = cur.clone();
        deposed.term = 7;
        assert!(t.check_stale(&deposed).is_err());
        assert_eq!(t.change_of(&cur), Change::None);
        let mut bigger = cur.clone();
        bigger.approximate_size = 99 << 20;
        assert_eq!(t.change_of(&bigger), Change::Stats);
        let mut moved = cur;
        moved.meta.peers.pop();
        assert_eq!(t.change_of(&moved), Change::Meta);
    }
}
