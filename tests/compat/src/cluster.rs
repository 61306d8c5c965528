//! [`CompatCluster`]: a real 3-store cluster (the playground's `ProcessCluster`), the clients that
//! drive it, and the topology changes the scenarios run under (splits, leader transfers, a
//! killed store).

use std::sync::{Arc, OnceLock};

use client::{PdClient, RegionWithLeader};
use tempfile::TempDir;
use tinykv_playground::{Binaries, ClusterConfig, ProcessCluster};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::config::HarnessConfig;
use crate::errors::{Error, Result};
use crate::keys::{Namespace, SEPARATOR};
use crate::wait::poll;

/// One cluster at a time per test process: three debug stores per test, several tests at
/// once, would overload a 2-core machine until elections time out. Tests in one binary
/// queue here instead of needing `--test-threads=1`.
fn cluster_slot() -> Arc<Mutex<()>> {
    static SLOT: OnceLock<Arc<Mutex<()>>> = OnceLock::new();
    SLOT.get_or_init(|| Arc::new(Mutex::new(()))).clone()
}

/// The server binaries, built once per process (a no-op when up to date) so a test never
/// runs stale servers.
async fn binaries() -> Result<Binaries> {
    static BINS: OnceLock<std::result::Result<Binaries, String>> = OnceLock::new();
    let built = tokio::task::spawn_blocking(|| {
        BINS.get_or_init(|| {
            Binaries::build_with_cargo(!cfg!(debug_assertions)).map_err(|e| e.to_string())
        })
        .clone()
    })
    .await
    .map_err(|e| Error::Config(format!("building the servers panicked: {e}")))?;
    built.map_err(|e| Error::Config(format!("cannot build the servers: {e}")))
}

/// A running cluster plus our own clients for reading writes back.
///
/// Fields drop in order: the processes stop first, then the data folder goes, then the next
/// test may start its cluster.
pub struct CompatCluster {
    cluster: ProcessCluster,
    config: HarnessConfig,
    raw: client::RawClient,
    txn: client::TransactionClient,
    dir: Option<TempDir>,
    _slot: OwnedMutexGuard<()>,
}

impl CompatCluster {
    /// Starts 1 scheduler and `config.stores` stores on loopback and waits until every region
    /// is led and replicated and a raw round trip works; the key space is one region.
    pub async fn start(config: HarnessConfig) -> Result<CompatCluster> {
        config.validate()?;
        let slot = cluster_slot().lock_owned().await;
        let binaries = binaries().await?;
        let dir = tempfile::Builder::new()
            .prefix("tinykv-compat-")
            .tempdir()
            .map_err(|e| Error::Io {
                path: std::env::temp_dir(),
                source: e,
            })?;
        let cluster = ProcessCluster::start(ClusterConfig {
            data_dir: dir.path().to_path_buf(),
            stores: config.stores,
            binaries: Some(binaries),
            ..ClusterConfig::new_test_config()
        })
        .await?;
        let dir = if config.keep_data {
            let kept = dir.keep();
            eprintln!(
                "tinykv-compat: cluster data and logs kept in {}",
                kept.display()
            );
            None
        } else {
            Some(dir)
        };
        let our = client::Config {
            timeout: config.client_timeout,
            ..client::Config::default()
        };
        let raw = client::RawClient::new_with_config(cluster.pd_endpoints(), our.clone()).await?;
        let txn = client::TransactionClient::new_with_config(cluster.pd_endpoints(), our).await?;
        Ok(CompatCluster {
            cluster,
            config,
            raw,
            txn,
            dir,
            _slot: slot,
        })
    }

    /// The scheduler's endpoint list, as every client takes it.
    pub fn pd_endpoints(&self) -> Vec<String> {
        self.cluster.pd_endpoints()
    }

    /// The harness settings.
    pub fn config(&self) -> &HarnessConfig {
        &self.config
    }

    /// The process cluster (endpoints, logs, PIDs, stopping and restarting stores).
    pub fn processes(&mut self) -> &mut ProcessCluster {
        &mut self.cluster
    }

    /// Our raw client: the second read path for raw writes.
    pub fn raw(&self) -> &client::RawClient {
        &self.raw
    }

    /// Our transactional client: the second read path for transactional writes.
    pub fn txn(&self) -> &client::TransactionClient {
        &self.txn
    }

    /// Our PD client (regions, leaders, stores, timestamps).
    pub fn pd(&self) -> &Arc<PdClient> {
        self.raw.pd()
    }

    fn tikv_config(&self) -> tikv_client::Config {
        tikv_client::Config::default().with_timeout(self.config.client_timeout)
    }

    /// A new raw client of TiKV's Rust crate (API v1).
    pub async fn tikv_raw(&self) -> Result<tikv_client::RawClient> {
        tikv_client::RawClient::new_with_config(self.pd_endpoints(), self.tikv_config())
            .await
            .map_err(Error::tikv("RawClient::new_with_config"))
    }

    /// A new transactional client of TiKV's Rust crate.
    pub async fn tikv_txn(&self) -> Result<tikv_client::TransactionClient> {
        tikv_client::TransactionClient::new_with_config(self.pd_endpoints(), self.tikv_config())
            .await
            .map_err(Error::tikv("TransactionClient::new_with_config"))
    }

