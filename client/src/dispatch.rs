//! Sending store requests: route to the region leader, retry on region errors, shard batches.
//!
//! ```text
//!   keys ──group by region (cache / PD)──▶ one request per region group (chunked)
//!        ──send concurrently to each leader──▶ ok: collect
//!                                           └─ region error / transport failure:
//!                                              fix the cache (leader hint, new epoch, drop),
//!                                              back off, re-group the failed keys, send again
//! ```
//!
//! Each call owns one region [`Backoff`]: every retry spends an attempt, so a call either
//! succeeds or returns the last error within a bounded time. A lookup error while grouping fails
//! the whole call; keys are never dropped.

use std::sync::Arc;

use futures::stream::{self, StreamExt};
use proto::errorpb;
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::batch::BatchOutcome;
use crate::config::Config;
use crate::errors::{describe_region_error, is_retryable_code, Error, Result};
use crate::pd::PdClient;
use crate::region::{KeyMode, Region};
use crate::region_cache::{EpochOutcome, RegionCache};
use crate::request::{KvRequest, KvResponse};
use crate::store::{StoreConn, StorePool};

/// Why one attempt failed in a way the retry loop handles.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The store answered with a region error.
    Region {
        error: Box<errorpb::Error>,
        store_id: u64,
    },
    /// The cached region has no leader.
    NoLeader,
    /// PD no longer knows the leader's store.
    StoreGone(u64),
    /// The store could not be reached or did not answer in time.
    Transport {
        error: Error,
        store_id: u64,
        addr: String,
    },
}

/// Everything a client needs to talk to the cluster: PD, the region cache, store channels.
pub(crate) struct Cluster {
    pub pd: Arc<PdClient>,
    pub cache: RegionCache,
    pub config: Config,
    stores: StorePool,
}

impl Cluster {
    /// Connects to PD; stores are connected on first use.
    pub async fn connect(
        endpoints: &[String],
        config: Config,
        mode: KeyMode,
    ) -> Result<Arc<Cluster>> {
        config.validate()?;
        let pd = Arc::new(PdClient::connect(endpoints, config.clone()).await?);
        Ok(Arc::new(Cluster {
            cache: RegionCache::new(pd.clone(), mode),
            stores: StorePool::new(&config),
            pd,
            config,
        }))
    }

    /// One attempt against the region's leader. `Ok(Err(_))` is a failure the retry loop
    /// handles; `Err(_)` is final (a PD error, or a status such as INVALID_ARGUMENT).
    pub async fn send_once<R: KvRequest>(
        &self,
        region: &Region,
        mut req: R,
    ) -> Result<std::result::Result<R::Response, Failure>> {
        let Some(leader) = region.leader else {
            return Ok(Err(Failure::NoLeader));
        };
        let store = match self.pd.get_store(leader.store_id).await {
            Ok(s) => s,
            Err(Error::StoreNotFound(id)) => return Ok(Err(Failure::StoreGone(id))),
            Err(e) => return Err(e),
        };
        let conn = self.stores.client(&store.address)?;
        req.set_context(region.context(&leader));
        let outcome =
            tokio::time::timeout(self.config.timeout, call(conn, req, self.config.timeout)).await;
        let transport = |error| {
            Ok(Err(Failure::Transport {
                error,
                store_id: store.id,
                addr: store.address.clone(),
            }))
        };
        match outcome {
            Ok(Ok(mut resp)) => Ok(match resp.take_region_error() {
                Some(error) => Err(Failure::Region {
                    error: Box::new(error),
                    store_id: store.id,
                }),
                None => Ok(resp),
            }),
            Ok(Err(status)) => {
                let retryable = is_retryable_code(status.code());
                let error =
                    Error::from_status(R::NAME, &store.address, status, self.config.timeout);
                if retryable {
                    transport(error)
                } else {
                    Err(error)
                }
            }
            Err(_) => transport(Error::Timeout {
                rpc: R::NAME,
                addr: store.address.clone(),
                after: self.config.timeout,
            }),
        }
    }

    /// Fixes the cache after `failure` and waits as the failure requires. `Err` when the failure
    /// is final or the backoff is used up (then it is the failure itself, as an error).
    pub async fn handle_failure(
        &self,
        region: &Region,
        failure: Failure,
        backoff: &mut Backoff,
    ) -> Result<()> {
        let (pause, err) = self.apply_failure(region, failure)?;
        pace(backoff, pause, err).await
    }

