//! The snapshot directory: where each snapshot file lives, which files are in use, and cleanup.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use proto::raft_serverpb::RaftSnapshotData;

use super::file::{SnapChunkReader, SnapChunkWriter, SnapFileBuilder};
use super::{SnapKey, SnapKind};
use crate::errors::{Error, Result};

const SNAP_EXT: &str = "snap";
const TMP_EXT: &str = "tmp";

struct Inner {
    dir: PathBuf,
    /// Files being generated, sent, received or applied, with a use count. Cleanup skips them.
    in_use: Mutex<HashMap<(SnapKey, SnapKind), usize>>,
}

/// Owns one store's snapshot directory. Cheap to clone; clones share the registry.
///
/// File names are `gen_<region>_<term>_<index>.snap` (generated here, to send) and
/// `rev_<region>_<term>_<index>.snap` (received, to apply). Files are written under a `.tmp`
/// name and renamed once complete, so a published name always means a complete, verified file.
#[derive(Clone)]
pub struct SnapManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SnapManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapManager")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// Keeps a snapshot file registered as in use (cleanup skips it) until dropped.
pub struct SnapGuard {
    mgr: SnapManager,
    key: SnapKey,
    kind: SnapKind,
}

impl Drop for SnapGuard {
    fn drop(&mut self) {
        let mut in_use = self.mgr.inner.in_use.lock();
        let id = (self.key, self.kind);
        if let Some(n) = in_use.get_mut(&id) {
            *n -= 1;
            if *n == 0 {
                in_use.remove(&id);
            }
        }
    }
}

