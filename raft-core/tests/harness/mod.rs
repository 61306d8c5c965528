//! A deterministic in-memory network of Raft groups for the `raft-core` suites.
//!
//! Every node is one peer of region 1 with its own RocksDB engines and snapshot directory in a
//! temporary directory, driven through the real two-phase Ready API (or, per node, the one-call
//! `handle_ready`). Messages go through an in-memory queue and are delivered synchronously until
//! the network is quiet; filters drop, cut, isolate, ignore or corrupt traffic. Time only moves
//! when a test ticks. A crashed node drops every in-memory structure and is rebuilt from its
//! engines on restart. A `MsgSnapshot` is delivered by streaming the leader's snapshot file in
//! chunks into the follower's snapshot directory first, as a store transport would.

#![allow(dead_code)]

mod node;

use std::collections::{BTreeMap, VecDeque};
use std::sync::mpsc::{channel, Receiver};

pub use raft::eraftpb::{ConfChangeV2, Message, MessageType};
use raft::{SnapshotStatus, StateRole};
use raft_core::config::RaftConfig;
use raft_core::snap::{decode_descriptor, SnapKey, SnapKind};
use raft_core::GroupStatus;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use node::{Node, TestCb};

/// The region every test group replicates.
pub const REGION_ID: u64 = 1;

/// How a filter treats a message.
#[derive(Debug, Clone)]
enum Filter {
    /// Drops messages matching `from`/`to` (any when `None`) with probability `perc`.
    Drop {
        from: Option<u64>,
        to: Option<u64>,
        perc: f64,
    },
    /// Drops every message of this type.
    Ignore(MessageType),
    /// Flips a byte of every snapshot file streamed.
    CorruptSnapshots,
}

/// The answer channel of one proposal.
pub struct ProposalHandle {
    /// Index the proposal was appended at, if raft-rs accepted it.
    pub index: Option<u64>,
    rx: Receiver<Result<u64, String>>,
    seen: Vec<Result<u64, String>>,
}

impl ProposalHandle {
    /// Every answer received so far (a correct group gives at most one).
    pub fn answers(&mut self) -> &[Result<u64, String>] {
        self.seen.extend(self.rx.try_iter());
        &self.seen
    }

    /// The single answer, if any; panics on a second one.
    pub fn answer(&mut self) -> Option<Result<u64, String>> {
        let answers = self.answers();
        assert!(
            answers.len() <= 1,
            "proposal answered more than once: {answers:?}"
        );
        answers.first().cloned()
    }
}

/// The network.
pub struct Cluster {
    pub cfg: RaftConfig,
    pub nodes: BTreeMap<u64, Node>,
    filters: Vec<Filter>,
    queue: VecDeque<Message>,
    rng: StdRng,
    /// Snapshots streamed successfully / refused by the receiver.
    pub snapshots_sent: usize,
    pub snapshots_rejected: usize,
}

impl Cluster {
    /// `n` voters 1..=n, bootstrapped at index 5 / term 5.
    pub fn new(n: u64) -> Cluster {
        Cluster::with_config(n, RaftConfig::new_test_config())
    }

    pub fn with_config(n: u64, cfg: RaftConfig) -> Cluster {
        let voters: Vec<u64> = (1..=n).collect();
        let mut c = Cluster {
            cfg,
            nodes: BTreeMap::new(),
            filters: vec![],
            queue: VecDeque::new(),
            rng: StdRng::seed_from_u64(0x7165_6b76),
            snapshots_sent: 0,
            snapshots_rejected: 0,
        };
        for id in &voters {
            c.nodes.insert(*id, Node::bootstrap(*id, &voters, &c.cfg));
        }
        c
    }

    /// Creates an empty, uninitialized node `id` (to be added by a conf change).
    pub fn add_empty_node(&mut self, id: u64) {
        assert!(!self.nodes.contains_key(&id), "node {id} exists");
        self.nodes.insert(id, Node::empty(id, &self.cfg));
    }

    pub fn node(&self, id: u64) -> &Node {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.get_mut(&id).expect("no such node")
    }

    pub fn status(&self, id: u64) -> GroupStatus {
        self.node(id).status()
    }

    /// Ids of nodes that are running.
    pub fn live(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.is_up())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The live leader with the highest term (a deposed leader in a minority may linger).
    pub fn leader(&self) -> Option<u64> {
        self.live()
            .into_iter()
            .map(|id| self.status(id))
            .filter(|s| s.role == StateRole::Leader)
            .max_by_key(|s| s.term)
            .map(|s| s.peer_id)
    }

    /// Leaders among `ids`.
    pub fn leaders_among(&self, ids: &[u64]) -> Vec<u64> {
        ids.iter()
            .copied()
            .filter(|id| self.node(*id).is_up() && self.status(*id).role == StateRole::Leader)
            .collect()
    }

    // ---- time and delivery ----

    pub fn tick(&mut self, id: u64) {
        if self.node(id).is_up() {
            self.node_mut(id).group_mut().tick();
        }
    }

    pub fn tick_all(&mut self) {
        for id in self.live() {
            self.tick(id);
        }
    }

