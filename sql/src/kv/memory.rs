//! An in-process multi-version store with Percolator's optimistic semantics.
//!
//! Every key keeps its committed versions `(commit_ts, write)`. A transaction reads the newest
//! version at or below its `start_ts`, buffers its writes, and commits atomically under the store
//! mutex: if any written or locked key has a version committed after `start_ts`, the commit fails
//! with a conflict and writes nothing (first committer wins). Lock-only writes leave a version
//! that conflicts like any other but carries no value, as TiKV's `Lock` write records do.
//! Versions no running transaction can read any more are pruned on commit.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::Mutex;

use super::buffer::{Mutation, WriteBuffer};
use super::{KvBackend, KvPair, KvTxn};
use crate::errors::{Error, Result};

#[derive(Debug, Clone)]
enum Write {
    Put(Vec<u8>),
    Delete,
    Lock,
}

#[derive(Debug, Default)]
struct Store {
    /// The last timestamp handed out (start and commit timestamps share one clock).
    ts: u64,
    /// Versions per key, ascending by commit timestamp.
    data: BTreeMap<Vec<u8>, Vec<(u64, Write)>>,
    /// Start timestamps of running transactions (with multiplicity 1: timestamps are unique).
    active: BTreeMap<u64, ()>,
}

impl Store {
    fn next_ts(&mut self) -> u64 {
        self.ts += 1;
        self.ts
    }

    fn read(&self, key: &[u8], ts: u64) -> Option<Vec<u8>> {
        visible(self.data.get(key)?, ts).cloned()
    }

    /// Up to `n` visible pairs of `[start, end)` in scan order.
    fn scan(&self, start: &[u8], end: &[u8], ts: u64, n: usize, reverse: bool) -> Vec<KvPair> {
        if start >= end {
            return Vec::new();
        }
        let range = self
            .data
            .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)));
        let visible_pairs = |(k, versions): (&Vec<u8>, &Vec<(u64, Write)>)| {
            visible(versions, ts).map(|v| (k.clone(), v.clone()))
        };
        if reverse {
            range.rev().filter_map(visible_pairs).take(n).collect()
        } else {
            range.filter_map(visible_pairs).take(n).collect()
        }
    }

    /// Drops versions of `keys` that no running transaction (and no future one) can read.
    fn prune(&mut self, keys: &[Vec<u8>]) {
        let horizon = self.active.keys().next().copied().unwrap_or(self.ts);
        for key in keys {
            let Some(versions) = self.data.get_mut(key) else {
                continue;
            };
            // Keep the version a read at the horizon finds (locks carry no value, so it is the
            // newest put or delete at or below it) and everything after it.
            let keep_from = versions
                .iter()
                .rposition(|(ts, w)| *ts <= horizon && !matches!(w, Write::Lock))
                .unwrap_or(0);
            versions.drain(..keep_from);
            if let [(_, Write::Delete | Write::Lock)] = versions.as_slice() {
                if versions[0].0 <= horizon {
                    self.data.remove(key);
                }
            }
        }
    }
}

fn visible(versions: &[(u64, Write)], ts: u64) -> Option<&Vec<u8>> {
    versions
        .iter()
        .rev()
        .filter(|(commit_ts, _)| *commit_ts <= ts)
        .find_map(|(_, w)| match w {
            Write::Put(v) => Some(Some(v)),
            Write::Delete => Some(None),
            Write::Lock => None,
        })
        .flatten()
}

/// The in-memory database. Cloning shares it.
#[derive(Clone, Default)]
pub struct MemoryBackend {
    store: Arc<Mutex<Store>>,
}

impl MemoryBackend {
    /// An empty database.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Keys holding at least one version (pruning is observable through this).
    pub fn key_count(&self) -> usize {
        self.store.lock().data.len()
    }
}

impl KvBackend for MemoryBackend {
    fn begin(&self) -> Result<Box<dyn KvTxn>> {
        let mut store = self.store.lock();
        let start_ts = store.next_ts();
        store.active.insert(start_ts, ());
        Ok(Box::new(MemoryTxn {
            store: self.store.clone(),
            start_ts,
            buffer: WriteBuffer::default(),
            finished: false,
        }))
    }
}

struct MemoryTxn {
    store: Arc<Mutex<Store>>,
    start_ts: u64,
    buffer: WriteBuffer,
    finished: bool,
}

impl MemoryTxn {
    fn finish(&mut self, store: &mut Store) {
        if !self.finished {
            store.active.remove(&self.start_ts);
            self.finished = true;
        }
    }
}

impl KvTxn for MemoryTxn {
    fn start_ts(&self) -> u64 {
        self.start_ts
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(buffered) = self.buffer.read(key) {
            return Ok(buffered.cloned());
        }
        Ok(self.store.lock().read(key, self.start_ts))
    }

    fn batch_get(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<KvPair>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(v) = self.get(&key)? {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Result<Vec<KvPair>> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        // Buffered deletes may hide snapshot pairs: read that many more.
        let hidden = self
            .buffer
            .iter()
            .filter(|(k, m)| k.as_slice() >= start && k.as_slice() < end && **m == Mutation::Delete)
            .count();
        let snapshot =
            self.store
                .lock()
                .scan(start, end, self.start_ts, limit as usize + hidden, reverse);
        Ok(self
            .buffer
            .merge(snapshot.into_iter(), start, end, limit as usize, reverse))
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        self.buffer.put(key, value);
        Ok(())
    }

    fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        self.buffer.delete(key);
        Ok(())
    }

