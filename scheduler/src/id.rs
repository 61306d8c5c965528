//! The id allocator: store, region and peer ids, unique for the life of the cluster.
//!
//! Ids are handed out from a batch whose end is synced to disk before the first id of the batch
//! leaves the process. A restart resumes after the saved end, so ids never repeat even if the
//! process dies mid-batch (the rest of that batch is skipped).

use std::sync::Arc;

use parking_lot::Mutex;

use crate::errors::{Error, Result};
use crate::storage::{MetaKey, MetaStore};

/// Allocates ids; cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct IdAllocator {
    store: Arc<MetaStore>,
    batch: u64,
    state: Mutex<IdState>,
}

#[derive(Debug)]
struct IdState {
    /// Next id to hand out.
    next: u64,
    /// Last id covered by the persisted batch end.
    end: u64,
}

impl IdAllocator {
    /// Loads the persisted batch end. The first id of a fresh cluster is 1 (0 means "unset" on
    /// the wire).
    pub fn open(store: Arc<MetaStore>, batch: u64) -> Result<IdAllocator> {
        let end = store.load_u64(MetaKey::AllocId)?.unwrap_or(0);
        Ok(IdAllocator {
            store,
            batch: batch.max(1),
            state: Mutex::new(IdState { next: end + 1, end }),
        })
    }

    /// One new id.
    pub fn alloc(&self) -> Result<u64> {
        Ok(self.alloc_many(1)?[0])
    }

    /// `n` new ids, in increasing order.
    pub fn alloc_many(&self, n: usize) -> Result<Vec<u64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let n = n as u64;
        let mut st = self.state.lock();
        let last = st
            .next
            .checked_add(n - 1)
            .ok_or_else(|| Error::Exhausted("id space".into()))?;
        if last > st.end {
            let new_end = last
                .checked_add(self.batch)
                .ok_or_else(|| Error::Exhausted("id space".into()))?;
            // Synced before any id of the new batch is returned.
            self.store.save_u64(MetaKey::AllocId, new_end)?;
            st.end = new_end;
        }
        let ids = (st.next..=last).collect();
        st.next = last + 1;
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_increasing_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = Vec::new();
        for _round in 0..3 {
            let store = Arc::new(MetaStore::open(dir.path()).unwrap());
            let alloc = IdAllocator::open(store, 7).unwrap();
            for _ in 0..10 {
                seen.push(alloc.alloc().unwrap());
            }
            seen.extend(alloc.alloc_many(20).unwrap());
        }
        assert_eq!(seen[0], 1);
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    }

    #[test]
    fn batch_end_is_persisted_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MetaStore::open(dir.path()).unwrap());
        let alloc = IdAllocator::open(store.clone(), 10).unwrap();
        assert_eq!(alloc.alloc().unwrap(), 1);
        assert_eq!(store.load_u64(MetaKey::AllocId).unwrap(), Some(11));
        let ids = alloc.alloc_many(15).unwrap();
        assert_eq!(ids, (2..=16).collect::<Vec<_>>());
        assert!(store.load_u64(MetaKey::AllocId).unwrap().unwrap() >= 16);
    }
}
