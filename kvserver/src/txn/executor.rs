//! Runs commands against a `Storage`: latches, snapshot, MVCC work (inline when it is a few
//! point reads, else off the async threads: see [`crate::work`]), one atomic write.

use proto::kvrpcpb::Context;
use proto::metapb::Region;
use raft_core::engine::CF_LOCK;

use crate::errors::Result;
use crate::latches::{LatchGuard, Latches};
use crate::mvcc::key::split_ts;
use crate::mvcc::{Key, MvccReader, MvccTxn};
use crate::storage::{Modify, Storage};
use crate::work::{self, Work};

/// `KeyNotInRegion` unless `key` lies in `region` (compared in encoded key space).
pub fn check_key_in_region(key: &Key, region: &Region) -> Result<()> {
    if raft_core::keys::key_in_region(key.as_encoded(), region) {
        return Ok(());
    }
    Err(raft_core::Error::KeyNotInRegion {
        key: key.to_raw()?,
        region: Box::new(region.clone()),
    }
    .into())
}

/// The first key of `modifies` whose user key `guard` does not cover, if any. Commands latch
/// encoded user keys; `default` / `write` CF keys are those plus a timestamp.
pub fn unlatched_key<'m>(guard: &LatchGuard, modifies: &'m [Modify]) -> Option<&'m [u8]> {
    modifies.iter().find_map(|m| {
        let Some(key) = m.key() else {
            // Transactions never delete ranges; treat one as unlatched.
            return Some(&[][..]);
        };
        let user_key = if m.cf() == CF_LOCK {
            key
        } else {
            match split_ts(key) {
                Ok((user, _)) => user,
                Err(_) => return Some(key),
            }
        };
        (!guard.covers(user_key)).then_some(key)
    })
}

/// The context of a write computed from a snapshot served in `snapshot_term` (0: not from Raft).
fn write_context(ctx: &Context, snapshot_term: u64) -> Context {
    let mut ctx = ctx.clone();
    if snapshot_term != 0 {
        ctx.term = snapshot_term;
    }
    ctx
}

/// Runs transactional commands over one storage and latch table.
pub struct Executor<'a, S: Storage> {
    storage: &'a S,
    latches: &'a Latches,
}

