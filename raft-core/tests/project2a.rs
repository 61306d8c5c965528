//! Project 2A-level suite (and the 2C snapshot scenarios): one Raft group on raft-rs with
//! durable peer storage, driven through the in-memory network harness. raft-rs tests its own
//! algorithm; these tests check that our integration elects, replicates, persists, recovers and
//! catches up by snapshot correctly, reading results back from each node's engines.

mod harness;

use harness::{Cluster, MessageType};
use raft::StateRole;
use raft_core::storage::state::{RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};

fn key(i: usize) -> Vec<u8> {
    format!("k{i:04}").into_bytes()
}

fn value(i: usize) -> Vec<u8> {
    format!("v{i:04}").into_bytes()
}

// ---- election ----

#[test]
fn single_node_elects_itself_and_commits() {
    let mut c = Cluster::new(1);
    c.elect(1);
    let s = c.status(1);
    assert_eq!(s.term, RAFT_INIT_LOG_TERM + 1);
    assert_eq!(s.leader_id, Some(1));
    let index = c.must_put(b"a", b"1");
    assert_eq!(
        index,
        RAFT_INIT_LOG_INDEX + 2,
        "after the leader's no-op entry"
    );
    assert_eq!(c.node(1).get(b"a").as_deref(), Some(&b"1"[..]));
}

#[test]
fn leader_elected_only_with_a_reachable_quorum() {
    // (group size, black-holed peers, expect a leader)
    let cases: &[(u64, &[u64], bool)] = &[
        (3, &[], true),
        (3, &[3], true),
        (3, &[2, 3], false),
        (4, &[3, 4], false),
        (5, &[4, 5], true),
        (5, &[3, 4, 5], false),
    ];
    for (n, down, expect_leader) in cases {
        let mut c = Cluster::new(*n);
        for id in *down {
            c.isolate(*id);
        }
        c.campaign(1);
        for _ in 0..5 {
            c.pass_election_timeouts();
        }
        let up: Vec<u64> = (1..=*n).filter(|id| !down.contains(id)).collect();
        let leaders = c.leaders_among(&up);
        if *expect_leader {
            assert_eq!(leaders.len(), 1, "n={n} down={down:?}: {leaders:?}");
            let l = leaders[0];
            for id in &up {
                assert_eq!(
                    c.status(*id).leader_id,
                    Some(l),
                    "n={n} down={down:?} node {id}"
                );
            }
        } else {
            assert!(
                leaders.is_empty(),
                "n={n} down={down:?}: unexpected leader {leaders:?}"
            );
            // Pre-vote keeps a minority from inflating terms while it cannot win.
            for id in &up {
                let s = c.status(*id);
                assert_eq!(s.term, RAFT_INIT_LOG_TERM, "n={n} down={down:?}: {s:?}");
                assert!(
                    matches!(s.role, StateRole::PreCandidate | StateRole::Follower),
                    "{s:?}"
                );
            }
        }
    }
}

#[test]
fn campaign_on_a_leader_is_a_no_op() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let term = c.status(1).term;
    c.campaign(1);
    assert_eq!(c.status(1).role, StateRole::Leader);
    assert_eq!(c.status(1).term, term);
}

#[test]
fn a_follower_cannot_disrupt_a_live_leader() {
    // Pre-vote and check quorum: peers that hear from their leader refuse to vote, so a
    // follower's campaign neither wins nor bumps anybody's term.
    let mut c = Cluster::new(3);
    c.elect(1);
    let term = c.status(1).term;
    c.campaign(2);
    for id in [1, 2, 3] {
        assert_eq!(c.status(id).term, term, "node {id}");
    }
    assert_eq!(c.status(1).role, StateRole::Leader);
    // The next heartbeat brings the would-be candidate back.
    for _ in 0..c.cfg.heartbeat_tick {
        c.tick(1);
        c.settle();
    }
    for id in [1, 2, 3] {
        assert_eq!(c.status(id).leader_id, Some(1), "node {id}");
        assert_eq!(c.status(id).term, term, "node {id}");
    }
}

