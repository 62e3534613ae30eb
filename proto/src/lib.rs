//! Protocol buffers of the keepalive service.
//!
//! Generated at build time from `proto/keepalive.proto` by protox and tonic-prost-build.
//! The crate builds for native targets (server, tests, load generator) and for
//! `wasm32-unknown-unknown` (the browser client): the generated client has no
//! transport of its own, callers hand it a channel.
//!
//! # Layout
//! - `proto/keepalive.proto`: the service and its messages (package `keepalive.v1`).
//! - [`v1`]: the generated code.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.

/// `keepalive.v1`: heartbeats, the resumable event feed, publishing, stats.
#[allow(missing_docs, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("keepalive.v1");
}

/// The encoded `FileDescriptorSet` of `keepalive.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/keepalive_descriptor.bin"));
