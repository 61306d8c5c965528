//! `balance-leader`: even out leader counts by transferring leadership to a follower.
//!
//! 1. Take a leader away from the store leading the most regions: among the regions it leads,
//!    hand one to the follower whose store leads the fewest.
//! 2. If no such move exists, give a leader to the store leading the fewest: among the regions
//!    it follows, take one from the leader store leading the most.
//!
//! A move happens only if the giving store leads at least two more regions than the receiving
//! one, so that a transfer never just swaps the two and oscillates. Offline stores may give
//! leaders away (they still serve) but never receive them; down stores take no part; pending or
//! down followers never receive leadership.

use std::cmp::Reverse;

use proto::metapb::StoreState;

use super::view::{ClusterView, StoreView};
use super::{OpKind, Operator, Scheduler, MAX_REGION_TRIES};
use crate::core::RegionInfo;

/// The balance-leader scheduler.
#[derive(Debug, Default, Clone, Copy)]
pub struct BalanceLeader;

/// Salts for the two phases' random region orders.
const SALT_OUT: u64 = 0x6f75_7400;
const SALT_IN: u64 = 0x696e_0000;

impl BalanceLeader {
    /// May give leaders away: up or offline, and not down.
    fn can_give(view: &ClusterView, s: &StoreView) -> bool {
        matches!(s.state, StoreState::Up | StoreState::Offline) && !view.is_down(s)
    }

    /// The follower store of `region` that should receive its leadership: can receive, not
    /// pending or reported down, fewest leaders.
    fn best_follower<'a>(view: &'a ClusterView, region: &RegionInfo) -> Option<&'a StoreView> {
        let leader_store = region.leader_store_id()?;
        region
            .store_ids()
            .filter(|&s| s != leader_store && !region.is_pending_on(s))
            .filter(|&s| !view.is_peer_unhealthy(region, s))
            .filter_map(|s| view.store(s))
            .filter(|s| view.can_receive(s))
            .min_by_key(|s| (s.leader_count, s.id))
    }

    fn worth_moving(from: &StoreView, to: &StoreView) -> bool {
        from.leader_count > to.leader_count + 1
    }

    fn transfer(region: &RegionInfo, from: &StoreView, to: &StoreView) -> Operator {
        Operator::transfer_leader("balance-leader", region, from.id, to.id)
    }
}

impl Scheduler for BalanceLeader {
    fn name(&self) -> &'static str {
        "balance-leader"
    }

    fn kind(&self) -> OpKind {
        OpKind::Leader
    }

    fn schedule(&self, view: &ClusterView) -> Option<Operator> {
        let mut givers: Vec<&StoreView> = view
            .stores
            .values()
            .filter(|s| Self::can_give(view, s))
            .collect();
        givers.sort_by_key(|s| (Reverse(s.leader_count), s.id));
        for source in &givers {
            let led = view.shuffled_regions(SALT_OUT ^ source.id, |r| r.is_leader_on(source.id));
            for region in led.iter().take(MAX_REGION_TRIES) {
                if let Some(target) = Self::best_follower(view, region) {
                    if Self::worth_moving(source, target) {
                        return Some(Self::transfer(region, source, target));
                    }
                }
            }
        }

        let mut receivers: Vec<&StoreView> = view
            .stores
            .values()
            .filter(|s| view.can_receive(s))
            .collect();
        receivers.sort_by_key(|s| (s.leader_count, s.id));
        for target in receivers {
            let followed = view.shuffled_regions(SALT_IN ^ target.id, |r| {
                r.store_peer(target.id).is_some()
                    && !r.is_leader_on(target.id)
                    && !r.is_pending_on(target.id)
                    && !view.is_peer_unhealthy(r, target.id)
            });
            for region in followed.iter().take(MAX_REGION_TRIES) {
                let Some(source) = region.leader_store_id().and_then(|s| view.store(s)) else {
                    continue;
                };
                if Self::can_give(view, source) && Self::worth_moving(source, target) {
                    return Some(Self::transfer(region, source, target));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schedule::test_util::{region, with_pending};
    use crate::schedule::OpStep;

    fn view(leaders: &[(u64, u64)]) -> ClusterView {
        let mut v = ClusterView::new(3, Duration::from_secs(1800));
        for &(id, count) in leaders {
            v.put_store(StoreView::up(id).with_leaders(count, count * 10));
        }
        v
    }

    fn assert_transfer(op: Option<Operator>, from: u64, to: u64) {
        let op = op.expect("expected an operator");
        assert_eq!(op.kind, OpKind::Leader);
        assert_eq!(
            op.steps,
            vec![OpStep::TransferLeader {
                from_store: from,
                to_store: to
            }],
            "{op}"
        );
    }

    #[test]
    fn moves_only_when_the_gap_is_at_least_two() {
        let mut v = view(&[(1, 1), (2, 0), (3, 0), (4, 0)]);
        v.put_region(region(1, 1, &[1, 2, 3, 4]));
        assert!(BalanceLeader.schedule(&v).is_none());
        v.put_store(StoreView::up(1).with_leaders(16, 160));
        assert_transfer(BalanceLeader.schedule(&v), 1, 2);

        let mut v = view(&[(1, 7), (2, 8), (3, 9), (4, 10)]);
        v.put_region(region(1, 4, &[4, 1, 2, 3]));
        // 10 - 7 = 3: move to the follower with the fewest leaders.
        assert_transfer(BalanceLeader.schedule(&v), 4, 1);
        let mut v = view(&[(1, 9), (2, 9), (3, 9), (4, 10)]);
        v.put_region(region(1, 4, &[4, 1, 2, 3]));
        assert!(BalanceLeader.schedule(&v).is_none());
    }

    #[test]
    fn filters_down_offline_busy_and_pending() {
        let mut v = view(&[(1, 1), (2, 2), (3, 3), (4, 16)]);
        v.put_region(region(1, 4, &[4, 1, 2, 3]));
        assert_transfer(BalanceLeader.schedule(&v), 4, 1);
        // An offline store still gives its leaders away.
        v.stores.get_mut(&4).unwrap().state = StoreState::Offline;
        assert_transfer(BalanceLeader.schedule(&v), 4, 1);
        // A down store receives nothing.
        v.stores.get_mut(&1).unwrap().since_heartbeat = Duration::from_secs(3600);
        assert_transfer(BalanceLeader.schedule(&v), 4, 2);
        // Neither does a busy one.
        v.stores.get_mut(&2).unwrap().is_busy = true;
        assert_transfer(BalanceLeader.schedule(&v), 4, 3);
        // Nor a pending follower.
        v.put_region(with_pending(region(1, 4, &[4, 1, 2, 3]), 3));
        assert!(BalanceLeader.schedule(&v).is_none());
    }

    #[test]
    fn skips_givers_without_a_worthy_follower() {
        // Store 4 leads the most, but its only region's followers lead nearly as many; store 3
        // leads region 2, whose follower on store 1 leads the fewest.
        let mut v = view(&[(1, 1), (2, 15), (3, 15), (4, 16)]);
        v.put_region(region(1, 4, &[4, 2, 3]));
        v.put_region(region(2, 3, &[3, 1, 2]));
        assert_transfer(BalanceLeader.schedule(&v), 3, 1);

        let mut v = view(&[(1, 10), (2, 10), (3, 10), (4, 10)]);
        v.put_region(region(1, 4, &[4, 2, 3]));
        v.put_region(region(2, 1, &[1, 2, 3]));
        assert!(BalanceLeader.schedule(&v).is_none());
    }
}
