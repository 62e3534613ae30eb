//! The sans-IO heart of the project: keepalive, enforcement and (later) reconnect policy,
//! shared by the native server and the browser client.
//!
//! Nothing here reads a clock, opens a socket or starts a timer. Every input carries the
//! time it happened (`now`), and every machine says when it next wants to be woken
//! ([`ServerConnection::poll_timeout`]) and what its driver should do
//! ([`ServerConnection::poll_action`]). This is the shape of quinn-proto's connection:
//! it lets the same code run under tokio on the server, under `setTimeout` in a browser,
//! and under a virtual clock in tests that cover hours of simulated time in milliseconds.
//!
//! # Layout
//! - [`time`]: [`Instant`], a point on a driver-defined clock (milliseconds precision is
//!   plenty; we keep nanoseconds).
//! - [`jitter`]: spreading deadlines by ±x% so that thousands of connections opened
//!   together do not expire together.
//! - [`enforcement`]: grpc-go's `EnforcementPolicy` — judges client PINGs (and browser
//!   heartbeats) and counts strikes.
//! - [`settings`]: one-line [`settings::SettingsError`]s and (feature `cli`) the text
//!   forms of durations; [`ServerParameters`] and [`EnforcementPolicy`] carry clap
//!   attributes under that feature, so binaries derive their flags from them.
//! - [`server`]: the keepalive state machine of one server connection: keepalive PINGs,
//!   max-idle, max-age with grace, graceful drain.
//! - [`client`]: the browser side: connectivity states, connection backoff, unary retry
//!   (A6), the resume cursor, and [`client::Channel`], the keepalive-emulation and
//!   reconnect state machine.
//!
//! The semantics, with grpc-go's and gRPC core's constants, are in `shared/KEEPALIVE.md`.
//! One deliberate difference from grpc-go: the max-idle deadline is jittered by ±10% like
//! max-age (gRPC core does both), to spread reconnect storms.

pub mod client;
pub mod enforcement;
pub mod jitter;
pub mod server;
pub mod settings;
pub mod time;

pub use enforcement::{EnforcementPolicy, PingEnforcer, PingVerdict};
pub use server::{Action, CloseReason, DrainReason, ServerConnection, ServerParameters};
pub use time::Instant;