    /// Like [`handle_failure`](Self::handle_failure) for several regions that failed in one
    /// round: every cache fix is applied, one attempt is spent.
    async fn handle_failures(
        &self,
        failures: Vec<(Region, Failure)>,
        backoff: &mut Backoff,
    ) -> Result<()> {
        let mut pause = false;
        let mut last = None;
        for (region, failure) in failures {
            let (p, err) = self.apply_failure(&region, failure)?;
            pause |= p;
            last = Some(err);
        }
        pace(
            backoff,
            pause,
            last.expect("called with at least one failure"),
        )
        .await
    }

    /// Updates routing for one failure. Returns whether to pause before retrying and the error
    /// to report if no retry is left; `Err` for failures that are not retried.
    fn apply_failure(&self, region: &Region, failure: Failure) -> Result<(bool, Error)> {
        let ver = region.ver_id();
        match failure {
            Failure::NoLeader => {
                debug!(region_id = region.id, "no leader cached, reloading region");
                self.cache.invalidate(ver);
                Ok((
                    true,
                    Error::LeaderNotFound {
                        region_id: region.id,
                    },
                ))
            }
            Failure::StoreGone(store_id) => {
                self.cache.invalidate(ver);
                self.pd.invalidate_store(store_id);
                Ok((true, Error::StoreNotFound(store_id)))
            }
            Failure::Transport {
                error,
                store_id,
                addr,
            } => {
                warn!(region_id = region.id, store_id, %addr, %error, "store unreachable");
                self.cache.invalidate(ver);
                self.pd.invalidate_store(store_id);
                self.stores.remove(&addr);
                Ok((true, error))
            }
            Failure::Region { error, store_id } => self.on_region_error(region, *error, store_id),
        }
    }

    /// The reactions of TiKV's clients to each region error (see wire-compat §3.3).
    fn on_region_error(
        &self,
        region: &Region,
        error: errorpb::Error,
        store_id: u64,
    ) -> Result<(bool, Error)> {
        let ver = region.ver_id();
        debug!(
            region_id = region.id,
            store_id,
            error = %describe_region_error(&error),
            "region error"
        );
        let as_error = |e: &errorpb::Error| Error::Region {
            region_id: region.id,
            error: Box::new(e.clone()),
        };
        if let Some(not_leader) = &error.not_leader {
            let sent_to = region.leader.map(|l| l.id);
            return Ok(match not_leader.leader.filter(|l| l.id != 0) {
                // A new leader is named: go there at once.
                Some(leader)
                    if Some(leader.id) != sent_to && self.cache.update_leader(ver, leader) =>
                {
                    (false, as_error(&error))
                }
                // The peer that refused names itself: an election is under way; wait.
                Some(leader) if Some(leader.id) == sent_to => (true, as_error(&error)),
                _ => {
                    self.cache.invalidate(ver);
                    (true, as_error(&error))
                }
            });
        }
        if let Some(enm) = &error.epoch_not_match {
            let outcome = self
                .cache
                .on_epoch_not_match(ver, enm.current_regions.clone(), store_id);
            return Ok((outcome == EpochOutcome::StoreBehind, as_error(&error)));
        }
        if error.store_not_match.is_some() {
            self.cache.invalidate(ver);
            self.pd.invalidate_store(store_id);
            return Ok((true, as_error(&error)));
        }
        if error.raft_entry_too_large.is_some() {
            // Retrying cannot shrink the request.
            return Err(as_error(&error));
        }
        if error.server_is_busy.is_some()
            || error.max_timestamp_not_synced.is_some()
            || error.read_index_not_ready.is_some()
            || error.region_not_initialized.is_some()
        {
            // Routing is right; the store needs time.
            return Ok((true, as_error(&error)));
        }
        self.cache.invalidate(ver);
        if error.region_not_found.is_none()
            && error.stale_command.is_none()
            && error.key_not_in_region.is_none()
        {
            // Unknown error: the store may be the problem too.
            self.pd.invalidate_store(store_id);
        }
        Ok((true, as_error(&error)))
    }

