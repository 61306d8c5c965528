//! Project 4: MVCC and Percolator transactions, over the standalone storage and over Raft.
//!
//! The scenarios of the course's project 4, re-expressed for kvproto (TiKV) semantics, plus the
//! extras TiKV clients depend on (insert, pessimistic locks, heartbeats, lock scans, batch
//! resolve, check-secondary-locks). Each scenario runs twice (see `helpers::scenarios!`): as
//! `<module>::standalone::<name>` over `StandaloneStorage`, and as `<module>::raft::<name>` over
//! `RaftStorage` on a 3-store in-process cluster, requests routed to the region leader.
//! - `p4a`: the MVCC layer itself (key layout, reads at timestamps) driven through
//!   `kvserver::mvcc`.
//! - `p4b`: get, prewrite and commit through the `tikvpb.Tikv` service.
//! - `p4c`: rollback, check-txn-status, resolve-lock and scan and the pessimistic / GC RPCs.
//! - `bank`: concurrent cross-region transfers on a multi-region Raft cluster, with lock
//!   resolution, a lossy network and store restarts; every snapshot must sum to the same total.
//!
//! Run with `make project4` (or `make project4a|4b|4c|4-bank`, which filter on the module
//! names; add `-- ::raft::` or `-- ::standalone::` to pick one storage).

#[path = "project4/helpers.rs"]
mod helpers;
#[path = "project4/percolator.rs"]
mod percolator;

#[path = "project4/bank.rs"]
mod bank;
#[path = "project4/p4a.rs"]
mod p4a;
#[path = "project4/p4b.rs"]
mod p4b;
#[path = "project4/p4c.rs"]
mod p4c;
