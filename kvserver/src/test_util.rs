//! Test fixture: one store node on real engines, bootstrapped by an in-memory one-store
//! scheduler, with no network. Enough to drive `RaftStorage` and the split RPC end to end
//! without processes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proto::metapb::{Peer, Region, Store};
use proto::pdpb::{RegionHeartbeatRequest, SplitId, StoreStats};
use raft_core::config::EngineConfig;
use raft_core::engine::Engines;
use raft_core::snap::SnapManager;
use raftstore::pd_client::{HeartbeatResponseHandler, PdClient};
use raftstore::transport::Transport;
use raftstore::{Node, RaftstoreConfig, Router};

/// The scheduler of a one-store cluster: ids, bootstrap and split ids; nothing else is asked.
#[derive(Default)]
struct OneStorePd {
    next_id: AtomicU64,
    bootstrapped: AtomicBool,
}

impl PdClient for OneStorePd {
    fn cluster_id(&self) -> u64 {
        1
    }
    fn is_cluster_bootstrapped(&self) -> raftstore::Result<bool> {
        Ok(self.bootstrapped.load(Ordering::SeqCst))
    }
    fn bootstrap_cluster(&self, _: Store, _: Region) -> raftstore::Result<()> {
        self.bootstrapped.store(true, Ordering::SeqCst);
        Ok(())
    }
    fn alloc_id(&self) -> raftstore::Result<u64> {
        Ok(self.next_id.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn put_store(&self, _: Store) -> raftstore::Result<()> {
        Ok(())
    }
    fn get_store(&self, _: u64) -> raftstore::Result<Store> {
        Err(raftstore::Error::Pd("unused".into()))
    }
    fn get_region(&self, _: &[u8]) -> raftstore::Result<Region> {
        Err(raftstore::Error::Pd("unused".into()))
    }
    fn get_region_by_id(&self, _: u64) -> raftstore::Result<Option<(Region, Option<Peer>)>> {
        Ok(None)
    }
    fn region_heartbeat(&self, _: RegionHeartbeatRequest) -> raftstore::Result<()> {
        Ok(())
    }
    fn set_heartbeat_response_handler(&self, _: HeartbeatResponseHandler) {}
    fn store_heartbeat(&self, _: StoreStats) -> raftstore::Result<()> {
        Ok(())
    }
    fn ask_batch_split(&self, region: Region, count: usize) -> raftstore::Result<Vec<SplitId>> {
        (0..count)
            .map(|_| {
                Ok(SplitId {
                    new_region_id: self.alloc_id()?,
                    new_peer_ids: region
                        .peers
                        .iter()
                        .map(|_| self.alloc_id())
                        .collect::<raftstore::Result<_>>()?,
                })
            })
            .collect()
    }
    fn report_batch_split(&self, _: Vec<Region>) -> raftstore::Result<()> {
        Ok(())
    }
}

/// A store alone: nothing to send to.
#[derive(Clone)]
struct NoNetwork;

impl Transport for NoNetwork {
    fn send(&mut self, _: proto::raft_serverpb::RaftMessage) -> raftstore::Result<()> {
        Ok(())
    }
    fn flush(&mut self) {}
}

/// A started single-store node in `dir`, its router, and its first region once its peer leads.
/// Stop it with `spawn_blocking(move || node.stop())` from async tests.
pub async fn single_store_node(dir: &Path) -> (Node, Router, Region) {
    let engines = Engines::open(dir, &EngineConfig::new_test_config()).unwrap();
    let snap_mgr = SnapManager::new(dir.join("snap")).unwrap();
    let cfg = RaftstoreConfig::new_test_config();
    let (router, system) = raftstore::create_system(&cfg);
    let node = Node::start(
        system,
        router.clone(),
        cfg,
        Store::default(),
        engines,
        snap_mgr,
        NoNetwork,
        Arc::new(OneStorePd::default()),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let region = loop {
        if let Some(r) = node.status().regions.first().filter(|r| r.is_leader) {
            break r.region.clone();
        }
        assert!(Instant::now() < deadline, "no leader");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    (node, router, region)
}
