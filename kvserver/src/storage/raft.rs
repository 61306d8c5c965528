//! Raft-backed storage: the [`Storage`] trait over a store's raftstore [`Router`].
//!
//! Each call becomes one `RaftCmdRequest` for the region the client named in its `Context`
//! (region id, epoch, peer, term): writes are proposed through the region's Raft group and
//! acknowledged once applied; snapshots are `Snap` reads served by read index on the leader,
//! bounded by the region. Region errors in the response header come back as
//! [`Error::Region`], so they reach the client's `region_error` and it refreshes its routing.

use std::time::Duration;

use proto::errorpb;
use proto::kvrpcpb::Context;
use proto::raft_cmdpb::{
    CmdType, DeleteRangeRequest, DeleteRequest, PutRequest, RaftCmdRequest, RaftRequestHeader,
    Request, SnapRequest,
};
use raftstore::{CmdResponse, Router};

use super::{Modify, RegionSnapshot, Storage};
use crate::errors::{Error, Result};

/// How long a command may wait for its answer before the client is told to retry.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Storage whose data lives in this store's Raft groups.
#[derive(Clone)]
pub struct RaftStorage {
    router: Router,
    timeout: Duration,
}

impl RaftStorage {
    /// Storage over `router`, with [`DEFAULT_COMMAND_TIMEOUT`].
    pub fn new(router: Router) -> RaftStorage {
        RaftStorage {
            router,
            timeout: DEFAULT_COMMAND_TIMEOUT,
        }
    }

    /// Sets how long a command may wait for its answer.
    pub fn with_timeout(mut self, timeout: Duration) -> RaftStorage {
        self.timeout = timeout;
        self
    }

    /// The router commands go through.
    pub fn router(&self) -> &Router {
        &self.router
    }

    async fn execute(&self, ctx: &Context, requests: Vec<Request>) -> Result<CmdResponse> {
        let req = RaftCmdRequest {
            header: Some(header_from_context(ctx)),
            requests,
            ..Default::default()
        };
        let resp = match tokio::time::timeout(self.timeout, self.router.execute(req)).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(store_error(e)),
            // The command may still be applied; the client retries (writes are idempotent at
            // this layer: the same mutations, or MVCC checks in the transactional layer).
            Err(_) => {
                return Err(Error::Region(Box::new(errorpb::Error {
                    message: format!("request timed out after {:?}", self.timeout),
                    server_is_busy: Some(errorpb::ServerIsBusy {
                        reason: "raft command timed out".into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })))
            }
        };
        if let Some(e) = resp.error() {
            return Err(Error::Region(Box::new(e.clone())));
        }
        Ok(resp)
    }
}

/// The raftstore header for a request routed with `ctx`.
pub fn header_from_context(ctx: &Context) -> RaftRequestHeader {
    RaftRequestHeader {
        region_id: ctx.region_id,
        peer: ctx.peer,
        region_epoch: ctx.region_epoch,
        term: ctx.term,
        ..Default::default()
    }
}

/// A failure of the store itself (shutting down, overloaded): the client retries elsewhere.
fn store_error(e: raftstore::Error) -> Error {
    Error::Region(Box::new(e.into()))
}

fn to_request(m: Modify) -> Request {
    match m {
        Modify::Put { cf, key, value } => Request {
            cmd_type: CmdType::Put as i32,
            put: Some(PutRequest {
                cf: cf.to_string(),
                key,
                value,
            }),
            ..Default::default()
        },
        Modify::Delete { cf, key } => Request {
            cmd_type: CmdType::Delete as i32,
            delete: Some(DeleteRequest {
                cf: cf.to_string(),
                key,
            }),
            ..Default::default()
        },
        Modify::DeleteRange {
            cf,
            start_key,
            end_key,
        } => Request {
            cmd_type: CmdType::DeleteRange as i32,
            delete_range: Some(DeleteRangeRequest {
                cf: cf.to_string(),
                start_key,
                end_key,
                notify_only: false,
            }),
            ..Default::default()
        },
    }
}

impl Storage for RaftStorage {
    async fn write(&self, ctx: &Context, batch: Vec<Modify>) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.execute(ctx, batch.into_iter().map(to_request).collect())
            .await
            .map(|_| ())
    }