#[test]
fn split_vote_resolves_after_healing() {
    let mut c = Cluster::new(4);
    // Two halves campaign at the same time; neither reaches a majority of four.
    c.partition(&[1, 2]);
    c.campaign(1);
    c.campaign(3);
    c.pass_election_timeouts();
    assert!(c.leader().is_none());
    c.recover();
    c.wait_until(300, "a single leader after the split", |c| {
        c.leader().is_some()
    });
    let l = c.leader().unwrap();
    let term = c.status(l).term;
    assert!(term > RAFT_INIT_LOG_TERM);
    c.settle();
    for id in 1..=4 {
        assert_eq!(c.status(id).term, term, "node {id}");
        assert_eq!(c.status(id).leader_id, Some(l), "node {id}");
    }
}

#[test]
fn a_stale_leader_steps_down_when_it_rejoins() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    // Check quorum: the cut-off leader steps down; the others elect a new one.
    c.wait_until(200, "a new leader among 2 and 3", |c| {
        c.leaders_among(&[2, 3]).len() == 1
    });
    c.wait_until(200, "the old leader to step down", |c| {
        c.status(1).role != StateRole::Leader
    });
    c.recover();
    c.must_put(b"x", b"y");
    let l = c.leader().unwrap();
    assert_ne!(l, 1);
    c.wait_applied_everywhere();
    for id in [1, 2, 3] {
        assert_eq!(c.status(id).leader_id, Some(l));
        assert_eq!(c.node(id).get(b"x").as_deref(), Some(&b"y"[..]));
    }
}

// ---- replication ----

#[test]
fn entries_commit_with_a_majority_and_reach_the_lagging_node_later() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    for i in 0..20 {
        c.must_put(&key(i), &value(i));
    }
    let commit = c.status(1).commit_index;
    assert!(c.status(2).applied_index >= commit - 1);
    assert!(c.node(3).get(&key(0)).is_none());
    c.recover();
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);
    assert_eq!(c.node(3).log(), c.node(1).log());
}

#[test]
fn proposals_on_a_follower_are_rejected_with_the_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let mut h = c.propose(2, b"k", b"v");
    assert_eq!(h.index, None);
    let answer = h.answer().expect("answered at once");
    assert!(answer.unwrap_err().contains("not leader (leader: Some(1))"));
}

#[test]
fn a_minority_side_proposal_never_commits() {
    let mut c = Cluster::new(5);
    c.elect(1);
    c.must_put(b"before", b"1");
    c.partition(&[1, 2]);
    let mut h = c.propose(1, b"minority", b"lost");
    assert!(h.index.is_some());
    c.wait_until(300, "a majority-side leader", |c| {
        c.leaders_among(&[3, 4, 5]).len() == 1
    });
    let l = c.leaders_among(&[3, 4, 5])[0];
    let mut h2 = c.propose(l, b"majority", b"kept");
    assert!(c.wait_answer(&mut h2).is_ok());
    for _ in 0..3 {
        c.pass_election_timeouts();
    }
    assert!(
        h.answer().is_none(),
        "the minority proposal must not be answered yet"
    );
    c.recover();
    c.wait_applied_everywhere();
    // Once the majority's log reaches the old leader, the overwritten proposal is stale.
    let answer = h.answer().expect("answered after healing");
    assert!(answer.unwrap_err().contains("stale command"));
    for id in 1..=5 {
        assert_eq!(c.node(id).get(b"minority"), None, "node {id}");
        assert_eq!(
            c.node(id).get(b"majority").as_deref(),
            Some(&b"kept"[..]),
            "node {id}"
        );
    }
    c.assert_same_data(&[1, 2, 3, 4, 5]);
}

