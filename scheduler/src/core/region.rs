//! What the scheduler knows about one region: its metadata plus what the leader last reported.

use proto::metapb::{self, Peer, RegionEpoch};
use proto::pdpb::{self, PeerStats, RegionHeartbeatRequest};

/// Sizes below 1 MiB count as 1 so that empty regions still weigh something when balancing.
const MIN_REGION_SIZE_MB: u64 = 1;

/// A region as reported by its leader's latest accepted heartbeat (or loaded from disk).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RegionInfo {
    /// Id, range, epoch and peers. `region_epoch` is always present (a missing one is read as
    /// `{0, 0}`), because clients unwrap it.
    pub meta: metapb::Region,
    /// The leader, if one has reported.
    pub leader: Option<Peer>,
    /// Peers known to be missing log entries (not caught up).
    pub pending_peers: Vec<Peer>,
    /// Peers the leader has not heard from.
    pub down_peers: Vec<PeerStats>,
    /// Approximate size in bytes.
    pub approximate_size: u64,
    /// Approximate number of keys.
    pub approximate_keys: u64,
    /// Raft term of the reporting leader (0 if unknown).
    pub term: u64,
}

impl RegionInfo {
    /// Wraps metadata with no leader information (bootstrap, loading from disk).
    pub fn new(mut meta: metapb::Region, leader: Option<Peer>) -> RegionInfo {
        if meta.region_epoch.is_none() {
            meta.region_epoch = Some(RegionEpoch::default());
        }
        RegionInfo {
            meta,
            leader,
            ..Default::default()
        }
    }

    /// Builds the region described by a heartbeat; `None` if the heartbeat has no region.
    pub fn from_heartbeat(req: &RegionHeartbeatRequest) -> Option<RegionInfo> {
        let meta = req.region.clone()?;
        let mut r = RegionInfo::new(meta, req.leader);
        r.pending_peers = req.pending_peers.clone();
        r.down_peers = req.down_peers.clone();
        r.approximate_size = req.approximate_size;
        r.approximate_keys = req.approximate_keys;
        r.term = req.term;
        Some(r)
    }

    /// Region id.
    pub fn id(&self) -> u64 {
        self.meta.id
    }

    /// Inclusive start key.
    pub fn start_key(&self) -> &[u8] {
        &self.meta.start_key
    }

    /// Exclusive end key; empty means +infinity.
    pub fn end_key(&self) -> &[u8] {
        &self.meta.end_key
    }

    /// The epoch (never absent, see [`RegionInfo::new`]).
    pub fn epoch(&self) -> RegionEpoch {
        self.meta.region_epoch.unwrap_or_default()
    }

    /// Epoch version (bumped by split and merge).
    pub fn version(&self) -> u64 {
        self.epoch().version
    }

    /// Epoch conf_ver (bumped by membership changes).
    pub fn conf_ver(&self) -> u64 {
        self.epoch().conf_ver
    }

    /// All peers.
    pub fn peers(&self) -> &[Peer] {
        &self.meta.peers
    }

    /// The peer on `store_id`, if any.
    pub fn store_peer(&self, store_id: u64) -> Option<&Peer> {
        self.meta.peers.iter().find(|p| p.store_id == store_id)
    }

    /// Store ids of all peers.
    pub fn store_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.meta.peers.iter().map(|p| p.store_id)
    }

    /// The leader's store id, if a leader is known.
    pub fn leader_store_id(&self) -> Option<u64> {
        self.leader.as_ref().map(|l| l.store_id)
    }

    /// Whether the peer on `store_id` is the leader.
    pub fn is_leader_on(&self, store_id: u64) -> bool {
        self.leader_store_id() == Some(store_id)
    }

    /// Whether the peer on `store_id` is pending.
    pub fn is_pending_on(&self, store_id: u64) -> bool {
        self.pending_peers.iter().any(|p| p.store_id == store_id)
    }

    /// Whether the leader reports the peer on `store_id` as down for at least `secs` seconds.
    pub fn is_down_on(&self, store_id: u64, secs: u64) -> bool {
        self.down_peers.iter().any(|d| {
            d.peer.as_ref().is_some_and(|p| p.store_id == store_id) && d.down_seconds >= secs
        })
    }

    /// Size in MiB used for balancing (at least 1).
    pub fn size_mb(&self) -> u64 {
        (self.approximate_size >> 20).max(MIN_REGION_SIZE_MB)
    }

    /// Whether `key` lies in `[start_key, end_key)`.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start_key() && (self.end_key().is_empty() || key < self.end_key())
    }

    /// Whether the range is well formed (`start < end` unless `end` is +infinity).
    pub fn has_valid_range(&self) -> bool {
        self.end_key().is_empty() || self.start_key() < self.end_key()
    }

    /// The `pdpb.Region` form used by `ScanRegions`.
    pub fn to_pd_region(&self) -> pdpb::Region {
        pdpb::Region {
            region: Some(self.meta.clone()),
            leader: self.leader,
            down_peers: self.down_peers.clone(),
            pending_peers: self.pending_peers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_epoch_reads_as_zero_and_ranges_check() {
        let r = RegionInfo::new(
            metapb::Region {
                id: 0,
                start_key: b"b".to_vec(),
                end_key: b"d".to_vec(),
                ..Default::default()
            },
            None,
        );
        assert_eq!(r.meta.region_epoch, Some(RegionEpoch::default()));
        assert_eq!((r.version(), r.conf_ver()), (0, 0));
        assert!(r.contains(b"b") && r.contains(b"c") && !r.contains(b"d") && !r.contains(b"a"));
        assert!(r.has_valid_range());
        assert_eq!(r.size_mb(), 1);
        let mut bad = r.clone();
        bad.meta.end_key = b"a".to_vec();
        assert!(!bad.has_valid_range());
        let mut inf = r;
        inf.meta.end_key.clear();
        assert!(inf.contains(b"zzz"));
    }

    #[test]
    fn heartbeat_without_region_is_none() {
        assert!(RegionInfo::from_heartbeat(&RegionHeartbeatRequest::default()).is_none());
    }
}
