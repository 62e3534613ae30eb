//! Keepalive for your own gRPC services: a tonic server library that applies grpc-go's
//! keepalive `ServerParameters` and `EnforcementPolicy` at the HTTP/2 frame level, serves
//! gRPC and gRPC-web (HTTP/1.1 and HTTP/2) and an axum router on one port, and gives
//! browsers sessions, heartbeats and resumable streams of your own message types.
//!
//! tonic 0.14 gives no max-connection-idle, no jitter, no ping enforcement and no GOAWAY
//! debug data, so this crate owns the connection lifecycle: its own accept loop, one task
//! per connection over hyper, and a transparent frame observer on each HTTP/2 socket that
//! sees every frame header in both directions and can add frames at frame boundaries. The
//! decisions themselves (strikes, idle, age, jitter) are the sans-IO `keepalive` crate's;
//! this crate only carries them out. See `shared/KEEPALIVE.md` for the semantics.
//!
//! ```no_run
//! use keepalive_server::browser::{BrowserKeepalive, BrowserOptions};
//! use keepalive_server::{EnforcementPolicy, Server, ServerParameters};
//! use std::time::Duration;
//!
//! # async fn run() -> Result<(), keepalive_server::Error> {
//! let browser = BrowserKeepalive::new(BrowserOptions::default()); // sessions + heartbeats
//! Server::builder()
//!     .keepalive(ServerParameters {
//!         time: Duration::from_secs(30),
//!         max_connection_age: Some(Duration::from_secs(300)),
//!         max_connection_age_grace: Some(Duration::from_secs(30)),
//!         ..Default::default()
//!     })
//!     .enforcement(EnforcementPolicy {
//!         min_time: Duration::from_secs(10),
//!         permit_without_stream: true,
//!         ..Default::default()
//!     })
//!     .cors(keepalive_server::routes::grpc_web_cors().allow_origin(["https://app.example".parse::<http::HeaderValue>().unwrap()]))
//!     .browser_keepalive(browser.clone())
//!     // .add_service(PricesServer::new(Prices { browser, log }))
//!     .axum(axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" })))
//!     .serve_with_shutdown("127.0.0.1:8080".parse().unwrap(), keepalive_server::shutdown_signal())
//!     .await
//! # }
//! ```
//!
//! # Layout
//! - [`Server`], [`Builder`] ([`builder`]): the knobs and services; `serve*` runs them.
//! - [`serve`]: the accept loop, the connection limit, the graceful stop.
//! - [`settings`]: [`Settings`], every transport knob in one struct; [`cli`] (feature
//!   `cli`): flags and a TOML file derived from the settings structs.
//! - [`limits`]: [`Limits`] and the message and request-body size limits of every call.
//! - [`routes`]: CORS, gRPC-web, your layers, the gRPC services and the axum router on
//!   one service.
//! - [`conn`]: the per-connection task and the HTTP/2 frame observer (internals, public
//!   for the fuzz tests).
//! - [`health`]: `grpc.health.v1.Health` as the spec says.
//! - [`browser`]: [`BrowserKeepalive`](browser::BrowserKeepalive) — the session service
//!   and resumable streams of your message types.
//! - [`log`]: [`EventLog`](log::EventLog) and its memory and file implementations.
//! - `redis` (feature `redis`): what replicas share in Redis — `RedisLog`, the event log
//!   on a Redis stream with an epoch, and the sessions' stream presence and fencing.
//! - [`stats`]: the transport counters; [`metrics`]: counters as Prometheus families.
//! - [`faults`]: the optional fault injector (demos, tests).
//! - [`fdlimit`]: raising the open-file limit; [`clock`]: tokio time ↔ core time;
//!   [`runtime`]: a tokio runtime tuned for many requests in flight on few cores.

#![warn(missing_docs)]

pub mod browser;
pub mod builder;
#[cfg(feature = "cli")]
pub mod cli;
pub mod clock;
#[doc(hidden)]
pub mod conn;
pub mod faults;
pub mod fdlimit;
pub mod health;
pub mod limits;
pub mod log;
pub mod metrics;
#[cfg(feature = "redis")]
pub mod redis;
pub mod routes;
pub mod runtime;
pub mod serve;
pub mod settings;
pub mod stats;

pub use builder::{Builder, Server};
pub use faults::FaultInjector;
pub use keepalive::{EnforcementPolicy, ServerParameters};
pub use limits::Limits;
pub use serve::{listen, shutdown_signal};
pub use settings::Settings;
pub use stats::TransportStats;
/// The rustls this crate serves TLS with (for [`Builder::tls`]).
pub use tokio_rustls::rustls;

use std::fmt;

/// Why a server could not start: one line (a setting, a TLS file, the address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}
