//! The bench's load generator against the real server, briefly, so that
//! `cargo xtask bench` cannot rot: a few browser-shaped sessions (heartbeats, a ticker
//! feed), a chaos STALL they must detect, and unary throughput over both protocols. Only
//! sanity is asserted, nothing timed tightly.

use keepalive::client::ClientConfig;
use loadgen::grpc::Wire;
use loadgen::scenario::sessions::{self, SessionsOptions, Stall};
use loadgen::scenario::unary::{self, UnaryOptions};
use std::time::Duration;
use testkit::ServerProcess;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn client(time: u64, timeout: u64) -> ClientConfig {
    ClientConfig {
        keepalive_time: ms(time),
        keepalive_timeout: ms(timeout),
        ..ClientConfig::default()
    }
}

fn options(srv: &ServerProcess, sessions: usize) -> SessionsOptions {
    SessionsOptions {
        addr: srv.addr(),
        sessions,
        ramp: ms(300),
        ready_timeout: Duration::from_secs(10),
        settle: ms(200),
        duration: Duration::from_secs(2),
        client: client(500, 1000),
        probe: true,
        source_ips: 0,
        stall: None,
        http2: false,
        announce: false,
    }
}

#[tokio::test]
async fn sessions_heartbeat_and_receive_the_feed() {
    let srv = ServerProcess::start(&["--tick-interval", "100ms"]).await;
    let r = sessions::run(options(&srv, 5)).await;
    assert_eq!(
        (r.ready_at_start, r.ready_at_end, r.errors),
        (5, 5, 0),
        "{r:?}"
    );
    // 5 sessions × 2 s at one heartbeat per 500 ms (probe): about 20.
    assert!(r.heartbeats >= 10, "{r:?}");
    let rtt = r.heartbeat_rtt;
    assert!(rtt.p50_ms > 0.0 && rtt.p50_ms <= rtt.p99_ms && rtt.p99_ms <= rtt.max_ms);
    assert!(rtt.max_ms < 1000.0, "{r:?}");
    // 10 ticks a second to each of 5 sessions for 2 s: about 100.
    assert!(r.events >= 50, "{r:?}");
    assert!(r.connects >= 10 && r.connects <= 30, "{r:?}");
}

#[tokio::test]
async fn sessions_detect_a_stall() {
    let srv = ServerProcess::start(&[
        "--tick-interval",
        "100ms",
        "--stream-heartbeat-interval",
        "300ms",
        "--chaos",
        "--chaos-token",
        "t",
    ])
    .await;
    let mut o = options(&srv, 3);
    o.client = client(300, 300);
    o.probe = false;
    o.duration = Duration::from_secs(2);
    o.stall = Some(Stall {
        after: ms(200),
        hold: ms(1500),
        token: "t".into(),
    });
    let r = sessions::run(o).await;
    let d = r.detection.expect("a detection report");
    assert_eq!((d.sessions, d.detected), (3, 3), "{d:?}");
    assert_eq!(d.expected_ms, 600.0);
    assert!(d.since_last_rx.p50_ms >= 500.0, "{d:?}");
    assert!(d.overshoot.max_ms < 1000.0, "{d:?}");
}

#[tokio::test]
async fn unary_over_both_protocols() {
    let srv = ServerProcess::start(&["--max-ping-strikes", "0"]).await;
    for wire in [Wire::Grpc, Wire::Web] {
        let r = unary::run(UnaryOptions {
            addr: srv.addr(),
            wire,
            concurrency: 4,
            warmup: ms(200),
            duration: ms(800),
        })
        .await
        .expect("unary run");
        assert_eq!(r.errors, 0, "{r:?}");
        assert!(r.requests >= 50, "{r:?}");
        assert!(
            r.requests_per_s > 0.0 && r.latency.count == r.requests,
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn sessions_over_http2_use_one_connection_each() {
    let srv = ServerProcess::start(&["--tick-interval", "100ms"]).await;
    let mut o = options(&srv, 3);
    o.http2 = true;
    let r = sessions::run(o).await;
    assert_eq!((r.ready_at_start, r.errors, r.connects), (3, 0, 3), "{r:?}");
    assert!(r.heartbeats >= 6 && r.events >= 30, "{r:?}");
}
