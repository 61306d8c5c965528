//! A `tikvpb.Tikv` service called in-process over either storage, with direct access to its
//! column families for seeding and inspecting MVCC data (the role TinyKV's `MemStorage` plays).
//!
//! Every scenario is written once inside [`scenarios!`] and runs over each [`Backend`]:
//! - `standalone`: one `StandaloneStorage` in a temporary directory;
//! - `raft`: a 3-store in-process cluster (one region), each store serving its own
//!   `TikvService<RaftStorage>`; requests are routed to the region leader with a proper
//!   `Context` and retried on region errors ([`tests::txn_client::TxnCluster`]). Seeding writes go
//!   through Raft too, reads come from the leader's read-index snapshot, and every [`Server::dump`]
//!   also waits until every store's kv engine holds exactly the leader's data.

use std::collections::BTreeMap;
use std::sync::Arc;

use kvserver::config::Limits;
use kvserver::mvcc::{Key, Lock, LockType, MvccReader, MvccTxn, Write, WriteType};
use kvserver::service::TikvService;
use kvserver::storage::{Modify, RegionSnapshot, StandaloneStorage};
use parking_lot::MutexGuard;
use proto::kvrpcpb::*;
use raft_core::config::EngineConfig;
use raft_core::engine::{KvEngine, CF_DEFAULT, CF_LOCK, CF_WRITE};
use tests::txn_client::{TxnCluster, TxnRpc};
use tests::{cmd, wait_for, Cluster, ClusterConfig};
use tonic::{Code, Status};

pub use kvserver::mvcc::compose_ts;

/// Every column family, in a fixed order.
pub const CFS: [&str; 3] = [CF_DEFAULT, CF_LOCK, CF_WRITE];

/// Stores of the Raft backend's cluster.
const RAFT_STORES: usize = 3;

/// Every entry of every CF, keyed by (CF, key).
pub type Dump = BTreeMap<(&'static str, Vec<u8>), Vec<u8>>;

/// Runs each scenario once per backend, as `<module>::standalone::<name>` and
/// `<module>::raft::<name>`:
///
/// ```ignore
/// scenarios! {
///     /// What it checks.
///     async fn name(s) { s.must_put(...).await; ... }
/// }
/// ```
macro_rules! scenarios {
    ($($(#[$meta:meta])* async fn $name:ident($s:ident) $body:block)*) => {
        /// The scenarios over `StandaloneStorage`.
        mod standalone {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test]
                async fn $name() {
                    let $s = $crate::helpers::Server::new($crate::helpers::Backend::Standalone);
                    $body
                }
            )*
        }

        /// The scenarios over `RaftStorage` on a 3-store cluster.
        mod raft {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test]
                async fn $name() {
                    let $s = $crate::helpers::Server::new($crate::helpers::Backend::Raft);
                    $body
                }
            )*
        }
    };
}
pub(crate) use scenarios;

/// Where a [`Server`] keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `StandaloneStorage` in a temporary directory.
    Standalone,
    /// `RaftStorage` on every store of a 3-store cluster with one region.
    Raft,
}

enum Inner {
    Standalone {
        svc: TikvService<StandaloneStorage>,
        storage: StandaloneStorage,
        _dir: tempfile::TempDir,
    },
    Raft {
        txn: TxnCluster,
        /// Declared after the cluster: held until every store has stopped.
        _serial: MutexGuard<'static, ()>,
    },
}

/// The service over a fresh store of one backend.
pub struct Server {
    inner: Inner,
}

/// The Raft backend's cluster settings: the suites' test config with 20 ms ticks, so each
/// scenario's cluster elects its leader in a few hundred milliseconds. These scenarios check
/// transactional semantics, not timing: a spurious election only costs a routing retry.
fn raft_config() -> ClusterConfig {
    let mut cfg = ClusterConfig::new_test_config();
    cfg.raftstore.raft.base_tick_interval_ms = 20;
    cfg
}

/// The gRPC status of a request the service must refuse outright.
pub fn refused<T: std::fmt::Debug>(res: Result<T, Status>) -> Code {
    match res {
        Ok(resp) => panic!("request was accepted: {resp:?}"),
        Err(status) => status.code(),
    }
}

