//! Persistent metadata: one RocksDB instance (default column family) under `data-dir`.
//!
//! Layout (all integers big-endian, so ids sort numerically):
//!
//! | key                     | value                                   | write      |
//! |-------------------------|-----------------------------------------|------------|
//! | `0x01 "cluster_id"`     | u64                                     | sync       |
//! | `0x01 "member_id"`      | u64                                     | sync       |
//! | `0x01 "cluster"`        | `metapb.Cluster` (present = bootstrapped) | sync     |
//! | `0x01 "alloc_id"`       | u64: end of the reserved id batch       | sync       |
//! | `0x01 "tso"`            | i64: ms every handed-out physical is below | sync    |
//! | `0x01 "gc_safe_point"`  | u64                                     | sync       |
//! | `0x02 <store id u64>`   | `metapb.Store`                          | async WAL  |
//! | `0x03 <region id u64>`  | `metapb.Region`                         | async WAL  |
//!
//! Records that guard monotonicity (ids, timestamps, cluster identity) are synced to disk before
//! the value they cover is handed out. Stores and regions are written through the WAL without a
//! sync: a lost tail is re-reported by the next heartbeats.

use std::path::{Path, PathBuf};

use prost::Message;
use proto::metapb;
use rocksdb::{Options, WriteBatch, WriteOptions, DB};

use crate::errors::{Error, Result};

mod keys {
    pub const CLUSTER_ID: &[u8] = b"\x01cluster_id";
    pub const MEMBER_ID: &[u8] = b"\x01member_id";
    pub const CLUSTER: &[u8] = b"\x01cluster";
    pub const ALLOC_ID: &[u8] = b"\x01alloc_id";
    pub const TSO: &[u8] = b"\x01tso";
    pub const GC_SAFE_POINT: &[u8] = b"\x01gc_safe_point";
    pub const STORE_PREFIX: u8 = 0x02;
    pub const REGION_PREFIX: u8 = 0x03;

    pub fn store(id: u64) -> [u8; 9] {
        with_prefix(STORE_PREFIX, id)
    }

    pub fn region(id: u64) -> [u8; 9] {
        with_prefix(REGION_PREFIX, id)
    }

    fn with_prefix(prefix: u8, id: u64) -> [u8; 9] {
        let mut k = [0u8; 9];
        k[0] = prefix;
        k[1..].copy_from_slice(&id.to_be_bytes());
        k
    }
}

/// A scalar metadata record; each is one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// The cluster id chosen on first start.
    ClusterId,
    /// This scheduler's member id (reported by `GetMembers`).
    MemberId,
    /// End (inclusive) of the id batch reserved by the allocator.
    AllocId,
    /// Wall-clock ms that every persisted-before TSO physical is below.
    Tso,
    /// The GC safe point.
    GcSafePoint,
}

impl MetaKey {
    fn key(self) -> &'static [u8] {
        match self {
            MetaKey::ClusterId => keys::CLUSTER_ID,
            MetaKey::MemberId => keys::MEMBER_ID,
            MetaKey::AllocId => keys::ALLOC_ID,
            MetaKey::Tso => keys::TSO,
            MetaKey::GcSafePoint => keys::GC_SAFE_POINT,
        }
    }
}

/// The metadata database.
pub struct MetaStore {
    db: DB,
    path: PathBuf,
}

impl std::fmt::Debug for MetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetaStore")
            .field("path", &self.path)
            .finish()
    }
}

fn sync_opts() -> WriteOptions {
    let mut o = WriteOptions::default();
    o.set_sync(true);
    o
}

fn decode<M: Message + Default>(key: &[u8], value: &[u8]) -> Result<M> {
    M::decode(value).map_err(|e| Error::Corrupted {
        key: format!("{key:?}"),
        reason: e.to_string(),
    })
}

