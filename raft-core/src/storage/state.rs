//! Per-region persistent states: where they live, their initial values, and loading them.
//!
//! | state | engine | written by |
//! |---|---|---|
//! | `RaftLocalState` (hard state, last index) | raft | the Ready loop, with the log entries |
//! | `RaftApplyState` (applied index, truncated state) | kv | the applier, with the applied data |
//! | `RegionLocalState` (region, Normal/Tombstone) | kv | bootstrap/split, conf change apply, snapshot apply, destroy |
//! | snapshot `RaftLocalState` copy | kv | snapshot apply, with the snapshot's data |

use proto::metapb::Region;
use proto::raft_serverpb::{
    PeerState, RaftApplyState, RaftLocalState, RaftTruncatedState, RegionLocalState,
};

use crate::engine::{Mutable, Peekable, RocksWriteBatch, CF_DEFAULT};
use crate::errors::Result;
use crate::keys;

/// Term of the log a bootstrapped or split-created region starts with (TinyKV convention).
pub const RAFT_INIT_LOG_TERM: u64 = 5;
/// Index of the log a bootstrapped or split-created region starts with: its log is empty and
/// truncated at (5, 5), so peers that know nothing (index 0) are brought up by a snapshot.
pub const RAFT_INIT_LOG_INDEX: u64 = 5;

/// Loads the `RaftLocalState` of `region_id` from the raft engine.
pub fn load_raft_state(raft: &impl Peekable, region_id: u64) -> Result<Option<RaftLocalState>> {
    raft.get_msg_cf(CF_DEFAULT, &keys::raft_state_key(region_id))
}

/// Loads the `RaftApplyState` of `region_id` from the kv engine (or a snapshot of it).
pub fn load_apply_state(kv: &impl Peekable, region_id: u64) -> Result<Option<RaftApplyState>> {
    kv.get_msg_cf(CF_DEFAULT, &keys::apply_state_key(region_id))
}

/// Loads the `RegionLocalState` of `region_id` from the kv engine (or a snapshot of it).
pub fn load_region_state(kv: &impl Peekable, region_id: u64) -> Result<Option<RegionLocalState>> {
    kv.get_msg_cf(CF_DEFAULT, &keys::region_state_key(region_id))
}

/// Adds the `RegionLocalState` of `region` with `state` to `kv_wb`.
pub fn write_peer_state(
    kv_wb: &mut RocksWriteBatch,
    region: &Region,
    state: PeerState,
) -> Result<()> {
    let rs = RegionLocalState {
        state: state as i32,
        region: Some(region.clone()),
    };
    kv_wb.put_msg_cf(CF_DEFAULT, &keys::region_state_key(region.id), &rs)
}

/// Adds the states of a region created with data (bootstrap or split) to the batches: the region
/// (Normal), an empty log truncated at ([`RAFT_INIT_LOG_INDEX`], [`RAFT_INIT_LOG_TERM`]), applied
/// and committed at that index, term [`RAFT_INIT_LOG_TERM`].
pub fn write_initial_states(
    kv_wb: &mut RocksWriteBatch,
    raft_wb: &mut RocksWriteBatch,
    region: &Region,
) -> Result<()> {
    let raft_state = RaftLocalState {
        hard_state: Some(proto::eraftpb::HardState {
            term: RAFT_INIT_LOG_TERM,
            vote: 0,
            commit: RAFT_INIT_LOG_INDEX,
        }),
        last_index: RAFT_INIT_LOG_INDEX,
    };
    let apply_state = RaftApplyState {
        applied_index: RAFT_INIT_LOG_INDEX,
        truncated_state: Some(RaftTruncatedState {
            index: RAFT_INIT_LOG_INDEX,
            term: RAFT_INIT_LOG_TERM,
        }),
        last_commit_index: 0,
        commit_index: RAFT_INIT_LOG_INDEX,
        commit_term: RAFT_INIT_LOG_TERM,
    };
    raft_wb.put_msg_cf(CF_DEFAULT, &keys::raft_state_key(region.id), &raft_state)?;
    kv_wb.put_msg_cf(CF_DEFAULT, &keys::apply_state_key(region.id), &apply_state)?;
    write_peer_state(kv_wb, region, PeerState::Normal)
}

/// Adds the states of a peer created empty (by a conf change on another store, before any
/// snapshot arrived) to the batches: log, applied index and truncated state all at 0, so its
/// leader finds nothing to append to and sends a snapshot. No region state is written: the peer
/// has no range or membership until the snapshot brings them.
pub fn write_uninitialized_states(
    kv_wb: &mut RocksWriteBatch,
    raft_wb: &mut RocksWriteBatch,
    region_id: u64,
) -> Result<()> {
    raft_wb.put_msg_cf(
        CF_DEFAULT,
        &keys::raft_state_key(region_id),
        &RaftLocalState {
            hard_state: Some(Default::default()),
            last_index: 0,
        },
    )?;
    kv_wb.put_msg_cf(
        CF_DEFAULT,
        &keys::apply_state_key(region_id),
        &RaftApplyState {
            truncated_state: Some(RaftTruncatedState::default()),
            ..Default::default()
        },
    )
}

/// Whether a region has been initialized (has a range and members). A peer of an uninitialized
/// region waits for a snapshot.
pub fn is_initialized(region: &Region) -> bool {
    !region.peers.is_empty()
}

/// The truncated state of `apply_state`, (0, 0) if absent.
pub fn truncated(apply_state: &RaftApplyState) -> RaftTruncatedState {
    apply_state.truncated_state.unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::engine::{Engines, KvEngine};

    #[test]
    fn initial_states_follow_the_tinykv_convention() {
        let dir = tempfile::tempdir().unwrap();
        let engines = Engines::open(dir.path(), &EngineConfig::new_test_config()).unwrap();
        let region = Region {
            id: 9,
            peers: vec![proto::metapb::Peer {
                id: 1,
                store_id: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        let (mut kv_wb, mut raft_wb) = (engines.kv.write_batch(), engines.raft.write_batch());
        write_initial_states(&mut kv_wb, &mut raft_wb, &region).unwrap();
        write_uninitialized_states(&mut kv_wb, &mut raft_wb, 10).unwrap();
        engines.kv.write(&mut kv_wb, true).unwrap();
        engines.raft.write(&mut raft_wb, true).unwrap();

        let rs = load_raft_state(&engines.raft, 9).unwrap().unwrap();
        assert_eq!(rs.last_index, 5);
        assert_eq!(rs.hard_state.unwrap().term, 5);
        let applied = load_apply_state(&engines.kv, 9).unwrap().unwrap();
        assert_eq!(applied.applied_index, 5);
        assert_eq!(
            truncated(&applied),
            RaftTruncatedState { index: 5, term: 5 }
        );
        let state = load_region_state(&engines.kv, 9).unwrap().unwrap();
        assert_eq!(state.state(), PeerState::Normal);
        assert!(is_initialized(state.region.as_ref().unwrap()));

        assert_eq!(
            load_raft_state(&engines.raft, 10)
                .unwrap()
                .unwrap()
                .last_index,
            0
        );
        assert_eq!(
            load_apply_state(&engines.kv, 10)
                .unwrap()
                .unwrap()
                .applied_index,
            0
        );
        assert!(load_region_state(&engines.kv, 10).unwrap().is_none());
    }
}
