//! Scheduling decisions: pure functions from a [`ClusterView`] to an [`Operator`].
//!
//! Nothing here does IO, reads the clock or allocates ids; the runtime (`cluster`) builds the
//! view, admits the operators (allocating peer ids), and sends their steps to stores.
//!
//! - [`balance_region`]: move peers from the fullest store to the emptiest.
//! - [`balance_leader`]: even out leader counts with leader transfers.
//! - [`replica_checker`]: restore `max_replicas`, replace peers on down or offline stores.

pub mod balance_leader;
pub mod balance_region;
pub mod operator;
pub mod replica_checker;
pub mod view;

pub use balance_leader::BalanceLeader;
pub use balance_region::BalanceRegion;
pub use operator::{OpKind, OpStatus, OpStep, Operator};
pub use replica_checker::ReplicaChecker;
pub use view::{ClusterView, StoreView};

/// Regions tried per store and category before giving up on it, to bound one round's work.
const MAX_REGION_TRIES: usize = 16;

/// A scheduling policy.
pub trait Scheduler: Send + Sync {
    /// Name (as in the config's `schedulers` list).
    fn name(&self) -> &'static str;

    /// Kind of the operators it creates (limits are per kind).
    fn kind(&self) -> OpKind;

    /// One operator worth running now, or `None` if the cluster is fine as far as this policy
    /// is concerned. Regions in `view.busy_regions` are never chosen.
    fn schedule(&self, view: &ClusterView) -> Option<Operator>;
}

/// The schedulers named in the config, in order.
pub fn schedulers_by_name(names: &[String]) -> Vec<Box<dyn Scheduler>> {
    names
        .iter()
        .filter_map(|n| -> Option<Box<dyn Scheduler>> {
            match n.as_str() {
                "balance-region" => Some(Box::new(BalanceRegion)),
                "balance-leader" => Some(Box::new(BalanceLeader)),
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Builders for hand-made views.

    use proto::metapb::{self, Peer, RegionEpoch};

    use crate::core::RegionInfo;

    /// A region of 10 MiB with peers `stores` (peer id = id * 100 + store), led from
    /// `leader_store`.
    pub fn region(id: u64, leader_store: u64, stores: &[u64]) -> RegionInfo {
        let peers: Vec<Peer> = stores
            .iter()
            .map(|s| Peer {
                id: id * 100 + s,
                store_id: *s,
                ..Default::default()
            })
            .collect();
        let leader = peers.iter().find(|p| p.store_id == leader_store).cloned();
        let mut r = RegionInfo::new(
            metapb::Region {
                id,
                start_key: format!("k{id:04}").into_bytes(),
                end_key: format!("k{:04}", id + 1).into_bytes(),
                region_epoch: Some(RegionEpoch {
                    conf_ver: 1,
                    version: 1,
                }),
                peers,
            },
            leader,
        );
        r.approximate_size = 10 << 20;
        r
    }

    /// Marks the peer on `store` pending.
    pub fn with_pending(mut r: RegionInfo, store: u64) -> RegionInfo {
        let p = *r.store_peer(store).unwrap();
        r.pending_peers.push(p);
        r
    }
}
