//! Test support for the integration tests in `tests/tests/`: they run the real server
//! binaries as child processes (through the workspace's harness, `testkit`: a free port,
//! the captured log, the counters, kill on drop) and talk to them over TCP, either with
//! real gRPC clients (tonic) or frame by frame, to assert what goes over the wire.
//!
//! # Layout
//! - [`http1`]: a raw HTTP/1.1 client for browser-shaped gRPC-web calls and close timing.
//! - [`h2raw`]: a raw HTTP/2 frame client ([`h2raw::RawH2`]) with frame parsing
//!   ([`h2raw::Frame`], [`h2raw::GoAway`]), a minimal HPACK encoder for request headers and
//!   gRPC message framing.
//! - [`probe`]: a well-behaved tonic client ([`probe::Probe`]) that records its latencies
//!   while a test misbehaves at the same server.

#![warn(missing_docs)]

pub mod h2raw;
pub mod http1;
pub mod probe;
