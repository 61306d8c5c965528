//! Compiles our kvproto-compatible `.proto` files with prost + tonic.
//!
//! `protoc` comes from the system (`apt-get install protobuf-compiler`, see `.ci/run`). We never
//! export `PROTOC` globally: raft-rs's own build script rejects protoc versions newer than 3.x.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const FILES: &[&str] = &[
        "proto/metapb.proto",
        "proto/errorpb.proto",
        "proto/eraftpb.proto",
        "proto/kvrpcpb.proto",
        "proto/raft_serverpb.proto",
        "proto/raft_cmdpb.proto",
        "proto/tikvpb.proto",
        "proto/pdpb.proto",
    ];
    for f in FILES {
        println!("cargo:rerun-if-changed={f}");
    }
    tonic_prost_build::configure()
        // Services we list but do not serve yet answer UNIMPLEMENTED instead of failing to build.
        .generate_default_stubs(true)
        .compile_protos(FILES, &["proto"])?;
    Ok(())
}