impl Server {
    pub fn new(backend: Backend) -> Server {
        let inner = match backend {
            Backend::Standalone => {
                let dir = tempfile::tempdir().expect("temp dir");
                let storage = StandaloneStorage::open(dir.path(), &EngineConfig::new_test_config())
                    .expect("open standalone storage");
                let svc = TikvService::new(storage.clone(), Limits::new_test_config());
                Inner::Standalone {
                    svc,
                    storage,
                    _dir: dir,
                }
            }
            Backend::Raft => {
                // One cluster at a time per binary: the bank tests need the machine's cores.
                let serial = tests::serial();
                tests::init_logging();
                let cluster = Cluster::new(RAFT_STORES, raft_config()).expect("create the cluster");
                cluster.start().expect("start the cluster");
                assert!(
                    cluster.leader_of_region(1).is_some(),
                    "no leader was elected"
                );
                Inner::Raft {
                    txn: TxnCluster::new(Arc::new(cluster)),
                    _serial: serial,
                }
            }
        };
        Server { inner }
    }

    // ---- seeding and inspecting data ---------------------------------------------------------

    /// Writes `txn`'s mutations atomically (through Raft on the Raft backend).
    pub fn apply(&self, txn: MvccTxn) {
        let modifies = txn.into_modifies();
        match &self.inner {
            Inner::Standalone { storage, .. } => storage.write_sync(modifies).expect("write batch"),
            Inner::Raft { txn, .. } => {
                let Some(route) = modifies.first().and_then(|m| m.key()).map(<[u8]>::to_vec) else {
                    return;
                };
                let requests = modifies
                    .into_iter()
                    .map(|m| match m {
                        Modify::Put { cf, key, value } => cmd::put(cf, &key, &value),
                        Modify::Delete { cf, key } => cmd::delete(cf, &key),
                        Modify::DeleteRange { .. } => unreachable!("MvccTxn never deletes ranges"),
                    })
                    .collect();
                let cluster = txn.cluster();
                cluster
                    .request(&route, requests, cluster.config().request_timeout)
                    .expect("write through raft");
            }
        }
    }

    /// A consistent view of the data: the engine's on the standalone backend, the leader's
    /// read-index snapshot of the region on the Raft backend.
    pub fn snapshot(&self) -> RegionSnapshot {
        match &self.inner {
            Inner::Standalone { storage, .. } => storage.snapshot_sync(),
            Inner::Raft { txn, .. } => {
                let cluster = txn.cluster();
                let resp = cluster
                    .request(b"", vec![cmd::snap()], cluster.config().request_timeout)
                    .expect("snapshot through raft");
                let snap = resp.snapshot.expect("a Snap response carries a snapshot");
                assert!(
                    snap.region().start_key.is_empty() && snap.region().end_key.is_empty(),
                    "the project4 cluster has one region: {:?}",
                    snap.region()
                );
                snap
            }
        }
    }

    pub fn reader(&self) -> MvccReader {
        MvccReader::new(self.snapshot())
    }

    /// Stores a committed `Put` of `value` written by txn `start_ts` at `commit_ts` (long values
    /// go to the default CF, as prewrite would put them).
    pub fn put_committed(&self, key: &[u8], value: &[u8], start_ts: u64, commit_ts: u64) {
        let k = Key::from_raw(key);
        let mut txn = MvccTxn::new(start_ts);
        let short = kvserver::mvcc::lock::is_short_value(value);
        if !short {
            txn.put_value(&k, value.to_vec());
        }
        let write = Write::new(WriteType::Put, start_ts, short.then(|| value.to_vec()));
        txn.put_write(&k, commit_ts, &write);
        self.apply(txn);
    }

    /// Stores a write record of any type.
    pub fn put_write(&self, key: &[u8], commit_ts: u64, write: Write) {
        let mut txn = MvccTxn::new(write.start_ts);
        txn.put_write(&Key::from_raw(key), commit_ts, &write);
        self.apply(txn);
    }

    /// Stores a lock (and the value of a `Put` lock: inline if short).
    pub fn put_lock(&self, key: &[u8], lock: Lock) {
        let mut txn = MvccTxn::new(lock.ts);
        txn.put_lock(&Key::from_raw(key), &lock);
        self.apply(txn);
    }

    /// A lock of txn `ts` with primary `primary` and `ttl`.
    pub fn lock(lock_type: LockType, primary: &[u8], ts: u64, ttl: u64) -> Lock {
        Lock::new(lock_type, primary.to_vec(), ts, ttl)
    }

    pub fn lock_of(&self, key: &[u8]) -> Option<Lock> {
        self.reader().load_lock(&Key::from_raw(key)).unwrap()
    }

    /// The write record of `key` at exactly `ts`.
    pub fn write_at(&self, key: &[u8], ts: u64) -> Option<Write> {
        match self.reader().seek_write(&Key::from_raw(key), ts).unwrap() {
            Some((found, w)) if found == ts => Some(w),
            _ => None,
        }
    }

