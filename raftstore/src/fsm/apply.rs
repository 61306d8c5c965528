//! The apply FSM (one per region, on the apply pollers): mailbox + dispatch. The work is in
//! [`crate::apply`].

use crossbeam_channel::Receiver;
use raft_core::ApplyTask;

use crate::apply::{ApplyContext, ApplyDelegate};
use crate::batch::{BasicMailbox, BatchRouter, Fsm, PollHandler};
use crate::peer::ProposalCb;

/// Messages for an apply FSM.
pub enum ApplyMsg {
    /// Committed entries (and maybe a snapshot to adopt) of the region. **Significant**: lost
    /// work would stall the region; if it cannot be delivered (shutdown), its callbacks are
    /// answered as it is dropped.
    Apply(Box<ApplyTask<ProposalCb>>),
    /// The peer is being destroyed: stop after the work already queued, then tell the peer
    /// (`PeerMsg::ApplyDestroyed`) so it can clear the region's data. **Significant**.
    Destroy,
}

/// Routes to apply FSMs by region id.
pub type ApplyRouter = BatchRouter<ApplyFsm, ApplyControlFsm>;

/// One region's applier.
pub struct ApplyFsm {
    pub(crate) delegate: ApplyDelegate,
    receiver: Receiver<ApplyMsg>,
    mailbox: Option<BasicMailbox<ApplyFsm>>,
    stopped: bool,
}

impl ApplyFsm {
    /// A new FSM for `delegate`, with the sender of its mailbox.
    pub(crate) fn new(
        delegate: ApplyDelegate,
    ) -> (crossbeam_channel::Sender<ApplyMsg>, Box<ApplyFsm>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (
            tx,
            Box::new(ApplyFsm {
                delegate,
                receiver: rx,
                mailbox: None,
                stopped: false,
            }),
        )
    }

    /// Registers a new apply FSM for `delegate` with `router` (replacing any older one).
    pub(crate) fn register(router: &ApplyRouter, delegate: ApplyDelegate) {
        let region_id = delegate.region_id;
        let (tx, fsm) = ApplyFsm::new(delegate);
        if router
            .register(region_id, tx, |f, mb| f.mailbox = Some(mb), fsm)
            .is_err()
        {
            tracing::debug!(region_id, "apply router closed; apply fsm not registered");
        }
    }

    fn handle_msgs(&mut self, ctx: &mut ApplyContext, budget: usize, batch_bytes: u64) {
        for msg in self.receiver.try_iter().take(budget) {
            match msg {
                ApplyMsg::Apply(task) => {
                    self.delegate.handle_task(ctx, *task);
                    if ctx.pending_bytes() as u64 >= batch_bytes {
                        ctx.flush();
                    }
                }
                ApplyMsg::Destroy => {
                    // The results queued so far must reach the kv engine before the peer
                    // clears the region's data.
                    ctx.flush();
                    self.stopped = true;
                    let region_id = self.delegate.region_id;
                    let msg = crate::msg::PeerMsg::ApplyDestroyed {
                        incarnation: self.delegate.incarnation,
                    };
                    if ctx.router.force_send_peer(region_id, msg).is_err() {
                        tracing::debug!(region_id, "peer gone before its apply fsm stopped");
                    }
                    break;
                }
            }
        }
    }
}

impl Fsm for ApplyFsm {
    type Message = ApplyMsg;

    fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn mailbox(&self) -> &BasicMailbox<Self> {
        self.mailbox.as_ref().expect("registered fsm has a mailbox")
    }
}

/// The apply system has no store-level duties; its control FSM never receives anything.
pub struct ApplyControlFsm {
    mailbox: BasicMailbox<ApplyControlFsm>,
}

impl ApplyControlFsm {
    pub(crate) fn new(mailbox: BasicMailbox<ApplyControlFsm>) -> Box<ApplyControlFsm> {
        Box::new(ApplyControlFsm { mailbox })
    }
}

impl Fsm for ApplyControlFsm {
    type Message = ();

    fn is_stopped(&self) -> bool {
        false
    }

    fn mailbox(&self) -> &BasicMailbox<Self> {
        &self.mailbox
    }
}

/// An apply poller: one kv write per round for every region in its batch.
pub(crate) struct ApplyPoller {
    pub(crate) ctx: ApplyContext,
    pub(crate) messages_per_tick: usize,
    pub(crate) batch_bytes: u64,
}

impl PollHandler<ApplyFsm, ApplyControlFsm> for ApplyPoller {
    fn begin(&mut self, _batch_size: usize) {}

    fn handle_control(&mut self, _control: &mut ApplyControlFsm) {}

    fn handle_normal(&mut self, fsm: &mut ApplyFsm) {
        fsm.handle_msgs(&mut self.ctx, self.messages_per_tick, self.batch_bytes);
    }

    fn end(&mut self, _fsms: &mut [Box<ApplyFsm>]) {
        self.ctx.flush();
    }
}
