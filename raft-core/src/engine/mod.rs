//! The storage engine surface: a handful of small traits and one RocksDB implementation.
//!
//! A store owns two engines ([`Engines`]):
//! - **kv**: column families [`CF_DEFAULT`], [`CF_LOCK`], [`CF_WRITE`]. Holds user data under
//!   `'z'`-prefixed data keys and per-region metadata (apply state, region state) under local keys
//!   in `CF_DEFAULT` (see [`crate::keys`]). Written by apply with WAL on but **not synced**: after a
//!   crash, whatever apply lost is replayed from the durable raft log.
//! - **raft**: one column family. Holds raft log entries and `RaftLocalState`. Written by the Ready
//!   loop; the caller chooses whether a write is synced, so a multi-raft store can group-commit many
//!   regions' writes with a single fsync.
//!
//! The traits are deliberately narrow (point get, bounded iteration, write batch, point-in-time
//! snapshot, range delete) so another engine could be plugged in and checked by the same
//! conformance tests (`engine/tests.rs`). Upper layers use the concrete [`RocksEngine`].

mod region_snapshot;
mod rocks;
#[cfg(test)]
mod tests;

pub use region_snapshot::{RegionIterator, RegionSnapshot};
pub use rocks::{RocksEngine, RocksIterator, RocksSnapshot, RocksWriteBatch};

use crate::errors::Result;

/// Column family of committed values (raw API data and MVCC values).
pub const CF_DEFAULT: &str = "default";
/// Column family of transaction locks.
pub const CF_LOCK: &str = "lock";
/// Column family of MVCC commit records.
pub const CF_WRITE: &str = "write";
/// Every column family of the kv engine, in a fixed order (snapshots iterate them in this order).
pub const DATA_CFS: &[&str] = &[CF_DEFAULT, CF_LOCK, CF_WRITE];
/// Column families of the raft engine.
pub const RAFT_CFS: &[&str] = &[CF_DEFAULT];

/// Whether `cf` names one of the kv engine's column families.
pub fn is_data_cf(cf: &str) -> bool {
    DATA_CFS.contains(&cf)
}

/// Point reads.
pub trait Peekable {
    /// Reads the value of `key` in column family `cf`; `Ok(None)` if absent.
    fn get_value_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// Reads and decodes a protobuf message stored at `key` in `cf`.
    fn get_msg_cf<M: prost::Message + Default>(&self, cf: &str, key: &[u8]) -> Result<Option<M>> {
        match self.get_value_cf(cf, key)? {
            Some(v) => Ok(Some(M::decode(v.as_slice())?)),
            None => Ok(None),
        }
    }
}

/// Bounds and options of an iterator.
#[derive(Debug, Clone, Default)]
pub struct IterOptions {
    /// Inclusive lower bound; the iterator never yields a smaller key.
    pub lower_bound: Option<Vec<u8>>,
    /// Exclusive upper bound; the iterator never yields this key or a larger one.
    pub upper_bound: Option<Vec<u8>>,
    /// Whether blocks read by this iterator are added to the block cache. Off for big one-off
    /// scans (snapshot generation, split checks) so they don't evict hot data.
    pub fill_cache: bool,
}

impl IterOptions {
    /// Options for the range `[lower, upper)`, filling the cache.
    pub fn new(lower: Vec<u8>, upper: Vec<u8>) -> Self {
        IterOptions {
            lower_bound: Some(lower),
            upper_bound: Some(upper),
            fill_cache: true,
        }
    }
}

/// A cursor over one column family. Positioning methods return whether the cursor now points at
/// an entry; `key`/`value` may only be called when it does.
pub trait EngineIterator {
    /// Positions at the first key `>= key`.
    fn seek(&mut self, key: &[u8]) -> Result<bool>;
    /// Positions at the last key `<= key`.
    fn seek_for_prev(&mut self, key: &[u8]) -> Result<bool>;
    /// Positions at the first key within the bounds.
    fn seek_to_first(&mut self) -> Result<bool>;
    /// Positions at the last key within the bounds.
    fn seek_to_last(&mut self) -> Result<bool>;
    /// Moves to the next key.
    fn next(&mut self) -> Result<bool>;
    /// Moves to the previous key.
    fn prev(&mut self) -> Result<bool>;
    /// Whether the cursor points at an entry (an I/O error is returned, not hidden).
    fn valid(&self) -> Result<bool>;
    /// The current key. Panics if the cursor is not valid.
    fn key(&self) -> &[u8];
    /// The current value. Panics if the cursor is not valid.
    fn value(&self) -> &[u8];
}

