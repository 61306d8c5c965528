//! Every message the store runtime passes between threads, and the callback that answers a
//! command.
//!
//! Loss semantics are part of each variant's contract: a *droppable* message may be discarded
//! when a mailbox is full or gone (Raft or the sender retries); a *significant* message must be
//! delivered while its receiver exists, and whatever it carries (a callback) is answered if it
//! is not.

use std::fmt;

use proto::metapb::{Region, RegionEpoch};
use proto::pdpb::RegionHeartbeatResponse;
use proto::raft_cmdpb::{RaftCmdRequest, RaftCmdResponse};
use proto::raft_serverpb::RaftMessage;
use raft_core::engine::RegionSnapshot;
use raft_core::ApplyResult;

use crate::apply::ExecResult;
use crate::cmd_resp;
use crate::errors::Error;

/// The answer to a [`RaftCmdRequest`].
#[derive(Debug, Clone)]
pub struct CmdResponse {
    /// The response; `header.error` is set on failure.
    pub response: RaftCmdResponse,
    /// For a `Snap` request: a consistent view of the region's data, taken after the read
    /// index was applied.
    pub snapshot: Option<RegionSnapshot>,
}

impl CmdResponse {
    /// A response carrying only `err`.
    pub fn from_error(err: Error, term: u64) -> CmdResponse {
        CmdResponse {
            response: cmd_resp::err_resp(err, term),
            snapshot: None,
        }
    }

    /// The response's region error, if any.
    pub fn error(&self) -> Option<&proto::errorpb::Error> {
        self.response.header.as_ref().and_then(|h| h.error.as_ref())
    }
}

enum CallbackInner {
    Oneshot(tokio::sync::oneshot::Sender<CmdResponse>),
    Fn(Box<dyn FnOnce(CmdResponse) + Send>),
}

/// How a command is answered: exactly once. Dropping an unanswered callback answers it with a
/// "store is shutting down" error, so no path (a dropped mailbox, a discarded batch, a stopped
/// thread) can leave a caller waiting forever.
pub struct Callback {
    inner: Option<CallbackInner>,
}

impl Callback {
    /// A callback that runs `f` with the response (on whichever store thread answers).
    pub fn new(f: impl FnOnce(CmdResponse) + Send + 'static) -> Callback {
        Callback {
            inner: Some(CallbackInner::Fn(Box::new(f))),
        }
    }

    /// A callback that sends the response on `tx` (for async callers).
    pub fn from_oneshot(tx: tokio::sync::oneshot::Sender<CmdResponse>) -> Callback {
        Callback {
            inner: Some(CallbackInner::Oneshot(tx)),
        }
    }

    /// Answers with `resp`.
    pub fn done(mut self, resp: CmdResponse) {
        match self.inner.take() {
            Some(CallbackInner::Oneshot(tx)) => {
                // The caller may have given up waiting; nothing to do then.
                let _ = tx.send(resp);
            }
            Some(CallbackInner::Fn(f)) => f(resp),
            None => {}
        }
    }

    /// Answers with `err` (the response header carries it).
    pub fn fail(self, err: Error, term: u64) {
        self.done(CmdResponse::from_error(err, term));
    }
}

impl From<tokio::sync::oneshot::Sender<CmdResponse>> for Callback {
    fn from(tx: tokio::sync::oneshot::Sender<CmdResponse>) -> Self {
        Callback::from_oneshot(tx)
    }
}

impl Drop for Callback {
    fn drop(&mut self) {
        if self.inner.is_some() {
            let cb = Callback {
                inner: self.inner.take(),
            };
            cb.fail(Error::Shutdown, 0);
        }
    }
}

impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.inner.is_some() {
            "Callback(pending)"
        } else {
            "Callback(answered)"
        })
    }
}

/// A client command and how to answer it.
#[derive(Debug)]
pub struct RaftCommand {
    /// The command.
    pub request: RaftCmdRequest,
    /// Its answer.
    pub callback: Callback,
}

/// Which periodic duties are due for a peer at this base tick (one message carries all).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerTicks(u8);

impl PeerTicks {
    /// raft-rs's logical clock (every base tick).
    pub const RAFT: PeerTicks = PeerTicks(1);
    /// Consider compacting the raft log (leader).
    pub const RAFT_LOG_GC: PeerTicks = PeerTicks(1 << 1);
    /// Send the region heartbeat to the scheduler (leader).
    pub const PD_HEARTBEAT: PeerTicks = PeerTicks(1 << 2);
    /// Check whether the region should split (leader; used by the split checker).
    pub const SPLIT_CHECK: PeerTicks = PeerTicks(1 << 3);

    /// No duty.
    pub const fn empty() -> PeerTicks {
        PeerTicks(0)
    }

    /// Whether every duty of `other` is in `self`.
    pub const fn contains(self, other: PeerTicks) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds the duties of `other`.
    pub fn insert(&mut self, other: PeerTicks) {
        self.0 |= other.0;
    }

    /// Whether no duty is due.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// Periodic duties of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreTick {
    /// Send the store heartbeat (statistics) to the scheduler.
    PdStoreHeartbeat,
    /// Delete snapshot files nobody needs any more.
    SnapGc,
}

