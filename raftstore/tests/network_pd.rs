//! `GrpcPdClient` against the real scheduler (bootstrap, ids, stores, regions, the heartbeat
//! stream, a scheduler restart) and against a small mock (leader following, failover).

mod network_support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use network_support::{runtime, wait_until};
use parking_lot::Mutex;
use proto::metapb::{Peer, Region, RegionEpoch, Store};
use proto::pdpb::pd_server::{Pd, PdServer};
use proto::pdpb::*;
use raftstore::pd::{GrpcPdClient, PdConfig};
use raftstore::pd_client::PdClient;
use raftstore::Error;
use scheduler::{Config, SchedulerServer};
use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

fn start_scheduler(rt: &Runtime, dir: &std::path::Path, addr: &str) -> SchedulerServer {
    let mut cfg = Config::new_test_config();
    cfg.data_dir = dir.to_path_buf();
    cfg.listen_addr = addr.to_owned();
    rt.block_on(SchedulerServer::start(cfg)).unwrap()
}

fn store(id: u64, port: u16) -> Store {
    Store {
        id,
        address: format!("127.0.0.1:{port}"),
        ..Default::default()
    }
}

fn first_region(region_id: u64, peer_id: u64, store_id: u64) -> Region {
    Region {
        id: region_id,
        region_epoch: Some(RegionEpoch {
            conf_ver: 1,
            version: 1,
        }),
        peers: vec![Peer {
            id: peer_id,
            store_id,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn heartbeat(region: &Region) -> RegionHeartbeatRequest {
    RegionHeartbeatRequest {
        region: Some(region.clone()),
        leader: Some(region.peers[0]),
        approximate_size: 1 << 20,
        approximate_keys: 100,
        term: 1,
        ..Default::default()
    }
}

fn store_stats(store_id: u64) -> StoreStats {
    StoreStats {
        store_id,
        capacity: 100 << 30,
        available: 90 << 30,
        ..Default::default()
    }
}

/// Bootstraps a cluster through `pd`: store `ids[0]`, region `ids[1]` with peer `ids[2]`.
fn bootstrap(pd: &GrpcPdClient) -> (Store, Region) {
    let (store_id, region_id, peer_id) = (
        pd.alloc_id().unwrap(),
        pd.alloc_id().unwrap(),
        pd.alloc_id().unwrap(),
    );
    let s = store(store_id, 20160);
    let region = first_region(region_id, peer_id, store_id);
    pd.bootstrap_cluster(s.clone(), region.clone()).unwrap();
    (s, region)
}

#[test]
fn bootstrap_ids_stores_and_regions_round_trip() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let sched = start_scheduler(&rt, dir.path(), "127.0.0.1:0");
    let pd = GrpcPdClient::connect(
        &[sched.addr().to_string()],
        rt.handle().clone(),
        PdConfig::new_test_config(),
    )
    .unwrap();
    assert_eq!(pd.cluster_id(), sched.cluster().cluster_id());
    assert_eq!(pd.leader_url(), sched.client_url());
    assert!(!pd.is_cluster_bootstrapped().unwrap());

    let ids: Vec<u64> = (0..20).map(|_| pd.alloc_id().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");

    let (s1, region) = bootstrap(&pd);
    assert!(pd.is_cluster_bootstrapped().unwrap());
    let again = pd
        .bootstrap_cluster(s1.clone(), region.clone())
        .unwrap_err();
    assert!(
        matches!(&again, Error::Pd(m) if m.contains("ALREADY_BOOTSTRAPPED")),
        "{again}"
    );

    let s2 = store(pd.alloc_id().unwrap(), 20161);
    pd.put_store(s2.clone()).unwrap();
    assert_eq!(pd.get_store(s1.id).unwrap().address, s1.address);
    assert_eq!(pd.get_store(s2.id).unwrap().address, s2.address);
    let unknown = pd.get_store(999_999).unwrap_err();
    assert!(matches!(unknown, Error::Pd(_)), "{unknown}");
    let mut all: Vec<u64> = pd
        .get_all_stores(true)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    all.sort_unstable();
    assert_eq!(all, vec![s1.id, s2.id]);
    pd.store_heartbeat(store_stats(s1.id)).unwrap();

    assert_eq!(pd.get_region(b"any key").unwrap().id, region.id);
    let (by_id, _) = pd
        .get_region_by_id(region.id)
        .unwrap()
        .expect("region known");
    assert_eq!(by_id.peers, region.peers);
    assert!(pd.get_region_by_id(999_999).unwrap().is_none());

    let ids = pd.ask_batch_split(region.clone(), 2).unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids
        .iter()
        .all(|s| s.new_region_id != 0 && s.new_peer_ids.len() == region.peers.len()));

    drop(pd);
    rt.block_on(sched.shutdown()).unwrap();
}

#[test]
fn heartbeats_stream_and_operators_reach_the_handler() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let sched = start_scheduler(&rt, dir.path(), "127.0.0.1:0");
    let pd = GrpcPdClient::connect(
        &[sched.client_url().to_string()],
        rt.handle().clone(),
        PdConfig::new_test_config(),
    )
    .unwrap();
    let (s1, region) = bootstrap(&pd);
    let responses: Arc<Mutex<Vec<RegionHeartbeatResponse>>> = Arc::default();
    let sink = responses.clone();
    pd.set_heartbeat_response_handler(Box::new(move |r| sink.lock().push(r)));

    // The region has one replica of three; with two more live stores the replica checker
    // asks its leader (through the heartbeat stream) to add a peer.
    let others: Vec<Store> = (0..2)
        .map(|i| store(pd.alloc_id().unwrap(), 20170 + i))
        .collect();
    for s in &others {
        pd.put_store(s.clone()).unwrap();
    }
    wait_until("an add-peer operator", || {
        for s in std::iter::once(&s1).chain(&others) {
            pd.store_heartbeat(store_stats(s.id)).unwrap();
        }
        pd.region_heartbeat(heartbeat(&region)).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        responses
            .lock()
            .iter()
            .any(|r| r.region_id == region.id && r.change_peer.is_some())
    });
    let (_, leader) = pd.get_region_by_id(region.id).unwrap().unwrap();
    assert_eq!(leader, Some(region.peers[0]), "heartbeats set the leader");
    let stats = pd.heartbeat_stats();
    assert_eq!(stats.streams_opened, 1, "one long-lived stream: {stats:?}");
    assert!(stats.sent >= 1 && stats.responses >= 1, "{stats:?}");

    drop(pd);
    rt.block_on(sched.shutdown()).unwrap();
}

#[test]
fn survives_a_scheduler_restart() {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let sched = start_scheduler(&rt, dir.path(), "127.0.0.1:0");
    let addr = sched.addr();
    let pd = GrpcPdClient::connect(
        &[addr.to_string()],
        rt.handle().clone(),
        PdConfig::new_test_config(),
    )
    .unwrap();
    let (_, region) = bootstrap(&pd);
    pd.region_heartbeat(heartbeat(&region)).unwrap();
    wait_until("stream open", || pd.heartbeat_stats().streams_opened == 1);
    let before = pd.alloc_id().unwrap();

    rt.block_on(sched.shutdown()).unwrap();
    // A request made while the scheduler is down keeps retrying and succeeds once it is back.
    let (sched, id) = std::thread::scope(|s| {
        let call = s.spawn(|| pd.alloc_id());
        // Let the call run into the outage (if it is slower, it simply succeeds at once).
        std::thread::sleep(Duration::from_millis(200));
        let sched = start_scheduler(&rt, dir.path(), &addr.to_string());
        (sched, call.join().unwrap())
    });
    let id = id.unwrap();
    assert!(
        id > before,
        "ids keep growing across restarts: {id} <= {before}"
    );

    // The heartbeat stream is re-opened by itself and heartbeats reach the new process.
    wait_until("heartbeat stream re-opened", || {
        pd.region_heartbeat(heartbeat(&region)).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        pd.heartbeat_stats().streams_opened >= 2
            && pd
                .get_region_by_id(region.id)
                .unwrap()
                .is_some_and(|(_, l)| l.is_some())
    });

    drop(pd);
    rt.block_on(sched.shutdown()).unwrap();
}

/// A scheduler member that says who leads and, when it leads, allocates ids.
struct MockPd {
    cluster_id: u64,
    me: String,
    leader: Arc<Mutex<String>>,
    next_id: AtomicU64,
    seen_cluster_ids: Arc<Mutex<Vec<u64>>>,
}

fn header(cluster_id: u64, error: Option<ErrorType>) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id,
        error: error.map(|t| proto::pdpb::Error {
            r#type: t as i32,
            message: "mock says no".into(),
        }),
    })
}

