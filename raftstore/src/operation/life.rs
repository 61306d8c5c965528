//! Peer lifecycle: creating a peer (at start from the kv engine, from the first valid raft
//! message for a region this store does not host yet, or by a split), finding out that a peer
//! was removed, and destroying it.
//!
//! **Creation from a message.** Only a message that can start a new member's life creates a
//! peer: a vote request, or a leader's heartbeat with commit index 0 (the leader knows nothing of
//! it yet). The peer starts empty (log and applied index at 0, no range, no members), so its
//! leader finds nothing to append to and sends a snapshot. Refused when a `Tombstone` of the
//! region is at least as new as the message's epoch (a removed peer never comes back from its
//! old group's messages), or when an initialized region of this store overlaps the range the
//! message claims (a stale region here still covers it: it must split or be removed first).
//! Both checks and the registration run under the `StoreMeta` lock, as does every other change
//! of which region owns which range.
//!
//! **Learning of a removal.** A peer applies its own removal and destroys itself; one that
//! missed it finds out as `operation/stale.rs` describes.
//!
//! **Destruction** is two steps: the apply FSM stops after its queued work and reports back,
//! and only then are the raft log, raft and apply states and (for an initialized peer) the data
//! range deleted, with a `Tombstone` region state written first (kv before raft). A crash between
//! the steps is finished at start ([`clean_up_tombstones`]).

use prost::Message as _;
use proto::metapb::{Peer as PeerMeta, Region};
use proto::raft_serverpb::{PeerState, RaftLocalState, RaftMessage};
use raft_core::engine::{Engines, KvEngine, Mutable, WriteBatch, CF_DEFAULT, DATA_CFS};
use raft_core::keys;
use raft_core::storage::state::{self, RAFT_INIT_LOG_INDEX, RAFT_INIT_LOG_TERM};

use crate::apply::ApplyDelegate;
use crate::errors::Result;
use crate::fsm::apply::{ApplyFsm, ApplyMsg};
use crate::fsm::peer::PeerFsm;
use crate::msg::{PeerMsg, SplitInit};
use crate::operation::lease::Lease;
use crate::peer::Peer;
use crate::poller::PollContext;
use crate::router::Router;
use crate::status::StatusRegistry;
use crate::store_meta::StoreMeta;
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
    let peer = new_peer(cfg, storage_ctx, registry, apply_router, region, meta)?;
    Ok(PeerFsm::new(peer))
}

