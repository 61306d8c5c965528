//! The operator controller: the running operators (at most one per region) and a short history
//! of finished ones.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use proto::pdpb::RegionHeartbeatResponse;
use serde::Serialize;

use crate::core::RegionInfo;
use crate::schedule::{OpKind, OpStatus, Operator};

/// Finished operators remembered for status and `GetOperator`.
const HISTORY_LEN: usize = 256;

/// How an operator ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", content = "reason", rename_all = "kebab-case")]
pub enum Outcome {
    /// Every step was observed.
    Finished,
    /// It ran past its timeout.
    TimedOut,
    /// It stopped applying (the reason says why).
    Cancelled(String),
}

/// A finished operator.
#[derive(Debug, Clone)]
pub struct FinishedOperator {
    /// The operator as it ended.
    pub op: Operator,
    /// How it ended.
    pub outcome: Outcome,
    /// When it ended.
    pub at: Instant,
}

/// Running operators by region id.
#[derive(Debug, Default)]
pub struct OperatorController {
    running: HashMap<u64, Operator>,
    history: VecDeque<FinishedOperator>,
}

impl OperatorController {
    /// Adds `op` unless its region already has one. Returns whether it was added.
    pub fn add(&mut self, op: Operator) -> bool {
        if self.running.contains_key(&op.region_id) {
            return false;
        }
        tracing::info!(region_id = op.region_id, operator = %op, "operator added");
        self.running.insert(op.region_id, op);
        true
    }

    /// Running operators of `kind`.
    pub fn count(&self, kind: OpKind) -> usize {
        self.running.values().filter(|o| o.kind == kind).count()
    }

    /// All running operators.
    pub fn running(&self) -> impl Iterator<Item = &Operator> + '_ {
        self.running.values()
    }

    /// The running operator of a region.
    pub fn get(&self, region_id: u64) -> Option<&Operator> {
        self.running.get(&region_id)
    }

    /// The most recent finished operator of a region.
    pub fn last_finished(&self, region_id: u64) -> Option<&FinishedOperator> {
        self.history
            .iter()
            .rev()
            .find(|f| f.op.region_id == region_id)
    }

    /// Finished operators, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &FinishedOperator> + '_ {
        self.history.iter()
    }

    /// Advances the region's operator with what `region` (just accepted) shows, and returns the
    /// command to send to the region's leader, if any.
    pub fn on_region(
        &mut self,
        region: &RegionInfo,
        now: Instant,
    ) -> Option<RegionHeartbeatResponse> {
        let op = self.running.get_mut(&region.id())?;
        let outcome = match op.check(region, now) {
            OpStatus::Running(step) => match step.to_response(region) {
                Ok(resp) => return Some(resp),
                Err(reason) => Outcome::Cancelled(reason),
            },
            OpStatus::Finished => Outcome::Finished,
            OpStatus::TimedOut => Outcome::TimedOut,
            OpStatus::Cancelled(reason) => Outcome::Cancelled(reason),
        };
        self.finish(region.id(), outcome, now);
        None
    }

    /// Ends operators past their timeout (regions that stopped reporting never reach
    /// [`OperatorController::on_region`]).
    pub fn remove_timed_out(&mut self, now: Instant) {
        let expired: Vec<u64> = self
            .running
            .values()
            .filter(|o| o.is_timed_out(now))
            .map(|o| o.region_id)
            .collect();
        for id in expired {
            self.finish(id, Outcome::TimedOut, now);
        }
    }

    /// Ends a region's operator (if any) with `outcome`.
    pub fn finish(&mut self, region_id: u64, outcome: Outcome, now: Instant) {
        let Some(op) = self.running.remove(&region_id) else {
            return;
        };
        match &outcome {
            Outcome::Finished => {
                tracing::info!(region_id, operator = %op, "operator finished")
            }
            Outcome::TimedOut => {
                tracing::warn!(region_id, operator = %op, "operator timed out")
            }
            Outcome::Cancelled(reason) => {
                tracing::info!(region_id, operator = %op, reason = %reason, "operator cancelled")
            }
        }
        if self.history.len() == HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(FinishedOperator {
            op,
            outcome,
            at: now,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schedule::test_util::region;

    #[test]
    fn one_operator_per_region_and_outcomes_are_recorded() {
        let mut c = OperatorController::default();
        let r = region(1, 1, &[1, 2, 3]);
        let op = Operator::transfer_leader("t", &r, 1, 2).with_timeout(Duration::from_secs(5));
        let t0 = op.created_at;
        assert!(c.add(op.clone()));
        assert!(!c.add(op));
        assert_eq!(c.count(OpKind::Leader), 1);
        let resp = c.on_region(&r, t0).unwrap();
        assert_eq!(resp.transfer_leader.unwrap().peer.unwrap().store_id, 2);
        assert!(c.on_region(&region(1, 2, &[1, 2, 3]), t0).is_none());
        assert!(c.get(1).is_none());
        assert_eq!(c.last_finished(1).unwrap().outcome, Outcome::Finished);

        let op = Operator::transfer_leader("t", &r, 1, 3).with_timeout(Duration::from_secs(5));
        c.add(op);
        c.remove_timed_out(t0 + Duration::from_secs(1));
        assert!(c.get(1).is_some());
        c.remove_timed_out(t0 + Duration::from_secs(6));
        assert_eq!(c.last_finished(1).unwrap().outcome, Outcome::TimedOut);

        // The target peer vanished: cancelled.
        let op = Operator::transfer_leader("t", &r, 1, 3);
        c.add(op);
        assert!(c.on_region(&region(1, 1, &[1, 2]), t0).is_none());
        assert!(matches!(
            c.last_finished(1).unwrap().outcome,
            Outcome::Cancelled(_)
        ));
    }
}