    /// Waits for a condition with the configured deadline.
    pub async fn poll<T, F, Fut>(&self, what: &str, check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, String>>,
    {
        poll(what, self.config.wait_timeout, check).await
    }

    // ---- Regions ------------------------------------------------------------------------------

    /// Every region in key order, with its leader as PD knows it.
    pub async fn regions(&self) -> Result<Vec<RegionWithLeader>> {
        Ok(self.pd().scan_regions(b"", b"", 0).await?)
    }

    /// The region holding `key` as PD indexes it (raw bytes, or an encoded transactional key).
    pub async fn region_at(&self, pd_key: &[u8]) -> Result<RegionWithLeader> {
        Ok(self.pd().get_region(pd_key).await?)
    }

    /// How many regions hold the keys of `ns` (in PD's key space for its API).
    pub async fn regions_of(&self, ns: &Namespace) -> Result<usize> {
        let range = ns.range();
        let (start, end) = crate::rpc::pd_range(ns.api(), &range.start, &range.end);
        Ok(self.pd().scan_regions(&start, &end, 0).await?.len())
    }

    /// Splits the key space so every namespace in `namespaces` spans two regions (at
    /// [`Namespace::mid`]) and raw and transactional keys never share a region; waits until
    /// PD shows every new region with a leader.
    pub async fn split_namespaces(&self, namespaces: &[Namespace]) -> Result<()> {
        crate::rpc::split(self, crate::keys::Api::Txn, SEPARATOR.as_bytes()).await?;
        for ns in namespaces {
            crate::rpc::split(self, ns.api(), &ns.mid()).await?;
        }
        Ok(())
    }

    /// Splits the region holding `key` at `key` (a raw key or a transactional user key), waits
    /// until PD shows the new region led.
    pub async fn split_at(&self, api: crate::keys::Api, key: &[u8]) -> Result<()> {
        crate::rpc::split(self, api, key).await
    }

    // ---- Leaders ------------------------------------------------------------------------------

    /// Moves the leadership of region `region_id` away from its current store (the scheduler's
    /// `transfer-leader` operator, to the first follower) and waits until PD reports a leader
    /// elsewhere. Returns the store that leads now.
    pub async fn transfer_leader(&self, region_id: u64) -> Result<u64> {
        let region = self.pd().get_region_by_id(region_id).await?;
        let from = region
            .leader
            .as_ref()
            .map(|l| l.store_id)
            .ok_or_else(|| Error::Rpc {
                rpc: "GetRegionByID",
                message: format!("region {region_id} has no leader to move"),
            })?;
        let to = region
            .region
            .peers
            .iter()
            .map(|p| p.store_id)
            .find(|s| *s != from)
            .ok_or_else(|| Error::Rpc {
                rpc: "GetRegionByID",
                message: format!("region {region_id} has no follower to lead"),
            })?;
        let url = format!("{}/pd/api/v1/operators", self.cluster.pd_url());
        let what = format!("region {region_id} led by another store than {from}");
        self.poll(&what, || {
            let url = url.clone();
            async move {
                let now = self
                    .pd()
                    .get_region_by_id(region_id)
                    .await
                    .map_err(|e| format!("GetRegionByID: {e}"))?;
                // Another new leader (balance-leader may move it too) serves as well.
                if let Some(s) = now.leader.map(|l| l.store_id).filter(|s| *s != from) {
                    return Ok(s);
                }
                // A refusal (an operator already running) is retried like a slow transfer.
                match crate::rpc::post_transfer_leader(&url, region_id, to).await {
                    Ok(()) => Err(format!("operator to store {to} added; waiting for it")),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await
    }

    /// The store leading the most regions, by PD.
    pub async fn busiest_leader_store(&self) -> Result<u64> {
        let mut led = std::collections::BTreeMap::<u64, usize>::new();
        for r in self.regions().await? {
            if let Some(l) = r.leader {
                *led.entry(l.store_id).or_default() += 1;
            }
        }
        led.into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(s, _)| s)
            .ok_or_else(|| Error::Rpc {
                rpc: "ScanRegions",
                message: "no region has a leader".into(),
            })
    }

    /// SIGKILLs the store with id `store_id` (a crash) and waits until every region has a leader
    /// on another store. Returns the store's index for [`CompatCluster::restart_store`].
    pub async fn kill_store(&mut self, store_id: u64) -> Result<usize> {
        let index = self
            .cluster
            .store_index(store_id)
            .ok_or_else(|| Error::Config(format!("store {store_id} is not in this cluster")))?;
        self.cluster.kill_store(index)?;
        let this = &*self;
        this.poll(
            &format!("every region led by a store other than the killed {store_id}"),
            || async move {
                let regions = this
                    .regions()
                    .await
                    .map_err(|e| format!("ScanRegions: {e}"))?;
                match regions.iter().find_map(|r| match &r.leader {
                    None => Some(format!("region {} has no leader", r.region.id)),
                    Some(l) if l.store_id == store_id => {
                        Some(format!("region {} still led by {store_id}", r.region.id))
                    }
                    Some(_) => None,
                }) {
                    Some(missing) => Err(missing),
                    None => Ok(()),
                }
            },
        )
        .await?;
        Ok(index)
    }

    /// Restarts store `index` on its data and waits until the cluster is ready again (every
    /// region led and replicated).
    pub async fn restart_store(&mut self, index: usize) -> Result<()> {
        self.cluster.restart_store(index).await?;
        self.cluster.wait_ready().await?;
        Ok(())
    }

    /// Stops the processes cleanly (an unclean exit is an error quoting the store's log).
    pub async fn stop(self) -> Result<()> {
        let CompatCluster {
            cluster,
            dir,
            _slot,
            ..
        } = self;
        cluster.stop().await?;
        drop(dir);
        Ok(())
    }
}
