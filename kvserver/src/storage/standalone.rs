//! Single-node storage: the local kv engine, no replication.

use std::path::Path;

use proto::kvrpcpb::Context;
use proto::metapb::Region;
use raft_core::config::EngineConfig;
use raft_core::engine::{KvEngine, Mutable, RegionSnapshot, RocksEngine};
use raft_core::keys;

use super::{Modify, Storage};
use crate::errors::Result;

/// Storage backed directly by one RocksDB kv engine.
///
/// Writes are synced: with no Raft log underneath, the engine's WAL is the only copy, so an
/// acknowledged write must already be on disk.
#[derive(Clone, Debug)]
pub struct StandaloneStorage {
    engine: RocksEngine,
}

impl StandaloneStorage {
    /// Opens (creating if needed) the kv engine under `<data_dir>/kv`.
    pub fn open(data_dir: &Path, cfg: &EngineConfig) -> Result<StandaloneStorage> {
        let engine = RocksEngine::open_kv(&data_dir.join("kv"), cfg)?;
        Ok(StandaloneStorage { engine })
    }

    /// The underlying engine, for tests and tools.
    pub fn engine(&self) -> &RocksEngine {
        &self.engine
    }

    /// Applies `batch` synchronously (the async [`Storage::write`] wraps this).
    pub fn write_sync(&self, batch: Vec<Modify>) -> Result<()> {
        let mut wb = self.engine.write_batch();
        for m in batch {
            match m {
                Modify::Put { cf, key, value } => wb.put_cf(cf, &keys::data_key(&key), &value)?,
                Modify::Delete { cf, key } => wb.delete_cf(cf, &keys::data_key(&key))?,
                Modify::DeleteRange {
                    cf,
                    start_key,
                    end_key,
                } => wb.delete_range_cf(
                    cf,
                    &keys::data_key(&start_key),
                    &keys::data_end_key(&end_key),
                )?,
            }
        }
        self.engine.write(&mut wb, true)?;
        Ok(())
    }

    /// A snapshot of the whole key space.
    pub fn snapshot_sync(&self) -> RegionSnapshot {
        RegionSnapshot::new(self.engine.snapshot(), Region::default())
    }
}

impl Storage for StandaloneStorage {
    async fn write(&self, _ctx: &Context, batch: Vec<Modify>) -> Result<()> {
        // A synced RocksDB write blocks on fsync; keep it off the async executor's threads.
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_sync(batch))
            .await
            .map_err(|e| crate::errors::Error::Other(format!("write task failed: {e}")))?
    }

    async fn snapshot(&self, _ctx: &Context) -> Result<RegionSnapshot> {
        Ok(self.snapshot_sync())
    }
}
