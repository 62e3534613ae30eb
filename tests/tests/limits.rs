//! The server's limits against the real process: each answers with a clear, retryable or
//! explanatory error, and a well-behaved client on its own connection is not hurt.
//!
//! - message sizes in and out → `RESOURCE_EXHAUSTED` naming the limit (native gRPC and
//!   gRPC-web);
//! - the request body of one call → `RESOURCE_EXHAUSTED` naming `max-request-body-size`;
//! - `--max-concurrent-streams` → h2's RST_STREAM `REFUSED_STREAM` for one stream too many;
//! - `--max-connections` → HTTP/1.1 503, HTTP/2 SETTINGS + GOAWAY `REFUSED_STREAM`
//!   `too_many_connections`, a tonic client gets `UNAVAILABLE`; the open ones go on.

use std::time::Duration;
use testkit::ServerProcess;
use tests::h2raw::{self, Frame, RawH2, error_code};
use tests::http1::Http1;
use tests::probe::{LATENCY_BOUND, Probe};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const CHECK: &str = "/grpc.health.v1.Health/Check";
const WATCH: &str = "/grpc.health.v1.Health/Watch";
const REFLECTION: &str = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo";

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

async fn health(srv: &ServerProcess) -> HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(srv.url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    HealthClient::new(channel)
}

/// A HealthCheckRequest whose `service` is `n` bytes long, encoded (field 1, string).
fn check_request_of(n: usize) -> Vec<u8> {
    let mut m = vec![0x0a];
    let mut len = n;
    while len >= 0x80 {
        m.push((len as u8) | 0x80);
        len >>= 7;
    }
    m.push(len as u8);
    m.extend(std::iter::repeat_n(b'x', n));
    m
}

#[tokio::test]
async fn a_request_message_over_the_default_limit_is_resource_exhausted_naming_it() {
    let srv = ServerProcess::start(&[]).await;
    let probe = Probe::start(srv.addr());
    let mut c = health(&srv).await;
    let e = c
        .check(HealthCheckRequest {
            service: "x".repeat(5 << 20),
        })
        .await
        .expect_err("5 MiB over the 4 MiB default");
    eprintln!(
        "ANSWER 5 MiB request message: {:?} {:?}",
        e.code(),
        e.message()
    );
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message()
            .contains("larger than the server's limit of 4194304 bytes")
            && e.message().contains("max-recv-message-size"),
        "{e:?}"
    );
    // The same connection still works.
    c.check(HealthCheckRequest::default())
        .await
        .expect("a normal call");
    tokio::time::sleep(secs(0.5)).await;
    probe
        .finish()
        .assert_healthy("oversized message", LATENCY_BOUND, 10);
}

#[tokio::test]
async fn a_request_message_over_a_set_limit_over_grpc_web_gets_grpc_status_8() {
    let srv = ServerProcess::start(&["--max-recv-message-size", "1KiB"]).await;
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    let body = h2raw::grpc_frame(&check_request_of(2000));
    c.send(
        "POST",
        CHECK,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &body,
    )
    .await
    .expect("send");
    let res = c.read_head(secs(5.0)).await.expect("response");
    eprintln!("ANSWER gRPC-web 2 KB message, limit 1 KiB: {res:?}");
    assert_eq!(res.status, 200);
    assert_eq!(res.header("grpc-status"), Some("8"), "{res:?}");
    let message = res.header("grpc-message").unwrap_or_default();
    assert!(
        message.contains("limit%20of%201024%20bytes") && message.contains("max-recv-message-size"),
        "{message}"
    );
}

#[tokio::test]
async fn a_response_message_over_the_send_limit_is_not_sent() {
    // HealthCheckResponse{SERVING} is 2 bytes.
    let srv = ServerProcess::start(&["--max-send-message-size", "1"]).await;
    let mut c = health(&srv).await;
    let e = c
        .check(HealthCheckRequest::default())
        .await
        .expect_err("2 bytes over a 1-byte limit");
    eprintln!(
        "ANSWER 2-byte response, send limit 1: {:?} {:?}",
        e.code(),
        e.message()
    );
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    assert!(
        e.message()
            .contains("response message of 2 bytes is larger than the server's limit of 1 bytes")
            && e.message().contains("max-send-message-size"),
        "{e:?}"
    );
    srv.assert_metric(
        r#"keepalive_limits_refused_total{limit="max_send_message_size"}"#,
        1.0,
    )
    .await;
}

#[tokio::test]
async fn a_request_body_over_its_limit_ends_a_streaming_call() {
    let srv = ServerProcess::start(&[
        "--max-recv-message-size",
        "512",
        "--max-request-body-size",
        "1KiB",
    ])
    .await;
    // Reflection is a bidi stream: 300 small ListServices requests (7 bytes each with
    // their prefix) are fine one by one, 2100 bytes together are over 1 KiB.
    let list_services = h2raw::grpc_frame(&[0x3a, 0x00]);
    let body: Vec<u8> = (0..300).flat_map(|_| list_services.to_vec()).collect();
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send(
        "POST",
        REFLECTION,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &body,
    )
    .await
    .expect("send");
    let res = c.read_head(secs(5.0)).await.expect("response");
    assert_eq!(res.status, 200, "{res:?}");
    let text = match res.header("grpc-status") {
        Some(code) => format!(
            "grpc-status:{code}\r\ngrpc-message:{}",
            res.header("grpc-message").unwrap_or_default()
        ),
        None => {
            let mut body = c
                .read_until(b"grpc-status:", secs(5.0))
                .await
                .expect("trailers");
            body.extend(
                c.read_until(b"\r\n\r\n", secs(5.0))
                    .await
                    .unwrap_or_default(),
            );
            String::from_utf8_lossy(&body).into_owned()
        }
    };
    let tail = &text[text.find("grpc-status:").unwrap_or(0)..];
    eprintln!("ANSWER 2100-byte request body, limit 1 KiB: {tail:?}");
    assert!(tail.starts_with("grpc-status:8"), "{tail}");
    assert!(tail.contains("max-request-body-size"), "{tail}");
}