#[tonic::async_trait]
impl Pd for MockPd {
    async fn get_members(
        &self,
        _: Request<GetMembersRequest>,
    ) -> Result<Response<GetMembersResponse>, Status> {
        let member = |url: &str| Member {
            name: url.into(),
            client_urls: vec![url.into()],
            ..Default::default()
        };
        let leader = self.leader.lock().clone();
        Ok(Response::new(GetMembersResponse {
            header: header(self.cluster_id, None),
            members: vec![member(&self.me), member(&leader)],
            leader: Some(member(&leader)),
            etcd_leader: None,
        }))
    }

    async fn alloc_id(
        &self,
        req: Request<AllocIdRequest>,
    ) -> Result<Response<AllocIdResponse>, Status> {
        let cluster_id = req.into_inner().header.map_or(0, |h| h.cluster_id);
        self.seen_cluster_ids.lock().push(cluster_id);
        if *self.leader.lock() != self.me {
            return Err(Status::unavailable("not leader"));
        }
        let err = (cluster_id != self.cluster_id).then_some(ErrorType::Unknown);
        Ok(Response::new(AllocIdResponse {
            header: header(self.cluster_id, err),
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
        }))
    }

    async fn get_store(
        &self,
        _: Request<GetStoreRequest>,
    ) -> Result<Response<GetStoreResponse>, Status> {
        Ok(Response::new(GetStoreResponse {
            header: header(self.cluster_id, Some(ErrorType::StoreTombstone)),
            ..Default::default()
        }))
    }
}

