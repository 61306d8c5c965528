//! Read-only commands: get, batch get, scan, scan lock. They read one snapshot and take no
//! latches.

use proto::kvrpcpb::{Context, LockInfo};
use proto::metapb::Region;

use crate::errors::{Error, Result, TxnError};
use crate::mvcc::{Key, PointGetter, ReadOptions, ScanEntry, ScanOptions, Scanner};
use crate::storage::Storage;
use crate::txn::executor::{check_key_in_region, Executor};
use crate::work::Work;

/// Reads one key at `ts`.
#[derive(Debug, Clone)]
pub struct Get {
    /// Raw key.
    pub key: Vec<u8>,
    /// Read ts.
    pub ts: u64,
    /// Lock handling.
    pub read: ReadOptions,
}

impl Get {
    /// The value, `None` if absent; a blocking lock is [`TxnError::KeyIsLocked`].
    pub async fn execute<S: Storage>(
        self,
        exec: &Executor<'_, S>,
        ctx: &Context,
    ) -> Result<Option<Vec<u8>>> {
        exec.read(ctx, Work::Keys(1), move |reader| {
            check_key_in_region(&Key::from_raw(&self.key), reader.region())?;
            PointGetter::new(reader, self.ts, &self.read).get(&self.key)
        })
        .await
    }
}

/// Reads several keys at `ts`.
#[derive(Debug, Clone)]
pub struct BatchGet {
    /// Raw keys.
    pub keys: Vec<Vec<u8>>,
    /// Read ts.
    pub ts: u64,
    /// Lock handling.
    pub read: ReadOptions,
}

impl BatchGet {
    /// Found keys with their values and locked keys with their lock errors, in request order;
    /// absent keys are left out.
    pub async fn execute<S: Storage>(
        self,
        exec: &Executor<'_, S>,
        ctx: &Context,
    ) -> Result<Vec<ScanEntry>> {
        exec.read(ctx, Work::Keys(self.keys.len()), move |reader| {
            for key in &self.keys {
                check_key_in_region(&Key::from_raw(key), reader.region())?;
            }
            let mut getter = PointGetter::new(reader, self.ts, &self.read);
            let mut out = Vec::with_capacity(self.keys.len());
            for key in self.keys {
                match getter.get(&key) {
                    Ok(Some(value)) => out.push((key, Ok(value))),
                    Ok(None) => {}
                    Err(e @ Error::Txn(TxnError::KeyIsLocked(_))) => out.push((key, Err(e))),
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Scans committed values at `ts`.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Forward: inclusive start. Reverse: exclusive upper bound (empty = region end).
    pub start_key: Vec<u8>,
    /// Forward: exclusive end (empty = region end). Reverse: inclusive lower bound.
    pub end_key: Vec<u8>,
    /// Most entries to return (locked keys count).
    pub limit: usize,
    /// Read ts.
    pub ts: u64,
    /// Return keys only.
    pub key_only: bool,
    /// Walk backwards from `start_key`.
    pub reverse: bool,
    /// Lock handling.
    pub read: ReadOptions,
}

/// `KeyNotInRegion` unless the bound a scan starts from lies in `region`: the client shards a
/// scan by region, so a start outside means its region cache is stale. The far end is simply
/// clamped to the region.
fn check_scan_start(start_key: &[u8], reverse: bool, region: &Region) -> Result<()> {
    let key = Key::from_raw(start_key);
    if !reverse {
        return check_key_in_region(&key, region);
    }
    // Reverse: `start_key` is an exclusive upper bound, so it may equal the region's end.
    let fits = if start_key.is_empty() {
        region.end_key.is_empty()
    } else {
        key.as_encoded() > region.start_key.as_slice()
            && (region.end_key.is_empty() || key.as_encoded() <= region.end_key.as_slice())
    };
    if fits {
        Ok(())
    } else {
        Err(raft_core::Error::KeyNotInRegion {
            key: start_key.to_vec(),
            region: Box::new(region.clone()),
        }
        .into())
    }
}

impl Scan {
    /// Up to `limit` entries in scan order: values, or lock errors for blocked keys.
    pub async fn execute<S: Storage>(
        self,
        exec: &Executor<'_, S>,
        ctx: &Context,
    ) -> Result<Vec<ScanEntry>> {
        let (lower, upper) = if self.reverse {
            (&self.end_key, &self.start_key)
        } else {
            (&self.start_key, &self.end_key)
        };
        if self.limit == 0 || (!upper.is_empty() && lower >= upper) {
            return Ok(Vec::new());
        }
        exec.read(ctx, Work::Scan, move |reader| {
            check_scan_start(&self.start_key, self.reverse, reader.region())?;
            let (lower, upper) = if self.reverse {
                (self.end_key, self.start_key)
            } else {
                (self.start_key, self.end_key)
            };
            let opts = ScanOptions {
                ts: self.ts,
                lower,
                upper,
                reverse: self.reverse,
                key_only: self.key_only,
                read: self.read,
            };
            Scanner::new(reader.snapshot().clone(), opts)?.scan(self.limit)
        })
        .await
    }
}

/// Lists locks of transactions that started at or before `max_ts`.
#[derive(Debug, Clone)]
pub struct ScanLock {
    /// Only locks with start ts `<= max_ts`.
    pub max_ts: u64,
    /// Inclusive start (raw key).
    pub start_key: Vec<u8>,
    /// Exclusive end (raw key; empty = region end).
    pub end_key: Vec<u8>,
    /// Most locks to return (0 = all).
    pub limit: usize,
}

impl ScanLock {
    /// The locks, in key order.
    pub async fn execute<S: Storage>(
        self,
        exec: &Executor<'_, S>,
        ctx: &Context,
    ) -> Result<Vec<LockInfo>> {
        exec.read(ctx, Work::Scan, move |reader| {
            let start = Key::from_raw(&self.start_key);
            check_key_in_region(&start, reader.region())?;
            let end = if self.end_key.is_empty() {
                Vec::new()
            } else {
                Key::from_raw(&self.end_key).into_encoded()
            };
            let max_ts = self.max_ts;
            let (locks, _) =
                reader.scan_locks(start.as_encoded(), &end, |l| l.ts <= max_ts, self.limit)?;
            locks
                .into_iter()
                .map(|(key, lock)| Ok(lock.into_lock_info(key.to_raw()?)))
                .collect()
        })
        .await
    }
}
