//! Fuzzing on stable Rust: proptest-driven harnesses for the parts that read bytes an
//! attacker chooses.
//!
//! - `observer_incoming`: the client-to-server frame observer (`Incoming::scan`) on
//!   arbitrary byte streams cut into arbitrary reads. Never panics; h2 gets exactly the
//!   client's bytes minus our own keepalive PING ACKs (checked against a small reference
//!   parser); every client PING and HEADERS is reported once.
//! - `observer_outgoing`: the server-to-client half (`Outgoing::accept/inject/send`) on
//!   arbitrary h2 frame sequences, write cuts, partial socket writes, injected PINGs, drain
//!   debug data and a too-many-pings verdict at any ACK. The wire carries whole frames:
//!   h2's in order (graceful GOAWAYs with the drain reason), ours only between them, and
//!   after a too-many-pings ACK nothing but the GOAWAY. Arbitrary bytes never panic.
//! - `grpc_message_scanner`: the message-size limit's prefix scanner on arbitrary bytes.
//! - `server_wire`: arbitrary byte streams (junk, HTTP/1.1 gRPC-web requests with arbitrary
//!   bodies, content types and base64, HTTP/2 with arbitrary frames) sent to a real server
//!   running in this process over loopback: every connection is answered or closed within
//!   5 s of the client's FIN, and no server task panics.
//!
//! Each harness prints `FUZZ <name>: N executions in T, 0 findings` (or panics with the
//! shrunk input: a finding). `PROPTEST_CASES` sets the cases per batch;
//! `KEEPALIVE_FUZZ_SECONDS` keeps running batches until that many seconds have passed
//! (`cargo xtask fuzz --seconds N` sets both).

use keepalive_server::conn::frame::{self, FrameHeader, HEADER_LEN, KEEPALIVE_PING, PREFACE};
use keepalive_server::conn::incoming::{Incoming, Watcher};
use keepalive_server::conn::outgoing::{Judge, Outgoing, Sink};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::time::{Duration, Instant};

/// Runs `property` over inputs from `strategy`, in batches, and reports.
fn fuzz<S>(
    name: &str,
    default_cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let seconds: f64 = env("KEEPALIVE_FUZZ_SECONDS")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let cases: u32 = env("PROPTEST_CASES")
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_cases);
    let executions = Cell::new(0u64);
    let start = Instant::now();
    loop {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&strategy, |v| {
            executions.set(executions.get() + 1);
            property(v)
        });
        if let Err(e) = result {
            eprintln!(
                "FUZZ {name}: FINDING after {} executions: {e}",
                executions.get()
            );
            panic!("fuzz {name}: {e}");
        }
        if start.elapsed().as_secs_f64() >= seconds {
            break;
        }
    }
    eprintln!(
        "FUZZ {name}: {} executions in {:.1?}, 0 findings",
        executions.get(),
        start.elapsed()
    );
}

// --- Frames as an attacker writes them -------------------------------------------------

/// One piece of a client byte stream.
#[derive(Clone, Debug)]
enum Piece {
    /// A frame with a correct length (any type, flags, stream, payload).
    Frame(u8, u8, u32, Vec<u8>),
    /// The ACK of one of our keepalive PINGs (the observer must take it out).
    OurAck,
    /// A PING with our payload but not an ACK (must pass).
    OurPayloadNotAck,
    /// Any bytes (they shift every frame header after them).
    Junk(Vec<u8>),
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        6 => (0u8..12, any::<u8>(), 0u32..8, proptest::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(k, f, s, p)| Piece::Frame(k, f, s, p)),
        2 => (any::<u8>(), proptest::collection::vec(any::<u8>(), 8..=8))
            .prop_map(|(f, p)| Piece::Frame(frame::PING, f, 0, p)),
        2 => Just(Piece::OurAck),
        1 => Just(Piece::OurPayloadNotAck),
        1 => proptest::collection::vec(any::<u8>(), 1..12).prop_map(Piece::Junk),
    ]
}

fn encode(pieces: &[Piece]) -> Vec<u8> {
    let mut b = PREFACE.to_vec();
    for p in pieces {
        match p {
            Piece::Frame(k, f, s, payload) => b.extend(frame::frame(*k, *f, *s, payload)),
            Piece::OurAck => b.extend(frame::ping(true, KEEPALIVE_PING)),
            Piece::OurPayloadNotAck => b.extend(frame::ping(false, KEEPALIVE_PING)),
            Piece::Junk(j) => b.extend_from_slice(j),
        }
    }
    b
}

