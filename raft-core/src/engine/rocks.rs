//! The RocksDB implementation of the engine traits.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBRawIteratorWithThreadMode,
    Options, ReadOptions, SnapshotWithThreadMode, WriteOptions, DB,
};

use super::{
    EngineIterator, IterOptions, Iterable, KvEngine, Mutable, Peekable, Snapshot, WriteBatch,
    DATA_CFS, RAFT_CFS,
};
use crate::config::EngineConfig;
use crate::errors::{Error, Result};

/// A RocksDB instance opened with a fixed set of column families. Cloning shares the instance.
#[derive(Clone)]
pub struct RocksEngine {
    db: Arc<DB>,
    path: Arc<PathBuf>,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.path)
            .finish()
    }
}

fn db_options(cfg: &EngineConfig) -> Options {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // Background flushes and compactions; the machine this runs on is small.
    opts.set_max_background_jobs(cfg.max_background_jobs);
    // Smooth out write-back instead of stalling on large flushes.
    opts.set_bytes_per_sync(1 << 20);
    opts.set_wal_bytes_per_sync(512 << 10);
    opts.set_max_total_wal_size(cfg.max_total_wal_size);
    // Pipelined writes let the WAL write of one group overlap the memtable insert of the
    // previous one; they help exactly the many-small-writes pattern of apply.
    opts.set_enable_pipelined_write(true);
    opts.set_keep_log_file_num(4);
    opts
}

fn cf_options(cfg: &EngineConfig, cache: &Cache, write_buffer_size: usize) -> Options {
    let mut block = BlockBasedOptions::default();
    block.set_block_cache(cache);
    block.set_block_size(16 << 10);
    block.set_bloom_filter(10.0, false);
    // Index and filter blocks compete for the same cache, so memory stays bounded by config.
    block.set_cache_index_and_filter_blocks(true);
    block.set_pin_l0_filter_and_index_blocks_in_cache(true);
    let mut opts = Options::default();
    opts.set_block_based_table_factory(&block);
    opts.set_write_buffer_size(write_buffer_size);
    opts.set_max_write_buffer_number(4);
    opts.set_level_compaction_dynamic_level_bytes(true);
    opts.set_target_file_size_base(cfg.target_file_size_base);
    opts
}

impl RocksEngine {
    /// Opens the kv engine (CFs default, lock, write) at `path`.
    pub fn open_kv(path: &Path, cfg: &EngineConfig) -> Result<RocksEngine> {
        let cache = Cache::new_lru_cache(cfg.block_cache_size as usize);
        let cfs = DATA_CFS.iter().map(|name| {
            // The lock CF is small and short-lived; a smaller memtable flushes it sooner.
            let wbs = if *name == super::CF_LOCK {
                cfg.write_buffer_size.min(32 << 20)
            } else {
                cfg.write_buffer_size
            };
            ColumnFamilyDescriptor::new(*name, cf_options(cfg, &cache, wbs as usize))
        });
        Self::open_with(path, db_options(cfg), cfs.collect())
    }

    /// Opens the raft engine (one CF) at `path`.
    pub fn open_raft(path: &Path, cfg: &EngineConfig) -> Result<RocksEngine> {
        // Raft logs are written once and read back mostly from the entry cache; a small cache is
        // enough and the rest of the memory goes to the kv engine.
        let cache = Cache::new_lru_cache((cfg.block_cache_size / 8).max(8 << 20) as usize);
        let cfs = RAFT_CFS.iter().map(|name| {
            ColumnFamilyDescriptor::new(
                *name,
                cf_options(cfg, &cache, cfg.write_buffer_size as usize),
            )
        });
        Self::open_with(path, db_options(cfg), cfs.collect())
    }

    fn open_with(
        path: &Path,
        opts: Options,
        cfs: Vec<ColumnFamilyDescriptor>,
    ) -> Result<RocksEngine> {
        std::fs::create_dir_all(path)?;
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        Ok(RocksEngine {
            db: Arc::new(db),
            path: Arc::new(path.to_path_buf()),
        })
    }

    fn cf(&self, cf: &str) -> Result<&ColumnFamily> {
        cf_handle(&self.db, cf)
    }

    /// Writes `key = value` directly (no batch), unsynced. For tests and tools.
    pub fn put_cf(&self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        self.db.put_cf(self.cf(cf)?, key, value)?;
        Ok(())
    }

