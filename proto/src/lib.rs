//! The keepalive protocol, generated from `proto/keepalive/v1/*.proto` by protox and
//! tonic-prost-build.
//!
//! Two parts, both in the protobuf package `keepalive.v1`:
//!
//! - **`session.proto`**: the `keepalive.v1.Session` service — `OpenSession` and
//!   `Heartbeat`, the browser's stand-in for HTTP/2 PINGs. The server library mounts it; the
//!   browser client calls it.
//! - **`resume.proto`**: the messages of a resumable server stream (`ResumeRequest`,
//!   `Welcome`, `StreamHeartbeat`, `Gap`, `GoAway`), for *your own* `.proto` files to
//!   import. [`resume`] maps your response message onto them ([`resumable_message!`]).
//!
//! The crate builds for native targets (server, tests) and for `wasm32-unknown-unknown`
//! (the browser client): the generated client has no transport of its own.
//!
//! # Using the resume messages in your own `.proto`
//! Your `build.rs` compiles your files with this crate's directory on the include path and
//! maps the `keepalive.v1` package to this crate instead of generating it again:
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // build.rs (with keepalive-proto, protox and tonic-prost-build as build-dependencies)
//! let fds = protox::compile(["proto/prices.proto"], ["proto", keepalive_proto::INCLUDE_DIR])?;
//! let (package, rust_path) = keepalive_proto::EXTERN_PATH;
//! tonic_prost_build::configure()
//!     .extern_path(package, rust_path)
//!     .compile_fds(fds)?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - `proto/keepalive/v1/session.proto`, `resume.proto`: the protocol.
//! - [`v1`]: the generated code.
//! - [`resume`]: the frames of a resumable stream and the traits that map a message onto
//!   them ([`resume::ResumableMessage`], [`resume::Sequenced`]).
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors, for server reflection.

pub mod resume;

/// `keepalive.v1`: sessions, heartbeats and the resumable-stream messages.
#[allow(missing_docs, missing_debug_implementations)]
pub mod v1 {
    tonic::include_proto!("keepalive.v1");
}

/// The encoded `FileDescriptorSet` of `keepalive.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/keepalive_descriptor.bin"));

/// The directory to put on the include path of your own `.proto` files, so that
/// `import "keepalive/v1/resume.proto";` resolves.
pub const INCLUDE_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");

/// The protobuf package and the Rust path of its generated code, for
/// `tonic_prost_build::Builder::extern_path`: your generated code then uses this crate's
/// types (and the traits of [`resume`] apply to them).
pub const EXTERN_PATH: (&str, &str) = (".keepalive.v1", "::keepalive_proto::v1");

/// The gRPC service name of the session service.
pub const SESSION_SERVICE: &str = "keepalive.v1.Session";
