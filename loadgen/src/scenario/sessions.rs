//! N browser sessions against one server: capacity, detection (chaos STALL) and recovery
//! (a server restart done from outside), all in one runner.
//!
//! 1. Sessions start spread evenly over `ramp` (a thundering herd of connects would
//!    measure the listen backlog, not the server).
//! 2. When all are READY (or `ready_timeout` passed) the runner says `READY` on stdout,
//!    waits `settle`, then measures for `duration`, saying `MEASURE start` and
//!    `MEASURE end` so that a supervisor can read the server's CPU and memory at those
//!    moments (and kill or restart it in between).
//! 3. With a stall, `stall.after` into the window it calls chaos STALL for `stall.hold`
//!    and records the moment; every session should then leave READY at `Time + Timeout`
//!    after the last byte it received.
//! 4. At the end every session is closed and the records are folded into a
//!    [`SessionsReport`].

use crate::driver::{self, Clock, Session, SessionConfig, SessionRecord, Totals};
use crate::grpc::CallError;
use crate::histogram::{Summary, summarize_ms};
use crate::http::{self, Target};
use demo_proto::v1::{ChaosAction, ChaosRequest, ChaosResponse};
use keepalive::client::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::watch;

/// A chaos STALL during the window.
#[derive(Clone, Debug)]
pub struct Stall {
    /// How far into the window.
    pub after: Duration,
    /// How long the server stays stalled.
    pub hold: Duration,
    /// The server's `--chaos-token`.
    pub token: String,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct SessionsOptions {
    /// The server.
    pub addr: SocketAddr,
    /// How many sessions.
    pub sessions: usize,
    /// Session starts are spread over this long.
    pub ramp: Duration,
    /// Give up waiting for all sessions READY after this long (from the start).
    pub ready_timeout: Duration,
    /// Wait this long after READY before measuring.
    pub settle: Duration,
    /// The measurement window.
    pub duration: Duration,
    /// The client's knobs (Time, Timeout, backoff).
    pub client: ClientConfig,
    /// Heartbeat every `Time` even while events arrive.
    pub probe: bool,
    /// Connect from this many loopback addresses (127.0.0.2, …) instead of 127.0.0.1
    /// only, so tens of thousands of connections do not run out of ephemeral ports.
    pub source_ips: u8,
    /// A chaos STALL during the window.
    pub stall: Option<Stall>,
    /// gRPC-web over one HTTP/2 connection per session instead of HTTP/1.1.
    pub http2: bool,
    /// Print `READY` / `MEASURE` lines on stdout.
    pub announce: bool,
}

/// Detection figures: when sessions left READY after a stall.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Detection {
    /// `Time + Timeout`, ms: the promise.
    pub expected_ms: f64,
    /// Sessions that were READY when the stall began.
    pub sessions: usize,
    /// Of those, how many left READY during the stall.
    pub detected: usize,
    /// From the last byte received to leaving READY, ms.
    pub since_last_rx: Summary,
    /// That minus `Time + Timeout`, ms (the target is ≤ 100 for every session).
    pub overshoot: Summary,
    /// From the chaos call to leaving READY, ms.
    pub since_stall: Summary,
    /// Why, by the core's reason.
    pub reasons: BTreeMap<String, usize>,
}

/// Recovery figures: after the first loss in the window (a server restart).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Recovery {
    /// Sessions that lost their connection in the window.
    pub lost: usize,
    /// Of those, how many were READY again before the end.
    pub recovered: usize,
    /// Of those, how many got a resumed event before the end.
    pub resumed_with_event: usize,
    /// From the loss to READY again, ms.
    pub loss_to_ready: Summary,
    /// From the start of the attempt that succeeded (the end of its backoff slot) to
    /// READY, ms.
    pub slot_to_ready: Summary,
    /// The backoff delay of the first retry, ms (1 s ± 20% by default).
    pub first_backoff: Summary,
    /// Attempts until READY again (1 = the first retry worked).
    pub attempts: Summary,
    /// From READY again to the first resumed event delivered, ms.
    pub ready_to_first_event: Summary,
    /// From the loss to the first resumed event, ms.
    pub loss_to_first_event: Summary,
    /// Sessions becoming READY again per 100 ms after the first loss (the storm's shape).
    pub ready_per_100ms: Vec<u32>,
    /// Attempts started per 100 ms after the first loss.
    pub attempts_per_100ms: Vec<u32>,
}

