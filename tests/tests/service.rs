//! `keepalive.v1.Keepalive` against the real server process with a native tonic client:
//! sessions and heartbeat enforcement, the resumable feed (exactly once, in order, Gaps,
//! StreamHeartbeats, GoAway on max stream age and SIGTERM), idempotent publish, the
//! file-backed log across a restart, and the error codes the browser client relies on.

mod common;

use common::pb::subscribe_response::Kind;
use common::pb::{
    Gap, HeartbeatRequest, HeartbeatResponse, OpenSessionRequest, OpenSessionResponse,
    PublishRequest, StatsRequest, SubscribeResponse,
};
use common::web::{WebConn, WebFrame};
use common::*;
use prost::Message;
use testkit::ServerProcess;
use tokio::time::Instant;
use tonic::Code;

#[tokio::test]
async fn open_session_and_heartbeat_echo() {
    let srv = ServerProcess::start(&["--stream-heartbeat-interval", "7s"]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await;
    // Signed, so that every replica accepts it: `s1.KID.RANDOM.EXPIRY.MAC`.
    let parts: Vec<&str> = s.session_id.split('.').collect();
    assert_eq!((parts.len(), parts[0]), (5, "s1"), "{s:?}");
    for hex in [parts[2], parts[4]] {
        assert_eq!(hex.len(), 32, "{s:?}");
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()), "{s:?}");
    }
    assert!(!s.server.is_empty(), "the replica's name: {s:?}");
    assert_eq!(s.stream_heartbeat_interval_ms, 7000);
    assert_eq!(log_id(&mut c, &s.session_id).await.len(), 32);
    assert_ne!(open(&mut c).await.session_id, s.session_id);

    let res = c
        .heartbeat(common::pb::HeartbeatRequest {
            session_id: s.session_id.clone(),
            sequence: 42,
            client_send_time_ms: 1234.5,
        })
        .await
        .expect("heartbeat")
        .into_inner();
    assert_eq!(res.sequence, 42);
    assert_eq!(res.client_send_time_ms, 1234.5);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(res.server_time_ms.abs_diff(now_ms) < 5000, "{res:?}");
}

#[tokio::test]
async fn an_invalid_session_is_unauthenticated_and_a_foreign_token_is_denied() {
    let srv = ServerProcess::start(&[]).await;
    let mut c = client(&srv).await;
    let e = heartbeat(&mut c, "0123", 1).await.expect_err("invalid");
    assert_eq!(
        (e.code(), e.message()),
        (Code::Unauthenticated, "invalid session id")
    );
    let e = c
        .subscribe(sub("nope", None, "", ""))
        .await
        .expect_err("invalid");
    assert_eq!(
        (e.code(), e.message()),
        (Code::Unauthenticated, "invalid session id")
    );

    let a = open(&mut c).await;
    let b = open(&mut c).await;
    let mut sa = subscribe(&mut c, sub(&a.session_id, None, "", "")).await;
    let Kind::Welcome(wa) = next(&mut sa, 5.0).await else {
        panic!("no welcome")
    };
    let e = c
        .subscribe(sub(&b.session_id, Some(0), &wa.resume_token, ""))
        .await
        .expect_err("foreign token");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::PermissionDenied,
            "resume token does not belong to this session"
        )
    );
    // Its own token is fine.
    let mut again = subscribe(&mut c, sub(&a.session_id, Some(0), &wa.resume_token, "")).await;
    let Kind::Welcome(w2) = next(&mut again, 5.0).await else {
        panic!("no welcome")
    };
    assert_eq!(w2.resume_token, wa.resume_token, "stable per session");
}

#[tokio::test]
async fn too_many_sessions() {
    let srv = ServerProcess::start(&["--max-sessions", "2"]).await;
    let mut c = client(&srv).await;
    open(&mut c).await;
    open(&mut c).await;
    let e = c
        .open_session(common::pb::OpenSessionRequest {})
        .await
        .expect_err("full");
    assert_eq!(
        (e.code(), e.message()),
        (
            Code::ResourceExhausted,
            "too many sessions: the server's limit is 2 (max-sessions)"
        )
    );
}