#[test]
fn divergent_uncommitted_logs_are_overwritten_by_the_new_leader() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.must_put(b"base", b"0");
    c.wait_applied_everywhere();
    // Leader 1 appends A entries nobody else receives.
    c.isolate(1);
    let mut a: Vec<_> = (0..3).map(|i| c.propose(1, &key(i), b"A")).collect();
    c.settle();
    // A second leader appends B entries only it has, after its no-op reached the third node.
    c.wait_until(300, "a second leader", |c| {
        c.leaders_among(&[2, 3]).len() == 1
    });
    c.wait_until(300, "node 1 to step down", |c| {
        c.status(1).role != StateRole::Leader
    });
    let l2 = c.leaders_among(&[2, 3])[0];
    let t2 = c.status(l2).term;
    let other = if l2 == 2 { 3 } else { 2 };
    c.isolate(l2);
    let mut b: Vec<_> = (10..13).map(|i| c.propose(l2, &key(i), b"B")).collect();
    c.settle();
    // Node 1 and the third node elect a leader whose log wins; it writes C entries.
    c.recover();
    c.isolate(l2);
    c.wait_until(300, "a third leader", |c| {
        c.leaders_among(&[1, other]).len() == 1 && c.status(other).term > t2
    });
    let l3 = c.leaders_among(&[1, other])[0];
    assert_eq!(l3, other, "the node with the newer last term wins");
    let mut h = c.propose(l3, b"C", b"1");
    assert!(c.wait_answer(&mut h).is_ok());
    c.recover();
    c.wait_applied_everywhere();
    // Both divergent suffixes are gone; every log and every engine agree.
    assert_eq!(c.node(1).log(), c.node(l3).log());
    assert_eq!(c.node(l2).log(), c.node(l3).log());
    c.assert_same_data(&[1, 2, 3]);
    for h in a.iter_mut().chain(b.iter_mut()) {
        let answers = h.answers().to_vec();
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert!(answers[0].as_ref().unwrap_err().contains("stale command"));
    }
    for i in (0..3).chain(10..13) {
        assert_eq!(c.node(1).get(&key(i)), None);
    }
}

#[test]
fn overwritten_proposals_are_answered_stale_exactly_once() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(1);
    let mut lost: Vec<_> = (0..5).map(|i| c.propose(1, &key(i), b"lost")).collect();
    c.settle();
    c.wait_until(300, "a new leader", |c| c.leaders_among(&[2, 3]).len() == 1);
    let l = c.leaders_among(&[2, 3])[0];
    for i in 0..3 {
        let mut h = c.propose(l, &key(100 + i), b"won");
        assert!(c.wait_answer(&mut h).is_ok());
    }
    c.recover();
    c.wait_applied_everywhere();
    for h in &mut lost {
        let answers = h.answers().to_vec();
        assert_eq!(answers.len(), 1, "{answers:?}");
        assert!(answers[0].as_ref().unwrap_err().contains("stale command"));
    }
    c.assert_same_data(&[1, 2, 3]);
}

#[test]
fn read_index_needs_a_quorum_and_covers_committed_writes() {
    let mut c = Cluster::new(3);
    c.elect(1);
    let index = c.must_put(b"r", b"1");
    c.node_mut(1).group_mut().read_index(b"read-1".to_vec());
    c.settle();
    let rs = c.node(1).read_states.last().expect("read state");
    assert_eq!(rs.request_ctx, b"read-1");
    assert!(rs.index >= index);
    // Forwarded from a follower.
    c.node_mut(2).group_mut().read_index(b"read-2".to_vec());
    c.settle();
    let rs = c.node(2).read_states.last().expect("forwarded read state");
    assert_eq!(rs.request_ctx, b"read-2");
    assert!(rs.index >= index);
    // A leader cut off from the quorum cannot confirm it still leads.
    c.isolate(1);
    let before = c.node(1).read_states.len();
    c.node_mut(1).group_mut().read_index(b"read-3".to_vec());
    c.settle();
    c.tick_all();
    c.settle();
    assert_eq!(c.node(1).read_states.len(), before);
}

#[test]
fn lossy_network_still_converges() {
    let mut c = Cluster::new(5);
    c.drop_all(0.2);
    for i in 0..30 {
        c.must_put(&key(i), &value(i));
    }
    c.recover();
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3, 4, 5]);
    let l = c.leader().unwrap();
    for id in 1..=5 {
        assert_eq!(c.node(id).log(), c.node(l).log(), "node {id}");
    }
}

