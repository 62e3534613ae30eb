//! Hostile input against the real server process, one attack per test.
//!
//! Every attack asserts two things: the bad client gets a protocol-correct answer (an
//! HTTP/1.1 status, an HTTP/2 GOAWAY with the right error code, a gRPC status, or a close
//! when that is the answer), and a well-behaved client connected at the same time
//! ([`Probe`]: a tonic client calling Health/Check every 20 ms) sees no error, makes at least
//! [`MIN_PROBE_CALLS`] calls and none slower than its bound. The server must still be
//! running afterwards, with no panic in its log.
//!
//! The table below is one [`Attack`] per test, run by [`run`] (both in `hostile_support/`,
//! with the readers of the answers). A row reads:
//! - `name`: what the `ANSWER` and `PROBE` lines (`-- --nocapture`) and failures call it;
//! - `args`: the command line of the fresh server the row gets;
//! - `probe_bound`: the well-behaved client's worst latency meanwhile ([`LATENCY_BOUND`],
//!   250 ms, for every attack here);
//! - `input`: what the bad client sends on a connection of its own ([`Input`]: bytes that
//!   open the connection, frames after a correct HTTP/2 handshake, an HTTP/1.1 request, an
//!   HTTP/2 request through a real client); the bytes are made under "What the rows send";
//! - `answer`: what must come back on that connection, every wait bounded ([`Answer`]).
//!
//! Three tests are more than one connection and one answer and keep their own body around
//! the same [`with_probe`]: 1000 connections that stop in the preface (the server's CPU is
//! measured), slowloris (a head dribbled while reading, the close timed) and 2000 idle
//! connections.
//!
//! The tests take a lock so they run one at a time: two floods at once on a 2-core machine
//! would measure each other, not the server.

mod hostile_support;

use hostile_support::*;
use std::time::Duration;
use tests::h2raw::error_code::{ENHANCE_YOUR_CALM, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR};
use tests::h2raw::{self, Frame, error_code};
use tests::probe::LATENCY_BOUND;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One `#[tokio::test]` per row, named for its attack, that [`run`]s the row.
macro_rules! attacks {
    ($($test:ident: $row:expr,)*) => {
        $(
            #[tokio::test]
            async fn $test() {
                run($row).await;
            }
        )*
    };
}

