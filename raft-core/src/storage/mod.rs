//! Durable storage of one peer: [`PeerStorage`] (raft-rs's `Storage`), the per-region states and
//! their initial values ([`state`]), and the in-memory entry cache.

mod entry_cache;
mod peer_storage;
mod snapshot;
pub mod state;

pub use peer_storage::{AppliedSnapshot, PeerStorage, StorageContext};

#[cfg(test)]
mod tests;
