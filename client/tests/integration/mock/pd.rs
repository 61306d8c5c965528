//! Mock `pdpb.PD`: members with one leader, TSO stream, region and store lookups.

use std::sync::Arc;

use futures::StreamExt;
use proto::pdpb::{self, pd_server::Pd};
use proto::{metapb, pdpb::ErrorType};
use tonic::{Request, Response, Status};

use super::{Shared, State, CLUSTER_ID};

pub struct MockPd {
    pub member: usize,
    pub shared: Arc<Shared>,
}

fn header() -> Option<pdpb::ResponseHeader> {
    Some(pdpb::ResponseHeader {
        cluster_id: CLUSTER_ID,
        error: None,
    })
}

fn error_header(kind: ErrorType, message: &str) -> Option<pdpb::ResponseHeader> {
    Some(pdpb::ResponseHeader {
        cluster_id: CLUSTER_ID,
        error: Some(pdpb::Error {
            r#type: kind as i32,
            message: message.into(),
        }),
    })
}

impl MockPd {
    fn name(&self, rpc: &str) {
        self.shared.count(rpc);
        self.shared.count(&format!("pd{}/{rpc}", self.member));
    }

    /// Down members refuse everything; followers refuse all but GetMembers.
    fn serve<T>(&self, f: impl FnOnce(&mut State) -> T) -> Result<T, Status> {
        let mut st = self.shared.state.lock();
        if st.pd_down[self.member] {
            return Err(Status::unavailable("pd member down"));
        }
        if st.pd_leader != self.member {
            return Err(Status::unavailable("not leader"));
        }
        Ok(f(&mut st))
    }

    fn lookup_fails(st: &State, key: &[u8]) -> bool {
        st.fail_region_lookup_from
            .as_ref()
            .is_some_and(|from| key >= from.as_slice())
    }
}

#[tonic::async_trait]
impl Pd for MockPd {
    async fn get_members(
        &self,
        _: Request<pdpb::GetMembersRequest>,
    ) -> Result<Response<pdpb::GetMembersResponse>, Status> {
        self.name("GetMembers");
        let st = self.shared.state.lock();
        if st.pd_down[self.member] {
            return Err(Status::unavailable("pd member down"));
        }
        let members: Vec<pdpb::Member> = st
            .pd_urls
            .iter()
            .enumerate()
            .map(|(i, url)| pdpb::Member {
                name: format!("pd{i}"),
                member_id: i as u64 + 1,
                client_urls: vec![url.clone()],
                ..Default::default()
            })
            .collect();
        Ok(Response::new(pdpb::GetMembersResponse {
            header: header(),
            leader: Some(members[st.pd_leader].clone()),
            members,
            etcd_leader: None,
        }))
    }

    async fn tso(
        &self,
        request: Request<tonic::Streaming<pdpb::TsoRequest>>,
    ) -> Result<Response<tonic::codegen::BoxStream<pdpb::TsoResponse>>, Status> {
        self.name("TsoStream");
        self.serve(|_| ())?;
        let shared = self.shared.clone();
        let member = self.member;
        let mut requests = request.into_inner();
        let responses = async_stream_like(move |tx| async move {
            while let Some(req) = requests.next().await {
                let Ok(req) = req else { return };
                shared.count("TsoRequest");
                shared.count(&format!("TsoCount:{}", req.count));
                let mut gate = shared.tso_gate.subscribe();
                if gate.wait_for(|open| *open).await.is_err() {
                    return;
                }
                let resp = {
                    let mut st = shared.state.lock();
                    if st.pd_down[member] || st.pd_leader != member {
                        Err(Status::unavailable("not leader"))
                    } else {
                        let ts = st.next_ts(req.count as u64);
                        Ok(pdpb::TsoResponse {
                            header: header(),
                            count: req.count,
                            timestamp: Some(pdpb::Timestamp {
                                physical: (ts >> 18) as i64,
                                logical: (ts & ((1 << 18) - 1)) as i64,
                                suffix_bits: 0,
                            }),
                        })
                    }
                };
                let stop = resp.is_err();
                if tx.send(resp).await.is_err() || stop {
                    return;
                }
            }
        });
        Ok(Response::new(responses))
    }

