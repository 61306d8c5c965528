//! Where a request's MVCC / engine work runs: inline on the async worker, or on the blocking
//! pool.
//!
//! Handing a closure to tokio's blocking pool costs two thread switches and a wake-up (tens of
//! microseconds on a loaded 2-core machine, measured as most of a small transaction's gRPC-side
//! CPU). A handful of RocksDB point reads (memtable, block cache) costs less than that, so
//! commands touching few keys run inline; scans and large batches, which may walk many entries
//! or wait on the disk for a long time, still go to the blocking pool so they cannot stall the
//! executor that serves every other request.

use crate::errors::{Error, Result};

/// Commands reading at most this many keys by point lookups run inline.
pub const INLINE_MAX_KEYS: usize = 32;

/// How much engine work a closure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// Point reads of this many keys (plus a bounded number of seeks per key).
    Keys(usize),
    /// A scan, bounded only by its limit.
    Scan,
}

impl Work {
    /// Whether the work is small enough to run inline.
    pub fn is_small(self) -> bool {
        matches!(self, Work::Keys(n) if n <= INLINE_MAX_KEYS)
    }
}

/// Runs `f` inline when `work` is small, else on the blocking pool. A panic in `f` stays a
/// panic (a broken invariant, not an error to report).
pub async fn run<T, F>(work: Work, f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    if work.is_small() {
        return f();
    }
    match tokio::task::spawn_blocking(f).await {
        Ok(res) => res,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Other(format!("engine worker went away: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_work_is_point_reads_of_few_keys() {
        assert!(Work::Keys(1).is_small());
        assert!(Work::Keys(INLINE_MAX_KEYS).is_small());
        assert!(!Work::Keys(INLINE_MAX_KEYS + 1).is_small());
        assert!(!Work::Scan.is_small());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn both_ways_return_the_result() {
        assert_eq!(run(Work::Keys(1), || Ok(1)).await.unwrap(), 1);
        assert_eq!(run(Work::Scan, || Ok(2)).await.unwrap(), 2);
        assert!(run::<(), _>(Work::Scan, || Err(Error::Other("x".into())))
            .await
            .is_err());
    }
}
