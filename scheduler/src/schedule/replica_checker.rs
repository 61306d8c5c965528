//! The replica checker: keeps every region at `max_replicas` healthy peers.
//!
//! For one region, in priority order:
//! 1. a peer whose store is down (no heartbeat for `max_store_down_time`), tombstone, or reported
//!    down by the leader for that long is replaced: add a peer on the best store, then remove
//!    the unhealthy one (if the region already has more peers than wanted, just remove it);
//! 2. a peer on an offline store is replaced the same way, so the store can drain;
//! 3. too few peers: add one on the best store;
//! 4. too many peers: remove the worst follower (unhealthy or offline first, else the one on the
//!    store with the most region data).
//!
//! "Best store" is [`ClusterView::best_target_for`]: up, not down, not busy, not holding the
//! region, least region size. Adding before removing keeps the replica count from dipping below
//! the target while a repair is in flight.

use std::cmp::Reverse;

use proto::metapb::StoreState;

use super::view::ClusterView;
use super::{OpKind, OpStep, Operator, Scheduler};
use crate::core::RegionInfo;

/// The replica checker, as a scheduler walking all regions.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReplicaChecker;

impl Scheduler for ReplicaChecker {
    fn name(&self) -> &'static str {
        "replica-checker"
    }

    fn kind(&self) -> OpKind {
        OpKind::Replica
    }

    fn schedule(&self, view: &ClusterView) -> Option<Operator> {
        view.regions
            .values()
            .filter(|r| view.is_schedulable(r))
            .find_map(|r| check_region(view, r))
    }
}

fn is_offline(view: &ClusterView, store_id: u64) -> bool {
    view.store(store_id)
        .is_some_and(|s| s.state == StoreState::Offline)
}

/// The repair `region` needs, if any.
pub fn check_region(view: &ClusterView, region: &RegionInfo) -> Option<Operator> {
    let leader_store = region.leader_store_id()?;
    let unhealthy = region
        .store_ids()
        .find(|&s| view.is_peer_unhealthy(region, s));
    if let Some(bad) = unhealthy {
        if let Some(op) = replace(view, region, bad, leader_store, "replace-down-peer") {
            return Some(op);
        }
    }
    if let Some(bad) = region.store_ids().find(|&s| is_offline(view, s)) {
        if let Some(op) = replace(view, region, bad, leader_store, "replace-offline-peer") {
            return Some(op);
        }
    }
    let count = region.peers().len();
    if count < view.max_replicas {
        let target = view.best_target_for(region)?;
        return Some(Operator::new(
            "add-replica",
            OpKind::Replica,
            region,
            vec![OpStep::AddPeer {
                to_store: target.id,
                peer_id: 0,
            }],
        ));
    }
    if count > view.max_replicas {
        let victim = region
            .store_ids()
            .filter(|&s| s != leader_store)
            .max_by_key(|&s| {
                let bad = view.is_peer_unhealthy(region, s) || is_offline(view, s);
                let size = view.store(s).map_or(0, |st| st.region_size);
                (bad, size, Reverse(s))
            })?;
        return Some(Operator::new(
            "remove-extra-replica",
            OpKind::Replica,
            region,
            vec![OpStep::RemovePeer { from_store: victim }],
        ));
    }
    None
}

