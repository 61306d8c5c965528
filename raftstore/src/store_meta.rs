//! `StoreMeta`: which key ranges this store's *initialized* peers own, shared by every poller.
//!
//! Peers of one store never overlap. Three paths could break that, and each checks here under
//! the same lock before it commits to a range:
//! - creating a peer from a raft message (a stale region of this store may still cover the range
//!   the message's region claims: the new peer must wait until the stale one splits or goes);
//! - applying a snapshot (an uninitialized peer's snapshot must not cover another region's data);
//! - a split (the new regions take their ranges from the parent, which shrinks first).
//!
//! Uninitialized peers own no range and are not listed. Entries change only with the region of
//! the peer that owns them (split, snapshot, conf change, destroy), always under the lock.
//!
//! It also holds vote requests for regions a split on this store is about to create: the new
//! region's peer next to the old leader campaigns at once, often before this store applied the
//! split. Dropping those votes would cost the new region an election timeout without a leader;
//! they are replayed to the peer the split creates.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;

use proto::metapb::Region;
use proto::raft_serverpb::RaftMessage;
use raft_core::keys;

/// How many regions to the right of a region an `EpochNotMatch` names at most (a batch split
/// creates them side by side).
const MAX_SIBLINGS: usize = 16;
/// Vote requests kept for regions a split is about to create (the oldest go first).
const MAX_PENDING_VOTES: usize = 256;

/// Ranges of the initialized regions of one store.
#[derive(Debug, Default)]
pub struct StoreMeta {
    /// Region by id.
    regions: HashMap<u64, Region>,
    /// Data end key of each region's range → region id (empty end = `DATA_MAX_KEY`).
    ranges: BTreeMap<Vec<u8>, u64>,
    /// Vote requests for regions without a peer here yet whose range a local region still
    /// covers (a split in progress).
    pending_votes: VecDeque<RaftMessage>,
}

impl StoreMeta {
    /// Records `region` (a new or changed initialized region), replacing its previous range.
    pub fn set_region(&mut self, region: &Region) {
        if let Some(old) = self.regions.get(&region.id) {
            let old_end = keys::data_end_key(&old.end_key);
            if self.ranges.get(&old_end) == Some(&region.id) {
                self.ranges.remove(&old_end);
            }
        }
        self.ranges
            .insert(keys::data_end_key(&region.end_key), region.id);
        self.regions.insert(region.id, region.clone());
    }

    /// Forgets region `region_id` (its peer was destroyed).
    pub fn remove(&mut self, region_id: u64) -> Option<Region> {
        let old = self.regions.remove(&region_id)?;
        let end = keys::data_end_key(&old.end_key);
        if self.ranges.get(&end) == Some(&region_id) {
            self.ranges.remove(&end);
        }
        Some(old)
    }

    /// The initialized region `region_id`, if this store hosts it.
    pub fn region(&self, region_id: u64) -> Option<&Region> {
        self.regions.get(&region_id)
    }

    /// Whether region `region_id` is initialized here.
    pub fn contains(&self, region_id: u64) -> bool {
        self.regions.contains_key(&region_id)
    }

    /// Number of initialized regions.
    pub fn len(&self) -> usize {
        self.regions.len()
    }

    /// Whether no region is initialized here.
    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }

    /// A region other than `exclude` whose range overlaps `[start, end)` (empty end = +inf).
    pub fn overlapping(&self, start: &[u8], end: &[u8], exclude: u64) -> Option<&Region> {
        let (start, end) = (keys::data_key(start), keys::data_end_key(end));
        // Regions are disjoint, so they are sorted by end key as well as by start key: walk
        // from the first region ending after `start` while they start before `end`.
        for (_, id) in self
            .ranges
            .range::<Vec<u8>, _>((Bound::Excluded(start), Bound::Unbounded))
        {
            let region = &self.regions[id];
            if keys::data_key(&region.start_key) >= end {
                return None;
            }
            if *id != exclude {
                return Some(region);
            }
        }
        None
    }

    /// Keeps a vote request for a region a split here is about to create.
    pub fn stash_vote(&mut self, msg: RaftMessage) {
        if self.pending_votes.len() >= MAX_PENDING_VOTES {
            self.pending_votes.pop_front();
        }
        self.pending_votes.push_back(msg);
    }

    /// The kept vote requests of region `region_id`, oldest first.
    pub fn take_votes(&mut self, region_id: u64) -> Vec<RaftMessage> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_votes)
            .into_iter()
            .partition(|m| m.region_id == region_id);
        self.pending_votes = rest.into();
        mine
    }

    /// `region` followed by the regions of this store that continue its range to the right
    /// without a gap (what a recent split produced), for an `EpochNotMatch`: a client whose
    /// routing predates the split learns every part of the old range this store knows of.
    pub fn with_right_siblings(&self, region: &Region) -> Vec<Region> {
        let mut out = vec![region.clone()];
        let mut end = region.end_key.clone();
        while !end.is_empty() && out.len() <= MAX_SIBLINGS {
            let next = self
                .ranges
                .range::<Vec<u8>, _>((Bound::Excluded(keys::data_key(&end)), Bound::Unbounded))
                .next()
                .map(|(_, id)| &self.regions[id]);
            match next {
                Some(r) if r.start_key == end => {
                    end = r.end_key.clone();
                    out.push(r.clone());
                }
                _ => break,
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &[u8], end: &[u8]) -> Region {
        Region {
            id,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn overlaps_are_found_and_updates_move_ranges() {
        let mut m = StoreMeta::default();
        m.set_region(&region(1, b"", b"m"));
        m.set_region(&region(2, b"m", b"t"));
        m.set_region(&region(3, b"x", b""));
        assert_eq!(m.overlapping(b"a", b"b", 0).unwrap().id, 1);
        assert_eq!(m.overlapping(b"l", b"n", 1).unwrap().id, 2);
        assert!(
            m.overlapping(b"t", b"x", 0).is_none(),
            "gap between 2 and 3"
        );
        assert_eq!(m.overlapping(b"t", b"", 0).unwrap().id, 3);
        assert!(
            m.overlapping(b"a", b"m", 1).is_none(),
            "own range is excluded"
        );
        assert!(m.overlapping(b"m", b"m\0", 2).is_none());

        // Region 1 shrinks (split): its old end no longer maps to it.
        m.set_region(&region(1, b"", b"f"));
        assert!(m.overlapping(b"g", b"h", 0).is_none());
        m.set_region(&region(4, b"f", b"m"));
        assert_eq!(m.overlapping(b"g", b"h", 0).unwrap().id, 4);
        let ids: Vec<u64> = m
            .with_right_siblings(&region(1, b"", b"f"))
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, vec![1, 4, 2], "stops at the gap before region 3");

        assert_eq!(m.remove(2).unwrap().id, 2);
        assert!(m.overlapping(b"n", b"o", 0).is_none());
        assert_eq!(m.len(), 3);
        assert!(m.remove(2).is_none());
    }

    #[test]
    fn votes_are_kept_per_region_and_bounded() {
        let mut m = StoreMeta::default();
        let vote = |region_id| RaftMessage {
            region_id,
            ..Default::default()
        };
        for i in 0..MAX_PENDING_VOTES as u64 + 10 {
            m.stash_vote(vote(i % 3));
        }
        let ones = m.take_votes(1);
        assert!(ones.iter().all(|v| v.region_id == 1));
        assert_eq!(
            ones.len() + m.take_votes(0).len() + m.take_votes(2).len(),
            MAX_PENDING_VOTES
        );
        assert!(m.take_votes(1).is_empty());
    }
}