/// The peer of `region` on this store, with a fresh apply FSM registered for it.
fn new_peer(
    cfg: &crate::config::RaftstoreConfig,
    storage_ctx: &raft_core::storage::StorageContext,
    registry: &StatusRegistry,
    apply_router: &crate::fsm::apply::ApplyRouter,
    region: Region,
    meta: PeerMeta,
) -> Result<Peer> {
    let region_id = region.id;
    let mut peer = Peer::new(
        &cfg.raft,
        storage_ctx,
        region,
        meta,
        registry.slot(region_id),
    )?;
    peer.lease = Lease::new(cfg.leader_lease());
    let storage = peer.group().storage();
    let delegate = ApplyDelegate::new(meta.id, storage.region().clone(), *storage.apply_state());
    peer.apply_incarnation = delegate.incarnation;
    ApplyFsm::register(apply_router, delegate);
    Ok(peer)
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

fn is_vote(m: &proto::eraftpb::Message) -> bool {
    use proto::eraftpb::MessageType;
    matches!(
        MessageType::try_from(m.msg_type),
        Ok(MessageType::MsgRequestVote | MessageType::MsgRequestPreVote)
    )
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
    // Held from the checks to the registration: a split creating the same region, or another
    // region taking the range, is serialized with this.
    let meta = ctx.store_meta.clone();
    let mut meta = meta.lock();
    // The peer may have been registered since the message was routed here.
    if ctx.router.inner.contains(region_id) {
        drop(meta);
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
            // A live region state without a registered peer: a split applied here just wrote
            // it and the peer is being created (the sender retries).
            tracing::debug!(
                region_id,
                "region state exists but its peer is not registered yet"
            );
            if is_vote(m) {
                meta.stash_vote(msg);
            }
            return;
        }
        Ok(None) => {}
        Err(e) => {
            tracing::error!(region_id, error = %e, "cannot read region state");
            return;
        }
    }
    if let Some(other) = meta.overlapping(&msg.start_key, &msg.end_key, region_id) {
        tracing::debug!(
            region_id,
            overlapping = other.id,
            "range of a new peer overlaps a region of this store; waiting for it to split or go"
        );
        if is_vote(m) {
            // Most likely the new region of a split this store has not applied yet.
            meta.stash_vote(msg);
        }
        return;
    }
    if let Err(e) = create_peer_from_message(ctx, &msg, to) {
        tracing::warn!(region_id, error = %e, "cannot create peer");
        return;
    }
    drop(meta);
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

/// Makes sure a region created by a split has a raft state: the initial one (log empty and
/// truncated at index 5, term 5), keeping the term and vote of an uninitialized peer that
/// existed before (it may have voted in a later term). Written synced before the peer runs.
pub(crate) fn ensure_split_raft_state(engines: &Engines, region_id: u64) -> Result<()> {
    let existing = state::load_raft_state(&engines.raft, region_id)?;
    if existing
        .as_ref()
        .is_some_and(|s| s.last_index >= RAFT_INIT_LOG_INDEX)
    {
        return Ok(());
    }
    let mut hs = existing.and_then(|s| s.hard_state).unwrap_or_default();
    if hs.term < RAFT_INIT_LOG_TERM {
        hs.term = RAFT_INIT_LOG_TERM;
        hs.vote = 0;
    }
    hs.commit = RAFT_INIT_LOG_INDEX;
    let raft_state = RaftLocalState {
        hard_state: Some(hs),
        last_index: RAFT_INIT_LOG_INDEX,
    };
    let mut wb = engines.raft.write_batch();
    wb.put_msg_cf(CF_DEFAULT, &keys::raft_state_key(region_id), &raft_state)?;
    engines.raft.write(&mut wb, true)?;
    Ok(())
}

/// Creates (or initializes) this store's peer of `region`, which a split just created, and
/// records its range in `meta` (whose lock the caller holds).
pub(crate) fn create_split_peer<T: Transport>(
    ctx: &mut PollContext<T>,
    meta: &mut StoreMeta,
    region: &Region,
    campaign: bool,
) {
    let region_id = region.id;
    meta.set_region(region);
    let init = SplitInit {
        region: region.clone(),
        campaign,
    };
    // An uninitialized peer created by an early message becomes the split's peer: it turns
    // itself into one (its own thread owns its raft state).
    let msg = PeerMsg::SplitInit(Box::new(init));
    let msg = match ctx.router.force_send_peer(region_id, msg) {
        Ok(()) => return replay_votes(ctx, meta, region_id),
        Err(e) => e.into_inner(),
    };
    let PeerMsg::SplitInit(init) = msg else {
        unreachable!("a split init comes back as sent");
    };
    let Some(peer_meta) = region
        .peers
        .iter()
        .find(|p| p.store_id == ctx.store_id)
        .copied()
    else {
        meta.remove(region_id);
        return;
    };
    let live = state::load_region_state(&ctx.engines.kv, region_id)
        .ok()
        .flatten()
        .is_some_and(|s| s.state() == PeerState::Normal);
    if !live {
        // An uninitialized peer of it was destroyed (told it was removed) after the split
        // wrote the region's states: it stays removed.
        tracing::warn!(
            region_id,
            "split region was removed from this store meanwhile; not created"
        );
        meta.remove(region_id);
        return;
    }
    let built = ensure_split_raft_state(&ctx.engines, region_id).and_then(|()| {
        build_peer(
            &ctx.cfg,
            &ctx.storage_ctx,
            &ctx.registry,
            &ctx.apply_router,
            region.clone(),
            peer_meta,
        )
    });
    match built {
        Ok((tx, mut fsm)) => {
            fsm.peer.campaign_on_start = init.campaign;
            tracing::info!(
                region_id,
                peer_id = peer_meta.id,
                "created peer of a split region"
            );
            register_peer(&ctx.router, region_id, tx, fsm);
            replay_votes(ctx, meta, region_id);
        }
        Err(e) => {
            // The states were written with the split, so this is an engine failure.
            panic!("region {region_id}: cannot create the peer of a split region: {e}")
        }
    }
}

/// Hands the vote requests kept for `region_id` (see `StoreMeta`) to its new peer.
fn replay_votes<T>(ctx: &PollContext<T>, meta: &mut StoreMeta, region_id: u64) {
    for msg in meta.take_votes(region_id) {
        let _ = ctx
            .router
            .send_peer(region_id, PeerMsg::RaftMessage(Box::new(msg)));
    }
}

impl PeerFsm {
    /// A split on this store created this uninitialized peer's region: become its initialized
    /// peer (see [`create_split_peer`]).
    pub(crate) fn on_split_init<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        init: SplitInit,
    ) {
        let region_id = init.region.id;
        if !self.peer.is_destroyed() && self.peer.group().storage().is_initialized() {
            return;
        }
        let Some(meta) = init
            .region
            .peers
            .iter()
            .find(|p| p.store_id == ctx.store_id)
            .copied()
        else {
            return;
        };
        if meta.id != self.peer.meta.id {
            tracing::info!(
                region_id,
                peer_id = self.peer.meta.id,
                split_peer = meta.id,
                "an uninitialized peer is replaced by the split's peer"
            );
        }
        // The old group is dropped (an uninitialized peer has no proposals); its hard state is
        // durable (every round persists it) and `ensure_split_raft_state` keeps its term and
        // vote.
        drop(self.peer.take_group());
        let built = ensure_split_raft_state(&ctx.engines, region_id).and_then(|()| {
            new_peer(
                &ctx.cfg,
                &ctx.storage_ctx,
                &ctx.registry,
                &ctx.apply_router,
                init.region.clone(),
                meta,
            )
        });
        let mut peer = built.unwrap_or_else(|e| {
            panic!("region {region_id}: cannot initialize the peer of a split region: {e}")
        });
        peer.campaign_on_start = init.campaign;
        peer.peer_cache.extend(self.peer.peer_cache.drain());
        peer.refresh_peer_cache();
        self.peer = peer;
        tracing::info!(
            region_id,
            peer_id = meta.id,
            "uninitialized peer initialized by a split"
        );
        self.peer.maybe_campaign_on_start();
    }
}

