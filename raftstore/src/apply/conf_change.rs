//! Applying a membership change: a committed `EntryConfChange(V2)` whose context carries the
//! `ChangePeer`/`ChangePeerV2` command it was proposed for.
//!
//! The command is checked again as apply sees the region (its `conf_ver` must still match, so of
//! two changes proposed against the same epoch only the first applies; a re-sent duplicate gets
//! `EpochNotMatch`). The new region goes into `RegionLocalState` in the apply batch, with the
//! apply state; if this peer is no longer a member the state is `Tombstone`, so a restart never
//! brings it back. raft-rs learns the change through the `AppliedConfChange` reported to
//! raft-core; a change refused here is not reported, on every replica alike.

use prost::Message as _;
use proto::metapb::Peer;
use proto::raft_cmdpb::{
    AdminCmdType, AdminResponse, ChangePeerResponse, ChangePeerV2Response, RaftCmdRequest,
};
use proto::raft_serverpb::PeerState;
use raft::eraftpb::Entry;
use raft_core::conf_change::{apply_conf_change_to_region, decode_conf_change};
use raft_core::storage::state::write_peer_state;
use raft_core::AppliedConfChange;

use super::{ApplyContext, ApplyDelegate, ExecResult, Executed};
use crate::errors::{Error, Result};
use crate::operation::command::{check_epoch, CmdKind};

/// The peers a membership command names (their store ids are what the new region records).
pub(crate) fn command_peers(req: &RaftCmdRequest) -> Result<(AdminCmdType, Vec<Peer>)> {
    let admin = req
        .admin_request
        .as_ref()
        .ok_or_else(|| Error::InvalidRequest("conf change without an admin command".into()))?;
    let missing = || Error::InvalidRequest("change peer without a peer".into());
    match admin.cmd_type() {
        AdminCmdType::ChangePeer => {
            let cp = admin.change_peer.as_ref().ok_or_else(missing)?;
            Ok((AdminCmdType::ChangePeer, vec![cp.peer.ok_or_else(missing)?]))
        }
        AdminCmdType::ChangePeerV2 => {
            let v2 = admin
                .change_peer_v2
                .as_ref()
                .ok_or_else(|| Error::InvalidRequest("change peer v2 without changes".into()))?;
            let peers = v2
                .changes
                .iter()
                .map(|c| c.peer.ok_or_else(missing))
                .collect::<Result<Vec<_>>>()?;
            Ok((AdminCmdType::ChangePeerV2, peers))
        }
        other => Err(Error::InvalidRequest(format!(
            "admin command {other:?} in a conf change entry"
        ))),
    }
}

impl ApplyDelegate {
    /// Applies the conf change entry `entry` (see the module docs).
    pub(super) fn exec_conf_change(
        &mut self,
        ctx: &mut ApplyContext,
        entry: &Entry,
        out: &mut Executed,
    ) -> Result<()> {
        let (region_id, peer_id, index) = (self.region_id, self.peer_id, entry.index);
        // Only this store's proposals produce these entries; an undecodable one is corruption.
        let cc = decode_conf_change(entry).unwrap_or_else(|e| {
            panic!("region {region_id} peer {peer_id}: conf change entry {index} is corrupt: {e}")
        });
        let req = RaftCmdRequest::decode(entry.get_context()).unwrap_or_else(|e| {
            panic!(
                "region {region_id} peer {peer_id}: conf change entry {index} carries no command: {e}"
            )
        });
        let (cmd_type, new_peers) = command_peers(&req)?;
        let header = req
            .header
            .as_ref()
            .ok_or_else(|| Error::InvalidRequest("missing header".into()))?;
        check_epoch(
            &self.region,
            header.region_epoch.as_ref(),
            CmdKind::Admin(cmd_type).epoch_check(),
        )?;
        let region =
            apply_conf_change_to_region(&self.region, &cc, &new_peers).map_err(|e| match e {
                raft_core::Error::InvalidConfChange { reason, .. } => Error::InvalidRequest(reason),
                other => other.into(),
            })?;
        let removed_self = !region.peers.iter().any(|p| p.id == self.peer_id);
        let state = if removed_self {
            PeerState::Tombstone
        } else {
            PeerState::Normal
        };
        write_peer_state(&mut ctx.kv_wb, &region, state).expect("default column family exists");
        tracing::info!(
            region_id,
            peer_id,
            index,
            conf_ver = region.region_epoch.unwrap_or_default().conf_ver,
            peers = ?region.peers.iter().map(|p| (p.id, p.store_id, p.role)).collect::<Vec<_>>(),
            removed_self,
            "conf change applied"
        );
        self.region = region.clone();
        self.removed = removed_self;
        let mut admin = AdminResponse {
            cmd_type: cmd_type as i32,
            ..Default::default()
        };
        if cmd_type == AdminCmdType::ChangePeer {
            admin.change_peer = Some(ChangePeerResponse {
                region: Some(region.clone()),
            });
        } else {
            admin.change_peer_v2 = Some(ChangePeerV2Response {
                region: Some(region.clone()),
            });
        }
        out.resp.admin_response = Some(admin);
        out.conf_change = Some(AppliedConfChange {
            index,
            change: cc,
            region: region.clone(),
        });
        out.exec = Some(ExecResult::ChangePeer {
            index,
            region,
            removed_self,
        });
        Ok(())
    }
}