    /// Encodes and writes `msg` at `key` directly, unsynced. For tests and tools.
    pub fn put_msg_cf<M: prost::Message>(&self, cf: &str, key: &[u8], msg: &M) -> Result<()> {
        self.put_cf(cf, key, &msg.encode_to_vec())
    }

    /// Deletes `key` directly, unsynced. For tests and tools.
    pub fn delete_cf(&self, cf: &str, key: &[u8]) -> Result<()> {
        self.db.delete_cf(self.cf(cf)?, key)?;
        Ok(())
    }
}

fn cf_handle<'a>(db: &'a DB, cf: &str) -> Result<&'a ColumnFamily> {
    db.cf_handle(cf)
        .ok_or_else(|| Error::UnknownCf(cf.to_owned()))
}

fn read_options(opts: &IterOptions) -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.fill_cache(opts.fill_cache);
    if let Some(lower) = &opts.lower_bound {
        ro.set_iterate_lower_bound(lower.clone());
    }
    if let Some(upper) = &opts.upper_bound {
        ro.set_iterate_upper_bound(upper.clone());
    }
    ro
}

impl Peekable for RocksEngine {
    fn get_value_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }
}

impl Iterable for RocksEngine {
    type Iter = RocksIterator;

    fn iterator_cf(&self, cf: &str, opts: IterOptions) -> Result<RocksIterator> {
        // A plain engine iterator is implicitly consistent (RocksDB pins the current state), so
        // it is simply a snapshot iterator whose snapshot nobody else holds.
        self.snapshot().iterator_cf(cf, opts)
    }
}

impl KvEngine for RocksEngine {
    type Snapshot = RocksSnapshot;
    type WriteBatch = RocksWriteBatch;

    fn snapshot(&self) -> RocksSnapshot {
        RocksSnapshot::new(self.db.clone())
    }

    fn write_batch(&self) -> RocksWriteBatch {
        RocksWriteBatch {
            db: self.db.clone(),
            wb: rocksdb::WriteBatch::default(),
        }
    }

