//! The demo's protocol, `keepalive.demo.v1.Feed`: a resumable event feed, publishing,
//! the server's counters and fault injection, for the dashboard, the tests and the load
//! generator.
//!
//! It is built like a user's own protocol would be: `feed.proto` imports
//! `keepalive/v1/resume.proto`, its `SubscribeResponse` carries the resume frames next to
//! its own `Event`, and the two macros of [`keepalive_proto::resume`] make it a resumable
//! stream for the server library and the browser client.
//!
//! # Layout
//! - `proto/keepalive/demo/v1/feed.proto`: the service.
//! - [`v1`]: the generated code, with [`ResumableMessage`](keepalive_proto::resume::ResumableMessage)
//!   for `SubscribeResponse` and [`Sequenced`](keepalive_proto::resume::Sequenced) for `Event`.
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.

/// `keepalive.demo.v1`: the feed.
#[allow(missing_docs, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("keepalive.demo.v1");

    keepalive_proto::resumable_message!(SubscribeResponse, subscribe_response::Kind, Event);
    keepalive_proto::sequenced!(Event);
}

/// The encoded `FileDescriptorSet` of `keepalive.demo.v1` (with what it imports), for
/// gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/demo_descriptor.bin"));
