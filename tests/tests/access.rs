//! Who may do what, against the real server process.
//!
//! - Chaos (fault injection) is off unless `--chaos`; with it, every call needs the token
//!   (compared in constant time: `server::service::ids::ct_eq`); `--chaos` without a token
//!   does not start.
//! - CORS: only the listed origins get CORS headers, on preflights and on real calls; `*`
//!   only when configured; with none configured (the default, and the demo's: the page is
//!   served by the server itself) no cross-origin page may read an answer.
//! - Sessions and resume tokens: 128 random bits each (32 hex digits), distinct; a resume
//!   token works only with its own session; a forged session is UNAUTHENTICATED.

mod common;

use common::pb::subscribe_response::Kind;
use common::pb::{ChaosAction, ChaosRequest, OpenSessionRequest};
use common::*;
use std::collections::HashSet;
use std::time::Duration;
use testkit::{ServerProcess, run_to_exit};
use tests::http1::{Http1, Response};
use tonic::Code;

const TOKEN: &str = "a-long-enough-chaos-token";
const CHECK: &str = "/grpc.health.v1.Health/Check";
const LISTED: &str = "http://dashboard.example:3000";
const OTHER: &str = "http://evil.example";

async fn chaos(c: &mut Client, token: &str, action: ChaosAction) -> Result<String, tonic::Status> {
    c.chaos(ChaosRequest {
        token: token.to_string(),
        action: action as i32,
        duration_ms: 100,
    })
    .await
    .map(|r| r.into_inner().message)
}

// --- Chaos ----------------------------------------------------------------------------

#[tokio::test]
async fn chaos_is_off_by_default_for_every_action_even_with_a_token() {
    let srv = ServerProcess::start(&[]).await;
    let mut c = client(&srv).await;
    for action in [
        ChaosAction::DropConnections,
        ChaosAction::Stall,
        ChaosAction::RefuseConnections,
        ChaosAction::RejectHeartbeats,
        ChaosAction::Goaway,
        ChaosAction::Unspecified,
    ] {
        for token in ["", TOKEN] {
            let e = chaos(&mut c, token, action).await.expect_err("off");
            assert_eq!(
                (e.code(), e.message()),
                (Code::PermissionDenied, "chaos is disabled"),
                "{action:?}"
            );
        }
    }
    // Nothing was carried out.
    srv.assert_metric("keepalive_chaos_actions_total", 0.0)
        .await;
}

#[test]
fn chaos_without_a_token_does_not_start() {
    for args in [&["--chaos"][..], &["--chaos", "--chaos-token", ""]] {
        let (code, stderr) = run_to_exit(args, Duration::from_secs(20));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("--chaos needs --chaos-token"), "{stderr}");
    }
}

#[tokio::test]
async fn chaos_needs_exactly_the_token() {
    let srv = ServerProcess::start(&["--chaos", "--chaos-token", TOKEN]).await;
    let mut c = client(&srv).await;
    let almost = &TOKEN[..TOKEN.len() - 1];
    let longer = format!("{TOKEN}x");
    let upper = TOKEN.to_uppercase();
    for wrong in ["", "guess", almost, &longer, &upper] {
        let e = chaos(&mut c, wrong, ChaosAction::RejectHeartbeats)
            .await
            .expect_err("wrong token");
        assert_eq!(
            (e.code(), e.message()),
            (Code::PermissionDenied, "wrong chaos token"),
            "{wrong:?}"
        );
    }
    // Nothing was carried out until the right token came.
    srv.assert_metric("keepalive_chaos_actions_total", 0.0)
        .await;
    chaos(&mut c, TOKEN, ChaosAction::RejectHeartbeats)
        .await
        .expect("the right token");
    srv.assert_metric("keepalive_chaos_actions_total", 1.0)
        .await;
}

// --- CORS -----------------------------------------------------------------------------

async fn preflight(srv: &ServerProcess, origin: &str) -> Response {
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send(
        "OPTIONS",
        CHECK,
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type,x-grpc-web"),
        ],
        b"",
    )
    .await
    .expect("send");
    c.read_head(secs(5.0)).await.expect("preflight answer")
}

async fn web_call(srv: &ServerProcess, origin: &str) -> Response {
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send(
        "POST",
        CHECK,
        &[
            ("origin", origin),
            ("content-type", "application/grpc-web+proto"),
            ("x-grpc-web", "1"),
        ],
        &[0, 0, 0, 0, 0],
    )
    .await
    .expect("send");
    c.read_head(secs(5.0)).await.expect("call answer")
}

fn allow_origin(r: &Response) -> Option<&str> {
    r.header("access-control-allow-origin")
}

#[tokio::test]
async fn cors_only_listed_origins_get_cors_headers() {
    let srv = ServerProcess::start(&["--cors-allow-origin", LISTED]).await;
    let pre = preflight(&srv, LISTED).await;
    assert_eq!(allow_origin(&pre), Some(LISTED), "{pre:?}");
    let call = web_call(&srv, LISTED).await;
    assert_eq!(allow_origin(&call), Some(LISTED), "{call:?}");
    assert!(
        call.header("vary").unwrap_or_default().contains("origin"),
        "a listed origin's answer must vary by origin: {call:?}"
    );
    for origin in [
        OTHER,
        "http://dashboard.example:3001",
        "null",
        "https://dashboard.example:3000",
    ] {
        let pre = preflight(&srv, origin).await;
        assert_eq!(allow_origin(&pre), None, "{origin}: {pre:?}");
        // tower-http lists the allowed methods and headers to anyone; without
        // `access-control-allow-origin` a browser fails the preflight all the same.
        let call = web_call(&srv, origin).await;
        assert_eq!(allow_origin(&call), None, "{origin}: {call:?}");
        // (The same for `access-control-expose-headers`: it exposes nothing to a page
        // that may not read the response at all.)
    }
}