attacks! {
    // --- Not HTTP at all
    random_bytes_instead_of_a_preface_get_400_and_a_close: Attack {
        name: "random bytes", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Http1 { pieces: vec![not_a_preface()], pause: Duration::ZERO },
        answer: Answer::HttpThenClose(400),
    },
    a_preface_then_random_bytes_1_get_goaway_with_an_error: Attack {
        name: "preface + random bytes (seed 1)", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::H2 { pieces: vec![preface_then_random_bytes(1)], pause: Duration::ZERO },
        answer: Answer::GoAway { code: None, debug: None, acks: None, within: WAIT },
    },
    a_preface_then_random_bytes_2_get_goaway_with_an_error: Attack {
        name: "preface + random bytes (seed 2)", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::H2 { pieces: vec![preface_then_random_bytes(2)], pause: Duration::ZERO },
        answer: Answer::GoAway { code: None, debug: None, acks: None, within: WAIT },
    },
    a_preface_then_random_bytes_3_get_goaway_with_an_error: Attack {
        name: "preface + random bytes (seed 3)", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::H2 { pieces: vec![preface_then_random_bytes(3)], pause: Duration::ZERO },
        answer: Answer::GoAway { code: None, debug: None, acks: None, within: WAIT },
    },
    a_preface_then_random_bytes_4_get_goaway_with_an_error: Attack {
        name: "preface + random bytes (seed 4)", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::H2 { pieces: vec![preface_then_random_bytes(4)], pause: Duration::ZERO },
        answer: Answer::GoAway { code: None, debug: None, acks: None, within: WAIT },
    },
    a_preface_then_random_bytes_5_get_goaway_with_an_error: Attack {
        name: "preface + random bytes (seed 5)", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::H2 { pieces: vec![preface_then_random_bytes(5)], pause: Duration::ZERO },
        answer: Answer::GoAway { code: None, debug: None, acks: None, within: WAIT },
    },
    // More garbage than the server reads before it sees the error: it must not close with
    // the rest unread (a RST that fails the client's next write, its SETTINGS ACK, before
    // it has read the GOAWAY), but linger and read it away, as grpc-go does.
    a_preface_then_256_kib_of_random_bytes_get_goaway_and_a_lingering_close: Attack {
        name: "preface + 256 KiB of random bytes", args: &[], probe_bound: LATENCY_BOUND,
        // (The empty second piece is a pause: the server has answered before the client
        // reads.)
        input: Input::H2 { pieces: vec![preface_then_random_bytes_of(7, 256 * 1024), vec![]],
            pause: secs(0.1) },
        answer: Answer::GoAway { code: None, debug: None, acks: None, within: WAIT },
    },
    a_preface_written_byte_by_byte_is_served: Attack {
        name: "the preface byte by byte", args: &["--first-bytes-timeout", "30s"],
        probe_bound: LATENCY_BOUND,
        input: Input::H2 { pieces: preface_byte_by_byte_then_settings(), pause: secs(0.005) },
        answer: Answer::SettingsThenServed,
    },
    a_piece_of_the_preface_then_something_else_is_closed: Attack {
        name: "a piece of the preface, then something else",
        args: &["--first-bytes-timeout", "30s"], probe_bound: LATENCY_BOUND,
        input: Input::Http1 { pieces: vec![b"PRI * HT".into(), b"XP/1.1\r\n\r\n".into()],
            pause: secs(0.05) },
        answer: Answer::ClosedSilently,
    },

    // --- Broken frames
    a_truncated_frame_then_eof_is_closed: Attack {
        name: "truncated frame + EOF", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::FramesThenFin(|_| truncated_headers()),
        answer: Answer::Closed(WAIT),
    },
    a_frame_over_max_frame_size_gets_goaway_frame_size_error: Attack {
        name: "frame of 16385 bytes", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Frames(|_| encode_all([data(vec![0; h2raw::DEFAULT_MAX_FRAME_SIZE + 1])])),
        answer: Answer::GoAway { code: Some(FRAME_SIZE_ERROR), debug: None, acks: None,
            within: WAIT },
    },

    // --- Floods
    a_ping_flood_gets_goaway_enhance_your_calm_too_many_pings: Attack {
        name: "1000 PINGs", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Frames(|_| encode_all((0..1000).map(ping))),
        // One PING is fine, two strikes are tolerated, the third is one too many: every
        // PING is ACKed first, then judged (grpc-go's handlePing).
        answer: Answer::GoAway { code: Some(ENHANCE_YOUR_CALM), debug: Some("too_many_pings"),
            acks: Some(4), within: WAIT },
    },
    a_settings_flood_is_acked_one_by_one_and_the_connection_stays_usable: Attack {
        name: "10000 SETTINGS", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Frames(|_| encode_all((0..10_000).map(|_| settings()))),
        // Every SETTINGS of ours (the handshake's and the flood) gets exactly one ACK: h2
        // holds one unacknowledged SETTINGS at a time and stops reading until it has
        // written the ACK, so the flood costs the server nothing but that.
        answer: Answer::SettingsAckedThenServed { acks: 10_000 + 1, within: secs(20.0) },
    },
    a_rapid_reset_flood_gets_goaway_enhance_your_calm: Attack {
        name: "2000 × (HEADERS, RST_STREAM)", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Frames(rapid_reset_flood),
        answer: Answer::GoAway { code: Some(ENHANCE_YOUR_CALM), debug: None, acks: None,
            within: secs(10.0) },
    },
    a_continuation_flood_gets_goaway_enhance_your_calm: Attack {
        name: "HEADERS + 1000 CONTINUATION", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Frames(continuation_flood),
        answer: Answer::GoAway { code: Some(ENHANCE_YOUR_CALM), debug: None, acks: None,
            within: WAIT },
    },
    a_window_update_flood_is_absorbed: Attack {
        name: "10000 WINDOW_UPDATE(+1)", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Frames(|_| encode_all((0..10_000).map(|_| window_update(1)))),
        answer: Answer::Served,
    },
    // A window past 2^31-1 is a connection error (RFC 9113 §6.9.1).
    a_window_past_2_31_after_the_flood_gets_goaway_flow_control_error: Attack {
        name: "10000 WINDOW_UPDATE(+1), then +2^31-1", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Frames(|_| {
            encode_all((0..10_000).map(|_| window_update(1)).chain([window_update(0x7fff_ffff)]))
        }),
        answer: Answer::GoAway { code: Some(FLOW_CONTROL_ERROR), debug: None, acks: None,
            within: WAIT },
    },

    // --- gRPC-web framing and content types
    grpc_web_prefix_longer_than_the_body_gets_a_grpc_error: Attack {
        name: "gRPC-web prefix announces 100 bytes, body has 3", args: &[],
        probe_bound: LATENCY_BOUND,
        input: grpc_web("application/grpc-web+proto", &[0, 0, 0, 0, 100, 1, 2, 3]),
        answer: Answer::GrpcError,
    },
    grpc_web_half_a_prefix_gets_a_grpc_error: Attack {
        name: "gRPC-web 4 bytes: half a prefix", args: &[], probe_bound: LATENCY_BOUND,
        input: grpc_web("application/grpc-web+proto", &[0, 0, 0, 0]),
        answer: Answer::GrpcError,
    },
    grpc_web_compressed_flag_without_grpc_encoding_gets_a_grpc_error: Attack {
        name: "gRPC-web compressed flag without grpc-encoding", args: &[],
        probe_bound: LATENCY_BOUND,
        input: grpc_web("application/grpc-web+proto", &[1, 0, 0, 0, 0]),
        answer: Answer::GrpcError,
    },
    grpc_web_text_bad_base64_gets_a_grpc_error: Attack {
        name: "gRPC-web bad base64", args: &[], probe_bound: LATENCY_BOUND,
        input: grpc_web("application/grpc-web-text", b"!!!!****"),
        answer: Answer::GrpcError,
    },
    grpc_web_text_base64_of_a_cut_length_gets_a_grpc_error: Attack {
        name: "gRPC-web base64 of a cut length", args: &[], probe_bound: LATENCY_BOUND,
        input: grpc_web("application/grpc-web-text", b"AAAAA"),
        answer: Answer::GrpcError,
    },
    // Not gRPC-web: 400 from tonic-web.
    http1_post_with_a_wrong_content_type_gets_400: Attack {
        name: "HTTP/1.1 POST text/plain", args: &[], probe_bound: LATENCY_BOUND,
        input: grpc_web("text/plain", &[0, 0, 0, 0, 0]),
        answer: Answer::Http(400),
    },
    http1_get_of_a_grpc_path_gets_405: Attack {
        name: "HTTP/1.1 GET of a gRPC path", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Request { method: "GET",
            headers: vec![("content-type", "application/grpc-web+proto")], body: b"" },
        answer: Answer::Http(405),
    },
    // tonic does not look at the request's content type; the body is not gRPC framing,
    // so the call fails with a status.
    http2_application_json_to_a_grpc_path_gets_grpc_status_internal: Attack {
        name: "HTTP/2 application/json", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::H2Request { content_type: "application/json", body: b"{}" },
        answer: Answer::GrpcStatus("13"),
    },

    // --- Oversized headers
    // hyper reads at most ~400 KB of head.
    a_1_mb_http1_header_gets_431: Attack {
        name: "HTTP/1.1 1 MB header", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Http1 { pieces: vec![http1_big_header()], pause: Duration::ZERO },
        answer: Answer::Http(431),
    },
    // Far over the 16 KB SETTINGS_MAX_HEADER_LIST_SIZE, h2 treats it as abuse of the
    // connection (a little over, it would answer the stream alone).
    a_64_kb_http2_header_list_gets_goaway_enhance_your_calm: Attack {
        name: "HTTP/2 64 KB header list", args: &[], probe_bound: LATENCY_BOUND,
        input: Input::Frames(h2_big_header_list),
        answer: Answer::GoAwayFirst(ENHANCE_YOUR_CALM, "header_list_way_too_large"),
    },
}