impl SnapManager {
    /// Opens (creating if missing) the snapshot directory `dir`. Temporary files left by a
    /// crash are deleted: a transfer or generation that did not finish is simply redone.
    pub fn new(dir: impl Into<PathBuf>) -> Result<SnapManager> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == TMP_EXT) {
                fs::remove_file(&path)?;
            }
        }
        Ok(SnapManager {
            inner: Arc::new(Inner {
                dir,
                in_use: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The snapshot directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Path of the published file of `key` on `kind`'s side.
    pub fn path(&self, key: &SnapKey, kind: SnapKind) -> PathBuf {
        self.inner
            .dir
            .join(format!("{}_{key}.{SNAP_EXT}", kind.prefix()))
    }

    fn tmp_path(&self, key: &SnapKey, kind: SnapKind) -> PathBuf {
        self.inner
            .dir
            .join(format!("{}_{key}.{TMP_EXT}", kind.prefix()))
    }

    /// Whether the published file of `key` exists.
    pub fn exists(&self, key: &SnapKey, kind: SnapKind) -> bool {
        self.path(key, kind).exists()
    }

    /// Marks the file of `key` as in use until the guard is dropped.
    pub fn register(&self, key: SnapKey, kind: SnapKind) -> SnapGuard {
        *self.inner.in_use.lock().entry((key, kind)).or_insert(0) += 1;
        SnapGuard {
            mgr: self.clone(),
            key,
            kind,
        }
    }

    /// Whether the file of `key` is registered as in use.
    pub fn is_in_use(&self, key: &SnapKey, kind: SnapKind) -> bool {
        self.inner.in_use.lock().contains_key(&(*key, kind))
    }

    pub(crate) fn builder(&self, key: &SnapKey) -> Result<SnapFileBuilder> {
        SnapFileBuilder::create(
            self.tmp_path(key, SnapKind::Generated),
            self.path(key, SnapKind::Generated),
        )
    }

    /// Opens the generated file of `key` for sending in chunks of `chunk_size` bytes.
    pub fn chunk_reader(&self, key: &SnapKey, chunk_size: usize) -> Result<SnapChunkReader> {
        let guard = self.register(*key, SnapKind::Generated);
        SnapChunkReader::open(&self.path(key, SnapKind::Generated), chunk_size, guard)
    }

    /// Starts receiving the snapshot `key` described by `desc` (from the `MsgSnapshot`'s data).
    /// Refuses while another transfer of the same snapshot is under way.
    pub fn chunk_writer(&self, key: &SnapKey, desc: &RaftSnapshotData) -> Result<SnapChunkWriter> {
        if self.is_in_use(key, SnapKind::Received) {
            return Err(Error::Other(format!(
                "snapshot {key} is already being received or applied"
            )));
        }
        let guard = self.register(*key, SnapKind::Received);
        SnapChunkWriter::create(
            self.tmp_path(key, SnapKind::Received),
            self.path(key, SnapKind::Received),
            desc,
            guard,
        )
    }

    /// Deletes the published file of `key` unless it is in use. Returns whether it is gone.
    pub fn delete(&self, key: &SnapKey, kind: SnapKind) -> Result<bool> {
        if self.is_in_use(key, kind) {
            return Ok(false);
        }
        match fs::remove_file(self.path(key, kind)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    /// Every published snapshot file in the directory.
    pub fn list(&self) -> Result<Vec<(SnapKey, SnapKind)>> {
        let mut out = vec![];
        for entry in fs::read_dir(&self.inner.dir)? {
            let name = entry?.file_name();
            if let Some(parsed) = name.to_str().and_then(parse_file_name) {
                out.push(parsed);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Deletes every published file for which `is_stale` says so and that is not in use (e.g.
    /// files of regions this store no longer has, or older than the region's applied index).
    /// Returns how many files were deleted.
    pub fn gc<F>(&self, mut is_stale: F) -> Result<usize>
    where
        F: FnMut(&SnapKey, SnapKind) -> bool,
    {
        let mut deleted = 0;
        for (key, kind) in self.list()? {
            if is_stale(&key, kind) && self.delete(&key, kind)? {
                tracing::debug!(
                    region_id = key.region_id,
                    index = key.index,
                    term = key.term,
                    "deleted stale snapshot"
                );
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

fn parse_file_name(name: &str) -> Option<(SnapKey, SnapKind)> {
    let stem = name.strip_suffix(".snap")?;
    let (kind, rest) = if let Some(rest) = stem.strip_prefix("gen_") {
        (SnapKind::Generated, rest)
    } else {
        (SnapKind::Received, stem.strip_prefix("rev_")?)
    };
    let mut parts = rest.split('_').map(|p| p.parse::<u64>().ok());
    let key = SnapKey::new(parts.next()??, parts.next()??, parts.next()??);
    if parts.next().is_some() {
        return None;
    }
    Some((key, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_cleanup_respects_registration() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("rev_1_2_3.tmp"), b"partial").unwrap();
        let mgr = SnapManager::new(dir.path()).unwrap();
        assert!(
            !dir.path().join("rev_1_2_3.tmp").exists(),
            "leftover temp files are removed"
        );

        let a = SnapKey::new(1, 5, 10);
        let b = SnapKey::new(2, 6, 20);
        fs::write(mgr.path(&a, SnapKind::Generated), b"x").unwrap();
        fs::write(mgr.path(&b, SnapKind::Received), b"y").unwrap();
        fs::write(dir.path().join("unrelated.txt"), b"z").unwrap();
        assert_eq!(
            mgr.list().unwrap(),
            vec![(a, SnapKind::Generated), (b, SnapKind::Received)]
        );

        let guard = mgr.register(a, SnapKind::Generated);
        assert_eq!(
            mgr.gc(|_, _| true).unwrap(),
            1,
            "only the unregistered file goes"
        );
        assert!(mgr.exists(&a, SnapKind::Generated));
        assert!(!mgr.exists(&b, SnapKind::Received));
        drop(guard);
        assert!(!mgr.is_in_use(&a, SnapKind::Generated));
        assert_eq!(mgr.gc(|k, _| k.region_id == 1).unwrap(), 1);
        assert!(mgr.list().unwrap().is_empty());
        assert_eq!(parse_file_name("gen_1_2.snap"), None);
        assert_eq!(parse_file_name("gen_1_2_3_4.snap"), None);
    }
}
