//! The leader lease: reads served from the leader's own state, without a heartbeat round.
//!
//! A read index costs a heartbeat round to a quorum — through the followers' pollers, which may
//! be busy with a round and its fsync — before the read can be served. A leader that knows no
//! other leader can exist yet answers at once instead, from a fresh snapshot of its kv engine.
//!
//! # Why no other leader can exist (the clock assumption)
//!
//! raft-rs with `check_quorum` makes a voter ignore vote and pre-vote requests for
//! `election-tick` ticks after it last heard from its leader (the "in lease" rule). Whenever a
//! quorum acknowledges something this leader sent at time `t` — the heartbeat round of a read
//! index, or the append of a proposal that then committed — every member of that quorum heard
//! from the leader after `t`, so no candidate can collect a quorum of votes before
//! `t + (election-tick - 1) × base-tick` (the first tick after a reset may come at once). The
//! lease runs until `t + max-leader-lease`, which [`RaftstoreConfig::validate`] keeps below that
//! bound. This assumes the stores' clocks run at about the same rate (the margin absorbs the
//! drift) and that ticks are never faster than configured (the tick thread skips ticks it is
//! late for, which only delays elections).
//!
//! The rule has exceptions that let a candidate win sooner; each one keeps the lease unused:
//! - a leader transfer: the transferee campaigns with a context that bypasses the rule, so once
//!   `MsgTimeoutNow` is sent the lease is suspended for the rest of the term (and not used
//!   while a transfer is pending);
//! - a restarted voter has heard from no leader and would vote at once: peers loaded at store
//!   start drop vote requests for their first `election-tick` ticks
//!   ([`Peer::should_drop_vote`]), which outlasts any lease granted before the restart;
//! - membership changes and splits change who may vote or which region owns the keys: no lease
//!   reads while one is proposed and not yet applied here;
//! - a new leader has not applied what earlier leaders committed: no lease reads until it
//!   applied an entry of its own term (then everything before it is applied too).
//!
//! Reads that cannot use the lease take the read-index path, whose confirmations renew it.
//!
//! [`RaftstoreConfig::validate`]: crate::config::RaftstoreConfig::validate

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use raft::eraftpb::MessageType;

use crate::peer::Peer;

/// When this leadership may serve reads locally.
#[derive(Debug)]
pub(crate) struct Lease {
    max: Duration,
    /// Term of the leadership the bound belongs to.
    term: u64,
    /// Reads may be served locally before this instant.
    bound: Option<Instant>,
    /// A term in which the lease must not be used any more (a transfer handed it away).
    suspended_term: u64,
    /// Proposals of `term` not yet known committed: (index, when proposed).
    proposals: VecDeque<(u64, Instant)>,
    /// Term of which this peer has applied an entry (lazily checked).
    applied_term: u64,
}

impl Lease {
    /// A lease of at most `max` per confirmation; `Duration::ZERO` disables it.
    pub(crate) fn new(max: Duration) -> Lease {
        Lease {
            max,
            term: 0,
            bound: None,
            suspended_term: 0,
            proposals: VecDeque::new(),
            applied_term: 0,
        }
    }

    fn enabled(&self) -> bool {
        !self.max.is_zero()
    }

    /// Starts over for `term` (a new leadership): nothing confirmed yet.
    fn reset_to(&mut self, term: u64) {
        if self.term != term {
            self.term = term;
            self.bound = None;
            self.proposals.clear();
        }
    }

    /// A quorum acknowledged something sent at `sent` in `term`.
    pub(crate) fn renew(&mut self, term: u64, sent: Instant) {
        if !self.enabled() || term == self.suspended_term {
            return;
        }
        self.reset_to(term);
        let bound = sent + self.max;
        if self.bound.is_none_or(|b| b < bound) {
            self.bound = Some(bound);
        }
    }

    /// The lease must not be used again in `term`.
    pub(crate) fn suspend(&mut self, term: u64) {
        self.suspended_term = term;
        self.bound = None;
        self.proposals.clear();
    }

    /// Whether the lease of `term` is valid at `now`.
    pub(crate) fn is_valid(&self, term: u64, now: Instant) -> bool {
        self.term == term && term != self.suspended_term && self.bound.is_some_and(|b| now < b)
    }

    /// Remembers a proposal appended at `index` in `term` at `now`.
    pub(crate) fn on_proposed(&mut self, term: u64, index: u64, now: Instant) {
        if !self.enabled() || term == self.suspended_term {
            return;
        }
        self.reset_to(term);
        self.proposals.push_back((index, now));
    }

    /// Renews from the proposals of `term` that are now committed.
    pub(crate) fn on_committed(&mut self, term: u64, committed: u64) {
        if self.term != term {
            return;
        }
        let mut latest = None;
        while let Some(&(index, at)) = self.proposals.front() {
            if index > committed {
                break;
            }
            latest = Some(at);
            self.proposals.pop_front();
        }
        if let Some(at) = latest {
            self.renew(term, at);
        }
    }
}

