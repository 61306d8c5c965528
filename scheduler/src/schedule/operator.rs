//! Operators: a sequence of steps that changes one region, advanced by what heartbeats report.
//!
//! A step is never "executed" by the scheduler: its command is sent to the region leader's store
//! with every heartbeat until a later heartbeat shows the effect (the store must ignore
//! duplicates). Steps that are already satisfied are skipped, so an operator also finishes if
//! someone else did the work.

use std::fmt;
use std::time::{Duration, Instant};

use proto::eraftpb::ConfChangeType;
use proto::metapb::{Peer, RegionEpoch};
use proto::pdpb::{ChangePeer, RegionHeartbeatResponse, TransferLeader};
use serde::Serialize;

use crate::core::RegionInfo;

/// One change to a region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum OpStep {
    /// Add a voter with id `peer_id` on `to_store`. `peer_id` 0 means "not allocated yet": the
    /// runtime fills it in when it admits the operator (schedulers are pure and allocate nothing).
    AddPeer {
        /// Store receiving the new peer.
        to_store: u64,
        /// Id of the new peer.
        peer_id: u64,
    },
    /// Remove the peer on `from_store`.
    RemovePeer {
        /// Store losing its peer.
        from_store: u64,
    },
    /// Make the peer on `to_store` the leader.
    TransferLeader {
        /// Store of the current leader.
        from_store: u64,
        /// Store of the new leader.
        to_store: u64,
    },
}

impl fmt::Display for OpStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpStep::AddPeer { to_store, peer_id } => {
                write!(f, "add peer {peer_id} on store {to_store}")
            }
            OpStep::RemovePeer { from_store } => write!(f, "remove peer on store {from_store}"),
            OpStep::TransferLeader {
                from_store,
                to_store,
            } => write!(
                f,
                "transfer leader from store {from_store} to store {to_store}"
            ),
        }
    }
}

impl OpStep {
    /// Whether `region` already shows this step's effect. A new peer counts only once it is no
    /// longer pending, so a following leader transfer targets a caught-up peer.
    pub fn is_done(&self, region: &RegionInfo) -> bool {
        match *self {
            OpStep::AddPeer { to_store, .. } => {
                region.store_peer(to_store).is_some() && !region.is_pending_on(to_store)
            }
            OpStep::RemovePeer { from_store } => region.store_peer(from_store).is_none(),
            OpStep::TransferLeader { to_store, .. } => region.is_leader_on(to_store),
        }
    }

    /// The heartbeat response commanding this step, or why it cannot be commanded for `region`.
    pub fn to_response(
        &self,
        region: &RegionInfo,
    ) -> std::result::Result<RegionHeartbeatResponse, String> {
        let mut resp = RegionHeartbeatResponse {
            region_id: region.id(),
            region_epoch: Some(region.epoch()),
            target_peer: region.leader,
            ..Default::default()
        };
        match *self {
            OpStep::AddPeer { to_store, peer_id } => {
                if peer_id == 0 {
                    return Err("add-peer step has no peer id".into());
                }
                resp.change_peer = Some(ChangePeer {
                    peer: Some(Peer {
                        id: peer_id,
                        store_id: to_store,
                        ..Default::default()
                    }),
                    change_type: ConfChangeType::AddNode as i32,
                });
            }
            OpStep::RemovePeer { from_store } => {
                if region.is_leader_on(from_store) {
                    return Err(format!(
                        "cannot remove the leader peer on store {from_store}"
                    ));
                }
                let peer = region
                    .store_peer(from_store)
                    .cloned()
                    .ok_or_else(|| format!("no peer on store {from_store}"))?;
                resp.change_peer = Some(ChangePeer {
                    peer: Some(peer),
                    change_type: ConfChangeType::RemoveNode as i32,
                });
            }
            OpStep::TransferLeader { to_store, .. } => {
                let peer = region
                    .store_peer(to_store)
                    .cloned()
                    .ok_or_else(|| format!("no peer on store {to_store} to lead"))?;
                resp.transfer_leader = Some(TransferLeader {
                    peer: Some(peer),
                    peers: vec![peer],
                });
            }
        }
        Ok(resp)
    }
}

