//! Browser-shaped gRPC-web over HTTP/1.1 (CORS preflight, binary and text encodings), the
//! same over HTTP/2, a native tonic client, and HTTP/1.1 idle/age (f).

use std::time::Duration;
use testkit::ServerProcess;
use tests::http1::Http1;
use tokio::time::Instant;

const CHECK: &str = "/grpc.health.v1.Health/Check";
const WATCH: &str = "/grpc.health.v1.Health/Watch";
const ORIGIN: &str = "http://localhost:3000";
/// An empty HealthCheckRequest, length-prefixed.
const EMPTY_MESSAGE: [u8; 5] = [0, 0, 0, 0, 0];
/// HealthCheckResponse{status: SERVING}, length-prefixed.
const SERVING: [u8; 7] = [0, 0, 0, 0, 2, 0x08, 0x01];

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn web_headers(origin: Option<&str>) -> Vec<(&str, &str)> {
    let mut h = vec![
        ("content-type", "application/grpc-web+proto"),
        ("x-grpc-web", "1"),
        ("accept", "application/grpc-web+proto"),
    ];
    if let Some(o) = origin {
        h.push(("origin", o));
    }
    h
}

#[tokio::test]
async fn cors_preflight_then_grpc_web_call_over_http1() {
    let srv = ServerProcess::start(&["--cors-allow-origin", ORIGIN]).await;
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send(
        "OPTIONS",
        CHECK,
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "content-type,x-grpc-web,x-user-agent",
            ),
        ],
        b"",
    )
    .await
    .expect("send");
    let pre = c.read_head(secs(5.0)).await.expect("preflight");
    assert!(pre.status == 200 || pre.status == 204, "{pre:?}");
    assert_eq!(pre.header("access-control-allow-origin"), Some(ORIGIN));
    let allowed = pre
        .header("access-control-allow-headers")
        .unwrap_or_default();
    assert!(
        allowed.contains("x-grpc-web") && allowed.contains("content-type"),
        "{pre:?}"
    );
    assert!(
        pre.header("access-control-allow-methods")
            .unwrap_or_default()
            .contains("POST")
    );

    // The real call, on the same keep-alive connection.
    c.send("POST", CHECK, &web_headers(Some(ORIGIN)), &EMPTY_MESSAGE)
        .await
        .expect("send");
    let res = c.read_head(secs(5.0)).await.expect("response");
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("content-type"),
        Some("application/grpc-web+proto")
    );
    assert_eq!(res.header("access-control-allow-origin"), Some(ORIGIN));
    let exposed = res
        .header("access-control-expose-headers")
        .unwrap_or_default();
    for h in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(h), "{h} not exposed: {res:?}");
    }
    let body = c
        .read_until(b"grpc-status:0\r\n", secs(5.0))
        .await
        .expect("body");
    assert!(
        body.windows(SERVING.len()).any(|w| w == SERVING),
        "{body:?}"
    );
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let srv = ServerProcess::start(&["--cors-allow-origin", ORIGIN]).await;
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send(
        "OPTIONS",
        CHECK,
        &[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        b"",
    )
    .await
    .expect("send");
    let pre = c.read_head(secs(5.0)).await.expect("preflight");
    assert_eq!(pre.header("access-control-allow-origin"), None, "{pre:?}");
}

#[tokio::test]
async fn grpc_web_text_and_chunked_request_body() {
    let srv = ServerProcess::start(&[]).await;
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    // base64 of the empty message frame, sent with chunked transfer encoding.
    let body = "AAAAAAA=";
    let req = format!(
        "POST {CHECK} HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc-web-text\r\naccept: application/grpc-web-text\r\nx-grpc-web: 1\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
        body.len()
    );
    c.send_raw(req.as_bytes()).await.expect("send");
    let res = c.read_head(secs(5.0)).await.expect("response");
    assert_eq!(res.status, 200);
    assert!(
        res.header("content-type")
            .unwrap_or_default()
            .starts_with("application/grpc-web-text"),
        "{res:?}"
    );
    // "AAAAAAIIAQ==" is base64 of the SERVING message frame.
    let got = c.read_until(b"AAAAAAIIAQ", secs(5.0)).await;
    assert!(got.is_ok(), "no base64 SERVING message");
}

