//! A throwaway standalone store for MVCC and transaction unit tests.

use raft_core::config::EngineConfig;

use super::{MvccReader, MvccTxn};
use crate::storage::StandaloneStorage;

/// A `StandaloneStorage` in a temporary directory (removed on drop).
pub(crate) struct TestStore {
    pub(crate) storage: StandaloneStorage,
    _dir: tempfile::TempDir,
}

impl TestStore {
    pub(crate) fn new() -> TestStore {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = StandaloneStorage::open(dir.path(), &EngineConfig::new_test_config())
            .expect("open standalone storage");
        TestStore { storage, _dir: dir }
    }

    /// Applies everything `txn` buffered.
    pub(crate) fn write(&self, txn: MvccTxn) {
        self.storage
            .write_sync(txn.into_modifies())
            .expect("write batch");
    }

    /// A reader over a fresh snapshot.
    pub(crate) fn reader(&self) -> MvccReader {
        MvccReader::new(self.storage.snapshot_sync())
    }
}