#[test]
fn one_call_handle_ready_and_two_phase_nodes_interoperate() {
    let mut c = Cluster::new(3);
    c.node_mut(1).one_call = true;
    c.node_mut(3).one_call = true;
    c.elect(1);
    for i in 0..10 {
        c.must_put(&key(i), &value(i));
    }
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);
}

// ---- durability and recovery ----

#[test]
fn restart_recovers_hard_state_applied_index_and_log_exactly() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for i in 0..10 {
        c.must_put(&key(i), &value(i));
    }
    c.wait_applied_everywhere();
    for id in [2, 1] {
        let before = (c.status(id), c.node(id).log(), c.node(id).all_data());
        c.crash(id);
        c.restart(id);
        let after = c.status(id);
        assert_eq!(after.term, before.0.term, "node {id}");
        assert_eq!(after.vote, before.0.vote, "node {id}");
        assert!(after.commit_index >= before.0.applied_index, "node {id}");
        assert_eq!(after.applied_index, before.0.applied_index, "node {id}");
        assert_eq!(after.last_index, before.0.last_index, "node {id}");
        assert_eq!(
            after.role,
            StateRole::Follower,
            "node {id} restarts as follower"
        );
        assert_eq!(c.node(id).log(), before.1, "node {id}");
        assert_eq!(c.node(id).all_data(), before.2, "node {id}");
    }
}

#[test]
fn crashed_follower_and_leader_keep_every_committed_entry() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for i in 0..10 {
        c.must_put(&key(i), &value(i));
    }
    c.crash(3);
    for i in 10..20 {
        c.must_put(&key(i), &value(i));
    }
    c.restart(3);
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);

    let old = c.leader().unwrap();
    c.crash(old);
    for i in 20..30 {
        c.must_put(&key(i), &value(i));
    }
    c.restart(old);
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);
    for id in [1, 2, 3] {
        for i in 0..30 {
            assert_eq!(c.node(id).get(&key(i)), Some(value(i)), "node {id} key {i}");
        }
    }
}

#[test]
fn restart_replays_exactly_the_unapplied_entries() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.must_put(b"a", b"1");
    c.wait_applied_everywhere();
    // Node 3 persists and commits new entries but does not apply them before crashing.
    c.node_mut(3).apply_paused = true;
    for i in 0..5 {
        c.must_put(&key(i), &value(i));
    }
    c.wait_until(50, "node 3 to learn the commit", |c| {
        c.status(3).commit_index == c.status(1).commit_index
    });
    let applied = c.status(3).applied_index;
    let commit = c.status(3).commit_index;
    assert!(commit > applied);
    let log_before = c.node(3).applied_log.clone();
    c.crash(3);
    c.node_mut(3).apply_paused = false;
    c.restart(3);
    c.wait_applied_everywhere();
    let replayed = &c.node(3).applied_log[log_before.len()..];
    let expected: Vec<u64> = (applied + 1..=c.status(1).commit_index).collect();
    assert_eq!(
        replayed,
        expected.as_slice(),
        "exactly the unapplied entries, once each"
    );
    c.assert_same_data(&[1, 2, 3]);
}

#[test]
fn restarted_node_with_lagging_persisted_commit_recovers() {
    // The commit index learned after persistence is written lazily; a crash right after the
    // applier caught up must not leave commit < applied (raft-rs would refuse to start).
    let mut c = Cluster::new(1);
    c.elect(1);
    for i in 0..5 {
        c.must_put(&key(i), &value(i));
    }
    let s = c.status(1);
    c.crash(1);
    c.restart(1);
    let r = c.status(1);
    assert_eq!(r.applied_index, s.applied_index);
    assert!(r.commit_index >= r.applied_index);
    c.elect(1);
    c.must_put(b"after", b"restart");
}

// ---- snapshots ----

