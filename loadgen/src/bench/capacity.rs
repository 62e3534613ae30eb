//! Capacity: N sessions with a heartbeat every second (`--probe`, so heartbeats go out
//! even while events arrive) and a ticker at 10 events/s. Per row: sessions READY,
//! heartbeats, their RTT percentiles as the client core measured them, errors, events/s
//! delivered, CPU of the server, the load generator and the whole machine over the
//! window, server CPU seconds per 1 000 heartbeats (`/proc/<pid>/stat` over the window,
//! heartbeats counted by the server), server RSS per session (`VmRSS` at the end minus
//! before the load generator started, over N). The target: 10 000 sessions with p99 ≤
//! 20 ms and no errors.
//!
//! A browser over http holds two HTTP/1.1 connections per session (the stream's and the
//! heartbeats'), so N sessions are 2N sockets in the server and in the load generator.
//! Where the open-file limit cannot hold 20 000 of them, 10 000 sessions run over HTTP/2
//! (a browser over https: one connection each) and HTTP/1.1 runs at the largest round
//! size that fits. The row without the ticker shows what heartbeats alone cost at the
//! largest size.

use super::children::{self, During, Server, metric, sessions_args};
use super::report::{Section, fixed, met, ms3};
use super::{Ctx, Result};
use crate::scenario::sessions::SessionsReport;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// One run: how many sessions, with the ticker or not, over HTTP/2 or HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    n: usize,
    ticker: bool,
    http2: bool,
}

/// A row of `bench.json`.
#[derive(Debug, Serialize)]
struct Json {
    sessions: usize,
    ticker: bool,
    http2: bool,
    loadgen_cpu_s: f64,
    machine_cpu_s: f64,
    server_cpu_s: f64,
    server_heartbeats: u64,
    cpu_s_per_1000_heartbeats: f64,
    rss_kib_idle: u64,
    rss_kib_end: u64,
    rss_kib_per_session: f64,
    loadgen: Value,
}

/// The rows for this open-file hard `limit`.
fn rows(quick: bool, limit: u64) -> Vec<Row> {
    let h1_max = h1_max(limit);
    let row = |n, ticker, http2| Row { n, ticker, http2 };
    if quick {
        vec![
            row(20, true, false),
            row(100, true, false),
            row(100, true, true),
            row(100, false, true),
        ]
    } else if h1_max >= 10_000 {
        vec![
            row(100, true, false),
            row(1_000, true, false),
            row(10_000, true, false),
            row(10_000, true, true),
            row(10_000, false, false),
        ]
    } else {
        vec![
            row(100, true, false),
            row(1_000, true, false),
            row(h1_max, true, false),
            row(10_000, true, true),
            row(10_000, false, true),
        ]
    }
}

/// The most HTTP/1.1 sessions (two sockets each, a thousand files spare) `limit` holds,
/// in thousands.
fn h1_max(limit: u64) -> usize {
    ((limit.saturating_sub(1_000) / 2 / 1_000) * 1_000) as usize
}

