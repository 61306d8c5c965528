//! Readiness probes: what "the scheduler answers", "a store is up" and "the cluster serves"
//! mean, asked of the scheduler over `pdpb.PD` and of the stores through the real client.
//!
//! Every probe answers `Ok(())` when its condition holds and `Err(reason)` with what is still
//! missing otherwise; the waiting loop in `cluster.rs` retries until a deadline and reports the
//! last reason. Transport errors are reasons too: a process that is still starting refuses
//! connections.

use std::time::Duration;

use proto::pdpb::pd_client::PdClient as PdRpc;
use proto::{metapb, pdpb};
use tonic::transport::{Channel, Endpoint};

/// Per-RPC deadline of a probe: short, so a hung process cannot stall the waiting loop.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// The key the data-path probe writes, reads back and deletes.
const PROBE_KEY: &[u8] = b"tinykv-playground/ready-probe";

/// A probe result: `Err` says what is still missing.
pub(crate) type Probe<T = ()> = std::result::Result<T, String>;

/// A `pdpb.PD` connection to one scheduler.
pub(crate) struct PdProbe {
    rpc: PdRpc<Channel>,
    header: pdpb::RequestHeader,
}

/// What the probes need to know about one store process.
pub(crate) struct StoreTarget {
    /// Index in the cluster, for messages.
    pub index: usize,
    /// The address it registers with.
    pub addr: String,
    /// When the current process started (Unix seconds): a heartbeat must be at least as new.
    pub started_secs: u64,
}

fn header_error(header: Option<&pdpb::ResponseHeader>) -> Probe {
    match header.and_then(|h| h.error.as_ref()) {
        Some(e) if e.r#type != pdpb::ErrorType::Ok as i32 => Err(format!(
            "scheduler answered {:?}: {}",
            pdpb::ErrorType::try_from(e.r#type).unwrap_or(pdpb::ErrorType::Unknown),
            e.message
        )),
        _ => Ok(()),
    }
}

impl PdProbe {
    /// Connects to `url` and learns the cluster id (`GetMembers`).
    pub async fn connect(url: &str) -> Probe<PdProbe> {
        let channel = Endpoint::from_shared(url.to_string())
            .map_err(|e| format!("bad scheduler url {url}: {e}"))?
            .connect_timeout(PROBE_TIMEOUT)
            .timeout(PROBE_TIMEOUT)
            .connect()
            .await
            .map_err(|e| format!("scheduler at {url} not reachable: {e}"))?;
        let mut rpc = PdRpc::new(channel);
        let members = rpc
            .get_members(pdpb::GetMembersRequest::default())
            .await
            .map_err(|e| format!("scheduler GetMembers failed: {}", e.message()))?
            .into_inner();
        header_error(members.header.as_ref())?;
        let cluster_id = members.header.map_or(0, |h| h.cluster_id);
        Ok(PdProbe {
            rpc,
            header: pdpb::RequestHeader {
                cluster_id,
                ..Default::default()
            },
        })
    }

    fn header(&self) -> Option<pdpb::RequestHeader> {
        Some(self.header)
    }

    /// Registered stores that are not tombstones.
    pub async fn stores(&mut self) -> Probe<Vec<metapb::Store>> {
        let req = pdpb::GetAllStoresRequest {
            header: self.header(),
            exclude_tombstone_stores: true,
        };
        let resp = self
            .rpc
            .get_all_stores(req)
            .await
            .map_err(|e| format!("GetAllStores failed: {}", e.message()))?
            .into_inner();
        header_error(resp.header.as_ref())?;
        Ok(resp.stores)
    }

    /// The statistics of the store's last heartbeat.
    pub async fn store_stats(&mut self, store_id: u64) -> Probe<pdpb::StoreStats> {
        let req = pdpb::GetStoreRequest {
            header: self.header(),
            store_id,
        };
        let resp = self
            .rpc
            .get_store(req)
            .await
            .map_err(|e| format!("GetStore({store_id}) failed: {}", e.message()))?
            .into_inner();
        header_error(resp.header.as_ref())?;
        Ok(resp.stats.unwrap_or_default())
    }

