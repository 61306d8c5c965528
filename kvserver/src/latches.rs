//! Per-key latches: commands that touch the same keys run one at a time.
//!
//! A command reads a snapshot, decides, then writes; without latches two commands on one key could
//! both read the old state and both write (a lost update, or two transactions both prewriting).
//! Keys hash into a fixed number of slots; a command acquires the slots of all its keys in
//! ascending slot order, so two commands can never wait on each other in a cycle. Slots are async
//! mutexes: a waiting command parks its task, not a thread.
//!
//! Holding a latch only serializes commands on **this** store. Over Raft that is enough because
//! only the leader executes commands and a new leader starts with empty latches but a fresh
//! snapshot (its read index covers everything the old leader acknowledged).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

/// The latch table. Cheap to clone (shared).
#[derive(Clone)]
pub struct Latches {
    slots: Arc<Vec<Arc<Mutex<()>>>>,
}

/// Proof that a set of slots is held; released on drop.
pub struct LatchGuard {
    slots: Vec<usize>,
    size: usize,
    _guards: Vec<OwnedMutexGuard<()>>,
}

impl Latches {
    /// Creates a table of `size` slots (rounded up to a power of two, at least 1).
    pub fn new(size: usize) -> Latches {
        let size = size.max(1).next_power_of_two();
        Latches {
            slots: Arc::new((0..size).map(|_| Arc::new(Mutex::new(()))).collect()),
        }
    }

    fn slot(size: usize, key: &[u8]) -> usize {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        (h.finish() as usize) & (size - 1)
    }

    /// Waits until every key's slot is held by this caller, then returns the guard.
    pub async fn acquire<K: AsRef<[u8]>>(&self, keys: &[K]) -> LatchGuard {
        let size = self.slots.len();
        let mut slots: Vec<usize> = keys.iter().map(|k| Self::slot(size, k.as_ref())).collect();
        slots.sort_unstable();
        slots.dedup();
        let mut guards = Vec::with_capacity(slots.len());
        for &s in &slots {
            guards.push(self.slots[s].clone().lock_owned().await);
        }
        LatchGuard {
            slots,
            size,
            _guards: guards,
        }
    }
}

impl LatchGuard {
    /// Whether this guard covers `key`. Used by tests (and debug assertions) to check that a
    /// command only writes keys it latched.
    pub fn covers(&self, key: &[u8]) -> bool {
        self.slots
            .binary_search(&Latches::slot(self.size, key))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn same_key_serializes_and_different_keys_do_not() {
        let latches = Latches::new(256);
        let g = latches.acquire(&[b"a".to_vec(), b"b".to_vec()]).await;
        assert!(g.covers(b"a") && g.covers(b"b"));

        // A second command on "b" waits until the first guard is dropped.
        let l2 = latches.clone();
        let waiter = tokio::spawn(async move { l2.acquire(&[b"b"]).await.covers(b"b") });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(g);
        assert!(waiter.await.unwrap());

        // Duplicate keys and opposite orders never deadlock (each command releases its guard
        // when it finishes, letting the other one in).
        let (x, y) = tokio::join!(
            async { latches.acquire(&[b"k1", b"k2", b"k1"]).await.covers(b"k1") },
            async { latches.acquire(&[b"k2", b"k1"]).await.covers(b"k2") }
        );
        assert!(x && y);
    }

    #[tokio::test]
    async fn single_slot_table_still_works() {
        let latches = Latches::new(0);
        let g = latches.acquire(&[b"x", b"y"]).await;
        assert!(g.covers(b"anything"));
    }
}