/// What an operator does, for limits and timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpKind {
    /// Only leader transfers (balance-leader).
    Leader,
    /// Moves a peer between stores (balance-region).
    Region,
    /// Restores the replica count or replaces unhealthy peers (replica checker).
    Replica,
}

/// Where an operator stands after looking at a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub enum OpStatus {
    /// Send this step's command.
    Running(OpStep),
    /// Every step is done.
    Finished,
    /// The operator ran longer than its timeout.
    TimedOut,
    /// The operator no longer applies (the region split or merged, a target vanished...).
    Cancelled(String),
}

/// A sequence of steps for one region.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    /// Who created it and why (`"balance-region"`, `"replace-down-peer"`, ...).
    pub desc: &'static str,
    /// Kind, for limits and timeouts.
    pub kind: OpKind,
    /// The region changed.
    pub region_id: u64,
    /// The region's epoch when the operator was created.
    pub region_epoch: RegionEpoch,
    /// The region's size in MiB when created (for estimating the operator's influence).
    pub region_size: u64,
    /// The steps, in order.
    pub steps: Vec<OpStep>,
    /// Index of the first step not yet observed done.
    pub current: usize,
    /// When the operator was created (re-stamped when admitted).
    pub created_at: Instant,
    /// How long the operator may run.
    pub timeout: Duration,
}

impl Operator {
    /// A new operator for `region`; the timeout is set by [`Operator::with_timeout`] or left at
    /// ten minutes.
    pub fn new(desc: &'static str, kind: OpKind, region: &RegionInfo, steps: Vec<OpStep>) -> Self {
        Operator {
            desc,
            kind,
            region_id: region.id(),
            region_epoch: region.epoch(),
            region_size: region.size_mb(),
            steps,
            current: 0,
            created_at: Instant::now(),
            timeout: Duration::from_secs(600),
        }
    }

    /// Transfers leadership of `region` from `from_store` to `to_store`.
    pub fn transfer_leader(
        desc: &'static str,
        region: &RegionInfo,
        from_store: u64,
        to_store: u64,
    ) -> Operator {
        Operator::new(
            desc,
            OpKind::Leader,
            region,
            vec![OpStep::TransferLeader {
                from_store,
                to_store,
            }],
        )
    }

    /// Moves the peer on `from_store` to `to_store`: add the new peer, hand over leadership if
    /// the moved peer leads, then remove the old peer.
    pub fn move_peer(
        desc: &'static str,
        kind: OpKind,
        region: &RegionInfo,
        from_store: u64,
        to_store: u64,
    ) -> Operator {
        let mut steps = vec![OpStep::AddPeer {
            to_store,
            peer_id: 0,
        }];
        if region.is_leader_on(from_store) {
            steps.push(OpStep::TransferLeader {
                from_store,
                to_store,
            });
        }
        steps.push(OpStep::RemovePeer { from_store });
        Operator::new(desc, kind, region, steps)
    }

    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Operator {
        self.timeout = timeout;
        self
    }

    /// Gives every unallocated add-peer step an id from `alloc`.
    pub fn assign_peer_ids<E>(
        &mut self,
        mut alloc: impl FnMut() -> std::result::Result<u64, E>,
    ) -> std::result::Result<(), E> {
        for step in &mut self.steps {
            if let OpStep::AddPeer { peer_id, .. } = step {
                if *peer_id == 0 {
                    *peer_id = alloc()?;
                }
            }
        }
        Ok(())
    }

    /// Steps not yet observed done.
    pub fn remaining_steps(&self) -> &[OpStep] {
        &self.steps[self.current.min(self.steps.len())..]
    }

    /// Advances past the steps `region` shows done and says what to do next.
    pub fn check(&mut self, region: &RegionInfo, now: Instant) -> OpStatus {
        if region.version() != self.region_epoch.version {
            return OpStatus::Cancelled(format!(
                "region version changed from {} to {}",
                self.region_epoch.version,
                region.version()
            ));
        }
        while self.current < self.steps.len() && self.steps[self.current].is_done(region) {
            self.current += 1;
        }
        if self.current == self.steps.len() {
            return OpStatus::Finished;
        }
        if now.saturating_duration_since(self.created_at) > self.timeout {
            return OpStatus::TimedOut;
        }
        OpStatus::Running(self.steps[self.current])
    }

