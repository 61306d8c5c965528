//! Peer lifecycle: creating a peer (at start from the kv engine, or from the first valid raft
//! message for a region this store does not host yet) and destroying one.
//!
//! A peer created by a message starts empty (log and applied index at 0, no range, no
//! members), so its leader finds nothing to append to and sends a snapshot, which initializes it.
//! Only a message that can start a new member's life creates one: a vote request, or a leader's
//! heartbeat with commit index 0 (the leader knows nothing of it yet). A `Tombstone` region
//! state with an epoch at least as new as the message's keeps removed peers from coming back.

use prost::Message as _;
use proto::metapb::{Peer as PeerMeta, Region};
use proto::raft_serverpb::{PeerState, RaftMessage};
use raft_core::engine::{KvEngine, WriteBatch};
use raft_core::storage::state;

use crate::apply::ApplyDelegate;
use crate::errors::Result;
use crate::fsm::apply::{ApplyFsm, ApplyMsg};
use crate::fsm::peer::PeerFsm;
use crate::msg::PeerMsg;
use crate::peer::Peer;
use crate::poller::PollContext;
use crate::router::Router;
use crate::status::StatusRegistry;
use crate::transport::Transport;

/// Builds the peer of `region` hosted on `store_id`, registers its apply FSM with
/// `apply_router` and returns its peer FSM (to register with the raft router).
pub(crate) fn build_peer(
    cfg: &crate::config::RaftstoreConfig,
    storage_ctx: &raft_core::storage::StorageContext,
    registry: &StatusRegistry,
    apply_router: &crate::fsm::apply::ApplyRouter,
    region: Region,
    meta: PeerMeta,
) -> Result<(crossbeam_channel::Sender<PeerMsg>, Box<PeerFsm>)> {
    let region_id = region.id;
    let peer = Peer::new(
        &cfg.raft,
        storage_ctx,
        region,
        meta,
        registry.slot(region_id),
    )?;
    let storage = peer.group().storage();
    ApplyFsm::register(
        apply_router,
        ApplyDelegate {
            region_id,
            peer_id: meta.id,
            region: storage.region().clone(),
            apply_state: *storage.apply_state(),
        },
    );
    Ok(PeerFsm::new(peer))
}

/// Registers a built peer FSM with the raft router and wakes it.
pub(crate) fn register_peer(
    router: &Router,
    region_id: u64,
    tx: crossbeam_channel::Sender<PeerMsg>,
    fsm: Box<PeerFsm>,
) {
    if router
        .inner
        .register(region_id, tx, |f, mb| f.set_mailbox(mb), fsm)
        .is_err()
    {
        tracing::debug!(region_id, "router closed; peer not registered");
        return;
    }
    let _ = router.force_send_peer(region_id, PeerMsg::Start);
}

fn is_initial_msg(m: &proto::eraftpb::Message) -> bool {
    use proto::eraftpb::MessageType;
    match MessageType::try_from(m.msg_type) {
        Ok(MessageType::MsgRequestVote | MessageType::MsgRequestPreVote) => true,
        Ok(MessageType::MsgHeartbeat) => m.commit == 0,
        _ => false,
    }
}

/// A raft message for a region without a peer here (see the module docs).
pub(crate) fn on_store_raft_message<T: Transport>(ctx: &mut PollContext<T>, msg: RaftMessage) {
    let region_id = msg.region_id;
    let Some(to) = msg.to_peer else {
        return;
    };
    if to.store_id != ctx.store_id {
        tracing::debug!(
            region_id,
            store_id = ctx.store_id,
            to_store = to.store_id,
            "message for another store dropped"
        );
        return;
    }
    // The peer may have been registered since the message was routed here.
    if ctx.router.inner.contains(region_id) {
        let _ = ctx
            .router
            .send_peer(region_id, PeerMsg::RaftMessage(Box::new(msg)));
        return;
    }
    if msg.is_tombstone {
        return;
    }
    let Some(m) = msg.message.as_ref() else {
        return;
    };
    if !is_initial_msg(m) {
        tracing::trace!(
            region_id,
            msg_type = m.msg_type,
            "no peer for a non-initial message; dropped"
        );
        return;
    }
    match state::load_region_state(&ctx.engines.kv, region_id) {
        Ok(Some(local)) if local.state() == PeerState::Tombstone => {
            let local_epoch = local
                .region
                .as_ref()
                .and_then(|r| r.region_epoch)
                .unwrap_or_default();
            let msg_epoch = msg.region_epoch.unwrap_or_default();
            if msg_epoch.conf_ver <= local_epoch.conf_ver {
                tracing::debug!(region_id, "message for a destroyed peer dropped");
                return;
            }
        }
        Ok(Some(_)) => {
            // A live region state without a registered peer: it belongs to a peer this store
            // did not load (not a member); leave it alone.
            tracing::warn!(
                region_id,
                "region state exists but no peer is registered; message dropped"
            );
            return;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(region_id, error = %e, "cannot read region state");
            return;
        }
    }
    if let Err(e) = create_peer_from_message(ctx, &msg, to) {
        tracing::warn!(region_id, error = %e, "cannot create peer");
        return;
    }
    let _ = ctx
        .router
        .send_peer(region_id, PeerMsg::RaftMessage(Box::new(msg)));
}

