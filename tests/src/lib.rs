//! Test support for the integration tests in `tests/tests/`: they run the real `server`
//! binary as a child process and talk to it over TCP, either with real gRPC clients (tonic)
//! or frame by frame, to assert what goes over the wire.
//!
//! # Layout
//! - [`server`]: builds the `server` binary once per test process and runs it
//!   ([`server::ServerProcess`]: ephemeral port, captured logs, signals, kill on drop;
//!   [`server::run_to_exit`] for command-line tests).
//! - [`http1`]: a raw HTTP/1.1 client for browser-shaped gRPC-web calls and close timing.
//! - [`chromedriver`]: a ChromeDriver process for browser tests (free port, fresh profile,
//!   killed on drop with its browsers).
//! - [`h2raw`]: a raw HTTP/2 frame client ([`h2raw::RawH2`]) with frame parsing
//!   ([`h2raw::Frame`], [`h2raw::GoAway`]), a minimal HPACK encoder for request headers and
//!   gRPC message framing.
//! - [`proxy`]: a TCP proxy that can go half-open (stall without closing), between a
//!   browser and a server.
//! - [`probe`]: a well-behaved tonic client ([`probe::Probe`]) that records its latencies
//!   while a test misbehaves at the same server.

#![warn(missing_docs)]

pub mod chromedriver;
pub mod h2raw;
pub mod http1;
pub mod probe;
pub mod proxy;
pub mod server;