/// What the applier reports to its peer once a task's writes are in the kv engine.
#[derive(Debug)]
pub struct ApplyRes {
    /// The region.
    pub region_id: u64,
    /// The peer the task came from (a re-created peer ignores results meant for its
    /// predecessor).
    pub peer_id: u64,
    /// What is now durable (applied index, truncated state, conf changes, region).
    pub result: ApplyResult,
    /// Bytes of user data written by the applied entries (for statistics).
    pub written_bytes: u64,
    /// User keys written by the applied entries.
    pub written_keys: u64,
    /// Membership changes and splits applied, in log order, for the peer to act on (destroy
    /// itself, create the new regions' peers, tell the scheduler).
    pub exec_results: Vec<ExecResult>,
}

/// What a split check measured (from the split-check worker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitCheckResult {
    /// The epoch of the region the check ran on (a result for an older epoch is ignored).
    pub epoch: RegionEpoch,
    /// Approximate bytes of the region's data (all column families).
    pub approximate_size: u64,
    /// Approximate number of entries of the region's data (all column families).
    pub approximate_keys: u64,
    /// Where to split, in key order (empty: the region is small enough).
    pub split_keys: Vec<Vec<u8>>,
}

/// A request to split a region at given keys (the `SplitRegion` RPC, a scheduler operator).
#[derive(Debug)]
pub struct AskSplit {
    /// The epoch the keys were chosen for.
    pub epoch: RegionEpoch,
    /// Split keys as stored (already encoded for transactional data), sorted and distinct.
    pub split_keys: Vec<Vec<u8>>,
    /// Answered with the `BatchSplit` response (every resulting region) or the error.
    pub callback: Callback,
}

/// A split on this store created the peer's region: an uninitialized peer already created for
/// it by an early raft message becomes the split's initialized peer.
#[derive(Debug, Clone)]
pub struct SplitInit {
    /// The new region, as the split created it.
    pub region: Region,
    /// Whether to campaign at once (the parent's leader is on this store).
    pub campaign: bool,
}

/// Messages for a peer FSM.
#[derive(Debug)]
pub enum PeerMsg {
    /// A raft message from another store. **Droppable**: raft-rs retransmits.
    RaftMessage(Box<RaftMessage>),
    /// A client command. **Significant**: if it cannot be delivered, its callback is answered
    /// (`RegionNotFound`, `ServerIsBusy` or a shutdown error).
    RaftCommand(Box<RaftCommand>),
    /// Periodic duties. **Droppable**: the next base tick comes soon.
    Tick(PeerTicks),
    /// The applier's report. **Significant**: the peer's view of what is applied (and the log
    /// compaction that follows) depends on every one of them, in order.
    ApplyRes(Box<ApplyRes>),
    /// A message to `to_peer_id` was not delivered. **Droppable**.
    Unreachable {
        /// The peer that could not be reached.
        to_peer_id: u64,
    },
    /// How sending a snapshot ended. **Droppable** (raft-rs retries a snapshot that never
    /// reports after its own timeout).
    SnapshotStatus {
        /// The peer the snapshot was for.
        to_peer_id: u64,
        /// Whether it was received in full.
        finished: bool,
    },
    /// An operator from the scheduler's heartbeat response. **Droppable**: the scheduler keeps
    /// sending it until the region shows it done.
    SchedulerOperator(Box<RegionHeartbeatResponse>),
    /// What a split check found. **Droppable**: the next split-check tick checks again.
    SplitCheckResult(Box<SplitCheckResult>),
    /// Split the region at the given keys. **Significant**: the callback is answered.
    AskSplit(Box<AskSplit>),
    /// A split on this store created this (uninitialized) peer's region. **Significant**.
    SplitInit(Box<SplitInit>),
    /// The scheduler's answer to a leaderless peer asking whether it is still a member: the
    /// region as the scheduler knows it (`None`: unknown). **Droppable**: asked again later.
    StaleCheck {
        /// The peer that asked (a re-created peer ignores its predecessor's answer).
        peer_id: u64,
        /// The scheduler's region.
        region: Option<Box<Region>>,
    },
    /// Sent once when the peer is registered, so it runs its first round. **Significant**.
    Start,
    /// Destroy this peer (it was removed from its region). **Significant**.
    Destroy,
    /// The apply FSM `incarnation` stopped after its last queued task (the second step of
    /// `Destroy`). **Significant**.
    ApplyDestroyed {
        /// Which apply FSM (a peer re-initialized by a split has a newer one).
        incarnation: u64,
    },
}

impl PeerMsg {
    /// Whether the message may be discarded when the mailbox is full.
    pub fn is_droppable(&self) -> bool {
        matches!(
            self,
            PeerMsg::RaftMessage(_)
                | PeerMsg::Tick(_)
                | PeerMsg::Unreachable { .. }
                | PeerMsg::SnapshotStatus { .. }
                | PeerMsg::SchedulerOperator(_)
                | PeerMsg::SplitCheckResult(_)
                | PeerMsg::StaleCheck { .. }
        )
    }
}

/// Messages for the store FSM.
#[derive(Debug)]
pub enum StoreMsg {
    /// A raft message for a region this store has no peer of (yet). **Droppable**.
    RaftMessage(Box<RaftMessage>),
    /// Periodic duties. **Droppable**.
    Tick(StoreTick),
    /// The store finished starting. **Significant**.
    Start,
}