impl Peer {
    /// A peer a split created next to its parent's leader campaigns at once, so the new
    /// region gets a leader without waiting out an election timeout.
    pub(crate) fn maybe_campaign_on_start(&mut self) {
        if !std::mem::take(&mut self.campaign_on_start) || self.is_leader() {
            return;
        }
        if let Err(e) = self.group_mut().campaign() {
            tracing::debug!(region_id = self.region_id, peer_id = self.meta.id, error = %e, "campaign failed");
        }
    }

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
            let incarnation = self.apply_incarnation;
            self.finish_destroy(ctx, incarnation, &mut stopped);
        }
    }

    /// Deletes the peer's raft log and states (and its data, if it ever had any), leaves a
    /// tombstone so stale messages do not recreate it, and answers everything still waiting
    /// with `RegionNotFound`.
    pub(crate) fn finish_destroy<T: Transport>(
        &mut self,
        ctx: &mut PollContext<T>,
        incarnation: u64,
        stopped: &mut bool,
    ) {
        let region_id = self.region_id;
        if !self.pending_destroy || incarnation != self.apply_incarnation {
            return;
        }
        let meta = ctx.store_meta.clone();
        let mut meta = meta.lock();
        let initialized = self.group().storage().is_initialized();
        if !initialized && split_owns(ctx, &meta, region_id) {
            // A split on this store initialized this region meanwhile and owns its states now;
            // its `SplitInit` is on the way and replaces this peer.
            tracing::info!(
                region_id,
                "destroy of an uninitialized peer superseded by a split"
            );
            self.pending_destroy = false;
            self.tombstone_region = None;
            return;
        }
        let Some(group) = self.take_group() else {
            return;
        };
        let (mut kv_wb, mut raft_wb) =
            (ctx.engines.kv.write_batch(), ctx.engines.raft.write_batch());
        group
            .destroy(&mut kv_wb, &mut raft_wb, initialized)
            .unwrap_or_else(|e| panic!("region {region_id}: cannot stage peer destruction: {e}"));
        if let Some(tomb) = self.tombstone_region.take() {
            state::write_peer_state(&mut kv_wb, &tomb, PeerState::Tombstone)
                .expect("default column family exists");
        }
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
        if meta.region(region_id).is_some() {
            meta.remove(region_id);
        }
        self.reads
            .fail_all(|| crate::errors::Error::RegionNotFound(region_id), 0);
        if let Some(p) = self.pending_write.take() {
            p.cb.fail_with(crate::errors::Error::RegionNotFound(region_id), 0);
        }
        if let Some(mb) = ctx.router.inner.mailbox(region_id) {
            ctx.router.inner.unregister(region_id, &mb);
        }
        drop(meta);
        if let Some(mb) = ctx.apply_router.mailbox(region_id) {
            ctx.apply_router.unregister(region_id, &mb);
        }
        ctx.registry.remove(region_id, &self.status);
        *stopped = true;
        tracing::info!(region_id, peer_id = self.meta.id, "peer destroyed");
    }
}

