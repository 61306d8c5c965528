//! Store id → network address, through the scheduler, cached.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use proto::metapb::StoreState;

use crate::errors::{Error, Result};
use crate::pd_client::PdClient;

/// Finds where a store listens. Implementations may block (they are called on a blocking
/// thread, never on a runtime worker).
pub trait StoreResolver: Send + Sync + 'static {
    /// The gRPC address of `store_id` (`host:port`, or a URL with a scheme).
    fn resolve(&self, store_id: u64) -> Result<String>;

    /// Forgets what is known about `store_id`: the connection to it failed, so it may have
    /// moved. The next [`StoreResolver::resolve`] asks again.
    fn invalidate(&self, store_id: u64);
}

/// Resolves through [`PdClient::get_store`], caching each answer until a connection to that
/// store fails. Stores the scheduler reports as tombstones are refused.
pub struct PdStoreResolver {
    pd: Arc<dyn PdClient>,
    cache: Mutex<HashMap<u64, String>>,
}

impl PdStoreResolver {
    /// A resolver asking `pd`.
    pub fn new(pd: Arc<dyn PdClient>) -> PdStoreResolver {
        PdStoreResolver {
            pd,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl StoreResolver for PdStoreResolver {
    fn resolve(&self, store_id: u64) -> Result<String> {
        if let Some(addr) = self.cache.lock().get(&store_id) {
            return Ok(addr.clone());
        }
        let store = self.pd.get_store(store_id)?;
        if store.state == StoreState::Tombstone as i32 {
            return Err(Error::Transport(format!("store {store_id} is a tombstone")));
        }
        // TiKV's convention: a separate address for store-to-store traffic, if configured.
        let addr = if store.peer_address.is_empty() {
            store.address
        } else {
            store.peer_address
        };
        if addr.is_empty() {
            return Err(Error::Transport(format!(
                "store {store_id} has no address registered"
            )));
        }
        tracing::debug!(store_id, %addr, "resolved store address");
        self.cache.lock().insert(store_id, addr.clone());
        Ok(addr)
    }

    fn invalidate(&self, store_id: u64) {
        self.cache.lock().remove(&store_id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use proto::metapb::{Region, Store};
    use proto::pdpb::{RegionHeartbeatRequest, SplitId, StoreStats};

    use super::*;
    use crate::pd_client::HeartbeatResponseHandler;

    /// Answers `get_store` from a map and counts the calls; nothing else is used here.
    #[derive(Default)]
    struct Stores {
        stores: Mutex<HashMap<u64, Store>>,
        lookups: AtomicUsize,
    }

    fn unused<T>() -> Result<T> {
        Err(Error::Other("not used by the resolver".into()))
    }

    impl PdClient for Stores {
        fn cluster_id(&self) -> u64 {
            1
        }
        fn is_cluster_bootstrapped(&self) -> Result<bool> {
            unused()
        }
        fn bootstrap_cluster(&self, _: Store, _: Region) -> Result<()> {
            unused()
        }
        fn alloc_id(&self) -> Result<u64> {
            unused()
        }
        fn put_store(&self, _: Store) -> Result<()> {
            unused()
        }
        fn get_store(&self, store_id: u64) -> Result<Store> {
            self.lookups.fetch_add(1, Ordering::SeqCst);
            self.stores
                .lock()
                .get(&store_id)
                .cloned()
                .ok_or_else(|| Error::Pd(format!("store {store_id} not found")))
        }
        fn get_region(&self, _: &[u8]) -> Result<Region> {
            unused()
        }
        fn get_region_by_id(
            &self,
            _: u64,
        ) -> Result<Option<(Region, Option<proto::metapb::Peer>)>> {
            unused()
        }
        fn region_heartbeat(&self, _: RegionHeartbeatRequest) -> Result<()> {
            unused()
        }
        fn set_heartbeat_response_handler(&self, _: HeartbeatResponseHandler) {}
        fn store_heartbeat(&self, _: StoreStats) -> Result<()> {
            unused()
        }
        fn ask_batch_split(&self, _: Region, _: usize) -> Result<Vec<SplitId>> {
            unused()
        }
        fn report_batch_split(&self, _: Vec<Region>) -> Result<()> {
            unused()
        }
    }

    fn store(id: u64, address: &str, peer_address: &str, state: StoreState) -> Store {
        Store {
            id,
            address: address.into(),
            peer_address: peer_address.into(),
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn caches_until_invalidated_and_prefers_peer_address() {
        let pd = Arc::new(Stores::default());
        pd.stores
            .lock()
            .insert(1, store(1, "a:1", "", StoreState::Up));
        pd.stores
            .lock()
            .insert(2, store(2, "b:1", "b:2", StoreState::Up));
        let r = PdStoreResolver::new(pd.clone());

        assert_eq!(r.resolve(1).unwrap(), "a:1");
        assert_eq!(r.resolve(1).unwrap(), "a:1");
        assert_eq!(
            pd.lookups.load(Ordering::SeqCst),
            1,
            "second lookup is cached"
        );
        assert_eq!(r.resolve(2).unwrap(), "b:2");

        pd.stores
            .lock()
            .insert(1, store(1, "a:9", "", StoreState::Up));
        assert_eq!(r.resolve(1).unwrap(), "a:1", "stale until invalidated");
        r.invalidate(1);
        assert_eq!(r.resolve(1).unwrap(), "a:9");
    }

    #[test]
    fn refuses_tombstones_unknown_and_addressless_stores() {
        let pd = Arc::new(Stores::default());
        pd.stores
            .lock()
            .insert(1, store(1, "a:1", "", StoreState::Tombstone));
        pd.stores.lock().insert(2, store(2, "", "", StoreState::Up));
        let r = PdStoreResolver::new(pd);
        assert!(r.resolve(1).unwrap_err().to_string().contains("tombstone"));
        assert!(r.resolve(2).unwrap_err().to_string().contains("no address"));
        assert!(matches!(r.resolve(3), Err(Error::Pd(_))));
    }
}