    /// Sends a single-key request, following the region as it moves.
    pub async fn execute_key<R: KvRequest>(&self, key: &[u8], req: R) -> Result<R::Response> {
        let mut backoff = self.config.region_backoff.start();
        loop {
            let region = self.cache.locate_key(key).await?;
            match self.send_once(&region, req.clone()).await? {
                Ok(resp) => return Ok(resp),
                Err(f) => self.handle_failure(&region, f, &mut backoff).await?,
            }
        }
    }

    /// Sends `items` grouped by region: one request per group (split into chunks of
    /// `max_keys_per_request`), built by `build`, sent concurrently. Failed groups are
    /// re-grouped and retried. Returns each chunk with its response, in no particular order.
    pub async fn execute_sharded<T, R, B>(
        &self,
        items: Vec<T>,
        key_of: fn(&T) -> &[u8],
        build: B,
    ) -> Result<Vec<(Vec<T>, R::Response)>>
    where
        T: Send + Sync,
        R: KvRequest,
        B: Fn(&Region, &[T]) -> R + Send + Sync,
    {
        let mut backoff = self.config.region_backoff.start();
        let mut pending = items;
        let mut done = Vec::new();
        while !pending.is_empty() {
            let groups = self
                .cache
                .group_by_region(std::mem::take(&mut pending), key_of)
                .await?;
            let batches = groups.into_iter().flat_map(|(region, items)| {
                chunked(items, self.config.max_keys_per_request)
                    .into_iter()
                    .map(move |chunk| (region.clone(), chunk))
            });
            let build = &build;
            let results: Vec<_> = stream::iter(batches)
                .map(|(region, items)| {
                    let req = build(&region, &items);
                    async move {
                        let outcome = self.send_once(&region, req).await;
                        (region, items, outcome)
                    }
                })
                .buffer_unordered(self.config.max_concurrent_requests)
                .collect()
                .await;
            let mut failures = Vec::new();
            let mut fatal = None;
            for (region, items, outcome) in results {
                match outcome {
                    Ok(Ok(resp)) => done.push((items, resp)),
                    Ok(Err(failure)) => {
                        failures.push((region, failure));
                        pending.extend(items);
                    }
                    Err(e) => {
                        fatal.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = fatal {
                return Err(e);
            }
            if !failures.is_empty() {
                self.handle_failures(failures, &mut backoff).await?;
            }
        }
        Ok(done)
    }
}

/// Sends `req` to the store: on its shared `BatchCommands` stream when there is one, else (or
/// when the stream's answer has no command, see [`crate::batch`]) as a unary call.
pub(crate) async fn call<R: KvRequest>(
    conn: StoreConn,
    req: R,
    timeout: std::time::Duration,
) -> std::result::Result<R::Response, tonic::Status> {
    if let Some(batch) = conn.batch.as_ref().filter(|b| b.is_supported()) {
        if let Some(cmd) = req.to_batch() {
            let bytes = cmd.encoded_len();
            if bytes <= batch.max_bytes() {
                match batch.call(cmd, bytes).await? {
                    BatchOutcome::Answered(resp) => {
                        return R::from_batch(*resp).ok_or_else(|| {
                            tonic::Status::internal(format!(
                                "{} answered with another command's response",
                                R::NAME
                            ))
                        })
                    }
                    BatchOutcome::Empty | BatchOutcome::Unsupported => {}
                }
            }
        }
    }
    let mut request = tonic::Request::new(req);
    request.set_timeout(timeout);
    R::send(conn.grpc, request)
        .await
        .map(tonic::Response::into_inner)
}

/// Sleeps (or just spends an attempt) before a retry; `Err(err)` when no attempt is left.
async fn pace(backoff: &mut Backoff, pause: bool, err: Error) -> Result<()> {
    let more = if pause {
        backoff.wait().await
    } else {
        backoff.consume()
    };
    if more {
        Ok(())
    } else {
        warn!(attempts = backoff.attempts(), error = %err, "retries exhausted");
        Err(err)
    }
}

/// Splits `items` into chunks of at most `size`.
fn chunked<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::with_capacity(items.len().div_ceil(size));
    let mut iter = items.into_iter().peekable();
    while iter.peek().is_some() {
        out.push(iter.by_ref().take(size).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_keeps_order_and_bounds_size() {
        let chunks = chunked((0..7).collect(), 3);
        assert_eq!(chunks, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
        assert!(chunked(Vec::<u8>::new(), 3).is_empty());
    }
}