    async fn split_region(
        &self,
        ctx: &Context,
        split_keys: Vec<Vec<u8>>,
    ) -> Result<Vec<proto::metapb::Region>> {
        let epoch = ctx.region_epoch.unwrap_or_default();
        let split = self.router.execute_split(ctx.region_id, epoch, split_keys);
        let resp = match tokio::time::timeout(self.timeout, split).await {
            Ok(Ok(resp)) => resp,
            Ok(Err(e)) => return Err(store_error(e)),
            Err(_) => {
                return Err(Error::Other(format!(
                    "split not answered within {:?}",
                    self.timeout
                )))
            }
        };
        if let Some(e) = resp.error() {
            return Err(Error::Region(Box::new(e.clone())));
        }
        resp.response
            .admin_response
            .and_then(|a| a.splits)
            .map(|s| s.regions)
            .ok_or_else(|| Error::Other("split answered without the resulting regions".into()))
    }

    async fn snapshot(&self, ctx: &Context) -> Result<RegionSnapshot> {
        let snap = Request {
            cmd_type: CmdType::Snap as i32,
            snap: Some(SnapRequest {}),
            ..Default::default()
        };
        let resp = self.execute(ctx, vec![snap]).await?;
        let term = resp.response.header.as_ref().map_or(0, |h| h.current_term);
        resp.snapshot
            .map(|s| s.with_term(term))
            .ok_or_else(|| Error::Other("snap request answered without a snapshot".into()))
    }
}

#[cfg(test)]
mod tests {
    use proto::metapb::{Peer, RegionEpoch};

    use super::*;

    #[test]
    fn header_and_requests_carry_the_context_and_mutations() {
        let ctx = Context {
            region_id: 4,
            region_epoch: Some(RegionEpoch {
                conf_ver: 2,
                version: 3,
            }),
            peer: Some(Peer {
                id: 5,
                store_id: 6,
                ..Default::default()
            }),
            term: 7,
            ..Default::default()
        };
        let h = header_from_context(&ctx);
        assert_eq!((h.region_id, h.term), (4, 7));
        assert_eq!(h.peer.unwrap().store_id, 6);
        assert_eq!(h.region_epoch.unwrap().version, 3);

        let r = to_request(Modify::Put {
            cf: "lock",
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        });
        assert_eq!(r.cmd_type(), CmdType::Put);
        assert_eq!(r.put.unwrap().cf, "lock");
        let r = to_request(Modify::DeleteRange {
            cf: "default",
            start_key: b"a".to_vec(),
            end_key: vec![],
        });
        assert_eq!(r.cmd_type(), CmdType::DeleteRange);
        assert!(r.delete_range.unwrap().end_key.is_empty());
    }

    #[test]
    fn store_failures_become_retryable_region_errors() {
        let e = store_error(raftstore::Error::Shutdown);
        let re = e.region_error().expect("region error");
        assert!(re.message.contains("shutting down"));
        let e = store_error(raftstore::Error::ServerIsBusy("full".into()));
        assert!(e.region_error().unwrap().server_is_busy.is_some());
    }

    /// A one-store cluster the scheduler bootstraps: enough to drive `RaftStorage` end to end.
    mod single_store {
        use super::*;
        use crate::test_util::single_store_node;

        /// The request context addressed to the one peer of a single-store region.
        fn leader_context(region: &proto::metapb::Region) -> Context {
            Context {
                region_id: region.id,
                region_epoch: region.region_epoch,
                peer: Some(region.peers[0]),
                ..Default::default()
            }
        }

