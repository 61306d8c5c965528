//! `MvccReader`: the point reads transactional actions make on a snapshot.

use proto::metapb::Region;
use raft_core::engine::{EngineIterator, CF_DEFAULT, CF_LOCK, CF_WRITE};

use super::key::{split_ts, Key};
use super::lock::Lock;
use super::write::{Write, WriteType};
use crate::errors::{Result, TxnError};
use crate::storage::{RegionIterator, RegionSnapshot};

/// Where a transaction stands on one key, according to the `write` CF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnCommitRecord {
    /// Neither a commit nor a rollback record of the transaction. `overlapped_write` is another
    /// transaction's commit record that sits exactly at `(key, start_ts)` (so a rollback has to
    /// be recorded as a flag on it instead of a record of its own).
    None {
        /// The other transaction's record at `(key, start_ts)`, if any.
        overlapped_write: Option<Write>,
    },
    /// The transaction's own record: a commit (`commit_ts > start_ts`) or a rollback
    /// (`commit_ts == start_ts`, type `Rollback`).
    SingleRecord {
        /// Key timestamp of the record.
        commit_ts: u64,
        /// The record.
        write: Write,
    },
    /// Another transaction's commit record at `(key, start_ts)` carries the overlapped-rollback
    /// flag: the transaction is rolled back.
    OverlappedRollback {
        /// Commit ts of the other transaction (== our start ts).
        commit_ts: u64,
    },
}

impl TxnCommitRecord {
    /// The commit ts if the transaction is committed on this key.
    pub fn committed_ts(&self) -> Option<u64> {
        match self {
            TxnCommitRecord::SingleRecord { commit_ts, write }
                if write.write_type != WriteType::Rollback =>
            {
                Some(*commit_ts)
            }
            _ => None,
        }
    }

    /// Whether the transaction is rolled back on this key.
    pub fn is_rolled_back(&self) -> bool {
        match self {
            TxnCommitRecord::SingleRecord { write, .. } => write.write_type == WriteType::Rollback,
            TxnCommitRecord::OverlappedRollback { .. } => true,
            TxnCommitRecord::None { .. } => false,
        }
    }
}

/// Reads locks, write records and values of a snapshot. Keys are [`Key`]s (encoded user keys);
/// every read stays inside the snapshot's region.
pub struct MvccReader {
    snap: RegionSnapshot,
    // One cursor reused by every write-CF lookup: a seek on a live iterator is much cheaper than
    // opening a new one per key.
    write_cursor: Option<RegionIterator>,
}

impl MvccReader {
    /// A reader over `snap`.
    pub fn new(snap: RegionSnapshot) -> MvccReader {
        MvccReader {
            snap,
            write_cursor: None,
        }
    }

    /// The region the snapshot covers.
    pub fn region(&self) -> &Region {
        self.snap.region()
    }

    /// The underlying snapshot.
    pub fn snapshot(&self) -> &RegionSnapshot {
        &self.snap
    }

    /// The lock on `key`, if any.
    pub fn load_lock(&self, key: &Key) -> Result<Option<Lock>> {
        match self.snap.get_value_cf(CF_LOCK, key.as_encoded())? {
            Some(v) => Ok(Some(Lock::parse(&v)?)),
            None => Ok(None),
        }
    }

    fn write_cursor(&mut self) -> Result<&mut RegionIterator> {
        if self.write_cursor.is_none() {
            self.write_cursor = Some(self.snap.iter_cf(CF_WRITE, b"", b"")?);
        }
        Ok(self.write_cursor.as_mut().expect("just created"))
    }

    /// The newest write record of `key` with commit ts `<= ts`, of any type.
    pub fn seek_write(&mut self, key: &Key, ts: u64) -> Result<Option<(u64, Write)>> {
        let cursor = self.write_cursor()?;
        if !cursor.seek(&key.append_ts(ts))? || !key.is_user_key_of(cursor.key()) {
            return Ok(None);
        }
        let (_, commit_ts) = split_ts(cursor.key())?;
        Ok(Some((commit_ts, Write::parse(cursor.value())?)))
    }

    /// The newest write record of `key`, whatever its timestamp (TinyKV's "most recent write").
    pub fn most_recent_write(&mut self, key: &Key) -> Result<Option<(u64, Write)>> {
        self.seek_write(key, u64::MAX)
    }