/// What the incoming observer must do with `input` (a reference parser, written for
/// clarity): pass everything but whole PING ACK frames carrying our payload, reporting
/// whole client PINGs and every HEADERS header.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seen {
    out: Vec<u8>,
    pings: usize,
    acks: usize,
    headers: Vec<u32>,
}

fn reference_incoming(input: &[u8]) -> Seen {
    let mut seen = Seen::default();
    let pre = input.len().min(PREFACE.len());
    seen.out.extend_from_slice(&input[..pre]);
    let mut pos = pre;
    while let Some(h) = input.get(pos..).and_then(FrameHeader::parse) {
        let end = pos.saturating_add(h.frame_len());
        if h.kind == frame::PING && h.len == 8 {
            if end > input.len() {
                break; // held until EOF, then passed as it is
            }
            let ack = h.flags & frame::FLAG_ACK != 0;
            if ack && input[pos + HEADER_LEN..end] == KEEPALIVE_PING {
                seen.acks += 1;
                pos = end;
                continue;
            }
            if !ack {
                seen.pings += 1;
            }
        }
        if h.kind == frame::HEADERS {
            seen.headers.push(h.stream_id);
        }
        seen.out
            .extend_from_slice(&input[pos..end.min(input.len())]);
        pos = end;
    }
    if pos < input.len() {
        seen.out.extend_from_slice(&input[pos..]);
    }
    seen
}

#[derive(Default)]
struct Counting {
    pings: usize,
    acks: usize,
    headers: Vec<u32>,
}

impl Watcher for Counting {
    fn headers(&mut self, stream_id: u32) {
        self.headers.push(stream_id);
    }
    fn ping(&mut self) {
        self.pings += 1;
    }
    fn keepalive_ack(&mut self) {
        self.acks += 1;
    }
}

/// Feeds `input` to an [`Incoming`] in reads of `reads` sizes, taking into buffers of
/// `takes` sizes between reads, then EOF.
fn run_incoming(input: &[u8], reads: &[usize], takes: &[usize]) -> Seen {
    let mut inc = Incoming::default();
    let mut w = Counting::default();
    let mut out = Vec::new();
    let mut rest = input;
    let mut reads = reads.iter().copied().cycle();
    let mut takes = takes.iter().copied().cycle();
    let mut drain = |inc: &mut Incoming, out: &mut Vec<u8>| loop {
        let mut dst = vec![0u8; takes.next().unwrap_or(1).max(1)];
        let mut buf = tokio::io::ReadBuf::new(&mut dst);
        let n = inc.take(&mut buf);
        if n == 0 {
            break;
        }
        assert_eq!(buf.filled().len(), n);
        out.extend_from_slice(&dst[..n]);
    };
    while !rest.is_empty() {
        let n = reads.next().unwrap_or(1).clamp(1, rest.len());
        inc.read_buf(n).extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        inc.scan(&mut w);
        drain(&mut inc, &mut out);
    }
    inc.set_eof();
    drain(&mut inc, &mut out);
    Seen {
        out,
        pings: w.pings,
        acks: w.acks,
        headers: w.headers,
    }
}

#[test]
fn observer_incoming() {
    let strategy = (
        prop_oneof![
            4 => proptest::collection::vec(piece(), 0..24).prop_map(|p| encode(&p)),
            1 => proptest::collection::vec(any::<u8>(), 0..300),
        ],
        proptest::collection::vec(1usize..64, 1..8),
        proptest::collection::vec(1usize..64, 1..8),
    );
    fuzz(
        "observer_incoming",
        2000,
        strategy,
        |(input, reads, takes)| {
            let got = run_incoming(&input, &reads, &takes);
            let want = reference_incoming(&input);
            prop_assert_eq!(got, want);
            Ok(())
        },
    );
}

// --- The outgoing half ---------------------------------------------------------------

/// Says "too many pings" at the `at`-th PING ACK written; records GOAWAYs.
struct Verdicts {
    at: Option<usize>,
    acks: usize,
    goaways: usize,
}

