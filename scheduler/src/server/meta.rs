//! Unary RPCs about the cluster itself: members, ids, bootstrap, stores, config, GC safe point.

use proto::pdpb::*;

use super::PdService;
use crate::errors::{Error, Result};

pub fn get_members(svc: &PdService, _req: GetMembersRequest) -> Result<GetMembersResponse> {
    let me = Member {
        name: svc.member.name.clone(),
        member_id: svc.cluster.member_id(),
        peer_urls: vec![svc.member.client_url.clone()],
        client_urls: vec![svc.member.client_url.clone()],
        ..Default::default()
    };
    Ok(GetMembersResponse {
        header: None,
        members: vec![me.clone()],
        leader: Some(me.clone()),
        etcd_leader: Some(me),
    })
}

pub fn bootstrap(svc: &PdService, req: BootstrapRequest) -> Result<BootstrapResponse> {
    let store = req
        .store
        .ok_or_else(|| Error::InvalidRequest("missing store".into()))?;
    let region = req
        .region
        .ok_or_else(|| Error::InvalidRequest("missing region".into()))?;
    svc.cluster.bootstrap(store, region)?;
    Ok(BootstrapResponse::default())
}

pub fn is_bootstrapped(
    svc: &PdService,
    _req: IsBootstrappedRequest,
) -> Result<IsBootstrappedResponse> {
    Ok(IsBootstrappedResponse {
        header: None,
        bootstrapped: svc.cluster.is_bootstrapped(),
    })
}

pub fn alloc_id(svc: &PdService, _req: AllocIdRequest) -> Result<AllocIdResponse> {
    Ok(AllocIdResponse {
        header: None,
        id: svc.cluster.ids().alloc()?,
    })
}

pub fn get_store(svc: &PdService, req: GetStoreRequest) -> Result<GetStoreResponse> {
    let store = svc.cluster.get_store(req.store_id)?;
    Ok(GetStoreResponse {
        header: None,
        store: Some(store.meta),
        stats: Some(store.stats),
    })
}

pub fn put_store(svc: &PdService, req: PutStoreRequest) -> Result<PutStoreResponse> {
    let store = req
        .store
        .ok_or_else(|| Error::InvalidRequest("missing store".into()))?;
    svc.cluster.put_store(store)?;
    Ok(PutStoreResponse::default())
}

pub fn get_all_stores(svc: &PdService, req: GetAllStoresRequest) -> Result<GetAllStoresResponse> {
    Ok(GetAllStoresResponse {
        header: None,
        stores: svc.cluster.get_stores(req.exclude_tombstone_stores)?,
    })
}

pub fn store_heartbeat(
    svc: &PdService,
    req: StoreHeartbeatRequest,
) -> Result<StoreHeartbeatResponse> {
    let stats = req
        .stats
        .ok_or_else(|| Error::InvalidRequest("missing stats".into()))?;
    svc.cluster.store_heartbeat(stats)?;
    Ok(StoreHeartbeatResponse::default())
}

pub fn get_cluster_config(
    svc: &PdService,
    _req: GetClusterConfigRequest,
) -> Result<GetClusterConfigResponse> {
    Ok(GetClusterConfigResponse {
        header: None,
        cluster: Some(svc.cluster.cluster_meta()?),
    })
}

pub fn get_gc_safe_point(
    svc: &PdService,
    _req: GetGcSafePointRequest,
) -> Result<GetGcSafePointResponse> {
    Ok(GetGcSafePointResponse {
        header: None,
        safe_point: svc.cluster.gc_safe_point(),
    })
}

pub fn update_gc_safe_point(
    svc: &PdService,
    req: UpdateGcSafePointRequest,
) -> Result<UpdateGcSafePointResponse> {
    Ok(UpdateGcSafePointResponse {
        header: None,
        new_safe_point: svc.cluster.update_gc_safe_point(req.safe_point)?,
    })
}