#[test]
fn follower_behind_a_compacted_log_catches_up_by_snapshot() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    for i in 0..60 {
        c.must_put(&key(i), &value(i));
    }
    c.compact_all();
    let first = c.status(1).first_index;
    assert!(
        first > RAFT_INIT_LOG_INDEX + 50,
        "leader log compacted to {first}"
    );
    c.recover();
    c.wait_applied_everywhere();
    assert!(c.snapshots_sent >= 1);
    c.assert_same_data(&[1, 2, 3]);
    let s3 = c.status(3);
    assert!(
        s3.first_index > RAFT_INIT_LOG_INDEX + 1,
        "node 3 restarted its log from the snapshot"
    );
    // The snapshot leaves no files behind on either side.
    assert!(c.node(1).snap_mgr().list().unwrap().is_empty());
    assert!(c.node(3).snap_mgr().list().unwrap().is_empty());
    // And node 3 keeps replicating normally afterwards.
    c.must_put(b"after", b"snap");
    c.wait_applied_everywhere();
    assert_eq!(c.node(3).get(b"after").as_deref(), Some(&b"snap"[..]));
}

#[test]
fn restart_after_a_snapshot_keeps_snapshot_and_later_entries() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    for i in 0..30 {
        c.must_put(&key(i), &value(i));
    }
    c.compact_all();
    c.recover();
    c.wait_applied_everywhere();
    let snap_index = c.status(3).first_index - 1;
    // Entries after the snapshot, persisted but not applied on node 3 before it crashes.
    c.node_mut(3).apply_paused = true;
    for i in 30..35 {
        c.must_put(&key(i), &value(i));
    }
    c.wait_until(50, "node 3 commit", |c| {
        c.status(3).commit_index == c.status(1).commit_index
    });
    let applied = c.status(3).applied_index;
    let seen = c.node(3).applied_log.len();
    c.crash(3);
    c.node_mut(3).apply_paused = false;
    c.restart(3);
    assert_eq!(
        c.status(3).first_index - 1,
        snap_index,
        "truncated at the snapshot"
    );
    c.wait_applied_everywhere();
    let expected: Vec<u64> = (applied + 1..=c.status(1).commit_index).collect();
    assert_eq!(&c.node(3).applied_log[seen..], expected.as_slice());
    c.assert_same_data(&[1, 2, 3]);
}

#[test]
fn corrupted_snapshot_transfer_is_rejected_then_retried() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    for i in 0..30 {
        c.must_put(&key(i), &value(i));
    }
    c.compact_all();
    c.recover();
    c.corrupt_snapshots();
    c.wait_until(300, "a rejected snapshot", |c| c.snapshots_rejected >= 1);
    c.pass_election_timeouts();
    assert_eq!(c.snapshots_sent, 0);
    assert!(
        c.node(3).get(&key(0)).is_none(),
        "nothing of a corrupted snapshot is applied"
    );
    assert!(
        c.node(3).snap_mgr().list().unwrap().is_empty(),
        "no partial file is published"
    );
    c.recover();
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);
}

#[test]
fn snapshot_messages_dropped_in_flight_are_resent() {
    let mut c = Cluster::new(3);
    c.elect(1);
    c.isolate(3);
    for i in 0..30 {
        c.must_put(&key(i), &value(i));
    }
    c.compact_all();
    c.recover();
    c.ignore(MessageType::MsgSnapshot);
    c.pass_election_timeouts();
    assert!(c.node(3).get(&key(0)).is_none());
    c.recover();
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);
}

#[test]
fn compaction_refuses_to_pass_the_applied_index() {
    let mut c = Cluster::new(3);
    c.elect(1);
    for i in 0..5 {
        c.must_put(&key(i), &value(i));
    }
    let s = c.status(1);
    let err = c.compact(1, s.applied_index + 1).unwrap_err();
    assert!(err.to_string().contains("past the applied index"), "{err}");
    c.compact(1, s.applied_index - 2).unwrap();
    let err = c.compact(1, s.applied_index - 3).unwrap_err();
    assert!(err.to_string().contains("already compacted"), "{err}");
    c.settle();
    assert_eq!(c.status(1).first_index, s.applied_index - 1);
    // Entries after the compact index are still served (and replicate) normally.
    c.must_put(b"z", b"z");
    c.wait_applied_everywhere();
    c.assert_same_data(&[1, 2, 3]);
}