/// What a run measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SessionsReport {
    /// Sessions started.
    pub sessions: usize,
    /// READY when the window began.
    pub ready_at_start: u64,
    /// READY at the end.
    pub ready_at_end: u64,
    /// Seconds from the first start until all were READY (or the timeout).
    pub ready_after_s: f64,
    /// The window, s.
    pub window_s: f64,
    /// Heartbeats answered in the window.
    pub heartbeats: u64,
    /// Their round trips as the core measured them.
    pub heartbeat_rtt: Summary,
    /// Events delivered in the window (all sessions).
    pub events: u64,
    /// Events delivered per second (all sessions).
    pub events_per_s: f64,
    /// Receive wall clock minus the server's publish stamp.
    pub event_lag: Summary,
    /// Heartbeats that failed or were refused in the window.
    pub heartbeat_errors: u64,
    /// Connections lost in the window.
    pub losses: u64,
    /// Sessions not READY at the start of the window.
    pub not_ready: u64,
    /// heartbeat_errors + losses + not_ready.
    pub errors: u64,
    /// Every loss of the run, by the core's reason.
    pub loss_reasons: BTreeMap<String, usize>,
    /// Reconnects (core counters, whole run).
    pub reconnects: u64,
    /// Resumes (whole run).
    pub resumes: u64,
    /// Gaps reported (whole run).
    pub gaps: u64,
    /// Duplicates dropped (whole run).
    pub duplicates: u64,
    /// HTTP/1.1 connections opened (whole run).
    pub connects: u64,
    /// Window start, s since the runner's origin.
    pub window_start_s: f64,
    /// The stall's chaos call, s since the origin.
    pub stall_at_s: Option<f64>,
    /// With a stall.
    pub detection: Option<Detection>,
    /// When sessions lost their connection in the window.
    pub recovery: Option<Recovery>,
}

fn say(on: bool, line: &str) {
    if on {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// Runs the sessions and reports.
pub async fn run(opts: SessionsOptions) -> SessionsReport {
    let clock = Clock::start();
    let totals = Arc::new(Totals::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(opts.sessions);
    let n = opts.sessions.max(1);
    let seed = fastrand::u64(..);
    for i in 0..opts.sessions {
        let local_ip = (opts.source_ips > 0).then(|| {
            IpAddr::V4(Ipv4Addr::new(
                127,
                0,
                0,
                2 + (i % opts.source_ips as usize) as u8,
            ))
        });
        let config = SessionConfig {
            client: opts.client,
            probe: opts.probe,
            target: Target {
                addr: opts.addr,
                local_ip,
            },
            http2: opts.http2,
            from_start: false,
        };
        let start_at = opts.ramp.mul_f64(i as f64 / n as f64);
        let totals = totals.clone();
        let stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(start_at).await;
            Session::run(config, clock, seed ^ (i as u64), totals, stop).await
        }));
    }

    // All READY (or the timeout).
    let ready_deadline = tokio::time::Instant::now() + opts.ready_timeout;
    while (totals.ready.load(Relaxed) as usize) < opts.sessions
        && tokio::time::Instant::now() < ready_deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let ready_after_s = clock.secs();
    say(
        opts.announce,
        &format!("READY {} {ready_after_s:.3}", totals.ready.load(Relaxed)),
    );
    tokio::time::sleep(opts.settle).await;

    let ready_at_start = totals.ready.load(Relaxed);
    totals.rtt.reset();
    totals.lag.reset();
    totals.measuring.store(true, Relaxed);
    let window_start_s = clock.secs();
    say(opts.announce, "MEASURE start");
    let window_end = tokio::time::Instant::now() + opts.duration;
    let mut stall_at_s = None;
    if let Some(stall) = &opts.stall {
        tokio::time::sleep(stall.after.min(opts.duration)).await;
        let at = clock.secs();
        match chaos_stall(opts.addr, stall).await {
            Ok(_) => stall_at_s = Some(at),
            Err(e) => eprintln!("loadgen: chaos STALL failed: {e}"),
        }
    }
    tokio::time::sleep_until(window_end).await;
    totals.measuring.store(false, Relaxed);
    let window_s = clock.secs() - window_start_s;
    say(opts.announce, "MEASURE end");
    let ready_at_end = totals.ready.load(Relaxed);

    let _ = stop_tx.send(true);
    let mut records = Vec::with_capacity(tasks.len());
    for t in tasks {
        if let Ok(r) = t.await {
            records.push(r);
        }
    }

    let heartbeat_errors = totals.heartbeat_errors.load(Relaxed);
    let losses = totals.losses.load(Relaxed);
    let not_ready = (opts.sessions as u64).saturating_sub(ready_at_start);
    let events = totals.events.load(Relaxed);
    let mut report = SessionsReport {
        sessions: opts.sessions,
        ready_at_start,
        ready_at_end,
        ready_after_s,
        window_s,
        heartbeats: totals.heartbeats.load(Relaxed),
        heartbeat_rtt: totals.rtt.summary(),
        events,
        events_per_s: events as f64 / window_s.max(1e-9),
        event_lag: totals.lag.summary(),
        heartbeat_errors,
        losses,
        not_ready,
        errors: heartbeat_errors + losses + not_ready,
        window_start_s,
        stall_at_s,
        ..SessionsReport::default()
    };
    for r in &records {
        report.reconnects += r.stats.reconnects;
        report.resumes += r.stats.resumes;
        report.gaps += r.stats.gaps;
        report.duplicates += r.stats.duplicates_dropped;
        report.connects += r.connects;
        for l in &r.losses {
            *report.loss_reasons.entry(l.reason.to_string()).or_default() += 1;
        }
    }
    let window_end_s = window_start_s + window_s;
    if let (Some(stall_at), Some(stall)) = (stall_at_s, &opts.stall) {
        let expected = opts.client.keepalive_time + opts.client.keepalive_timeout;
        report.detection = Some(detection(
            &records,
            stall_at,
            stall_at + stall.hold.as_secs_f64(),
            expected,
        ));
    } else if losses > 0 {
        report.recovery = Some(recovery(&records, window_start_s, window_end_s));
    }
    report
}

