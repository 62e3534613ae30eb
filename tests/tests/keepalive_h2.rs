//! grpc-go's keepalive, frame by frame, over HTTP/2 (shared/KEEPALIVE.md §1): a.
//! PING/timeout, b. max-idle, c. max-age + grace, d. enforcement, e. SIGTERM. Timings are
//! checked with tolerances for a busy 2-core box.
//!
//! Every test runs against the example's `prices-server` — a server built with the
//! library's builder around a service that is not ours — so the frame-level behaviour is
//! proven for a user's server, not only for the demo.

use std::time::Duration;
use testkit::ServerProcess;
use tests::h2raw::{Frame, GoAway, MAX_STREAM_ID, RawH2, error_code};
use tokio::time::Instant;

const WATCH: &str = "/grpc.health.v1.Health/Watch";
const CHECK: &str = "/grpc.health.v1.Health/Check";

/// The example server with `args`.
async fn start(args: &[&str]) -> ServerProcess {
    ServerProcess::start_prices(args).await
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn assert_between(what: &str, got: Duration, lo: f64, hi: f64) {
    assert!(
        got >= secs(lo) && got <= secs(hi),
        "{what}: {got:?} not within {lo}s..{hi}s"
    );
}

async fn connect(srv: &ServerProcess) -> RawH2 {
    RawH2::connect_and_handshake(srv.addr())
        .await
        .expect("HTTP/2 handshake")
}

async fn next_goaway(c: &mut RawH2, timeout: f64) -> (Vec<Frame>, GoAway) {
    let (seen, f) = c
        .read_until(secs(timeout), |f| f.is_goaway())
        .await
        .expect("read");
    let g = f
        .and_then(|f| f.goaway())
        .unwrap_or_else(|| panic!("no GOAWAY; saw {seen:?}"));
    (seen, g)
}

async fn next_ping(c: &mut RawH2, timeout: f64) -> [u8; 8] {
    let (seen, f) = c
        .read_until(secs(timeout), |f| f.is_ping() && !f.is_ping_ack())
        .await
        .expect("read");
    f.and_then(|f| f.ping_data())
        .unwrap_or_else(|| panic!("no PING; saw {seen:?}"))
}

/// Opens a Health/Watch stream and waits for its first message (so the server has sent
/// HEADERS and DATA on it).
async fn open_watch(c: &mut RawH2, stream: u32) {
    c.open_grpc_stream(stream, WATCH, &[], true)
        .await
        .expect("send");
    let (seen, f) = c
        .read_until(secs(5.0), |f| f.is_data() && f.stream_id == stream)
        .await
        .expect("read");
    assert!(f.is_some(), "no Watch message; saw {seen:?}");
}

/// Pings with `data` and waits for the matching ACK; returns the frames seen before it.
async fn ping_and_ack(c: &mut RawH2, data: [u8; 8]) -> Vec<Frame> {
    c.ping(data).await.expect("send PING");
    let (seen, f) = c
        .read_until(secs(5.0), |f| {
            f.is_ping_ack() && f.ping_data() == Some(data)
        })
        .await
        .expect("read");
    assert!(f.is_some(), "no PING ACK; saw {seen:?}");
    seen
}

async fn assert_silent(c: &mut RawH2, what: &str, timeout: f64) {
    if let Ok(Some(f)) = c.read_frame(secs(timeout)).await {
        assert!(!f.is_goaway(), "{what}: unexpected {f:?}");
    }
}

// a. ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_ping_after_keepalive_time_and_close_after_timeout() {
    let srv = start(&["--keepalive-time", "1s", "--keepalive-timeout", "1s"]).await;
    let t0 = Instant::now();
    let mut c = connect(&srv).await;
    next_ping(&mut c, 3.0).await;
    let pinged = t0.elapsed();
    assert_between("PING after keepalive-time", pinged, 0.9, 1.6);
    // Do not answer: the server must close after keepalive-timeout.
    let frames = c.expect_closed(secs(3.0)).await.expect("closed");
    assert!(frames.iter().all(|f| !f.is_goaway()), "{frames:?}");
    assert_between(
        "close after keepalive-timeout",
        t0.elapsed() - pinged,
        0.9,
        1.6,
    );
    srv.assert_metric(
        r#"keepalive_connections_closed_total{reason="keepalive_timeout"}"#,
        1.0,
    )
    .await;
}

