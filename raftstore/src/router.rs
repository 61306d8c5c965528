//! The public face of a store's runtime: [`Router`] delivers commands, raft messages and
//! transport reports to peer FSMs (or to the store FSM for regions without a peer here).
//!
//! It exists before the node starts (the transport needs it to deliver incoming messages);
//! until then, commands fail with `RegionNotFound` and raft messages wait in the store FSM's
//! mailbox.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proto::metapb::RegionEpoch;
use proto::raft_cmdpb::RaftCmdRequest;
use proto::raft_serverpb::RaftMessage;

use crate::batch::{BatchRouter, SendError};
use crate::errors::{Error, Result};
use crate::fsm::peer::PeerFsm;
use crate::fsm::store::StoreFsm;
use crate::msg::{AskSplit, Callback, CmdResponse, PeerMsg, RaftCommand, StoreMsg};
use crate::status::StatusRegistry;
use crate::transport::{RaftMessageSink, ReportSink, TransportReport};

/// Routes to this store's peers. Cheap to clone; every clone reaches the same store.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: BatchRouter<PeerFsm, StoreFsm>,
    capacity: usize,
    store_id: Arc<AtomicU64>,
    pub(crate) registry: StatusRegistry,
}

impl Router {
    pub(crate) fn new(inner: BatchRouter<PeerFsm, StoreFsm>, capacity: usize) -> Router {
        Router {
            inner,
            capacity,
            store_id: Arc::new(AtomicU64::new(0)),
            registry: StatusRegistry::default(),
        }
    }

    /// The store this router belongs to (0 until the node started).
    pub fn store_id(&self) -> u64 {
        self.store_id.load(Ordering::Acquire)
    }

    pub(crate) fn set_store_id(&self, id: u64) {
        self.store_id.store(id, Ordering::Release);
    }

    /// Number of regions with a peer on this store.
    pub fn region_count(&self) -> usize {
        self.inner.len()
    }

    /// Sends `req` to the peer of `req.header.region_id`; `cb` is answered exactly once. If it
    /// cannot be delivered, `cb` is answered with the same error that is returned:
    /// `RegionNotFound` (no peer here), `ServerIsBusy` (mailbox full) or `Shutdown`.
    pub fn send_command(&self, req: RaftCmdRequest, cb: Callback) -> Result<()> {
        let region_id = req.header.as_ref().map_or(0, |h| h.region_id);
        let msg = PeerMsg::RaftCommand(Box::new(RaftCommand {
            request: req,
            callback: cb,
        }));
        let (full, undelivered) = match self.inner.try_send(region_id, msg, self.capacity) {
            Ok(()) => return Ok(()),
            Err(SendError::Full(m)) => (true, m),
            Err(SendError::Closed(m)) => (false, m),
        };
        let error = || {
            if full {
                Error::ServerIsBusy("peer mailbox is full".into())
            } else if self.inner.is_closed() {
                Error::Shutdown
            } else {
                Error::RegionNotFound(region_id)
            }
        };
        if let PeerMsg::RaftCommand(c) = undelivered {
            c.callback.fail(error(), 0);
        }
        Err(error())
    }