#[tokio::test]
async fn grpc_web_over_http2_and_native_grpc_with_tonic() {
    let srv = ServerProcess::start(&[]).await;
    let channel = tonic::transport::Endpoint::from_shared(srv.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let res = health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("check");
    assert_eq!(res.into_inner().status, 1);
    let err = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .expect_err("unknown service");
    assert_eq!(err.code(), tonic::Code::NotFound);

    // gRPC-web framing over HTTP/2 (prior knowledge), frame by frame.
    let mut c = tests::h2raw::RawH2::connect_and_handshake(srv.addr())
        .await
        .expect("h2");
    let mut headers = tests::h2raw::grpc_request_headers(&srv.addr().to_string(), CHECK);
    for (n, v) in headers.iter_mut() {
        if n == "content-type" {
            *v = "application/grpc-web+proto".into();
        }
    }
    headers.retain(|(n, _)| n != "te");
    c.send_headers(1, &headers, false).await.expect("headers");
    c.send_data(1, &EMPTY_MESSAGE, true).await.expect("data");
    let (seen, end) = c
        .read_until(secs(5.0), |f| f.stream_id == 1 && f.is_end_stream())
        .await
        .expect("read");
    assert!(end.is_some(), "{seen:?}");
    let data: Vec<u8> = seen
        .iter()
        .chain(end.iter())
        .filter(|f| f.is_data() && f.stream_id == 1)
        .flat_map(|f| f.payload.to_vec())
        .collect();
    assert!(data.starts_with(&SERVING), "{data:?}");
    assert!(
        data.windows(13).any(|w| w == b"grpc-status:0"),
        "trailers not in the body as gRPC-web wants: {data:?}"
    );
}

// f. HTTP/1.1: idle and age close at the next idle moment, never mid-request. ----------

#[tokio::test]
async fn f_http1_idle_closes_an_idle_keepalive_connection() {
    let srv = ServerProcess::start(&["--max-connection-idle", "1s"]).await;
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send("POST", CHECK, &web_headers(None), &EMPTY_MESSAGE)
        .await
        .expect("send");
    c.read_head(secs(5.0)).await.expect("response");
    c.read_until(b"grpc-status:0\r\n", secs(5.0))
        .await
        .expect("body");
    let t = Instant::now();
    c.expect_closed(secs(3.0)).await.expect("closed when idle");
    let after = t.elapsed();
    assert!(
        after >= secs(0.8) && after <= secs(1.7),
        "closed after {after:?}"
    );
    srv.assert_metric(r#"keepalive_goaways_total{reason="max_idle"}"#, 1.0)
        .await;
}

#[tokio::test]
async fn f_http1_age_waits_for_the_request_in_flight_until_the_grace() {
    let srv = ServerProcess::start(&[
        "--max-connection-age",
        "1s",
        "--max-connection-age-grace",
        "2s",
    ])
    .await;
    let t0 = Instant::now();
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    // A streaming call (Watch) in flight across the age deadline.
    c.send("POST", WATCH, &web_headers(None), &EMPTY_MESSAGE)
        .await
        .expect("send");
    let res = c.read_head(secs(5.0)).await.expect("response");
    assert_eq!(res.status, 200);
    assert!(
        !c.closed_within(secs(1.8)).await,
        "the request in flight was cut at max-age"
    );
    c.expect_closed(secs(2.5))
        .await
        .expect("closed after the grace");
    let at = t0.elapsed();
    assert!(at >= secs(2.6) && at <= secs(4.0), "closed at {at:?}");
}

#[tokio::test]
async fn f_http1_age_closes_between_requests() {
    let srv = ServerProcess::start(&["--max-connection-age", "1s"]).await;
    let t0 = Instant::now();
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send("POST", CHECK, &web_headers(None), &EMPTY_MESSAGE)
        .await
        .expect("send");
    c.read_head(secs(5.0)).await.expect("response");
    c.read_until(b"grpc-status:0\r\n", secs(5.0))
        .await
        .expect("body");
    c.expect_closed(secs(3.0)).await.expect("closed at max-age");
    let at = t0.elapsed();
    assert!(at >= secs(0.85) && at <= secs(1.7), "closed at {at:?}");
}