fn decode_u64(key: &[u8], value: &[u8]) -> Result<u64> {
    let bytes: [u8; 8] = value.try_into().map_err(|_| Error::Corrupted {
        key: format!("{key:?}"),
        reason: format!("expected 8 bytes, found {}", value.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

impl MetaStore {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> Result<MetaStore> {
        std::fs::create_dir_all(dir)?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        // Metadata is small: keep memory and background work modest.
        opts.set_write_buffer_size(8 << 20);
        opts.set_max_background_jobs(1);
        opts.set_keep_log_file_num(4);
        let db = DB::open(&opts, dir)?;
        Ok(MetaStore {
            db,
            path: dir.to_path_buf(),
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads a scalar record.
    pub fn load_u64(&self, key: MetaKey) -> Result<Option<u64>> {
        self.db
            .get(key.key())?
            .map(|v| decode_u64(key.key(), &v))
            .transpose()
    }

    /// Writes a scalar record and syncs it to disk before returning.
    pub fn save_u64(&self, key: MetaKey, value: u64) -> Result<()> {
        self.db
            .put_opt(key.key(), value.to_be_bytes(), &sync_opts())?;
        Ok(())
    }

    /// The cluster record written by `Bootstrap`; `None` until then.
    pub fn load_cluster(&self) -> Result<Option<metapb::Cluster>> {
        self.db
            .get(keys::CLUSTER)?
            .map(|v| decode(keys::CLUSTER, &v))
            .transpose()
    }

    /// Writes the cluster record with the first store and region in one synced batch, so a crash
    /// leaves the cluster either fully bootstrapped or not at all.
    pub fn save_bootstrap(
        &self,
        cluster: &metapb::Cluster,
        store: &metapb::Store,
        region: &metapb::Region,
    ) -> Result<()> {
        let mut wb = WriteBatch::default();
        wb.put(keys::store(store.id), store.encode_to_vec());
        wb.put(keys::region(region.id), region.encode_to_vec());
        wb.put(keys::CLUSTER, cluster.encode_to_vec());
        self.db.write_opt(wb, &sync_opts())?;
        Ok(())
    }

    /// Writes one store record.
    pub fn save_store(&self, store: &metapb::Store) -> Result<()> {
        self.db.put(keys::store(store.id), store.encode_to_vec())?;
        Ok(())
    }

    /// All store records, by id.
    pub fn load_stores(&self) -> Result<Vec<metapb::Store>> {
        self.load_prefix(keys::STORE_PREFIX)
    }

    /// Writes region records and deletes others in one batch.
    pub fn update_regions(&self, put: &[&metapb::Region], delete: &[u64]) -> Result<()> {
        if put.is_empty() && delete.is_empty() {
            return Ok(());
        }
        let mut wb = WriteBatch::default();
        for id in delete {
            wb.delete(keys::region(*id));
        }
        for r in put {
            wb.put(keys::region(r.id), r.encode_to_vec());
        }
        self.db.write(wb)?;
        Ok(())
    }

    /// All region records, by id.
    pub fn load_regions(&self) -> Result<Vec<metapb::Region>> {
        self.load_prefix(keys::REGION_PREFIX)
    }

    fn load_prefix<M: Message + Default>(&self, prefix: u8) -> Result<Vec<M>> {
        let mut out = Vec::new();
        let iter = self.db.iterator(rocksdb::IteratorMode::From(
            &[prefix],
            rocksdb::Direction::Forward,
        ));
        for item in iter {
            let (k, v) = item?;
            if k.first() != Some(&prefix) {
                break;
            }
            out.push(decode(&k, &v)?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(id: u64, start: &[u8]) -> metapb::Region {
        metapb::Region {
            id,
            start_key: start.to_vec(),
            region_epoch: Some(metapb::RegionEpoch {
                conf_ver: 1,
                version: 1,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = MetaStore::open(dir.path()).unwrap();
            assert_eq!(s.load_u64(MetaKey::ClusterId).unwrap(), None);
            assert!(s.load_cluster().unwrap().is_none());
            s.save_u64(MetaKey::ClusterId, 42).unwrap();
            s.save_u64(MetaKey::Tso, 7).unwrap();
            let store = metapb::Store {
                id: 1,
                address: "a:1".into(),
                ..Default::default()
            };
            let cluster = metapb::Cluster {
                id: 42,
                max_peer_count: 3,
            };
            s.save_bootstrap(&cluster, &store, &region(2, b"")).unwrap();
            s.save_store(&metapb::Store {
                id: 300,
                address: "b:1".into(),
                ..Default::default()
            })
            .unwrap();
            s.update_regions(&[&region(5, b"m"), &region(256, b"z")], &[2])
                .unwrap();
        }
        let s = MetaStore::open(dir.path()).unwrap();
        assert_eq!(s.load_u64(MetaKey::ClusterId).unwrap(), Some(42));
        assert_eq!(s.load_u64(MetaKey::Tso).unwrap(), Some(7));
        assert_eq!(s.load_cluster().unwrap().unwrap().max_peer_count, 3);
        let stores: Vec<u64> = s.load_stores().unwrap().iter().map(|s| s.id).collect();
        assert_eq!(stores, vec![1, 300]);
        let regions: Vec<u64> = s.load_regions().unwrap().iter().map(|r| r.id).collect();
        assert_eq!(regions, vec![5, 256]);
    }

    #[test]
    fn corrupted_scalar_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let s = MetaStore::open(dir.path()).unwrap();
        s.db.put(keys::ALLOC_ID, b"abc").unwrap();
        assert!(matches!(
            s.load_u64(MetaKey::AllocId),
            Err(Error::Corrupted { .. })
        ));
    }
}