/// Replaces the peer on `bad`, or just removes it when the region has peers to spare.
fn replace(
    view: &ClusterView,
    region: &RegionInfo,
    bad: u64,
    leader_store: u64,
    desc: &'static str,
) -> Option<Operator> {
    if region.peers().len() > view.max_replicas {
        let mut steps = Vec::new();
        if bad == leader_store {
            let to = region
                .store_ids()
                .filter(|&s| s != bad && !region.is_pending_on(s))
                .find(|&s| {
                    !view.is_peer_unhealthy(region, s)
                        && view.store(s).is_some_and(|st| view.can_receive(st))
                })?;
            steps.push(OpStep::TransferLeader {
                from_store: bad,
                to_store: to,
            });
        }
        steps.push(OpStep::RemovePeer { from_store: bad });
        return Some(Operator::new(desc, OpKind::Replica, region, steps));
    }
    let target = view.best_target_for(region)?;
    Some(Operator::move_peer(
        desc,
        OpKind::Replica,
        region,
        bad,
        target.id,
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schedule::test_util::region;
    use crate::schedule::StoreView;

    const DOWN_TIME: Duration = Duration::from_secs(60);

    fn view(max_replicas: usize, stores: &[(u64, u64)]) -> ClusterView {
        let mut v = ClusterView::new(max_replicas, DOWN_TIME);
        for &(id, count) in stores {
            v.put_store(StoreView::up(id).with_regions(count, count * 10));
        }
        v
    }

    #[test]
    fn healthy_region_needs_nothing() {
        let mut v = view(3, &[(1, 1), (2, 1), (3, 1), (4, 0)]);
        v.put_region(region(1, 1, &[1, 2, 3]));
        assert!(ReplicaChecker.schedule(&v).is_none());
    }

    #[test]
    fn down_store_peer_is_replaced_on_the_emptiest_store() {
        let mut v = view(3, &[(1, 5), (2, 5), (3, 5), (4, 3), (5, 1)]);
        v.put_region(region(1, 1, &[1, 2, 3]));
        // Not down yet: 59 s without a heartbeat.
        v.stores.get_mut(&3).unwrap().since_heartbeat = Duration::from_secs(59);
        assert!(ReplicaChecker.schedule(&v).is_none());
        v.stores.get_mut(&3).unwrap().since_heartbeat = Duration::from_secs(61);
        let op = ReplicaChecker.schedule(&v).unwrap();
        assert_eq!(op.desc, "replace-down-peer");
        assert_eq!(
            op.steps,
            vec![
                OpStep::AddPeer {
                    to_store: 5,
                    peer_id: 0
                },
                OpStep::RemovePeer { from_store: 3 }
            ]
        );
        // No store left to move to: nothing to do rather than shrinking the region.
        v.stores.remove(&4);
        v.stores.remove(&5);
        assert!(ReplicaChecker.schedule(&v).is_none());
    }

    #[test]
    fn peer_reported_down_by_leader_is_replaced() {
        let mut v = view(3, &[(1, 5), (2, 5), (3, 5), (4, 0)]);
        let mut r = region(1, 1, &[1, 2, 3]);
        r.down_peers.push(proto::pdpb::PeerStats {
            peer: r.store_peer(2).cloned(),
            down_seconds: 61,
        });
        v.put_region(r);
        let op = ReplicaChecker.schedule(&v).unwrap();
        assert_eq!(op.steps[1], OpStep::RemovePeer { from_store: 2 });
    }

    #[test]
    fn offline_leader_is_moved_with_a_leader_transfer() {
        let mut v = view(3, &[(1, 5), (2, 5), (3, 5), (4, 0)]);
        v.put_region(region(1, 1, &[1, 2, 3]));
        v.stores.get_mut(&1).unwrap().state = StoreState::Offline;
        let op = ReplicaChecker.schedule(&v).unwrap();
        assert_eq!(op.desc, "replace-offline-peer");
        assert_eq!(
            op.steps,
            vec![
                OpStep::AddPeer {
                    to_store: 4,
                    peer_id: 0
                },
                OpStep::TransferLeader {
                    from_store: 1,
                    to_store: 4
                },
                OpStep::RemovePeer { from_store: 1 }
            ]
        );
    }

    #[test]
    fn missing_and_extra_replicas() {
        let mut v = view(3, &[(1, 5), (2, 9), (3, 2), (4, 4)]);
        v.put_region(region(1, 1, &[1]));
        let op = ReplicaChecker.schedule(&v).unwrap();
        assert_eq!(op.desc, "add-replica");
        assert_eq!(
            op.steps,
            vec![OpStep::AddPeer {
                to_store: 3,
                peer_id: 0
            }]
        );

        // Four peers: the follower on the fullest store goes, never the leader.
        v.put_region(region(1, 2, &[1, 2, 3, 4]));
        let op = ReplicaChecker.schedule(&v).unwrap();
        assert_eq!(op.steps, vec![OpStep::RemovePeer { from_store: 1 }]);

        // An extra peer on a down store goes first, without a replacement.
        v.stores.get_mut(&3).unwrap().since_heartbeat = Duration::from_secs(3600);
        let op = ReplicaChecker.schedule(&v).unwrap();
        assert_eq!(op.steps, vec![OpStep::RemovePeer { from_store: 3 }]);
    }

    #[test]
    fn peers_on_unknown_stores_and_leaderless_regions_are_left_alone() {
        let mut v = view(3, &[(1, 5), (2, 5), (3, 5)]);
        v.put_region(region(1, 1, &[1, 2, 9]));
        assert!(ReplicaChecker.schedule(&v).is_none());
        let mut r = region(2, 1, &[1]);
        r.leader = None;
        v.put_region(r);
        assert!(ReplicaChecker.schedule(&v).is_none());
    }
}