// --- What the rows send ---------------------------------------------------------------

/// 512 random bytes, the first not 'P' (so not an HTTP/2 preface), nor a method token.
fn not_a_preface() -> Vec<u8> {
    let mut bytes = random_bytes(6, 512);
    bytes[0] = 0x16;
    bytes
}

/// The HTTP/2 preface, then 2 KiB of random bytes.
fn preface_then_random_bytes(seed: u64) -> Vec<u8> {
    preface_then_random_bytes_of(seed, 2048)
}

/// The HTTP/2 preface, then `len` random bytes.
fn preface_then_random_bytes_of(seed: u64, len: usize) -> Vec<u8> {
    let mut bytes = h2raw::PREFACE.to_vec();
    bytes.extend(random_bytes(seed, len));
    bytes
}

/// The preface one byte at a time, then our (empty) SETTINGS.
fn preface_byte_by_byte_then_settings() -> Vec<Vec<u8>> {
    let mut pieces: Vec<Vec<u8>> = h2raw::PREFACE.iter().map(|b| vec![*b]).collect();
    pieces.push(settings().encode().to_vec());
    pieces
}

/// A HEADERS frame that announces 100 bytes and carries 10.
fn truncated_headers() -> Vec<u8> {
    let mut bytes = vec![0, 0, 100, Frame::HEADERS, Frame::END_HEADERS, 0, 0, 0, 1];
    bytes.extend([0x82; 10]);
    bytes
}

