//! Hostile input against the real server process, byte by byte.
//!
//! Each test does one bad thing to the server and asserts two things: the bad client gets
//! a protocol-correct answer (an HTTP/1.1 status, an HTTP/2 GOAWAY with the right error
//! code, a gRPC status, or a close when that is the answer), and a well-behaved client
//! connected at the same time ([`Probe`]: a tonic client calling Health/Check every 20 ms)
//! sees no error and no call slower than [`LATENCY_BOUND`] (250 ms).
//!
//! The tests take a lock so they run one at a time: two floods at once on a 2-core
//! machine would measure each other, not the server. Each one prints a `PROBE` line
//! (`-- --nocapture`) with the well-behaved client's latencies for the report.

use std::time::Duration;
use testkit::ServerProcess;
use tests::h2raw::{self, Frame, GoAway, RawH2, error_code};
use tests::http1::Http1;
use tests::probe::{LATENCY_BOUND, Probe};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One hostile test at a time (see the module docs).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const CHECK: &str = "/grpc.health.v1.Health/Check";
const WATCH: &str = "/grpc.health.v1.Health/Watch";
/// Probe calls a test must see at least (so "no error" means something).
const MIN_PROBE_CALLS: usize = 10;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// Runs `bad` against a fresh server started with `args`, with the probe watching, and
/// asserts the probe's health afterwards. The probe keeps going for at least 0.5 s after
/// `bad` returns (so a delayed effect would show).
async fn with_probe<F, Fut>(what: &str, args: &[&str], bad: F)
where
    F: FnOnce(ServerProcess) -> Fut,
    Fut: std::future::Future<Output = ServerProcess>,
{
    let _serial = SERIAL.lock().await;
    let srv = ServerProcess::start(args).await;
    let probe = Probe::start(srv.addr());
    let started = Instant::now();
    let mut srv = bad(srv).await;
    let min_run = secs(0.5).max(secs(MIN_PROBE_CALLS as f64 * 0.03));
    tokio::time::sleep(min_run.saturating_sub(started.elapsed()).max(secs(0.5))).await;
    let report = probe.finish();
    assert!(
        srv.is_running(),
        "{what}: the server died:\n{}",
        srv.logs_text()
    );
    assert_eq!(
        srv.log_count("panicked"),
        0,
        "{what}: a panic:\n{}",
        srv.logs_text()
    );
    report.assert_healthy(what, LATENCY_BOUND, MIN_PROBE_CALLS);
}

/// Reads until the server closes; returns the GOAWAY it sent (panics if none).
async fn goaway_then_close(c: &mut RawH2, timeout: f64) -> (Vec<Frame>, GoAway) {
    let frames = c.expect_closed(secs(timeout)).await.expect("closed");
    let goaway = frames
        .iter()
        .rev()
        .find_map(Frame::goaway)
        .unwrap_or_else(|| panic!("no GOAWAY before the close; frames: {frames:?}"));
    (frames, goaway)
}

/// The frames of `frames`, encoded back to back (one write: a flood).
fn encode_all(frames: impl IntoIterator<Item = Frame>) -> Vec<u8> {
    frames
        .into_iter()
        .flat_map(|f| f.encode().to_vec())
        .collect()
}

/// `n` seeded random bytes.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n).map(|_| rng.u8(..)).collect()
}

/// Writes `bytes`, ignoring a write error (the server may close before all of it is in).
async fn send_ignoring_close(c: &mut RawH2, bytes: &[u8]) {
    if let Err(e) = c.send_raw(bytes).await {
        assert!(h2raw::is_closed_error(&e), "send: {e}");
    }
}

// --- Not HTTP at all ------------------------------------------------------------------

