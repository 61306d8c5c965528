//! `balance-region`: move one peer from the store holding the most region data to the one holding
//! the least.
//!
//! 1. Sources: stores that are up and not down, largest region size first.
//! 2. On a source, try regions with a pending peer there first (moving them also relieves a
//!    struggling peer), then regions it follows, then regions it leads; only regions that have
//!    exactly `max_replicas` peers (others are the replica checker's business).
//! 3. Target: the store with the least region size that can receive and holds no peer of the
//!    region.
//! 4. Move only if `source.region_size - target.region_size > 2 * region.size`: after the move
//!    the two stores must not have swapped places, or the next round would move it back.

use std::cmp::Reverse;

use super::view::{ClusterView, StoreView};
use super::{OpKind, Operator, Scheduler, MAX_REGION_TRIES};
use crate::core::RegionInfo;

/// The balance-region scheduler.
#[derive(Debug, Default, Clone, Copy)]
pub struct BalanceRegion;

/// Which of a source store's regions to try, in order.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Pending,
    Follower,
    Leader,
}

impl Pick {
    fn matches(self, region: &RegionInfo, store: u64) -> bool {
        if region.store_peer(store).is_none() {
            return false;
        }
        let pending = region.is_pending_on(store);
        let leader = region.is_leader_on(store);
        match self {
            Pick::Pending => pending,
            Pick::Follower => !pending && !leader,
            Pick::Leader => !pending && leader,
        }
    }
}

impl Scheduler for BalanceRegion {
    fn name(&self) -> &'static str {
        "balance-region"
    }

    fn kind(&self) -> OpKind {
        OpKind::Region
    }

    fn schedule(&self, view: &ClusterView) -> Option<Operator> {
        let mut sources: Vec<&StoreView> = view
            .stores
            .values()
            .filter(|s| view.is_serving(s))
            .collect();
        sources.sort_by_key(|s| (Reverse(s.region_size), s.id));
        for source in sources {
            for (i, pick) in [Pick::Pending, Pick::Follower, Pick::Leader]
                .into_iter()
                .enumerate()
            {
                let candidates = view.shuffled_regions(source.id * 3 + i as u64, |r| {
                    r.peers().len() == view.max_replicas && pick.matches(r, source.id)
                });
                for region in candidates.iter().take(MAX_REGION_TRIES) {
                    if let Some(op) = try_move(view, source, region) {
                        return Some(op);
                    }
                }
            }
        }
        None
    }
}