#[tokio::test]
async fn one_stream_over_max_concurrent_streams_is_refused() {
    let srv = ServerProcess::start(&["--max-concurrent-streams", "2"]).await;
    let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
    for id in [1, 3] {
        c.open_grpc_stream(id, WATCH, &[], true)
            .await
            .expect("open");
        let (seen, f) = c
            .read_until(secs(5.0), |f| f.is_data() && f.stream_id == id)
            .await
            .expect("read");
        assert!(f.is_some(), "stream {id} not served: {seen:?}");
    }
    c.open_grpc_stream(5, WATCH, &[], true).await.expect("open");
    let (seen, rst) = c
        .read_until(secs(5.0), |f| f.stream_id == 5)
        .await
        .expect("read");
    let rst = rst.unwrap_or_else(|| panic!("no answer on stream 5: {seen:?}"));
    eprintln!("ANSWER a third stream, max 2: {rst:?}");
    assert_eq!(
        rst.rst_stream_code(),
        Some(error_code::REFUSED_STREAM),
        "{rst:?}"
    );
    // The two open streams go on, and the connection takes new ones once one ends.
    c.rst_stream(1, error_code::CANCEL).await.expect("cancel 1");
    c.open_grpc_stream(7, WATCH, &[], true).await.expect("open");
    let (seen, f) = c
        .read_until(secs(5.0), |f| f.stream_id == 7)
        .await
        .expect("read");
    let f = f.unwrap_or_else(|| panic!("stream 7 not answered: {seen:?}"));
    assert!(!f.is_rst_stream(), "{f:?}");
}

#[tokio::test]
async fn connections_over_the_limit_are_refused_in_their_protocol_and_the_others_go_on() {
    // 1 probe + 3 idle = 4 = the limit.
    let srv =
        ServerProcess::start(&["--max-connections", "4", "--first-bytes-timeout", "60s"]).await;
    // The server raised its open-file limit to the hard limit at start.
    let (soft, hard) = open_files_limit(srv.pid());
    assert_eq!(soft, hard, "{}", srv.logs_text());
    let probe = Probe::start(srv.addr());
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(TcpStream::connect(srv.addr()).await.expect("connect"));
    }
    tokio::time::sleep(secs(0.2)).await;

    // HTTP/1.1: 503, then close.
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send(
        "POST",
        CHECK,
        &[
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &[0, 0, 0, 0, 0],
    )
    .await
    .expect("send");
    let res = c.read_head(secs(5.0)).await.expect("refusal");
    eprintln!("ANSWER HTTP/1.1 over --max-connections: {res:?}");
    assert_eq!(res.status, 503, "{res:?}");
    assert_eq!(res.header("retry-after"), Some("1"));
    c.expect_closed(secs(5.0)).await.expect("closed");

    // HTTP/2: the server's SETTINGS, then GOAWAY(0, REFUSED_STREAM, too_many_connections).
    let mut c = RawH2::connect(srv.addr()).await.expect("connect");
    c.send_raw(h2raw::PREFACE).await.expect("preface");
    c.send_frame(Frame::SETTINGS, 0, 0, &[])
        .await
        .expect("settings");
    let frames = c.expect_closed(secs(5.0)).await.expect("closed");
    let goaway = frames
        .iter()
        .find_map(Frame::goaway)
        .unwrap_or_else(|| panic!("no GOAWAY: {frames:?}"));
    eprintln!("ANSWER HTTP/2 over --max-connections: {frames:?}");
    assert!(frames[0].is_settings(), "{frames:?}");
    assert_eq!(
        (
            goaway.last_stream_id,
            goaway.error_code,
            goaway.debug_str().as_str()
        ),
        (0, error_code::REFUSED_STREAM, "too_many_connections")
    );

    // A tonic client: UNAVAILABLE (retryable).
    let channel = tonic::transport::Endpoint::from_shared(srv.url())
        .expect("url")
        .connect_lazy();
    let e = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect_err("refused");
    eprintln!(
        "ANSWER tonic client over --max-connections: {:?} {:?}",
        e.code(),
        e.message()
    );
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");

    // Room again once the idle ones leave.
    drop(idle);
    tokio::time::sleep(secs(0.3)).await;
    let mut c = health(&srv).await;
    c.check(HealthCheckRequest::default())
        .await
        .expect("served again");
    // Counted as refused for the limit (read now: over the limit, the scrape would be
    // refused too).
    let refused = srv
        .wait_for_metric(
            r#"keepalive_connections_refused_total{reason="max_connections"}"#,
            |v| v >= 1.0,
            secs(2.0),
        )
        .await;
    assert!(refused.is_ok(), "{refused:?}");
    probe
        .finish()
        .assert_healthy("max connections", LATENCY_BOUND, 10);
}

/// `Max open files` of process `pid`: (soft, hard), from `/proc/PID/limits`.
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("/proc/PID/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no Max open files in {limits}"));
    let mut words = line["Max open files".len()..].split_whitespace();
    let soft = words.next().unwrap_or_default().to_owned();
    let hard = words.next().unwrap_or_default().to_owned();
    (soft, hard)
}
