//! The PD (scheduler) client: leader following, timestamps, region and store lookups.
//!
//! Region lookups here are verbatim: the key is sent to PD as given and the bounds come back as
//! PD stores them. Key-space translation (memcomparable encoding in transactional mode) belongs
//! to the region cache. Stores are cached because every store request needs its leader's
//! address; a transport failure invalidates the entry so a moved store is looked up again.

mod conn;
mod tso;

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use proto::{metapb, pdpb};
use tracing::debug;

use self::conn::PdConnection;
use self::tso::TsoClient;
use crate::config::Config;
use crate::errors::{Error, Result};
use crate::timestamp::Timestamp;

/// A region as PD reports it, with its leader if PD knows one.
#[derive(Debug, Clone, PartialEq)]
pub struct RegionWithLeader {
    /// Region metadata; bounds exactly as PD stores them.
    pub region: metapb::Region,
    /// The leader peer, when PD knows it.
    pub leader: Option<metapb::Peer>,
}

/// A client of PD's `pdpb.PD` service. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct PdClient {
    conn: Arc<PdConnection>,
    tso: TsoClient,
    stores: RwLock<HashMap<u64, metapb::Store>>,
    config: Config,
}

impl PdClient {
    /// Connects through any of `endpoints` (`host:port` or `http://host:port`): asks for the
    /// members, then talks to the leader from then on.
    pub async fn connect(endpoints: &[String], config: Config) -> Result<PdClient> {
        config.validate()?;
        let conn = Arc::new(PdConnection::connect(endpoints, &config).await?);
        let tso = TsoClient::spawn(conn.clone(), &config);
        Ok(PdClient {
            conn,
            tso,
            stores: RwLock::new(HashMap::new()),
            config,
        })
    }

    /// The cluster id every response must carry.
    pub fn cluster_id(&self) -> u64 {
        self.conn.cluster_id()
    }

    /// The URL of the PD leader currently in use.
    pub fn leader_url(&self) -> String {
        self.conn.leader().url
    }

    /// The member list as the current leader reports it.
    pub async fn get_members(&self) -> Result<pdpb::GetMembersResponse> {
        self.conn
            .call(
                "GetMembers",
                pdpb::GetMembersRequest::default(),
                |mut c, r| async move { c.get_members(r).await },
            )
            .await
    }

    /// A fresh timestamp from the shared TSO stream, retried under the PD backoff when the
    /// stream breaks (a PD leader change, for instance).
    pub async fn get_timestamp(&self) -> Result<Timestamp> {
        let mut backoff = self.config.pd_backoff.start();
        loop {
            let err =
                match tokio::time::timeout(self.config.timeout, self.tso.get_timestamp()).await {
                    Ok(Ok(ts)) => return Ok(ts),
                    Ok(Err(e)) => e,
                    Err(_) => Error::Timeout {
                        rpc: "Tso",
                        addr: self.leader_url(),
                        after: self.config.timeout,
                    },
                };
            debug!(error = %err, "get timestamp failed");
            match backoff.next_delay() {
                Some(d) => tokio::time::sleep(d).await,
                None => return Err(err),
            }
        }
    }

    /// The region containing `key`, with the key exactly as PD indexes regions.
    pub async fn get_region(&self, key: &[u8]) -> Result<RegionWithLeader> {
        let req = pdpb::GetRegionRequest {
            region_key: key.to_vec(),
            ..Default::default()
        };
        let resp = self
            .conn
            .call(
                "GetRegion",
                req,
                |mut c, r| async move { c.get_region(r).await },
            )
            .await
            .map_err(|e| not_found_as(e, || Error::RegionNotFound { key: key.to_vec() }))?;
        region_from_response("GetRegion", resp)?
            .ok_or_else(|| Error::RegionNotFound { key: key.to_vec() })
    }

    /// The region with this id.
    pub async fn get_region_by_id(&self, region_id: u64) -> Result<RegionWithLeader> {
        let req = pdpb::GetRegionByIdRequest {
            region_id,
            ..Default::default()
        };
        let resp = self
            .conn
            .call("GetRegionByID", req, |mut c, r| async move {
                c.get_region_by_id(r).await
            })
            .await
            .map_err(|e| not_found_as(e, || Error::RegionIdNotFound(region_id)))?;
        region_from_response("GetRegionByID", resp)?.ok_or(Error::RegionIdNotFound(region_id))
    }