/// 2000 streams, each opened (HEADERS of a Watch) and cancelled at once (RST_STREAM).
fn rapid_reset_flood(authority: &str) -> Vec<u8> {
    let headers = h2raw::encode_headers(&h2raw::grpc_request_headers(authority, WATCH));
    let cancel = error_code::CANCEL.to_be_bytes().to_vec();
    encode_all((0..2000u32).map(|i| 1 + 2 * i).flat_map(|id| {
        [
            Frame::new(Frame::HEADERS, Frame::END_HEADERS, id, headers.clone()),
            Frame::new(Frame::RST_STREAM, 0, id, cancel.clone()),
        ]
    }))
}

/// HEADERS without END_HEADERS, then 1000 empty CONTINUATIONs that never end the block.
fn continuation_flood(authority: &str) -> Vec<u8> {
    let headers = h2raw::encode_headers(&h2raw::grpc_request_headers(authority, CHECK));
    let headers = Frame::new(Frame::HEADERS, 0, 1, headers);
    let continuations = (0..1000).map(|_| Frame::new(Frame::CONTINUATION, 0, 1, Vec::new()));
    encode_all(std::iter::once(headers).chain(continuations))
}

fn data(payload: Vec<u8>) -> Frame {
    Frame::new(Frame::DATA, 0, 1, payload)
}

fn ping(data: u64) -> Frame {
    Frame::new(Frame::PING, 0, 0, data.to_be_bytes().to_vec())
}

fn settings() -> Frame {
    Frame::new(Frame::SETTINGS, 0, 0, Vec::new())
}

/// Of the connection's window.
fn window_update(increment: u32) -> Frame {
    Frame::new(Frame::WINDOW_UPDATE, 0, 0, increment.to_be_bytes().to_vec())
}

fn http1_big_header() -> Vec<u8> {
    let big = "x".repeat(1 << 20);
    format!("POST {CHECK} HTTP/1.1\r\nhost: x\r\nx-big: {big}\r\n\r\n").into_bytes()
}

