//! Membership: how a region's peer list (with roles) maps to raft-rs's `ConfState`, and how a
//! conf change moves a region from one membership to the next.
//!
//! The region in `RegionLocalState` is the durable record of membership: on restart raft-rs's
//! `ConfState` is rebuilt from it ([`conf_state_from_region`]). Roles map one to one:
//!
//! | role | incoming voters | outgoing voters | learners | learners_next |
//! |---|---|---|---|---|
//! | Voter | ✓ | ✓ (when joint) | | |
//! | IncomingVoter | ✓ | | | |
//! | DemotingVoter | | ✓ | | ✓ |
//! | Learner | | | ✓ | |
//!
//! A voter dropped outright inside a joint change would be "outgoing only" and has no role, so
//! joint changes must demote a voter to learner first; [`apply_conf_change_to_region`] refuses
//! otherwise. Joint changes must also use `ConfChangeTransition::Explicit` (the owner proposes
//! the empty leave-joint change itself): raft-rs's automatic leave would be invisible to the
//! region record.

use proto::metapb::{Peer, PeerRole, Region};
use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType,
};

use crate::errors::{Error, Result};

/// raft-rs's `ConfState` for the membership recorded in `region`.
pub fn conf_state_from_region(region: &Region) -> ConfState {
    let mut cs = ConfState::default();
    let mut joint = false;
    for p in &region.peers {
        match p.role() {
            PeerRole::Voter => {
                cs.voters.push(p.id);
                cs.voters_outgoing.push(p.id);
            }
            PeerRole::IncomingVoter => {
                joint = true;
                cs.voters.push(p.id);
            }
            PeerRole::DemotingVoter => {
                joint = true;
                cs.voters_outgoing.push(p.id);
                cs.learners_next.push(p.id);
            }
            PeerRole::Learner => cs.learners.push(p.id),
        }
    }
    if !joint {
        cs.voters_outgoing.clear();
    }
    cs
}

/// Whether `region` is in a joint configuration (some peer is incoming or demoting).
pub fn is_joint(region: &Region) -> bool {
    region
        .peers
        .iter()
        .any(|p| matches!(p.role(), PeerRole::IncomingVoter | PeerRole::DemotingVoter))
}

/// Decodes the conf change carried by a committed `EntryConfChange` or `EntryConfChangeV2`
/// entry, as a `ConfChangeV2`.
pub fn decode_conf_change(entry: &Entry) -> Result<ConfChangeV2> {
    match entry.get_entry_type() {
        EntryType::EntryConfChange => Ok(conf_change_v1_to_v2(ConfChange::parse_from_bytes(
            entry.get_data(),
        )?)),
        EntryType::EntryConfChangeV2 => Ok(ConfChangeV2::parse_from_bytes(entry.get_data())?),
        EntryType::EntryNormal => Err(Error::Other(format!(
            "entry {} is not a conf change",
            entry.index
        ))),
    }
}

/// The `ConfChangeV2` equivalent of a legacy single `ConfChange` (what raft-rs applies for it).
pub fn conf_change_v1_to_v2(cc: ConfChange) -> ConfChangeV2 {
    let mut v2 = ConfChangeV2::default();
    v2.changes
        .push(conf_change_single(cc.node_id, cc.get_change_type()));
    v2.context = cc.context;
    v2
}

/// One membership change of `node_id`.
pub fn conf_change_single(node_id: u64, change_type: ConfChangeType) -> ConfChangeSingle {
    ConfChangeSingle {
        node_id,
        change_type,
        ..Default::default()
    }
}

fn invalid(region: &Region, reason: impl Into<String>) -> Error {
    Error::InvalidConfChange {
        region_id: region.id,
        reason: reason.into(),
    }
}

