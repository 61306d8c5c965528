//! Fault injection for the in-process network: each [`Filter`] looks at one raft message and
//! decides whether it passes, is lost, is refused as if the link were down, or is late.
//!
//! Filters are installed on a [`super::SimNetwork`] and see every message between stores. When
//! several filters match, the harshest decision wins (disconnect > drop > delay > pass; the
//! longest delay among delays).

use std::collections::HashSet;
use std::time::Duration;

use proto::eraftpb::MessageType;
use proto::raft_serverpb::RaftMessage;
use rand::Rng;

/// What happens to one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Delivered now.
    Pass,
    /// Lost silently, as on a lossy link: Raft's retransmission has to cover it.
    Drop,
    /// Refused as if the destination were unreachable: the message is lost and the sending
    /// store is told (`TransportReport::Unreachable`), as a real connection failure would.
    Disconnect,
    /// Delivered after this long (later messages may overtake it).
    Delay(Duration),
}

impl Decision {
    fn severity(self) -> u8 {
        match self {
            Decision::Pass => 0,
            Decision::Delay(_) => 1,
            Decision::Drop => 2,
            Decision::Disconnect => 3,
        }
    }

    /// The harsher of two decisions (the longer of two delays).
    pub fn combine(self, other: Decision) -> Decision {
        match (self, other) {
            (Decision::Delay(a), Decision::Delay(b)) => Decision::Delay(a.max(b)),
            _ if other.severity() > self.severity() => other,
            _ => self,
        }
    }
}

/// Decides the fate of each message crossing the network.
pub trait Filter: Send + Sync + 'static {
    /// The decision for `msg` (from `msg.from_peer.store_id` to `msg.to_peer.store_id`).
    fn decide(&self, msg: &RaftMessage) -> Decision;
}

impl<F> Filter for F
where
    F: Fn(&RaftMessage) -> Decision + Send + Sync + 'static,
{
    fn decide(&self, msg: &RaftMessage) -> Decision {
        self(msg)
    }
}

/// Source store of a message (0 if the message names none).
pub fn from_store(msg: &RaftMessage) -> u64 {
    msg.from_peer.as_ref().map_or(0, |p| p.store_id)
}

/// Destination store of a message (0 if the message names none).
pub fn to_store(msg: &RaftMessage) -> u64 {
    msg.to_peer.as_ref().map_or(0, |p| p.store_id)
}

/// The raft message type carried (`MsgHup` if the message is empty, which never crosses stores).
pub fn msg_type(msg: &RaftMessage) -> MessageType {
    msg.message
        .as_ref()
        .map_or(MessageType::MsgHup, |m| m.msg_type())
}

/// Splits stores into groups that cannot talk to each other. Stores in no group are unaffected.
#[derive(Debug, Clone)]
pub struct Partition {
    groups: Vec<HashSet<u64>>,
}

impl Partition {
    /// Stores in different `groups` are cut off from each other (both directions).
    pub fn new<G, I>(groups: G) -> Partition
    where
        G: IntoIterator<Item = I>,
        I: IntoIterator<Item = u64>,
    {
        Partition {
            groups: groups
                .into_iter()
                .map(|g| g.into_iter().collect())
                .collect(),
        }
    }

    fn group_of(&self, store: u64) -> Option<usize> {
        self.groups.iter().position(|g| g.contains(&store))
    }
}

impl Filter for Partition {
    fn decide(&self, msg: &RaftMessage) -> Decision {
        match (self.group_of(from_store(msg)), self.group_of(to_store(msg))) {
            (Some(a), Some(b)) if a != b => Decision::Disconnect,
            _ => Decision::Pass,
        }
    }
}

/// Which way an [`Isolate`] filter cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The store receives nothing but can still send.
    Incoming,
    /// The store's messages go nowhere but it still receives.
    Outgoing,
    /// Fully isolated.
    Both,
}

/// Cuts one store off from every other, in one or both directions.
#[derive(Debug, Clone, Copy)]
pub struct Isolate {
    /// The isolated store.
    pub store_id: u64,
    /// Which traffic is cut.
    pub direction: Direction,
}

impl Isolate {
    /// Isolates `store_id` in `direction`.
    pub fn new(store_id: u64, direction: Direction) -> Isolate {
        Isolate {
            store_id,
            direction,
        }
    }
}