    /// Whether the operator ran out of time (for operators whose region stopped reporting).
    pub fn is_timed_out(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.created_at) > self.timeout
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} region {} [", self.desc, self.region_id)?;
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{s}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::metapb;

    fn region(stores: &[u64], leader_store: u64) -> RegionInfo {
        let peers: Vec<Peer> = stores
            .iter()
            .map(|s| Peer {
                id: 10 + s,
                store_id: *s,
                ..Default::default()
            })
            .collect();
        let leader = peers.iter().find(|p| p.store_id == leader_store).cloned();
        RegionInfo::new(
            metapb::Region {
                id: 1,
                region_epoch: Some(RegionEpoch {
                    conf_ver: 3,
                    version: 2,
                }),
                peers,
                ..Default::default()
            },
            leader,
        )
    }

    #[test]
    fn move_peer_progresses_through_heartbeats() {
        let now = Instant::now();
        let r = region(&[1], 1);
        let mut op = Operator::move_peer("balance-region", OpKind::Region, &r, 1, 2);
        assert_eq!(op.steps.len(), 3);
        op.assign_peer_ids(|| Ok::<_, ()>(77)).unwrap();
        let step = match op.check(&r, now) {
            OpStatus::Running(s) => s,
            s => panic!("{s:?}"),
        };
        assert_eq!(
            step,
            OpStep::AddPeer {
                to_store: 2,
                peer_id: 77
            }
        );
        let resp = step.to_response(&r).unwrap();
        let cp = resp.change_peer.unwrap();
        assert_eq!(cp.change_type, ConfChangeType::AddNode as i32);
        assert_eq!(cp.peer.unwrap().store_id, 2);
        assert_eq!(resp.target_peer.unwrap().store_id, 1);

        // Added but pending: still the add step.
        let mut r2 = region(&[1, 2], 1);
        r2.pending_peers = vec![*r2.store_peer(2).unwrap()];
        assert!(matches!(
            op.check(&r2, now),
            OpStatus::Running(OpStep::AddPeer { .. })
        ));
        r2.pending_peers.clear();
        let step = match op.check(&r2, now) {
            OpStatus::Running(s) => s,
            s => panic!("{s:?}"),
        };
        assert!(matches!(step, OpStep::TransferLeader { to_store: 2, .. }));
        assert!(step.to_response(&r2).unwrap().transfer_leader.is_some());
        // Removing the leader is refused until leadership moved.
        assert!(OpStep::RemovePeer { from_store: 1 }
            .to_response(&r2)
            .is_err());
        let r3 = region(&[1, 2], 2);
        let step = match op.check(&r3, now) {
            OpStatus::Running(s) => s,
            s => panic!("{s:?}"),
        };
        let cp = step.to_response(&r3).unwrap().change_peer.unwrap();
        assert_eq!(cp.change_type, ConfChangeType::RemoveNode as i32);
        assert_eq!(cp.peer.unwrap().store_id, 1);
        assert_eq!(op.check(&region(&[2], 2), now), OpStatus::Finished);
    }

    #[test]
    fn timeout_and_cancel() {
        let r = region(&[1, 2, 3], 1);
        let mut op = Operator::transfer_leader("balance-leader", &r, 1, 2)
            .with_timeout(Duration::from_secs(1));
        let later = op.created_at + Duration::from_secs(2);
        assert_eq!(op.check(&r, later), OpStatus::TimedOut);
        assert!(op.is_timed_out(later));
        let mut split = r.clone();
        split.meta.region_epoch.as_mut().unwrap().version += 1;
        assert!(matches!(
            op.check(&split, op.created_at),
            OpStatus::Cancelled(_)
        ));
        // An unallocated add-peer step cannot be sent.
        assert!(OpStep::AddPeer {
            to_store: 4,
            peer_id: 0
        }
        .to_response(&r)
        .is_err());
    }
}
