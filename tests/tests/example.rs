//! The example's `prices-server` (a third-party service on the library's public API)
//! against a native tonic client: its own unary and resumable methods, an axum route on
//! the same port, and a stream that resumes after `kill -9` and a restart with nothing
//! lost and nothing duplicated.

use keepalive_proto::v1::session_client::SessionClient;
use keepalive_proto::v1::{OpenSessionRequest, ResumeRequest};
use prices_proto::v1::prices_client::PricesClient;
use prices_proto::v1::watch_response::Kind;
use prices_proto::v1::{QuoteRequest, WatchRequest, WatchResponse};
use std::time::Duration;
use testkit::ServerProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Streaming;
use tonic::transport::Channel;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

async fn channel(srv: &ServerProcess) -> Channel {
    tonic::transport::Endpoint::from_shared(srv.url())
        .expect("url")
        .connect()
        .await
        .expect("connect")
}

async fn session(ch: &Channel) -> String {
    SessionClient::new(ch.clone())
        .open_session(OpenSessionRequest {})
        .await
        .expect("OpenSession")
        .into_inner()
        .session_id
}

async fn watch(
    ch: &Channel,
    session: &str,
    after: Option<u64>,
    log_id: &str,
) -> Streaming<WatchResponse> {
    PricesClient::new(ch.clone())
        .watch(WatchRequest {
            symbol: "ACME".into(),
            resume: Some(ResumeRequest {
                session_id: session.to_string(),
                after_sequence: after,
                resume_token: String::new(),
                log_id: log_id.to_string(),
                ..ResumeRequest::default()
            }),
        })
        .await
        .expect("Watch")
        .into_inner()
}

async fn next(s: &mut Streaming<WatchResponse>) -> Kind {
    match tokio::time::timeout(secs(5.0), s.message()).await {
        Ok(Ok(Some(WatchResponse { kind: Some(kind) }))) => kind,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// A GET over HTTP/1.1; the whole answer.
async fn http_get(srv: &ServerProcess, path: &str) -> String {
    let mut sock = tokio::net::TcpStream::connect(srv.addr())
        .await
        .expect("tcp");
    let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    sock.write_all(req.as_bytes()).await.expect("write");
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.expect("read");
    answer
}

#[tokio::test]
async fn the_example_serves_its_service_and_an_axum_route_on_one_port() {
    let srv = ServerProcess::start_prices(&["--tick-interval", "50ms"]).await;
    let ch = channel(&srv).await;
    let mut prices = PricesClient::new(ch.clone());
    let deadline = tokio::time::Instant::now() + secs(5.0);
    let tick = loop {
        match prices
            .quote(QuoteRequest {
                symbol: "ACME".into(),
            })
            .await
        {
            Ok(r) => break r.into_inner().tick.expect("tick"),
            Err(e) if e.code() == tonic::Code::Unavailable => {}
            Err(e) => panic!("quote: {e}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "no tick in 5 s");
        tokio::time::sleep(secs(0.05)).await;
    };
    assert_eq!(tick.symbol, "ACME");
    assert!(tick.sequence >= 1 && tick.price_micros > 0, "{tick:?}");
    let e = prices
        .quote(QuoteRequest {
            symbol: "NOPE".into(),
        })
        .await
        .expect_err("unknown symbol");
    assert_eq!(e.code(), tonic::Code::NotFound);

    // The axum route, over HTTP/1.1 on the same port.
    let mut sock = tokio::net::TcpStream::connect(srv.addr())
        .await
        .expect("tcp");
    sock.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = String::new();
    sock.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");

    // Its /metrics: the library's counters and the service's own, on its registry.
    let metrics = http_get(&srv, "/metrics").await;
    for needle in [
        "keepalive_connections_total{protocol=\"h2\"} 1",
        "keepalive_sessions_open 0",
        "prices_quotes_total 1",
        "# EOF",
    ] {
        assert!(metrics.contains(needle), "{needle} not in {metrics}");
    }

    // A resumable stream of the service's own message type: Welcome, then ticks in order.
    let id = session(&ch).await;
    let mut s = watch(&ch, &id, None, "").await;
    let Kind::Welcome(w) = next(&mut s).await else {
        panic!("no Welcome")
    };
    assert_eq!(w.log_id.len(), 32);
    let mut expect = w.next_sequence;
    for _ in 0..5 {
        match next(&mut s).await {
            Kind::Event(t) => {
                assert_eq!((t.sequence, t.symbol.as_str()), (expect, "ACME"));
                expect += 1;
            }
            Kind::Heartbeat(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_example_stream_resumes_after_kill_and_restart_with_nothing_lost_or_duplicated() {
    let dir = std::env::temp_dir().join(format!("prices-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = dir.to_str().expect("utf8").to_string();
    let args = ["--tick-interval", "30ms", "--data-dir", &data];
    let mut srv = ServerProcess::start_prices(&args).await;
    let addr = srv.addr().to_string();

    // From the beginning of ACME's log, until at least 20 ticks were delivered.
    let ch = channel(&srv).await;
    let id = session(&ch).await;
    let mut s = watch(&ch, &id, Some(0), "").await;
    let Kind::Welcome(w) = next(&mut s).await else {
        panic!("no Welcome")
    };
    assert_eq!(w.next_sequence, 1);
    let log_id = w.log_id;
    let mut got: Vec<u64> = Vec::new();
    while got.len() < 20 {
        match next(&mut s).await {
            Kind::Event(t) => got.push(t.sequence),
            Kind::Heartbeat(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    srv.kill();
    let stalled = s.message().await;
    assert!(
        stalled.is_err() || matches!(stalled, Ok(None)),
        "{stalled:?}"
    );

    // The same port, the same files: the sequence space continues.
    let mut args = args.to_vec();
    args.extend(["--listen", &addr]);
    let srv = ServerProcess::start_prices(&args).await;
    let ch = channel(&srv).await;
    // The restarted server forgot the session: a new one, and no token.
    let id2 = session(&ch).await;
    let last = *got.last().expect("some");
    let mut s = watch(&ch, &id2, Some(last), &log_id).await;
    let Kind::Welcome(w) = next(&mut s).await else {
        panic!("no Welcome")
    };
    assert_eq!(
        (w.log_id.as_str(), w.next_sequence),
        (log_id.as_str(), last + 1)
    );
    while got.len() < 40 {
        match next(&mut s).await {
            Kind::Event(t) => got.push(t.sequence),
            Kind::Heartbeat(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<u64> = (1..=got.len() as u64).collect();
    assert_eq!(got, expected, "exactly 1..N: nothing lost, nothing twice");
    eprintln!(
        "FIGURE example resume: {} ticks, last before the kill {last}",
        got.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