#[tokio::test]
async fn a_answered_pings_keep_the_connection_open() {
    let srv = start(&["--keepalive-time", "1s", "--keepalive-timeout", "1s"]).await;
    let mut c = connect(&srv).await;
    for _ in 0..3 {
        let data = next_ping(&mut c, 3.0).await;
        c.ping_ack(data).await.expect("ack");
    }
    // Still open: a Check is answered.
    c.open_grpc_stream(1, CHECK, &[], true).await.expect("send");
    let (_, f) = c
        .read_until(secs(3.0), |f| {
            f.is_headers() && f.stream_id == 1 && f.is_end_stream()
        })
        .await
        .expect("read");
    assert!(f.is_some(), "Check not answered");
    srv.assert_metric("keepalive_pings_sent_total", 3.0).await;
}

// b. ---------------------------------------------------------------------------------

/// When the first GOAWAY of a fresh connection comes (measured from before connect), and
/// its debug data.
async fn first_goaway_after(srv: &ServerProcess) -> (Duration, String) {
    let t0 = Instant::now();
    let mut c = connect(srv).await;
    let (_, g) = next_goaway(&mut c, 5.0).await;
    (t0.elapsed(), g.debug_str())
}

/// Ten connections opened together: their deadlines fall within ±10% of `base` (plus a
/// little for a busy machine) and are spread, not equal.
fn assert_jittered(what: &str, times: &[Duration], base: f64) {
    let ms: Vec<u128> = times.iter().map(|d| d.as_millis()).collect();
    eprintln!("{what} GOAWAY after (ms, {base}s ±10%): {ms:?}");
    for t in times {
        assert_between(what, *t, base * 0.9 - 0.05, base * 1.1 + 0.4);
    }
    let spread = times.iter().max().copied().unwrap_or_default()
        - times.iter().min().copied().unwrap_or_default();
    assert!(spread >= secs(0.02), "no jitter: {ms:?}");
}

#[tokio::test]
async fn c_max_age_is_jittered_over_ten_connections() {
    let srv = start(&["--max-connection-age", "2s"]).await;
    let results = futures_join_all((0..10).map(|_| first_goaway_after(&srv))).await;
    assert!(results.iter().all(|(_, d)| d == "max_age"), "{results:?}");
    let times: Vec<Duration> = results.into_iter().map(|(t, _)| t).collect();
    assert_jittered("age", &times, 2.0);
}

/// One connection's idle drain: GOAWAY(2^31-1, NO_ERROR, max_idle) + PING, then after the
/// ACK the final GOAWAY with the real last stream id, then close. Returns when the first
/// GOAWAY came, measured from before connect.
async fn idle_drain(srv: &ServerProcess) -> Duration {
    let t0 = Instant::now();
    let mut c = connect(srv).await;
    let (_, first) = next_goaway(&mut c, 5.0).await;
    let at = t0.elapsed();
    assert_eq!(first.last_stream_id, MAX_STREAM_ID);
    assert_eq!(first.error_code, error_code::NO_ERROR);
    assert_eq!(first.debug_str(), "max_idle");
    let data = next_ping(&mut c, 2.0).await;
    c.ping_ack(data).await.expect("ack");
    let (_, last) = next_goaway(&mut c, 2.0).await;
    assert_eq!(last.last_stream_id, 0);
    assert_eq!(last.debug_str(), "max_idle");
    c.expect_closed(secs(2.0))
        .await
        .expect("closed after drain");
    at
}

#[tokio::test]
async fn b_max_idle_two_step_goaway_with_jitter_over_ten_connections() {
    let srv = start(&["--max-connection-idle", "2s"]).await;
    let times = futures_join_all((0..10).map(|_| idle_drain(&srv))).await;
    assert_jittered("idle", &times, 2.0);
}

