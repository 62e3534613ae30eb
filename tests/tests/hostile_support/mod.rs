//! The runner of `hostile.rs`'s table: what a row is ([`Attack`]: [`Input`], [`Answer`]),
//! how it runs against a fresh server with the probe watching ([`run`], [`with_probe`]),
//! and how the bad client's answer is read and checked (HTTP/1.1, HTTP/2 frames, gRPC-web
//! and gRPC replies). The rows themselves, and what they send, are in `hostile.rs`.

#![allow(dead_code)] // The table decides what is used.

use std::net::SocketAddr;
use std::time::Duration;
use testkit::ServerProcess;
use tests::h2raw::{self, Frame, GoAway, RawH2, error_code};
use tests::http1::Http1;
use tests::probe::Probe;
use tokio::net::TcpStream;
use tokio::time::Instant;

pub const CHECK: &str = "/grpc.health.v1.Health/Check";
pub const WATCH: &str = "/grpc.health.v1.Health/Watch";
/// Probe calls a test must see at least (so "no error" means something).
pub const MIN_PROBE_CALLS: usize = 10;
/// How long the bad client waits for each part of its answer, unless the row says.
pub const WAIT: Duration = Duration::from_secs(5);

pub fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

// --- The row and its runner -----------------------------------------------------------

/// One attack: a row of the table (see the module docs).
pub struct Attack {
    pub name: &'static str,
    pub args: &'static [&'static str],
    pub probe_bound: Duration,
    pub input: Input,
    pub answer: Answer,
}

/// What the bad client sends, on a TCP connection of its own. A write cut short because
/// the server closed is not an error by itself: the answer says whether a close is right.
pub enum Input {
    /// `pieces` are the first bytes of the connection, `pause` between two; the answer is
    /// read as HTTP/1.1.
    Http1 {
        pieces: Vec<Vec<u8>>,
        pause: Duration,
    },
    /// The same, the answer read as HTTP/2 frames (no handshake of ours: the bytes hold a
    /// preface or not).
    H2 {
        pieces: Vec<Vec<u8>>,
        pause: Duration,
    },
    /// After a complete HTTP/2 handshake (preface, SETTINGS both ways), in one write, the
    /// bytes made for the `:authority` of requests (the server's address).
    Frames(fn(&str) -> Vec<u8>),
    /// The same (all of it written), then our side of the connection closed (FIN).
    FramesThenFin(fn(&str) -> Vec<u8>),
    /// An HTTP/1.1 request for Health/Check (`host` and `content-length` added).
    Request {
        method: &'static str,
        headers: Vec<(&'static str, &'static str)>,
        body: &'static [u8],
    },
    /// An HTTP/2 POST of Health/Check through a real client (h2), with any content type.
    H2Request {
        content_type: &'static str,
        body: &'static [u8],
    },
}