#[tokio::test]
async fn random_bytes_instead_of_a_preface_get_400_and_a_close() {
    with_probe("random bytes", &[], |srv| async move {
        let mut bytes = random_bytes(6, 512);
        bytes[0] = 0x16; // not 'P' (so not an HTTP/2 preface), not a method token
        let mut c = Http1::connect(srv.addr()).await.expect("connect");
        c.send_raw(&bytes).await.expect("send");
        let res = c.read_head(secs(5.0)).await.expect("an HTTP answer");
        assert_eq!(res.status, 400, "{res:?}");
        c.expect_closed(secs(5.0))
            .await
            .expect("closed after the 400");
        srv
    })
    .await;
}

#[tokio::test]
async fn a_preface_then_random_bytes_get_goaway_with_an_error_and_a_close() {
    with_probe("preface + random bytes", &[], |srv| async move {
        for seed in 1..=5 {
            let mut c = RawH2::connect(srv.addr()).await.expect("connect");
            let mut bytes = h2raw::PREFACE.to_vec();
            bytes.extend(random_bytes(seed, 2048));
            send_ignoring_close(&mut c, &bytes).await;
            let (_, goaway) = goaway_then_close(&mut c, 5.0).await;
            assert_ne!(goaway.error_code, error_code::NO_ERROR, "{goaway:?}");
            eprintln!("ANSWER preface + random bytes (seed {seed}): {goaway:?}");
        }
        srv
    })
    .await;
}

/// CPU seconds (user + system) the process `pid` has used, from `/proc`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 2..]
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here); the
    // kernel's USER_HZ is 100 on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::test]
