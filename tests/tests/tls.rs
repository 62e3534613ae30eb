//! The server over TLS (`--tls-cert`, `--tls-key`): the same service, keepalive and
//! enforcement as over plain TCP, with the protocol chosen by ALPN.
//!
//! Each test makes its own self-signed certificate for `localhost` and `127.0.0.1`
//! (rcgen), starts the real server process with it, and talks to it with a client that
//! trusts exactly that certificate: tonic over TLS (ALPN `h2`), a raw gRPC-web request over
//! TLS with ALPN `http/1.1`, and the raw HTTP/2 frame client over TLS for PINGs.

mod tls_cert;

use std::time::Duration;
use testkit::run_to_exit;
use tests::h2raw::{RawH2, error_code};
use tls_cert::TestCert;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[tokio::test]
async fn tonic_health_check_over_tls_is_http2() {
    use tonic::transport::{Certificate, Channel, ClientTlsConfig};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let cert = TestCert::new("tonic");
    let srv = cert.server(&[]).await;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert.pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://localhost:{}", srv.addr().port()))
        .expect("uri")
        .tls_config(tls)
        .expect("tls config")
        .connect()
        .await
        .expect("connect over TLS");
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("Health/Check over TLS");
    assert_eq!(reply.into_inner().status, 1, "SERVING");
    // Served as HTTP/2 (ALPN h2 over TLS), as the server counts it.
    let m = cert.metrics(&srv).await;
    assert_eq!(
        m.get(r#"keepalive_connections_total{protocol="h2"}"#),
        Some(1.0),
        "{}",
        m.text()
    );
}

#[tokio::test]
async fn grpc_web_over_tls_http1() {
    let cert = TestCert::new("web");
    let srv = cert.server(&[]).await;
    let (mut tls, alpn) = cert.connect(&srv, &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    // Health/Check with an empty request message: one 5-byte gRPC frame.
    let request = format!(
        "POST /grpc.health.v1.Health/Check HTTP/1.1\r\nhost: localhost:{}\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         content-length: 5\r\n\r\n",
        srv.addr().port()
    );
    tls.write_all(request.as_bytes()).await.expect("write");
    tls.write_all(&[0, 0, 0, 0, 0]).await.expect("write");
    tls.flush().await.expect("flush");
    let mut got = Vec::new();
    let deadline = Instant::now() + secs(5.0);
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("grpc-status:") {
        match tokio::time::timeout_at(deadline, tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            other => panic!("no gRPC-web trailers: {other:?}; got {got:?}"),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("grpc-status:0"), "{text}");
    // Served as HTTP/1.1 over TLS, as the server counts it (this call, then the scrape).
    let m = cert.metrics(&srv).await;
    assert_eq!(
        m.get(r#"keepalive_connections_total{protocol="h2"}"#),
        Some(0.0),
        "{}",
        m.text()
    );
    assert_eq!(
        m.get(r#"keepalive_connections_total{protocol="http1"}"#),
        Some(2.0),
        "{}",
        m.text()
    );
}

#[tokio::test]
async fn keepalive_ping_over_tls_then_close_after_timeout() {
    let cert = TestCert::new("ping");
    let srv = cert
        .server(&["--keepalive-time", "1s", "--keepalive-timeout", "1s"])
        .await;
    let mut c = cert.raw_h2(&srv).await;
    let t0 = Instant::now();
    let (seen, ping) = c
        .read_until(secs(3.0), |f| f.is_ping() && !f.is_ping_ack())
        .await
        .expect("read");
    assert!(ping.is_some(), "no server PING over TLS; saw {seen:?}");
    let pinged = t0.elapsed();
    assert!(pinged < secs(1.8), "PING after {pinged:?}");
    // Not answered: closed after keepalive-timeout, through the TLS bridge.
    c.expect_closed(secs(3.0)).await.expect("closed");
    let closed = cert
        .wait_for_metric(
            &srv,
            r#"keepalive_connections_closed_total{reason="keepalive_timeout"}"#,
            |v| v >= 1.0,
            secs(2.0),
        )
        .await;
    assert_eq!(closed, Ok(1.0), "{}", srv.logs_text());
}

#[tokio::test]
async fn ping_strikes_over_tls_end_in_goaway_too_many_pings() {
    let cert = TestCert::new("strikes");
    let srv = cert.server(&[]).await; // grpc-go defaults: 5m, 2 strikes
    let mut c = cert.raw_h2(&srv).await;
    // As in keepalive_h2.rs: a Watch stream with a first message, then PING 1 (follows
    // server data: not judged), PINGs 2 and 3 (strikes 1 and 2), PING 4 (strike 3 > 2).
    c.open_grpc_stream(1, "/grpc.health.v1.Health/Watch", &[], true)
        .await
        .expect("send");
    let (seen, data) = c
        .read_until(secs(5.0), |f| f.is_data() && f.stream_id == 1)
        .await
        .expect("read");
    assert!(data.is_some(), "no Watch message; saw {seen:?}");
    for i in 1..=3u8 {
        c.ping([i; 8]).await.expect("PING");
        let (seen, ack) = c
            .read_until(secs(5.0), |f| {
                f.is_ping_ack() && f.ping_data() == Some([i; 8])
            })
            .await
            .expect("read");
        assert!(ack.is_some(), "no ACK {i}; saw {seen:?}");
        assert!(seen.iter().all(|f| !f.is_goaway()), "{seen:?}");
    }
    c.ping([4; 8]).await.expect("PING");
    let (seen, goaway) = c
        .read_until(secs(2.0), |f| f.is_goaway())
        .await
        .expect("read");
    let g = goaway
        .and_then(|f| f.goaway())
        .unwrap_or_else(|| panic!("no GOAWAY; saw {seen:?}"));
    assert_eq!(g.error_code, error_code::ENHANCE_YOUR_CALM);
    assert_eq!(g.debug_str(), "too_many_pings");
    c.expect_closed(secs(3.0)).await.expect("closed");
    let m = cert.metrics(&srv).await;
    assert_eq!(
        m.get("keepalive_ping_strikes_total"),
        Some(3.0),
        "{}",
        m.text()
    );
    assert_eq!(
        m.get(r#"keepalive_goaways_total{reason="too_many_pings"}"#),
        Some(1.0),
        "{}",
        m.text()
    );
}

#[tokio::test]
async fn plaintext_client_is_not_served_by_a_tls_listener() {
    let cert = TestCert::new("plain");
    let srv = cert.server(&["--first-bytes-timeout", "2s"]).await;
    let mut c = RawH2::connect(srv.addr()).await.expect("tcp");
    assert!(c.handshake().await.is_err(), "h2 without TLS was served");
    // A TLS client still is.
    let _ = cert.raw_h2(&srv).await;
}

#[test]
fn tls_files_missing_or_invalid_are_one_line_errors() {
    let cert = TestCert::new("files");
    let missing = cert.dir.join("missing.pem").display().to_string();
    let (code, err) = run_to_exit(
        &["--tls-cert", &missing, "--tls-key", &cert.key_path()],
        secs(10.0),
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--tls-cert"), "{err}");

    let garbage = cert.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a key\n").expect("write");
    let garbage = garbage.display().to_string();
    let (code, err) = run_to_exit(
        &["--tls-cert", &cert.cert_path(), "--tls-key", &garbage],
        secs(10.0),
    );
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("--tls-key"), "{err}");

    let (code, err) = run_to_exit(&["--tls-cert", &cert.cert_path()], secs(10.0));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-cert needs --tls-key"), "{err}");
}