    /// The `Put` record that defines the value of `key` at `ts`, skipping `Lock` and `Rollback`
    /// records; `None` if the key is deleted or was never written at `ts`.
    pub fn get_write(&mut self, key: &Key, ts: u64) -> Result<Option<(u64, Write)>> {
        let cursor = self.write_cursor()?;
        let mut valid = cursor.seek(&key.append_ts(ts))?;
        while valid && key.is_user_key_of(cursor.key()) {
            let write = Write::parse(cursor.value())?;
            match write.write_type {
                WriteType::Put => {
                    let (_, commit_ts) = split_ts(cursor.key())?;
                    return Ok(Some((commit_ts, write)));
                }
                WriteType::Delete => return Ok(None),
                WriteType::Lock | WriteType::Rollback => valid = cursor.next()?,
            }
        }
        Ok(None)
    }

    /// The value of `key` committed at or before `ts`, **ignoring locks** (callers that must
    /// honour locks use [`super::PointGetter`]).
    pub fn get(&mut self, key: &Key, ts: u64) -> Result<Option<Vec<u8>>> {
        match self.get_write(key, ts)? {
            Some((_, write)) => Ok(Some(self.load_data(key, write)?)),
            None => Ok(None),
        }
    }

    /// The value a `Put` record refers to: inline, or in the `default` CF at its start ts.
    pub fn load_data(&self, key: &Key, write: Write) -> Result<Vec<u8>> {
        if let Some(v) = write.short_value {
            return Ok(v);
        }
        self.load_value_at(key, write.start_ts)
    }

    /// The value transaction `start_ts` stored for `key` in the `default` CF.
    pub fn load_value_at(&self, key: &Key, start_ts: u64) -> Result<Vec<u8>> {
        self.snap
            .get_value_cf(CF_DEFAULT, &key.append_ts(start_ts))?
            .ok_or_else(|| {
                TxnError::BadFormat(format!(
                    "value of {key:?} written by txn {start_ts} is missing from the default CF"
                ))
                .into()
            })
    }

    /// Looks for the commit or rollback record of transaction `start_ts` on `key`.
    ///
    /// Walks the key's records from the newest down to `start_ts`: a commit record of the
    /// transaction has a larger timestamp, its rollback record exactly `start_ts`.
    pub fn get_txn_commit_record(&mut self, key: &Key, start_ts: u64) -> Result<TxnCommitRecord> {
        let cursor = self.write_cursor()?;
        let mut overlapped_write = None;
        let mut valid = cursor.seek(&key.append_ts(u64::MAX))?;
        while valid && key.is_user_key_of(cursor.key()) {
            let (_, commit_ts) = split_ts(cursor.key())?;
            if commit_ts < start_ts {
                break;
            }
            let write = Write::parse(cursor.value())?;
            if write.start_ts == start_ts {
                return Ok(TxnCommitRecord::SingleRecord { commit_ts, write });
            }
            if commit_ts == start_ts {
                if write.has_overlapped_rollback {
                    return Ok(TxnCommitRecord::OverlappedRollback { commit_ts });
                }
                overlapped_write = Some(write);
            }
            valid = cursor.next()?;
        }
        Ok(TxnCommitRecord::None { overlapped_write })
    }

    /// The commit or rollback record of transaction `start_ts` on `key` with its timestamp
    /// (TinyKV's "current write"); `None` if the transaction left no record of its own.
    pub fn current_write(&mut self, key: &Key, start_ts: u64) -> Result<Option<(u64, Write)>> {
        match self.get_txn_commit_record(key, start_ts)? {
            TxnCommitRecord::SingleRecord { commit_ts, write } => Ok(Some((commit_ts, write))),
            _ => Ok(None),
        }
    }