#[tokio::test]
async fn heartbeats_too_often_end_in_too_many_pings() {
    let srv = ServerProcess::start(&["--min-ping-interval", "5s"]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    // No stream: the first is accepted, the next two are strikes 1 and 2, the fourth is
    // strike 3 > 2: refused.
    for n in 1..=3 {
        heartbeat(&mut c, &s, n).await.expect("within the strikes");
        tokio::time::sleep(secs(0.1)).await;
    }
    let e = heartbeat(&mut c, &s, 4)
        .await
        .expect_err("past the strikes");
    assert_eq!(
        (e.code(), e.message()),
        (Code::ResourceExhausted, "too_many_pings")
    );
    // The strikes stay: the next too-soon heartbeat is refused too.
    let e = heartbeat(&mut c, &s, 5).await.expect_err("still too soon");
    assert_eq!(e.message(), "too_many_pings");
    // Other sessions are judged on their own.
    let other = open(&mut c).await.session_id;
    heartbeat(&mut c, &other, 1).await.expect("fresh session");

    let stats = c.stats(StatsRequest {}).await.expect("stats").into_inner();
    assert_eq!(stats.counters.get("heartbeats_too_many_pings"), Some(&2));
    assert_eq!(stats.counters.get("heartbeats"), Some(&6));
}

#[tokio::test]
async fn a_message_on_the_sessions_stream_resets_the_strikes() {
    let srv = ServerProcess::start(&["--min-ping-interval", "5s"]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    let mut stream = subscribe(&mut c, sub(&s, None, "", "")).await;
    assert!(matches!(next(&mut stream, 5.0).await, Kind::Welcome(_)));
    // Welcome counted as data sent: this one resets, then two strikes.
    for n in 1..=3 {
        heartbeat(&mut c, &s, n).await.expect("within the strikes");
    }
    // An event on the session's stream: the next heartbeat resets the strikes.
    publish(&mut c, &s, "k", "x").await;
    assert!(matches!(next(&mut stream, 5.0).await, Kind::Event(_)));
    heartbeat(&mut c, &s, 4)
        .await
        .expect("strikes reset by the event");
    heartbeat(&mut c, &s, 5).await.expect("strike 1");
    heartbeat(&mut c, &s, 6).await.expect("strike 2");
    let e = heartbeat(&mut c, &s, 7).await.expect_err("strike 3");
    assert_eq!(
        (e.code(), e.message()),
        (Code::ResourceExhausted, "too_many_pings")
    );
}

#[tokio::test]
async fn subscribe_from_the_head_gets_new_events_only() {
    let srv = ServerProcess::start(&[]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await;
    publish_n(&mut c, &s.session_id, 2).await;
    let mut stream = subscribe(&mut c, sub(&s.session_id, None, "", "")).await;
    let Kind::Welcome(w) = next(&mut stream, 5.0).await else {
        panic!("no welcome")
    };
    assert_eq!((w.head_sequence, w.next_sequence), (2, 3));
    assert_eq!(w.log_id.len(), 32);
    assert_eq!(w.resume_token.len(), 32);
    assert_eq!(w.stream_heartbeat_interval_ms, 15_000);
    let p = publish(&mut c, &s.session_id, "new", "hello").await;
    assert_eq!((p.sequence, p.duplicate), (3, false));
    let Kind::Event(e) = next(&mut stream, 5.0).await else {
        panic!("no event")
    };
    assert_eq!(e.sequence, 3);
    assert_eq!(e.text, "hello");
    // The first characters of the id's random part.
    let random = s.session_id.split('.').nth(2).expect("a signed id");
    assert_eq!(e.source, random[..8]);
    assert!(e.published_at_ms > 0);
}

#[tokio::test]
async fn resume_after_n_delivers_exactly_the_rest_in_order() {
    let srv = ServerProcess::start(&[]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await;
    publish_n(&mut c, &s.session_id, 100).await;
    let log = log_id(&mut c, &s.session_id).await;
    let mut stream = subscribe(&mut c, sub(&s.session_id, Some(37), "", &log)).await;
    let Kind::Welcome(w) = next(&mut stream, 5.0).await else {
        panic!("no welcome")
    };
    assert_eq!((w.head_sequence, w.next_sequence), (100, 38));
    // Publish while replaying: still exactly once, in order.
    let mut c2 = client(&srv).await;
    let session = s.session_id.clone();
    let publisher = tokio::spawn(async move {
        for i in 101..=120 {
            publish(&mut c2, &session, &format!("k{i}"), "late").await;
        }
    });
    let mut got = Vec::new();
    while got.len() < 83 {
        got.push(event_seq(&next(&mut stream, 5.0).await));
    }
    publisher.await.expect("publisher");
    assert_eq!(got, (38..=120).collect::<Vec<_>>());
    // Nothing more (no duplicates) until the next publish.
    assert!(
        tokio::time::timeout(secs(0.3), stream.message())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn idempotent_publish_retry() {
    let srv = ServerProcess::start(&[]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    let first = publish(&mut c, &s, "same-key", "a").await;
    let again = publish(&mut c, &s, "same-key", "a").await;
    assert_eq!((first.sequence, first.duplicate), (1, false));
    assert_eq!((again.sequence, again.duplicate), (1, true));
    // Without a session: allowed, source "anon".
    let anon = publish(&mut c, "", "other", "b").await;
    assert_eq!(anon.sequence, 2);
    let mut stream = subscribe(&mut c, sub(&s, Some(0), "", "")).await;
    next(&mut stream, 5.0).await;
    let Kind::Event(e1) = next(&mut stream, 5.0).await else {
        panic!()
    };
    let Kind::Event(e2) = next(&mut stream, 5.0).await else {
        panic!()
    };
    assert_eq!((e1.sequence, e2.sequence), (1, 2));
    assert_eq!(e2.source, "anon");

    for (key, text, needle) in [
        ("", "x", "idempotency_key"),
        (&"k".repeat(129)[..], "x", "128"),
        ("k", &"t".repeat(4097)[..], "4096"),
    ] {
        let e = c
            .publish(PublishRequest {
                session_id: s.clone(),
                idempotency_key: key.to_string(),
                text: text.to_string(),
            })
            .await
            .expect_err("invalid");
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().contains(needle), "{e:?}");
    }
}

#[tokio::test]
async fn replay_overflow_is_an_explicit_gap() {
    let srv = ServerProcess::start(&["--replay-capacity", "5"]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await;
    publish_n(&mut c, &s.session_id, 20).await;
    let log = log_id(&mut c, &s.session_id).await;
    let mut stream = subscribe(&mut c, sub(&s.session_id, Some(1), "", &log)).await;
    let Kind::Welcome(w) = next(&mut stream, 5.0).await else {
        panic!("no welcome")
    };
    assert_eq!(w.next_sequence, 2);
    let Kind::Gap(g) = next(&mut stream, 5.0).await else {
        panic!("no gap")
    };
    assert_eq!(
        g,
        Gap {
            from_sequence: 2,
            missed: 14
        }
    );
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(event_seq(&next(&mut stream, 5.0).await));
    }
    assert_eq!(got, vec![16, 17, 18, 19, 20]);
    let stats = c.stats(StatsRequest {}).await.expect("stats").into_inner();
    assert_eq!(stats.counters.get("gaps_sent"), Some(&1));
    assert_eq!(stats.gauges.get("log_depth"), Some(&5));
    assert_eq!(stats.gauges.get("log_head"), Some(&20));
}

#[tokio::test]
async fn a_different_log_id_restarts_from_the_beginning_of_the_current_log() {
    let srv = ServerProcess::start(&["--replay-capacity", "3"]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await;
    publish_n(&mut c, &s.session_id, 4).await;
    let mut stream = subscribe(&mut c, sub(&s.session_id, Some(50), "", "an-old-log")).await;
    let Kind::Welcome(w) = next(&mut stream, 5.0).await else {
        panic!("no welcome")
    };
    let log = log_id(&mut c, &s.session_id).await;
    assert_eq!((w.next_sequence, w.log_id.as_str()), (1, log.as_str()));
    let Kind::Gap(g) = next(&mut stream, 5.0).await else {
        panic!("no gap")
    };
    assert_eq!((g.from_sequence, g.missed), (1, 1));
    for want in 2..=4 {
        assert_eq!(event_seq(&next(&mut stream, 5.0).await), want);
    }
}

#[tokio::test]
async fn quiet_streams_get_stream_heartbeats() {
    let srv = ServerProcess::start(&["--stream-heartbeat-interval", "300ms"]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    publish(&mut c, &s, "k", "x").await;
    let mut stream = subscribe(&mut c, sub(&s, None, "", "")).await;
    next(&mut stream, 5.0).await;
    let mut last = Instant::now();
    for _ in 0..3 {
        let Kind::Heartbeat(h) = next(&mut stream, 1.0).await else {
            panic!("expected a StreamHeartbeat")
        };
        let gap = last.elapsed();
        assert!(
            gap >= secs(0.2) && gap <= secs(0.8),
            "heartbeat after {gap:?}"
        );
        assert_eq!(h.head_sequence, 1);
        assert!(h.server_time_ms > 0);
        last = Instant::now();
    }
}

#[tokio::test]
async fn max_stream_age_ends_with_a_goaway_to_resume_from() {
    let srv = ServerProcess::start(&["--max-stream-age", "1s"]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await;
    let t0 = Instant::now();
    let mut stream = subscribe(&mut c, sub(&s.session_id, Some(0), "", "")).await;
    let Kind::Welcome(w) = next(&mut stream, 5.0).await else {
        panic!("no welcome")
    };
    publish_n(&mut c, &s.session_id, 2).await;
    assert_eq!(event_seq(&next(&mut stream, 5.0).await), 1);
    assert_eq!(event_seq(&next(&mut stream, 5.0).await), 2);
    let Kind::GoAway(g) = next_non_heartbeat(&mut stream, 3.0).await else {
        panic!("expected a GoAway")
    };
    let at = t0.elapsed();
    assert!(at >= secs(0.85) && at <= secs(1.6), "GoAway at {at:?}");
    assert_eq!(g.reason, "max_stream_age");
    assert_eq!(g.resume_after, 2);
    assert_eq!(g.resume_token, w.resume_token);
    expect_end(&mut stream, 2.0).await;

    // Resume where it said: exactly what came after.
    publish(&mut c, &s.session_id, "k3", "three").await;
    let mut resumed = subscribe(
        &mut c,
        sub(
            &s.session_id,
            Some(g.resume_after),
            &g.resume_token,
            &w.log_id,
        ),
    )
    .await;
    let Kind::Welcome(w2) = next(&mut resumed, 5.0).await else {
        panic!("no welcome")
    };
    assert_eq!(w2.next_sequence, 3);
    assert_eq!(event_seq(&next(&mut resumed, 5.0).await), 3);
}

#[tokio::test]
async fn sigterm_sends_goaway_shutdown_before_exit() {
    let mut srv = ServerProcess::start(&[]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    publish(&mut c, &s, "k", "x").await;
    let mut stream = subscribe(&mut c, sub(&s, Some(0), "", "")).await;
    next(&mut stream, 5.0).await;
    assert_eq!(event_seq(&next(&mut stream, 5.0).await), 1);
    srv.signal_term();
    let Kind::GoAway(g) = next_non_heartbeat(&mut stream, 5.0).await else {
        panic!("expected a GoAway")
    };
    assert_eq!((g.reason.as_str(), g.resume_after), ("shutdown", 1));
    expect_end(&mut stream, 5.0).await;
    let status = srv.wait_exit(secs(10.0)).await.expect("exited");
    assert!(status.success(), "{status:?}\n{}", srv.logs_text());
}

#[tokio::test]
async fn file_log_survives_a_restart() {
    let dir = std::env::temp_dir().join(format!("ka-service-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("events.log");
    let _ = std::fs::remove_file(&file);
    let path = file.to_str().expect("utf8");

    let mut srv = ServerProcess::start(&["--event-log", path]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await;
    publish_n(&mut c, &s.session_id, 3).await;
    let log = log_id(&mut c, &s.session_id).await;
    srv.signal_term();
    srv.wait_exit(secs(10.0)).await.expect("exited");

    let srv = ServerProcess::start(&["--event-log", path]).await;
    let mut c = client(&srv).await;
    let s2 = open(&mut c).await;
    assert_eq!(
        log_id(&mut c, &s2.session_id).await,
        log,
        "same sequence space after a restart"
    );
    let mut stream = subscribe(&mut c, sub(&s2.session_id, Some(2), "", &log)).await;
    let Kind::Welcome(w) = next(&mut stream, 5.0).await else {
        panic!("no welcome")
    };
    assert_eq!((w.head_sequence, w.next_sequence), (3, 3));
    let Kind::Event(e) = next(&mut stream, 5.0).await else {
        panic!("no event")
    };
    assert_eq!((e.sequence, e.text.as_str()), (3, "event 3"));
    // Idempotency keys survive too; new events continue the sequence.
    let dup = publish(&mut c, &s2.session_id, "k1", "again").await;
    assert_eq!((dup.sequence, dup.duplicate), (1, true));
    let p = publish(&mut c, &s2.session_id, "k4", "four").await;
    assert_eq!((p.sequence, p.duplicate), (4, false));
    assert_eq!(event_seq(&next(&mut stream, 5.0).await), 4);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn ticker_publishes_and_stats_count() {
    let srv = ServerProcess::start(&["--tick-interval", "100ms"]).await;
    let mut c = client(&srv).await;
    let s = open(&mut c).await.session_id;
    let mut stream = subscribe(&mut c, sub(&s, Some(0), "", "")).await;
    next(&mut stream, 5.0).await;
    let Kind::Event(e) = next(&mut stream, 5.0).await else {
        panic!("no tick")
    };
    assert_eq!((e.sequence, e.source.as_str()), (1, "ticker"));
    assert_eq!(e.text, "tick 1");
    let stats = c.stats(StatsRequest {}).await.expect("stats").into_inner();
    for name in [
        "sessions_opened",
        "subscriptions",
        "events_published",
        "events_delivered",
        "connections_h2",
        "goaways_sent",
    ] {
        assert!(stats.counters.contains_key(name), "{name}: {stats:?}");
    }
    for name in [
        "open_connections_h2",
        "open_connections_h1",
        "open_streams",
        "open_subscriptions",
        "sessions",
        "log_head",
        "log_depth",
    ] {
        assert!(stats.gauges.contains_key(name), "{name}: {stats:?}");
    }
    assert_eq!(stats.gauges.get("open_subscriptions"), Some(&1));
    assert_eq!(stats.gauges.get("sessions"), Some(&1));
    assert!(
        stats
            .counters
            .get("events_delivered")
            .is_some_and(|n| *n >= 1)
    );
}

/// What a page on plain http does: gRPC-web over HTTP/1.1, one keep-alive connection for
/// the unary calls and one for the stream; each message must arrive when it is sent.
#[tokio::test]
async fn grpc_web_over_http1_streams_each_message_at_once() {
    let srv = ServerProcess::start(&[
        "--stream-heartbeat-interval",
        "300ms",
        "--max-stream-age",
        "1500ms",
    ])
    .await;
    let mut unary = WebConn::connect(srv.addr()).await.expect("connect");
    let (open, trailers) = unary
        .unary::<OpenSessionResponse>("OpenSession", &OpenSessionRequest {}, secs(5.0))
        .await
        .expect("OpenSession");
    assert!(trailers.contains("grpc-status:0"), "{trailers:?}");
    let session = open.expect("a session").session_id;
    let hb = HeartbeatRequest {
        session_id: session.clone(),
        sequence: 1,
        client_send_time_ms: 5.5,
    };
    let (reply, _) = unary
        .unary::<HeartbeatResponse>("Heartbeat", &hb, secs(5.0))
        .await
        .expect("Heartbeat on the same connection");
    assert_eq!(reply.map(|r| r.sequence), Some(1));

    let mut stream = WebConn::connect(srv.addr()).await.expect("connect");
    stream
        .send("Subscribe", &sub(&session, Some(0), "", ""))
        .await
        .expect("send");
    assert_eq!(stream.head(secs(5.0)).await.expect("head"), 200);
    let mut next_kind = async || -> Kind {
        match stream.frame(secs(2.0)).await.expect("frame") {
            Some(WebFrame::Message(m)) => SubscribeResponse::decode(m.as_slice())
                .expect("decode")
                .kind
                .expect("kind"),
            other => panic!("expected a message, got {other:?}"),
        }
    };
    assert!(matches!(next_kind().await, Kind::Welcome(_)));
    let t = Instant::now();
    assert!(matches!(next_kind().await, Kind::Heartbeat(_)));
    assert!(t.elapsed() < secs(0.8), "heartbeat after {:?}", t.elapsed());
    let (published, _) = unary
        .unary::<common::pb::PublishResponse>(
            "Publish",
            &PublishRequest {
                session_id: session.clone(),
                idempotency_key: "web-1".into(),
                text: "from a page".into(),
            },
            secs(5.0),
        )
        .await
        .expect("Publish");
    assert_eq!(published.map(|p| p.sequence), Some(1));
    let event = loop {
        match next_kind().await {
            Kind::Heartbeat(_) => continue,
            other => break other,
        }
    };
    assert_eq!(event_seq(&event), 1);
    let go_away = loop {
        match next_kind().await {
            Kind::Heartbeat(_) => continue,
            other => break other,
        }
    };
    let Kind::GoAway(g) = go_away else {
        panic!("expected a GoAway, got {go_away:?}")
    };
    assert_eq!((g.reason.as_str(), g.resume_after), ("max_stream_age", 1));
    match stream.frame(secs(2.0)).await.expect("trailers") {
        Some(WebFrame::Trailers(t)) => assert!(t.contains("grpc-status:0"), "{t:?}"),
        other => panic!("expected trailers, got {other:?}"),
    }
}
