//! Project 3A-level suite: membership changes and leader transfer through our driver, with the
//! region record as the durable source of membership.

mod harness;

use harness::{Cluster, ConfChangeV2};
use raft::eraftpb::ConfChangeTransition;
use raft::eraftpb::ConfChangeType;
use raft::StateRole;
use raft_core::conf_change::conf_change_single;

fn key(i: usize) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

fn change(changes: &[(u64, ConfChangeType)]) -> ConfChangeV2 {
    let mut cc = ConfChangeV2::default();
    for (id, t) in changes {
        cc.changes.push(conf_change_single(*id, *t));
    }
    cc
}

fn joint(changes: &[(u64, ConfChangeType)]) -> ConfChangeV2 {
    let mut cc = change(changes);
    cc.set_transition(ConfChangeTransition::Explicit);
    cc
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

/// Proposes `cc` on the leader and waits until it is applied everywhere it should be.
fn must_change(c: &mut Cluster, cc: ConfChangeV2) {
    let leader = c.leader().expect("leader");
    let mut h = c.propose_conf_change(leader, cc);
    assert!(h.index.is_some(), "conf change refused: {:?}", h.answer());
    assert!(c.wait_answer(&mut h).is_ok());
}

// ---- membership ----

#[test]
fn add_node_catches_up_by_snapshot() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for i in 0..10 {
        c.must_put(&key(i), b"v");
    }
    c.add_empty_node(4);
    must_change(&mut c, change(&[(4, ConfChangeType::AddNode)]));
    c.wait_applied_everywhere();
    assert!(
        c.snapshots_sent >= 1,
        "an empty peer starts from a snapshot"
    );
    for id in 1..=4 {
        assert_eq!(sorted(c.status(id).voters), vec![1, 2, 3, 4], "node {id}");
    }
    c.assert_same_data(&[1, 2, 3, 4]);
    // Node 4 counts in the quorum now: with 1 and 2 gone, 3 and 4 cannot commit alone...
    c.isolate(1);
    c.isolate(2);
    let before = c.node(4).get(b"q");
    c.pass_election_timeouts();
    assert!(c.leaders_among(&[3, 4]).is_empty());
    assert_eq!(before, None);
    // ...and with 1 back, three of four can.
    c.recover();
    c.isolate(2);
    c.must_put(b"q", b"1");
    c.wait_until(100, "node 4 to apply", |c| c.node(4).get(b"q").is_some());
}

#[test]
fn removed_node_is_destroyed_and_the_quorum_shrinks() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.must_put(b"a", b"1");
    must_change(&mut c, change(&[(3, ConfChangeType::RemoveNode)]));
    c.wait_until(50, "node 3 to destroy itself", |c| c.node(3).destroyed);
    for id in [1, 2] {
        assert_eq!(sorted(c.status(id).voters), vec![1, 2]);
    }
    // Two of two commit without node 3.
    c.must_put(b"b", b"2");
    // The follower learns the commit index from the next heartbeat (skip_bcast_commit).
    c.wait_until(20, "node 2 to apply b", |c| {
        c.node(2).get(b"b").as_deref() == Some(&b"2"[..])
    });
}

#[test]
fn removing_the_leader_lets_the_rest_continue() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.must_put(b"a", b"1");
    must_change(&mut c, change(&[(1, ConfChangeType::RemoveNode)]));
    c.wait_until(50, "the old leader to destroy itself", |c| {
        c.node(1).destroyed
    });
    c.wait_until(300, "a new leader", |c| c.leaders_among(&[2, 3]).len() == 1);
    c.must_put(b"b", b"2");
    c.wait_applied_everywhere();
    c.assert_same_data(&[2, 3]);
    for id in [2, 3] {
        assert_eq!(sorted(c.status(id).voters), vec![2, 3]);
    }
}

#[test]
fn pending_entry_commits_once_a_removal_is_applied() {
    let mut c = Cluster::new(2);
    c.elect(1);
    c.must_put(b"a", b"1");
    // The removal commits with both nodes, but node 1 does not apply it yet.
    c.node_mut(1).apply_paused = true;
    let mut rm = c.propose_conf_change(1, change(&[(2, ConfChangeType::RemoveNode)]));
    let rm_index = rm.index.expect("accepted");
    c.settle();
    assert!(c.status(1).commit_index >= rm_index);
    // Under the old configuration, an entry needs node 2, which is now gone.
    c.isolate(2);
    let mut x = c.propose(1, b"x", b"1");
    let x_index = x.index.expect("accepted");
    for _ in 0..5 {
        c.tick(1);
        c.settle();
    }
    assert!(
        c.status(1).commit_index < x_index,
        "cannot commit under {{1, 2}}"
    );
    // Applying the removal recomputes the quorum: {1} commits the entry on its own.
    c.node_mut(1).apply_paused = false;
    c.settle();
    assert!(c.wait_answer(&mut rm).is_ok());
    assert!(c.wait_answer(&mut x).is_ok());
    assert_eq!(c.node(1).get(b"x").as_deref(), Some(&b"1"[..]));
}

