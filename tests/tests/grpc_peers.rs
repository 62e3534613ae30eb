//! Independent gRPC peers against the real server and the example server: Python `grpcio`
//! (gRPC core, C++), pinned in the venv that `cargo xtask setup` creates
//! (tests/python/requirements.txt).

use std::path::PathBuf;
use std::process::Command;
use testkit::{ServerProcess, workspace_root};

/// The venv's python and peer.py; panics with the fix when setup has not run.
fn peer(args: &[&str]) -> Command {
    let root = workspace_root();
    let python = std::env::var_os("KEEPALIVE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".tools/venv/bin/python"));
    assert!(
        python.exists(),
        "{} is missing: run `cargo xtask setup` (or `cargo xtask test`)",
        python.display()
    );
    let script = std::env::var_os("KEEPALIVE_PEER")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("tests/python/peer.py"));
    let mut cmd = Command::new(python);
    cmd.arg(script).args(args);
    cmd
}

fn run(cmd: Command) -> (Option<i32>, String) {
    let mut cmd = cmd;
    let out = cmd.output().expect("run peer.py");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn grpcio_health_check() {
    let srv = ServerProcess::start(&[]).await;
    let target = srv.addr().to_string();
    let (code, out) =
        tokio::task::spawn_blocking(move || run(peer(&["health", "--target", &target])))
            .await
            .expect("join");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("STATUS SERVING"), "{out}");
    // grpcio speaks HTTP/2 (and only that: one connection).
    srv.assert_metric(r#"keepalive_connections_total{protocol="h2"}"#, 1.0)
        .await;
}

/// Runs peer.py with `args` (the target appended) on the blocking pool.
async fn run_peer(args: &[&str], srv: &ServerProcess) -> (Option<i32>, String) {
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--target".to_string(), srv.addr().to_string()]);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(peer(&args))
    })
    .await
    .expect("join")
}

#[tokio::test]
async fn grpcio_health_of_the_example_follows_the_spec() {
    let srv = ServerProcess::start_prices(&[]).await;
    let (code, out) = run_peer(&["health", "--service", "prices.v1.Prices"], &srv).await;
    assert_eq!((code, out.trim()), (Some(0), "STATUS SERVING"), "{out}");
    let (code, out) = run_peer(&["health", "--service", "no.such.Service"], &srv).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("ERROR NOT_FOUND"), "{out}");
    // Watch of an unknown service: SERVICE_UNKNOWN, and the call stays open (gRPC's
    // health-checking.md; grpc-go does this, tonic-health ends it with NOT_FOUND).
    let (code, out) = run_peer(
        &["watch", "--service", "no.such.Service", "--seconds", "2"],
        &srv,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        out.trim().lines().collect::<Vec<_>>(),
        ["WATCH_UPDATE SERVICE_UNKNOWN", "WATCH_OPEN"],
        "{out}"
    );
}

#[tokio::test]
async fn grpcio_aggressive_keepalive_gets_too_many_pings_from_the_example() {
    // The library's defaults around a user's service: MinTime 5m, 2 strikes.
    let srv = ServerProcess::start_prices(&[]).await;
    let (code, out) = run_peer(
        &["flood-pings", "--keepalive-ms", "1000", "--seconds", "20"],
        &srv,
    )
    .await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("GOAWAY too_many_pings"), "{out}");
    assert!(out.contains("WATCH_END UNAVAILABLE"), "{out}");
    srv.assert_metric(r#"keepalive_goaways_total{reason="too_many_pings"}"#, 1.0)
        .await;
}

#[tokio::test]
async fn grpcio_aggressive_keepalive_gets_too_many_pings() {
    // grpc-go defaults on the server: MinTime 5m, 2 strikes. gRPC core pings every second.
    let srv = ServerProcess::start(&[]).await;
    let target = srv.addr().to_string();
    let (code, out) = tokio::task::spawn_blocking(move || {
        run(peer(&[
            "flood-pings",
            "--target",
            &target,
            "--keepalive-ms",
            "1000",
            "--seconds",
            "20",
        ]))
    })
    .await
    .expect("join");
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("GOAWAY too_many_pings"),
        "client did not see it: {out}"
    );
    assert!(out.contains("WATCH_END UNAVAILABLE"), "{out}");
    srv.assert_metric("keepalive_ping_strikes_total", 3.0).await;
    srv.assert_metric(r#"keepalive_goaways_total{reason="too_many_pings"}"#, 1.0)
        .await;
}
