//! Helpers shared by the browser tests: where the server is, the chaos token, and a client
//! for the xtask test controller (which owns the server process).
//!
//! `cargo xtask test` starts a server and a controller on free ports and sets
//! `KEEPALIVE_TEST_SERVER`, `KEEPALIVE_TEST_CONTROLLER` and `KEEPALIVE_TEST_CHAOS_TOKEN`
//! when it builds the tests (see `xtask/src/browser.rs`). Without them the tests use the
//! fixed addresses of `cargo xtask test-server`, so that by hand
//!
//! ```text
//! cargo xtask test-server                                # one terminal
//! wasm-pack test --headless --chrome keepalive-client    # another
//! ```
//!
//! runs the same suite.
//!
//! Each `tests/*.rs` file is its own wasm binary with its own page: include this with
//! `mod support;` and use what it needs.

#![allow(dead_code)] // Not every test binary uses every helper.

use std::time::Duration;

use js_sys::{JSON, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestInit, Response};

/// The test server `cargo xtask test-server` runs by hand (its defaults, in
/// `xtask/src/browser.rs`): with nothing set at compile time, the tests expect it there.
const DEFAULT_SERVER: &str = "http://127.0.0.1:18350";
const DEFAULT_CONTROLLER: &str = "http://127.0.0.1:18351";
const DEFAULT_CHAOS_TOKEN: &str = "keepalive-test-server";

/// The server's base URL (`http://127.0.0.1:PORT`): `KEEPALIVE_TEST_SERVER` at compile
/// time, else the by-hand test server's.
pub fn server_url() -> &'static str {
    option_env!("KEEPALIVE_TEST_SERVER")
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_SERVER)
}

/// The server's base URL, after making sure the server runs (`POST /start` is idempotent).
///
/// The server is shared by every test and every test binary, and a test that kills it may
/// fail before it restarts it: a test that needs the server up starts with this.
pub async fn server_up() -> &'static str {
    let status = controller::start().await;
    assert!(status.running, "the server does not run: {status:?}");
    server_url()
}

/// The test controller's base URL: `KEEPALIVE_TEST_CONTROLLER` at compile time, else the
/// by-hand test server's.
pub fn controller_url() -> &'static str {
    option_env!("KEEPALIVE_TEST_CONTROLLER")
        .filter(|u| !u.is_empty())
        .unwrap_or(DEFAULT_CONTROLLER)
}

/// The server's chaos token (`--chaos-token`): `KEEPALIVE_TEST_CHAOS_TOKEN` at compile
/// time, else the by-hand test server's.
pub fn chaos_token() -> &'static str {
    option_env!("KEEPALIVE_TEST_CHAOS_TOKEN")
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_CHAOS_TOKEN)
}

/// Waits `duration` (a browser timer).
pub async fn sleep(duration: Duration) {
    gloo_timers::future::sleep(duration).await;
}

/// The server process as the controller sees it (`GET /status`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerStatus {
    /// Whether the server process is running.
    pub running: bool,
    /// Its process id while running.
    pub pid: Option<u32>,
    /// The address it listens on (the same across restarts): `127.0.0.1:PORT`.
    pub addr: String,
    /// `http://` + `addr`.
    pub url: String,
    /// How many times the controller started it (1 before any restart).
    pub starts: u32,
    /// How the previous process ended (`signal: 9 (SIGKILL)`, `exit status: 0`), if one did.
    pub last_exit: Option<String>,
}

/// The xtask test controller: owns the server process, so a test can kill it, stop it
/// gracefully, or restart it on the same port with the same flags.
pub mod controller {
    use super::*;

    /// `GET /status`.
    pub async fn status() -> ServerStatus {
        parse_status(&request("GET", "/status").await)
    }

    /// `POST /kill`: SIGKILL, no drain (clients see the connection die).
    pub async fn kill() -> ServerStatus {
        parse_status(&request("POST", "/kill").await)
    }

    /// `POST /stop`: SIGTERM, the server drains gracefully; returns once it exited.
    pub async fn stop() -> ServerStatus {
        parse_status(&request("POST", "/stop").await)
    }

    /// `POST /start`: start the server again (same port, same flags) if it is not running;
    /// returns once it listens.
    pub async fn start() -> ServerStatus {
        parse_status(&request("POST", "/start").await)
    }

    /// `POST /restart`: kill (SIGKILL) and start again on the same port; returns once the
    /// new process listens.
    pub async fn restart() -> ServerStatus {
        parse_status(&request("POST", "/restart").await)
    }

    /// `POST /restart?graceful=1`: like [`restart`] with a graceful stop (SIGTERM) first.
    pub async fn restart_graceful() -> ServerStatus {
        parse_status(&request("POST", "/restart?graceful=1").await)
    }

    /// `GET /log`: every line the server processes printed so far (all starts).
    pub async fn log() -> String {
        request("GET", "/log").await
    }

