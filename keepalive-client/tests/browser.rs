//! Browser smoke tests: the whole pipeline (wasm → fetch → server → gRPC-web response →
//! decoded message or status) and the test controller (server restart on the same port).
//!
//! Run by `cargo xtask test` in headless Chromium; the server URL and the controller URL
//! are compiled in (see `support`). The page is served by wasm-bindgen-test-runner on its
//! own origin, so every call to the server is cross-origin: the server runs with
//! `--cors-allow-origin '*'`.

#![cfg(target_arch = "wasm32")]

mod support;

use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Calls `OpenSession` and requires a signed session id (128 random bits, hex).
async fn open_session_reaches_server(url: &str) -> String {
    use keepalive_proto::v1::OpenSessionRequest;
    use keepalive_proto::v1::session_client::SessionClient;
    let mut client = SessionClient::new(tonic_web_wasm_client::Client::new(url.to_owned()));
    match client
        .open_session(OpenSessionRequest {})
        .await
        .map(|r| r.into_inner().session_id)
    {
        Ok(session_id) => {
            // Signed so that every replica accepts it: `s1.KID.RANDOM.EXPIRY.MAC`, the
            // random part 128 bits of hex.
            let random = session_id.split('.').nth(2).unwrap_or_default();
            assert!(
                session_id.starts_with("s1.")
                    && random.len() == 32
                    && random.bytes().all(|b| b.is_ascii_hexdigit()),
                "not a signed id with 128 random bits: {session_id:?}"
            );
            session_id
        }
        Err(status) => panic!(
            "OpenSession on {url} failed: code {:?} ({}), message {:?}",
            status.code(),
            status.code() as i32,
            status.message()
        ),
    }
}

#[wasm_bindgen_test]
async fn open_session_round_trip() {
    keepalive_client::init_logging(tracing::Level::DEBUG);
    let url = support::server_up().await;
    let a = open_session_reaches_server(url).await;
    let b = open_session_reaches_server(url).await;
    assert_ne!(a, b, "every session id is new");
}

#[wasm_bindgen_test]
async fn controller_restarts_server_on_same_port() {
    keepalive_client::init_logging(tracing::Level::DEBUG);
    support::server_up().await;
    let before = support::controller::status().await;
    assert!(before.running, "server not running: {before:?}");
    assert_eq!(before.url, support::server_url(), "{before:?}");
    let before_pid = before.pid.expect("a running server has a pid");

    let after = support::controller::restart().await;
    assert!(after.running, "server not running after restart: {after:?}");
    assert_eq!(after.addr, before.addr, "restart must keep the port");
    assert_ne!(
        after.pid,
        Some(before_pid),
        "restart must start a new process"
    );
    assert_eq!(after.starts, before.starts + 1, "{after:?}");
    assert_eq!(support::controller::status().await, after);

    // The new process answers (the browser may first try its pooled, now dead, connection).
    let _ = open_session_reaches_server(support::server_url()).await;
    let log = support::controller::log().await;
    assert!(
        log.contains(&format!("[server {before_pid}]")),
        "the log keeps the first process's lines: {log}"
    );
}
