//! Keepalive for your own browser calls: a gRPC-web [`Channel`] that any tonic-generated
//! client runs over, with grpc-go's keepalive knobs emulated by heartbeats
//! (`shared/KEEPALIVE.md` §2), reconnect with gRPC's backoff, A6 retries of the methods
//! you declare, and server streams kept open across reconnects with nothing lost and
//! nothing delivered twice ([`Channel::keep_open`]). From TypeScript, the npm package
//! built by `cargo xtask client` gives the same as a connect-es `Transport` and
//! `keepOpen` (feature `js`).
//!
//! ```ignore
//! use keepalive_client::{Channel, Options, RetryPolicy};
//!
//! let channel = Channel::new(
//!     Options::new("https://api.example").retry("prices.v1.Prices/Quote", RetryPolicy::default()),
//! );
//! let mut prices = PricesClient::new(channel.clone());            // any generated client
//! let quote = prices.quote(QuoteRequest { symbol: "ACME".into() }).await?;  // retried per policy
//! let ticks = channel.keep_open(
//!     |ch, resume| async move {
//!         let req = WatchRequest { symbol: "ACME".into(), resume: Some(resume) };
//!         Ok(PricesClient::new(ch).watch(req).await?.into_inner())
//!     },
//!     |tick: PriceTick| render(tick),                              // exactly once, in order
//! );
//! channel.on_state(|s| show_banner(s.state));
//! ```
//!
//! The server side is `keepalive-server` (its `BrowserKeepalive` mounts the session
//! service heartbeats go to, and makes your streams resumable).
//!
//! The crate builds for `wasm32-unknown-unknown` (the real client) and natively (nearly
//! empty: everything that needs a browser is behind `#[cfg(target_arch = "wasm32")]`), so
//! `cargo build --workspace` and `cargo clippy --workspace --all-targets` cover it.
//!
//! # Layout
//! - [`options`]: [`Options`] — URL, keepalive knobs, retry policies by method.
//! - `channel` (wasm32): [`Channel`] (tonic's `GrpcService`, state, listeners,
//!   `keep_open`) and [`KeepOpen`].
//! - `call` (wasm32): one application call — liveness, abort, A6 retries.
//! - `stream` (wasm32): one call of a kept-open stream — resume, how it ended.
//! - `session` (wasm32): the channel's session and its heartbeats.
//! - `shared`, `pump`, `timer` (wasm32): the state behind the clones, the action pump,
//!   the timer loop around the sans-IO `keepalive::client::Channel`.
//! - `status` (wasm32): network failure vs. an answer from the server, by error type.
//! - `task`, `dom`, `time` (wasm32): wake-up signal and cancellable tasks; `online`,
//!   `offline`, `visibilitychange`; `performance.now()`, seeds, random keys.
//! - `js` (wasm32, feature `js`): the JavaScript API the npm package builds on.
//! - `init_logging` (wasm32): `tracing` to the browser console (dropped by the linker
//!   when a page never calls it).
//! - `tests/`: browser tests (`wasm-pack test --headless --chrome`, see `tests/support`).

pub mod options;

#[cfg(target_arch = "wasm32")]
mod call;
#[cfg(target_arch = "wasm32")]
mod channel;
#[cfg(target_arch = "wasm32")]
mod console;
#[cfg(target_arch = "wasm32")]
mod dom;
#[cfg(all(target_arch = "wasm32", feature = "js"))]
pub mod js;
#[cfg(target_arch = "wasm32")]
mod pump;
#[cfg(target_arch = "wasm32")]
mod session;
#[cfg(target_arch = "wasm32")]
mod shared;
#[cfg(target_arch = "wasm32")]
mod status;
#[cfg(target_arch = "wasm32")]
mod stream;
#[cfg(target_arch = "wasm32")]
mod task;
#[cfg(target_arch = "wasm32")]
mod time;
#[cfg(target_arch = "wasm32")]
mod timer;

pub use keepalive::client::{
    ClientConfig, ClientEvent, ClientStats, ConnectivityState, LossReason, RetryPolicy, StreamId,
};
pub use keepalive_proto::resume::{Frame, ResumableMessage, Sequenced};
pub use keepalive_proto::v1::ResumeRequest;
pub use options::Options;

#[cfg(target_arch = "wasm32")]
pub use call::CallBody;
#[cfg(target_arch = "wasm32")]
pub use channel::{Channel, KeepOpen};
#[cfg(target_arch = "wasm32")]
pub use console::init_logging;
#[cfg(target_arch = "wasm32")]
pub use shared::{Servers, StateInfo, Stats};

/// A random idempotency key (32 hex digits from `crypto.getRandomValues`): give it to a
/// publish-like call once, and its retries carry the same key.
#[cfg(target_arch = "wasm32")]
pub fn idempotency_key() -> String {
    time::random_hex(16)
}