/// What must come back on the bad client's connection.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// This HTTP status, within [`WAIT`].
    Http(u16),
    /// This HTTP status, then the close, each within [`WAIT`].
    HttpThenClose(u16),
    /// The close within [`WAIT`], without a byte before it.
    ClosedSilently,
    /// The close within this long, whatever came before it.
    Closed(Duration),
    /// HTTP 200 and a grpc-status other than 0 (OK), in the headers or the trailers.
    GrpcError,
    /// HTTP 200 and this grpc-status, in the headers or the trailers.
    GrpcStatus(&'static str),
    /// A GOAWAY, then the close, within `within`. The GOAWAY has `code` (`None`: any error
    /// code but NO_ERROR) and, if given, the `debug` text; if `acks` is given, exactly that
    /// many PING ACKs came before the close.
    GoAway {
        code: Option<u32>,
        debug: Option<&'static str>,
        acks: Option<usize>,
        within: Duration,
    },
    /// The first frame about stream 1 or the whole connection (within [`WAIT`]) is a GOAWAY
    /// with this code and debug text: the stream is not answered alone.
    GoAwayFirst(u32, &'static str),
    /// The connection is served: a PING of ours is ACKed within [`WAIT`], no GOAWAY before.
    Served,
    /// The server's SETTINGS within [`WAIT`] (ours were in the input), then [`Answer::Served`].
    SettingsThenServed,
    /// `acks` ACKs of SETTINGS, all within `within` and each within [`WAIT`] of the one
    /// before, no GOAWAY among them (our side ACKs nothing meanwhile); then
    /// [`Answer::Served`].
    SettingsAckedThenServed { acks: usize, within: Duration },
}

/// The bad client's connection once its input is sent.
#[derive(Debug)]
pub enum Conn {
    /// HTTP/1.1, with the content type of the request (gRPC-web text or binary).
    Http1(Http1, &'static str),
    H2(RawH2),
    /// The h2 client's whole answer.
    Replied(Reply),
}

/// A gRPC answer: HTTP status, grpc-status and grpc-message.
#[derive(Debug)]
pub struct Reply {
    pub http: u16,
    pub grpc_status: Option<String>,
    pub grpc_message: String,
}

/// Runs one row: a fresh server, the probe, the input, the answer checked.
pub async fn run(row: Attack) {
    with_probe(row.name, row.args, row.probe_bound, |srv| async move {
        let conn = send(row.input, srv.addr()).await;
        check(row.name, row.answer, conn).await;
        srv
    })
    .await;
}

/// One hostile test at a time (see the module docs).
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs `bad` against a fresh server started with `args`, with the probe watching, and
/// asserts afterwards that the server runs, did not panic, and the probe saw no error and
/// no call over `bound`. The probe keeps going for 0.5 s after `bad` returns (so a delayed
/// effect would show).
pub async fn with_probe<F, Fut>(what: &str, args: &[&str], bound: Duration, bad: F)
where
    F: FnOnce(ServerProcess) -> Fut,
    Fut: std::future::Future<Output = ServerProcess>,
{
    let _serial = SERIAL.lock().await;
    let srv = ServerProcess::start(args).await;
    let probe = Probe::start(srv.addr());
    let mut srv = bad(srv).await;
    tokio::time::sleep(secs(0.5)).await;
    let report = probe.finish();
    let log = srv.logs_text();
    assert!(srv.is_running(), "{what}: the server died:\n{log}");
    assert_eq!(srv.log_count("panicked"), 0, "{what}: a panic:\n{log}");
    report.assert_healthy(what, bound, MIN_PROBE_CALLS);
}

pub async fn send(input: Input, addr: SocketAddr) -> Conn {
    match input {
        Input::Http1 { pieces, pause } => {
            let mut c = Http1::connect(addr).await.expect("connect");
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(pause).await;
                }
                allow_close(c.send_raw(piece).await);
            }
            Conn::Http1(c, "")
        }
        Input::H2 { pieces, pause } => {
            let mut c = RawH2::connect(addr).await.expect("connect");
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(pause).await;
                }
                allow_close(c.send_raw(piece).await);
            }
            Conn::H2(c)
        }
        Input::Frames(bytes) => {
            let mut c = RawH2::connect_and_handshake(addr).await.expect("h2");
            allow_close(c.send_raw(&bytes(c.authority())).await);
            Conn::H2(c)
        }
        Input::FramesThenFin(bytes) => {
            let mut c = RawH2::connect_and_handshake(addr).await.expect("h2");
            c.send_raw(&bytes(c.authority())).await.expect("send");
            c.shutdown_write().await.expect("fin");
            Conn::H2(c)
        }
        Input::Request {
            method,
            headers,
            body,
        } => {
            let mut c = Http1::connect(addr).await.expect("connect");
            c.send(method, CHECK, &headers, body).await.expect("send");
            let content_type = headers.iter().find(|(n, _)| *n == "content-type");
            Conn::Http1(c, content_type.map_or("", |(_, v)| v))
        }
        Input::H2Request { content_type, body } => {
            Conn::Replied(h2_call(addr, content_type, body).await)
        }
    }
}

/// A write error is fine if the server closed (it may, before all of the input is in).
pub fn allow_close(sent: std::io::Result<()>) {
    if let Err(e) = sent {
        assert!(h2raw::is_closed_error(&e), "send: {e}");
    }
}