    /// Sends `req` and waits for the answer. Region errors come back inside the response's
    /// header, like every other failure to execute the command; `Err` means the store is
    /// shutting down.
    pub async fn execute(&self, req: RaftCmdRequest) -> Result<CmdResponse> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.send_command(req, Callback::from_oneshot(tx));
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Like [`Router::execute`], blocking the calling thread for at most `timeout`
    /// (`Err(Timeout)` then; the command may still be applied later).
    pub fn execute_blocking(&self, req: RaftCmdRequest, timeout: Duration) -> Result<CmdResponse> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = self.send_command(
            req,
            Callback::new(move |resp| {
                let _ = tx.send(resp);
            }),
        );
        rx.recv_timeout(timeout).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Timeout => {
                Error::Timeout(format!("no answer within {timeout:?}"))
            }
            crossbeam_channel::RecvTimeoutError::Disconnected => Error::Shutdown,
        })
    }

    /// Splits region `region_id` at `split_keys` (keys as stored: transactional keys already
    /// encoded; sorted, distinct, inside the region), as seen at `epoch`. The leader asks the
    /// scheduler for the new regions' ids and proposes the split; `cb` is answered exactly once
    /// with the `BatchSplit` response (`admin_response.splits.regions`: every resulting region
    /// in key order) or a region error (`NotLeader`, `EpochNotMatch`, `KeyNotInRegion`, ...).
    pub fn split_region(
        &self,
        region_id: u64,
        epoch: RegionEpoch,
        split_keys: Vec<Vec<u8>>,
        cb: Callback,
    ) -> Result<()> {
        let msg = PeerMsg::AskSplit(Box::new(AskSplit {
            epoch,
            split_keys,
            callback: cb,
        }));
        let undelivered = match self.inner.force_send(region_id, msg) {
            Ok(()) => return Ok(()),
            Err(e) => e.into_inner(),
        };
        let error = || {
            if self.inner.is_closed() {
                Error::Shutdown
            } else {
                Error::RegionNotFound(region_id)
            }
        };
        if let PeerMsg::AskSplit(ask) = undelivered {
            ask.callback.fail(error(), 0);
        }
        Err(error())
    }

    /// [`Router::split_region`], waiting for the answer. Region errors come back inside the
    /// response's header; `Err` means the store is shutting down.
    pub async fn execute_split(
        &self,
        region_id: u64,
        epoch: RegionEpoch,
        split_keys: Vec<Vec<u8>>,
    ) -> Result<CmdResponse> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = self.split_region(region_id, epoch, split_keys, Callback::from_oneshot(tx));
        rx.await.map_err(|_| Error::Shutdown)
    }

    /// Tells the peer concerned what the transport could not deliver.
    pub fn report(&self, report: TransportReport) {
        let (region_id, msg) = match report {
            TransportReport::Unreachable {
                region_id,
                to_peer_id,
            } => (region_id, PeerMsg::Unreachable { to_peer_id }),
            TransportReport::SnapshotStatus {
                region_id,
                to_peer_id,
                finished,
            } => (
                region_id,
                PeerMsg::SnapshotStatus {
                    to_peer_id,
                    finished,
                },
            ),
        };
        let _ = self.send_peer(region_id, msg);
    }

    /// [`Router::report`] as a closure, for building a transport.
    pub fn report_sink(&self) -> ReportSink {
        let router = self.clone();
        Arc::new(move |r| router.report(r))
    }

    /// Sends `msg` to the peer of `region_id`: droppable messages are dropped when the mailbox
    /// is full, the others are always queued.
    pub(crate) fn send_peer(
        &self,
        region_id: u64,
        msg: PeerMsg,
    ) -> std::result::Result<(), SendError<PeerMsg>> {
        if msg.is_droppable() {
            self.inner.try_send(region_id, msg, self.capacity)
        } else {
            self.inner.force_send(region_id, msg)
        }
    }

    /// Sends a significant message whatever the mailbox's length.
    pub(crate) fn force_send_peer(
        &self,
        region_id: u64,
        msg: PeerMsg,
    ) -> std::result::Result<(), SendError<PeerMsg>> {
        self.inner.force_send(region_id, msg)
    }

    /// Sends to the store FSM.
    pub(crate) fn send_store(&self, msg: StoreMsg) -> Result<()> {
        self.inner.send_control(msg).map_err(|_| Error::Shutdown)
    }

    /// Sends `make()` to every peer (droppable messages only).
    pub(crate) fn broadcast(&self, make: impl FnMut() -> PeerMsg) {
        self.inner.broadcast_normal(self.capacity, make);
    }
}

impl RaftMessageSink for Router {
    fn deliver(&self, msg: RaftMessage) -> Result<()> {
        let region_id = msg.region_id;
        if region_id == 0 || msg.to_peer.is_none() || msg.message.is_none() {
            return Err(Error::Transport(format!(
                "malformed raft message for region {region_id}: missing region, target or payload"
            )));
        }
        if self.inner.is_closed() {
            return Err(Error::Shutdown);
        }
        match self.send_peer(region_id, PeerMsg::RaftMessage(Box::new(msg))) {
            Ok(()) => Ok(()),
            Err(SendError::Full(_)) => Err(Error::ServerIsBusy(format!(
                "mailbox of region {region_id} is full"
            ))),
            Err(SendError::Closed(PeerMsg::RaftMessage(msg))) => {
                // No (live) peer here: the store decides whether to create one.
                self.send_store(StoreMsg::RaftMessage(msg))
            }
            Err(SendError::Closed(_)) => unreachable!("a raft message comes back as sent"),
        }
    }
}
