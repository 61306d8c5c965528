//! The scheduler (PD) worker: region and store heartbeats, sent off the poller threads because
//! [`PdClient`] calls block.
//!
//! Answers to region heartbeats (operators) do not come back here: they arrive through the
//! handler the node installs with `PdClient::set_heartbeat_response_handler`, which routes them
//! to the region's peer.
//!
//! Also here, because they call the scheduler: asking for the ids of a split and proposing it
//! (`AskBatchSplit`), reporting a split, and answering a leaderless peer that wants to know
//! whether it is still a member of its region (`CheckStalePeer`).

use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use proto::metapb::{Peer, Region};
use proto::pdpb::{RegionHeartbeatRequest, StoreStats, TimeInterval};
use proto::raft_cmdpb::{
    AdminCmdType, AdminRequest, BatchSplitRequest, RaftCmdRequest, RaftRequestHeader, SplitRequest,
};

use super::Runnable;
use crate::errors::Error;
use crate::msg::{Callback, PeerMsg};
use crate::pd_client::PdClient;
use crate::router::Router;

/// Work for the PD worker.
pub enum PdTask {
    /// A leader reports its region.
    RegionHeartbeat(Box<RegionHeartbeat>),
    /// The store reports its statistics.
    StoreHeartbeat(Box<StoreStats>),
    /// Get ids for splitting `region` at `split_keys`, then propose the `BatchSplit` through
    /// the router; `callback` gets its answer (or the scheduler's error).
    AskBatchSplit {
        /// The region as its leader knows it (the command carries its epoch).
        region: Region,
        /// Split keys, sorted.
        split_keys: Vec<Vec<u8>>,
        /// The leader.
        peer: Peer,
        /// Answered with the `BatchSplit` response.
        callback: Callback,
    },
    /// Tell the scheduler which regions a split produced.
    ReportBatchSplit {
        /// Every region of the old range, in key order.
        regions: Vec<Region>,
    },
    /// A peer heard from no leader for long: ask the scheduler for its region and tell it.
    CheckStalePeer {
        /// The region.
        region_id: u64,
        /// The peer asking.
        peer_id: u64,
    },
}

/// What a leader tells the scheduler about its region.
#[derive(Debug, Clone)]
pub struct RegionHeartbeat {
    /// The region (epoch, peers, range).
    pub region: Region,
    /// The leader (this store's peer).
    pub leader: Peer,
    /// Peers far enough behind to need a snapshot (or not yet caught up after being added).
    pub pending_peers: Vec<Peer>,
    /// The leader's term.
    pub term: u64,
    /// Bytes written since the last heartbeat.
    pub written_bytes: u64,
    /// Keys written since the last heartbeat.
    pub written_keys: u64,
    /// Approximate size of the region's data, in bytes.
    pub approximate_size: u64,
    /// Approximate number of keys in the region.
    pub approximate_keys: u64,
}

impl fmt::Display for PdTask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PdTask::RegionHeartbeat(hb) => write!(
                f,
                "region heartbeat of region {} (leader {})",
                hb.region.id, hb.leader.id
            ),
            PdTask::StoreHeartbeat(s) => write!(f, "store heartbeat of store {}", s.store_id),
            PdTask::AskBatchSplit {
                region, split_keys, ..
            } => write!(
                f,
                "ask split of region {} at {} keys",
                region.id,
                split_keys.len()
            ),
            PdTask::ReportBatchSplit { regions } => {
                write!(f, "report split into {} regions", regions.len())
            }
            PdTask::CheckStalePeer { region_id, peer_id } => {
                write!(f, "stale check of peer {peer_id} of region {region_id}")
            }
        }
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs [`PdTask`]s against a [`PdClient`].
pub struct PdRunner<P> {
    pd: Arc<P>,
    router: Router,
    last_store_heartbeat: u64,
}

impl<P: PdClient> PdRunner<P> {
    /// A runner talking to `pd`, reaching the store's peers through `router`.
    pub fn new(pd: Arc<P>, router: Router) -> Self {
        PdRunner {
            pd,
            router,
            last_store_heartbeat: now_secs(),
        }
    }

