//! A transaction's buffered writes, and how they overlay reads.

use std::collections::BTreeMap;
use std::ops::Bound;

use proto::kvrpcpb;

use crate::errors::{Error, Result};
use crate::kv::{KvPair, Value};

/// What the transaction will do to one key at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Entry {
    Put(Value),
    /// A put that must fail if the key already exists.
    Insert(Value),
    Del,
    /// Lock the key (write-conflict check) without changing it.
    Lock,
    /// Insert then delete within the transaction: no change, but the key must not exist.
    CheckNotExists,
}

#[derive(Debug, Default)]
pub(super) struct Buffer {
    entries: BTreeMap<Vec<u8>, Entry>,
}

impl Buffer {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// What a read of `key` sees in the buffer: `Some(Some(v))` a buffered value, `Some(None)`
    /// a buffered delete, `None` nothing decisive (read the store).
    pub fn read(&self, key: &[u8]) -> Option<Option<&Value>> {
        match self.entries.get(key)? {
            Entry::Put(v) | Entry::Insert(v) => Some(Some(v)),
            Entry::Del | Entry::CheckNotExists => Some(None),
            Entry::Lock => None,
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Value) {
        let entry = match self.entries.get(&key) {
            // The key did not exist when inserted: keep that check.
            Some(Entry::Insert(_)) | Some(Entry::CheckNotExists) => Entry::Insert(value),
            _ => Entry::Put(value),
        };
        self.entries.insert(key, entry);
    }

    /// Buffers an insert; fails when the transaction itself already wrote the key.
    pub fn insert(&mut self, key: Vec<u8>, value: Value) -> Result<()> {
        let entry = match self.entries.get(&key) {
            Some(Entry::Put(_)) | Some(Entry::Insert(_)) => {
                return Err(Error::AlreadyExists { key });
            }
            // Deleted by this transaction: it existed before, so this is a plain put.
            Some(Entry::Del) => Entry::Put(value),
            Some(Entry::CheckNotExists) | Some(Entry::Lock) | None => Entry::Insert(value),
        };
        self.entries.insert(key, entry);
        Ok(())
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        let entry = match self.entries.get(&key) {
            Some(Entry::Insert(_)) | Some(Entry::CheckNotExists) => Entry::CheckNotExists,
            _ => Entry::Del,
        };
        self.entries.insert(key, entry);
    }

    /// Marks `key` locked unless a write already covers it.
    pub fn lock(&mut self, key: Vec<u8>) {
        self.entries.entry(key).or_insert(Entry::Lock);
    }

    /// The mutations to prewrite, in key order.
    pub fn mutations(&self) -> Vec<kvrpcpb::Mutation> {
        self.entries
            .iter()
            .map(|(key, entry)| {
                let (op, value) = match entry {
                    Entry::Put(v) => (kvrpcpb::Op::Put, v.clone()),
                    Entry::Insert(v) => (kvrpcpb::Op::Insert, v.clone()),
                    Entry::Del => (kvrpcpb::Op::Del, Vec::new()),
                    Entry::Lock => (kvrpcpb::Op::Lock, Vec::new()),
                    Entry::CheckNotExists => (kvrpcpb::Op::CheckNotExists, Vec::new()),
                };
                kvrpcpb::Mutation {
                    op: op as i32,
                    key: key.clone(),
                    value,
                    ..Default::default()
                }
            })
            .collect()
    }

    fn range(&self, start: &[u8], end: Option<&[u8]>) -> impl Iterator<Item = (&Vec<u8>, &Entry)> {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        self.entries
            .range::<[u8], _>((Bound::Included(start), upper))
    }

    /// Buffered deletes in `[start, end)`: how many store rows a scan may have to skip.
    pub fn deletes_in(&self, start: &[u8], end: Option<&[u8]>) -> usize {
        self.range(start, end)
            .filter(|(_, e)| matches!(e, Entry::Del | Entry::CheckNotExists))
            .count()
    }

    /// Overlays the buffer's writes in `[start, end)` on `store` (sorted pairs read from the
    /// store with a limit widened by [`deletes_in`](Self::deletes_in)) and keeps the first
    /// `limit`.
    pub fn merge_scan(
        &self,
        store: Vec<KvPair>,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Vec<KvPair> {
        let mut merged: BTreeMap<Vec<u8>, Value> = store
            .into_iter()
            .map(|p| (p.key.into_inner(), p.value))
            .collect();
        for (key, entry) in self.range(start, end) {
            match entry {
                Entry::Put(v) | Entry::Insert(v) => {
                    merged.insert(key.clone(), v.clone());
                }
                Entry::Del | Entry::CheckNotExists => {
                    merged.remove(key);
                }
                Entry::Lock => {}
            }
        }
        merged
            .into_iter()
            .take(limit)
            .map(|(k, v)| KvPair::new(k, v))
            .collect()
    }
}

impl Buffer {
    /// [`merge_scan`](Self::merge_scan) for a reverse scan: `store` is descending, and so is the
    /// result.
    pub fn merge_scan_reverse(
        &self,
        store: Vec<KvPair>,
        start: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Vec<KvPair> {
        // As in the forward merge, the widened store read guarantees that buffered puts beyond
        // the last store key cannot displace store keys that were not read.
        let mut merged: BTreeMap<Vec<u8>, Value> = store
            .into_iter()
            .map(|p| (p.key.into_inner(), p.value))
            .collect();
        for (key, entry) in self.range(start, end) {
            match entry {
                Entry::Put(v) | Entry::Insert(v) => {
                    merged.insert(key.clone(), v.clone());
                }
                Entry::Del | Entry::CheckNotExists => {
                    merged.remove(key);
                }
                Entry::Lock => {}
            }
        }
        merged
            .into_iter()
            .rev()
            .take(limit)
            .map(|(k, v)| KvPair::new(k, v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    #[test]
    fn write_sequences_collapse_to_the_right_mutation() {
        let mut b = Buffer::default();
        b.insert(k("a"), k("1")).unwrap();
        b.put(k("a"), k("2"));
        assert_eq!(b.get(b"a"), Some(&Entry::Insert(k("2"))));
        b.delete(k("a"));
        assert_eq!(b.get(b"a"), Some(&Entry::CheckNotExists));
        assert_eq!(b.read(b"a"), Some(None));
        b.insert(k("a"), k("3")).unwrap();
        assert_eq!(b.get(b"a"), Some(&Entry::Insert(k("3"))));

        b.put(k("b"), k("1"));
        assert!(matches!(
            b.insert(k("b"), k("2")),
            Err(Error::AlreadyExists { .. })
        ));
        b.delete(k("b"));
        b.insert(k("b"), k("2")).unwrap();
        assert_eq!(b.get(b"b"), Some(&Entry::Put(k("2"))));

        b.lock(k("c"));
        assert_eq!(b.read(b"c"), None, "a lock does not answer reads");
        b.lock(k("b"));
        assert_eq!(
            b.get(b"b"),
            Some(&Entry::Put(k("2"))),
            "lock keeps the write"
        );

        let ops: Vec<(Vec<u8>, i32)> = b.mutations().into_iter().map(|m| (m.key, m.op)).collect();
        assert_eq!(
            ops,
            vec![
                (k("a"), kvrpcpb::Op::Insert as i32),
                (k("b"), kvrpcpb::Op::Put as i32),
                (k("c"), kvrpcpb::Op::Lock as i32),
            ]
        );
    }

    #[test]
    fn scans_merge_buffered_writes() {
        let mut b = Buffer::default();
        b.put(k("b"), k("B"));
        b.delete(k("c"));
        b.lock(k("d"));
        b.put(k("z"), k("Z"));
        assert_eq!(b.deletes_in(b"a", Some(b"y")), 1);
        let store = vec![
            KvPair::new("a", "1"),
            KvPair::new("c", "3"),
            KvPair::new("d", "4"),
        ];
        let merged = b.merge_scan(store, b"a", Some(b"y"), 10);
        assert_eq!(
            merged,
            vec![
                KvPair::new("a", "1"),
                KvPair::new("b", "B"),
                KvPair::new("d", "4")
            ]
        );
        let store = vec![KvPair::new("a", "1"), KvPair::new("c", "3")];
        assert_eq!(
            b.merge_scan(store, b"a", Some(b"y"), 2),
            vec![KvPair::new("a", "1"), KvPair::new("b", "B")]
        );
    }
}