/// Whether a split on this store created region `region_id` (recorded in `meta`, or its
/// initialized states already written by the split's apply).
fn split_owns<T>(ctx: &PollContext<T>, meta: &StoreMeta, region_id: u64) -> bool {
    meta.contains(region_id)
        || state::load_region_state(&ctx.engines.kv, region_id)
            .ok()
            .flatten()
            .is_some_and(|s| s.state() == PeerState::Normal)
}

/// Finishes destructions a crash interrupted: a `Tombstone` region whose raft or apply state
/// is still there (the peer applied its removal, or started destroying, and the store stopped
/// before the states were deleted). Its raft log and states go, and its data range unless a live
/// region of this store covers part of it. Run at start, before any peer.
pub(crate) fn clean_up_tombstones(
    engines: &Engines,
    regions: &[(Region, PeerState)],
) -> Result<()> {
    let mut live = StoreMeta::default();
    for (r, s) in regions {
        if *s == PeerState::Normal {
            live.set_region(r);
        }
    }
    for (region, s) in regions {
        if *s != PeerState::Tombstone {
            continue;
        }
        let id = region.id;
        let raft_state = state::load_raft_state(&engines.raft, id)?;
        let apply_state = state::load_apply_state(&engines.kv, id)?;
        if raft_state.is_none() && apply_state.is_none() {
            continue;
        }
        tracing::info!(
            region_id = id,
            "finishing the destruction of a removed peer"
        );
        let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
        let last = raft_state.map_or(0, |s| s.last_index);
        raft_wb.delete_range_cf(
            CF_DEFAULT,
            &keys::raft_log_key(id, 0),
            &keys::raft_log_key(id, last + 1),
        )?;
        raft_wb.delete_cf(CF_DEFAULT, &keys::raft_state_key(id))?;
        kv_wb.delete_cf(CF_DEFAULT, &keys::apply_state_key(id))?;
        kv_wb.delete_cf(CF_DEFAULT, &keys::snapshot_raft_state_key(id))?;
        if state::is_initialized(region)
            && live
                .overlapping(&region.start_key, &region.end_key, id)
                .is_none()
        {
            let (start, end) = (
                keys::data_key(&region.start_key),
                keys::data_end_key(&region.end_key),
            );
            for cf in DATA_CFS {
                kv_wb.delete_range_cf(cf, &start, &end)?;
            }
        }
        engines.kv.write(&mut kv_wb, true)?;
        engines.raft.write(&mut raft_wb, true)?;
    }
    Ok(())
}