    async fn get_region(
        &self,
        request: Request<pdpb::GetRegionRequest>,
    ) -> Result<Response<pdpb::GetRegionResponse>, Status> {
        self.name("GetRegion");
        let key = request.into_inner().region_key;
        self.serve(|st| {
            if Self::lookup_fails(st, &key) {
                return pdpb::GetRegionResponse {
                    header: error_header(ErrorType::Unknown, "injected lookup failure"),
                    ..Default::default()
                };
            }
            match st.region_by_pd_key(&key) {
                Some(r) => pdpb::GetRegionResponse {
                    header: header(),
                    region: Some(r.meta.clone()),
                    leader: Some(st.leader_peer(r)),
                    ..Default::default()
                },
                None => pdpb::GetRegionResponse {
                    header: error_header(ErrorType::RegionNotFound, "no region"),
                    ..Default::default()
                },
            }
        })
        .map(Response::new)
    }

    async fn get_region_by_id(
        &self,
        request: Request<pdpb::GetRegionByIdRequest>,
    ) -> Result<Response<pdpb::GetRegionResponse>, Status> {
        self.name("GetRegionByID");
        let id = request.into_inner().region_id;
        self.serve(|st| match st.regions.get(&id) {
            Some(r) => pdpb::GetRegionResponse {
                header: header(),
                region: Some(r.meta.clone()),
                leader: Some(st.leader_peer(r)),
                ..Default::default()
            },
            None => pdpb::GetRegionResponse {
                header: header(),
                ..Default::default()
            },
        })
        .map(Response::new)
    }

    async fn scan_regions(
        &self,
        request: Request<pdpb::ScanRegionsRequest>,
    ) -> Result<Response<pdpb::ScanRegionsResponse>, Status> {
        self.name("ScanRegions");
        let req = request.into_inner();
        if self.shared.state.lock().scan_regions_unimplemented {
            return Err(Status::unimplemented("ScanRegions"));
        }
        self.serve(|st| {
            if Self::lookup_fails(st, &req.start_key) {
                return pdpb::ScanRegionsResponse {
                    header: error_header(ErrorType::Unknown, "injected lookup failure"),
                    ..Default::default()
                };
            }
            let mut regions: Vec<_> = st
                .regions
                .values()
                .filter(|r| {
                    (r.meta.end_key.is_empty() || r.meta.end_key > req.start_key)
                        && (req.end_key.is_empty() || r.meta.start_key < req.end_key)
                })
                .collect();
            regions.sort_by(|a, b| a.meta.start_key.cmp(&b.meta.start_key));
            if req.limit > 0 {
                regions.truncate(req.limit as usize);
            }
            pdpb::ScanRegionsResponse {
                header: header(),
                region_metas: regions.iter().map(|r| r.meta.clone()).collect(),
                leaders: regions.iter().map(|r| st.leader_peer(r)).collect(),
                regions: regions
                    .iter()
                    .map(|r| pdpb::Region {
                        region: Some(r.meta.clone()),
                        leader: Some(st.leader_peer(r)),
                        ..Default::default()
                    })
                    .collect(),
            }
        })
        .map(Response::new)
    }

    async fn get_store(
        &self,
        request: Request<pdpb::GetStoreRequest>,
    ) -> Result<Response<pdpb::GetStoreResponse>, Status> {
        self.name("GetStore");
        let id = request.into_inner().store_id;
        self.serve(|st| match st.store_addrs.get(&id) {
            Some(addr) => pdpb::GetStoreResponse {
                header: header(),
                store: Some(metapb::Store {
                    id,
                    address: addr.clone(),
                    ..Default::default()
                }),
                stats: None,
            },
            None => pdpb::GetStoreResponse {
                header: error_header(ErrorType::EntryNotFound, "no such store"),
                ..Default::default()
            },
        })
        .map(Response::new)
    }

    async fn get_all_stores(
        &self,
        _: Request<pdpb::GetAllStoresRequest>,
    ) -> Result<Response<pdpb::GetAllStoresResponse>, Status> {
        self.name("GetAllStores");
        self.serve(|st| pdpb::GetAllStoresResponse {
            header: header(),
            stores: st
                .store_addrs
                .iter()
                .map(|(id, addr)| metapb::Store {
                    id: *id,
                    address: addr.clone(),
                    ..Default::default()
                })
                .collect(),
        })
        .map(Response::new)
    }
}

/// A response stream fed by a task through a channel.
fn async_stream_like<F, Fut>(f: F) -> tonic::codegen::BoxStream<pdpb::TsoResponse>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pdpb::TsoResponse, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