    /// Replicas per region the scheduler aims for.
    pub async fn max_replicas(&mut self) -> Probe<usize> {
        let req = pdpb::GetClusterConfigRequest {
            header: self.header(),
        };
        let resp = self
            .rpc
            .get_cluster_config(req)
            .await
            .map_err(|e| format!("GetClusterConfig failed: {}", e.message()))?
            .into_inner();
        header_error(resp.header.as_ref())?;
        resp.cluster
            .map(|c| c.max_peer_count as usize)
            .ok_or_else(|| "GetClusterConfig answered no cluster".to_string())
    }

    /// Every region the scheduler knows, in key order.
    pub async fn regions(&mut self) -> Probe<Vec<pdpb::Region>> {
        let req = pdpb::ScanRegionsRequest {
            header: self.header(),
            start_key: Vec::new(),
            end_key: Vec::new(),
            limit: 0,
        };
        let resp = self
            .rpc
            .scan_regions(req)
            .await
            .map_err(|e| format!("ScanRegions failed: {}", e.message()))?
            .into_inner();
        header_error(resp.header.as_ref())?;
        Ok(resp.regions)
    }

    /// The store is registered at its address, Up, and has sent a heartbeat since its current
    /// process started. Returns its store id.
    pub async fn store_up(&mut self, target: &StoreTarget) -> Probe<u64> {
        let stores = self.stores().await?;
        let who = format!("store {} ({})", target.index, target.addr);
        let store = stores
            .iter()
            .find(|s| s.address == target.addr)
            .ok_or_else(|| format!("{who} has not registered with the scheduler"))?;
        if store.state != metapb::StoreState::Up as i32 {
            return Err(format!(
                "{who} is {:?}, not Up",
                metapb::StoreState::try_from(store.state).unwrap_or(metapb::StoreState::Up)
            ));
        }
        let stats = self.store_stats(store.id).await?;
        // start_time is the store's own clock in whole seconds; ours was read before the
        // spawn, so a heartbeat from the current process always has start_time >= started.
        if u64::from(stats.start_time) < target.started_secs {
            return Err(format!(
                "{who} (id {}) has not sent a heartbeat since it started",
                store.id
            ));
        }
        Ok(store.id)
    }

    /// Every region has a leader and, when `replicas` is given, at least that many peers and
    /// no pending (lagging) peer.
    pub async fn regions_ready(&mut self, replicas: Option<usize>) -> Probe {
        let regions = self.regions().await?;
        if regions.is_empty() {
            return Err("no region reported to the scheduler yet".into());
        }
        for r in &regions {
            let Some(region) = &r.region else {
                return Err("ScanRegions answered an entry without a region".into());
            };
            if r.leader.as_ref().is_none_or(|l| l.id == 0) {
                return Err(format!("region {} has no leader", region.id));
            }
            if let Some(want) = replicas {
                if region.peers.len() < want {
                    return Err(format!(
                        "region {} has {} of {want} replicas",
                        region.id,
                        region.peers.len()
                    ));
                }
                if !r.pending_peers.is_empty() {
                    return Err(format!(
                        "region {} has {} pending peer(s)",
                        region.id,
                        r.pending_peers.len()
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The data path works end to end: a raw put, a get returning it, and a delete, through the
/// real client (PD lookup, region cache, store leader).
pub(crate) async fn raw_round_trip(pd: &str) -> Probe {
    let config = client::Config {
        timeout: PROBE_TIMEOUT,
        connect_timeout: PROBE_TIMEOUT,
        ..client::Config::default()
    };
    let raw = client::RawClient::new_with_config(vec![pd.to_string()], config)
        .await
        .map_err(|e| format!("client cannot connect: {e}"))?;
    let value = std::process::id().to_string().into_bytes();
    raw.put(PROBE_KEY, value.clone())
        .await
        .map_err(|e| format!("probe write failed: {e}"))?;
    let got = raw
        .get(PROBE_KEY)
        .await
        .map_err(|e| format!("probe read failed: {e}"))?;
    if got.as_deref() != Some(value.as_slice()) {
        return Err(format!(
            "probe read returned {got:?}, not the value written"
        ));
    }
    raw.delete(PROBE_KEY)
        .await
        .map_err(|e| format!("probe delete failed: {e}"))
}