    /// The default-CF value of `key` written by txn `start_ts`.
    pub fn value_at(&self, key: &[u8], start_ts: u64) -> Option<Vec<u8>> {
        self.snapshot()
            .get_value_cf(CF_DEFAULT, &Key::from_raw(key).append_ts(start_ts))
            .unwrap()
    }

    /// Every entry of every CF: compare two dumps to prove a command changed nothing. On the
    /// Raft backend, also waits until every store has applied exactly the leader's data.
    pub fn dump(&self) -> Dump {
        let snap = self.snapshot();
        let view = dump_snapshot(&snap);
        if let Inner::Raft { txn, .. } = &self.inner {
            let cluster = txn.cluster();
            for store_id in cluster.store_ids() {
                let engines = cluster.engines(store_id).expect("a store of the cluster");
                let mut last = Dump::new();
                let same = wait_for(cluster.config().wait_timeout, || {
                    let local = RegionSnapshot::new(engines.kv.snapshot(), snap.region().clone());
                    last = dump_snapshot(&local);
                    last == view
                });
                assert!(
                    same,
                    "store {store_id}'s engine never matched the leader's data:\n  \
                     store: {last:?}\n  leader: {view:?}"
                );
            }
        }
        view
    }

    /// Number of entries in `cf`.
    pub fn cf_len(&self, cf: &str) -> usize {
        self.dump().keys().filter(|(c, _)| *c == cf).count()
    }

    // ---- RPCs ----------------------------------------------------------------------------------

    /// Sends `req` to the service (on the Raft backend: to the region leader, with its
    /// `Context` filled in and region errors retried). The caller's isolation level and
    /// resolved / committed locks are kept.
    pub async fn try_call<R: TxnRpc>(&self, req: R) -> Result<R::Resp, Status> {
        match &self.inner {
            Inner::Standalone { svc, .. } => R::call(svc, req).await.map(|r| r.into_inner()),
            Inner::Raft { txn, .. } => match txn.call(req).await {
                Ok(resp) => Ok(resp),
                Err(tests::Error::Rpc(status)) => Err(*status),
                Err(e) => panic!("request could not be served: {e}"),
            },
        }
    }

    /// [`Server::try_call`]; a gRPC status is a test failure.
    pub async fn call<R: TxnRpc>(&self, req: R) -> R::Resp {
        match self.try_call(req).await {
            Ok(resp) => resp,
            Err(status) => panic!("unexpected gRPC status {status:?}"),
        }
    }

    pub async fn get(&self, key: &[u8], version: u64) -> GetResponse {
        self.call(GetRequest {
            key: key.to_vec(),
            version,
            ..Default::default()
        })
        .await
    }

    /// The value of `key` at `version`; panics on any error.
    pub async fn must_get(&self, key: &[u8], version: u64) -> Option<Vec<u8>> {
        let resp = self.get(key, version).await;
        assert!(
            resp.region_error.is_none() && resp.error.is_none(),
            "{resp:?}"
        );
        (!resp.not_found).then_some(resp.value)
    }

    pub async fn batch_get(&self, keys: &[&[u8]], version: u64) -> BatchGetResponse {
        self.call(BatchGetRequest {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            version,
            ..Default::default()
        })
        .await
    }

    pub async fn scan(&self, req: ScanRequest) -> ScanResponse {
        self.call(req).await
    }

    pub async fn prewrite(&self, req: PrewriteRequest) -> PrewriteResponse {
        self.call(req).await
    }

    /// Prewrites `mutations` for txn `start_ts` (ttl 3000 ms).
    pub async fn prewrite_muts(
        &self,
        mutations: Vec<Mutation>,
        primary: &[u8],
        start_ts: u64,
    ) -> PrewriteResponse {
        self.prewrite(PrewriteRequest {
            mutations,
            primary_lock: primary.to_vec(),
            start_version: start_ts,
            lock_ttl: 3000,
            ..Default::default()
        })
        .await
    }

    pub async fn must_prewrite(&self, mutations: Vec<Mutation>, primary: &[u8], start_ts: u64) {
        let resp = self.prewrite_muts(mutations, primary, start_ts).await;
        assert!(
            resp.region_error.is_none() && resp.errors.is_empty(),
            "{resp:?}"
        );
    }

    pub async fn commit(&self, keys: &[&[u8]], start_ts: u64, commit_ts: u64) -> CommitResponse {
        self.call(CommitRequest {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            start_version: start_ts,
            commit_version: commit_ts,
            ..Default::default()
        })
        .await
    }