#[test]
fn a_second_conf_change_waits_for_the_first_to_apply() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.node_mut(1).apply_paused = true;
    c.add_empty_node(4);
    let first = c.propose_conf_change(1, change(&[(4, ConfChangeType::AddLearnerNode)]));
    assert!(first.index.is_some());
    let mut second = c.propose_conf_change(1, change(&[(3, ConfChangeType::RemoveNode)]));
    assert_eq!(second.index, None);
    assert!(second
        .answer()
        .unwrap()
        .unwrap_err()
        .contains("not applied yet"));
    c.node_mut(1).apply_paused = false;
    c.settle();
    c.wait_until(200, "learner 4", |c| {
        c.status(4).applied_index >= c.status(1).commit_index
    });
    assert_eq!(c.status(1).learners, vec![4]);
}

#[test]
fn adding_an_existing_voter_again_is_harmless() {
    let mut c = Cluster::new(3);
    c.elect(1);
    must_change(&mut c, change(&[(2, ConfChangeType::AddNode)]));
    must_change(&mut c, change(&[(2, ConfChangeType::AddNode)]));
    for id in 1..=3 {
        assert_eq!(sorted(c.status(id).voters), vec![1, 2, 3]);
    }
    c.must_put(b"still", b"works");
}

#[test]
fn joint_consensus_promotes_and_demotes_atomically_and_survives_restart() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.add_empty_node(4);
    must_change(&mut c, change(&[(4, ConfChangeType::AddLearnerNode)]));
    c.wait_applied_everywhere();
    // Promote 4 and demote 3 in one joint step.
    must_change(
        &mut c,
        joint(&[
            (4, ConfChangeType::AddNode),
            (3, ConfChangeType::AddLearnerNode),
        ]),
    );
    c.wait_applied_everywhere();
    let s = c.status(2);
    assert_eq!(sorted(s.voters.clone()), vec![1, 2, 4]);
    let conf = c
        .node(2)
        .group()
        .raw_node()
        .raft
        .prs()
        .conf()
        .to_conf_state();
    assert_eq!(
        sorted(conf.voters_outgoing.clone()),
        vec![1, 2, 3],
        "joint state"
    );
    // A restart in the joint state rebuilds it from the region record.
    c.crash(2);
    c.restart(2);
    let after = c
        .node(2)
        .group()
        .raw_node()
        .raft
        .prs()
        .conf()
        .to_conf_state();
    assert_eq!(sorted(after.voters), vec![1, 2, 4]);
    assert_eq!(sorted(after.voters_outgoing), vec![1, 2, 3]);
    assert_eq!(after.learners_next, vec![3]);
    // Anything but leaving is refused while joint; the empty change leaves.
    let leader = c.leader().unwrap();
    let mut refused = c.propose_conf_change(leader, change(&[(3, ConfChangeType::RemoveNode)]));
    assert_eq!(refused.index, None);
    assert!(refused.answer().unwrap().is_err());
    must_change(&mut c, ConfChangeV2::default());
    c.wait_applied_everywhere();
    for id in 1..=4 {
        let s = c.status(id);
        assert_eq!(sorted(s.voters), vec![1, 2, 4], "node {id}");
        assert_eq!(s.learners, vec![3], "node {id}");
    }
    c.must_put(b"after", b"joint");
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3, 4]);
}

#[test]
fn unrepresentable_or_auto_leave_joint_changes_are_refused_up_front() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut h = c.propose_conf_change(
        1,
        joint(&[
            (3, ConfChangeType::RemoveNode),
            (2, ConfChangeType::AddLearnerNode),
        ]),
    );
    assert!(h.answer().unwrap().unwrap_err().contains("demote it first"));
    let mut h = c.propose_conf_change(
        1,
        change(&[
            (3, ConfChangeType::AddLearnerNode),
            (2, ConfChangeType::AddLearnerNode),
        ]),
    );
    assert!(h.answer().unwrap().unwrap_err().contains("Explicit"));
    let mut h = c.propose_conf_change(2, change(&[(3, ConfChangeType::RemoveNode)]));
    assert!(h.answer().unwrap().unwrap_err().contains("not leader"));
}

// ---- leader transfer ----