    fn ask_batch_split(
        &self,
        region: Region,
        split_keys: Vec<Vec<u8>>,
        peer: Peer,
        callback: Callback,
    ) {
        let region_id = region.id;
        let ids = match self.pd.ask_batch_split(region.clone(), split_keys.len()) {
            Ok(ids) if ids.len() == split_keys.len() => ids,
            Ok(ids) => {
                return callback.fail(
                    Error::Pd(format!(
                        "asked for {} split ids, got {}",
                        split_keys.len(),
                        ids.len()
                    )),
                    0,
                )
            }
            Err(e) => {
                tracing::warn!(region_id, error = %e, "ask batch split failed");
                return callback.fail(e, 0);
            }
        };
        let requests = split_keys
            .into_iter()
            .zip(ids)
            .map(|(split_key, id)| SplitRequest {
                split_key,
                new_region_id: id.new_region_id,
                new_peer_ids: id.new_peer_ids,
                ..Default::default()
            })
            .collect();
        let req = RaftCmdRequest {
            header: Some(RaftRequestHeader {
                region_id,
                peer: Some(peer),
                region_epoch: region.region_epoch,
                ..Default::default()
            }),
            admin_request: Some(AdminRequest {
                cmd_type: AdminCmdType::BatchSplit as i32,
                splits: Some(BatchSplitRequest {
                    requests,
                    right_derive: false,
                    share_source_region_size: false,
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        // Undeliverable (the peer is gone): the callback is answered by the router.
        let _ = self.router.send_command(req, callback);
    }
}

impl<P: PdClient> Runnable for PdRunner<P> {
    type Task = PdTask;

    fn run(&mut self, task: PdTask) {
        match task {
            PdTask::RegionHeartbeat(hb) => {
                let region_id = hb.region.id;
                let req = RegionHeartbeatRequest {
                    region: Some(hb.region),
                    leader: Some(hb.leader),
                    pending_peers: hb.pending_peers,
                    bytes_written: hb.written_bytes,
                    keys_written: hb.written_keys,
                    approximate_size: hb.approximate_size,
                    approximate_keys: hb.approximate_keys,
                    term: hb.term,
                    ..Default::default()
                };
                if let Err(e) = self.pd.region_heartbeat(req) {
                    tracing::warn!(region_id, error = %e, "region heartbeat failed");
                }
            }
            PdTask::AskBatchSplit {
                region,
                split_keys,
                peer,
                callback,
            } => self.ask_batch_split(region, split_keys, peer, callback),
            PdTask::ReportBatchSplit { regions } => {
                let region_id = regions.first().map_or(0, |r| r.id);
                if let Err(e) = self.pd.report_batch_split(regions) {
                    tracing::warn!(region_id, error = %e, "report batch split failed");
                }
            }
            PdTask::CheckStalePeer { region_id, peer_id } => {
                match self.pd.get_region_by_id(region_id) {
                    Ok(region) => {
                        let msg = PeerMsg::StaleCheck {
                            peer_id,
                            region: region.map(|(r, _)| Box::new(r)),
                        };
                        let _ = self.router.send_peer(region_id, msg);
                    }
                    Err(e) => tracing::debug!(region_id, error = %e, "stale check failed"),
                }
            }
            PdTask::StoreHeartbeat(mut stats) => {
                let now = now_secs();
                stats.interval = Some(TimeInterval {
                    start_timestamp: self.last_store_heartbeat,
                    end_timestamp: now,
                });
                self.last_store_heartbeat = now;
                let store_id = stats.store_id;
                if let Err(e) = self.pd.store_heartbeat(*stats) {
                    tracing::warn!(store_id, error = %e, "store heartbeat failed");
                }
            }
        }
    }
}

/// Capacity and free space in bytes of the filesystem holding `path` (0, 0 if unknown).
pub fn disk_stats(path: &std::path::Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return (0, 0);
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` is a properly sized buffer
    // that statvfs fills on success; it is only read after a zero return.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return (0, 0);
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    // The field types vary by platform (32 or 64 bits); widening is lossless.
    #[allow(clippy::unnecessary_cast)]
    let (frsize, blocks, bavail) = (st.f_frsize as u64, st.f_blocks as u64, st.f_bavail as u64);
    (blocks.saturating_mul(frsize), bavail.saturating_mul(frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_stats_of_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (cap, avail) = disk_stats(dir.path());
        assert!(cap > 0 && avail <= cap);
        assert_eq!(disk_stats(std::path::Path::new("/no/such/dir")), (0, 0));
    }
}