impl Peer {
    /// Whether a read arriving now may be served from this leader's state (see the module docs
    /// for each condition).
    pub(crate) fn can_read_locally(&mut self, now: Instant) -> bool {
        let term = self.term();
        if !self.is_leader() || !self.lease.is_valid(term, now) {
            return false;
        }
        let raft = &self.group().raw_node().raft;
        if raft.lead_transferee.is_some() || raft.has_pending_conf() {
            return false;
        }
        let applied = self.group().storage().applied_index();
        if self.split_proposed > applied {
            return false;
        }
        if self.lease.applied_term != term {
            match raft.raft_log.term(applied) {
                Ok(t) if t == term => self.lease.applied_term = term,
                _ => return false,
            }
        }
        true
    }

    /// Called for every message sent: a `MsgTimeoutNow` hands leadership away.
    pub(crate) fn on_message_sent(&mut self, msg_type: MessageType) {
        if msg_type == MessageType::MsgTimeoutNow {
            let term = self.term();
            self.lease.suspend(term);
        }
    }

    /// End of a round: proposals that committed renew the lease.
    pub(crate) fn renew_lease_from_commits(&mut self) {
        if !self.is_leader() {
            return;
        }
        let raft = &self.group().raw_node().raft;
        let (term, committed) = (raft.term, raft.raft_log.committed);
        self.lease.on_committed(term, committed);
    }

    /// Whether an incoming vote request must be dropped: a peer loaded at store start does not
    /// vote during its first election timeout unless it heard from a leader since, because a
    /// leader may still hold a lease that this peer's acknowledgement (before the restart)
    /// helped grant. A leader transfer's campaign is exempt (that leader gave its lease up).
    pub(crate) fn should_drop_vote(&self, msg: &raft::eraftpb::Message) -> bool {
        if self.vote_guard_ticks == 0 || self.group().leader_id().is_some() {
            return false;
        }
        let is_vote = matches!(
            msg.get_msg_type(),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        );
        is_vote && msg.get_context() != raft::CAMPAIGN_TRANSFER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_millis(400);

    #[test]
    fn renewal_extends_from_the_send_time_within_one_term() {
        let mut l = Lease::new(MAX);
        let t0 = Instant::now();
        assert!(!l.is_valid(5, t0));
        l.renew(5, t0);
        assert!(l.is_valid(5, t0 + MAX / 2));
        assert!(!l.is_valid(5, t0 + MAX));
        assert!(!l.is_valid(6, t0), "another term has no lease");
        // An older confirmation never shortens the lease.
        l.renew(5, t0 + MAX / 2);
        l.renew(5, t0);
        assert!(l.is_valid(5, t0 + MAX));
        // A new term starts from nothing.
        l.renew(6, t0 + MAX);
        assert!(!l.is_valid(5, t0 + MAX));
        assert!(l.is_valid(6, t0 + MAX + MAX / 2));
    }

    #[test]
    fn suspension_lasts_for_the_term() {
        let mut l = Lease::new(MAX);
        let t0 = Instant::now();
        l.renew(3, t0);
        l.suspend(3);
        assert!(!l.is_valid(3, t0));
        l.renew(3, t0 + MAX);
        l.on_proposed(3, 10, t0 + MAX);
        l.on_committed(3, 10);
        assert!(!l.is_valid(3, t0 + MAX), "no renewal in a suspended term");
        l.renew(4, t0 + MAX);
        assert!(l.is_valid(4, t0 + MAX));
    }

    #[test]
    fn committed_proposals_renew_from_when_they_were_proposed() {
        let mut l = Lease::new(MAX);
        let t0 = Instant::now();
        l.on_proposed(2, 10, t0);
        l.on_proposed(2, 11, t0 + MAX / 4);
        l.on_committed(2, 9);
        assert!(!l.is_valid(2, t0));
        l.on_committed(2, 10);
        assert!(l.is_valid(2, t0 + MAX / 2));
        assert!(!l.is_valid(2, t0 + MAX));
        l.on_committed(2, 11);
        assert!(l.is_valid(2, t0 + MAX));
        // Commits seen in another term renew nothing.
        l.on_proposed(2, 12, t0 + MAX);
        l.on_committed(3, 12);
        assert!(!l.is_valid(2, t0 + MAX + MAX / 2));
    }

    #[test]
    fn a_zero_lease_is_never_valid() {
        let mut l = Lease::new(Duration::ZERO);
        let t0 = Instant::now();
        l.renew(1, t0);
        l.on_proposed(1, 1, t0);
        l.on_committed(1, 1);
        assert!(!l.is_valid(1, t0));
    }
}