#[tokio::test]
async fn b_active_stream_holds_off_idle() {
    let srv = start(&["--max-connection-idle", "1s"]).await;
    let mut c = connect(&srv).await;
    open_watch(&mut c, 1).await;
    assert_silent(&mut c, "idle with an open stream", 2.0).await;
    // Ending the stream restarts the idle clock.
    c.rst_stream(1, error_code::CANCEL).await.expect("rst");
    let t = Instant::now();
    let (_, g) = next_goaway(&mut c, 3.0).await;
    assert_eq!(g.debug_str(), "max_idle");
    assert_between("idle after last stream closed", t.elapsed(), 0.8, 1.6);
}

// c. ---------------------------------------------------------------------------------

#[tokio::test]
async fn c_max_age_goaway_streams_flow_through_grace_then_close() {
    let srv = start(&[
        "--max-connection-age",
        "1s",
        "--max-connection-age-grace",
        "1s",
    ])
    .await;
    let t0 = Instant::now();
    let mut c = connect(&srv).await;
    open_watch(&mut c, 1).await;
    let (_, first) = next_goaway(&mut c, 3.0).await;
    let aged = t0.elapsed();
    assert_between("age GOAWAY", aged, 0.85, 1.5);
    assert_eq!(
        (
            first.last_stream_id,
            first.error_code,
            first.debug_str().as_str()
        ),
        (MAX_STREAM_ID, error_code::NO_ERROR, "max_age")
    );
    let ping = next_ping(&mut c, 2.0).await;
    // Between the two GOAWAYs a new stream is still served.
    c.open_grpc_stream(3, CHECK, &[], true).await.expect("send");
    let (_, done) = c
        .read_until(secs(2.0), |f| {
            f.is_headers() && f.stream_id == 3 && f.is_end_stream()
        })
        .await
        .expect("read");
    assert!(done.is_some(), "stream 3 not answered during the drain");
    c.ping_ack(ping).await.expect("ack");
    let (_, last) = next_goaway(&mut c, 2.0).await;
    assert_eq!(
        (last.last_stream_id, last.debug_str().as_str()),
        (3, "max_age")
    );
    // The Watch stream stays open through the grace, then the connection is closed.
    let frames = c
        .expect_closed(secs(3.0))
        .await
        .expect("closed after grace");
    assert!(
        !frames.iter().any(|f| f.is_rst_stream() && f.stream_id == 1),
        "stream 1 was reset before the grace ended: {frames:?}"
    );
    assert_between("close after grace", t0.elapsed() - aged, 0.85, 1.6);
    srv.assert_metric(
        r#"keepalive_connections_closed_total{reason="max_age_grace"}"#,
        1.0,
    )
    .await;
}

// d. ---------------------------------------------------------------------------------

