//! Helpers shared by the browser tests: where the server is, the chaos token, and a client
//! for the xtask test controller (which owns the server process).
//!
//! Everything comes from environment variables read at compile time: `cargo xtask test`
//! sets them when it builds the tests (see `xtask/src/browser.rs`).
//!
//! Each `tests/*.rs` file is its own wasm binary with its own page: include this with
//! `mod support;` and use what it needs.

#![allow(dead_code)] // Not every test binary uses every helper.

use std::time::Duration;

use js_sys::{JSON, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestInit, Response};

/// What the tests need `cargo xtask test` for, said once.
const RUN_HINT: &str = "run the browser tests with `cargo xtask test` (or \
     `cargo xtask test --browser-only`): it starts the server and the test controller and \
     sets the KEEPALIVE_TEST_* variables at compile time";

/// The server's base URL (`http://127.0.0.1:PORT`), from `KEEPALIVE_TEST_SERVER`.
pub fn server_url() -> &'static str {
    match option_env!("KEEPALIVE_TEST_SERVER") {
        Some(url) if !url.is_empty() => url,
        _ => panic!("KEEPALIVE_TEST_SERVER was not set at compile time: {RUN_HINT}"),
    }
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

/// The test controller's base URL, from `KEEPALIVE_TEST_CONTROLLER`.
pub fn controller_url() -> &'static str {
    match option_env!("KEEPALIVE_TEST_CONTROLLER") {
        Some(url) if !url.is_empty() => url,
        _ => panic!("KEEPALIVE_TEST_CONTROLLER was not set at compile time: {RUN_HINT}"),
    }
}

/// The server's chaos token (`--chaos --chaos-token`), from `KEEPALIVE_TEST_CHAOS_TOKEN`;
/// `None` when the server was started without chaos (it does not support it yet).
pub fn chaos_token() -> Option<&'static str> {
    option_env!("KEEPALIVE_TEST_CHAOS_TOKEN").filter(|t| !t.is_empty())
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