struct MockMember {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

fn start_mock(
    rt: &Runtime,
    leader: Arc<Mutex<String>>,
    seen: Arc<Mutex<Vec<u64>>>,
    first_id: u64,
) -> MockMember {
    rt.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let svc = MockPd {
            cluster_id: 7,
            me: url.clone(),
            leader,
            next_id: AtomicU64::new(first_id),
            seen_cluster_ids: seen,
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(PdServer::new(svc))
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        MockMember {
            url,
            stop: Some(stop),
            task,
        }
    })
}

#[test]
fn follows_the_leader_and_its_successor() {
    let rt = runtime();
    let leader = Arc::new(Mutex::new(String::new()));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut a = start_mock(&rt, leader.clone(), seen.clone(), 1000);
    let mut b = start_mock(&rt, leader.clone(), seen.clone(), 2000);
    *leader.lock() = b.url.clone();

    // Configured with the follower only: GetMembers leads the client to the leader.
    let pd = GrpcPdClient::connect(
        &[a.url.clone()],
        rt.handle().clone(),
        PdConfig::new_test_config(),
    )
    .unwrap();
    assert_eq!(pd.cluster_id(), 7);
    assert_eq!(pd.leader_url(), b.url);
    assert_eq!(pd.alloc_id().unwrap(), 2000);
    assert_eq!(*seen.lock(), vec![7], "requests carry the cluster id");

    // Header errors are answers, not retried.
    let err = pd.get_store(1).unwrap_err();
    assert!(
        matches!(&err, Error::Pd(m) if m.contains("STORE_TOMBSTONE")),
        "{err}"
    );

    // The leader dies and the follower takes over: the next request finds it.
    let _ = b.stop.take().unwrap().send(());
    rt.block_on(&mut b.task).unwrap();
    *leader.lock() = a.url.clone();
    assert_eq!(pd.alloc_id().unwrap(), 1000);
    assert_eq!(pd.leader_url(), a.url);

    drop(pd);
    let _ = a.stop.take().unwrap().send(());
    rt.block_on(&mut a.task).unwrap();
}

#[test]
fn gives_up_cleanly_when_no_scheduler_answers() {
    // A port nobody listens on (bound, then released).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = PdConfig {
        retry_timeout: Duration::from_millis(300),
        ..PdConfig::new_test_config()
    };
    let started = Instant::now();
    let err = GrpcPdClient::connect_with_own_runtime(&[addr.to_string()], cfg).unwrap_err();
    assert!(
        matches!(&err, Error::Pd(m) if m.contains("no scheduler leader reachable")),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let err = GrpcPdClient::connect_with_own_runtime(&[], PdConfig::new_test_config()).unwrap_err();
    assert!(matches!(err, Error::Pd(_)));
}