#[tokio::test]
async fn d_third_strike_gets_goaway_enhance_your_calm_too_many_pings() {
    let srv = start(&[]).await; // grpc-go defaults: 5m, 2 strikes
    let mut c = connect(&srv).await;
    open_watch(&mut c, 1).await;
    // PING 1 follows server data: not judged. PINGs 2 and 3: strikes 1 and 2.
    for i in 1..=3u8 {
        ping_and_ack(&mut c, [i; 8]).await;
        assert_silent(&mut c, "before the third strike", 0.2).await;
    }
    // PING 4: strike 3 > 2 → ACK, then GOAWAY ENHANCE_YOUR_CALM, then close.
    ping_and_ack(&mut c, [4; 8]).await;
    let (_, g) = next_goaway(&mut c, 2.0).await;
    assert_eq!(g.error_code, error_code::ENHANCE_YOUR_CALM);
    assert_eq!(g.debug_str(), "too_many_pings");
    assert_eq!(g.last_stream_id, 1);
    c.expect_closed(secs(3.0)).await.expect("closed");
    srv.assert_metric("keepalive_ping_strikes_total", 3.0).await;
    srv.assert_metric(r#"keepalive_goaways_total{reason="too_many_pings"}"#, 1.0)
        .await;
}

#[tokio::test]
async fn d_server_data_resets_the_strikes() {
    let srv = start(&[]).await;
    let mut c = connect(&srv).await;
    open_watch(&mut c, 1).await;
    for i in 1..=3u8 {
        ping_and_ack(&mut c, [i; 8]).await; // accepted, strike 1, strike 2
    }
    // The server sends HEADERS and DATA: the next PING resets the strikes.
    c.open_grpc_stream(3, CHECK, &[], true).await.expect("send");
    c.read_until(secs(2.0), |f| {
        f.is_headers() && f.stream_id == 3 && f.is_end_stream()
    })
    .await
    .expect("read");
    for i in 4..=6u8 {
        ping_and_ack(&mut c, [i; 8]).await; // reset, strike 1, strike 2
        assert_silent(&mut c, "after the reset", 0.2).await;
    }
    ping_and_ack(&mut c, [7; 8]).await;
    let (_, g) = next_goaway(&mut c, 2.0).await;
    assert_eq!(g.debug_str(), "too_many_pings");
    assert_eq!(g.last_stream_id, 3);
}

#[tokio::test]
async fn d_without_stream_the_two_hour_rule_applies_unless_permitted() {
    let strict = start(&["--min-ping-interval", "100ms"]).await;
    let mut c = connect(&strict).await;
    for i in 1..=4u8 {
        tokio::time::sleep(secs(0.3)).await;
        ping_and_ack(&mut c, [i; 8]).await;
    }
    let (_, g) = next_goaway(&mut c, 2.0).await;
    assert_eq!(g.debug_str(), "too_many_pings");
    assert_eq!(g.last_stream_id, 0);

    let permitted = start(&[
        "--min-ping-interval",
        "100ms",
        "--permit-keepalive-without-stream",
    ])
    .await;
    let mut c = connect(&permitted).await;
    for i in 1..=5u8 {
        tokio::time::sleep(secs(0.3)).await;
        ping_and_ack(&mut c, [i; 8]).await;
    }
    assert_silent(&mut c, "permitted pings", 0.5).await;
    permitted
        .assert_metric("keepalive_ping_strikes_total", 0.0)
        .await;
}

#[tokio::test]
async fn d_zero_max_strikes_is_unlimited() {
    let srv = start(&["--max-ping-strikes", "0"]).await;
    let mut c = connect(&srv).await;
    open_watch(&mut c, 1).await;
    for i in 0..20u8 {
        ping_and_ack(&mut c, [i; 8]).await;
    }
    assert_silent(&mut c, "unlimited strikes", 0.3).await;
    srv.assert_metric("keepalive_ping_strikes_total", 19.0)
        .await;
    srv.assert_metric(r#"keepalive_goaways_total{reason="too_many_pings"}"#, 0.0)
        .await;
}

// e. ---------------------------------------------------------------------------------

#[tokio::test]
async fn e_sigterm_drains_with_goaway_then_exits_zero_within_grace() {
    let mut srv = start(&["--shutdown-grace", "1s"]).await;
    let mut c = connect(&srv).await;
    open_watch(&mut c, 1).await;
    let t0 = Instant::now();
    srv.signal_term();
    let (mut seen, first) = next_goaway(&mut c, 3.0).await;
    assert_eq!(first.debug_str(), "graceful_stop");
    assert_eq!(first.last_stream_id, MAX_STREAM_ID);
    let ping = next_ping(&mut c, 2.0).await;
    c.ping_ack(ping).await.expect("ack");
    let (more, last) = next_goaway(&mut c, 2.0).await;
    seen.extend(more);
    assert_eq!(last.last_stream_id, 1);
    seen.extend(c.expect_closed(secs(4.0)).await.expect("closed"));
    // Health turned NOT_SERVING (status 2) on the open Watch as the server stopped.
    let not_serving = seen
        .iter()
        .any(|f| f.is_data() && f.stream_id == 1 && f.payload.ends_with(&[0x08, 0x02]));
    assert!(not_serving, "no NOT_SERVING on the Watch stream: {seen:?}");
    let status = srv.wait_exit(secs(5.0)).await.expect("server exited");
    assert_eq!(status.code(), Some(0));
    assert_between("shutdown within grace", t0.elapsed(), 0.0, 3.5);
}

#[tokio::test]
async fn e_sigint_with_no_connections_exits_at_once() {
    let mut srv = start(&[]).await;
    let t0 = Instant::now();
    srv.signal_int();
    let status = srv.wait_exit(secs(5.0)).await.expect("server exited");
    assert_eq!(status.code(), Some(0));
    assert!(t0.elapsed() < secs(1.5), "took {:?}", t0.elapsed());
}

/// The wall-clock time of the server's `shutdown complete` line (tracing's RFC 3339 UTC
/// timestamp at the start of the line).
fn shutdown_logged_at(srv: &ServerProcess) -> std::time::SystemTime {
    let line = srv
        .logs()
        .into_iter()
        .find(|l| l.contains("shutdown complete"))
        .unwrap_or_else(|| panic!("no shutdown complete line: {}", srv.logs_text()));
    let ts = line.split_whitespace().next().expect("timestamp");
    parse_utc(ts).unwrap_or_else(|| panic!("bad timestamp {ts:?}"))
}

/// `2026-12-01T21:40:15.131021Z` → SystemTime.
fn parse_utc(ts: &str) -> Option<std::time::SystemTime> {
    let (date, time) = ts.strip_suffix('Z')?.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 + sec;
    let nanos: u32 = format!("{frac:0<9}").get(..9)?.parse().ok()?;
    Some(std::time::UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// Signals `srv` with SIGTERM and returns how long after its `shutdown complete` line the
/// process was gone (exit polled every 2 ms).
async fn exit_after_drain(srv: &mut ServerProcess) -> Duration {
    srv.signal_term();
    let deadline = Instant::now() + secs(10.0);
    let exited_at = loop {
        if srv.try_status().is_some() {
            break std::time::SystemTime::now();
        }
        assert!(Instant::now() < deadline, "no exit within 10 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let _ = srv.wait_exit(secs(5.0)).await;
    exited_at
        .duration_since(shutdown_logged_at(srv))
        .unwrap_or(Duration::ZERO)
}

#[tokio::test]
async fn e_the_process_exits_right_after_the_drain() {
    // Both binaries built on the library: the demo and the example.
    for (name, mut srv) in [
        ("server", ServerProcess::start(&[]).await),
        ("prices-server", start(&[]).await),
    ] {
        let idle = exit_after_drain(&mut srv).await;
        eprintln!("FIGURE {name}: exit {idle:?} after shutdown complete (no connection)");
        assert!(idle <= Duration::from_millis(100), "{name}: {idle:?}");
    }
    for (name, mut srv) in [
        (
            "server",
            ServerProcess::start(&["--shutdown-grace", "2s"]).await,
        ),
        ("prices-server", start(&["--shutdown-grace", "2s"]).await),
    ] {
        // A Watch never ends by itself: the drain waits for the grace, then closes it.
        let mut c = connect(&srv).await;
        open_watch(&mut c, 1).await;
        let drained = exit_after_drain(&mut srv).await;
        drop(c);
        eprintln!("FIGURE {name}: exit {drained:?} after shutdown complete (one Watch drained)");
        assert!(drained <= Duration::from_millis(100), "{name}: {drained:?}");
    }
}

/// Runs futures concurrently (no extra dependency for join_all).
async fn futures_join_all<F: std::future::Future<Output = T>, T>(
    futs: impl Iterator<Item = F>,
) -> Vec<T> {
    let futs: Vec<_> = futs.map(Box::pin).collect();
    let mut out = Vec::with_capacity(futs.len());
    let mut pending: Vec<_> = futs.into_iter().map(Some).collect();
    let mut results: Vec<Option<T>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}
