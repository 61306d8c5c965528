//! An async (tokio) client for TinyKV clusters, speaking TiKV's wire protocol: `pdpb.PD` to the
//! scheduler and `tikvpb.Tikv` to the stores.
//!
//! # Data flow
//!
//! ```text
//!  RawClient / TransactionClient / Snapshot
//!        │ keys, ranges, mutations
//!        ▼
//!  dispatch: group keys by region ──▶ RegionCache ──miss──▶ PdClient (GetRegion, ScanRegions)
//!        │ one request per region          ▲ fixes from region errors
//!        ▼                                 │ (NotLeader hint, EpochNotMatch, drop)
//!  StorePool (one channel + one BatchCommands stream per store) ──▶ region leader's store
//!        │                                                    ──▶ response / region error
//!        │ retry failed groups under a bounded backoff, merge results
//!        ▼
//!  txn layer: locks met ──▶ CheckTxnStatus on the primary ──▶ ResolveLock ──▶ retry
//!             commit: prewrite (primary first) ──▶ TSO commit ts ──▶ commit primary ──▶ secondaries
//! ```
//!
//! - [`PdClient`] follows PD's leader (`GetMembers`, reconnecting on failure), shares one
//!   batched TSO stream among all callers, and caches stores.
//! - The region cache never holds overlapping regions. In transactional mode keys are
//!   memcomparable-encoded ([`codec`]) before asking PD and region bounds are decoded; undecodable
//!   bounds are an error, never a silent skip.
//! - Every retry loop has a bounded [`Backoff`]; errors are typed ([`Error`]) and never dropped —
//!   a lookup failure while sharding a batch fails the batch.
//!
//! # Raw API
//!
//! ```no_run
//! # async fn demo() -> client::Result<()> {
//! let raw = client::RawClient::new(vec!["127.0.0.1:2379"]).await?;
//! raw.put("user/1", "alice").await?;
//! raw.batch_put(vec![("user/2", "bob"), ("user/3", "carol")]).await?;
//! let users = raw.scan("user/".."user0", 100).await?;
//! assert_eq!(users.len(), 3);
//! raw.delete_range("user/".."user0").await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Transactional API
//!
//! ```no_run
//! # async fn demo() -> client::Result<()> {
//! let client = client::TransactionClient::new(vec!["127.0.0.1:2379"]).await?;
//! let mut txn = client.begin_optimistic().await?;
//! let from: u64 = txn.get("acct/a").await?.map_or(0, |v| String::from_utf8_lossy(&v).parse().unwrap_or(0));
//! txn.put("acct/a", (from - 10).to_string()).await?;
//! txn.put("acct/b", "10").await?;
//! let commit_ts = txn.commit().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Raw and transactional data are separate usage modes (as in TiKV API v1): do not mix them on
//! the same keys or on one multi-region cluster's shared key ranges.

#![warn(missing_docs)]

mod backoff;
mod batch;
mod channel;
pub mod codec;
mod config;
mod dispatch;
mod errors;
mod kv;
mod page;
mod pd;
mod raw;
mod region;
mod region_cache;
mod request;
mod store;
mod timestamp;
mod txn;

pub use self::backoff::{Backoff, BackoffConfig};
pub use self::config::Config;
pub use self::errors::{Error, Result};
pub use self::kv::{BoundRange, Key, KvPair, Value, MAX_SCAN_LIMIT};
pub use self::pd::{PdClient, RegionWithLeader};
pub use self::raw::RawClient;
pub use self::region::{KeyMode, Region, RegionVerId};
pub use self::timestamp::{Timestamp, PHYSICAL_SHIFT_BITS};
pub use self::txn::{Snapshot, Transaction, TransactionClient, TransactionOptions};