        /// After a write commits, the leader holds a lease: snapshots are taken from its state
        /// without a read index, and they see every acknowledged write.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn snapshots_under_the_lease_skip_the_read_index_and_see_acknowledged_writes() {
            let dir = tempfile::tempdir().unwrap();
            let (node, router, region) = single_store_node(dir.path()).await;
            let ctx = leader_context(&region);
            let storage = RaftStorage::new(router);
            let before = node.status().metrics;
            for i in 0..20u8 {
                storage
                    .write(
                        &ctx,
                        vec![Modify::Put {
                            cf: "default",
                            key: b"k".to_vec(),
                            value: vec![i],
                        }],
                    )
                    .await
                    .unwrap();
                let snap = storage.snapshot(&ctx).await.unwrap();
                assert_eq!(snap.get_value_cf("default", b"k").unwrap(), Some(vec![i]));
            }
            let after = node.status().metrics;
            let lease_reads = after.lease_reads - before.lease_reads;
            let read_indexes = after.read_indexes - before.read_indexes;
            // Each write renews the lease (400 ms in the test config) for the read after it; a
            // very slow machine may let a few expire.
            assert!(
                lease_reads >= 10,
                "{lease_reads} lease reads, {read_indexes} read indexes"
            );
            assert_eq!(lease_reads + read_indexes, 20);
            tokio::task::spawn_blocking(move || node.stop())
                .await
                .unwrap();
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn writes_and_snapshots_go_through_raft_and_errors_reach_region_error() {
            let dir = tempfile::tempdir().unwrap();
            let (node, router, region) = single_store_node(dir.path()).await;
            let ctx = leader_context(&region);
            let storage = RaftStorage::new(router);
            storage
                .write(
                    &ctx,
                    vec![
                        Modify::Put {
                            cf: "default",
                            key: b"a".to_vec(),
                            value: b"1".to_vec(),
                        },
                        Modify::Put {
                            cf: "lock",
                            key: b"b".to_vec(),
                            value: b"2".to_vec(),
                        },
                    ],
                )
                .await
                .unwrap();
            let snap = storage.snapshot(&ctx).await.unwrap();
            assert_eq!(snap.get_value_cf("default", b"a").unwrap().unwrap(), b"1");
            assert_eq!(snap.get_value_cf("lock", b"b").unwrap().unwrap(), b"2");
            // The snapshot carries the leader's term; a write claiming a term two behind it
            // (computed before leadership moved away and back) is refused.
            let term = snap.term();
            assert!(term > 2, "snapshot term {term}");
            let e = storage
                .write(
                    &Context {
                        term: term - 2,
                        ..ctx.clone()
                    },
                    vec![Modify::Delete {
                        cf: "default",
                        key: b"a".to_vec(),
                    }],
                )
                .await
                .unwrap_err();
            assert!(e.region_error().unwrap().stale_command.is_some(), "{e:?}");
            let same_term = Context {
                term,
                ..ctx.clone()
            };
            storage
                .write(
                    &same_term,
                    vec![Modify::Put {
                        cf: "default",
                        key: b"c".to_vec(),
                        value: b"3".to_vec(),
                    }],
                )
                .await
                .unwrap();
            storage
                .write(
                    &ctx,
                    vec![Modify::DeleteRange {
                        cf: "default",
                        start_key: vec![],
                        end_key: vec![],
                    }],
                )
                .await
                .unwrap();
            assert_eq!(
                storage
                    .snapshot(&ctx)
                    .await
                    .unwrap()
                    .get_value_cf("default", b"a")
                    .unwrap(),
                None
            );

            let wrong_region = Context {
                region_id: 999,
                ..ctx.clone()
            };
            let e = storage.snapshot(&wrong_region).await.unwrap_err();
            assert_eq!(
                e.region_error()
                    .unwrap()
                    .region_not_found
                    .unwrap()
                    .region_id,
                999
            );
            let stale = Context {
                region_epoch: Some(proto::metapb::RegionEpoch {
                    conf_ver: 1,
                    version: 0,
                }),
                ..ctx.clone()
            };
            let e = storage
                .write(
                    &stale,
                    vec![Modify::Delete {
                        cf: "default",
                        key: b"a".to_vec(),
                    }],
                )
                .await
                .unwrap_err();
            assert!(e.region_error().unwrap().epoch_not_match.is_some());
            tokio::task::spawn_blocking(move || node.stop())
                .await
                .unwrap();
        }
    }
}