    /// Locks in `[start, end)` (encoded keys; empty `end` = up to the region's end) accepted by
    /// `filter`, at most `limit` of them (0 = no limit). The flag says whether the scan stopped at
    /// the limit (more locks may follow the last one returned).
    pub fn scan_locks<F>(
        &self,
        start: &[u8],
        end: &[u8],
        mut filter: F,
        limit: usize,
    ) -> Result<(Vec<(Key, Lock)>, bool)>
    where
        F: FnMut(&Lock) -> bool,
    {
        let mut it = self.snap.iter_cf(CF_LOCK, start, end)?;
        let mut locks = Vec::new();
        let mut valid = it.seek_to_first()?;
        while valid {
            let lock = Lock::parse(it.value())?;
            if filter(&lock) {
                locks.push((Key::from_encoded(it.key().to_vec()), lock));
                if limit != 0 && locks.len() >= limit {
                    return Ok((locks, true));
                }
            }
            valid = it.next()?;
        }
        Ok((locks, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::lock::LockType;
    use crate::mvcc::test_util::TestStore;
    use crate::mvcc::MvccTxn;

    #[test]
    fn most_recent_and_current_write() {
        let store = TestStore::new();
        let k = Key::from_raw(b"k");
        let mut txn = MvccTxn::new(0);
        txn.put_write(
            &k,
            12,
            &Write::new(WriteType::Put, 10, Some(b"v1".to_vec())),
        );
        txn.put_write(&k, 20, &Write::new_rollback(20));
        txn.put_write(&k, 32, &Write::new(WriteType::Delete, 30, None));
        // A key whose encoding starts like ours is a different key.
        let longer = Key::from_raw(b"k\0");
        txn.put_write(
            &longer,
            50,
            &Write::new(WriteType::Put, 40, Some(b"x".to_vec())),
        );
        store.write(txn);

        let mut r = store.reader();
        assert_eq!(r.most_recent_write(&k).unwrap().unwrap().0, 32);
        assert_eq!(r.seek_write(&k, 31).unwrap().unwrap().0, 20);
        assert_eq!(r.seek_write(&k, 11).unwrap(), None);
        assert_eq!(r.get(&k, 31).unwrap(), Some(b"v1".to_vec()));
        assert_eq!(r.get(&k, 40).unwrap(), None);
        assert_eq!(r.current_write(&k, 10).unwrap().unwrap().0, 12);
        assert_eq!(r.current_write(&k, 30).unwrap().unwrap().0, 32);
        assert!(r.get_txn_commit_record(&k, 20).unwrap().is_rolled_back());
        assert_eq!(
            r.get_txn_commit_record(&k, 15).unwrap(),
            TxnCommitRecord::None {
                overlapped_write: None
            }
        );
        // A commit record of another txn at our start ts is reported as overlapping.
        assert!(matches!(
            r.get_txn_commit_record(&k, 12).unwrap(),
            TxnCommitRecord::None { overlapped_write: Some(w) } if w.start_ts == 10
        ));
        assert_eq!(r.get(&Key::from_raw(b"absent"), 100).unwrap(), None);
    }

    #[test]
    fn long_values_come_from_default_and_missing_ones_are_errors() {
        let store = TestStore::new();
        let k = Key::from_raw(b"k");
        let mut txn = MvccTxn::new(5);
        txn.put_value(&k, vec![7; 1000]);
        txn.put_write(&k, 6, &Write::new(WriteType::Put, 5, None));
        txn.put_write(
            &Key::from_raw(b"lost"),
            6,
            &Write::new(WriteType::Put, 5, None),
        );
        store.write(txn);
        let mut r = store.reader();
        assert_eq!(r.get(&k, 6).unwrap(), Some(vec![7; 1000]));
        assert!(r.get(&Key::from_raw(b"lost"), 6).is_err());
    }

    #[test]
    fn scan_locks_filters_and_limits() {
        let store = TestStore::new();
        let mut txn = MvccTxn::new(0);
        for (i, ts) in [10, 20, 10, 30].into_iter().enumerate() {
            let key = Key::from_raw(format!("k{i}").as_bytes());
            txn.put_lock(&key, &Lock::new(LockType::Put, b"k0".to_vec(), ts, 100));
        }
        store.write(txn);
        let r = store.reader();
        let (all, more) = r.scan_locks(b"", b"", |_| true, 0).unwrap();
        assert_eq!((all.len(), more), (4, false));
        let (ten, _) = r.scan_locks(b"", b"", |l| l.ts == 10, 0).unwrap();
        let keys: Vec<_> = ten.iter().map(|(k, _)| k.to_raw().unwrap()).collect();
        assert_eq!(keys, vec![b"k0".to_vec(), b"k2".to_vec()]);
        let (two, more) = r.scan_locks(b"", b"", |_| true, 2).unwrap();
        assert_eq!((two.len(), more), (2, true));
        let start = Key::from_raw(b"k1");
        let end = Key::from_raw(b"k3");
        let (mid, _) = r
            .scan_locks(start.as_encoded(), end.as_encoded(), |_| true, 0)
            .unwrap();
        assert_eq!(mid.len(), 2);
    }
}