    /// Processes readies, applies, snapshot generations and messages until nothing moves.
    pub fn settle(&mut self) {
        for round in 0.. {
            assert!(round < 100_000, "network does not settle");
            let mut progressed = false;
            for id in self.live() {
                let out = self.node_mut(id).process();
                progressed |= out.progressed;
                self.queue.extend(out.messages);
            }
            while let Some(msg) = self.queue.pop_front() {
                progressed = true;
                self.deliver(msg);
            }
            if !progressed {
                break;
            }
        }
    }

    /// Ticks every node and settles until `cond` holds, at most `max_ticks` ticks.
    pub fn wait_until<F: FnMut(&Cluster) -> bool>(
        &mut self,
        max_ticks: usize,
        what: &str,
        mut cond: F,
    ) {
        self.settle();
        for _ in 0..max_ticks {
            if cond(self) {
                return;
            }
            self.tick_all();
            self.settle();
        }
        if cond(self) {
            return;
        }
        let statuses: Vec<_> = self.live().into_iter().map(|id| self.status(id)).collect();
        panic!("timed out waiting for {what}; statuses: {statuses:#?}");
    }

    /// Ticks long enough for any election or transfer to time out (three election timeouts).
    pub fn pass_election_timeouts(&mut self) {
        for _ in 0..self.cfg.election_tick * 3 {
            self.tick_all();
            self.settle();
        }
    }

    fn dropped(&mut self, msg: &Message) -> bool {
        for f in &self.filters {
            match f {
                Filter::Drop { from, to, perc } => {
                    let hit = from.is_none_or(|f| f == msg.from) && to.is_none_or(|t| t == msg.to);
                    if hit && (*perc >= 1.0 || self.rng.gen::<f64>() < *perc) {
                        return true;
                    }
                }
                Filter::Ignore(t) if *t == msg.get_msg_type() => return true,
                _ => {}
            }
        }
        false
    }

    fn deliver(&mut self, msg: Message) {
        let (from, to) = (msg.from, msg.to);
        if self.dropped(&msg) || !self.nodes.get(&to).is_some_and(|n| n.is_up()) {
            // A snapshot goes over its own stream, whose failure the sender sees and reports;
            // without that report raft-rs would wait for the lost snapshot forever.
            if msg.get_msg_type() == MessageType::MsgSnapshot && self.node(from).is_up() {
                self.node_mut(from)
                    .group_mut()
                    .report_snapshot(to, SnapshotStatus::Failure);
            }
            return;
        }
        if msg.get_msg_type() == MessageType::MsgSnapshot {
            let ok = self.stream_snapshot(&msg);
            if self.node(from).is_up() {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.node_mut(from).group_mut().report_snapshot(to, status);
            }
            if !ok {
                self.snapshots_rejected += 1;
                return;
            }
            self.snapshots_sent += 1;
        }
        // Errors here are what a real transport would log and drop (stale peers, ...).
        let _ = self.node_mut(to).group_mut().step(msg);
    }

    /// Streams the snapshot file of `msg` from the sender's directory into the receiver's, in
    /// chunks. Returns whether the receiver accepted it.
    fn stream_snapshot(&mut self, msg: &Message) -> bool {
        let (from, to) = (msg.from, msg.to);
        if !self.node(from).is_up() {
            return false;
        }
        let key = SnapKey::from_snapshot(REGION_ID, msg.get_snapshot());
        let Ok(desc) = decode_descriptor(msg.get_snapshot().get_data()) else {
            return false;
        };
        let corrupt = self
            .filters
            .iter()
            .any(|f| matches!(f, Filter::CorruptSnapshots));
        let src = self.node(from).snap_mgr().clone();
        let dst = self.node(to).snap_mgr().clone();
        let result = (|| -> raft_core::Result<()> {
            let mut writer = dst.chunk_writer(&key, &desc)?;
            let mut first = true;
            for chunk in src.chunk_reader(&key, self.cfg.snap_chunk_size)? {
                let mut chunk = chunk?;
                if corrupt && first && !chunk.is_empty() {
                    let mid = chunk.len() / 2;
                    chunk[mid] ^= 0x5a;
                }
                first = false;
                writer.write_chunk(&chunk)?;
            }
            writer.finish()
        })();
        if result.is_ok() {
            // Sent: the leader does not need its copy any more.
            let _ = src.delete(&key, SnapKind::Generated);
        }
        result.is_ok()
    }

    // ---- filters ----

    /// Drops `perc` of the messages from `from` to `to`.
    pub fn drop_msgs(&mut self, from: u64, to: u64, perc: f64) {
        self.filters.push(Filter::Drop {
            from: Some(from),
            to: Some(to),
            perc,
        });
    }

    /// Drops `perc` of all messages.
    pub fn drop_all(&mut self, perc: f64) {
        self.filters.push(Filter::Drop {
            from: None,
            to: None,
            perc,
        });
    }

