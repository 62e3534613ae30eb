//! The browser tests' controller: a small HTTP API on 127.0.0.1 through which a test
//! running in a browser page controls the server process a [`Supervisor`] owns. The page
//! is on the test runner's origin, so every answer allows any origin.
//!
//! | request | effect | answer |
//! |---|---|---|
//! | `GET /status` | | status JSON |
//! | `POST /kill` | SIGKILL, no drain | status JSON once it is gone |
//! | `POST /stop` | SIGTERM, graceful drain | status JSON once it exited |
//! | `POST /start` | start it if not running, same port and flags | status JSON once it listens |
//! | `POST /restart` | kill, then start on the same port (`?graceful=1`: stop instead of kill) | status JSON once it listens |
//! | `GET /log` | | every line the server processes printed, `[server PID] ...` |
//! | `GET /rss` | | `{"pid":123,"rss_kb":4567}`: the running server's resident memory |
//!
//! Status JSON is [`Status`](crate::supervisor::Status): `{"running":true,"pid":123,
//! "addr":"127.0.0.1:PORT","url":"http://127.0.0.1:PORT","starts":1,"last_exit":null}`.
//! A failure is a 500 with the reason as text.

use crate::supervisor::Supervisor;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;

type Shared = Arc<Mutex<Supervisor>>;

/// The controller's routes over `supervisor`.
pub fn router(supervisor: Shared) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/log", get(log))
        .route("/rss", get(rss))
        .route("/kill", post(kill))
        .route("/stop", post(stop))
        .route("/start", post(start))
        .route("/restart", post(restart))
        .fallback(not_found)
        .layer(axum::middleware::map_response(allow_any_origin))
        .with_state(supervisor)
}

/// Serves [`router`] on `listener` until `shutdown` resolves.
///
/// # Errors
/// If serving fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    supervisor: Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(supervisor))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` (`127.0.0.1:0`: a free port).
///
/// # Errors
/// If it cannot bind.
pub async fn bind(addr: &str) -> std::io::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

async fn allow_any_origin(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"),
        (header::ACCESS_CONTROL_ALLOW_HEADERS, "*"),
        (header::ACCESS_CONTROL_MAX_AGE, "600"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers.insert(
        "access-control-allow-private-network",
        HeaderValue::from_static("true"),
    );
    response
}

async fn not_found(method: axum::http::Method) -> Response {
    if method == axum::http::Method::OPTIONS {
        return StatusCode::NO_CONTENT.into_response();
    }
    (
        StatusCode::NOT_FOUND,
        "try GET /status, GET /log, GET /rss, POST /kill, /stop, /start, /restart",
    )
        .into_response()
}

fn answer(sup: &mut Supervisor, result: Result<(), String>) -> Response {
    match result {
        Ok(()) => Json(sup.status()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn status(State(sup): State<Shared>) -> Response {
    Json(sup.lock().await.status()).into_response()
}

async fn log(State(sup): State<Shared>) -> String {
    sup.lock().await.log().text()
}

async fn rss(State(sup): State<Shared>) -> Response {
    let pid = sup.lock().await.status().pid;
    match pid.and_then(|pid| rss_kb(pid).map(|kb| (pid, kb))) {
        Some((pid, kb)) => Json(serde_json::json!({ "pid": pid, "rss_kb": kb })).into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server is not running (no /proc/PID/status)",
        )
            .into_response(),
    }
}

async fn kill(State(sup): State<Shared>) -> Response {
    let mut sup = sup.lock().await;
    sup.kill();
    answer(&mut sup, Ok(()))
}

async fn stop(State(sup): State<Shared>) -> Response {
    let mut sup = sup.lock().await;
    sup.stop().await;
    answer(&mut sup, Ok(()))
}

async fn start(State(sup): State<Shared>) -> Response {
    let mut sup = sup.lock().await;
    let result = sup.start().await.map_err(|e| e.to_string());
    answer(&mut sup, result)
}

async fn restart(State(sup): State<Shared>, Query(q): Query<HashMap<String, String>>) -> Response {
    let graceful = q
        .get("graceful")
        .is_some_and(|v| matches!(v.as_str(), "1" | "true" | ""));
    let mut sup = sup.lock().await;
    let result = sup.restart(graceful).await.map_err(|e| e.to_string());
    answer(&mut sup, result)
}

/// `VmRSS` of process `pid` in KiB, from `/proc/PID/status`.
pub fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

/// The `VmRSS:` line of a `/proc/PID/status` text, in KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::LogFile;
    use crate::metrics::get;
    use crate::process::ServerProcess;
    use crate::test_support::fake_server;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tserver\nVmPeak:\t  9000 kB\nVmRSS:\t    4567 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(4567));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert!(rss_kb(std::process::id()).is_some_and(|kb| kb > 0));
    }

    async fn post(addr: SocketAddr, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).await.expect("write");
        let mut out = String::new();
        sock.read_to_string(&mut out).await.expect("read");
        out
    }

    #[tokio::test]
    async fn controls_the_supervised_server_over_http() {
        let script = fake_server(
            "controlled.sh",
            r#"addr="$2"; [ "$addr" = "127.0.0.1:0" ] && addr=127.0.0.1:4244
echo "INFO listening on $addr" >&2
while true; do sleep 0.05; done"#,
        );
        let mut sup = Supervisor::new(
            ServerProcess::builder().program(script).echo(false),
            LogFile::memory(),
        );
        sup.start().await.expect("start");
        let shared = Arc::new(Mutex::new(sup));
        let (listener, addr) = bind("127.0.0.1:0").await.expect("bind");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, shared.clone(), async move {
            let _ = stop_rx.await;
        }));

        let status: serde_json::Value =
            serde_json::from_str(&get(addr, "/status").await.expect("status")).expect("json");
        assert_eq!(status["running"], true);
        assert_eq!(status["url"], "http://127.0.0.1:4244");
        let restarted = post(addr, "/restart").await;
        assert!(restarted.contains("\"starts\":2"), "{restarted}");
        assert!(
            restarted
                .to_ascii_lowercase()
                .contains("access-control-allow-origin: *"),
            "{restarted}"
        );
        let killed = post(addr, "/kill").await;
        assert!(killed.contains("\"running\":false"), "{killed}");
        assert!(
            get(addr, "/log")
                .await
                .expect("log")
                .contains("listening on 127.0.0.1:4244")
        );
        assert!(get(addr, "/nothing").await.is_err());
        let _ = stop_tx.send(());
        task.await.expect("join").expect("served");
    }
}