async fn a_preface_in_pieces_still_works_and_pieces_that_stop_cost_nothing() {
    with_probe("partial prefaces", &["--first-bytes-timeout", "30s"], |srv| async move {
        // A client that writes the preface byte by byte is served.
        let mut c = RawH2::connect(srv.addr()).await.expect("connect");
        for b in h2raw::PREFACE {
            c.send_raw(&[*b]).await.expect("send");
            tokio::time::sleep(secs(0.005)).await;
        }
        c.send_frame(Frame::SETTINGS, 0, 0, &[]).await.expect("settings");
        let (seen, settings) = c.read_until(secs(5.0), Frame::is_settings).await.expect("read");
        assert!(settings.is_some(), "no SETTINGS: {seen:?}");
        c.ping(*b"in-piece").await.expect("ping");
        let (seen, ack) = c
            .read_until(secs(5.0), |f| f.ping_data() == Some(*b"in-piece"))
            .await
            .expect("read");
        assert!(ack.is_some(), "{seen:?}");

        // A piece of the preface, then something else: closed.
        let mut bad = TcpStream::connect(srv.addr()).await.expect("connect");
        bad.write_all(b"PRI * HT").await.expect("send");
        tokio::time::sleep(secs(0.05)).await;
        bad.write_all(b"XP/1.1\r\n\r\n").await.expect("send");
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(secs(5.0), bad.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");

        // 1000 connections that sent `PRI` and stopped: they wait for more bytes without
        // costing the server CPU (it used to poll every 2 ms: 60% of a core).
        let mut idle = Vec::new();
        for _ in 0..1000 {
            let mut s = TcpStream::connect(srv.addr()).await.expect("connect");
            s.write_all(b"PRI").await.expect("send");
            idle.push(s);
        }
        tokio::time::sleep(secs(0.5)).await;
        let before = cpu_seconds(srv.pid());
        tokio::time::sleep(secs(2.0)).await;
        let used = (cpu_seconds(srv.pid()) - before) / 2.0;
        eprintln!("ANSWER 1000 connections that sent a piece of the preface: server CPU {:.0}% of a core", used * 100.0);
        assert!(used < 0.2, "the server spent {:.0}% of a core on them", used * 100.0);
        drop(idle);
        srv
    })
    .await;
}

// --- Broken frames --------------------------------------------------------------------

#[tokio::test]
async fn a_truncated_frame_then_eof_is_closed() {
    with_probe("truncated frame", &[], |srv| async move {
        let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
        // A HEADERS frame that announces 100 bytes and carries 10, then FIN.
        let mut bytes = vec![0, 0, 100, Frame::HEADERS, Frame::END_HEADERS, 0, 0, 0, 1];
        bytes.extend([0x82; 10]);
        c.send_raw(&bytes).await.expect("send");
        c.shutdown_write().await.expect("fin");
        let t = Instant::now();
        let frames = c.expect_closed(secs(5.0)).await.expect("closed");
        eprintln!(
            "ANSWER truncated frame + EOF: closed after {:?}, frames {frames:?}",
            t.elapsed()
        );
        srv
    })
    .await;
}

#[tokio::test]
async fn a_frame_over_max_frame_size_gets_goaway_frame_size_error() {
    with_probe("oversized frame", &[], |srv| async move {
        let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
        let payload = vec![0u8; h2raw::DEFAULT_MAX_FRAME_SIZE + 1];
        let bytes = Frame::new(Frame::DATA, 0, 1, payload).encode();
        send_ignoring_close(&mut c, &bytes).await;
        let (_, goaway) = goaway_then_close(&mut c, 5.0).await;
        assert_eq!(
            goaway.error_code,
            error_code::FRAME_SIZE_ERROR,
            "{goaway:?}"
        );
        eprintln!("ANSWER frame of 16385 bytes: {goaway:?}");
        srv
    })
    .await;
}

// --- Floods ---------------------------------------------------------------------------

#[tokio::test]
async fn a_ping_flood_gets_goaway_enhance_your_calm_too_many_pings() {
    with_probe("PING flood", &[], |srv| async move {
        let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
        let flood = encode_all(
            (0..1000u64).map(|i| Frame::new(Frame::PING, 0, 0, i.to_be_bytes().to_vec())),
        );
        send_ignoring_close(&mut c, &flood).await;
        let (frames, goaway) = goaway_then_close(&mut c, 5.0).await;
        assert_eq!(
            goaway.error_code,
            error_code::ENHANCE_YOUR_CALM,
            "{goaway:?}"
        );
        assert_eq!(goaway.debug_str(), "too_many_pings");
        let acks = frames.iter().filter(|f| f.is_ping_ack()).count();
        // One PING is fine, two strikes are tolerated, the third is one too many: every
        // PING is ACKed first, then judged (grpc-go's handlePing).
        assert_eq!(acks, 4, "{frames:?}");
        eprintln!("ANSWER 1000 PINGs: {acks} ACKs, then {goaway:?}, then close");
        srv
    })
    .await;
}

#[tokio::test]
async fn a_settings_flood_is_acked_one_by_one_and_the_connection_stays_usable() {
    with_probe("SETTINGS flood", &[], |srv| async move {
        const N: usize = 10_000;
        let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
        c.set_auto_ack_settings(false);
        let flood = encode_all((0..N).map(|_| Frame::new(Frame::SETTINGS, 0, 0, Vec::new())));
        c.send_raw(&flood).await.expect("send");
        let mut acks = 0;
        let deadline = Instant::now() + secs(20.0);
        while acks < N + 1 && Instant::now() < deadline {
            match c.read_frame(secs(5.0)).await.expect("read") {
                Some(f) if f.is_settings_ack() => acks += 1,
                Some(f) => assert!(f.goaway().is_none(), "unexpected GOAWAY {f:?}"),
                None => break,
            }
        }
        // Every SETTINGS of ours (the handshake's and the flood) gets exactly one ACK:
        // h2 holds one unacknowledged SETTINGS at a time and stops reading until it has
        // written the ACK, so the flood costs the server nothing but that.
        assert_eq!(acks, N + 1);
        c.ping(*b"still-ok").await.expect("ping");
        let (seen, ack) = c
            .read_until(secs(5.0), |f| f.ping_data() == Some(*b"still-ok"))
            .await
            .expect("read");
        assert!(ack.is_some(), "no PING ACK after the flood: {seen:?}");
        eprintln!("ANSWER {N} SETTINGS: {acks} ACKs, connection still usable");
        srv
    })
    .await;
}

#[tokio::test]
async fn a_rapid_reset_flood_gets_goaway_enhance_your_calm() {
    with_probe("RST_STREAM flood (rapid reset)", &[], |srv| async move {
        let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
        let headers = h2raw::encode_headers(&h2raw::grpc_request_headers(c.authority(), WATCH));
        let flood = encode_all((0..2000u32).flat_map(|i| {
            let id = 1 + 2 * i;
            [
                Frame::new(Frame::HEADERS, Frame::END_HEADERS, id, headers.clone()),
                Frame::new(
                    Frame::RST_STREAM,
                    0,
                    id,
                    error_code::CANCEL.to_be_bytes().to_vec(),
                ),
            ]
        }));
        send_ignoring_close(&mut c, &flood).await;
        let (_, goaway) = goaway_then_close(&mut c, 10.0).await;
        assert_eq!(
            goaway.error_code,
            error_code::ENHANCE_YOUR_CALM,
            "{goaway:?}"
        );
        eprintln!("ANSWER 2000 × (HEADERS, RST_STREAM): {goaway:?}");
        srv
    })
    .await;
}

#[tokio::test]
async fn a_continuation_flood_gets_goaway_enhance_your_calm() {
    with_probe("CONTINUATION flood", &[], |srv| async move {
        let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
        // HEADERS without END_HEADERS, then empty CONTINUATIONs that never end the block.
        let headers = h2raw::encode_headers(&h2raw::grpc_request_headers(c.authority(), CHECK));
        let flood = encode_all(
            std::iter::once(Frame::new(Frame::HEADERS, 0, 1, headers))
                .chain((0..1000).map(|_| Frame::new(Frame::CONTINUATION, 0, 1, Vec::new()))),
        );
        send_ignoring_close(&mut c, &flood).await;
        let (_, goaway) = goaway_then_close(&mut c, 5.0).await;
        assert_eq!(
            goaway.error_code,
            error_code::ENHANCE_YOUR_CALM,
            "{goaway:?}"
        );
        eprintln!("ANSWER HEADERS + 1000 CONTINUATION: {goaway:?}");
        srv
    })
    .await;
}

#[tokio::test]
async fn a_window_update_flood_is_absorbed_and_an_overflow_gets_flow_control_error() {
    with_probe("WINDOW_UPDATE flood", &[], |srv| async move {
        let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
        let flood = encode_all(
            (0..10_000)
                .map(|_| Frame::new(Frame::WINDOW_UPDATE, 0, 0, 1u32.to_be_bytes().to_vec())),
        );
        c.send_raw(&flood).await.expect("send");
        c.ping(*b"still-ok").await.expect("ping");
        let (seen, ack) = c
            .read_until(secs(5.0), |f| f.ping_data() == Some(*b"still-ok"))
            .await
            .expect("read");
        assert!(ack.is_some(), "no PING ACK after the flood: {seen:?}");
        assert!(seen.iter().all(|f| f.goaway().is_none()), "{seen:?}");
        // A window past 2^31-1 is a connection error (RFC 9113 §6.9.1).
        c.window_update(0, 0x7fff_ffff).await.expect("send");
        let (_, goaway) = goaway_then_close(&mut c, 5.0).await;
        assert_eq!(
            goaway.error_code,
            error_code::FLOW_CONTROL_ERROR,
            "{goaway:?}"
        );
        eprintln!("ANSWER 10000 WINDOW_UPDATE(+1): absorbed; window overflow: {goaway:?}");
        srv
    })
    .await;
}

// --- gRPC-web framing and content types ----------------------------------------------

/// Sends a gRPC-web request over HTTP/1.1 and returns (HTTP status, grpc-status,
/// grpc-message): from the headers (trailers-only) or the body's trailer frame.
async fn grpc_web_call(
    srv: &ServerProcess,
    content_type: &str,
    body: &[u8],
) -> (u16, Option<String>, String) {
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send(
        "POST",
        CHECK,
        &[("content-type", content_type), ("x-grpc-web", "1")],
        body,
    )
    .await
    .expect("send");
    let res = c.read_head(secs(5.0)).await.expect("response");
    if let Some(code) = res.header("grpc-status") {
        let message = res.header("grpc-message").unwrap_or_default().to_string();
        return (res.status, Some(code.to_string()), message);
    }
    if res.status != 200 {
        return (res.status, None, String::new());
    }
    let text_mode = content_type.contains("text");
    let needle: &[u8] = if text_mode {
        b"\r\n0\r\n\r\n"
    } else {
        b"grpc-status:"
    };
    let mut body = c.read_until(needle, secs(5.0)).await.expect("trailers");
    if !text_mode {
        body.extend(c.read_until(b"\r\n", secs(5.0)).await.expect("status line"));
    }
    let text = if text_mode {
        decode_text_body(&body)
    } else {
        String::from_utf8_lossy(&body).into_owned()
    };
    let code = text
        .split("grpc-status:")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .map(|s| s.trim().to_string());
    let message = text
        .split("grpc-message:")
        .nth(1)
        .and_then(|r| r.split("\r\n").next())
        .unwrap_or_default()
        .trim()
        .to_string();
    (res.status, code, message)
}

/// The decoded text of a chunked `grpc-web-text` body (base64 chunks).
fn decode_text_body(chunked: &[u8]) -> String {
    let text = String::from_utf8_lossy(chunked);
    let b64: String = text
        .split("\r\n")
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    let mut out = Vec::new();
    for part in b64.split_inclusive('=').filter(|p| !p.is_empty()) {
        out.extend(base64_decode(part));
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A small standard-alphabet base64 decoder (test side only; padding tolerated).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[tokio::test]
async fn malformed_grpc_web_framing_gets_a_grpc_error_status() {
    with_probe("malformed gRPC-web", &[], |srv| async move {
        let cases: [(&str, &str, &[u8]); 5] = [
            (
                "prefix announces 100 bytes, body has 3",
                "application/grpc-web+proto",
                &[0, 0, 0, 0, 100, 1, 2, 3],
            ),
            (
                "4 bytes: half a prefix",
                "application/grpc-web+proto",
                &[0, 0, 0, 0],
            ),
            (
                "compressed flag without grpc-encoding",
                "application/grpc-web+proto",
                &[1, 0, 0, 0, 0],
            ),
            ("bad base64", "application/grpc-web-text", b"!!!!****"),
            (
                "base64 of a cut length",
                "application/grpc-web-text",
                b"AAAAA",
            ),
        ];
        for (what, ct, body) in cases {
            let (http, code, message) = grpc_web_call(&srv, ct, body).await;
            eprintln!("ANSWER gRPC-web {what}: HTTP {http}, grpc-status {code:?} {message:?}");
            assert_eq!(http, 200, "{what}");
            let code = code.unwrap_or_else(|| panic!("{what}: no grpc-status"));
            assert_ne!(code, "0", "{what}: accepted? {message}");
        }
        srv
    })
    .await;
}

#[tokio::test]
async fn wrong_content_types_get_http_errors_or_a_grpc_status() {
    with_probe("wrong content types", &[], |srv| async move {
        // HTTP/1.1: not gRPC-web → 400 from tonic-web; GET of a gRPC path → 405.
        let (http, code, _) = grpc_web_call(&srv, "text/plain", &[0, 0, 0, 0, 0]).await;
        eprintln!("ANSWER HTTP/1.1 POST text/plain: HTTP {http}, grpc-status {code:?}");
        assert_eq!(http, 400);
        let mut c = Http1::connect(srv.addr()).await.expect("connect");
        c.send(
            "GET",
            CHECK,
            &[("content-type", "application/grpc-web+proto")],
            b"",
        )
        .await
        .expect("send");
        let res = c.read_head(secs(5.0)).await.expect("response");
        eprintln!("ANSWER HTTP/1.1 GET of a gRPC path: HTTP {}", res.status);
        assert_eq!(res.status, 405, "{res:?}");

        // HTTP/2: application/json to a gRPC path. tonic does not look at the request's
        // content type; the body is not gRPC framing, so the call fails with a status.
        let (http, grpc_status, message) = h2_call(&srv, "application/json", b"{}").await;
        assert_eq!(http, 200);
        assert_eq!(grpc_status.as_deref(), Some("13"), "{message}");
        let end = format!("HTTP {http}, trailers-only grpc-status {grpc_status:?} {message:?}");
        eprintln!("ANSWER HTTP/2 application/json: {end:?}");
        srv
    })
    .await;
}

/// A POST over a real HTTP/2 client (h2) with any content type; returns (HTTP status,
/// grpc-status, grpc-message) from the headers (trailers-only) or the trailers.
async fn h2_call(
    srv: &ServerProcess,
    content_type: &str,
    body: &'static [u8],
) -> (u16, Option<String>, String) {
    let tcp = TcpStream::connect(srv.addr()).await.expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{}{CHECK}", srv.addr()))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut send) = client.send_request(req, false).expect("send");
    send.send_data(bytes::Bytes::from_static(body), true)
        .expect("data");
    let response = tokio::time::timeout(secs(5.0), response)
        .await
        .expect("answer in time")
        .expect("response");
    let status = response.status().as_u16();
    let mut headers = response.headers().clone();
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("body");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    if let Some(trailers) = body.trailers().await.expect("trailers") {
        headers.extend(trailers);
    }
    driver.abort();
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    (
        status,
        get("grpc-status"),
        get("grpc-message").unwrap_or_default(),
    )
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    with_probe("oversized headers", &[], |srv| async move {
        // HTTP/1.1: a 1 MB header (hyper reads at most ~400 KB of head).
        let mut c = Http1::connect(srv.addr()).await.expect("connect");
        let big = "x".repeat(1 << 20);
        let req = format!("POST {CHECK} HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n");
        let _ = c.send_raw(req.as_bytes()).await;
        let res = c.read_head(secs(5.0)).await.expect("an answer");
        eprintln!("ANSWER HTTP/1.1 1 MB header: HTTP {}", res.status);
        assert_eq!(res.status, 431, "{res:?}");

        // HTTP/2: a 64 KB header list (over the 16 KB SETTINGS_MAX_HEADER_LIST_SIZE),
        // sent in CONTINUATION frames.
        let mut c = RawH2::connect_and_handshake(srv.addr()).await.expect("h2");
        let mut headers = h2raw::grpc_request_headers(c.authority(), CHECK);
        headers.push(("x-big".into(), "y".repeat(64 << 10)));
        let block = h2raw::encode_headers(&headers);
        let chunks: Vec<_> = block.chunks(h2raw::DEFAULT_MAX_FRAME_SIZE).collect();
        let last = chunks.len() - 1;
        let frames = chunks.iter().enumerate().map(|(i, chunk)| {
            let kind = if i == 0 {
                Frame::HEADERS
            } else {
                Frame::CONTINUATION
            };
            let flags = if i == last {
                Frame::END_HEADERS | Frame::END_STREAM
            } else {
                0
            };
            Frame::new(kind, flags, 1, chunk.to_vec())
        });
        send_ignoring_close(&mut c, &encode_all(frames)).await;
        let (seen, answer) = c
            .read_until(secs(5.0), |f| f.stream_id == 1 || f.goaway().is_some())
            .await
            .expect("read");
        let answer = answer.unwrap_or_else(|| panic!("no answer: {seen:?}"));
        eprintln!("ANSWER HTTP/2 64 KB header list: {answer:?}");
        // Far over the limit, h2 treats it as abuse of the connection (a little over, it
        // would answer the stream alone).
        let goaway = answer.goaway().unwrap_or_else(|| panic!("{answer:?}"));
        assert_eq!(
            (goaway.error_code, goaway.debug_str().as_str()),
            (error_code::ENHANCE_YOUR_CALM, "header_list_way_too_large")
        );
        srv
    })
    .await;
}

// --- Slow and many clients ------------------------------------------------------------

#[tokio::test]
async fn a_slowloris_client_is_closed_after_the_header_read_timeout() {
    let args = ["--http1-header-read-timeout", "1s"];
    with_probe("slowloris", &args, |srv| async move {
        let mut sock = TcpStream::connect(srv.addr()).await.expect("connect");
        sock.write_all(format!("POST {CHECK} HTTP/1.1\r\n").as_bytes())
            .await
            .expect("send");
        let t = Instant::now();
        let mut buf = [0u8; 1024];
        let mut got = Vec::new();
        // One header byte every 100 ms, never finishing the head.
        let closed_at = loop {
            tokio::select! {
                r = sock.read(&mut buf) => match r {
                    Ok(0) | Err(_) => break t.elapsed(),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                },
                () = tokio::time::sleep(secs(0.1)) => {
                    let _ = sock.write_all(b"x").await;
                }
            }
            assert!(t.elapsed() < secs(10.0), "still open after 10 s");
        };
        eprintln!(
            "ANSWER slowloris (header timeout 1s): closed after {closed_at:?}, {} bytes answered",
            got.len()
        );
        assert!(
            closed_at >= secs(0.9) && closed_at <= secs(3.0),
            "closed after {closed_at:?}"
        );
        let closed = srv
            .wait_for_metric(
                r#"keepalive_connections_closed_total{reason="http1_header_read_timeout"}"#,
                |v| v >= 1.0,
                secs(2.0),
            )
            .await;
        assert_eq!(closed, Ok(1.0), "{}", srv.logs_text());
        srv
    })
    .await;
}

#[tokio::test]
async fn two_thousand_idle_connections_are_accepted_then_closed_after_the_first_bytes_timeout() {
    const N: usize = 2000;
    // Each connection is a descriptor here too; the server raises its own limit.
    let _ = rlimit::increase_nofile_limit(4 * N as u64);
    let args = ["--first-bytes-timeout", "5s"];
    with_probe("2000 idle connections", &args, |srv| async move {
        let addr = srv.addr();
        let t = Instant::now();
        let connects = (0..N).map(|_| {
            tokio::spawn(
                async move { tokio::time::timeout(secs(15.0), TcpStream::connect(addr)).await },
            )
        });
        let mut socks = Vec::with_capacity(N);
        for c in connects.collect::<Vec<_>>() {
            match c.await.expect("join") {
                Ok(Ok(s)) => socks.push(s),
                other => panic!("connection {} failed: {other:?}", socks.len()),
            }
        }
        eprintln!(
            "ANSWER {N} idle connections: all connected in {:?}",
            t.elapsed()
        );
        // None is refused or closed early: nothing to read, no EOF (checked at once: the
        // connects themselves may take a while when the listen backlog overflows).
        tokio::time::sleep(secs(0.2)).await;
        let mut buf = [0u8; 16];
        for s in &socks {
            match s.try_read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                other => panic!("an idle connection was answered early: {other:?}"),
            }
        }
        // Then every one is closed by the server (first-bytes timeout, 5 s).
        let closes = socks.into_iter().map(|mut s| {
            tokio::spawn(async move {
                let mut buf = [0u8; 16];
                tokio::time::timeout(secs(10.0), s.read(&mut buf)).await
            })
        });
        for c in closes.collect::<Vec<_>>() {
            match c.await.expect("join") {
                Ok(Ok(0)) | Ok(Err(_)) => {}
                other => panic!("not closed by the server: {other:?}"),
            }
        }
        eprintln!(
            "ANSWER {N} idle connections: all closed by the server after {:?}",
            t.elapsed()
        );
        // The server counted them as closed for that reason, not for any other.
        let closed = srv
            .wait_for_metric(
                r#"keepalive_connections_closed_total{reason="first_bytes_timeout"}"#,
                |v| v >= N as f64,
                secs(5.0),
            )
            .await;
        assert_eq!(closed, Ok(N as f64));
        srv
    })
    .await;
}