    fn lock(&mut self, keys: Vec<Vec<u8>>) -> Result<()> {
        for key in keys {
            self.buffer.lock(key);
        }
        Ok(())
    }

    fn commit(mut self: Box<Self>) -> Result<()> {
        let store = self.store.clone();
        let mut store = store.lock();
        self.finish(&mut store);
        for (key, _) in self.buffer.iter() {
            let newest = store
                .data
                .get(key)
                .and_then(|versions| versions.last())
                .map(|(ts, _)| *ts);
            if let Some(commit_ts) = newest.filter(|ts| *ts > self.start_ts) {
                return Err(Error::Conflict(format!(
                    "key \"{}\" was written at {commit_ts}, after start ts {}",
                    key.escape_ascii(),
                    self.start_ts
                )));
            }
        }
        let mut written = Vec::new();
        let commit_ts = store.next_ts();
        for (key, m) in self.buffer.iter() {
            let write = match m {
                Mutation::Put(v) => Write::Put(v.clone()),
                Mutation::Delete => Write::Delete,
                Mutation::Lock => Write::Lock,
            };
            store
                .data
                .entry(key.clone())
                .or_default()
                .push((commit_ts, write));
            written.push(key.clone());
        }
        store.prune(&written);
        Ok(())
    }

    fn rollback(mut self: Box<Self>) -> Result<()> {
        let store = self.store.clone();
        self.finish(&mut store.lock());
        Ok(())
    }
}

impl Drop for MemoryTxn {
    fn drop(&mut self) {
        if !self.finished {
            let store = self.store.clone();
            self.finish(&mut store.lock());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(b: &MemoryBackend, k: &str, v: &str) {
        let mut t = b.begin().unwrap();
        t.put(k.into(), v.into()).unwrap();
        t.commit().unwrap();
    }

    #[test]
    fn snapshot_reads_and_own_writes() {
        let b = MemoryBackend::new();
        put(&b, "a", "1");
        let mut t1 = b.begin().unwrap();
        put(&b, "a", "2");
        assert_eq!(t1.get(b"a").unwrap(), Some(b"1".to_vec()), "snapshot");
        t1.put(b"b".to_vec(), b"x".to_vec()).unwrap();
        t1.delete(b"a".to_vec()).unwrap();
        assert_eq!(t1.get(b"a").unwrap(), None, "own delete");
        let pairs = t1.scan(b"a", b"z", 10, false).unwrap();
        assert_eq!(pairs, vec![(b"b".to_vec(), b"x".to_vec())]);
        t1.rollback().unwrap();
        let mut t2 = b.begin().unwrap();
        assert_eq!(t2.get(b"a").unwrap(), Some(b"2".to_vec()));
        assert_eq!(t2.get(b"b").unwrap(), None, "rolled back");
    }

    #[test]
    fn first_committer_wins_including_locks() {
        let b = MemoryBackend::new();
        put(&b, "k", "0");
        let mut t1 = b.begin().unwrap();
        let mut t2 = b.begin().unwrap();
        t1.put(b"k".to_vec(), b"1".to_vec()).unwrap();
        t2.put(b"k".to_vec(), b"2".to_vec()).unwrap();
        t1.commit().unwrap();
        assert!(matches!(t2.commit(), Err(Error::Conflict(_))));

        let mut t3 = b.begin().unwrap();
        let mut t4 = b.begin().unwrap();
        t3.lock(vec![b"k".to_vec()]).unwrap();
        t4.put(b"k".to_vec(), b"4".to_vec()).unwrap();
        t3.commit().unwrap();
        assert!(
            matches!(t4.commit(), Err(Error::Conflict(_))),
            "a lock conflicts"
        );

        let mut t5 = b.begin().unwrap();
        assert_eq!(
            t5.get(b"k").unwrap(),
            Some(b"1".to_vec()),
            "locks carry no value"
        );
    }

    #[test]
    fn scans_page_in_both_directions_over_buffered_deletes() {
        let b = MemoryBackend::new();
        for k in ["a", "b", "c", "d", "e"] {
            put(&b, k, k);
        }
        let mut t = b.begin().unwrap();
        t.delete(b"b".to_vec()).unwrap();
        t.delete(b"c".to_vec()).unwrap();
        t.put(b"bb".to_vec(), b"new".to_vec()).unwrap();
        let keys = |pairs: Vec<KvPair>| -> Vec<String> {
            pairs
                .into_iter()
                .map(|(k, _)| String::from_utf8(k).unwrap())
                .collect()
        };
        assert_eq!(
            keys(t.scan(b"a", b"z", 3, false).unwrap()),
            ["a", "bb", "d"]
        );
        assert_eq!(keys(t.scan(b"a", b"e", 3, true).unwrap()), ["d", "bb", "a"]);
        assert_eq!(
            keys(t.scan(b"c", b"c", 3, true).unwrap()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn old_versions_are_pruned_once_unreadable() {
        let b = MemoryBackend::new();
        put(&b, "k", "1");
        let mut reader = b.begin().unwrap();
        put(&b, "k", "2");
        put(&b, "k", "3");
        assert_eq!(
            reader.get(b"k").unwrap(),
            Some(b"1".to_vec()),
            "kept for the reader"
        );
        reader.rollback().unwrap();
        let mut t = b.begin().unwrap();
        t.delete(b"k".to_vec()).unwrap();
        t.commit().unwrap();
        assert_eq!(b.key_count(), 0, "a delete nobody can see past is dropped");
    }
}
