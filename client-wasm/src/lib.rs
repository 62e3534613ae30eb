//! The browser client of the keepalive server: gRPC-web over `fetch`, with grpc-go's
//! keepalive knobs emulated by messages (see `shared/KEEPALIVE.md` §2).
//!
//! The crate builds for `wasm32-unknown-unknown` (the real client) and natively (nearly
//! empty: everything that needs a browser is behind `#[cfg(target_arch = "wasm32")]`), so
//! `cargo build --workspace` and `cargo clippy --workspace --all-targets` cover it.
//!
//! # Layout
//!
//! - [`client`] (wasm32): the Rust API, [`Client`] — keepalive channel, resumable feed
//!   subscription, publish with A6 retries, server stats, chaos.
//! - [`js`] (wasm32): the JavaScript API (`KeepaliveClient`) with TypeScript types.
//! - `driver` (wasm32): runs the sans-IO `keepalive::client::Channel` — the action pump,
//!   stream and heartbeat calls, sessions, the timer loop.
//! - [`resumable`] (wasm32): the typed resumable stream ([`Sequenced`],
//!   [`ResumableMessage`]).
//! - `status` (wasm32): network failure vs. an answer from the server, by error type.
//! - `task` (wasm32): wake-up signal, cancellable tasks (cancel = drop = abort the fetch).
//! - `dom` (wasm32): `online`, `offline`, `visibilitychange`.
//! - `time` (wasm32): `performance.now()`, `Date.now()`, seeds, random keys.
//! - `init_logging` (wasm32, `console.rs`): `tracing` to the browser console.
//! - `tests/browser.rs`: the browser tests; `tests/support/`: their helpers (server URL,
//!   chaos token, the xtask test controller that kills and restarts the server).
//!
//! # Browser tests
//!
//! `cargo xtask test` (or `cargo xtask test --browser-only`) starts the server with CORS
//! for any origin, a small HTTP test controller that owns the server process, and runs
//! `cargo test --target wasm32-unknown-unknown -p client-wasm` in headless Chromium. The
//! tests read, at compile time, `KEEPALIVE_TEST_SERVER` (the server's base URL),
//! `KEEPALIVE_TEST_CONTROLLER` (the controller's base URL) and, when the server supports
//! chaos, `KEEPALIVE_TEST_CHAOS_TOKEN`.

#[cfg(target_arch = "wasm32")]
pub mod client;
#[cfg(target_arch = "wasm32")]
mod dom;
#[cfg(target_arch = "wasm32")]
mod driver;
#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
pub mod resumable;
#[cfg(target_arch = "wasm32")]
mod status;
#[cfg(target_arch = "wasm32")]
mod task;
#[cfg(target_arch = "wasm32")]
mod time;

#[cfg(target_arch = "wasm32")]
pub use client::{Client, Options};
#[cfg(target_arch = "wasm32")]
pub use driver::{Api, ResumeRequest, Session, StateInfo, Stats};
pub use keepalive::client::{ClientConfig, ClientEvent, ConnectivityState, RetryPolicy, StreamId};
#[cfg(target_arch = "wasm32")]
pub use resumable::{Frame, ResumableMessage, Sequenced};

#[cfg(target_arch = "wasm32")]
mod console;

#[cfg(target_arch = "wasm32")]
pub use console::init_logging;

/// Opens a session on the server at `base_url` (e.g. `http://127.0.0.1:8080`) with one
/// gRPC-web call, and returns the session id.
///
/// A smoke-test helper for now; the real client will own its sessions.
///
/// # Errors
/// The call's gRPC status: a network failure, a CORS refusal or an undecodable response
/// shows up as a status too (code `UNKNOWN` or `INTERNAL` from tonic-web-wasm-client).
#[cfg(target_arch = "wasm32")]
pub async fn open_session(base_url: &str) -> Result<String, tonic::Status> {
    use keepalive_proto::v1::OpenSessionRequest;
    use keepalive_proto::v1::session_client::SessionClient;

    let transport = tonic_web_wasm_client::Client::new(base_url.to_owned());
    let mut client = SessionClient::new(transport);
    let response = client.open_session(OpenSessionRequest {}).await?;
    Ok(response.into_inner().session_id)
}