    fn write(&self, wb: &mut RocksWriteBatch, sync: bool) -> Result<()> {
        if wb.wb.is_empty() {
            return if sync { self.sync_wal() } else { Ok(()) };
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        // rust-rocksdb consumes the batch; hand it a fresh one in its place.
        let batch = std::mem::take(&mut wb.wb);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    fn approximate_size_cf(&self, cf: &str, start: &[u8], end: &[u8]) -> Result<u64> {
        let range = rocksdb::Range::new(start, end);
        let on_disk = self.db.get_approximate_sizes_cf(self.cf(cf)?, &[range])[0];
        // Recent writes sit in memtables that the SST estimate does not see; count them too so a
        // freshly loaded region is seen as large before its first flush.
        let in_mem = self
            .db
            .property_int_value_cf(self.cf(cf)?, "rocksdb.cur-size-all-mem-tables")?
            .unwrap_or(0);
        let total_disk = self
            .db
            .property_int_value_cf(self.cf(cf)?, "rocksdb.estimate-live-data-size")?
            .unwrap_or(0);
        // Attribute the memtable bytes in proportion to this range's share of the CF (all of them
        // when the CF has nothing on disk yet).
        let mem_share = if total_disk == 0 {
            in_mem
        } else {
            in_mem.saturating_mul(on_disk) / total_disk.max(1)
        };
        Ok(on_disk + mem_share)
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Owner of a RocksDB snapshot together with the DB it belongs to.
struct SnapshotInner {
    // Field order matters: the snapshot must be released before the last `Arc<DB>` can go.
    snap: SnapshotWithThreadMode<'static, DB>,
    _db: Arc<DB>,
}

/// A consistent point-in-time view of a [`RocksEngine`]. Cloning shares the same snapshot.
#[derive(Clone)]
pub struct RocksSnapshot {
    inner: Arc<SnapshotInner>,
}

impl RocksSnapshot {
    fn new(db: Arc<DB>) -> RocksSnapshot {
        let snap = db.snapshot();
        // SAFETY: the snapshot borrows the DB, which is kept alive by the `Arc<DB>` stored next to
        // it in the same struct and dropped after it (field order), so the borrow never dangles.
        let snap: SnapshotWithThreadMode<'static, DB> = unsafe { std::mem::transmute(snap) };
        RocksSnapshot {
            inner: Arc::new(SnapshotInner { snap, _db: db }),
        }
    }

    fn db(&self) -> &DB {
        &self.inner._db
    }
}

impl std::fmt::Debug for RocksSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksSnapshot")
            .field("sequence", &self.inner.snap.sequence_number())
            .finish()
    }
}

impl Peekable for RocksSnapshot {
    fn get_value_cf(&self, cf: &str, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let handle = cf_handle(self.db(), cf)?;
        Ok(self.inner.snap.get_cf(handle, key)?)
    }
}

impl Iterable for RocksSnapshot {
    type Iter = RocksIterator;

    fn iterator_cf(&self, cf: &str, opts: IterOptions) -> Result<RocksIterator> {
        let handle = cf_handle(self.db(), cf)?;
        let it = self
            .inner
            .snap
            .raw_iterator_cf_opt(handle, read_options(&opts));
        // SAFETY: the iterator borrows the snapshot (and through it the DB); both are owned by
        // `SnapshotInner`, which the returned iterator keeps alive and drops after the iterator
        // (field order in `RocksIterator`).
        let it: DBRawIteratorWithThreadMode<'static, DB> = unsafe { std::mem::transmute(it) };
        Ok(RocksIterator {
            it,
            _snap: self.inner.clone(),
        })
    }
}

impl Snapshot for RocksSnapshot {}

/// A bounded cursor over one column family of a [`RocksSnapshot`].
pub struct RocksIterator {
    // Field order matters: the iterator must be dropped before the snapshot it reads.
    it: DBRawIteratorWithThreadMode<'static, DB>,
    _snap: Arc<SnapshotInner>,
}

// SAFETY: a RocksDB iterator may be used from any thread as long as it is not used from two at
// once, which `&mut self` on every positioning method guarantees.
unsafe impl Send for RocksIterator {}

impl RocksIterator {
    fn status(&self) -> Result<bool> {
        if self.it.valid() {
            return Ok(true);
        }
        self.it.status()?;
        Ok(false)
    }
}

impl EngineIterator for RocksIterator {
    fn seek(&mut self, key: &[u8]) -> Result<bool> {
        self.it.seek(key);
        self.status()
    }
    fn seek_for_prev(&mut self, key: &[u8]) -> Result<bool> {
        self.it.seek_for_prev(key);
        self.status()
    }
    fn seek_to_first(&mut self) -> Result<bool> {
        self.it.seek_to_first();
        self.status()
    }
    fn seek_to_last(&mut self) -> Result<bool> {
        self.it.seek_to_last();
        self.status()
    }
    fn next(&mut self) -> Result<bool> {
        self.it.next();
        self.status()
    }
    fn prev(&mut self) -> Result<bool> {
        self.it.prev();
        self.status()
    }
    fn valid(&self) -> Result<bool> {
        self.status()
    }
    fn key(&self) -> &[u8] {
        self.it.key().expect("key() on an invalid iterator")
    }
    fn value(&self) -> &[u8] {
        self.it.value().expect("value() on an invalid iterator")
    }
}

/// A batch of mutations for one [`RocksEngine`].
pub struct RocksWriteBatch {
    db: Arc<DB>,
    wb: rocksdb::WriteBatch,
}

impl Mutable for RocksWriteBatch {
    fn put_cf(&mut self, cf: &str, key: &[u8], value: &[u8]) -> Result<()> {
        let handle = cf_handle(&self.db, cf)?;
        self.wb.put_cf(handle, key, value);
        Ok(())
    }
    fn delete_cf(&mut self, cf: &str, key: &[u8]) -> Result<()> {
        let handle = cf_handle(&self.db, cf)?;
        self.wb.delete_cf(handle, key);
        Ok(())
    }
    fn delete_range_cf(&mut self, cf: &str, start: &[u8], end: &[u8]) -> Result<()> {
        let handle = cf_handle(&self.db, cf)?;
        self.wb.delete_range_cf(handle, start, end);
        Ok(())
    }
}

impl WriteBatch for RocksWriteBatch {
    fn count(&self) -> usize {
        self.wb.len()
    }
    fn data_size(&self) -> usize {
        self.wb.size_in_bytes()
    }
    fn clear(&mut self) {
        self.wb.clear();
    }
}