/// Checks `answer` on `conn` and prints the `ANSWER` line.
pub async fn check(name: &str, answer: Answer, conn: Conn) {
    match (answer, conn) {
        (Answer::Http(want) | Answer::HttpThenClose(want), Conn::Http1(mut c, _)) => {
            let res = c.read_head(WAIT).await.expect("an HTTP answer");
            eprintln!("ANSWER {name}: HTTP {} {:?}", res.status, res.headers);
            assert_eq!(res.status, want, "{name}: {res:?}");
            if matches!(answer, Answer::HttpThenClose(_)) {
                let closed = c.expect_closed(WAIT).await;
                closed.expect("closed after the answer");
            }
        }
        (Answer::ClosedSilently, Conn::Http1(mut c, _)) => {
            let before = c.expect_closed(WAIT).await;
            eprintln!("ANSWER {name}: closed; bytes before: {before:?}");
            let silent = matches!(&before, Ok(b) if b.is_empty());
            assert!(silent, "{name}: {before:?}");
        }
        (Answer::Closed(within), Conn::H2(mut c)) => {
            let t = Instant::now();
            let frames = c.expect_closed(within).await.expect("closed");
            let took = t.elapsed();
            eprintln!("ANSWER {name}: closed after {took:?}, frames {frames:?}");
        }
        (Answer::GrpcError | Answer::GrpcStatus(_), conn) => {
            let reply = match conn {
                Conn::Http1(c, content_type) => grpc_web_reply(c, content_type).await,
                Conn::Replied(reply) => reply,
                Conn::H2(c) => panic!("{name}: a row error: a gRPC answer on {c:?}"),
            };
            eprintln!("ANSWER {name}: {reply:?}");
            assert_eq!(reply.http, 200, "{name}");
            let code = reply.grpc_status.as_deref();
            let code = code.unwrap_or_else(|| panic!("{name}: no grpc-status"));
            let message = &reply.grpc_message;
            match answer {
                Answer::GrpcStatus(want) => assert_eq!(code, want, "{name}: {message}"),
                _ => assert_ne!(code, "0", "{name}: accepted? {message}"),
            }
        }
        (
            Answer::GoAway {
                code,
                debug,
                acks: want_acks,
                within,
            },
            Conn::H2(mut c),
        ) => {
            let (frames, goaway) = goaway_then_close(&mut c, within).await;
            let acks = frames.iter().filter(|f| f.is_ping_ack()).count();
            eprintln!("ANSWER {name}: {acks} PING ACKs, then {goaway:?}, then close");
            let error = goaway.error_code;
            match code {
                Some(code) => assert_eq!(error, code, "{name}: {goaway:?}"),
                None => assert_ne!(error, error_code::NO_ERROR, "{name}: {goaway:?}"),
            }
            if let Some(debug) = debug {
                assert_eq!(goaway.debug_str(), debug, "{name}");
            }
            if let Some(want) = want_acks {
                assert_eq!(acks, want, "{name}: {frames:?}");
            }
        }
        (Answer::GoAwayFirst(code, debug), Conn::H2(mut c)) => {
            let first = |f: &Frame| f.stream_id == 1 || f.goaway().is_some();
            let (seen, answer) = c.read_until(WAIT, first).await.expect("read");
            let answer = answer.unwrap_or_else(|| panic!("{name}: no answer: {seen:?}"));
            eprintln!("ANSWER {name}: {answer:?}");
            let goaway = answer.goaway();
            let goaway = goaway.unwrap_or_else(|| panic!("{name}: {answer:?}"));
            let got = (goaway.error_code, goaway.debug_str());
            assert_eq!(got, (code, debug.to_string()), "{name}");
        }
        (Answer::Served, Conn::H2(mut c)) => assert_served(name, &mut c).await,
        (Answer::SettingsThenServed, Conn::H2(mut c)) => {
            let (seen, settings) = c.read_until(WAIT, Frame::is_settings).await.expect("read");
            assert!(settings.is_some(), "{name}: no SETTINGS: {seen:?}");
            assert_served(name, &mut c).await;
        }
        (Answer::SettingsAckedThenServed { acks: want, within }, Conn::H2(mut c)) => {
            c.set_auto_ack_settings(false);
            let mut acks = 0;
            let deadline = Instant::now() + within;
            while acks < want && Instant::now() < deadline {
                match c.read_frame(WAIT).await.expect("read") {
                    Some(f) if f.is_settings_ack() => acks += 1,
                    Some(f) => assert!(f.goaway().is_none(), "{name}: a GOAWAY: {f:?}"),
                    None => break,
                }
            }
            eprintln!("ANSWER {name}: {acks} SETTINGS ACKs");
            assert_eq!(acks, want, "{name}");
            assert_served(name, &mut c).await;
        }
        (answer, conn) => panic!("{name}: a row error: {answer:?} is not read on {conn:?}"),
    }
}

