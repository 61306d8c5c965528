//! Snapshot-isolation reads of single keys, honouring locks.

use proto::kvrpcpb::LockInfo;

use super::key::Key;
use super::lock::{Lock, LockType};
use super::reader::MvccReader;
use crate::errors::{Result, TxnError};

/// How a transactional read treats locks (from the request's `Context`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Read-committed isolation: locks are ignored and the newest committed version at the read
    /// ts is returned. Snapshot isolation (the default) reports blocking locks instead.
    pub ignore_locks: bool,
    /// Transactions the client already resolved as not visible at the read ts (rolled back, or
    /// committed later): their locks do not block (`Context.resolved_locks`).
    pub bypass_locks: Vec<u64>,
    /// Transactions the client knows are committed before the read ts: their locked values are
    /// read as if committed (`Context.committed_locks`).
    pub access_locks: Vec<u64>,
}

/// What a lock means for a read at some ts.
pub(super) enum LockCheck {
    /// The lock does not affect the read.
    Ignore,
    /// The lock's transaction is known committed: this is the key's value (`None` = deleted).
    Value(Option<Vec<u8>>),
    /// The read must wait for the lock's transaction to be resolved.
    Locked(Box<LockInfo>),
}

/// Decides whether `lock` on `key` (raw bytes `raw_key`) blocks a read at `ts`.
///
/// A lock blocks only when its transaction could commit with a commit ts `<= ts`: it started at
/// or before `ts`, it changes data (`Lock` and pessimistic locks never do), and its
/// `min_commit_ts` does not already place the commit after `ts`.
pub(super) fn check_lock(
    reader: &MvccReader,
    key: &Key,
    raw_key: &[u8],
    lock: Lock,
    ts: u64,
    opts: &ReadOptions,
) -> Result<LockCheck> {
    if opts.ignore_locks
        || lock.ts > ts
        || matches!(lock.lock_type, LockType::Lock | LockType::Pessimistic)
        || opts.bypass_locks.contains(&lock.ts)
    {
        return Ok(LockCheck::Ignore);
    }
    if opts.access_locks.contains(&lock.ts) {
        return Ok(LockCheck::Value(match lock.lock_type {
            LockType::Put => Some(match lock.short_value {
                Some(v) => v,
                None => reader.load_value_at(key, lock.ts)?,
            }),
            _ => None,
        }));
    }
    if lock.min_commit_ts > ts {
        return Ok(LockCheck::Ignore);
    }
    Ok(LockCheck::Locked(Box::new(
        lock.into_lock_info(raw_key.to_vec()),
    )))
}

/// Point reads at a fixed timestamp.
pub struct PointGetter<'a> {
    reader: &'a mut MvccReader,
    ts: u64,
    opts: &'a ReadOptions,
}

impl<'a> PointGetter<'a> {
    /// Reads through `reader` at `ts`.
    pub fn new(reader: &'a mut MvccReader, ts: u64, opts: &'a ReadOptions) -> PointGetter<'a> {
        PointGetter { reader, ts, opts }
    }

    /// The value of raw key `raw_key` at the read ts; a blocking lock is
    /// [`TxnError::KeyIsLocked`].
    pub fn get(&mut self, raw_key: &[u8]) -> Result<Option<Vec<u8>>> {
        let key = Key::from_raw(raw_key);
        if !self.opts.ignore_locks {
            if let Some(lock) = self.reader.load_lock(&key)? {
                match check_lock(self.reader, &key, raw_key, lock, self.ts, self.opts)? {
                    LockCheck::Ignore => {}
                    LockCheck::Value(v) => return Ok(v),
                    LockCheck::Locked(info) => return Err(TxnError::KeyIsLocked(info).into()),
                }
            }
        }
        self.reader.get(&key, self.ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Error;
    use crate::mvcc::test_util::TestStore;
    use crate::mvcc::write::{Write, WriteType};
    use crate::mvcc::MvccTxn;

    fn setup() -> TestStore {
        let store = TestStore::new();
        let k = Key::from_raw(b"k");
        let mut txn = MvccTxn::new(0);
        txn.put_write(
            &k,
            12,
            &Write::new(WriteType::Put, 10, Some(b"old".to_vec())),
        );
        let mut lock = Lock::new(LockType::Put, b"k".to_vec(), 20, 100);
        lock.short_value = Some(b"new".to_vec());
        txn.put_lock(&k, &lock);
        let l = Key::from_raw(b"l");
        txn.put_lock(&l, &Lock::new(LockType::Lock, b"k".to_vec(), 20, 100));
        store.write(txn);
        store
    }

    fn get(store: &TestStore, key: &[u8], ts: u64, opts: &ReadOptions) -> Result<Option<Vec<u8>>> {
        let mut r = store.reader();
        PointGetter::new(&mut r, ts, opts).get(key)
    }

    #[test]
    fn locks_block_only_reads_at_or_after_their_ts() {
        let store = setup();
        let si = ReadOptions::default();
        assert_eq!(get(&store, b"k", 15, &si).unwrap(), Some(b"old".to_vec()));
        let err = get(&store, b"k", 20, &si).unwrap_err();
        assert!(matches!(err, Error::Txn(TxnError::KeyIsLocked(ref i)) if i.lock_version == 20));
        // A lock-only lock never blocks.
        assert_eq!(get(&store, b"l", 30, &si).unwrap(), None);
    }

    #[test]
    fn context_options_bypass_access_or_ignore_locks() {
        let store = setup();
        let bypass = ReadOptions {
            bypass_locks: vec![20],
            ..Default::default()
        };
        assert_eq!(
            get(&store, b"k", 30, &bypass).unwrap(),
            Some(b"old".to_vec())
        );
        let access = ReadOptions {
            access_locks: vec![20],
            ..Default::default()
        };
        assert_eq!(
            get(&store, b"k", 30, &access).unwrap(),
            Some(b"new".to_vec())
        );
        let rc = ReadOptions {
            ignore_locks: true,
            ..Default::default()
        };
        assert_eq!(get(&store, b"k", 30, &rc).unwrap(), Some(b"old".to_vec()));
    }
}