fn create_peer_from_message<T: Transport>(
    ctx: &mut PollContext<T>,
    msg: &RaftMessage,
    to: PeerMeta,
) -> Result<()> {
    let region_id = msg.region_id;
    let (mut kv_wb, mut raft_wb) = (ctx.engines.kv.write_batch(), ctx.engines.raft.write_batch());
    state::write_uninitialized_states(&mut kv_wb, &mut raft_wb, region_id)?;
    // A raft state left by an earlier empty incarnation of this peer (restarted before its
    // snapshot arrived) may hold a vote: keep it, or the peer could vote twice in one term.
    if state::load_raft_state(&ctx.engines.raft, region_id)?.is_none() {
        ctx.engines.raft.write(&mut raft_wb, true)?;
    }
    ctx.engines.kv.write(&mut kv_wb, true)?;
    let region = Region {
        id: region_id,
        ..Default::default()
    };
    let (tx, mut fsm) = build_peer(
        &ctx.cfg,
        &ctx.storage_ctx,
        &ctx.registry,
        &ctx.apply_router,
        region,
        to,
    )?;
    if let Some(from) = &msg.from_peer {
        fsm.peer.peer_cache.insert(from.id, *from);
    }
    tracing::info!(
        region_id,
        peer_id = to.id,
        size = msg.encoded_len(),
        "created peer from a raft message"
    );
    register_peer(&ctx.router, region_id, tx, fsm);
    Ok(())
}

impl Peer {
    /// Starts destroying this peer (it was removed from its region): the apply FSM stops
    /// after its queued work and reports back; only then is anything deleted
    /// ([`Peer::finish_destroy`]), so no queued apply write can land after the data is cleared.
    /// Meanwhile the peer takes no part in Raft and refuses commands.
    pub(crate) fn start_destroy<T: Transport>(&mut self, ctx: &mut PollContext<T>) {
        if self.pending_destroy || self.is_destroyed() {
            return;
        }
        self.pending_destroy = true;
        tracing::info!(
            region_id = self.region_id,
            peer_id = self.meta.id,
            "destroying peer"
        );
        if ctx
            .apply_router
            .force_send(self.region_id, ApplyMsg::Destroy)
            .is_err()
        {
            // No apply FSM (shutting down): nothing can write behind us.
            let mut stopped = false;
            self.finish_destroy(ctx, &mut stopped);
        }
    }

    /// Deletes the peer's raft log and states (and its data, if it ever had any), leaves a
    /// tombstone so stale messages do not recreate it, and answers everything still waiting
    /// with `RegionNotFound`.
    pub(crate) fn finish_destroy<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        stopped: &mut bool,
    ) {
        let region_id = self.region_id;
        if !self.pending_destroy {
            return;
        }
        let Some(group) = self.take_group() else {
            return;
        };
        let clear_data = group.storage().is_initialized();
        let (mut kv_wb, mut raft_wb) =
            (ctx.engines.kv.write_batch(), ctx.engines.raft.write_batch());
        group
            .destroy(&mut kv_wb, &mut raft_wb, clear_data)
            .unwrap_or_else(|e| panic!("region {region_id}: cannot stage peer destruction: {e}"));
        // Kv first: the tombstone must be durable before the raft state it replaces goes.
        for (engine, wb) in [
            (&ctx.engines.kv, &mut kv_wb),
            (&ctx.engines.raft, &mut raft_wb),
        ] {
            if !wb.is_empty() {
                engine
                    .write(wb, true)
                    .unwrap_or_else(|e| panic!("region {region_id}: cannot destroy peer: {e}"));
            }
        }
        self.reads
            .fail_all(|| crate::errors::Error::RegionNotFound(region_id), 0);
        if let Some(p) = self.pending_write.take() {
            p.cb.fail_with(crate::errors::Error::RegionNotFound(region_id), 0);
        }
        if let Some(mb) = ctx.router.inner.mailbox(region_id) {
            ctx.router.inner.unregister(region_id, &mb);
        }
        if let Some(mb) = ctx.apply_router.mailbox(region_id) {
            ctx.apply_router.unregister(region_id, &mb);
        }
        ctx.registry.remove(region_id, &self.status);
        *stopped = true;
        tracing::info!(region_id, peer_id = self.meta.id, "peer destroyed");
    }
}
