//! A standalone `tikvpb.Tikv` service called in-process, with direct access to its column
//! families for seeding and inspecting MVCC data (the role TinyKV's `MemStorage` plays).

use std::collections::BTreeMap;

use kvserver::config::Limits;
use kvserver::mvcc::{Key, Lock, LockType, MvccReader, MvccTxn, Write, WriteType};
use kvserver::service::TikvService;
use kvserver::storage::StandaloneStorage;
use proto::kvrpcpb::*;
use proto::tikvpb::tikv_server::Tikv;
use raft_core::config::EngineConfig;
use raft_core::engine::{CF_DEFAULT, CF_LOCK, CF_WRITE};
use tonic::{Code, Request};

pub use kvserver::mvcc::compose_ts;

/// Every column family, in a fixed order.
pub const CFS: [&str; 3] = [CF_DEFAULT, CF_LOCK, CF_WRITE];

/// A service over a fresh standalone store in a temporary directory.
pub struct Server {
    pub svc: TikvService<StandaloneStorage>,
    storage: StandaloneStorage,
    _dir: tempfile::TempDir,
}

/// Unwraps a handler's result; a gRPC status here is a test failure.
fn ok<T>(res: Result<tonic::Response<T>, tonic::Status>) -> T {
    match res {
        Ok(resp) => resp.into_inner(),
        Err(status) => panic!("unexpected gRPC status {status:?}"),
    }
}

impl Server {
    pub fn new() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = StandaloneStorage::open(dir.path(), &EngineConfig::new_test_config())
            .expect("open standalone storage");
        let svc = TikvService::new(storage.clone(), Limits::new_test_config());
        Server {
            svc,
            storage,
            _dir: dir,
        }
    }

    // ---- seeding and inspecting data ---------------------------------------------------------

    pub fn apply(&self, txn: MvccTxn) {
        self.storage
            .write_sync(txn.into_modifies())
            .expect("write batch");
    }

    pub fn reader(&self) -> MvccReader {
        MvccReader::new(self.storage.snapshot_sync())
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
        self.storage
            .snapshot_sync()
            .get_value_cf(CF_DEFAULT, &Key::from_raw(key).append_ts(start_ts))
            .unwrap()
    }

    /// Every entry of every CF: compare two dumps to prove a command changed nothing.
    pub fn dump(&self) -> BTreeMap<(&'static str, Vec<u8>), Vec<u8>> {
        let snap = self.storage.snapshot_sync();
        let mut out = BTreeMap::new();
        for cf in CFS {
            snap.scan_cf(cf, b"", b"", |k, v| {
                out.insert((cf, k.to_vec()), v.to_vec());
                Ok(true)
            })
            .unwrap();
        }
        out
    }

    /// Number of entries in `cf`.
    pub fn cf_len(&self, cf: &str) -> usize {
        self.dump().keys().filter(|(c, _)| *c == cf).count()
    }

    // ---- RPCs ----------------------------------------------------------------------------------

    pub async fn get(&self, key: &[u8], version: u64) -> GetResponse {
        ok(self
            .svc
            .kv_get(Request::new(GetRequest {
                key: key.to_vec(),
                version,
                ..Default::default()
            }))
            .await)
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
        ok(self
            .svc
            .kv_batch_get(Request::new(BatchGetRequest {
                keys: keys.iter().map(|k| k.to_vec()).collect(),
                version,
                ..Default::default()
            }))
            .await)
    }

    pub async fn scan(&self, req: ScanRequest) -> ScanResponse {
        ok(self.svc.kv_scan(Request::new(req)).await)
    }

    pub async fn prewrite(&self, req: PrewriteRequest) -> PrewriteResponse {
        ok(self.svc.kv_prewrite(Request::new(req)).await)
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
        ok(self
            .svc
            .kv_commit(Request::new(CommitRequest {
                keys: keys.iter().map(|k| k.to_vec()).collect(),
                start_version: start_ts,
                commit_version: commit_ts,
                ..Default::default()
            }))
            .await)
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
        ok(self
            .svc
            .kv_batch_rollback(Request::new(BatchRollbackRequest {
                keys: keys.iter().map(|k| k.to_vec()).collect(),
                start_version: start_ts,
                ..Default::default()
            }))
            .await)
    }

    pub async fn check_txn_status(&self, req: CheckTxnStatusRequest) -> CheckTxnStatusResponse {
        let resp = ok(self.svc.kv_check_txn_status(Request::new(req)).await);
        assert_status_triple(&resp);
        resp
    }

    pub async fn resolve(&self, req: ResolveLockRequest) -> ResolveLockResponse {
        ok(self.svc.kv_resolve_lock(Request::new(req)).await)
    }

    pub async fn heart_beat(
        &self,
        primary: &[u8],
        start_ts: u64,
        ttl: u64,
    ) -> TxnHeartBeatResponse {
        ok(self
            .svc
            .kv_txn_heart_beat(Request::new(TxnHeartBeatRequest {
                primary_lock: primary.to_vec(),
                start_version: start_ts,
                advise_lock_ttl: ttl,
                ..Default::default()
            }))
            .await)
    }

    pub async fn scan_lock(&self, req: ScanLockRequest) -> ScanLockResponse {
        ok(self.svc.kv_scan_lock(Request::new(req)).await)
    }

    pub async fn check_secondary_locks(
        &self,
        keys: &[&[u8]],
        start_ts: u64,
    ) -> CheckSecondaryLocksResponse {
        ok(self
            .svc
            .kv_check_secondary_locks(Request::new(CheckSecondaryLocksRequest {
                keys: keys.iter().map(|k| k.to_vec()).collect(),
                start_version: start_ts,
                ..Default::default()
            }))
            .await)
    }

    pub async fn pessimistic_lock(&self, req: PessimisticLockRequest) -> PessimisticLockResponse {
        ok(self.svc.kv_pessimistic_lock(Request::new(req)).await)
    }

    pub async fn pessimistic_rollback(
        &self,
        keys: &[&[u8]],
        start_ts: u64,
        for_update_ts: u64,
    ) -> PessimisticRollbackResponse {
        ok(self
            .svc
            .kv_pessimistic_rollback(Request::new(PessimisticRollbackRequest {
                keys: keys.iter().map(|k| k.to_vec()).collect(),
                start_version: start_ts,
                for_update_ts,
                ..Default::default()
            }))
            .await)
    }
}

/// The gRPC status code of a request the service must refuse outright.
pub fn refused<T: std::fmt::Debug>(res: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match res {
        Ok(resp) => panic!("request was accepted: {:?}", resp.into_inner()),
        Err(status) => status.code(),
    }
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