/// Runs the capacity scenario; `nofile` is the children's open-file hard limit.
pub async fn run(ctx: &Ctx, nofile: Option<u64>) -> Result<Section> {
    let limit = nofile.unwrap_or(u64::MAX);
    let h1_max = h1_max(limit);
    let mut md = format!(
        "### Capacity: sessions with 1 s heartbeats and a 10 events/s ticker\n\n\
         gRPC-web over HTTP/1.1 (a browser over http: 2 connections per session) or HTTP/2 \
         (a browser over https: 1 connection). Open-file hard limit of the processes: {}. \
         CPU columns are cores busy over the window (1.00 = one core): the server, the load \
         generator, and the whole machine (other processes included).\n\n\
         | sessions | protocol | READY | heartbeats | RTT p50 / p99 / max (ms) | errors | events/s delivered | CPU server / loadgen / machine | server CPU s per 1 000 heartbeats | server RSS per session | target (10 000: p99 ≤ 20 ms, 0 errors) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
        if limit == u64::MAX {
            "unknown".to_string()
        } else {
            limit.to_string()
        }
    );
    let mut js = Vec::new();
    for Row { n, ticker, http2 } in rows(ctx.quick, limit) {
        let name = format!(
            "capacity-{n}-{}{}",
            if http2 { "h2" } else { "http1" },
            if ticker { "" } else { "-no-ticker" }
        );
        let mut flags = vec!["--max-connections", "60000", "--max-sessions", "100000"];
        if ticker {
            flags.extend(["--tick-interval", "100ms"]);
        } else {
            // With no event sent between two heartbeats, a heartbeat every second is a
            // strike under the default MinTime (5 min): allow it, as an operator who
            // wants 1 s heartbeats would.
            flags.extend(["--min-ping-interval", "500ms"]);
        }
        let mut server = Server::start(ctx, &name, &ctx.bins.server, &flags).await?;
        let ramp = if ctx.quick { 1 } else { (n / 1000).max(1) };
        let window = if ctx.quick { 3 } else { 10 };
        let mut args = sessions_args(
            server.addr(),
            n,
            &[
                "--probe",
                "--time",
                "1s",
                "--timeout",
                "2s",
                "--ramp",
                &format!("{ramp}s"),
                "--settle",
                "2s",
                "--duration",
                &format!("{window}s"),
            ],
        );
        if http2 {
            args.push("--http2".into());
        }
        let run = children::sessions::<SessionsReport>(
            ctx,
            &name,
            &mut server,
            &args,
            During::Nothing,
            Duration::from_secs(120 + ramp as u64 * 3),
        )
        .await?;
        drop(server);
        let r = &run.report;
        let cpu = run.usage.1.cpu_s - run.usage.0.cpu_s;
        let server_heartbeats = metric(&run.metrics.1, "keepalive_heartbeats_total")
            - metric(&run.metrics.0, "keepalive_heartbeats_total");
        let heartbeats = if server_heartbeats.is_finite() && server_heartbeats > 0.0 {
            server_heartbeats
        } else {
            r.heartbeats as f64
        };
        let cpu_per_k = cpu / (heartbeats / 1000.0);
        let rss_kib = run.usage.1.rss_kib.saturating_sub(run.idle.rss_kib) as f64 / n as f64;
        let window_s = r.window_s;
        let target = if n == 10_000 && ticker && (http2 || h1_max >= 10_000) {
            met(r.heartbeat_rtt.p99_ms <= 20.0 && r.errors == 0).to_string()
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {n}{} | {} | {} | {} | {} | {} | {:.0} | {:.2} / {:.2} / {:.2} | {cpu_per_k:.3} | {rss_kib:.1} KiB | {target} |",
            if ticker { "" } else { " (no ticker)" },
            if http2 { "HTTP/2" } else { "HTTP/1.1" },
            r.ready_at_start,
            r.heartbeats,
            ms3(&r.heartbeat_rtt),
            r.errors,
            r.events_per_s,
            cpu / window_s,
            run.loadgen_cpu_s / window_s,
            run.machine_cpu_s / window_s,
        );
        js.push(Json {
            sessions: n,
            ticker,
            http2,
            loadgen_cpu_s: fixed(run.loadgen_cpu_s, 3),
            machine_cpu_s: fixed(run.machine_cpu_s, 3),
            server_cpu_s: fixed(cpu, 3),
            server_heartbeats: heartbeats as u64,
            cpu_s_per_1000_heartbeats: fixed(cpu_per_k, 4),
            rss_kib_idle: run.idle.rss_kib,
            rss_kib_end: run.usage.1.rss_kib,
            rss_kib_per_session: fixed(rss_kib, 2),
            loadgen: run.raw,
        });
    }
    Ok(Section::new(md, &js))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_fit_the_open_file_limit() {
        assert_eq!(h1_max(20_000), 9_000);
        assert_eq!(h1_max(65_536), 32_000);
        assert_eq!(h1_max(500), 0);
        let quick = rows(true, 20_000);
        assert_eq!(quick.len(), 4);
        assert!(quick.iter().all(|r| r.n <= 100));
        let small = rows(false, 20_000);
        assert_eq!(small[2].n, 9_000);
        assert!(small[3].http2 && small[4].http2 && !small[4].ticker);
        let big = rows(false, 65_536);
        assert_eq!(big[2].n, 10_000);
        assert!(!big[2].http2 && !big[4].http2 && !big[4].ticker);
    }
}
