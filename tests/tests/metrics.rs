//! `GET /metrics` against the real server process: the Prometheus text parses, and the
//! counters move after known actions (a session, heartbeats, a subscription, a publish,
//! a ping strike) while gRPC on the same port is undisturbed.

mod common;

use common::*;
use std::collections::HashMap;
use std::time::Duration;
use testkit::ServerProcess;
use tests::http1::Http1;

/// One scrape: `name{labels}` → value, plus the `# TYPE` of each family.
#[derive(Debug)]
struct Scrape {
    samples: HashMap<String, f64>,
    types: HashMap<String, String>,
}

impl Scrape {
    fn get(&self, key: &str) -> f64 {
        *self
            .samples
            .get(key)
            .unwrap_or_else(|| panic!("no sample {key} in {:?}", self.samples))
    }
}

/// Parses the text format strictly enough to catch a broken body: every sample line is
/// `name[{labels}] value`, every sample belongs to a family with a `# TYPE`, and the body
/// ends with `# EOF`.
fn parse(body: &str) -> Scrape {
    assert!(body.ends_with("# EOF\n"), "no EOF marker: {body}");
    let mut samples = HashMap::new();
    let mut types = HashMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').expect("TYPE line");
            types.insert(name.to_string(), ty.to_string());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').expect("sample line");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = key.split('{').next().expect("name");
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "bad metric name: {line}"
        );
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            types.contains_key(family) || types.contains_key(name),
            "sample without a TYPE: {line}"
        );
        samples.insert(key.to_string(), value);
    }
    Scrape { samples, types }
}

async fn scrape(srv: &ServerProcess) -> Scrape {
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send("GET", "/metrics", &[("connection", "close")], b"")
        .await
        .expect("send");
    let head = c.read_head(secs(5.0)).await.expect("head");
    assert_eq!(head.status, 200, "{head:?}");
    assert!(
        head.header("content-type")
            .is_some_and(|ct| ct.starts_with("application/openmetrics-text")),
        "{head:?}"
    );
    let body = c.expect_closed(secs(5.0)).await.expect("body");
    parse(&String::from_utf8(body).expect("utf-8"))
}

#[tokio::test]
async fn metrics_parse_and_move_after_known_actions() {
    let srv = ServerProcess::start(&["--stream-heartbeat-interval", "1s"]).await;
    let before = scrape(&srv).await;
    assert_eq!(before.types["keepalive_connections"], "counter");
    assert_eq!(before.types["keepalive_connections_open"], "gauge");
    assert_eq!(before.types["keepalive_replay_log_depth"], "gauge");
    assert_eq!(before.get("keepalive_heartbeats_total"), 0.0);
    assert_eq!(
        before.get("keepalive_connections_total{protocol=\"h2\"}"),
        0.0
    );
    // The scrape itself is an HTTP/1.1 connection.
    assert!(before.get("keepalive_connections_total{protocol=\"http1\"}") >= 1.0);

    let mut c = client(&srv).await;
    let s = open(&mut c).await;
    let mut feed = subscribe(&mut c, sub(&s.session_id, None, "", "")).await;
    let _welcome = next(&mut feed, 5.0).await;
    // Two heartbeats back to back: the second is a strike (the default MinTime is 5 min
    // and the subscription has sent nothing in between).
    heartbeat(&mut c, &s.session_id, 1)
        .await
        .expect("heartbeat");
    heartbeat(&mut c, &s.session_id, 2)
        .await
        .expect("heartbeat");
    publish(&mut c, &s.session_id, "k1", "hello").await;
    let ev = next_non_heartbeat(&mut feed, 5.0).await;
    assert_eq!(event_seq(&ev), 1);

    let after = scrape(&srv).await;
    let moved = |key: &str| after.get(key) - before.get(key);
    assert_eq!(moved("keepalive_sessions_opened_total"), 1.0);
    assert_eq!(after.get("keepalive_sessions_open"), 1.0);
    assert_eq!(moved("keepalive_heartbeats_total"), 2.0);
    assert_eq!(moved("keepalive_heartbeat_strikes_total"), 1.0);
    assert_eq!(moved("keepalive_subscriptions_total"), 1.0);
    assert_eq!(after.get("keepalive_subscriptions_open"), 1.0);
    assert_eq!(moved("keepalive_events_published_total"), 1.0);
    assert_eq!(moved("keepalive_events_delivered_total"), 1.0);
    assert_eq!(after.get("keepalive_log_head_sequence"), 1.0);
    assert_eq!(after.get("keepalive_replay_log_depth"), 1.0);
    assert_eq!(moved("keepalive_connections_total{protocol=\"h2\"}"), 1.0);
    assert_eq!(
        after.get("keepalive_connections_open{protocol=\"h2\"}"),
        1.0
    );
    // OpenSession, Subscribe (still open), 2 heartbeats, Publish on HTTP/2; the scrape.
    assert!(moved("keepalive_streams_total") >= 5.0);
    assert!(after.get("keepalive_streams_open") >= 1.0);

    // Drop the subscription: the gauges come back down; gRPC still answers.
    drop(feed);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = scrape(&srv).await;
        if now.get("keepalive_subscriptions_open") == 0.0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    heartbeat(&mut c, &s.session_id, 3)
        .await
        .expect("heartbeat");
}

#[tokio::test]
async fn only_get_metrics_is_answered_by_metrics() {
    let srv = ServerProcess::start(&[]).await;
    // POST /metrics is not a scrape: it goes to the gRPC routes (no such service).
    let mut c = Http1::connect(srv.addr()).await.expect("connect");
    c.send(
        "POST",
        "/metrics",
        &[("content-type", "application/grpc-web+proto")],
        &[0, 0, 0, 0, 0],
    )
    .await
    .expect("send");
    let head = c.read_head(secs(5.0)).await.expect("head");
    assert!(
        head.header("content-type")
            .is_none_or(|ct| !ct.starts_with("application/openmetrics-text")),
        "{head:?}"
    );
    // h2 counters do not move for HTTP/1.1 scrapes.
    let s = scrape(&srv).await;
    assert_eq!(s.get("keepalive_connections_total{protocol=\"h2\"}"), 0.0);
}
