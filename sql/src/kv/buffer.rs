//! Buffered writes of an in-memory transaction, and how they overlay snapshot reads.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::KvPair;

/// What a transaction will do to one key at commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Mutation {
    Put(Vec<u8>),
    Delete,
    /// Conflict check only.
    Lock,
}

#[derive(Debug, Default)]
pub(super) struct WriteBuffer {
    entries: BTreeMap<Vec<u8>, Mutation>,
}

impl WriteBuffer {
    pub fn iter(&self) -> impl Iterator<Item = (&Vec<u8>, &Mutation)> {
        self.entries.iter()
    }

    /// `Some(Some(v))` buffered value, `Some(None)` buffered delete, `None` read the snapshot.
    pub fn read(&self, key: &[u8]) -> Option<Option<&Vec<u8>>> {
        match self.entries.get(key)? {
            Mutation::Put(v) => Some(Some(v)),
            Mutation::Delete => Some(None),
            Mutation::Lock => None,
        }
    }

    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.entries.insert(key, Mutation::Put(value));
    }

    pub fn delete(&mut self, key: Vec<u8>) {
        self.entries.insert(key, Mutation::Delete);
    }

    pub fn lock(&mut self, key: Vec<u8>) {
        self.entries.entry(key).or_insert(Mutation::Lock);
    }

    /// Overlays the buffer on `snapshot` (every snapshot pair of `[start, end)`, ascending) and
    /// returns up to `limit` pairs in scan order.
    pub fn merge(
        &self,
        snapshot: impl Iterator<Item = KvPair>,
        start: &[u8],
        end: &[u8],
        limit: usize,
        reverse: bool,
    ) -> Vec<KvPair> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = snapshot.collect();
        let range = (Bound::Included(start), Bound::Excluded(end));
        for (key, m) in self.entries.range::<[u8], _>(range) {
            match m {
                Mutation::Put(v) => {
                    merged.insert(key.clone(), v.clone());
                }
                Mutation::Delete => {
                    merged.remove(key);
                }
                Mutation::Lock => {}
            }
        }
        if reverse {
            merged.into_iter().rev().take(limit).collect()
        } else {
            merged.into_iter().take(limit).collect()
        }
    }
}