impl Judge for Verdicts {
    fn data_sent(&mut self) {}
    fn ping_acked(&mut self) -> Option<u32> {
        self.acks += 1;
        (Some(self.acks) == self.at).then_some(3)
    }
    fn goaway_sent(&mut self, _: frame::GoAwayFields, _: &[u8]) {
        self.goaways += 1;
    }
}

/// A socket that takes `chunks` bytes per write in turn (0 = would block).
struct Wire {
    out: RefCell<Vec<u8>>,
    chunks: Vec<usize>,
    turn: Cell<usize>,
}

impl Sink for Wire {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        let t = self.turn.get();
        self.turn.set(t + 1);
        let n = self.chunks[t % self.chunks.len()].min(buf.len());
        if n == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        self.out.borrow_mut().extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

/// A frame h2 might write.
fn h2_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (0u8..10, any::<u8>(), 0u32..9, proptest::collection::vec(any::<u8>(), 0..300))
            .prop_filter("not our PING", |(k, f, _, p)| {
                !(*k == frame::PING && f & frame::FLAG_ACK == 0 && p[..] == KEEPALIVE_PING)
            })
            .prop_map(|(k, f, s, p)| frame::frame(k, f, s, &p)),
        2 => proptest::collection::vec(any::<u8>(), 8..=8)
            .prop_map(|p| frame::frame(frame::PING, frame::FLAG_ACK, 0, &p)),
        1 => (0u32..9, prop_oneof![Just(0u32), 0u32..14], proptest::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(last, code, debug)| frame::goaway(last, code, &debug)),
    ]
}

fn split_frames(mut b: &[u8]) -> Result<Vec<(FrameHeader, Vec<u8>)>, String> {
    let mut v = Vec::new();
    while !b.is_empty() {
        let h = FrameHeader::parse(b).ok_or("a partial frame header on the wire")?;
        if b.len() < h.frame_len() {
            return Err(format!("a partial frame on the wire: {h:?}"));
        }
        v.push((h, b[HEADER_LEN..h.frame_len()].to_vec()));
        b = &b[h.frame_len()..];
    }
    Ok(v)
}

fn is_ours(h: &FrameHeader, p: &[u8]) -> bool {
    h.kind == frame::PING && h.flags & frame::FLAG_ACK == 0 && p == KEEPALIVE_PING
}

#[derive(Debug, Clone)]
struct OutCase {
    frames: Vec<Vec<u8>>,
    cuts: Vec<usize>,
    chunks: Vec<usize>,
    injects: Vec<usize>,
    drain: bool,
    too_many_at: Option<usize>,
}

fn out_case() -> impl Strategy<Value = OutCase> {
    (
        proptest::collection::vec(h2_frame(), 0..16),
        proptest::collection::vec(1usize..400, 1..8),
        proptest::collection::vec(0usize..300, 1..6).prop_map(|mut c| {
            c.push(1); // the socket makes progress eventually
            c
        }),
        proptest::collection::vec(0usize..20, 0..4),
        any::<bool>(),
        proptest::option::of(1usize..5),
    )
        .prop_map(
            |(frames, cuts, chunks, injects, drain, too_many_at)| OutCase {
                frames,
                cuts,
                chunks,
                injects,
                drain,
                too_many_at,
            },
        )
}