fn try_move(view: &ClusterView, source: &StoreView, region: &RegionInfo) -> Option<Operator> {
    let target = view.best_target_for(region)?;
    if source.region_size <= target.region_size + 2 * region.size_mb() {
        return None;
    }
    Some(Operator::move_peer(
        "balance-region",
        OpKind::Region,
        region,
        source.id,
        target.id,
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proto::metapb::StoreState;

    use super::*;
    use crate::schedule::test_util::{region, with_pending};
    use crate::schedule::OpStep;

    const DOWN_TIME: Duration = Duration::from_secs(1800);

    /// A store holding `count` regions of 10 MiB.
    fn store(id: u64, count: u64) -> StoreView {
        StoreView::up(id).with_regions(count, count * 10)
    }

    fn view(max_replicas: usize, stores: &[(u64, u64)]) -> ClusterView {
        let mut v = ClusterView::new(max_replicas, DOWN_TIME);
        for &(id, count) in stores {
            v.put_store(store(id, count));
        }
        v
    }

    /// Asserts `op` moves a peer from `from` to `to`, with a leader transfer iff `leader_moves`.
    fn assert_move(op: Option<Operator>, from: u64, to: u64, leader_moves: bool) {
        let op = op.expect("expected an operator");
        let mut expected = vec![OpStep::AddPeer {
            to_store: to,
            peer_id: 0,
        }];
        if leader_moves {
            expected.push(OpStep::TransferLeader {
                from_store: from,
                to_store: to,
            });
        }
        expected.push(OpStep::RemovePeer { from_store: from });
        assert_eq!(op.steps, expected, "{op}");
        assert_eq!(op.kind, OpKind::Region);
    }

    fn set_down(v: &mut ClusterView, id: u64) {
        v.stores.get_mut(&id).unwrap().since_heartbeat = DOWN_TIME + Duration::from_secs(1);
    }

    #[test]
    fn one_replica_moves_with_leader() {
        let mut v = view(1, &[(1, 6), (2, 8), (3, 8), (4, 16)]);
        v.put_region(region(1, 4, &[4]));
        assert_move(BalanceRegion.schedule(&v), 4, 1, true);

        // An offline store is not a target; store 2 now has the least.
        v.stores.get_mut(&1).unwrap().state = StoreState::Offline;
        v.put_store(store(2, 6));
        assert_move(BalanceRegion.schedule(&v), 4, 2, true);

        // With 3 replicas wanted, a 1-peer region is the replica checker's, not ours.
        v.max_replicas = 3;
        assert!(BalanceRegion.schedule(&v).is_none());
        v.max_replicas = 1;
        assert!(BalanceRegion.schedule(&v).is_some());
    }

    #[test]
    fn three_replicas_pick_emptiest_live_target() {
        let mut v = view(3, &[(1, 16), (2, 15), (3, 14)]);
        v.put_region(region(1, 1, &[1, 2, 3]));
        // Every store already holds the region.
        assert!(BalanceRegion.schedule(&v).is_none());

        v.put_store(store(4, 2));
        assert_move(BalanceRegion.schedule(&v), 1, 4, true);
        v.put_store(store(5, 1));
        assert_move(BalanceRegion.schedule(&v), 1, 5, true);
        v.put_store(store(6, 0));
        assert_move(BalanceRegion.schedule(&v), 1, 6, true);

        // Down stores are never targets.
        for id in [4, 5, 6] {
            set_down(&mut v, id);
        }
        assert!(BalanceRegion.schedule(&v).is_none());

        // The only candidate holds more than the sources: not worth moving.
        v.put_store(store(7, 20));
        assert!(BalanceRegion.schedule(&v).is_none());

        // A busy region is left alone.
        v.put_store(store(8, 0));
        assert!(BalanceRegion.schedule(&v).is_some());
        v.busy_regions.insert(1);
        assert!(BalanceRegion.schedule(&v).is_none());
    }

    #[test]
    fn small_difference_is_not_worth_a_move() {
        let mut v = view(1, &[(1, 4), (2, 6)]);
        v.put_region(region(1, 2, &[2]));
        // 60 - 40 = 20 is not more than 2 * 10.
        assert!(BalanceRegion.schedule(&v).is_none());
        v.put_store(store(2, 7));
        assert_move(BalanceRegion.schedule(&v), 2, 1, true);
    }

    #[test]
    fn five_replicas_source_is_largest_holder() {
        let mut v = view(
            5,
            &[
                (1, 2),
                (2, 2),
                (3, 2),
                (4, 2),
                (5, 2),
                (6, 1),
                (7, 1),
                (8, 1),
                (9, 1),
                (10, 2),
                (11, 10),
            ],
        );
        v.put_store(store(5, 6));
        v.put_region(region(1, 1, &[1, 2, 3, 4, 5]));
        // Source: store 5 (largest holding the region); target: 6 (smallest, lowest id).
        assert_move(BalanceRegion.schedule(&v), 5, 6, false);

        // Once 6 holds the region, the next smallest free store (7) is the target.
        v.put_region(region(1, 2, &[2, 3, 4, 5, 6]));
        assert_move(BalanceRegion.schedule(&v), 5, 7, false);

        // Store 11 holds the region and is largest; the leader on 11 moves along.
        v.put_region(region(1, 11, &[11, 1, 2, 3, 4]));
        assert_move(BalanceRegion.schedule(&v), 11, 6, true);
    }

    #[test]
    fn pending_region_is_preferred() {
        let mut v = view(3, &[(1, 16), (2, 7), (3, 7), (4, 0)]);
        // Region 1 has its leader on the source; region 2 has a pending peer there.
        v.put_region(region(1, 1, &[1, 2, 3]));
        v.put_region(with_pending(region(2, 2, &[1, 2, 3]), 1));
        let op = BalanceRegion.schedule(&v).unwrap();
        assert_eq!(op.region_id, 2);
        assert_move(Some(op), 1, 4, false);
    }

    #[test]
    fn leaderless_regions_are_skipped() {
        let mut v = view(1, &[(1, 0), (2, 16)]);
        let mut r = region(1, 2, &[2]);
        r.leader = None;
        v.put_region(r);
        assert!(BalanceRegion.schedule(&v).is_none());
    }
}
