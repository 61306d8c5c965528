//! Finding and following the scheduler leader, and running one request with retries.
//!
//! The client starts from the configured endpoints, asks any of them `GetMembers` for the
//! cluster id and the leader's client URLs, and talks to the leader. A request that fails at the
//! transport level is retried with backoff after re-discovering the leader (another member may
//! have taken over, or the same one restarted). Errors the scheduler *answers* with — a set
//! `header.error` — are not retried: they are the answer.

use std::future::Future;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use proto::pdpb::pd_client::PdClient as PdRpcClient;
use proto::pdpb::{
    ErrorType, GetMembersRequest, GetMembersResponse, RequestHeader, ResponseHeader,
};
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use super::config::PdConfig;
use crate::errors::{Error, Result};
use crate::network::backoff::Backoff;

/// A `pdpb` response: every one carries a header.
pub(super) trait PdResponse {
    fn header(&self) -> Option<&ResponseHeader>;
}

macro_rules! impl_pd_response {
    ($($t:ty),* $(,)?) => {
        $(impl PdResponse for $t {
            fn header(&self) -> Option<&ResponseHeader> {
                self.header.as_ref()
            }
        })*
    };
}

impl_pd_response!(
    proto::pdpb::GetMembersResponse,
    proto::pdpb::BootstrapResponse,
    proto::pdpb::IsBootstrappedResponse,
    proto::pdpb::AllocIdResponse,
    proto::pdpb::GetStoreResponse,
    proto::pdpb::PutStoreResponse,
    proto::pdpb::GetAllStoresResponse,
    proto::pdpb::StoreHeartbeatResponse,
    proto::pdpb::RegionHeartbeatResponse,
    proto::pdpb::GetRegionResponse,
    proto::pdpb::AskBatchSplitResponse,
    proto::pdpb::ReportBatchSplitResponse,
);

/// Why a request failed.
#[derive(Debug)]
pub(super) enum CallError {
    /// The scheduler answered with an error in the response header.
    Header {
        op: &'static str,
        kind: ErrorType,
        message: String,
    },
    /// Anything else: transport failures after every retry, malformed answers.
    Failed(Error),
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Error {
        match e {
            CallError::Header { op, kind, message } => {
                Error::Pd(format!("{op}: {}: {message}", kind.as_str_name()))
            }
            CallError::Failed(e) => e,
        }
    }
}

/// The connection to the current leader. `generation` grows with every reconnection, so that
/// many requests failing on the same broken connection reconnect only once.
#[derive(Clone)]
pub(super) struct Leader {
    pub(super) client: PdRpcClient<Channel>,
    pub(super) url: String,
    pub(super) generation: u64,
}

/// Connection state shared by the client's methods and its heartbeat stream.
pub(super) struct Core {
    pub(super) cfg: PdConfig,
    cluster_id: u64,
    leader: RwLock<Leader>,
    /// Every URL worth trying when the leader is lost: the configured endpoints and every
    /// member the cluster reported.
    endpoints: Mutex<Vec<String>>,
    reconnecting: tokio::sync::Mutex<()>,
}

/// Adds a scheme if missing and drops trailing slashes, so URLs compare equal.
pub(super) fn normalize_url(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Unknown
            | Code::Cancelled
            | Code::Aborted
            | Code::Internal
            | Code::ResourceExhausted
    )
}

/// Checks a response header: present, no error, right cluster (`expected` 0 accepts any).
pub(super) fn check_header(
    op: &'static str,
    header: Option<&ResponseHeader>,
    expected: u64,
) -> std::result::Result<u64, CallError> {
    let header = header
        .ok_or_else(|| CallError::Failed(Error::Pd(format!("{op}: response without header"))))?;
    if let Some(err) = &header.error {
        let kind = ErrorType::try_from(err.r#type).unwrap_or(ErrorType::Unknown);
        if kind != ErrorType::Ok {
            return Err(CallError::Header {
                op,
                kind,
                message: err.message.clone(),
            });
        }
    }
    if expected != 0 && header.cluster_id != expected {
        return Err(CallError::Failed(Error::Pd(format!(
            "{op}: answer from cluster {}, this store belongs to cluster {expected}",
            header.cluster_id
        ))));
    }
    Ok(header.cluster_id)
}

/// What a round of `GetMembers` found.
struct Discovered {
    cluster_id: u64,
    leader: PdRpcClient<Channel>,
    leader_url: String,
    member_urls: Vec<String>,
}

async fn open_channel(url: &str, cfg: &PdConfig) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|e| Error::Pd(format!("invalid scheduler url {url:?}: {e}")))?
        .connect_timeout(cfg.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(cfg.keepalive_interval)
        .keep_alive_timeout(cfg.keepalive_timeout)
        .keep_alive_while_idle(true);
    endpoint
        .connect()
        .await
        .map_err(|e| Error::Pd(format!("cannot connect to scheduler {url}: {e}")))
}