fn run_outgoing(c: &OutCase) -> Result<(), TestCaseError> {
    let input: Vec<u8> = c.frames.concat();
    let mut o = Outgoing::default();
    if c.drain {
        o.set_goaway_debug("max_idle");
    }
    let mut judge = Verdicts {
        at: c.too_many_at,
        acks: 0,
        goaways: 0,
    };
    let wire = Wire {
        out: RefCell::new(Vec::new()),
        chunks: c.chunks.clone(),
        turn: Cell::new(0),
    };
    let mut rest = &input[..];
    let mut cuts = c.cuts.iter().copied().cycle();
    let mut injected = 0;
    let mut step = 0;
    let mut guard = 0;
    while !rest.is_empty() {
        guard += 1;
        prop_assert!(guard < 100_000, "no progress");
        if c.injects.contains(&step) {
            o.inject(&frame::ping(false, KEEPALIVE_PING), &mut judge);
            injected += 1;
        }
        step += 1;
        if o.is_full() {
            let _ = o.send(&wire);
            continue;
        }
        let want = cuts.next().unwrap_or(1).clamp(1, rest.len());
        let n = o.accept(&rest[..want], &mut judge);
        rest = &rest[n..];
        let _ = o.send(&wire);
    }
    for _ in c.injects.iter().filter(|&&i| i >= step) {
        o.inject(&frame::ping(false, KEEPALIVE_PING), &mut judge);
        injected += 1;
    }
    while o.pending() > 0 {
        guard += 1;
        prop_assert!(guard < 100_000, "no progress");
        let _ = o.send(&wire);
    }
    let wire_bytes = wire.out.into_inner();
    let got = split_frames(&wire_bytes).map_err(TestCaseError::fail)?;
    let ours = got.iter().filter(|(h, p)| is_ours(h, p)).count();
    let theirs: Vec<_> = got.iter().filter(|(h, p)| !is_ours(h, p)).collect();

    // What h2's frames must look like on the wire.
    let mut want: Vec<(FrameHeader, Vec<u8>)> = Vec::new();
    let mut acks = 0;
    for f in &c.frames {
        let h = FrameHeader::parse(f).ok_or(TestCaseError::fail("bad input frame"))?;
        let p = f[HEADER_LEN..].to_vec();
        let rewritten = c.drain
            && h.kind == frame::GOAWAY
            && h.len == 8
            && frame::parse_goaway(&p).is_some_and(|g| g.error_code == frame::NO_ERROR);
        if rewritten {
            let g = frame::goaway(
                frame::parse_goaway(&p).map_or(0, |g| g.last_stream_id),
                frame::NO_ERROR,
                b"max_idle",
            );
            want.push((
                FrameHeader::parse(&g).ok_or(TestCaseError::fail("goaway"))?,
                g[HEADER_LEN..].to_vec(),
            ));
        } else {
            want.push((h, p));
        }
        if h.kind == frame::PING && h.flags & frame::FLAG_ACK != 0 {
            acks += 1;
            if Some(acks) == c.too_many_at {
                let g = frame::goaway(3, frame::ENHANCE_YOUR_CALM, b"too_many_pings");
                want.push((
                    FrameHeader::parse(&g).ok_or(TestCaseError::fail("goaway"))?,
                    g[HEADER_LEN..].to_vec(),
                ));
                break;
            }
        }
    }
    let closing = c.too_many_at.is_some_and(|at| at <= acks);
    prop_assert_eq!(o.closing(), closing);
    let want_refs: Vec<_> = want.iter().collect();
    prop_assert_eq!(theirs, want_refs);
    if closing {
        prop_assert!(ours <= injected);
        let last = got.last().map(|(h, _)| h.kind);
        prop_assert_eq!(last, Some(frame::GOAWAY), "the GOAWAY is the last frame");
    } else {
        prop_assert_eq!(ours, injected);
    }
    Ok(())
}

#[test]
fn observer_outgoing() {
    fuzz("observer_outgoing", 2000, out_case(), |c| run_outgoing(&c));
    // Bytes that are not frames at all (h2 never writes those, but nothing may panic).
    let junk = (
        proptest::collection::vec(any::<u8>(), 0..600),
        proptest::collection::vec(1usize..100, 1..6),
    );
    fuzz("observer_outgoing_junk", 1000, junk, |(bytes, cuts)| {
        let mut o = Outgoing::default();
        o.set_goaway_debug("max_age");
        let mut judge = Verdicts {
            at: Some(2),
            acks: 0,
            goaways: 0,
        };
        let wire = Wire {
            out: RefCell::new(Vec::new()),
            chunks: vec![usize::MAX],
            turn: Cell::new(0),
        };
        let mut rest = &bytes[..];
        let mut cuts = cuts.iter().copied().cycle();
        while !rest.is_empty() {
            let n = o.accept(
                &rest[..cuts.next().unwrap_or(1).clamp(1, rest.len())],
                &mut judge,
            );
            rest = &rest[n..];
            o.inject(&frame::ping(false, KEEPALIVE_PING), &mut judge);
            let _ = o.send(&wire);
        }
        prop_assert!(wire.out.borrow().len() <= bytes.len() + 2000);
        Ok(())
    });
}