impl<'a, S: Storage> Executor<'a, S> {
    /// An executor over `storage`, serializing commands with `latches`.
    pub fn new(storage: &'a S, latches: &'a Latches) -> Executor<'a, S> {
        Executor { storage, latches }
    }

    /// Runs read-only `f` (doing `work`) on a fresh snapshot. No latches: snapshots are
    /// consistent on their own.
    pub async fn read<T, F>(&self, ctx: &Context, work: Work, f: F) -> Result<T>
    where
        F: FnOnce(&mut MvccReader) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let snap = self.storage.snapshot(ctx).await?;
        work::run(work, move || f(&mut MvccReader::new(snap))).await
    }

    /// Runs write command `f` for transaction `start_ts` on `keys`:
    ///
    /// 1. latch every key (so no other command on them interleaves between our read and write),
    /// 2. take a snapshot **after** the latches, so it sees every earlier command's write,
    /// 3. check the keys belong to the snapshot's region,
    /// 4. run `f`, which reads through the reader and buffers mutations in the txn,
    /// 5. check every mutated key was latched (a command writing an unlatched key is a bug that
    ///    would break isolation; it panics),
    /// 6. write the whole buffer atomically (nothing if `f` failed), then release the latches.
    ///    The write carries the snapshot's Raft term: latches only serialize commands on this
    ///    store, so if leadership moved away (another leader may have written these keys) and
    ///    came back since the snapshot, the store refuses the write (`StaleCommand`).
    pub async fn write<T, F>(&self, ctx: &Context, start_ts: u64, keys: Vec<Key>, f: F) -> Result<T>
    where
        F: FnOnce(&mut MvccReader, &mut MvccTxn) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let guard = self.latches.acquire(&keys).await;
        let snap = self.storage.snapshot(ctx).await?;
        let write_ctx = write_context(ctx, snap.term());
        for key in &keys {
            check_key_in_region(key, snap.region())?;
        }
        // Write commands read a bounded number of versions per key.
        let work = Work::Keys(keys.len());
        let (out, modifies) = work::run(work, move || {
            let mut reader = MvccReader::new(snap);
            let mut txn = MvccTxn::new(start_ts);
            let out = f(&mut reader, &mut txn)?;
            Ok((out, txn.into_modifies()))
        })
        .await?;
        if let Some(key) = unlatched_key(&guard, &modifies) {
            panic!(
                "transactional command of txn {start_ts} wrote key {:?} it did not latch",
                key.escape_ascii().to_string()
            );
        }
        if !modifies.is_empty() {
            self.storage.write(&write_ctx, modifies).await?;
        }
        drop(guard);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft_core::engine::{CF_DEFAULT, CF_WRITE};

    #[tokio::test]
    async fn latch_check_catches_unlatched_writes() {
        let latches = Latches::new(1 << 16);
        let a = Key::from_raw(b"a");
        let guard = latches.acquire(std::slice::from_ref(&a)).await;
        let ok = vec![
            Modify::Delete {
                cf: CF_LOCK,
                key: a.as_encoded().to_vec(),
            },
            Modify::Put {
                cf: CF_WRITE,
                key: a.append_ts(5),
                value: vec![],
            },
            Modify::Delete {
                cf: CF_DEFAULT,
                key: a.append_ts(3),
            },
        ];
        assert_eq!(unlatched_key(&guard, &ok), None);

        // Find a key whose slot differs from a's (with 65536 slots, almost any will do).
        let other = (0..100u32)
            .map(|i| Key::from_raw(format!("b{i}").as_bytes()))
            .find(|k| !guard.covers(k.as_encoded()))
            .expect("a key in another slot");
        let mut bad = ok.clone();
        bad.push(Modify::Put {
            cf: CF_WRITE,
            key: other.append_ts(7),
            value: vec![],
        });
        assert_eq!(unlatched_key(&guard, &bad), Some(&other.append_ts(7)[..]));
        let range = vec![Modify::DeleteRange {
            cf: CF_DEFAULT,
            start_key: vec![],
            end_key: vec![],
        }];
        assert!(unlatched_key(&guard, &range).is_some());
    }

    /// A storage whose snapshots claim Raft term 7 and which records the term of each write.
    #[derive(Clone)]
    struct TermRecorder {
        inner: crate::storage::StandaloneStorage,
        terms: std::sync::Arc<parking_lot::Mutex<Vec<u64>>>,
    }

    impl Storage for TermRecorder {
        async fn write(&self, ctx: &Context, batch: Vec<Modify>) -> Result<()> {
            self.terms.lock().push(ctx.term);
            self.inner.write(ctx, batch).await
        }

        async fn snapshot(&self, ctx: &Context) -> Result<crate::storage::RegionSnapshot> {
            Ok(self.inner.snapshot(ctx).await?.with_term(7))
        }
    }

    #[tokio::test]
    async fn writes_carry_the_term_of_their_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let storage = TermRecorder {
            inner: crate::storage::StandaloneStorage::open(
                dir.path(),
                &raft_core::config::EngineConfig::new_test_config(),
            )
            .unwrap(),
            terms: Default::default(),
        };
        let latches = Latches::new(64);
        let exec = Executor::new(&storage, &latches);
        let key = Key::from_raw(b"k");
        let k = key.clone();
        exec.write(&Context::default(), 10, vec![key], move |_, txn| {
            txn.put_value(&k, b"v".to_vec());
            Ok(())
        })
        .await
        .unwrap();
        assert_eq!(*storage.terms.lock(), [7]);
        // Without a Raft term (standalone), the client's context is kept as it is.
        assert_eq!(
            write_context(
                &Context {
                    term: 3,
                    ..Default::default()
                },
                0
            )
            .term,
            3
        );
    }

    #[test]
    fn region_check_uses_encoded_keys() {
        let region = Region {
            id: 2,
            start_key: Key::from_raw(b"b").into_encoded(),
            end_key: Key::from_raw(b"d").into_encoded(),
            ..Default::default()
        };
        assert!(check_key_in_region(&Key::from_raw(b"b"), &region).is_ok());
        assert!(check_key_in_region(&Key::from_raw(b"c\xff\xff"), &region).is_ok());
        let err = check_key_in_region(&Key::from_raw(b"d"), &region).unwrap_err();
        let re = err.region_error().expect("region error");
        assert_eq!(
            re.key_not_in_region.unwrap().key,
            b"d",
            "the client sees its raw key"
        );
    }
}