#[test]
fn transfer_to_an_up_to_date_follower_and_back() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.must_put(b"a", b"1");
    let term = c.status(1).term;
    c.node_mut(1).group_mut().transfer_leader(2);
    c.settle();
    assert_eq!(c.leader(), Some(2));
    assert_eq!(c.status(2).term, term + 1);
    c.node_mut(2).group_mut().transfer_leader(1);
    c.settle();
    assert_eq!(c.leader(), Some(1));
    c.must_put(b"b", b"2");
}

#[test]
fn transfer_requested_on_a_follower_is_forwarded() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.node_mut(3).group_mut().transfer_leader(3);
    c.settle();
    assert_eq!(c.leader(), Some(3));
    for id in 1..=3 {
        assert_eq!(c.status(id).leader_id, Some(3));
    }
}

#[test]
fn transfer_to_a_slow_follower_first_catches_it_up() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    for i in 0..10 {
        c.must_put(&key(i), b"v");
    }
    c.recover();
    c.node_mut(1).group_mut().transfer_leader(3);
    c.wait_until(100, "node 3 to lead", |c| c.leader() == Some(3));
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);
}

#[test]
fn transfer_to_a_follower_needing_a_snapshot_completes_after_it() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    for i in 0..20 {
        c.must_put(&key(i), b"v");
    }
    c.compact_all();
    c.recover();
    c.node_mut(1).group_mut().transfer_leader(3);
    c.wait_until(300, "node 3 to lead after its snapshot", |c| {
        c.leader() == Some(3)
    });
    assert!(c.snapshots_sent >= 1);
    c.must_put(b"after", b"transfer");
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);
}

#[test]
fn transfer_to_self_or_a_non_member_is_a_no_op() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let term = c.status(1).term;
    for target in [1, 9] {
        c.node_mut(1).group_mut().transfer_leader(target);
        c.settle();
        assert_eq!(c.leader(), Some(1));
        assert_eq!(c.status(1).lead_transferee, None);
        assert_eq!(c.status(1).term, term);
    }
    c.must_put(b"still", b"leader");
}

#[test]
fn transfer_to_a_removed_node_is_ignored() {
    let mut c = Cluster::new(3);
    c.elect(1);
    must_change(&mut c, change(&[(3, ConfChangeType::RemoveNode)]));
    c.node_mut(1).group_mut().transfer_leader(3);
    c.settle();
    assert_eq!(c.leader(), Some(1));
    assert_eq!(c.status(1).lead_transferee, None);
}

#[test]
fn pending_transfer_blocks_proposals_and_can_be_cancelled() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.node_mut(1).group_mut().transfer_leader(3);
    c.settle();
    assert_eq!(c.status(1).lead_transferee, Some(3));
    let mut h = c.propose(1, b"during", b"transfer");
    assert_eq!(h.index, None);
    assert!(h.answer().unwrap().unwrap_err().contains("dropped"));
    // Transferring to the leader itself cancels.
    c.node_mut(1).group_mut().transfer_leader(1);
    c.settle();
    assert_eq!(c.status(1).lead_transferee, None);
    assert_eq!(c.leader(), Some(1));
    let mut h = c.propose(1, b"after", b"cancel");
    assert!(c.wait_answer(&mut h).is_ok());
}

#[test]
fn a_second_transfer_supersedes_the_first() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.node_mut(1).group_mut().transfer_leader(3);
    c.settle();
    assert_eq!(c.status(1).lead_transferee, Some(3));
    c.node_mut(1).group_mut().transfer_leader(2);
    c.settle();
    assert_eq!(c.leader(), Some(2));
}

#[test]
fn an_unfinished_transfer_times_out() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.node_mut(1).group_mut().transfer_leader(3);
    c.settle();
    assert_eq!(c.status(1).lead_transferee, Some(3));
    for _ in 0..c.cfg.election_tick * 2 {
        c.tick(1);
        c.tick(2);
        c.settle();
    }
    assert_eq!(c.status(1).lead_transferee, None);
    assert_eq!(c.leader(), Some(1));
    let mut h = c.propose(1, b"x", b"1");
    assert!(c.wait_answer(&mut h).is_ok());
}

#[test]
fn a_higher_term_election_wins_over_a_pending_transfer() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    c.node_mut(1).group_mut().transfer_leader(3);
    c.settle();
    // Meanwhile 1 is cut off; 2 and 3 elect a leader in a higher term.
    c.recover();
    c.isolate(1);
    c.wait_until(300, "a leader among 2 and 3", |c| {
        c.leaders_among(&[2, 3]).len() == 1
    });
    c.recover();
    c.settle();
    c.wait_until(100, "node 1 to follow", |c| {
        c.status(1).role == StateRole::Follower
    });
    assert_ne!(c.leader(), Some(1));
}