#[test]
fn grpc_message_scanner() {
    use keepalive_server::limits::scan::MessageScanner;
    let strategy = (
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..10),
        any::<usize>(),
    );
    fuzz("grpc_message_scanner", 3000, strategy, |(chunks, limit)| {
        let mut s = MessageScanner::new(limit % 100);
        let mut fed = 0u64;
        for c in &chunks {
            let r = s.feed(c);
            fed += c.len() as u64;
            prop_assert!(s.checked_up_to() <= s.offset());
            if let Err(e) = r {
                prop_assert!(e.len > e.limit as u64);
                prop_assert!(e.start + 5 <= s.offset());
                break;
            }
            prop_assert_eq!(s.offset(), fed);
        }
        Ok(())
    });
}

// --- The real server, in this process, over loopback ---------------------------------

const PATHS: [&str; 8] = [
    "/grpc.health.v1.Health/Check",
    "/keepalive.v1.Session/OpenSession",
    "/keepalive.v1.Session/Heartbeat",
    "/keepalive.demo.v1.Feed/Publish",
    "/keepalive.demo.v1.Feed/Stats",
    "/keepalive.demo.v1.Feed/Chaos",
    "/no.such.Service/Method",
    "/",
];
const CONTENT_TYPES: [&str; 7] = [
    "application/grpc-web+proto",
    "application/grpc-web",
    "application/grpc-web-text",
    "application/grpc-web-text+proto",
    "application/grpc",
    "text/plain",
    "",
];

fn grpc_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Well-framed messages with arbitrary contents (protobuf decoding gets junk).
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..3).prop_map(
            |msgs| {
                msgs.iter()
                    .flat_map(|m| {
                        let mut f = vec![0];
                        f.extend((m.len() as u32).to_be_bytes());
                        f.extend(m);
                        f
                    })
                    .collect()
            }
        ),
        // Any bytes (broken framing, flags, lengths).
        proptest::collection::vec(any::<u8>(), 0..80),
    ]
}

/// A base64 encoder for request bodies (standard alphabet, padded), and sometimes a
/// broken one.
fn base64(b: &[u8]) -> Vec<u8> {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    for c in b.chunks(3) {
        let n = c.iter().fold(0u32, |acc, &x| (acc << 8) | u32::from(x)) << (8 * (3 - c.len()));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                out.push(b'=');
            }
        }
    }
    out
}

#[derive(Clone, Debug)]
enum WireCase {
    Junk(Vec<u8>),
    Http1 {
        method: &'static str,
        path: String,
        content_type: &'static str,
        body: Vec<u8>,
        framing: u8,
    },
    Http2(Vec<(u8, u8, u32, Vec<u8>)>),
}

fn wire_case() -> impl Strategy<Value = WireCase> {
    let method = prop_oneof![
        Just("POST"),
        Just("GET"),
        Just("OPTIONS"),
        Just("PUT"),
        Just("PRI")
    ];
    let path = prop_oneof![
        4 => proptest::sample::select(&PATHS[..]).prop_map(str::to_string),
        1 => proptest::collection::vec(proptest::sample::select(&b"aZ09./%-_~"[..]), 0..30)
            .prop_map(|v| format!("/{}", String::from_utf8_lossy(&v))),
    ];
    let http1 = (
        method,
        path,
        proptest::sample::select(&CONTENT_TYPES[..]),
        grpc_body(),
        0u8..5,
    )
        .prop_map(
            |(method, path, content_type, body, framing)| WireCase::Http1 {
                method,
                path,
                content_type,
                body,
                framing,
            },
        );
    let h2_frames = proptest::collection::vec(
        prop_oneof![
            // A request's HEADERS on an odd stream (END_HEADERS, maybe END_STREAM).
            3 => (proptest::sample::select(&PATHS[..]), proptest::sample::select(&CONTENT_TYPES[..]), 0u32..4, any::<bool>())
                .prop_map(|(path, ct, n, end)| {
                    let mut h = tests::h2raw::grpc_request_headers("fuzz", path);
                    for (k, v) in h.iter_mut() {
                        if k == "content-type" {
                            *v = ct.to_string();
                        }
                    }
                    let flags = frame_flags(true, end);
                    (frame::HEADERS, flags, 1 + 2 * n, tests::h2raw::encode_headers(&h).to_vec())
                }),
            3 => (0u32..4, grpc_body(), any::<bool>())
                .prop_map(|(n, body, end)| (frame::DATA, frame_flags(false, end), 1 + 2 * n, body)),
            3 => (0u8..12, any::<u8>(), 0u32..10, proptest::collection::vec(any::<u8>(), 0..30)),
        ],
        0..10,
    )
    .prop_map(WireCase::Http2);
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..200).prop_map(WireCase::Junk),
        3 => http1,
        3 => h2_frames,
    ]
}

