//! Snapshot generation: the task a peer hands out, the pluggable runner, and the work itself.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prost::Message as _;
use proto::metapb::Region;
use proto::raft_serverpb::{RaftSnapshotData, SnapshotMeta};
use protobuf::SingularPtrField;
use raft::eraftpb::{ConfState, Snapshot, SnapshotMetadata};

use super::file::SNAPSHOT_FORMAT_VERSION;
use super::{SnapKey, SnapKind, SnapManager};
use crate::engine::{Iterable, RocksSnapshot, DATA_CFS};
use crate::errors::Result;
use crate::keys;

/// Runs snapshot generation away from the Raft thread. A multi-raft store implements it with a
/// background worker; [`ThreadSnapGenerator`] spawns a thread per task.
///
/// `schedule` is called from inside raft-rs (`Storage::snapshot`), so it must return quickly and
/// must not call back into the peer. The task reports back through its own channel.
pub trait SnapGenerator: Send + Sync {
    /// Takes ownership of `task` and eventually calls [`GenSnapTask::run`] (or drops it, which
    /// the peer sees as a failed generation and retries).
    fn schedule(&self, task: GenSnapTask);
}

/// Everything needed to generate one snapshot, captured consistently by the peer: a RocksDB
/// snapshot of the kv engine and the applied index, term, region and membership read from it.
pub struct GenSnapTask {
    pub(crate) region_id: u64,
    pub(crate) to_peer: u64,
    pub(crate) index: u64,
    pub(crate) term: u64,
    pub(crate) conf_state: ConfState,
    pub(crate) region: Region,
    pub(crate) kv_snapshot: RocksSnapshot,
    pub(crate) notifier: SyncSender<Snapshot>,
}

impl std::fmt::Debug for GenSnapTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenSnapTask")
            .field("region_id", &self.region_id)
            .field("to_peer", &self.to_peer)
            .field("index", &self.index)
            .field("term", &self.term)
            .finish()
    }
}

impl GenSnapTask {
    /// The region the snapshot is of.
    pub fn region_id(&self) -> u64 {
        self.region_id
    }

    /// The key the generated file will have.
    pub fn key(&self) -> SnapKey {
        SnapKey::new(self.region_id, self.term, self.index)
    }

    /// Generates the snapshot file and hands the resulting `Snapshot` to the peer. If the peer
    /// no longer wants it (it applied a snapshot itself or was destroyed) the file is deleted.
    pub fn run(self, mgr: &SnapManager) -> Result<()> {
        let key = self.key();
        let _guard = mgr.register(key, SnapKind::Generated);
        let snap = match generate_snapshot(
            mgr,
            &self.kv_snapshot,
            &self.region,
            key,
            self.conf_state,
        ) {
            Ok(snap) => snap,
            Err(e) => {
                tracing::warn!(region_id = self.region_id, index = key.index, term = key.term, to_peer = self.to_peer, error = %e, "snapshot generation failed");
                return Err(e);
            }
        };
        if self.notifier.send(snap).is_err() {
            drop(_guard);
            mgr.delete(&key, SnapKind::Generated)?;
        }
        Ok(())
    }
}

/// Writes the snapshot file of `region` (its data range in every data column family, as seen by
/// `kv_snap`) under `key` and returns the raft-rs `Snapshot` describing it.
pub fn generate_snapshot(
    mgr: &SnapManager,
    kv_snap: &RocksSnapshot,
    region: &Region,
    key: SnapKey,
    conf_state: ConfState,
) -> Result<Snapshot> {
    let started = Instant::now();
    let mut builder = mgr.builder(&key)?;
    let (start, end) = (
        keys::data_key(&region.start_key),
        keys::data_end_key(&region.end_key),
    );
    let mut records = 0u64;
    for cf in DATA_CFS {
        builder.begin_cf(cf);
        // A one-off full scan: keep it out of the block cache.
        kv_snap.scan_cf(cf, &start, &end, false, |k, v| {
            builder.add(keys::origin_key(k), v)?;
            records += 1;
            Ok(true)
        })?;
        builder.end_cf();
    }
    let (file_size, cf_files) = builder.finish()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let desc = RaftSnapshotData {
        region: Some(region.clone()),
        file_size,
        data: vec![],
        version: SNAPSHOT_FORMAT_VERSION,
        meta: Some(SnapshotMeta {
            cf_files,
            for_balance: false,
            start: now,
            generate_duration_sec: started.elapsed().as_secs(),
        }),
    };
    let snap = Snapshot {
        data: desc.encode_to_vec().into(),
        metadata: SingularPtrField::some(SnapshotMetadata {
            index: key.index,
            term: key.term,
            conf_state: SingularPtrField::some(conf_state),
            ..Default::default()
        }),
        ..Default::default()
    };
    tracing::info!(
        region_id = key.region_id,
        index = key.index,
        term = key.term,
        records,
        file_size,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "generated snapshot"
    );
    Ok(snap)
}

/// Generates each snapshot on a new thread. Enough for a single group or a test harness; a
/// store with many regions should bound concurrency with a worker pool instead.
#[derive(Clone, Debug)]
pub struct ThreadSnapGenerator {
    mgr: SnapManager,
}

impl ThreadSnapGenerator {
    /// A generator writing into `mgr`'s directory.
    pub fn new(mgr: SnapManager) -> Arc<ThreadSnapGenerator> {
        Arc::new(ThreadSnapGenerator { mgr })
    }
}

impl SnapGenerator for ThreadSnapGenerator {
    fn schedule(&self, task: GenSnapTask) {
        let mgr = self.mgr.clone();
        let region_id = task.region_id;
        let spawned = std::thread::Builder::new()
            .name(format!("snap-gen-{region_id}"))
            .spawn(move || {
                // Failures are logged by `run`; the peer retries on its next request.
                let _ = task.run(&mgr);
            });
        if let Err(e) = spawned {
            // The task (and its channel) is dropped: the peer sees a failure and retries.
            tracing::warn!(region_id, error = %e, "cannot spawn snapshot generation thread");
        }
    }
}