    /// `GET /rss`: the running server's pid and resident memory in KiB (read by the
    /// controller from `/proc/PID/status`).
    pub async fn rss() -> (u32, u64) {
        let json = request("GET", "/rss").await;
        let value =
            JSON::parse(&json).unwrap_or_else(|e| panic!("rss is not JSON ({e:?}): {json}"));
        let number = |name: &str| {
            Reflect::get(&value, &JsValue::from_str(name))
                .ok()
                .and_then(|v| v.as_f64())
                .unwrap_or_else(|| panic!("no {name} in {json}"))
        };
        (number("pid") as u32, number("rss_kb") as u64)
    }
}

/// Sends `method path` to the controller and returns the body of a 200 response.
///
/// # Panics
/// On a network error or a non-200 answer (its body is in the message).
async fn request(method: &str, path: &str) -> String {
    let url = format!("{}{path}", controller_url());
    let init = RequestInit::new();
    init.set_method(method);
    let window = web_sys::window().expect("browser tests run in a window");
    let response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
        .await
        .unwrap_or_else(|e| panic!("test controller {method} {url}: fetch failed: {e:?}"));
    let response: Response = response.dyn_into().expect("fetch resolves to a Response");
    let body = JsFuture::from(response.text().expect("Response.text()"))
        .await
        .unwrap_or_else(|e| panic!("test controller {method} {url}: reading body: {e:?}"))
        .as_string()
        .unwrap_or_default();
    assert_eq!(
        response.status(),
        200,
        "test controller {method} {url} answered {}: {body}",
        response.status()
    );
    body
}

/// Parses the controller's status JSON.
fn parse_status(json: &str) -> ServerStatus {
    let value = JSON::parse(json).unwrap_or_else(|e| panic!("status is not JSON ({e:?}): {json}"));
    let field = |name: &str| Reflect::get(&value, &JsValue::from_str(name)).unwrap_or_default();
    let string = |name: &str| field(name).as_string();
    let number = |name: &str| field(name).as_f64();
    ServerStatus {
        running: field("running").as_bool().unwrap_or(false),
        pid: number("pid").map(|p| p as u32),
        addr: string("addr").unwrap_or_default(),
        url: string("url").unwrap_or_default(),
        starts: number("starts").map_or(0, |n| n as u32),
        last_exit: string("last_exit"),
    }
}

/// The demo's feed (`keepalive.demo.v1.Feed`) over a channel, as a page uses it: the
/// subscription kept open, publish (declared retryable: it carries an idempotency key),
/// chaos and the server's counters.
pub mod demo {
    use demo_proto::v1::feed_client::FeedClient;
    use demo_proto::v1::{
        ChaosAction, ChaosRequest, ChaosResponse, Event, PublishRequest, PublishResponse,
        StatsRequest, StatsResponse, SubscribeRequest,
    };
    use keepalive_client::{Channel, KeepOpen, Options, RetryPolicy};
    use tonic::Status;

    /// The feed's Publish: safe to retry.
    pub const PUBLISH: &str = "keepalive.demo.v1.Feed/Publish";

    /// Options for the test server, with Publish declared retryable.
    pub fn options() -> Options {
        Options::new(super::server_url()).retry(PUBLISH, RetryPolicy::default())
    }

    /// Keeps the feed open from now on; `sink` gets every event once, in order.
    pub fn subscribe(channel: &Channel, sink: impl Fn(Event) + 'static) -> KeepOpen {
        channel.keep_open(
            |ch, resume| async move {
                let request = SubscribeRequest {
                    resume: Some(resume),
                };
                Ok(FeedClient::new(ch).subscribe(request).await?.into_inner())
            },
            sink,
        )
    }

    /// Publishes `text` (one idempotency key for every attempt).
    pub async fn publish(channel: &Channel, text: &str) -> Result<PublishResponse, Status> {
        let request = PublishRequest {
            session_id: String::new(),
            idempotency_key: keepalive_client::idempotency_key(),
            text: text.to_owned(),
        };
        Ok(FeedClient::new(channel.clone())
            .publish(request)
            .await?
            .into_inner())
    }

    /// Asks the server (run with `--chaos`) to inject a fault.
    pub async fn chaos(
        channel: &Channel,
        token: &str,
        action: ChaosAction,
        duration_ms: u64,
    ) -> Result<ChaosResponse, Status> {
        let request = ChaosRequest {
            token: token.to_owned(),
            action: action as i32,
            duration_ms,
        };
        Ok(FeedClient::new(channel.clone())
            .chaos(request)
            .await?
            .into_inner())
    }

    /// The server's counters.
    pub async fn server_stats(channel: &Channel) -> Result<StatsResponse, Status> {
        Ok(FeedClient::new(channel.clone())
            .stats(StatsRequest {})
            .await?
            .into_inner())
    }
}