fn frame_flags(end_headers: bool, end_stream: bool) -> u8 {
    (if end_headers { 0x4 } else { 0 }) | u8::from(end_stream)
}

fn wire_bytes(c: &WireCase) -> Vec<u8> {
    match c {
        WireCase::Junk(b) => b.clone(),
        WireCase::Http1 {
            method,
            path,
            content_type,
            body,
            framing,
        } => {
            let body = if content_type.contains("text") && framing % 2 == 0 {
                base64(body)
            } else {
                body.clone()
            };
            let mut req = format!("{method} {path} HTTP/1.1\r\nhost: fuzz\r\nx-grpc-web: 1\r\n");
            if !content_type.is_empty() {
                req.push_str(&format!("content-type: {content_type}\r\n"));
            }
            let mut b = match framing {
                // Content-Length right, too short, or none; chunked.
                0 | 1 => format!("{req}content-length: {}\r\n\r\n", body.len()).into_bytes(),
                2 => format!("{req}content-length: {}\r\n\r\n", body.len() / 2).into_bytes(),
                3 => format!(
                    "{req}transfer-encoding: chunked\r\n\r\n{:x}\r\n",
                    body.len()
                )
                .into_bytes(),
                _ => format!("{req}\r\n").into_bytes(),
            };
            b.extend_from_slice(&body);
            if *framing == 3 {
                b.extend_from_slice(b"\r\n0\r\n\r\n");
            }
            b
        }
        WireCase::Http2(frames) => {
            let mut b = PREFACE.to_vec();
            b.extend(frame::frame(frame::SETTINGS, 0, 0, &[]));
            for (k, f, s, p) in frames {
                b.extend(frame::frame(*k, *f, *s, p));
            }
            b
        }
    }
}

/// Panics anywhere in this process (server tasks included), counted by a hook.
static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[test]
fn server_wire() {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let args = [
        "server",
        "--listen",
        "127.0.0.1:0",
        "--first-bytes-timeout",
        "1s",
        "--http1-header-read-timeout",
        "1s",
        "--max-recv-message-size",
        "64",
        "--max-request-body-size",
        "256",
        "--max-concurrent-streams",
        "4",
    ];
    let config = server::Config::from_args(args.map(std::ffi::OsString::from))
        .unwrap_or_else(|e| panic!("config: {e:?}"));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr, handle) = rt.block_on(async {
        let demo = server::Demo::open(&config).expect("demo");
        let listener = keepalive_server::listen(config.listen).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = tokio::spawn(async move {
            demo.builder()
                .expect("builder")
                .serve_with_incoming_shutdown(listener, async {
                    let _ = stop_rx.await;
                })
                .await
        });
        (addr, handle)
    });

    fuzz("server_wire", 300, wire_case(), |case| {
        let bytes = wire_bytes(&case);
        let closed = rt.block_on(async {
            let mut sock = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let _ = sock.write_all(&bytes).await;
            let _ = sock.shutdown().await;
            let mut got = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut got)).await;
            match read {
                Err(_) => Err(format!(
                    "not closed within 5 s after FIN; answered {} bytes",
                    got.len()
                )),
                Ok(_) => Ok(got),
            }
        });
        let answer = closed.map_err(TestCaseError::fail)?;
        if let WireCase::Http1 { .. } = case
            && !answer.is_empty()
        {
            prop_assert!(
                answer.starts_with(b"HTTP/1.1 "),
                "not an HTTP answer: {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(80)])
            );
        }
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), 0, "a panic in the server");
        Ok(())
    });

    // Still serving after all of it.
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("url")
            .connect()
            .await
            .expect("connect after the fuzzing");
        tonic_health::pb::health_client::HealthClient::new(channel)
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .expect("health after the fuzzing");
        let _ = stop_tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(15), handle).await;
    });
}
