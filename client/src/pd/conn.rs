//! The connection to PD's leader: discovery through `GetMembers`, reconnection after failures,
//! and the retrying unary-call wrapper every PD method goes through.

use std::future::Future;
use std::time::Duration;

use parking_lot::RwLock;
use proto::pdpb;
use tracing::{debug, info, warn};

use crate::channel::{lazy_channel, normalize_url, MAX_DECODING_MESSAGE_SIZE};
use crate::config::Config;
use crate::errors::{is_retryable_code, Error, Result};

/// The generated PD stub over a tonic channel.
pub(crate) type PdGrpc = pdpb::pd_client::PdClient<tonic::transport::Channel>;

/// The current leader. `generation` counts reconnections so that concurrent callers who saw the
/// same failure reconnect only once.
#[derive(Clone)]
pub(crate) struct Leader {
    pub url: String,
    pub client: PdGrpc,
    pub generation: u64,
}

struct State {
    leader: Leader,
    /// Client URLs of every member, as the last `GetMembers` reported them.
    members: Vec<String>,
}

/// A PD request type: every one carries a header with the cluster id.
pub(crate) trait PdRequest: Clone {
    fn set_header(&mut self, header: pdpb::RequestHeader);
}

/// A PD response type: every one carries a header, possibly with an error.
pub(crate) trait PdResponse {
    fn header(&self) -> Option<&pdpb::ResponseHeader>;
}

macro_rules! pd_requests {
    ($($req:ident),* $(,)?) => {$(
        impl PdRequest for pdpb::$req {
            fn set_header(&mut self, header: pdpb::RequestHeader) {
                self.header = Some(header);
            }
        }
    )*};
}

macro_rules! pd_responses {
    ($($resp:ident),* $(,)?) => {$(
        impl PdResponse for pdpb::$resp {
            fn header(&self) -> Option<&pdpb::ResponseHeader> {
                self.header.as_ref()
            }
        }
    )*};
}

pd_requests!(
    GetMembersRequest,
    GetRegionRequest,
    GetRegionByIdRequest,
    ScanRegionsRequest,
    GetStoreRequest,
    GetAllStoresRequest,
);

pd_responses!(
    GetMembersResponse,
    GetRegionResponse,
    ScanRegionsResponse,
    GetStoreResponse,
    GetAllStoresResponse,
);

/// Shared by the PD client and its TSO worker.
pub(crate) struct PdConnection {
    seeds: Vec<String>,
    config: Config,
    cluster_id: u64,
    state: RwLock<State>,
    /// Serializes reconnections; holders re-check the generation first.
    reconnecting: tokio::sync::Mutex<()>,
}

struct Discovered {
    cluster_id: u64,
    leader_url: String,
    client: PdGrpc,
    members: Vec<String>,
}

impl PdConnection {
    /// Asks the endpoints for the members and connects to the leader.
    pub async fn connect(endpoints: &[String], config: &Config) -> Result<PdConnection> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument("no PD endpoints given".into()));
        }
        let seeds = endpoints
            .iter()
            .map(|e| normalize_url(e))
            .collect::<Result<Vec<_>>>()?;
        let found = discover(&seeds, config, None).await?;
        info!(
            leader = %found.leader_url,
            cluster_id = found.cluster_id,
            "connected to pd"
        );
        Ok(PdConnection {
            seeds,
            config: config.clone(),
            cluster_id: found.cluster_id,
            state: RwLock::new(State {
                leader: Leader {
                    url: found.leader_url,
                    client: found.client,
                    generation: 0,
                },
                members: found.members,
            }),
            reconnecting: tokio::sync::Mutex::new(()),
        })
    }

    pub fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    pub fn leader(&self) -> Leader {
        self.state.read().leader.clone()
    }

    pub fn header(&self) -> pdpb::RequestHeader {
        pdpb::RequestHeader {
            cluster_id: self.cluster_id,
            sender_id: 0,
        }
    }

    /// Finds the leader again, unless someone already did since `failed_generation` failed.
    pub async fn reconnect(&self, failed_generation: u64) -> Result<()> {
        let _guard = self.reconnecting.lock().await;
        let urls = {
            let state = self.state.read();
            if state.leader.generation != failed_generation {
                return Ok(());
            }
            let mut urls = state.members.clone();
            for s in &self.seeds {
                if !urls.contains(s) {
                    urls.push(s.clone());
                }
            }
            urls
        };
        let found = discover(&urls, &self.config, Some(self.cluster_id)).await?;
        let mut state = self.state.write();
        if state.leader.url != found.leader_url {
            info!(old = %state.leader.url, new = %found.leader_url, "pd leader changed");
        }
        state.leader = Leader {
            url: found.leader_url,
            client: found.client,
            generation: failed_generation + 1,
        };
        if !found.members.is_empty() {
            state.members = found.members;
        }
        Ok(())
    }

    /// Sends a unary request to the leader. Transport failures and timeouts reconnect (the
    /// leader may have moved) and retry under the PD backoff; an error in the response header is
    /// PD's answer and is returned at once.
    pub async fn call<Req, Resp, F, Fut>(
        &self,
        rpc: &'static str,
        mut req: Req,
        f: F,
    ) -> Result<Resp>
    where
        Req: PdRequest,
        Resp: PdResponse,
        F: Fn(PdGrpc, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>,
    {
        req.set_header(self.header());
        let mut backoff = self.config.pd_backoff.start();
        loop {
            let leader = self.leader();
            let mut request = tonic::Request::new(req.clone());
            request.set_timeout(self.config.timeout);
            let outcome =
                tokio::time::timeout(self.config.timeout, f(leader.client.clone(), request)).await;
            let mut err = match outcome {
                Ok(Ok(resp)) => return check_header(rpc, self.cluster_id, resp.into_inner()),
                Ok(Err(status)) => {
                    let retryable = is_retryable_code(status.code());
                    let err = Error::from_status(rpc, &leader.url, status, self.config.timeout);
                    if !retryable {
                        return Err(err);
                    }
                    err
                }
                Err(_) => Error::Timeout {
                    rpc,
                    addr: leader.url.clone(),
                    after: self.config.timeout,
                },
            };
            warn!(rpc, addr = %leader.url, error = %err, "pd call failed, reconnecting");
            if let Err(e) = self.reconnect(leader.generation).await {
                debug!(error = %e, "pd reconnect failed");
                err = e;
            }
            match backoff.next_delay() {
                Some(d) => tokio::time::sleep(d).await,
                None => return Err(err),
            }
        }
    }
}