/// Reads until the server closes; returns the GOAWAY it sent (panics if none).
pub async fn goaway_then_close(c: &mut RawH2, within: Duration) -> (Vec<Frame>, GoAway) {
    let frames = c.expect_closed(within).await.expect("closed");
    let goaway = frames.iter().rev().find_map(Frame::goaway);
    let goaway = goaway.unwrap_or_else(|| panic!("no GOAWAY before the close: {frames:?}"));
    (frames, goaway)
}

/// A PING of ours is ACKed within [`WAIT`], with no GOAWAY before the ACK.
pub async fn assert_served(name: &str, c: &mut RawH2) {
    c.ping(*b"still-ok").await.expect("ping");
    let is_ack = |f: &Frame| f.ping_data() == Some(*b"still-ok");
    let (seen, ack) = c.read_until(WAIT, is_ack).await.expect("read");
    eprintln!("ANSWER {name}: PING ACK {ack:?}, after {seen:?}");
    assert!(ack.is_some(), "{name}: no PING ACK: {seen:?}");
    let no_goaway = seen.iter().all(|f| f.goaway().is_none());
    assert!(no_goaway, "{name}: {seen:?}");
}

// --- Reading a gRPC answer ------------------------------------------------------------

/// The gRPC answer to the gRPC-web request sent on `c`: from the headers (trailers-only) or
/// the body's trailer frame (base64 in `grpc-web-text`).
pub async fn grpc_web_reply(mut c: Http1, content_type: &str) -> Reply {
    let res = c.read_head(WAIT).await.expect("response");
    let reply = |grpc_status: Option<&str>, grpc_message: &str| Reply {
        http: res.status,
        grpc_status: grpc_status.map(str::to_string),
        grpc_message: grpc_message.to_string(),
    };
    if let Some(code) = res.header("grpc-status") {
        return reply(Some(code), res.header("grpc-message").unwrap_or_default());
    }
    if res.status != 200 {
        return reply(None, "");
    }
    let text_mode = content_type.contains("text");
    let text = if text_mode {
        let body = c.read_until(b"\r\n0\r\n\r\n", WAIT).await;
        decode_text_body(&body.expect("trailers"))
    } else {
        let mut body = c.read_until(b"grpc-status:", WAIT).await.expect("trailers");
        body.extend(c.read_until(b"\r\n", WAIT).await.expect("status line"));
        String::from_utf8_lossy(&body).into_owned()
    };
    let field = |name: &str| {
        let value = text.split(name).nth(1)?.split("\r\n").next()?;
        Some(value.trim().to_string())
    };
    let message = field("grpc-message:").unwrap_or_default();
    reply(field("grpc-status:").as_deref(), &message)
}

/// The decoded text of a chunked `grpc-web-text` body (base64 chunks).
pub fn decode_text_body(chunked: &[u8]) -> String {
    let text = String::from_utf8_lossy(chunked);
    let b64: String = text.split("\r\n").skip(1).step_by(2).collect();
    let mut out = Vec::new();
    for part in b64.split_inclusive('=').filter(|p| !p.is_empty()) {
        out.extend(base64_decode(part));
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A small standard-alphabet base64 decoder (test side only; padding tolerated).
pub fn base64_decode(s: &str) -> Vec<u8> {
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

/// A POST of Health/Check over a real HTTP/2 client (h2) with any content type; the answer
/// from the headers (trailers-only) or the trailers.
pub async fn h2_call(addr: SocketAddr, content_type: &str, body: &'static [u8]) -> Reply {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    let driver = tokio::spawn(conn);
    let mut client = client.ready().await.expect("ready");
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{CHECK}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(())
        .expect("request");
    let (response, mut send) = client.send_request(req, false).expect("send");
    send.send_data(bytes::Bytes::from_static(body), true)
        .expect("data");
    let response = tokio::time::timeout(WAIT, response).await;
    let response = response.expect("answer in time").expect("response");
    let http = response.status().as_u16();
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
    let get = |name: &str| Some(headers.get(name)?.to_str().ok()?.to_string());
    Reply {
        http,
        grpc_status: get("grpc-status"),
        grpc_message: get("grpc-message").unwrap_or_default(),
    }
}