/// Chaos STALL over a connection of its own.
async fn chaos_stall(addr: SocketAddr, stall: &Stall) -> Result<ChaosResponse, CallError> {
    let target = Target {
        addr,
        local_ip: None,
    };
    let mut conn = http::open_h1(&target).await?;
    let req = ChaosRequest {
        token: stall.token.clone(),
        action: ChaosAction::Stall as i32,
        duration_ms: u64::try_from(stall.hold.as_millis()).unwrap_or(u64::MAX),
    };
    http::unary(
        &mut http::Sender::H1(&mut conn),
        &target.authority(),
        driver::path::CHAOS,
        &req,
    )
    .await
}

fn was_ready_at(r: &SessionRecord, t: f64) -> bool {
    r.states
        .iter()
        .take_while(|(at, _)| *at <= t)
        .last()
        .is_some_and(|(_, s)| *s == "READY")
}

fn detection(
    records: &[SessionRecord],
    stall_at: f64,
    until: f64,
    expected: Duration,
) -> Detection {
    let expected_ms = expected.as_secs_f64() * 1000.0;
    let mut d = Detection {
        expected_ms,
        ..Detection::default()
    };
    let (mut since_rx, mut over, mut since_stall) = (Vec::new(), Vec::new(), Vec::new());
    for r in records.iter().filter(|r| was_ready_at(r, stall_at)) {
        d.sessions += 1;
        let Some(loss) = r.losses.iter().find(|l| l.at >= stall_at && l.at <= until) else {
            continue;
        };
        d.detected += 1;
        let from_rx = (loss.at - loss.last_rx) * 1000.0;
        since_rx.push(from_rx);
        over.push(from_rx - expected_ms);
        since_stall.push((loss.at - stall_at) * 1000.0);
        *d.reasons.entry(loss.reason.to_string()).or_default() += 1;
    }
    d.since_last_rx = summarize_ms(&mut since_rx);
    d.overshoot = summarize_ms(&mut over);
    d.since_stall = summarize_ms(&mut since_stall);
    d
}

fn bucket(list: &mut Vec<u32>, secs: f64) {
    let i = (secs.max(0.0) * 10.0) as usize;
    if list.len() <= i {
        list.resize(i + 1, 0);
    }
    list[i] += 1;
}

fn recovery(records: &[SessionRecord], from: f64, until: f64) -> Recovery {
    let mut rec = Recovery::default();
    let first_loss = records
        .iter()
        .flat_map(|r| r.losses.iter())
        .filter(|l| l.at >= from && l.at <= until)
        .map(|l| l.at)
        .fold(f64::INFINITY, f64::min);
    let mut lists: [Vec<f64>; 6] = Default::default();
    for r in records {
        let Some(loss) = r.losses.iter().find(|l| l.at >= from && l.at <= until) else {
            continue;
        };
        rec.lost += 1;
        lists[2].push(loss.retry_in * 1000.0);
        let after: Vec<&(f64, &str)> = r.states.iter().filter(|(t, _)| *t > loss.at).collect();
        let mut attempts = 0;
        let mut attempt_at = None;
        let mut ready_at = None;
        for (t, s) in &after {
            match *s {
                "CONNECTING" => {
                    attempts += 1;
                    attempt_at = Some(*t);
                    bucket(&mut rec.attempts_per_100ms, t - first_loss);
                }
                "READY" => {
                    ready_at = Some(*t);
                    break;
                }
                _ => {}
            }
        }
        let Some(ready) = ready_at else { continue };
        rec.recovered += 1;
        bucket(&mut rec.ready_per_100ms, ready - first_loss);
        lists[0].push((ready - loss.at) * 1000.0);
        if let Some(a) = attempt_at {
            lists[1].push((ready - a) * 1000.0);
        }
        lists[3].push(f64::from(attempts));
        if let Some(first) = r
            .resumed
            .iter()
            .find(|(at, _)| *at >= loss.at)
            .and_then(|(_, e)| *e)
        {
            rec.resumed_with_event += 1;
            lists[4].push((first - ready) * 1000.0);
            lists[5].push((first - loss.at) * 1000.0);
        }
    }
    let [a, b, c, d, e, f] = &mut lists;
    rec.loss_to_ready = summarize_ms(a);
    rec.slot_to_ready = summarize_ms(b);
    rec.first_backoff = summarize_ms(c);
    rec.attempts = summarize_ms(d);
    rec.ready_to_first_event = summarize_ms(e);
    rec.loss_to_first_event = summarize_ms(f);
    rec
}