/// The region after applying `cc` to `region`: roles updated, removed peers dropped, added peers
/// taken from `new_peers` (which supplies their store ids), and `conf_ver` bumped once per change
/// (once for leaving a joint state). Refuses changes whose outcome has no representation (see
/// the module docs) or would leave no voter.
///
/// The same function validates a conf change before it is proposed and applies it when it
/// commits, so a change that was accepted on proposal is accepted on apply.
pub fn apply_conf_change_to_region(
    region: &Region,
    cc: &ConfChangeV2,
    new_peers: &[Peer],
) -> Result<Region> {
    let mut out = region.clone();
    let joint = is_joint(region);
    let epoch = out.region_epoch.get_or_insert_with(Default::default);
    if cc.leave_joint() {
        if !joint {
            return Err(invalid(region, "leave joint while not in a joint state"));
        }
        epoch.conf_ver += 1;
        for p in &mut out.peers {
            match p.role() {
                PeerRole::IncomingVoter => p.set_role(PeerRole::Voter),
                PeerRole::DemotingVoter => p.set_role(PeerRole::Learner),
                PeerRole::Voter | PeerRole::Learner => {}
            }
        }
        return Ok(out);
    }
    let enter_joint = match cc.enter_joint() {
        Some(true) => {
            return Err(invalid(
                region,
                "joint changes must use ConfChangeTransition::Explicit",
            ))
        }
        Some(false) => true,
        None => false,
    };
    if joint {
        return Err(invalid(region, "in a joint state: leave it first"));
    }
    if cc.changes.is_empty() {
        return Err(invalid(region, "no changes"));
    }
    epoch.conf_ver += cc.changes.len() as u64;
    for ch in cc.get_changes() {
        let id = ch.node_id;
        let pos = out.peers.iter().position(|p| p.id == id);
        let role = pos.map(|i| out.peers[i].role());
        let voter = if enter_joint {
            PeerRole::IncomingVoter
        } else {
            PeerRole::Voter
        };
        use ConfChangeType::*;
        let new_role = match (ch.get_change_type(), role) {
            (AddNode, None) | (AddLearnerNode, None) => {
                let mut peer = new_peers
                    .iter()
                    .find(|p| p.id == id)
                    .cloned()
                    .ok_or_else(|| invalid(region, format!("no store given for new peer {id}")))?;
                peer.set_role(if ch.get_change_type() == AddNode {
                    voter
                } else {
                    PeerRole::Learner
                });
                out.peers.push(peer);
                continue;
            }
            (RemoveNode, None) => continue,
            (AddNode, Some(PeerRole::Learner)) => Some(voter),
            (AddNode, Some(PeerRole::DemotingVoter)) => Some(PeerRole::Voter),
            (AddNode, Some(_)) => continue,
            (AddLearnerNode, Some(PeerRole::Voter)) => Some(if enter_joint {
                PeerRole::DemotingVoter
            } else {
                PeerRole::Learner
            }),
            (AddLearnerNode, Some(PeerRole::IncomingVoter)) => Some(PeerRole::Learner),
            (AddLearnerNode, Some(_)) => continue,
            (RemoveNode, Some(PeerRole::Learner | PeerRole::IncomingVoter)) => None,
            (RemoveNode, Some(PeerRole::Voter)) if !enter_joint => None,
            (RemoveNode, Some(_)) => {
                return Err(invalid(
                    region,
                    format!("voter {id} cannot be removed in a joint change: demote it first"),
                ))
            }
        };
        let i = pos.expect("existing peer");
        match new_role {
            Some(r) => out.peers[i].set_role(r),
            None => {
                out.peers.remove(i);
            }
        }
    }
    let voters = conf_state_from_region(&out).voters.len();
    if voters == 0 {
        return Err(invalid(region, "the change removes every voter"));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    fn peer(id: u64, role: PeerRole) -> Peer {
        let mut p = Peer {
            id,
            store_id: id * 10,
            ..Default::default()
        };
        p.set_role(role);
        p
    }

    fn region(peers: Vec<Peer>) -> Region {
        Region {
            id: 1,
            peers,
            ..Default::default()
        }
    }

    fn cc(changes: &[(u64, ConfChangeType)], explicit: bool) -> ConfChangeV2 {
        let mut cc = ConfChangeV2::default();
        for (id, t) in changes {
            cc.changes.push(conf_change_single(*id, *t));
        }
        if explicit {
            cc.set_transition(raft::eraftpb::ConfChangeTransition::Explicit);
        }
        cc
    }

    fn sorted(mut v: Vec<u64>) -> Vec<u64> {
        v.sort();
        v
    }

    #[test]
    fn simple_changes_update_roles_and_epoch() {
        let r = region(vec![peer(1, PeerRole::Voter), peer(2, PeerRole::Learner)]);
        let cs = conf_state_from_region(&r);
        assert_eq!((cs.voters.clone(), cs.learners.clone()), (vec![1], vec![2]));
        assert!(cs.voters_outgoing.is_empty());

        let r2 = apply_conf_change_to_region(&r, &cc(&[(2, ConfChangeType::AddNode)], false), &[])
            .unwrap();
        assert_eq!(sorted(conf_state_from_region(&r2).voters), vec![1, 2]);
        assert_eq!(r2.region_epoch.unwrap().conf_ver, 1);

        let r3 = apply_conf_change_to_region(
            &r2,
            &cc(&[(3, ConfChangeType::AddNode)], false),
            &[peer(3, PeerRole::Voter)],
        )
        .unwrap();
        assert_eq!(r3.peers.last().unwrap().store_id, 30);
        let r4 =
            apply_conf_change_to_region(&r3, &cc(&[(1, ConfChangeType::RemoveNode)], false), &[])
                .unwrap();
        assert_eq!(sorted(conf_state_from_region(&r4).voters), vec![2, 3]);
        // A new peer without a store is refused, as is removing the last voter.
        assert!(
            apply_conf_change_to_region(&r4, &cc(&[(9, ConfChangeType::AddNode)], false), &[])
                .is_err()
        );
        let single = region(vec![peer(1, PeerRole::Voter)]);
        assert!(apply_conf_change_to_region(
            &single,
            &cc(&[(1, ConfChangeType::RemoveNode)], false),
            &[]
        )
        .is_err());
    }

    #[test]
    fn joint_changes_round_trip_through_roles() {
        let r = region(vec![
            peer(1, PeerRole::Voter),
            peer(2, PeerRole::Voter),
            peer(3, PeerRole::Learner),
        ]);
        let enter = cc(
            &[
                (3, ConfChangeType::AddNode),
                (2, ConfChangeType::AddLearnerNode),
                (4, ConfChangeType::AddLearnerNode),
            ],
            true,
        );
        let joint = apply_conf_change_to_region(&r, &enter, &[peer(4, PeerRole::Voter)]).unwrap();
        assert!(is_joint(&joint));
        let cs = conf_state_from_region(&joint);
        assert_eq!(sorted(cs.voters.clone()), vec![1, 3]);
        assert_eq!(sorted(cs.voters_outgoing.clone()), vec![1, 2]);
        assert_eq!(cs.learners_next, vec![2]);
        assert_eq!(cs.learners, vec![4]);
        // In a joint state only the leave is accepted.
        assert!(apply_conf_change_to_region(
            &joint,
            &cc(&[(5, ConfChangeType::AddNode)], false),
            &[]
        )
        .is_err());
        let left = apply_conf_change_to_region(&joint, &ConfChangeV2::default(), &[]).unwrap();
        assert!(!is_joint(&left));
        let cs = conf_state_from_region(&left);
        assert_eq!(sorted(cs.voters), vec![1, 3]);
        assert_eq!(sorted(cs.learners), vec![2, 4]);
        assert!(apply_conf_change_to_region(&left, &ConfChangeV2::default(), &[]).is_err());
    }

    #[test]
    fn unrepresentable_changes_are_refused() {
        let r = region(vec![
            peer(1, PeerRole::Voter),
            peer(2, PeerRole::Voter),
            peer(3, PeerRole::Voter),
        ]);
        let remove_in_joint = cc(
            &[
                (2, ConfChangeType::RemoveNode),
                (4, ConfChangeType::AddNode),
            ],
            true,
        );
        assert!(
            apply_conf_change_to_region(&r, &remove_in_joint, &[peer(4, PeerRole::Voter)]).is_err()
        );
        let auto = cc(
            &[
                (2, ConfChangeType::AddLearnerNode),
                (4, ConfChangeType::AddNode),
            ],
            false,
        );
        assert!(apply_conf_change_to_region(&r, &auto, &[peer(4, PeerRole::Voter)]).is_err());
    }

    #[test]
    fn conf_change_entries_decode_from_both_versions() {
        let mut v1 = ConfChange::default();
        v1.set_change_type(ConfChangeType::AddLearnerNode);
        v1.node_id = 7;
        v1.context = b"ctx".to_vec().into();
        let mut e = Entry::default();
        e.set_entry_type(EntryType::EntryConfChange);
        e.data = v1.write_to_bytes().unwrap().into();
        let v2 = decode_conf_change(&e).unwrap();
        assert_eq!(v2.get_changes()[0].node_id, 7);
        assert_eq!(v2.get_context(), b"ctx");
        e.set_entry_type(EntryType::EntryConfChangeV2);
        e.data = v2.write_to_bytes().unwrap().into();
        assert_eq!(decode_conf_change(&e).unwrap(), v2);
        e.set_entry_type(EntryType::EntryNormal);
        assert!(decode_conf_change(&e).is_err());
    }
}