impl Filter for Isolate {
    fn decide(&self, msg: &RaftMessage) -> Decision {
        let incoming = to_store(msg) == self.store_id;
        let outgoing = from_store(msg) == self.store_id;
        let cut = match self.direction {
            Direction::Incoming => incoming,
            Direction::Outgoing => outgoing,
            Direction::Both => incoming || outgoing,
        };
        if cut {
            Decision::Disconnect
        } else {
            Decision::Pass
        }
    }
}

/// Loses each message independently with probability `rate`.
#[derive(Debug, Clone, Copy)]
pub struct RandomDrop {
    rate: f64,
}

impl RandomDrop {
    /// Drops `rate` (0.0..=1.0) of all messages.
    pub fn new(rate: f64) -> RandomDrop {
        assert!(
            (0.0..=1.0).contains(&rate),
            "drop rate {rate} is not a probability"
        );
        RandomDrop { rate }
    }
}

impl Filter for RandomDrop {
    fn decide(&self, _msg: &RaftMessage) -> Decision {
        if rand::thread_rng().gen_bool(self.rate) {
            Decision::Drop
        } else {
            Decision::Pass
        }
    }
}

/// Delays each message independently with probability `rate`, by a uniform random time up to
/// `max`; delayed messages are overtaken by later ones, so this also reorders.
#[derive(Debug, Clone, Copy)]
pub struct RandomDelay {
    rate: f64,
    max: Duration,
}

impl RandomDelay {
    /// Delays `rate` (0.0..=1.0) of all messages by up to `max`.
    pub fn new(rate: f64, max: Duration) -> RandomDelay {
        assert!(
            (0.0..=1.0).contains(&rate),
            "delay rate {rate} is not a probability"
        );
        RandomDelay { rate, max }
    }
}

impl Filter for RandomDelay {
    fn decide(&self, _msg: &RaftMessage) -> Decision {
        let mut rng = rand::thread_rng();
        if self.max.is_zero() || !rng.gen_bool(self.rate) {
            return Decision::Pass;
        }
        Decision::Delay(rng.gen_range(Duration::ZERO..=self.max))
    }
}

/// Applies `action` to the messages matching every criterion set (unset criteria match all):
/// region, source store, destination store, message types.
///
/// ```
/// use proto::eraftpb::MessageType;
/// use tests::transport::{Decision, MessageFilter};
/// // Lose every append from store 1 to store 3 in region 1.
/// let f = MessageFilter::new(Decision::Drop)
///     .region(1)
///     .from_store(1)
///     .to_store(3)
///     .msg_type(MessageType::MsgAppend);
/// # let _ = f;
/// ```
#[derive(Debug, Clone)]
pub struct MessageFilter {
    action: Decision,
    region_id: Option<u64>,
    from_store: Option<u64>,
    to_store: Option<u64>,
    msg_types: Vec<MessageType>,
}

impl MessageFilter {
    /// A filter applying `action` to every message (narrow it with the builder methods).
    pub fn new(action: Decision) -> MessageFilter {
        MessageFilter {
            action,
            region_id: None,
            from_store: None,
            to_store: None,
            msg_types: vec![],
        }
    }

    /// Only messages of this region.
    pub fn region(mut self, region_id: u64) -> Self {
        self.region_id = Some(region_id);
        self
    }

    /// Only messages sent by this store.
    pub fn from_store(mut self, store_id: u64) -> Self {
        self.from_store = Some(store_id);
        self
    }

    /// Only messages sent to this store.
    pub fn to_store(mut self, store_id: u64) -> Self {
        self.to_store = Some(store_id);
        self
    }

    /// Only messages of this type (may be called several times: any of them).
    pub fn msg_type(mut self, t: MessageType) -> Self {
        self.msg_types.push(t);
        self
    }

    fn matches(&self, msg: &RaftMessage) -> bool {
        self.region_id.is_none_or(|r| r == msg.region_id)
            && self.from_store.is_none_or(|s| s == from_store(msg))
            && self.to_store.is_none_or(|s| s == to_store(msg))
            && (self.msg_types.is_empty() || self.msg_types.contains(&msg_type(msg)))
    }
}

