//! Fault injection (`keepalive.v1.Keepalive/Chaos`) against the real server process:
//! authorisation, and what each action does to a native tonic client.

mod common;

use common::pb::subscribe_response::Kind;
use common::pb::{ChaosAction, ChaosRequest, StatsRequest};
use common::web::WebConn;
use common::*;
use testkit::ServerProcess;
use tokio::time::Instant;
use tonic::Code;

const TOKEN: &str = "let-me-break-it";

async fn chaos_server() -> ServerProcess {
    ServerProcess::start(&["--chaos", "--chaos-token", TOKEN]).await
}

async fn chaos(
    c: &mut Client,
    token: &str,
    action: ChaosAction,
    duration_ms: u64,
) -> Result<String, tonic::Status> {
    c.chaos(ChaosRequest {
        token: token.to_string(),
        action: action as i32,
        duration_ms,
    })
    .await
    .map(|r| r.into_inner().message)
}

#[tokio::test]
async fn chaos_is_off_by_default_and_needs_the_token() {
    let srv = ServerProcess::start(&[]).await;
    let mut c = client(&srv).await;
    let e = chaos(&mut c, TOKEN, ChaosAction::Goaway, 0)
        .await
        .expect_err("off");
    assert_eq!(
        (e.code(), e.message()),
        (Code::PermissionDenied, "chaos is disabled")
    );

    let srv = chaos_server().await;
    let mut c = client(&srv).await;
    let e = chaos(&mut c, "guess", ChaosAction::Goaway, 0)
        .await
        .expect_err("wrong token");
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = chaos(&mut c, TOKEN, ChaosAction::Stall, 0)
        .await
        .expect_err("no duration");
    assert_eq!(e.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn stall_holds_a_heartbeat_without_closing_the_socket() {
    let srv = chaos_server().await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    heartbeat(&mut c, &s, 1).await.expect("before the stall");
    chaos(&mut c, TOKEN, ChaosAction::Stall, 1000)
        .await
        .expect("answered before the stall starts");
    tokio::time::sleep(secs(0.1)).await;
    let t = Instant::now();
    let mut hb = Box::pin(heartbeat(&mut c, &s, 2));
    assert!(
        tokio::time::timeout(secs(0.7), hb.as_mut()).await.is_err(),
        "answered during the stall"
    );
    // Same connection (a closed one would have failed the call): answered after the stall.
    hb.await.expect("answered after the stall");
    let at = t.elapsed();
    assert!(at >= secs(0.7) && at <= secs(2.0), "answered after {at:?}");
    srv.assert_metric(
        r#"keepalive_connections_closed_total{reason="chaos_drop"}"#,
        0.0,
    )
    .await;
}

#[tokio::test]
async fn stall_holds_http1_too() {
    let srv = chaos_server().await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    let mut web = WebConn::connect(srv.addr()).await.expect("connect");
    let hb = |n| common::pb::HeartbeatRequest {
        session_id: s.clone(),
        sequence: n,
        client_send_time_ms: 0.0,
    };
    web.unary::<common::pb::HeartbeatResponse>("Heartbeat", &hb(1), secs(5.0))
        .await
        .expect("before the stall");
    chaos(&mut c, TOKEN, ChaosAction::Stall, 1000)
        .await
        .expect("stall");
    tokio::time::sleep(secs(0.1)).await;
    let t = Instant::now();
    web.send("Heartbeat", &hb(2)).await.expect("send");
    let e = web
        .head(secs(0.6))
        .await
        .expect_err("no answer during the stall");
    assert_eq!(e.kind(), std::io::ErrorKind::TimedOut, "{e}");
    assert_eq!(web.head(secs(2.0)).await.expect("answered after it"), 200);
    assert!(t.elapsed() >= secs(0.7), "{:?}", t.elapsed());
}

#[tokio::test]
async fn drop_connections_breaks_an_open_subscription() {
    let srv = chaos_server().await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    let mut stream = subscribe(&mut c, sub(&s, None, "", "")).await;
    assert!(matches!(next(&mut stream, 5.0).await, Kind::Welcome(_)));
    let mut admin = client(&srv).await;
    chaos(&mut admin, TOKEN, ChaosAction::DropConnections, 0)
        .await
        .expect("drop");
    let t = Instant::now();
    let got = tokio::time::timeout(secs(3.0), stream.message())
        .await
        .expect("the stream noticed within 3 s");
    assert!(got.is_err(), "expected an error, got {got:?}");
    assert!(t.elapsed() < secs(1.0), "took {:?}", t.elapsed());
    // Both connections (the subscriber's and the admin's) were dropped, as counted.
    let dropped = srv
        .wait_for_metric(
            r#"keepalive_connections_closed_total{reason="chaos_drop"}"#,
            |v| v >= 2.0,
            secs(2.0),
        )
        .await;
    assert_eq!(dropped, Ok(2.0), "{}", srv.logs_text());
}

#[tokio::test]
async fn refuse_connections_for_a_while() {
    let srv = chaos_server().await;
    let mut admin = client(&srv).await;
    let t = Instant::now();
    chaos(&mut admin, TOKEN, ChaosAction::RefuseConnections, 1000)
        .await
        .expect("refuse");
    let attempt = async {
        let channel = tonic::transport::Endpoint::from_shared(srv.url())
            .expect("url")
            .connect()
            .await?;
        let mut c = common::Client::new(channel);
        c.open_session(common::pb::OpenSessionRequest {})
            .await
            .map_err(Into::<Box<dyn std::error::Error + Send + Sync>>::into)?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
    };
    let refused = tokio::time::timeout(secs(5.0), attempt)
        .await
        .expect("failed promptly");
    assert!(refused.is_err(), "a new connection worked while refusing");
    tokio::time::sleep_until(t + secs(1.5)).await;
    let mut c = client(&srv).await;
    open(&mut c).await;
    let stats = c.stats(StatsRequest {}).await.expect("stats").into_inner();
    assert!(
        stats
            .counters
            .get("connections_refused_chaos")
            .is_some_and(|n| *n >= 1)
    );
}

#[tokio::test]
async fn reject_heartbeats_answers_unavailable() {
    let srv = chaos_server().await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    chaos(&mut c, TOKEN, ChaosAction::RejectHeartbeats, 500)
        .await
        .expect("reject");
    let e = heartbeat(&mut c, &s, 1).await.expect_err("rejected");
    assert_eq!(
        (e.code(), e.message()),
        (Code::Unavailable, "heartbeats rejected (chaos)")
    );
    tokio::time::sleep(secs(0.7)).await;
    heartbeat(&mut c, &s, 2).await.expect("accepted again");
}

#[tokio::test]
async fn goaway_ends_subscriptions_and_drains_connections() {
    let srv = chaos_server().await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    publish(&mut c, &s, "k", "x").await;
    let mut stream = subscribe(&mut c, sub(&s, Some(0), "", "")).await;
    let Kind::Welcome(w) = next(&mut stream, 5.0).await else {
        panic!("no welcome")
    };
    assert_eq!(event_seq(&next(&mut stream, 5.0).await), 1);
    let mut admin = client(&srv).await;
    chaos(&mut admin, TOKEN, ChaosAction::Goaway, 0)
        .await
        .expect("goaway");
    let Kind::GoAway(g) = next_non_heartbeat(&mut stream, 5.0).await else {
        panic!("expected a GoAway")
    };
    assert_eq!(
        (g.reason.as_str(), g.resume_after, g.resume_token.as_str()),
        ("chaos", 1, w.resume_token.as_str())
    );
    expect_end(&mut stream, 5.0).await;
    let goaways = srv
        .wait_for_metric(
            r#"keepalive_goaways_total{reason="chaos"}"#,
            |v| v >= 1.0,
            secs(3.0),
        )
        .await;
    assert!(goaways.is_ok(), "{goaways:?}\n{}", srv.logs_text());
    // A later subscription is not ended by the earlier GOAWAY.
    let mut c2 = client(&srv).await;
    let mut later = subscribe(&mut c2, sub(&s, Some(1), "", "")).await;
    assert!(matches!(next(&mut later, 5.0).await, Kind::Welcome(_)));
    assert!(
        tokio::time::timeout(secs(0.5), later.message())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn restart_stops_gracefully_with_the_restart_exit_code() {
    let mut srv = chaos_server().await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    let mut stream = subscribe(&mut c, sub(&s, None, "", "")).await;
    assert!(matches!(next(&mut stream, 5.0).await, Kind::Welcome(_)));
    let mut admin = client(&srv).await;
    let message = chaos(&mut admin, TOKEN, ChaosAction::Restart, 0)
        .await
        .expect("restart");
    assert!(message.contains("exit code 75"), "{message}");
    // The subscription is ended the graceful way (a GoAway with the resume point).
    let Kind::GoAway(g) = next_non_heartbeat(&mut stream, 5.0).await else {
        panic!("expected a GoAway")
    };
    assert!(!g.resume_token.is_empty());
    let status = srv.wait_exit(secs(15.0)).await.expect("the server exits");
    assert_eq!(status.code(), Some(75), "{}", srv.logs_text());
}