    pub async fn must_commit(&self, keys: &[&[u8]], start_ts: u64, commit_ts: u64) {
        let resp = self.commit(keys, start_ts, commit_ts).await;
        assert!(
            resp.region_error.is_none() && resp.error.is_none(),
            "{resp:?}"
        );
    }

    /// Prewrites and commits puts of `kvs` (primary = first key).
    pub async fn must_put(&self, kvs: &[(&[u8], &[u8])], start_ts: u64, commit_ts: u64) {
        let muts = kvs.iter().map(|(k, v)| put(k, v)).collect();
        self.must_prewrite(muts, kvs[0].0, start_ts).await;
        let keys: Vec<&[u8]> = kvs.iter().map(|(k, _)| *k).collect();
        self.must_commit(&keys, start_ts, commit_ts).await;
    }

    pub async fn rollback(&self, keys: &[&[u8]], start_ts: u64) -> BatchRollbackResponse {
        self.call(BatchRollbackRequest {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            start_version: start_ts,
            ..Default::default()
        })
        .await
    }

    pub async fn check_txn_status(&self, req: CheckTxnStatusRequest) -> CheckTxnStatusResponse {
        let resp = self.call(req).await;
        assert_status_triple(&resp);
        resp
    }

    pub async fn resolve(&self, req: ResolveLockRequest) -> ResolveLockResponse {
        self.call(req).await
    }

    pub async fn heart_beat(
        &self,
        primary: &[u8],
        start_ts: u64,
        ttl: u64,
    ) -> TxnHeartBeatResponse {
        self.call(TxnHeartBeatRequest {
            primary_lock: primary.to_vec(),
            start_version: start_ts,
            advise_lock_ttl: ttl,
            ..Default::default()
        })
        .await
    }

    pub async fn scan_lock(&self, req: ScanLockRequest) -> ScanLockResponse {
        self.call(req).await
    }

    pub async fn check_secondary_locks(
        &self,
        keys: &[&[u8]],
        start_ts: u64,
    ) -> CheckSecondaryLocksResponse {
        self.call(CheckSecondaryLocksRequest {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            start_version: start_ts,
            ..Default::default()
        })
        .await
    }

    pub async fn pessimistic_lock(&self, req: PessimisticLockRequest) -> PessimisticLockResponse {
        self.call(req).await
    }

    pub async fn pessimistic_rollback(
        &self,
        keys: &[&[u8]],
        start_ts: u64,
        for_update_ts: u64,
    ) -> PessimisticRollbackResponse {
        self.call(PessimisticRollbackRequest {
            keys: keys.iter().map(|k| k.to_vec()).collect(),
            start_version: start_ts,
            for_update_ts,
            ..Default::default()
        })
        .await
    }
}

/// Every entry of every CF of `snap` (within its region).
fn dump_snapshot(snap: &RegionSnapshot) -> Dump {
    let mut out = Dump::new();
    for cf in CFS {
        snap.scan_cf(cf, b"", b"", |k, v| {
            out.insert((cf, k.to_vec()), v.to_vec());
            Ok(true)
        })
        .unwrap();
    }
    out
}

/// Clients panic unless (commit_version, lock_ttl, lock_info) is exactly one of (0, 0, none),
/// (ts, 0, none) or (0, ttl > 0, some).
pub fn assert_status_triple(resp: &CheckTxnStatusResponse) {
    if resp.region_error.is_some() || resp.error.is_some() {
        return;
    }
    let ok = match (resp.commit_version, resp.lock_ttl, &resp.lock_info) {
        (0, 0, None) => true,
        (c, 0, None) if c > 0 => true,
        (0, t, Some(_)) if t > 0 => true,
        _ => false,
    };
    assert!(ok, "check-txn-status triple broken: {resp:?}");
}

pub fn mutation(op: Op, key: &[u8], value: &[u8]) -> Mutation {
    Mutation {
        op: op as i32,
        key: key.to_vec(),
        value: value.to_vec(),
        ..Default::default()
    }
}

pub fn put(key: &[u8], value: &[u8]) -> Mutation {
    mutation(Op::Put, key, value)
}

pub fn del(key: &[u8]) -> Mutation {
    mutation(Op::Del, key, b"")
}

/// The lock error in a key error, or a panic.
pub fn locked(err: &Option<KeyError>) -> &LockInfo {
    err.as_ref()
        .and_then(|e| e.locked.as_ref())
        .unwrap_or_else(|| panic!("expected a locked error, got {err:?}"))
}