/// Connects to `url` and asks it for the members.
async fn members_of(
    url: &str,
    cfg: &PdConfig,
) -> Result<(PdRpcClient<Channel>, GetMembersResponse, u64)> {
    let mut client = PdRpcClient::new(open_channel(url, cfg).await?);
    // GetMembers is sent without a header: the cluster id is what we are asking for.
    let resp = tokio::time::timeout(
        cfg.request_timeout,
        client.get_members(GetMembersRequest { header: None }),
    )
    .await
    .map_err(|_| Error::Pd(format!("GetMembers on {url} timed out")))?
    .map_err(|s| {
        Error::Pd(format!(
            "GetMembers on {url}: {}: {}",
            s.code(),
            s.message()
        ))
    })?
    .into_inner();
    let cluster_id = check_header("GetMembers", resp.header.as_ref(), 0).map_err(Error::from)?;
    if cluster_id == 0 {
        return Err(Error::Pd(format!("{url} reported cluster id 0")));
    }
    Ok((client, resp, cluster_id))
}

/// Asks each endpoint in turn until one names a leader we can reach.
async fn discover(endpoints: &[String], cfg: &PdConfig) -> Result<Discovered> {
    let mut errors = Vec::new();
    for url in endpoints {
        let (client, resp, cluster_id) = match members_of(url, cfg).await {
            Ok(v) => v,
            Err(e) => {
                errors.push(e.to_string());
                continue;
            }
        };
        let member_urls: Vec<String> = resp
            .members
            .iter()
            .flat_map(|m| m.client_urls.iter().map(|u| normalize_url(u)))
            .collect();
        let leader_urls: Vec<String> = resp
            .leader
            .iter()
            .flat_map(|m| m.client_urls.iter().map(|u| normalize_url(u)))
            .collect();
        if leader_urls.is_empty() {
            errors.push(format!("{url} knows no leader"));
            continue;
        }
        if leader_urls.contains(url) {
            return Ok(Discovered {
                cluster_id,
                leader: client,
                leader_url: url.clone(),
                member_urls,
            });
        }
        // The leader is another member: connect to it and make sure it agrees.
        for leader_url in &leader_urls {
            match members_of(leader_url, cfg).await {
                Ok((leader, _, id)) if id == cluster_id => {
                    return Ok(Discovered {
                        cluster_id,
                        leader,
                        leader_url: leader_url.clone(),
                        member_urls,
                    })
                }
                Ok((_, _, id)) => errors.push(format!(
                    "leader {leader_url} is in cluster {id}, {url} in cluster {cluster_id}"
                )),
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    Err(Error::Pd(format!(
        "no scheduler leader reachable: {}",
        errors.join("; ")
    )))
}

impl Core {
    /// Finds the leader among `endpoints`, retrying for up to `cfg.retry_timeout` (the
    /// scheduler may still be starting).
    pub(super) async fn connect(endpoints: &[String], cfg: PdConfig) -> Result<Core> {
        let endpoints: Vec<String> = endpoints.iter().map(|u| normalize_url(u)).collect();
        if endpoints.is_empty() {
            return Err(Error::Pd("no scheduler endpoints configured".into()));
        }
        let deadline = Instant::now() + cfg.retry_timeout;
        let mut backoff = Backoff::new(cfg.backoff_base, cfg.backoff_max);
        let found = loop {
            match discover(&endpoints, &cfg).await {
                Ok(found) => break found,
                Err(e) => {
                    let delay = backoff.next_delay();
                    if Instant::now() + delay >= deadline {
                        return Err(e);
                    }
                    tracing::warn!(error = %e, "scheduler not reachable yet; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        };
        tracing::info!(cluster_id = found.cluster_id, leader = %found.leader_url, "connected to scheduler");
        let mut all = endpoints;
        merge_urls(&mut all, &found.member_urls);
        Ok(Core {
            cfg,
            cluster_id: found.cluster_id,
            leader: RwLock::new(Leader {
                client: found.leader,
                url: found.leader_url,
                generation: 0,
            }),
            endpoints: Mutex::new(all),
            reconnecting: tokio::sync::Mutex::new(()),
        })
    }

    pub(super) fn cluster_id(&self) -> u64 {
        self.cluster_id
    }

    /// The header every request carries.
    pub(super) fn header(&self) -> Option<RequestHeader> {
        Some(RequestHeader {
            cluster_id: self.cluster_id,
            sender_id: 0,
        })
    }

    pub(super) fn leader(&self) -> Leader {
        self.leader.read().clone()
    }

    /// Re-discovers the leader unless someone already did since `failed` was seen.
    pub(super) async fn reconnect(&self, failed: u64) {
        let _one_at_a_time = self.reconnecting.lock().await;
        let current = self.leader.read().url.clone();
        if self.leader.read().generation != failed {
            return;
        }
        // The last known leader first: it usually just restarted.
        let mut urls = vec![current];
        merge_urls(&mut urls, &self.endpoints.lock());
        match discover(&urls, &self.cfg).await {
            Ok(found) if found.cluster_id == self.cluster_id => {
                let mut leader = self.leader.write();
                if leader.url != found.leader_url {
                    tracing::info!(leader = %found.leader_url, "scheduler leader changed");
                }
                *leader = Leader {
                    client: found.leader,
                    url: found.leader_url,
                    generation: failed + 1,
                };
                drop(leader);
                merge_urls(&mut self.endpoints.lock(), &found.member_urls);
            }
            Ok(found) => tracing::error!(
                cluster_id = self.cluster_id,
                found = found.cluster_id,
                "scheduler endpoints now serve another cluster; not switching"
            ),
            Err(e) => tracing::warn!(error = %e, "scheduler reconnection failed"),
        }
    }

    /// Runs `f` against the leader, retrying transport failures (reconnecting in between)
    /// until `retry_timeout`. Checks the response header.
    pub(super) async fn call<R, F, Fut>(
        &self,
        op: &'static str,
        mut f: F,
    ) -> std::result::Result<R, CallError>
    where
        R: PdResponse,
        F: FnMut(PdRpcClient<Channel>) -> Fut,
        Fut: Future<Output = std::result::Result<tonic::Response<R>, Status>>,
    {
        let started = Instant::now();
        let deadline = started + self.cfg.retry_timeout;
        let mut backoff = Backoff::new(self.cfg.backoff_base, self.cfg.backoff_max);
        loop {
            let leader = self.leader();
            let failure =
                match tokio::time::timeout(self.cfg.request_timeout, f(leader.client)).await {
                    Ok(Ok(resp)) => {
                        let resp = resp.into_inner();
                        check_header(op, resp.header(), self.cluster_id)?;
                        return Ok(resp);
                    }
                    Ok(Err(status)) if !retryable(&status) => {
                        return Err(CallError::Failed(Error::Pd(format!(
                            "{op}: {}: {}",
                            status.code(),
                            status.message()
                        ))))
                    }
                    Ok(Err(status)) => format!("{}: {}", status.code(), status.message()),
                    Err(_) => format!("timed out after {:?}", self.cfg.request_timeout),
                };
            let delay = backoff.next_delay();
            if Instant::now() + delay >= deadline {
                return Err(CallError::Failed(Error::Pd(format!(
                    "{op} failed for {:?}: {failure}",
                    started.elapsed()
                ))));
            }
            tracing::debug!(op, error = %failure, "scheduler request failed; retrying");
            tokio::time::sleep(delay).await;
            self.reconnect(leader.generation).await;
        }
    }
}

fn merge_urls(into: &mut Vec<String>, more: &[String]) {
    for url in more {
        if !into.contains(url) {
            into.push(url.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::pdpb::Error as PdError;

    use super::*;

    #[test]
    fn urls_are_normalized() {
        assert_eq!(normalize_url("127.0.0.1:2379"), "http://127.0.0.1:2379");
        assert_eq!(normalize_url(" http://a:1/ "), "http://a:1");
        assert_eq!(normalize_url("https://a:1"), "https://a:1");
    }

    #[test]
    fn headers_are_checked() {
        let ok = ResponseHeader {
            cluster_id: 7,
            error: None,
        };
        assert_eq!(check_header("Op", Some(&ok), 7).unwrap(), 7);
        assert_eq!(check_header("Op", Some(&ok), 0).unwrap(), 7);
        assert!(matches!(
            check_header("Op", Some(&ok), 8),
            Err(CallError::Failed(Error::Pd(m))) if m.contains("cluster 7")
        ));
        assert!(matches!(
            check_header("Op", None, 7),
            Err(CallError::Failed(Error::Pd(m))) if m.contains("without header")
        ));
        let err = ResponseHeader {
            cluster_id: 7,
            error: Some(PdError {
                r#type: ErrorType::NotBootstrapped as i32,
                message: "not yet".into(),
            }),
        };
        let e = check_header("Op", Some(&err), 7).unwrap_err();
        assert!(matches!(
            e,
            CallError::Header {
                kind: ErrorType::NotBootstrapped,
                ..
            }
        ));
        assert_eq!(
            Error::from(e).to_string(),
            "scheduler: Op: NOT_BOOTSTRAPPED: not yet"
        );
    }
}