#[tokio::test]
async fn cors_none_configured_means_same_origin_only() {
    let srv = ServerProcess::start(&[]).await;
    for origin in [LISTED, OTHER] {
        let pre = preflight(&srv, origin).await;
        assert_eq!(allow_origin(&pre), None, "{pre:?}");
        let call = web_call(&srv, origin).await;
        assert_eq!(allow_origin(&call), None, "{call:?}");
    }
}

#[tokio::test]
async fn cors_star_only_when_configured() {
    let srv = ServerProcess::start(&["--cors-allow-origin", "*"]).await;
    for origin in [LISTED, OTHER] {
        let pre = preflight(&srv, origin).await;
        assert_eq!(allow_origin(&pre), Some("*"), "{pre:?}");
        let call = web_call(&srv, origin).await;
        assert_eq!(allow_origin(&call), Some("*"), "{call:?}");
    }
}

// --- Sessions and resume tokens -------------------------------------------------------

fn is_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[tokio::test]
async fn session_ids_are_128_random_bits_and_distinct_over_10000_sessions() {
    const N: usize = 10_000;
    let srv = ServerProcess::start(&[]).await;
    let c = client(&srv).await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::with_capacity(N / 8);
            for _ in 0..N / 8 {
                let s = c
                    .open_session(OpenSessionRequest {})
                    .await
                    .expect("open")
                    .into_inner();
                ids.push(s.session_id);
            }
            ids
        }));
    }
    // A session id is signed (valid on every replica): `s1.KID.RANDOM.EXPIRY.MAC`; the
    // random part is 128 bits, the MAC 128 bits of HMAC-SHA256.
    let mut ids = HashSet::new();
    for t in tasks {
        for id in t.await.expect("join") {
            let parts: Vec<&str> = id.split('.').collect();
            assert_eq!(parts.len(), 5, "{id:?}");
            assert_eq!(parts[0], "s1", "{id:?}");
            assert!(is_id(parts[2]) && is_id(parts[4]), "{id:?}");
            assert!(parts[3].parse::<u64>().is_ok(), "{id:?}");
            assert!(ids.insert(parts[2].to_owned()), "a session id came twice");
        }
    }
    assert_eq!(ids.len(), N);
    // Every hex digit shows up in every position: no constant or counter part.
    for pos in 0..32 {
        let digits: HashSet<u8> = ids.iter().map(|id| id.as_bytes()[pos]).collect();
        assert_eq!(digits.len(), 16, "position {pos} is not random");
    }
}

#[tokio::test]
async fn a_resume_token_only_works_with_its_own_session() {
    let srv = ServerProcess::start(&[]).await;
    let mut alice = client(&srv).await;
    let mut mallory = client(&srv).await;
    let a = open(&mut alice).await;
    let m = open(&mut mallory).await;
    publish_n(&mut alice, &a.session_id, 3).await;
    let mut sa = subscribe(&mut alice, sub(&a.session_id, Some(0), "", "")).await;
    let Kind::Welcome(wa) = next(&mut sa, 5.0).await else {
        panic!("no welcome")
    };
    assert!(is_id(&wa.resume_token), "{wa:?}");
    assert_ne!(wa.resume_token, a.session_id);

    // Mallory, with her own session, presents Alice's token: denied, nothing delivered.
    let e = mallory
        .subscribe(sub(&m.session_id, Some(0), &wa.resume_token, &wa.log_id))
        .await
        .expect_err("foreign token");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::PermissionDenied,
            "resume token does not belong to this session"
        )
    );
    // A guessed token with Alice's session: denied too.
    let e = mallory
        .subscribe(sub(&a.session_id, Some(0), &"0".repeat(32), ""))
        .await
        .expect_err("guessed token");
    assert_eq!(e.code(), Code::PermissionDenied);
    // A guessed session, or Alice's with its signature altered: UNAUTHENTICATED, for
    // subscribe and heartbeat alike.
    let mut altered = a.session_id.clone();
    let last = altered.pop().expect("a char");
    altered.push(if last == 'f' { 'e' } else { 'f' });
    for guessed in ["f".repeat(32), altered] {
        let e = mallory
            .subscribe(sub(&guessed, Some(0), &wa.resume_token, ""))
            .await
            .expect_err("invalid session");
        assert_eq!(
            (e.code(), e.message()),
            (Code::Unauthenticated, "invalid session id")
        );
        let e = heartbeat(&mut mallory, &guessed, 1)
            .await
            .expect_err("invalid session");
        assert_eq!(e.code(), Code::Unauthenticated);
    }

    // Alice resumes with her own token and gets her events.
    let mut again = subscribe(
        &mut alice,
        sub(&a.session_id, Some(1), &wa.resume_token, &wa.log_id),
    )
    .await;
    let Kind::Welcome(w2) = next(&mut again, 5.0).await else {
        panic!("no welcome")
    };
    assert_eq!(w2.next_sequence, 2);
    assert_eq!(event_seq(&next_non_heartbeat(&mut again, 5.0).await), 2);
}
