//! FSMs: mailboxes and the flat dispatch of their messages. What the messages do is in
//! `operation/` (peers) and `apply` (apply).
//!
//! - [`peer`]: one per region this store hosts, on the raft pollers.
//! - [`store`]: one per store (the raft system's control FSM): store ticks and raft messages
//!   for regions without a peer here.
//! - [`apply`]: one per region, on the apply pollers.

pub mod apply;
pub mod peer;
pub mod store;
