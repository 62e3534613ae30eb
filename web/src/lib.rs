//! The dashboard: one page that shows, live, what the browser client's keepalive and
//! reconnect machinery is doing, and lets you break the connection on purpose.
//!
//! Served by the server itself at `/` (`--web-root`, same origin: no CORS), built by Trunk
//! (`Trunk.toml` at the repository root). `cargo xtask demo` builds it, starts the server
//! with short keepalive values and chaos on, and prints the URL with the chaos token in
//! its fragment (`#chaos=TOKEN`, see [`token`]).
//!
//! # Why plain `web-sys`, not Leptos
//!
//! The page is a fixed layout with a few dozen numbers and two lists that change: a
//! static HTML skeleton (`web/index.html`, `web/style.css`) whose elements the Rust code
//! fills in by id is all it needs. Leptos 0.8 (the newest stable, 0.8.23, checked with
//! `cargo info`) with `csr` resolves to 180 crates, 80 of which this workspace does not
//! build otherwise (its reactive runtime, renderer, `server_fn`, the `view!` macro's
//! parser...): minutes more to compile on a 2-core machine and more wasm, to save little
//! code here. Plain `web-sys`/`wasm-bindgen` are already built for the client, so the page
//! adds no crate: it builds in seconds after the client, and its wasm is the client's
//! plus about 40 KB.
//!
//! # What it uses
//!
//! Only the client library's public API, as any page would: a `keepalive_client::Channel`
//! with `on_state`, `on_timeline`, `on_stats`; the demo's generated `FeedClient` over it
//! for Publish (declared retryable), Stats and Chaos; and the feed kept open with
//! `keep_open_after` (so that new settings, a new channel, resume after the last event
//! shown).
//!
//! # Layout
//!
//! Native and wasm32 (pure, tested natively):
//! - [`fmt`]: how times and numbers read.
//! - [`rtt`]: the heartbeat round trips of the last 2 minutes: p50/p99, sparkline points.
//! - [`settings`]: the page's default client settings; the settings form ↔ `ClientConfig`.
//! - [`server_stats`]: the server panel's groups and labels.
//! - [`timeline`]: what each client event says on the timeline.
//! - [`token`]: the chaos token from the URL fragment.
//!
//! wasm32 only (the page):
//! - `app`: the page's state, the channel's lifecycle (new settings → new channel, whose
//!   feed starts after the last event shown) and the render ticks.
//! - `dom`: the few DOM helpers the views share.
//! - `views/`: one module per panel — `status` (state, time in state, countdown, RTT),
//!   `counters`, `feed` (events and the publish box), `timeline`, `server`, `chaos`
//!   (fault injection buttons), `settings` (the editable client settings).
//!
//! # Hooks for tests
//!
//! The page exposes what a WebDriver test reads: `#state[data-state]` (the connectivity
//! state), `#state[data-lost]` (how many times it left READY), `body[data-ready-ms]`
//! (`performance.now()` when it was first READY), and `li[data-seq]` in `#feed-list`.

pub mod fmt;
pub mod rtt;
pub mod server_stats;
pub mod settings;
pub mod timeline;
pub mod token;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod dom;
#[cfg(target_arch = "wasm32")]
#[cfg(target_arch = "wasm32")]
mod views;

/// Starts the page: finds its elements, creates the client, starts the render ticks.
///
/// The client's `tracing` output is not sent to the console (`keepalive_client::init_logging`
/// is not called): everything it reports is on the page's timeline, and the formatter
/// would cost about 50 KB of wasm (20 KB gzip).
#[cfg(target_arch = "wasm32")]
pub fn start() {
    app::start();
}
