//! Keeping a received snapshot from covering another region's data.
//!
//! A snapshot carries its region; applying it range-deletes that range and writes the
//! snapshot's data. Regions of one store never overlap, so a snapshot whose range overlaps
//! another initialized region of this store (a stale region that has not split or been removed
//! yet) is refused when it arrives, and checked again — and its range reserved in `StoreMeta` —
//! just before it is applied. A snapshot of a region whose range shrank (it split while this
//! peer lagged) also deletes the data left outside the new range: nobody here owns it any more.

use proto::metapb::Region;
use raft_core::engine::{Mutable, DATA_CFS};
use raft_core::keys;
use raft_core::snap::decode_descriptor;

use crate::peer::Peer;
use crate::poller::PollContext;

/// The region a raft snapshot describes, if its payload can be decoded.
fn snapshot_region(snap: &raft::eraftpb::Snapshot) -> Option<Region> {
    decode_descriptor(snap.get_data()).ok()?.region
}

impl Peer {
    /// Whether the `MsgSnapshot` `m` may be stepped: it is for this region, lists this peer,
    /// and overlaps no other region of this store.
    pub(crate) fn check_snapshot<T>(
        &self,
        ctx: &PollContext<T>,
        m: &raft::eraftpb::Message,
    ) -> bool {
        let Some(region) = snapshot_region(m.get_snapshot()) else {
            tracing::warn!(
                region_id = self.region_id,
                peer_id = self.meta.id,
                "snapshot without a region dropped"
            );
            return false;
        };
        if region.id != self.region_id || !region.peers.iter().any(|p| p.id == self.meta.id) {
            tracing::info!(
                region_id = self.region_id,
                peer_id = self.meta.id,
                snapshot_region = region.id,
                "snapshot of another region or not listing this peer dropped"
            );
            return false;
        }
        if let Some(other) =
            ctx.store_meta
                .lock()
                .overlapping(&region.start_key, &region.end_key, self.region_id)
        {
            tracing::info!(
                region_id = self.region_id,
                peer_id = self.meta.id,
                overlapping = other.id,
                "snapshot overlaps another region of this store; dropped"
            );
            return false;
        }
        true
    }

    /// Before collecting a Ready that applies a snapshot: checks the overlap again and
    /// records the snapshot's range as this region's. `false` defers the Ready (the overlapping
    /// region must split or go first).
    pub(crate) fn reserve_snapshot_range<T>(&mut self, ctx: &PollContext<T>) -> bool {
        let Some(snap) = self.group().raw_node().snap() else {
            return true;
        };
        if snap.is_empty() {
            return true;
        }
        // An undecodable snapshot fails loudly where it is applied.
        let Some(region) = snapshot_region(snap) else {
            return true;
        };
        let mut meta = ctx.store_meta.lock();
        if let Some(other) = meta.overlapping(&region.start_key, &region.end_key, self.region_id) {
            tracing::debug!(
                region_id = self.region_id,
                peer_id = self.meta.id,
                overlapping = other.id,
                "snapshot waits for an overlapping region to go"
            );
            return false;
        }
        meta.set_region(&region);
        true
    }

    /// A snapshot was applied into the round's kv batch: drop the data of the part of the old
    /// range the region no longer covers, and adopt the new membership.
    pub(crate) fn on_snapshot_collected<T>(
        &mut self,
        ctx: &mut PollContext<T>,
        prev: &Region,
        region: &Region,
    ) {
        if raft_core::storage::state::is_initialized(prev) {
            let mut extra = vec![];
            if prev.start_key < region.start_key {
                extra.push((
                    keys::data_key(&prev.start_key),
                    keys::data_key(&region.start_key),
                ));
            }
            let (prev_end, end) = (
                keys::data_end_key(&prev.end_key),
                keys::data_end_key(&region.end_key),
            );
            if end < prev_end {
                extra.push((end, prev_end));
            }
            for (start, end) in extra {
                for cf in DATA_CFS {
                    ctx.kv_wb
                        .delete_range_cf(cf, &start, &end)
                        .expect("data column families exist");
                }
            }
        }
        self.leader_missing_ticks = 0;
        self.refresh_peer_cache();
    }
}
