//! Recent log entries kept in memory, so replication to followers that keep up and the hand-off
//! of committed entries to the applier do not read RocksDB.

use std::collections::VecDeque;

use raft::eraftpb::Entry;

/// Encoded size of an entry, which is what raft-rs's message size limits count.
pub(crate) fn encoded_size(e: &Entry) -> u64 {
    use protobuf::Message as _;
    u64::from(e.compute_size())
}

/// Approximate bytes an entry holds in memory (payload plus fixed fields).
pub(crate) fn entry_size(e: &Entry) -> usize {
    e.data.len() + e.context.len() + 32
}

/// A contiguous run of the newest log entries, bounded in bytes.
#[derive(Debug)]
pub(crate) struct EntryCache {
    entries: VecDeque<Entry>,
    size: usize,
    limit: usize,
}

impl EntryCache {
    pub(crate) fn new(limit: usize) -> EntryCache {
        EntryCache {
            entries: VecDeque::new(),
            size: 0,
            limit,
        }
    }

    /// Index of the oldest cached entry.
    pub(crate) fn first_index(&self) -> Option<u64> {
        self.entries.front().map(|e| e.index)
    }

    fn last_index(&self) -> Option<u64> {
        self.entries.back().map(|e| e.index)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds `ents` (contiguous, as appended to the log): a cached suffix they overwrite is
    /// dropped first, and a gap before them empties the cache. Then the oldest entries are
    /// evicted until the cache fits its limit, never evicting the entries just added (they may
    /// not be in the engine yet).
    pub(crate) fn append(&mut self, ents: &[Entry]) {
        let Some(first) = ents.first() else {
            return;
        };
        match (self.first_index(), self.last_index()) {
            (Some(cache_first), Some(cache_last)) if first.index <= cache_last => {
                if first.index <= cache_first {
                    self.clear();
                } else {
                    let keep = (first.index - cache_first) as usize;
                    for e in self.entries.drain(keep..) {
                        self.size -= entry_size(&e);
                    }
                }
            }
            (Some(_), Some(cache_last)) if first.index > cache_last + 1 => self.clear(),
            _ => {}
        }
        for e in ents {
            self.size += entry_size(e);
            self.entries.push_back(e.clone());
        }
        while self.size > self.limit && self.entries.len() > ents.len() {
            let e = self.entries.pop_front().expect("non-empty");
            self.size -= entry_size(&e);
        }
    }

    /// Term of entry `idx` if cached.
    pub(crate) fn term(&self, idx: u64) -> Option<u64> {
        let first = self.first_index()?;
        if idx < first {
            return None;
        }
        self.entries.get((idx - first) as usize).map(|e| e.term)
    }

    /// Appends the cached entries `[low, high)` to `out` while `*budget` allows (the first one
    /// always fits). `low` must be cached. Returns whether it stopped because of the budget.
    pub(crate) fn fetch(
        &self,
        low: u64,
        high: u64,
        out: &mut Vec<Entry>,
        budget: &mut u64,
    ) -> bool {
        let first = self.first_index().expect("fetch from an empty cache");
        debug_assert!(low >= first);
        let start = (low - first) as usize;
        let end = ((high - first) as usize).min(self.entries.len());
        for e in self.entries.range(start..end) {
            let size = encoded_size(e);
            if !out.is_empty() && size > *budget {
                return true;
            }
            *budget = budget.saturating_sub(size);
            out.push(e.clone());
        }
        false
    }

    /// Drops cached entries with index `< idx` (they were compacted away).
    pub(crate) fn compact_to(&mut self, idx: u64) {
        while self.first_index().is_some_and(|first| first < idx) {
            let e = self.entries.pop_front().expect("non-empty");
            self.size -= entry_size(&e);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.entries.clear();
        self.size = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(index: u64, term: u64, payload: usize) -> Entry {
        Entry {
            index,
            term,
            data: vec![0u8; payload].into(),
            ..Default::default()
        }
    }

    fn indexes(c: &EntryCache) -> Vec<(u64, u64)> {
        c.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn append_overwrites_suffix_and_clears_on_gap() {
        let mut c = EntryCache::new(1 << 20);
        c.append(&[ent(5, 1, 1), ent(6, 1, 1), ent(7, 1, 1)]);
        c.append(&[ent(7, 2, 1), ent(8, 2, 1)]);
        assert_eq!(indexes(&c), vec![(5, 1), (6, 1), (7, 2), (8, 2)]);
        c.append(&[ent(4, 3, 1)]);
        assert_eq!(indexes(&c), vec![(4, 3)]);
        c.append(&[ent(10, 3, 1)]);
        assert_eq!(indexes(&c), vec![(10, 3)]);
        assert_eq!(c.term(10), Some(3));
        assert_eq!(c.term(9), None);
        assert_eq!(c.term(11), None);
    }

    #[test]
    fn eviction_keeps_the_latest_append_and_sizes_add_up() {
        let mut c = EntryCache::new(300);
        c.append(&[ent(1, 1, 100), ent(2, 1, 100)]);
        c.append(&[ent(3, 1, 100), ent(4, 1, 100)]);
        assert_eq!(c.first_index(), Some(3));
        // A single append larger than the limit is kept whole.
        c.append(&[ent(5, 1, 200), ent(6, 1, 200)]);
        assert_eq!(indexes(&c), vec![(5, 1), (6, 1)]);
        assert_eq!(c.size, c.entries.iter().map(entry_size).sum::<usize>());
        c.compact_to(6);
        assert_eq!(indexes(&c), vec![(6, 1)]);
        c.compact_to(100);
        assert_eq!(c.len(), 0);
        assert_eq!(c.size, 0);
    }

    #[test]
    fn fetch_respects_budget_but_returns_at_least_one() {
        let mut c = EntryCache::new(1 << 20);
        c.append(&[ent(1, 1, 100), ent(2, 1, 100), ent(3, 1, 100)]);
        let mut out = vec![];
        let mut budget = 10;
        assert!(c.fetch(1, 4, &mut out, &mut budget));
        assert_eq!(out.len(), 1);
        let mut out = vec![];
        let mut budget = u64::MAX;
        assert!(!c.fetch(2, 4, &mut out, &mut budget));
        assert_eq!(out.iter().map(|e| e.index).collect::<Vec<_>>(), vec![2, 3]);
    }
}
