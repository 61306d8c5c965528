//! Generated protobuf and gRPC types, wire-compatible with TiKV's kvproto.
//!
//! Data flow: nothing here does work. The `.proto` files under `proto/` are compiled at build time
//! by `tonic-prost-build` (see `build.rs`); every other crate exchanges these types:
//!
//! ```text
//!  clients ──tikvpb.Tikv / kvrpcpb──▶ kvserver ──raft_cmdpb──▶ raftstore ──eraftpb──▶ raft-core
//!  stores  ──raft_serverpb (Raft, Snapshot streams)──▶ other stores
//!  stores, clients ──pdpb.PD──▶ scheduler
//! ```
//!
//! Package, service and method names and every field number and enum value match kvproto as
//! shipped inside the `tikv-client` 0.4.0 crate; `eraftpb` matches raft-rs 0.7's `eraftpb.proto`.
//! The tests in `tests/field_numbers.rs` pin the numbering we rely on.

#![allow(
    clippy::large_enum_variant,
    clippy::doc_lazy_continuation,
    missing_docs
)]

/// Cluster metadata: stores, regions, peers, epochs.
pub mod metapb {
    tonic::include_proto!("metapb");
}

/// Region errors (`region_error` in every store response).
pub mod errorpb {
    tonic::include_proto!("errorpb");
}

/// Raft wire types (numbering identical to raft-rs 0.7).
pub mod eraftpb {
    tonic::include_proto!("eraftpb");
}

/// Request/response messages of the raw and transactional APIs.
pub mod kvrpcpb {
    tonic::include_proto!("kvrpcpb");
}

/// Store-to-store raft messages and persisted per-region state.
pub mod raft_serverpb {
    tonic::include_proto!("raft_serverpb");
}

/// Commands proposed through Raft.
pub mod raft_cmdpb {
    tonic::include_proto!("raft_cmdpb");
}

/// The store's gRPC service `tikvpb.Tikv`.
pub mod tikvpb {
    tonic::include_proto!("tikvpb");
}

/// The scheduler's gRPC service `pdpb.PD`.
pub mod pdpb {
    tonic::include_proto!("pdpb");
}

pub use prost::Message;