/// Bounded iteration.
pub trait Iterable {
    /// The iterator type.
    type Iter: EngineIterator;

    /// Opens an iterator over `cf` with the given bounds.
    fn iterator_cf(&self, cf: &str, opts: IterOptions) -> Result<Self::Iter>;

    /// Calls `f` on every entry of `cf` in `[start, end)` in key order until it returns
    /// `Ok(false)` or an error.
    fn scan_cf<F>(
        &self,
        cf: &str,
        start: &[u8],
        end: &[u8],
        fill_cache: bool,
        mut f: F,
    ) -> Result<()>
    where
        F: FnMut(&[u8], &[u8]) -> Result<bool>,
    {
        let mut opts = IterOptions::new(start.to_vec(), end.to_vec());
        opts.fill_cache = fill_cache;
        let mut it = self.iterator_cf(cf, opts)?;
        let mut ok = it.seek_to_first()?;
        while ok {
            if !f(it.key(), it.value())? {
                break;
            }
            ok = it.next()?;
        }
        Ok(())
    }
}

/// Buffered mutations, applied atomically by [`KvEngine::write`].
pub trait Mutable {
    /// Sets `key` to `value` in `cf`.
    fn put_cf(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<()>;
    /// Deletes `key` in `cf`.
    fn delete_cf(&mut self, cf: &str, key: &[u8]) -> Result<()>;
    /// Deletes every key in `[start, end)` in `cf`.
    fn delete_range_cf(&mut self, cf: &str, start: &[u8], end: &[u8]) -> Result<()>;

    /// Encodes `msg` and stores it at `key` in `cf`.
    fn put_msg_cf<M: prost::Message>(&mut self, cf: &str, key: &[u8], msg: &M) -> Result<()> {
        self.put_cf(cf, key, &msg.encode_to_vec())
    }
}

/// A batch of mutations.
pub trait WriteBatch: Mutable {
    /// Number of operations buffered.
    fn count(&self) -> usize;
    /// Whether nothing is buffered.
    fn is_empty(&self) -> bool {
        self.count() == 0
    }
    /// Approximate size in bytes of the buffered operations.
    fn data_size(&self) -> usize;
    /// Drops everything buffered, keeping the allocation.
    fn clear(&mut self);
}

/// A consistent point-in-time view of an engine. Cheap to clone and safe to share across threads.
pub trait Snapshot: Peekable + Iterable + Clone + Send + Sync + 'static {}

/// An engine: reads, snapshots and atomic batched writes.
pub trait KvEngine: Peekable + Iterable + Clone + Send + Sync + 'static {
    /// Snapshot type.
    type Snapshot: Snapshot;
    /// Write batch type.
    type WriteBatch: WriteBatch + Send;

    /// Takes a consistent point-in-time snapshot.
    fn snapshot(&self) -> Self::Snapshot;
    /// Creates an empty write batch for this engine.
    fn write_batch(&self) -> Self::WriteBatch;
    /// Applies `wb` atomically and leaves it empty for reuse. With `sync`, returns only after the
    /// write is durable (fsync of the WAL, covering every earlier unsynced write too). An empty
    /// batch with `sync` still syncs, so earlier unsynced writes become durable.
    fn write(&self, wb: &mut Self::WriteBatch, sync: bool) -> Result<()>;
    /// Makes every write so far durable.
    fn sync_wal(&self) -> Result<()>;
    /// Approximate on-disk plus in-memory size of `[start, end)` in `cf`, in bytes.
    fn approximate_size_cf(&self, cf: &str, start: &[u8], end: &[u8]) -> Result<u64>;
    /// Filesystem path of the engine.
    fn path(&self) -> &std::path::Path;
}

/// The two engines of a store.
#[derive(Clone)]
pub struct Engines {
    /// User data and per-region apply/region state.
    pub kv: RocksEngine,
    /// Raft logs and raft hard state.
    pub raft: RocksEngine,
}

impl Engines {
    /// Opens (creating if missing) `<dir>/kv` and `<dir>/raft`.
    pub fn open(dir: &std::path::Path, cfg: &crate::config::EngineConfig) -> Result<Engines> {
        let kv = RocksEngine::open_kv(&dir.join("kv"), cfg)?;
        let raft = RocksEngine::open_raft(&dir.join("raft"), cfg)?;
        Ok(Engines { kv, raft })
    }
}