    /// Cuts the link between `a` and `b` both ways.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.drop_msgs(a, b, 1.0);
        self.drop_msgs(b, a, 1.0);
    }

    /// Cuts `id` off from everyone.
    pub fn isolate(&mut self, id: u64) {
        self.filters.push(Filter::Drop {
            from: Some(id),
            to: None,
            perc: 1.0,
        });
        self.filters.push(Filter::Drop {
            from: None,
            to: Some(id),
            perc: 1.0,
        });
    }

    /// Splits the live nodes into `side` and the rest.
    pub fn partition(&mut self, side: &[u64]) {
        let others: Vec<u64> = self
            .nodes
            .keys()
            .copied()
            .filter(|id| !side.contains(id))
            .collect();
        for a in side {
            for b in &others {
                self.cut(*a, *b);
            }
        }
    }

    pub fn ignore(&mut self, t: MessageType) {
        self.filters.push(Filter::Ignore(t));
    }

    pub fn corrupt_snapshots(&mut self) {
        self.filters.push(Filter::CorruptSnapshots);
    }

    /// Removes every filter.
    pub fn recover(&mut self) {
        self.filters.clear();
    }

    // ---- operations ----

    /// Campaigns on `id` and settles.
    pub fn campaign(&mut self, id: u64) {
        self.node_mut(id).group_mut().campaign().unwrap();
        self.settle();
    }

    /// Makes `id` the leader (campaigning, then waiting), panicking if it cannot win.
    pub fn elect(&mut self, id: u64) {
        self.campaign(id);
        self.wait_until(self.cfg.election_tick * 10, "the elected leader", |c| {
            c.status(id).role == StateRole::Leader
        });
    }

    /// Proposes `key = value` on `id`, without settling.
    pub fn propose(&mut self, id: u64, key: &[u8], value: &[u8]) -> ProposalHandle {
        let (tx, rx) = channel();
        let data = node::encode_put(key, value);
        let index = match self
            .node_mut(id)
            .group_mut()
            .propose(vec![], data, TestCb(tx))
        {
            Ok(index) => Some(index),
            Err(rejected) => {
                rejected.fail();
                None
            }
        };
        ProposalHandle {
            index,
            rx,
            seen: vec![],
        }
    }

    /// Proposes a conf change on `id`, without settling. New peers' store ids equal their ids.
    pub fn propose_conf_change(&mut self, id: u64, cc: ConfChangeV2) -> ProposalHandle {
        let (tx, rx) = channel();
        let index = match self
            .node_mut(id)
            .group_mut()
            .propose_conf_change(vec![], cc, TestCb(tx))
        {
            Ok(index) => Some(index),
            Err(rejected) => {
                rejected.fail();
                None
            }
        };
        ProposalHandle {
            index,
            rx,
            seen: vec![],
        }
    }

    /// Waits (ticking) for the answer of `h`.
    pub fn wait_answer(&mut self, h: &mut ProposalHandle) -> Result<u64, String> {
        let mut answer = None;
        self.wait_until(self.cfg.election_tick * 30, "a proposal's answer", |_| {
            answer = h.answer();
            answer.is_some()
        });
        answer.expect("answered")
    }

    /// Writes `key = value` through whichever node leads, retrying across leader changes, and
    /// returns the index it was applied at.
    pub fn must_put(&mut self, key: &[u8], value: &[u8]) -> u64 {
        let max = self.cfg.election_tick * 30;
        for _ in 0..10 {
            self.wait_until(max, "a leader", |c| c.leader().is_some());
            let leader = self.leader().expect("leader");
            let mut h = self.propose(leader, key, value);
            if let Ok(index) = self.wait_answer(&mut h) {
                return index;
            }
        }
        panic!("cannot write {key:?}");
    }

    /// Waits until every live node has applied everything the leader committed.
    pub fn wait_applied_everywhere(&mut self) {
        self.wait_until(self.cfg.election_tick * 30, "every node to catch up", |c| {
            let Some(l) = c.leader() else { return false };
            let commit = c.status(l).commit_index;
            c.live()
                .iter()
                .all(|id| c.status(*id).applied_index >= commit)
        });
    }

    /// Crashes `id`: every in-memory structure goes, the engines and snapshot files stay.
    pub fn crash(&mut self, id: u64) {
        self.node_mut(id).crash();
        self.queue.retain(|m| m.to != id && m.from != id);
    }

    /// Restarts a crashed node from its engines.
    pub fn restart(&mut self, id: u64) {
        let cfg = self.cfg.clone();
        self.node_mut(id).restart(&cfg);
    }

    /// Compacts `id`'s log up to `index` (as the applier would on a CompactLog command).
    pub fn compact(&mut self, id: u64, index: u64) -> raft_core::Result<()> {
        self.node_mut(id).compact(index)
    }

    /// Compacts every live node's log up to its applied index.
    pub fn compact_all(&mut self) {
        for id in self.live() {
            let applied = self.status(id).applied_index;
            if applied > self.status(id).first_index {
                self.compact(id, applied).unwrap();
            }
        }
        self.settle();
    }

    /// Asserts that the data of every node in `ids` is identical.
    pub fn assert_same_data(&self, ids: &[u64]) {
        let first = self.node(ids[0]).all_data();
        for id in &ids[1..] {
            assert_eq!(
                self.node(*id).all_data(),
                first,
                "data of node {id} differs from node {}",
                ids[0]
            );
        }
    }
}
