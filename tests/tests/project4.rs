//! Project 4: MVCC and Percolator transactions over the standalone storage.
//!
//! The scenarios of the course's project 4, re-expressed for kvproto (TiKV) semantics, plus the
//! extras TiKV clients depend on (insert, pessimistic locks, heartbeats, lock scans, batch
//! resolve, check-secondary-locks):
//! - `p4a`: the MVCC layer itself (key layout, reads at timestamps) driven through
//!   `kvserver::mvcc`.
//! - `p4b`: get, prewrite and commit through the `tikvpb.Tikv` service.
//! - `p4c`: rollback, check-txn-status, resolve-lock, scan and the pessimistic / GC RPCs.
//!
//! Run with `make project4` (or `make project4a|4b|4c`, which filter on the module names).

#[path = "project4/helpers.rs"]
mod helpers;

#[path = "project4/p4a.rs"]
mod p4a;
#[path = "project4/p4b.rs"]
mod p4b;
#[path = "project4/p4c.rs"]
mod p4c;
