//! Membership and leadership changes, driven like a scheduler would: an operator on the mock
//! scheduler is answered to the region's heartbeats until the change is observed.

use proto::metapb::Peer;

use super::Cluster;
use crate::pd::Operator;

impl Cluster {
    /// A new peer (fresh id) for store `store_id`.
    pub fn alloc_peer(&self, store_id: u64) -> Peer {
        Peer {
            id: self.pd.alloc_id(),
            store_id,
            ..Default::default()
        }
    }

    /// Starts adding `peer` to `region_id` without waiting.
    pub fn add_peer(&self, region_id: u64, peer: Peer) {
        self.pd.add_operator(region_id, Operator::AddPeer(peer));
    }

    /// Starts removing `peer` from `region_id` without waiting.
    pub fn remove_peer(&self, region_id: u64, peer: Peer) {
        self.pd.add_operator(region_id, Operator::RemovePeer(peer));
    }

    /// Starts moving the leadership of `region_id` to `peer` without waiting.
    pub fn transfer_leader(&self, region_id: u64, peer: Peer) {
        self.pd
            .add_operator(region_id, Operator::TransferLeader(peer));
    }

    /// Adds `peer` to `region_id` and waits until a heartbeat shows it as a caught-up member.
    pub fn must_add_peer(&self, region_id: u64, peer: Peer) {
        self.add_peer(region_id, peer);
        self.must_wait(&format!("peer {peer:?} to join region {region_id}"), || {
            self.pd.region_info(region_id).is_some_and(|r| {
                r.meta.peers.iter().any(|p| p.id == peer.id)
                    && !r.pending_peers.iter().any(|p| p.id == peer.id)
            })
        });
    }

    /// Removes `peer` from `region_id` and waits until a heartbeat shows it gone.
    pub fn must_remove_peer(&self, region_id: u64, peer: Peer) {
        self.remove_peer(region_id, peer);
        self.must_wait(
            &format!("peer {peer:?} to leave region {region_id}"),
            || {
                self.pd
                    .region_info(region_id)
                    .is_some_and(|r| !r.meta.peers.iter().any(|p| p.id == peer.id))
            },
        );
    }

    /// Moves the leadership of `region_id` to `peer` and waits until it reports as leader.
    pub fn must_transfer_leader(&self, region_id: u64, peer: Peer) {
        self.transfer_leader(region_id, peer);
        self.must_wait(&format!("peer {peer:?} to lead region {region_id}"), || {
            self.pd
                .leader_of(region_id)
                .is_some_and(|l| l.id == peer.id)
        });
    }
}