/// Checks a response header: present, same cluster, no error.
pub(crate) fn check_header<R: PdResponse>(
    rpc: &'static str,
    cluster_id: u64,
    resp: R,
) -> Result<R> {
    let header = resp
        .header()
        .ok_or_else(|| Error::invalid_response(rpc, "missing response header"))?;
    if header.cluster_id != cluster_id {
        return Err(Error::ClusterIdMismatch {
            expected: cluster_id,
            actual: header.cluster_id,
        });
    }
    if let Some(e) = &header.error {
        let kind = pdpb::ErrorType::try_from(e.r#type).unwrap_or(pdpb::ErrorType::Unknown);
        if kind != pdpb::ErrorType::Ok {
            return Err(Error::Pd {
                rpc,
                kind,
                message: e.message.clone(),
            });
        }
    }
    Ok(resp)
}

fn new_stub(url: &str, config: &Config) -> Result<PdGrpc> {
    Ok(
        PdGrpc::new(lazy_channel(url, config)?)
            .max_decoding_message_size(MAX_DECODING_MESSAGE_SIZE),
    )
}

async fn get_members(
    client: &PdGrpc,
    url: &str,
    timeout: Duration,
) -> Result<pdpb::GetMembersResponse> {
    let mut request = tonic::Request::new(pdpb::GetMembersRequest {
        header: Some(pdpb::RequestHeader::default()),
    });
    request.set_timeout(timeout);
    let mut client = client.clone();
    match tokio::time::timeout(timeout, client.get_members(request)).await {
        Ok(Ok(resp)) => Ok(resp.into_inner()),
        Ok(Err(status)) => Err(Error::from_status("GetMembers", url, status, timeout)),
        Err(_) => Err(Error::Timeout {
            rpc: "GetMembers",
            addr: url.to_owned(),
            after: timeout,
        }),
    }
}

/// Asks each URL in turn for the members until one names a leader that answers itself.
async fn discover(
    urls: &[String],
    config: &Config,
    expected_cluster: Option<u64>,
) -> Result<Discovered> {
    let mut failures = Vec::new();
    for url in urls {
        let client = new_stub(url, config)?;
        let resp = match get_members(&client, url, config.timeout).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let cluster_id = match resp.header.as_ref() {
            Some(h)
                if h.error
                    .as_ref()
                    .is_none_or(|e| e.r#type == pdpb::ErrorType::Ok as i32) =>
            {
                h.cluster_id
            }
            Some(h) => {
                failures.push(format!("{url}: GetMembers error {:?}", h.error));
                continue;
            }
            None => {
                failures.push(format!("{url}: GetMembers without header"));
                continue;
            }
        };
        if let Some(expected) = expected_cluster {
            if expected != cluster_id {
                return Err(Error::ClusterIdMismatch {
                    expected,
                    actual: cluster_id,
                });
            }
        }
        let members: Vec<String> = resp
            .members
            .iter()
            .flat_map(|m| m.client_urls.iter())
            .filter_map(|u| normalize_url(u).ok())
            .collect();
        let Some(leader) = resp.leader.as_ref().filter(|l| !l.client_urls.is_empty()) else {
            failures.push(format!("{url}: no leader elected"));
            continue;
        };
        for leader_url in &leader.client_urls {
            let leader_url = match normalize_url(leader_url) {
                Ok(u) => u,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            let leader_client = if leader_url == *url {
                client.clone()
            } else {
                new_stub(&leader_url, config)?
            };
            // The member named as leader must answer for the same cluster.
            match get_members(&leader_client, &leader_url, config.timeout).await {
                Ok(r) if r.header.as_ref().map(|h| h.cluster_id) == Some(cluster_id) => {
                    return Ok(Discovered {
                        cluster_id,
                        leader_url,
                        client: leader_client,
                        members,
                    });
                }
                Ok(_) => failures.push(format!("{leader_url}: leader reports another cluster")),
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    Err(Error::PdUnavailable(failures.join("; ")))
}
