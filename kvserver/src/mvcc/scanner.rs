//! Forward and reverse scans of committed values at a timestamp.
//!
//! Two cursors walk the `write` and `lock` CFs side by side; at each user key the scanner first
//! checks the lock (a blocking lock becomes a per-key error entry, like TiKV's scanner), then
//! picks the newest data-changing record at or below the read ts.

use raft_core::engine::{EngineIterator, CF_LOCK, CF_WRITE};

use super::key::{split_ts, Key};
use super::lock::Lock;
use super::point_getter::{check_lock, LockCheck, ReadOptions};
use super::reader::MvccReader;
use super::write::{Write, WriteType};
use crate::errors::{Result, TxnError};
use crate::storage::{RegionIterator, RegionSnapshot};

/// What to scan.
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Read ts.
    pub ts: u64,
    /// Inclusive lower bound (raw key; empty = from the region's start).
    pub lower: Vec<u8>,
    /// Exclusive upper bound (raw key; empty = to the region's end).
    pub upper: Vec<u8>,
    /// Walk from `upper` down to `lower`.
    pub reverse: bool,
    /// Return keys with empty values (skips loading long values).
    pub key_only: bool,
    /// Lock handling.
    pub read: ReadOptions,
}

/// One scanned key: its value, or the error that blocks reading it (a lock).
pub type ScanEntry = (Vec<u8>, Result<Vec<u8>>);

/// A scan over one region's snapshot.
pub struct Scanner {
    reader: MvccReader,
    opts: ScanOptions,
    writes: RegionIterator,
    locks: Option<RegionIterator>,
    write_valid: bool,
    lock_valid: bool,
}

/// The encoded-user-key part of the key a cursor points at (`None` if exhausted).
fn user_key_at(it: &RegionIterator, valid: bool, is_write_cf: bool) -> Result<Option<Vec<u8>>> {
    if !valid {
        return Ok(None);
    }
    if is_write_cf {
        Ok(Some(split_ts(it.key())?.0.to_vec()))
    } else {
        Ok(Some(it.key().to_vec()))
    }
}

impl Scanner {
    /// Opens cursors over `[lower, upper)` of `snap` (clamped to its region).
    pub fn new(snap: RegionSnapshot, opts: ScanOptions) -> Result<Scanner> {
        let lower = if opts.lower.is_empty() {
            Vec::new()
        } else {
            Key::from_raw(&opts.lower).into_encoded()
        };
        let upper = if opts.upper.is_empty() {
            Vec::new()
        } else {
            Key::from_raw(&opts.upper).into_encoded()
        };
        let mut writes = snap.iter_cf(CF_WRITE, &lower, &upper)?;
        let mut locks = if opts.read.ignore_locks {
            None
        } else {
            Some(snap.iter_cf(CF_LOCK, &lower, &upper)?)
        };
        let (write_valid, lock_valid) = if opts.reverse {
            (
                writes.seek_to_last()?,
                locks.as_mut().map(|l| l.seek_to_last()).transpose()? == Some(true),
            )
        } else {
            (
                writes.seek_to_first()?,
                locks.as_mut().map(|l| l.seek_to_first()).transpose()? == Some(true),
            )
        };
        Ok(Scanner {
            reader: MvccReader::new(snap),
            opts,
            writes,
            locks,
            write_valid,
            lock_valid,
        })
    }

    /// Up to `limit` entries in scan order. Keys blocked by a lock are included as error entries
    /// and count towards the limit.
    pub fn scan(&mut self, limit: usize) -> Result<Vec<ScanEntry>> {
        let mut out = Vec::new();
        while out.len() < limit {
            match self.next_entry()? {
                Some(entry) => out.push(entry),
                None => break,
            }
        }
        Ok(out)
    }

    fn next_entry(&mut self) -> Result<Option<ScanEntry>> {
        loop {
            let wk = user_key_at(&self.writes, self.write_valid, true)?;
            let lk = match &self.locks {
                Some(it) => user_key_at(it, self.lock_valid, false)?,
                None => None,
            };
            let current = match (&wk, &lk) {
                (None, None) => return Ok(None),
                (Some(w), None) => w.clone(),
                (None, Some(l)) => l.clone(),
                (Some(w), Some(l)) if self.opts.reverse => w.max(l).clone(),
                (Some(w), Some(l)) => w.min(l).clone(),
            };
            let key = Key::from_encoded(current);
            let raw = key.to_raw()?;
            let has_writes = wk.as_deref() == Some(key.as_encoded());

            let mut from_lock = None;
            if lk.as_deref() == Some(key.as_encoded()) {
                let locks = self.locks.as_mut().expect("lock cursor exists");
                let lock = Lock::parse(locks.value())?;
                self.lock_valid = if self.opts.reverse {
                    locks.prev()?
                } else {
                    locks.next()?
                };
                match check_lock(
                    &self.reader,
                    &key,
                    &raw,
                    lock,
                    self.opts.ts,
                    &self.opts.read,
                )? {
                    LockCheck::Ignore => {}
                    LockCheck::Value(v) => from_lock = Some(v),
                    LockCheck::Locked(info) => {
                        if has_writes {
                            self.skip_versions(&key)?;
                        }
                        return Ok(Some((raw, Err(TxnError::KeyIsLocked(info).into()))));
                    }
                }
            }

            let committed = if has_writes {
                let value = self.visible_value(&key)?;
                self.skip_versions(&key)?;
                value
            } else {
                None
            };
            let value = match from_lock {
                Some(v) => v,
                None => committed,
            };
            if let Some(v) = value {
                let v = if self.opts.key_only { Vec::new() } else { v };
                return Ok(Some((raw, Ok(v))));
            }
        }
    }

