//! Project 1: the standalone raw key-value server.
//!
//! Every test runs a real `tikvpb.Tikv` tonic server on an ephemeral loopback port and talks to it
//! with the generated gRPC client; `binary` drives the `tinykv-server` executable itself. The
//! scenarios follow the course's project 1 (get/put/delete/scan, column families, snapshot
//! reads) and extend it to the whole raw API, its error paths and restarts.
//!
//! Run with `make project1` (`cargo test -p tests --test project1`).

#[path = "project1/harness.rs"]
mod harness;

#[path = "project1/bad_input.rs"]
mod bad_input;
#[path = "project1/basic.rs"]
mod basic;
#[path = "project1/batch.rs"]
mod batch;
#[path = "project1/binary.rs"]
mod binary;
#[path = "project1/cas.rs"]
mod cas;
#[path = "project1/restart.rs"]
mod restart;
#[path = "project1/scan.rs"]
mod scan;
