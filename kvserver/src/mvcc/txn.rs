//! `MvccTxn`: the mutations one command makes, buffered until they are written as one batch.

use raft_core::engine::{CF_DEFAULT, CF_LOCK, CF_WRITE};

use super::key::Key;
use super::lock::Lock;
use super::write::Write;
use crate::storage::Modify;

/// Buffered mutations of one transactional command, all on behalf of transaction `start_ts`.
///
/// Nothing reaches storage until the command hands [`MvccTxn::into_modifies`] to
/// `Storage::write`, which applies the whole batch atomically — so a command that fails halfway
/// writes nothing.
#[derive(Debug)]
pub struct MvccTxn {
    start_ts: u64,
    modifies: Vec<Modify>,
}

impl MvccTxn {
    /// An empty buffer for transaction `start_ts`.
    pub fn new(start_ts: u64) -> MvccTxn {
        MvccTxn {
            start_ts,
            modifies: Vec::new(),
        }
    }

    /// Start ts of the transaction this buffer writes for.
    pub fn start_ts(&self) -> u64 {
        self.start_ts
    }

    /// Writes `lock` on `key`.
    pub fn put_lock(&mut self, key: &Key, lock: &Lock) {
        self.modifies.push(Modify::Put {
            cf: CF_LOCK,
            key: key.as_encoded().to_vec(),
            value: lock.to_bytes(),
        });
    }

    /// Removes the lock on `key`.
    pub fn unlock_key(&mut self, key: &Key) {
        self.modifies.push(Modify::Delete {
            cf: CF_LOCK,
            key: key.as_encoded().to_vec(),
        });
    }

    /// Stores the (long) value of `key` written by this transaction.
    pub fn put_value(&mut self, key: &Key, value: Vec<u8>) {
        self.modifies.push(Modify::Put {
            cf: CF_DEFAULT,
            key: key.append_ts(self.start_ts),
            value,
        });
    }

    /// Removes the value of `key` written by this transaction.
    pub fn delete_value(&mut self, key: &Key) {
        self.modifies.push(Modify::Delete {
            cf: CF_DEFAULT,
            key: key.append_ts(self.start_ts),
        });
    }

    /// Writes a commit or rollback record of `key` at `ts`.
    pub fn put_write(&mut self, key: &Key, ts: u64, write: &Write) {
        self.modifies.push(Modify::Put {
            cf: CF_WRITE,
            key: key.append_ts(ts),
            value: write.to_bytes(),
        });
    }

    /// Removes the write record of `key` at `ts`.
    pub fn delete_write(&mut self, key: &Key, ts: u64) {
        self.modifies.push(Modify::Delete {
            cf: CF_WRITE,
            key: key.append_ts(ts),
        });
    }

    /// Appends everything `other` buffered (commands resolving several transactions at once
    /// build one `MvccTxn` per transaction and write them as one batch).
    pub fn extend(&mut self, other: MvccTxn) {
        self.modifies.extend(other.modifies);
    }

    /// Drops everything buffered (a command that decided to write nothing after all).
    pub fn clear(&mut self) {
        self.modifies.clear();
    }

    /// The buffered mutations.
    pub fn modifies(&self) -> &[Modify] {
        &self.modifies
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.modifies.is_empty()
    }

    /// Approximate bytes the batch adds to a write (or Raft entry).
    pub fn write_size(&self) -> usize {
        self.modifies.iter().map(Modify::size).sum()
    }

    /// The batch, ready for `Storage::write`.
    pub fn into_modifies(self) -> Vec<Modify> {
        self.modifies
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::lock::LockType;
    use crate::mvcc::write::WriteType;

    #[test]
    fn keys_land_in_the_right_cf_and_version() {
        let key = Key::from_raw(b"k");
        let mut txn = MvccTxn::new(10);
        txn.put_lock(&key, &Lock::new(LockType::Put, b"k".to_vec(), 10, 100));
        txn.put_value(&key, b"v".to_vec());
        txn.put_write(&key, 20, &Write::new(WriteType::Put, 10, None));
        txn.unlock_key(&key);
        txn.delete_value(&key);
        txn.delete_write(&key, 20);
        let m = txn.modifies();
        assert_eq!(
            (m[0].cf(), m[0].key().unwrap()),
            (CF_LOCK, key.as_encoded())
        );
        assert_eq!(m[1].key().unwrap(), key.append_ts(10));
        assert_eq!(
            (m[2].cf(), m[2].key().unwrap()),
            (CF_WRITE, &key.append_ts(20)[..])
        );
        assert_eq!(
            m[3],
            Modify::Delete {
                cf: CF_LOCK,
                key: key.as_encoded().to_vec()
            }
        );
        assert_eq!(m[4].key().unwrap(), key.append_ts(10));
        assert_eq!(m[5].key().unwrap(), key.append_ts(20));
        assert!(txn.write_size() > 0);
        txn.clear();
        assert!(txn.is_empty());
    }
}