impl Filter for MessageFilter {
    fn decide(&self, msg: &RaftMessage) -> Decision {
        if self.matches(msg) {
            self.action
        } else {
            Decision::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proto::eraftpb::Message;
    use proto::metapb::Peer;

    fn msg(region: u64, from: u64, to: u64, t: MessageType) -> RaftMessage {
        let peer = |s: u64| Peer {
            id: s,
            store_id: s,
            ..Default::default()
        };
        RaftMessage {
            region_id: region,
            from_peer: Some(peer(from)),
            to_peer: Some(peer(to)),
            message: Some(Message {
                msg_type: t as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn partition_cuts_only_across_groups() {
        let p = Partition::new([vec![1, 2], vec![3, 4, 5]]);
        let t = MessageType::MsgAppend;
        assert_eq!(p.decide(&msg(1, 1, 2, t)), Decision::Pass);
        assert_eq!(p.decide(&msg(1, 1, 3, t)), Decision::Disconnect);
        assert_eq!(p.decide(&msg(1, 5, 2, t)), Decision::Disconnect);
        assert_eq!(p.decide(&msg(1, 6, 2, t)), Decision::Pass, "unlisted store");
    }

    #[test]
    fn isolation_is_directional() {
        let t = MessageType::MsgHeartbeat;
        let inc = Isolate::new(2, Direction::Incoming);
        assert_eq!(inc.decide(&msg(1, 1, 2, t)), Decision::Disconnect);
        assert_eq!(inc.decide(&msg(1, 2, 1, t)), Decision::Pass);
        let out = Isolate::new(2, Direction::Outgoing);
        assert_eq!(out.decide(&msg(1, 1, 2, t)), Decision::Pass);
        assert_eq!(out.decide(&msg(1, 2, 1, t)), Decision::Disconnect);
        let both = Isolate::new(2, Direction::Both);
        assert_eq!(both.decide(&msg(1, 3, 1, t)), Decision::Pass);
        assert_eq!(both.decide(&msg(1, 2, 3, t)), Decision::Disconnect);
    }

    #[test]
    fn message_filter_matches_every_criterion() {
        let f = MessageFilter::new(Decision::Drop)
            .region(7)
            .to_store(3)
            .msg_type(MessageType::MsgAppend)
            .msg_type(MessageType::MsgSnapshot);
        assert_eq!(
            f.decide(&msg(7, 1, 3, MessageType::MsgAppend)),
            Decision::Drop
        );
        assert_eq!(
            f.decide(&msg(7, 2, 3, MessageType::MsgSnapshot)),
            Decision::Drop
        );
        assert_eq!(
            f.decide(&msg(7, 1, 3, MessageType::MsgHeartbeat)),
            Decision::Pass
        );
        assert_eq!(
            f.decide(&msg(8, 1, 3, MessageType::MsgAppend)),
            Decision::Pass
        );
        assert_eq!(
            f.decide(&msg(7, 1, 2, MessageType::MsgAppend)),
            Decision::Pass
        );
    }

    #[test]
    fn random_filters_respect_their_rates() {
        let m = msg(1, 1, 2, MessageType::MsgAppend);
        assert!((0..1000).all(|_| RandomDrop::new(0.0).decide(&m) == Decision::Pass));
        assert!((0..1000).all(|_| RandomDrop::new(1.0).decide(&m) == Decision::Drop));
        let max = Duration::from_millis(30);
        for _ in 0..1000 {
            match RandomDelay::new(1.0, max).decide(&m) {
                Decision::Delay(d) => assert!(d <= max),
                other => panic!("expected a delay, got {other:?}"),
            }
        }
        let dropped = (0..10_000)
            .filter(|_| RandomDrop::new(0.1).decide(&m) == Decision::Drop)
            .count();
        // 10% of 10,000 has a standard deviation of 30: more than 5 of them off means a broken
        // filter, not bad luck.
        assert!(
            (850..=1150).contains(&dropped),
            "dropped {dropped} of 10000 at 10%"
        );
    }

    #[test]
    fn harshest_decision_wins() {
        let ms = Duration::from_millis;
        assert_eq!(Decision::Pass.combine(Decision::Drop), Decision::Drop);
        assert_eq!(
            Decision::Disconnect.combine(Decision::Drop),
            Decision::Disconnect
        );
        assert_eq!(
            Decision::Delay(ms(5)).combine(Decision::Pass),
            Decision::Delay(ms(5))
        );
        assert_eq!(
            Decision::Delay(ms(5)).combine(Decision::Delay(ms(9))),
            Decision::Delay(ms(9))
        );
        assert_eq!(
            Decision::Delay(ms(5)).combine(Decision::Drop),
            Decision::Drop
        );
    }
}