/// A request with a 64 KB header, in HEADERS and CONTINUATION frames.
fn h2_big_header_list(authority: &str) -> Vec<u8> {
    let mut headers = h2raw::grpc_request_headers(authority, CHECK);
    headers.push(("x-big".into(), "y".repeat(64 << 10)));
    let block = h2raw::encode_headers(&headers);
    let chunks: Vec<_> = block.chunks(h2raw::DEFAULT_MAX_FRAME_SIZE).collect();
    let last = chunks.len() - 1;
    encode_all(chunks.iter().enumerate().map(|(i, chunk)| {
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
    }))
}

/// A gRPC-web call of Health/Check over HTTP/1.1 with this content type and body.
fn grpc_web(content_type: &'static str, body: &'static [u8]) -> Input {
    let headers = vec![("content-type", content_type), ("x-grpc-web", "1")];
    Input::Request {
        method: "POST",
        headers,
        body,
    }
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

// --- Not rows: many connections, or a dribble timed -----------------------------------

#[tokio::test]
async fn pieces_of_the_preface_that_stop_cost_no_cpu() {
    let args = ["--first-bytes-timeout", "30s"];
    with_probe(
        "1000 stopped prefaces",
        &args,
        LATENCY_BOUND,
        |srv| async move {
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
            let used = (cpu_seconds(srv.pid()) - before) / 2.0 * 100.0;
            eprintln!("ANSWER 1000 connections that sent `PRI`: server CPU {used:.0}% of a core");
            assert!(used < 20.0, "the server spent {used:.0}% of a core on them");
            drop(idle);
            srv
        },
    )
    .await;
}

/// CPU seconds (user + system) the process `pid` has used, from `/proc`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap_or(0) + 2..]
        .split_whitespace()
        .collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here); the
    // kernel's USER_HZ is 100 on Linux.
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / 100.0
}

#[tokio::test]
async fn a_slowloris_client_is_closed_after_the_header_read_timeout() {
    let args = ["--http1-header-read-timeout", "1s"];
    with_probe("slowloris", &args, LATENCY_BOUND, |srv| async move {
        let mut sock = TcpStream::connect(srv.addr()).await.expect("connect");
        let head = format!("POST {CHECK} HTTP/1.1\r\n");
        sock.write_all(head.as_bytes()).await.expect("send");
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
        let answered = got.len();
        eprintln!("ANSWER slowloris: closed after {closed_at:?}, {answered} bytes answered");
        let in_time = closed_at >= secs(0.9) && closed_at <= secs(3.0);
        assert!(in_time, "closed after {closed_at:?}");
        let sample = r#"keepalive_connections_closed_total{reason="http1_header_read_timeout"}"#;
        srv.assert_metric(sample, 1.0).await;
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
    with_probe(
        "2000 idle connections",
        &args,
        LATENCY_BOUND,
        |srv| async move {
            let addr = srv.addr();
            let t = Instant::now();
            let connects = (0..N).map(|_| {
                let connect = tokio::time::timeout(secs(15.0), TcpStream::connect(addr));
                tokio::spawn(connect)
            });
            let mut socks = Vec::with_capacity(N);
            for c in connects.collect::<Vec<_>>() {
                match c.await.expect("join") {
                    Ok(Ok(s)) => socks.push(s),
                    other => panic!("connection {} failed: {other:?}", socks.len()),
                }
            }
            eprintln!(
                "ANSWER {N} idle connections: connected in {:?}",
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
                "ANSWER {N} idle connections: all closed after {:?}",
                t.elapsed()
            );
            // The server counted them as closed for that reason, not for any other.
            let sample = r#"keepalive_connections_closed_total{reason="first_bytes_timeout"}"#;
            let closed = srv
                .wait_for_metric(sample, |v| v >= N as f64, secs(5.0))
                .await;
            assert_eq!(closed, Ok(N as f64));
            srv
        },
    )
    .await;
}
