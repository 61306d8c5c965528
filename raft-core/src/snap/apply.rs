//! Writing a received snapshot's data into the kv engine.

use proto::raft_serverpb::RaftSnapshotData;

use super::file::for_each_record;
use super::{SnapKey, SnapKind, SnapManager};
use crate::engine::{Mutable, RocksWriteBatch, DATA_CFS};
use crate::errors::{Error, Result};
use crate::keys;

/// Adds to `kv_wb` the replacement of the data of the region described by `desc` with the
/// content of the received snapshot file `key`: a range delete of the region's data range in
/// every data column family, then every record of the file. Returns the number of records.
///
/// The whole file is verified (checksums, framing, every key inside the region) before anything
/// is added to `kv_wb`, so an error leaves the batch untouched. Only the region's own range is
/// cleared: other regions share the engine.
pub fn apply_snapshot_data(
    mgr: &SnapManager,
    key: &SnapKey,
    desc: &RaftSnapshotData,
    kv_wb: &mut RocksWriteBatch,
) -> Result<u64> {
    let region = desc
        .region
        .as_ref()
        .ok_or_else(|| Error::CorruptedSnapshot("descriptor has no region".into()))?;
    let path = mgr.path(key, SnapKind::Received);
    let _guard = mgr.register(*key, SnapKind::Received);

    let mut records = 0u64;
    for_each_record(&path, desc, |cf, k, _| {
        if !keys::key_in_region(k, region) {
            return Err(Error::CorruptedSnapshot(format!(
                "key {k:?} in column family {cf} is outside region {}",
                region.id
            )));
        }
        records += 1;
        Ok(())
    })?;

    let (start, end) = (
        keys::data_key(&region.start_key),
        keys::data_end_key(&region.end_key),
    );
    for cf in DATA_CFS {
        kv_wb.delete_range_cf(cf, &start, &end)?;
    }
    for_each_record(&path, desc, |cf, k, v| {
        kv_wb.put_cf(cf, &keys::data_key(k), v)
    })?;
    Ok(records)
}
