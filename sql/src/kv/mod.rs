//! The transactional key-value interface the SQL storage is written against.
//!
//! It is the small, synchronous subset of a Percolator client that GlueSQL's synchronous
//! storage traits need: a snapshot at `start_ts`, reads that see the transaction's own buffered
//! writes, scans in both directions, buffered puts/deletes/locks, and a commit where the first
//! committer of a key wins. Two implementations:
//!
//! - [`ClusterBackend`]: the product, over `client::TransactionClient`, driven on a dedicated
//!   tokio runtime so that synchronous callers never `block_on` inside an async task;
//! - [`MemoryBackend`]: an in-process multi-version store with the same optimistic semantics,
//!   for tests that do not need a cluster.

mod buffer;
mod cluster;
mod memory;

pub use self::cluster::ClusterBackend;
pub use self::memory::MemoryBackend;

use crate::errors::Result;

/// A key and its value.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A database that starts transactions. Shared by every session (`Arc<dyn KvBackend>`).
pub trait KvBackend: Send + Sync {
    /// Starts an optimistic transaction reading at a fresh timestamp.
    fn begin(&self) -> Result<Box<dyn KvTxn>>;
}

/// One optimistic (Percolator) transaction.
///
/// Reads see the database at [`start_ts`](KvTxn::start_ts) plus this transaction's own writes.
/// Writes are buffered until [`commit`](KvTxn::commit), which fails with
/// [`Error::Conflict`](crate::Error::Conflict) if another transaction committed a write (or a
/// lock) to any written or locked key after `start_ts`; then nothing is written.
pub trait KvTxn: Send {
    /// The snapshot timestamp; unique per transaction and increasing over time.
    fn start_ts(&self) -> u64;

    /// The value of `key`.
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;

    /// The pairs that exist among `keys`, in any order.
    fn batch_get(&mut self, keys: Vec<Vec<u8>>) -> Result<Vec<KvPair>>;

    /// Up to `limit` pairs of `[start, end)`: ascending, or descending from `end` when
    /// `reverse`.
    fn scan(&mut self, start: &[u8], end: &[u8], limit: u32, reverse: bool) -> Result<Vec<KvPair>>;

    /// Buffers a write.
    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()>;

    /// Buffers a delete.
    fn delete(&mut self, key: Vec<u8>) -> Result<()>;

    /// Adds `keys` to the conflict check without writing them: the commit fails if another
    /// transaction writes one of them after `start_ts`.
    fn lock(&mut self, keys: Vec<Vec<u8>>) -> Result<()>;

    /// Commits the buffered writes (a no-op for a transaction that wrote nothing).
    fn commit(self: Box<Self>) -> Result<()>;

    /// Discards the transaction.
    fn rollback(self: Box<Self>) -> Result<()>;
}
