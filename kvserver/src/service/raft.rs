//! The store-to-store streams: `Raft`, `BatchRaft` and `Snapshot`.
//!
//! In cluster mode they are handed to the store's [`RaftReceiver`], which delivers messages to
//! the raftstore router and rebuilds (and verifies) snapshot files before delivering their
//! message. A standalone server has no raft peers: it answers `FAILED_PRECONDITION`, so a
//! misconfigured cluster member fails loudly instead of having its messages vanish.

use futures::Stream;
use proto::raft_serverpb::{Done, RaftMessage, SnapshotChunk};
use proto::tikvpb::BatchRaftMessage;
use raftstore::network::RaftReceiver;
use tonic::Status;

use super::ServiceCtx;
use crate::storage::Storage;

fn receiver<S: Storage>(ctx: &ServiceCtx<S>) -> Result<&RaftReceiver, Status> {
    ctx.raft.as_deref().ok_or_else(|| {
        Status::failed_precondition(
            "this server runs in standalone mode and takes no raft messages from other stores",
        )
    })
}

/// `Raft`: a stream of single messages.
pub async fn raft<S, St>(ctx: &ServiceCtx<S>, stream: St) -> Result<Done, Status>
where
    S: Storage,
    St: Stream<Item = Result<RaftMessage, Status>> + Unpin,
{
    receiver(ctx)?.raft_stream(stream).await
}

/// `BatchRaft`: a stream of message batches (what our transport sends).
pub async fn batch_raft<S, St>(ctx: &ServiceCtx<S>, stream: St) -> Result<Done, Status>
where
    S: Storage,
    St: Stream<Item = Result<BatchRaftMessage, Status>> + Unpin,
{
    receiver(ctx)?.batch_raft_stream(stream).await
}

/// `Snapshot`: one snapshot, its `MsgSnapshot` first, then the file in chunks.
pub async fn snapshot<S, St>(ctx: &ServiceCtx<S>, stream: St) -> Result<Done, Status>
where
    S: Storage,
    St: Stream<Item = Result<SnapshotChunk, Status>> + Unpin,
{
    receiver(ctx)?.snapshot_stream(stream).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use parking_lot::Mutex;
    use proto::eraftpb::{Message, MessageType};
    use proto::metapb::Peer;
    use proto::tikvpb::tikv_client::TikvClient;
    use raft_core::config::EngineConfig;
    use raft_core::snap::SnapManager;
    use raftstore::network::{GrpcTransport, NetworkConfig, StoreResolver};
    use raftstore::transport::{RaftMessageSink, Transport, TransportReport};
    use tonic::Code;

    use super::*;
    use crate::config::Limits;
    use crate::server::RunningServer;
    use crate::service::TikvService;
    use crate::storage::StandaloneStorage;

    #[derive(Default)]
    struct Sink(Mutex<Vec<RaftMessage>>);

    impl RaftMessageSink for Sink {
        fn deliver(&self, msg: RaftMessage) -> raftstore::Result<()> {
            self.0.lock().push(msg);
            Ok(())
        }
    }

    struct OneStore(String);

    impl StoreResolver for OneStore {
        fn resolve(&self, _: u64) -> raftstore::Result<String> {
            Ok(self.0.clone())
        }
        fn invalidate(&self, _: u64) {}
    }

    fn append(index: u64) -> RaftMessage {
        let peer = |id, store_id| Peer {
            id,
            store_id,
            ..Default::default()
        };
        RaftMessage {
            region_id: 1,
            from_peer: Some(peer(11, 1)),
            to_peer: Some(peer(12, 2)),
            message: Some(Message {
                msg_type: MessageType::MsgAppend as i32,
                index,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn storage(dir: &std::path::Path) -> StandaloneStorage {
        StandaloneStorage::open(dir, &EngineConfig::new_test_config()).unwrap()
    }

    #[tokio::test]
    async fn standalone_servers_refuse_raft_traffic() {
        let dir = tempfile::tempdir().unwrap();
        let svc = TikvService::new(storage(dir.path()), Limits::new_test_config());
        let ctx = svc.ctx();
        let errors = [
            raft(ctx, futures::stream::iter(vec![Ok(append(0))]))
                .await
                .unwrap_err(),
            batch_raft(ctx, futures::stream::iter(Vec::new()))
                .await
                .unwrap_err(),
            snapshot(ctx, futures::stream::iter(Vec::new()))
                .await
                .unwrap_err(),
        ];
        for status in errors {
            assert_eq!(status.code(), Code::FailedPrecondition);
            assert!(
                status.message().contains("standalone"),
                "{}",
                status.message()
            );
        }
    }

    /// A transport of another store reaches this server's router through the real gRPC server,
    /// and the snapshot route reaches the receiver's checks.
    #[test]
    fn cluster_servers_deliver_to_the_router() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let sink = Arc::new(Sink::default());
        let cfg = NetworkConfig::new_test_config();
        let snap_mgr = SnapManager::new(dir.path().join("snap")).unwrap();
        let receiver =
            Arc::new(RaftReceiver::new(sink.clone(), snap_mgr.clone(), cfg.clone()).unwrap());
        let svc = TikvService::with_raft_receiver(
            storage(dir.path()),
            Limits::new_test_config(),
            receiver.clone(),
        );
        let server = rt
            .block_on(RunningServer::start(
                "127.0.0.1:0".parse().unwrap(),
                svc,
                Duration::from_secs(5),
            ))
            .unwrap();
        let addr = server.local_addr().to_string();

        let reports: Arc<Mutex<Vec<TransportReport>>> = Arc::default();
        let seen = reports.clone();
        let mut t = GrpcTransport::new(
            rt.handle().clone(),
            Arc::new(OneStore(addr.clone())),
            snap_mgr,
            Arc::new(move |r| seen.lock().push(r)),
            cfg,
        )
        .unwrap();
        for i in 0..100 {
            t.send(append(i)).unwrap();
        }
        t.flush();
        let start = Instant::now();
        while sink.0.lock().len() < 100 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "messages not delivered"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let indexes: Vec<u64> = sink
            .0
            .lock()
            .iter()
            .map(|m| m.message.as_ref().unwrap().index)
            .collect();
        assert_eq!(indexes, (0..100).collect::<Vec<_>>());
        assert!(reports.lock().is_empty());

        // A snapshot stream whose first chunk has no message is refused by the receiver.
        let status = rt
            .block_on(async {
                let mut client = TikvClient::connect(format!("http://{addr}")).await.unwrap();
                let chunk = SnapshotChunk {
                    message: None,
                    data: vec![1, 2, 3],
                };
                client.snapshot(futures::stream::iter(vec![chunk])).await
            })
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

        // Open raft streams end when the receiver shuts down, so the server stops promptly.
        receiver.shutdown();
        t.shutdown();
        rt.block_on(server.shutdown()).unwrap();
    }
}
