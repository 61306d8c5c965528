//! A standalone server on an ephemeral loopback port, a real gRPC client to it, and direct access
//! to its storage for checks that must bypass the service.

use std::time::Duration;

use kvserver::config::ServerConfig;
use kvserver::server::RunningServer;
use kvserver::service::TikvService;
use kvserver::storage::{Modify, StandaloneStorage};
use proto::kvrpcpb::*;
use proto::tikvpb::tikv_client::TikvClient;
use raft_core::engine::{EngineIterator, DATA_CFS};
use tempfile::TempDir;
use tonic::transport::Channel;

/// The generated gRPC client, as every test uses it.
pub type Client = TikvClient<Channel>;

/// A running standalone server with its data in a temporary directory.
pub struct TestServer {
    _dir: TempDir,
    pub cfg: ServerConfig,
    server: Option<RunningServer>,
    storage: Option<StandaloneStorage>,
    client: Client,
}

/// Connects a client that accepts large responses (value-size tests read big values back).
pub async fn connect(addr: std::net::SocketAddr) -> Client {
    TikvClient::connect(format!("http://{addr}"))
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"))
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

/// A fresh test configuration whose data lives under `dir`.
pub fn test_config(dir: &TempDir) -> ServerConfig {
    ServerConfig {
        data_dir: dir.path().join("data"),
        ..ServerConfig::new_test_config()
    }
}

impl TestServer {
    /// Starts a server with [`ServerConfig::new_test_config`].
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    /// Starts a server after `tweak` adjusted the test configuration.
    pub async fn start_with(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = test_config(&dir);
        tweak(&mut cfg);
        cfg.validate().unwrap();
        let (server, storage) = Self::serve(&cfg).await;
        let client = connect(server.local_addr()).await;
        TestServer {
            _dir: dir,
            cfg,
            server: Some(server),
            storage: Some(storage),
            client,
        }
    }

    async fn serve(cfg: &ServerConfig) -> (RunningServer, StandaloneStorage) {
        let storage = StandaloneStorage::open(&cfg.data_dir, &cfg.rocksdb).unwrap();
        let service = TikvService::new(storage.clone(), cfg.limits.clone());
        let server = RunningServer::start(
            cfg.listen_addr().unwrap(),
            service,
            Duration::from_secs(cfg.shutdown_timeout_secs),
        )
        .await
        .unwrap();
        (server, storage)
    }

    /// A client connected to the server (cheap: clones share one connection).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The server's storage, for reads and writes that bypass the service.
    pub fn storage(&self) -> &StandaloneStorage {
        self.storage.as_ref().expect("server is running")
    }

    /// Writes straight into storage.
    pub fn put_direct(&self, cf: &'static str, key: &[u8], value: &[u8]) {
        self.storage()
            .write_sync(vec![Modify::Put {
                cf,
                key: key.to_vec(),
                value: value.to_vec(),
            }])
            .unwrap();
    }

    /// Reads straight from storage.
    pub fn get_direct(&self, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
        self.storage()
            .snapshot_sync()
            .get_value_cf(cf, key)
            .unwrap()
    }

    /// Every `(cf, key, value)` in storage, in CF then key order.
    pub fn dump(&self) -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
        let snap = self.storage().snapshot_sync();
        let mut all = vec![];
        for &cf in DATA_CFS {
            let mut it = snap.iter_cf(cf, b"", b"").unwrap();
            let mut ok = it.seek_to_first().unwrap();
            while ok {
                all.push((cf, it.key().to_vec(), it.value().to_vec()));
                ok = it.next().unwrap();
            }
        }
        all
    }

    /// Shuts the server down cleanly (closing the engine) and starts it again on the same data.
    pub async fn restart(&mut self) {
        self.server.take().unwrap().shutdown().await.unwrap();
        drop(self.storage.take());
        let (server, storage) = Self::serve(&self.cfg).await;
        self.client = connect(server.local_addr()).await;
        self.server = Some(server);
        self.storage = Some(storage);
    }
}

// ---- client shorthands: each asserts the call itself succeeded ----

pub async fn put(c: &mut Client, cf: &str, key: &[u8], value: &[u8]) {
    let r = c
        .raw_put(RawPutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            cf: cf.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty() && r.region_error.is_none(), "put: {r:?}");
}

pub async fn get(c: &mut Client, cf: &str, key: &[u8]) -> Option<Vec<u8>> {
    let r = c
        .raw_get(RawGetRequest {
            key: key.to_vec(),
            cf: cf.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(r.error.is_empty() && r.region_error.is_none(), "get: {r:?}");
    if r.not_found {
        assert!(r.value.is_empty());
        None
    } else {
        Some(r.value)
    }
}

pub async fn delete(c: &mut Client, cf: &str, key: &[u8]) {
    let r = c
        .raw_delete(RawDeleteRequest {
            key: key.to_vec(),
            cf: cf.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        r.error.is_empty() && r.region_error.is_none(),
        "delete: {r:?}"
    );
}

/// Runs a scan and returns its `(key, value)` pairs.
pub async fn scan(c: &mut Client, req: RawScanRequest) -> Vec<(Vec<u8>, Vec<u8>)> {
    let r = c.raw_scan(req).await.unwrap().into_inner();
    assert!(r.region_error.is_none(), "scan: {r:?}");
    pairs(r.kvs)
}

/// A forward scan of `[start, end)` in the default CF.
pub fn scan_req(start: &[u8], end: &[u8], limit: u32) -> RawScanRequest {
    RawScanRequest {
        start_key: start.to_vec(),
        end_key: end.to_vec(),
        limit,
        ..Default::default()
    }
}

pub fn pairs(kvs: Vec<KvPair>) -> Vec<(Vec<u8>, Vec<u8>)> {
    kvs.into_iter()
        .map(|p| {
            assert!(p.error.is_none(), "pair error: {p:?}");
            (p.key, p.value)
        })
        .collect()
}

/// `(key, value)` pairs from string literals.
pub fn kv(items: &[(&str, &str)]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items
        .iter()
        .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

/// Keys only, from string literals.
pub fn keys(items: &[&str]) -> Vec<(Vec<u8>, Vec<u8>)> {
    items
        .iter()
        .map(|k| (k.as_bytes().to_vec(), vec![]))
        .collect()
}
