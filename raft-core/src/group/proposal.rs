//! Proposal tracking: every proposal gets exactly one answer.
//!
//! A proposal accepted by raft-rs is remembered as (index, term, callback). When the entry at
//! that index commits, the proposal either goes to the applier with its entry (same term: it is
//! this proposal) or is answered `StaleCommand` (another term: a later leader overwrote it).
//! A snapshot over its index, a newer proposal at or below its index, destroying the peer or
//! dropping the group answer it with an error. Ownership makes "exactly once" structural: the
//! callback moves out of the queue to be answered.

use std::collections::VecDeque;

use raft::eraftpb::Entry;

use crate::errors::Error;

/// The error side of a proposal's callback. The success side is the owner's business: matched
/// proposals reach the applier inside an [`ApplyTask`](super::ApplyTask), which answers them
/// with whatever response type the owner uses.
pub trait ProposalCallback {
    /// Answers the proposal with an error; it will never be applied.
    fn fail(self, err: Error);
}

/// A proposal accepted by raft-rs and waiting for its entry to commit.
#[derive(Debug)]
pub struct Proposal<C> {
    /// Log index of its entry.
    pub index: u64,
    /// Term its entry was appended in.
    pub term: u64,
    /// Whether its entry is a conf change.
    pub is_conf_change: bool,
    /// How to answer it.
    pub callback: C,
}

/// A proposal raft-rs did not accept; the callback comes back unanswered with the reason.
pub struct Rejected<C> {
    /// Why it was refused.
    pub error: Error,
    /// The untouched callback.
    pub callback: C,
}

impl<C> std::fmt::Debug for Rejected<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rejected")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<C: ProposalCallback> Rejected<C> {
    /// Answers the callback with the rejection and returns nothing.
    pub fn fail(self) {
        self.callback.fail(self.error);
    }
}

/// Pending proposals in index order. Dropping the queue answers what is left with `Shutdown`.
pub(crate) struct ProposalQueue<C: ProposalCallback> {
    region_id: u64,
    peer_id: u64,
    queue: VecDeque<Proposal<C>>,
}

impl<C: ProposalCallback> ProposalQueue<C> {
    pub(crate) fn new(region_id: u64, peer_id: u64) -> Self {
        ProposalQueue {
            region_id,
            peer_id,
            queue: VecDeque::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    fn stale(&self, p: Proposal<C>) {
        tracing::debug!(
            region_id = self.region_id,
            peer_id = self.peer_id,
            index = p.index,
            term = p.term,
            "proposal is stale"
        );
        p.callback.fail(Error::StaleCommand {
            region_id: self.region_id,
            index: p.index,
            term: p.term,
        });
    }

    /// Adds a proposal just appended at `p.index`. Older proposals at or after that index were
    /// appended by an earlier leadership of this peer and have been overwritten.
    pub(crate) fn push(&mut self, p: Proposal<C>) {
        while self.queue.back().is_some_and(|last| last.index >= p.index) {
            let old = self.queue.pop_back().expect("non-empty");
            self.stale(old);
        }
        self.queue.push_back(p);
    }

    /// Takes the proposals of the committed `entries` (in order): those whose term matches
    /// their entry are returned for the applier; those overwritten are answered stale.
    ///
    /// A proposal beyond the last committed entry is stale too if its term is older than that
    /// entry's: every entry after it in the log has at least its term, so nothing from the
    /// proposal's term can ever commit there. (Queued proposals are ordered by index and term.)
    pub(crate) fn take_committed(&mut self, entries: &[Entry]) -> Vec<Proposal<C>> {
        let mut matched = vec![];
        let Some(last) = entries.last() else {
            return matched;
        };
        let first_index = entries[0].index;
        while self
            .queue
            .front()
            .is_some_and(|p| p.index <= last.index || p.term < last.term)
        {
            let p = self.queue.pop_front().expect("non-empty");
            let entry = p
                .index
                .checked_sub(first_index)
                .and_then(|i| entries.get(i as usize));
            match entry {
                Some(e) if e.term == p.term => matched.push(p),
                _ => self.stale(p),
            }
        }
        matched
    }

    /// Answers every proposal at or below `index` stale (a snapshot replaced that log).
    pub(crate) fn fail_up_to(&mut self, index: u64) {
        while self.queue.front().is_some_and(|p| p.index <= index) {
            let p = self.queue.pop_front().expect("non-empty");
            self.stale(p);
        }
    }

    /// Answers every pending proposal with the error `make` builds.
    pub(crate) fn fail_all(&mut self, make: impl Fn() -> Error) {
        for p in self.queue.drain(..) {
            p.callback.fail(make());
        }
    }
}

impl<C: ProposalCallback> Drop for ProposalQueue<C> {
    fn drop(&mut self) {
        let (region_id, peer_id) = (self.region_id, self.peer_id);
        self.fail_all(|| Error::Shutdown { region_id, peer_id });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, Sender};

    use super::*;

    struct Cb(u64, Sender<(u64, String)>);

    impl ProposalCallback for Cb {
        fn fail(self, err: Error) {
            self.1.send((self.0, err.to_string())).unwrap();
        }
    }

    fn prop(index: u64, term: u64, tx: &Sender<(u64, String)>) -> Proposal<Cb> {
        Proposal {
            index,
            term,
            is_conf_change: false,
            callback: Cb(index * 100 + term, tx.clone()),
        }
    }

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn every_proposal_is_answered_once() {
        let (tx, rx) = channel();
        let mut q = ProposalQueue::new(1, 1);
        q.push(prop(6, 2, &tx));
        q.push(prop(7, 2, &tx));
        q.push(prop(8, 2, &tx));
        // Entry 6 committed as proposed; entry 7 was overwritten in term 3, and so the term-2
        // proposal at 8 can never commit either.
        let matched = q.take_committed(&[entry(6, 2), entry(7, 3)]);
        assert_eq!(matched.iter().map(|p| p.index).collect::<Vec<_>>(), vec![6]);
        let stale: Vec<_> = rx.try_iter().collect();
        assert_eq!(
            stale.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![702, 802]
        );
        assert!(stale[0].1.contains("stale command"), "{stale:?}");
        assert_eq!(q.len(), 0);
        // Proposals of a later term wait for their own entries.
        q.push(prop(8, 4, &tx));
        q.push(prop(9, 4, &tx));
        q.push(prop(10, 4, &tx));
        assert!(q.take_committed(&[entry(7, 3)]).is_empty());
        assert_eq!(q.len(), 3);
        q.fail_up_to(9);
        assert_eq!(
            rx.try_iter().map(|(id, _)| id).collect::<Vec<_>>(),
            vec![804, 904]
        );
        // Re-elected in term 5, this peer appends at 10 again: its term-4 proposal there is gone.
        q.push(prop(10, 5, &tx));
        assert_eq!(rx.try_recv().unwrap().0, 1004);
        drop(q);
        let (id, msg) = rx.try_recv().unwrap();
        assert_eq!(id, 1005);
        assert!(msg.contains("shutting down"), "{msg}");
        assert!(rx.try_recv().is_err());
    }
}
