//! Per-key transactional actions: pure decisions over an [`MvccReader`] that buffer their
//! mutations in an [`MvccTxn`](crate::mvcc::MvccTxn). Commands (`super::commands`) pick the keys,
//! hold the latches and write the result; actions never touch storage themselves.
//!
//! [`MvccReader`]: crate::mvcc::MvccReader

mod check_txn_status;
mod cleanup;
mod commit;
mod pessimistic;
mod prewrite;

pub use check_txn_status::{check_txn_status_lock_exists, TxnStatus};
pub use cleanup::{check_txn_status_missing_lock, cleanup, rollback_lock};
pub use commit::commit;
pub use pessimistic::{acquire_pessimistic_lock, pessimistic_rollback, PessimisticLockProps};
pub use prewrite::{prewrite, Mutation, MutationOp, PessimisticAction, TxnProps};
