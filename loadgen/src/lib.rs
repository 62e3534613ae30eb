//! A load generator that behaves like the browser client, and the bench that runs it
//! (`cargo xtask bench`).
//!
//! Each simulated session is what a page running `keepalive-client` does: gRPC-web over
//! HTTP/1.1 with at most six connections, one resumable subscription plus heartbeats,
//! driven by the same sans-IO [`keepalive::client::Channel`] (here with tokio timers).
//! Nothing is borrowed from tonic's client stack: the framing is a few lines over hyper's
//! client connections, so the generator spends its CPU where a browser would.
//!
//! # Layout
//! - [`grpc`]: gRPC and gRPC-web framing and statuses.
//! - [`http`]: loopback connections, hyper's HTTP/1.1 and HTTP/2 client connections, one
//!   call, and a session's pool of at most six HTTP/1.1 connections.
//! - [`driver`]: the native driver: a session = the core + its calls + tokio timers, and
//!   what it records.
//! - [`histogram`]: a lock-free log-linear histogram for percentiles.
//! - [`scenario`]: the runs: [`scenario::sessions`] (capacity, detection with chaos
//!   STALL, recovery after a restart, fan-out) and [`scenario::unary`] (throughput).
//! - [`limits`]: the open-file limit, raised for tens of thousands of sockets.
//! - [`mod@bench`]: the bench's scenarios, one module each, run against fresh server
//!   processes (testkit) with `loadgen` children; its tables and `bench.json`.
//! - `main.rs`: the `loadgen` command line; `bin/bench-server.rs`: a stock
//!   `tonic::transport::Server` serving the same service, for the overhead comparison;
//!   `bin/bench.rs`: the bench's command line (run by `cargo xtask bench`).

pub mod bench;
pub mod driver;
pub mod grpc;
pub mod histogram;
pub mod http;
pub mod limits;
pub mod scenario;