    /// The value of `key` at the read ts, from the write cursor (which it leaves somewhere
    /// within or right after the key's versions).
    fn visible_value(&mut self, key: &Key) -> Result<Option<Vec<u8>>> {
        let mut valid = self.writes.seek(&key.append_ts(self.opts.ts))?;
        while valid && key.is_user_key_of(self.writes.key()) {
            let write = Write::parse(self.writes.value())?;
            match write.write_type {
                WriteType::Put if self.opts.key_only => return Ok(Some(Vec::new())),
                WriteType::Put => return Ok(Some(self.reader.load_data(key, write)?)),
                WriteType::Delete => return Ok(None),
                WriteType::Lock | WriteType::Rollback => valid = self.writes.next()?,
            }
        }
        Ok(None)
    }

    /// Moves the write cursor to the next user key in scan order.
    fn skip_versions(&mut self, key: &Key) -> Result<()> {
        self.write_valid = if self.opts.reverse {
            // No write-CF key equals a bare encoded key, so this lands on the oldest version of
            // the previous user key.
            self.writes.seek_for_prev(key.as_encoded())?
        } else {
            self.writes.seek(&key.versions_end())?
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Error;
    use crate::mvcc::lock::LockType;
    use crate::mvcc::test_util::TestStore;
    use crate::mvcc::MvccTxn;

    /// k1 v1@10, k2 deleted@20 (v2@10 before), k3 locked@15 (v3@5 before), k4 long value@10,
    /// k5 only a rollback, k6 lock-type lock only.
    fn setup() -> TestStore {
        let store = TestStore::new();
        let mut txn = MvccTxn::new(0);
        let put = |v: &[u8], start| Write::new(WriteType::Put, start, Some(v.to_vec()));
        txn.put_write(&Key::from_raw(b"k1"), 10, &put(b"v1", 9));
        txn.put_write(&Key::from_raw(b"k2"), 10, &put(b"v2", 9));
        txn.put_write(
            &Key::from_raw(b"k2"),
            20,
            &Write::new(WriteType::Delete, 19, None),
        );
        txn.put_write(&Key::from_raw(b"k3"), 5, &put(b"v3", 4));
        txn.put_lock(
            &Key::from_raw(b"k3"),
            &Lock::new(LockType::Put, b"k3".to_vec(), 15, 100),
        );
        let mut long = MvccTxn::new(9);
        long.put_value(&Key::from_raw(b"k4"), vec![4; 300]);
        txn.put_write(
            &Key::from_raw(b"k4"),
            10,
            &Write::new(WriteType::Put, 9, None),
        );
        txn.put_write(&Key::from_raw(b"k5"), 7, &Write::new_rollback(7));
        txn.put_lock(
            &Key::from_raw(b"k6"),
            &Lock::new(LockType::Lock, b"k6".to_vec(), 1, 100),
        );
        store.write(txn);
        store.write(long);
        store
    }

    fn scan(store: &TestStore, opts: ScanOptions, limit: usize) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        let mut s = Scanner::new(store.storage.snapshot_sync(), opts).unwrap();
        s.scan(limit)
            .unwrap()
            .into_iter()
            .map(|(k, v)| match v {
                Ok(v) => (k, Some(v)),
                Err(Error::Txn(TxnError::KeyIsLocked(_))) => (k, None),
                Err(e) => panic!("unexpected error {e}"),
            })
            .collect()
    }

    fn keys(entries: &[(Vec<u8>, Option<Vec<u8>>)]) -> Vec<&[u8]> {
        entries.iter().map(|(k, _)| k.as_slice()).collect()
    }

    #[test]
    fn forward_scan_at_timestamps() {
        let store = setup();
        let at = |ts| ScanOptions {
            ts,
            ..Default::default()
        };
        let r = scan(&store, at(12), 100);
        assert_eq!(keys(&r), [&b"k1"[..], b"k2", b"k3", b"k4"]);
        assert_eq!(
            r[2].1.as_deref(),
            Some(&b"v3"[..]),
            "lock at 15 does not block ts 12"
        );
        assert_eq!(r[3].1.as_deref(), Some(&[4u8; 300][..]));
        let r = scan(&store, at(25), 100);
        assert_eq!(keys(&r), [&b"k1"[..], b"k3", b"k4"]);
        assert_eq!(r[1].1, None, "k3 is locked at ts 25");
        assert!(scan(&store, at(4), 100).is_empty());
        assert_eq!(keys(&scan(&store, at(12), 2)), [&b"k1"[..], b"k2"]);
        assert!(scan(&store, at(12), 0).is_empty());
    }

    #[test]
    fn bounds_reverse_and_key_only() {
        let store = setup();
        let opts = ScanOptions {
            ts: 12,
            lower: b"k2".to_vec(),
            upper: b"k4".to_vec(),
            ..Default::default()
        };
        assert_eq!(keys(&scan(&store, opts.clone(), 10)), [&b"k2"[..], b"k3"]);
        let rev = ScanOptions {
            reverse: true,
            ..opts.clone()
        };
        assert_eq!(keys(&scan(&store, rev, 10)), [&b"k3"[..], b"k2"]);
        let all_rev = ScanOptions {
            ts: 25,
            reverse: true,
            key_only: true,
            ..Default::default()
        };
        let r = scan(&store, all_rev, 10);
        assert_eq!(keys(&r), [&b"k4"[..], b"k3", b"k1"]);
        assert_eq!(r[0].1.as_deref(), Some(&[][..]));
        assert_eq!(r[1].1, None);
        let rev_limited = ScanOptions {
            ts: 12,
            reverse: true,
            ..Default::default()
        };
        assert_eq!(keys(&scan(&store, rev_limited, 2)), [&b"k4"[..], b"k3"]);
    }
}