    /// Up to `limit` regions (`<= 0`: no limit) intersecting `[start, end)`, in key order;
    /// an empty `end` means the end of the key space.
    pub async fn scan_regions(
        &self,
        start: &[u8],
        end: &[u8],
        limit: i32,
    ) -> Result<Vec<RegionWithLeader>> {
        let req = pdpb::ScanRegionsRequest {
            header: None,
            start_key: start.to_vec(),
            end_key: end.to_vec(),
            limit,
        };
        let resp = self
            .conn
            .call("ScanRegions", req, |mut c, r| async move {
                c.scan_regions(r).await
            })
            .await?;
        let regions = if !resp.regions.is_empty() {
            resp.regions
                .into_iter()
                .filter_map(|r| {
                    r.region.map(|region| RegionWithLeader {
                        region,
                        leader: r.leader,
                    })
                })
                .collect::<Vec<_>>()
        } else {
            // The legacy layout: parallel arrays.
            let mut leaders = resp.leaders.into_iter();
            resp.region_metas
                .into_iter()
                .map(|region| RegionWithLeader {
                    region,
                    leader: leaders.next().filter(|l| l.id != 0),
                })
                .collect()
        };
        for r in &regions {
            check_region("ScanRegions", &r.region)?;
        }
        Ok(regions)
    }

    /// The store with this id, from the cache or PD.
    pub async fn get_store(&self, store_id: u64) -> Result<metapb::Store> {
        if let Some(s) = self.stores.read().get(&store_id) {
            return Ok(s.clone());
        }
        let req = pdpb::GetStoreRequest {
            header: None,
            store_id,
        };
        let resp = self
            .conn
            .call(
                "GetStore",
                req,
                |mut c, r| async move { c.get_store(r).await },
            )
            .await
            .map_err(|e| not_found_as(e, || Error::StoreNotFound(store_id)))?;
        let store = resp
            .store
            .filter(|s| s.state != metapb::StoreState::Tombstone as i32)
            .ok_or(Error::StoreNotFound(store_id))?;
        if store.address.is_empty() {
            return Err(Error::invalid_response(
                "GetStore",
                format!("store {store_id} has no address"),
            ));
        }
        self.stores.write().insert(store_id, store.clone());
        Ok(store)
    }

    /// Forgets a cached store (after a transport failure or StoreNotMatch).
    pub fn invalidate_store(&self, store_id: u64) {
        self.stores.write().remove(&store_id);
    }

    /// Every store that is not a tombstone.
    pub async fn get_all_stores(&self) -> Result<Vec<metapb::Store>> {
        let req = pdpb::GetAllStoresRequest {
            header: None,
            exclude_tombstone_stores: true,
        };
        let resp = self
            .conn
            .call("GetAllStores", req, |mut c, r| async move {
                c.get_all_stores(r).await
            })
            .await?;
        Ok(resp
            .stores
            .into_iter()
            .filter(|s| s.state != metapb::StoreState::Tombstone as i32)
            .collect())
    }
}

/// PD reports a missing object either as an absent field or as a REGION_NOT_FOUND /
/// ENTRY_NOT_FOUND header error; both become the caller's typed not-found error.
fn not_found_as(e: Error, not_found: impl FnOnce() -> Error) -> Error {
    match e {
        Error::Pd {
            kind: pdpb::ErrorType::RegionNotFound | pdpb::ErrorType::EntryNotFound,
            ..
        } => not_found(),
        e => e,
    }
}

fn region_from_response(
    rpc: &'static str,
    resp: pdpb::GetRegionResponse,
) -> Result<Option<RegionWithLeader>> {
    let Some(region) = resp.region else {
        return Ok(None);
    };
    check_region(rpc, &region)?;
    Ok(Some(RegionWithLeader {
        region,
        // Some servers send an empty peer instead of none.
        leader: resp.leader.filter(|l| l.id != 0),
    }))
}

fn check_region(rpc: &'static str, region: &metapb::Region) -> Result<()> {
    if region.region_epoch.is_none() {
        return Err(Error::invalid_response(
            rpc,
            format!("region {} has no epoch", region.id),
        ));
    }
    if !region.end_key.is_empty() && region.start_key >= region.end_key {
        return Err(Error::invalid_response(
            rpc,
            format!("region {} has an empty key range", region.id),
        ));
    }
    Ok(())
}
