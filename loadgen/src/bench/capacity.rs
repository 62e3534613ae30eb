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
//!
//! Issue 13's yardstick is the server's CPU per delivered event (≤ 5 µs at 10 events/s
//! per stream, where nothing can be batched), user and kernel apart (`utime`, `stime`):
//! the heartbeats are in it too, a small share next to 10 events per second. The same
//! rows run against `bench-server` (the same services and ticker behind a stock
//! `tonic::transport::Server`); at 10 000 sessions both servers are sampled with `perf`
//! over the window ([`profile`]): the kernel's share, the shares by crate and the hottest
//! functions say what bounds the cost.

use super::children::{self, During, Server, metric, sessions_args};
use super::profile::{self, PerfProfile};
use super::report::{Section, fixed, met, ms3};
use super::{Ctx, Result};
use crate::scenario::sessions::SessionsReport;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// One run: how many sessions, with the ticker or not, over HTTP/2 or HTTP/1.1, against
/// our server or the stock one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Row {
    n: usize,
    ticker: bool,
    http2: bool,
    stock: bool,
}

impl Row {
    fn server(&self) -> &'static str {
        if self.stock { "stock" } else { "ours" }
    }
}

/// A row of `bench.json`.
#[derive(Debug, Serialize)]
struct Json {
    sessions: usize,
    ticker: bool,
    http2: bool,
    server: &'static str,
    loadgen_cpu_s: f64,
    machine_cpu_s: f64,
    server_cpu_s: f64,
    server_user_cpu_s: f64,
    server_sys_cpu_s: f64,
    server_heartbeats: u64,
    events: u64,
    cpu_s_per_1000_heartbeats: f64,
    server_cpu_us_per_event: Option<f64>,
    server_user_cpu_us_per_event: Option<f64>,
    server_sys_cpu_us_per_event: Option<f64>,
    rss_kib_idle: u64,
    rss_kib_end: u64,
    rss_kib_per_session: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<PerfProfile>,
    loadgen: Value,
}

/// The rows for this open-file hard `limit`.
fn rows(quick: bool, limit: u64) -> Vec<Row> {
    let h1_max = h1_max(limit).min(10_000);
    let row = |n, ticker, http2| Row {
        n,
        ticker,
        http2,
        stock: false,
    };
    let stock = |n, http2| Row {
        n,
        ticker: true,
        http2,
        stock: true,
    };
    if quick {
        return vec![
            row(20, true, false),
            row(100, true, false),
            row(100, true, true),
            stock(100, true),
            row(100, false, true),
        ];
    }
    // 10 000 sessions over HTTP/1.1 where they fit, else over HTTP/2 (see the module).
    let big_http2 = h1_max < 10_000;
    vec![
        row(100, true, false),
        row(1_000, true, false),
        row(h1_max, true, false),
        row(3_000, true, true),
        stock(3_000, true),
        row(10_000, true, big_http2),
        stock(10_000, big_http2),
        row(10_000, false, big_http2),
    ]
}

/// The most HTTP/1.1 sessions (two sockets each, a thousand files spare) `limit` holds,
/// in thousands.
fn h1_max(limit: u64) -> usize {
    ((limit.saturating_sub(1_000) / 2 / 1_000) * 1_000) as usize
}

/// `x` µs, or a dash where there is nothing to divide by.
fn us(x: Option<f64>) -> String {
    x.map_or("–".into(), |x| format!("{x:.1}"))
}

/// Runs the capacity scenario; `nofile` is the children's open-file hard limit.
pub async fn run(ctx: &Ctx, nofile: Option<u64>) -> Result<Section> {
    let limit = nofile.unwrap_or(u64::MAX);
    let mut md = format!(
        "### Capacity: sessions with 1 s heartbeats and a 10 events/s ticker\n\n\
         gRPC-web over HTTP/1.1 (a browser over http: 2 connections per session) or HTTP/2 \
         (a browser over https: 1 connection); our server, or `bench-server` (stock: the same \
         services and ticker behind a stock `tonic::transport::Server`). Open-file hard limit \
         of the processes: {}. CPU columns are cores busy over the window (1.00 = one core): \
         the server, the load generator, and the whole machine (other processes included). \
         Server CPU per event is the server's CPU over the window divided by the events \
         delivered (heartbeats included), user / kernel.\n\n\
         | sessions | protocol | server | READY | heartbeats | RTT p50 / p99 / max (ms) | errors | events/s delivered | CPU server / loadgen / machine | server CPU µs per event (user / kernel) | server CPU s per 1 000 heartbeats | server RSS per session | target (10 000: p99 ≤ 20 ms, 0 errors, ≤ 5 µs per event) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        if limit == u64::MAX {
            "unknown".to_string()
        } else {
            limit.to_string()
        }
    );
    let mut js = Vec::new();
    let mut profiles = Vec::new();
    for row in rows(ctx.quick, limit) {
        let Row {
            n, ticker, http2, ..
        } = row;
        let name = format!(
            "capacity-{n}-{}{}{}",
            if http2 { "h2" } else { "http1" },
            if ticker { "" } else { "-no-ticker" },
            if row.stock { "-stock" } else { "" },
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
        let program = if row.stock {
            &ctx.bins.bench_server
        } else {
            &ctx.bins.server
        };
        let mut server = Server::start(ctx, &name, program, &flags).await?;
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
        // The target's size is profiled: what bounds the cost there (with --quick, the
        // HTTP/2 rows, so that the profile's path runs too).
        let profiled = if ctx.quick {
            n == 100 && http2
        } else {
            n == 10_000
        };
        let during = if profiled && ticker {
            During::Profile(server.pid())
        } else {
            During::Nothing
        };
        let run = children::sessions::<SessionsReport>(
            ctx,
            &name,
            &mut server,
            &args,
            during,
            Duration::from_secs(120 + ramp as u64 * 3),
        )
        .await?;
        drop(server);
        let profile = match &run.profile {
            Some(Ok(data)) => match profile::perf_report(data, 15).await {
                Ok(p) => Some(p),
                Err(e) => {
                    println!("  {name}: profile skipped: {e}");
                    None
                }
            },
            Some(Err(e)) => {
                println!("  {name}: profile skipped: {e}");
                None
            }
            None => None,
        };
        let r = &run.report;
        let cpu = run.usage.1.cpu_s - run.usage.0.cpu_s;
        let user = run.usage.1.user_s - run.usage.0.user_s;
        let sys = run.usage.1.sys_s - run.usage.0.sys_s;
        let server_heartbeats = metric(&run.metrics.1, "keepalive_heartbeats_total")
            - metric(&run.metrics.0, "keepalive_heartbeats_total");
        let heartbeats = if server_heartbeats.is_finite() && server_heartbeats > 0.0 {
            server_heartbeats
        } else {
            r.heartbeats as f64
        };
        let cpu_per_k = cpu / (heartbeats / 1000.0);
        let per_event = |s: f64| (r.events > 0).then(|| s * 1e6 / r.events as f64);
        let (us_event, us_user, us_sys) = (per_event(cpu), per_event(user), per_event(sys));
        let rss_kib = run.usage.1.rss_kib.saturating_sub(run.idle.rss_kib) as f64 / n as f64;
        let window_s = r.window_s;
        let target = if n == 10_000 && ticker && !row.stock {
            met(r.heartbeat_rtt.p99_ms <= 20.0
                && r.errors == 0
                && us_event.is_some_and(|u| u <= 5.0))
            .to_string()
        } else {
            String::new()
        };
        let _ = writeln!(
            md,
            "| {n}{} | {} | {} | {} | {} | {} | {} | {:.0} | {:.2} / {:.2} / {:.2} | {} ({} / {}) | {cpu_per_k:.3} | {rss_kib:.1} KiB | {target} |",
            if ticker { "" } else { " (no ticker)" },
            if http2 { "HTTP/2" } else { "HTTP/1.1" },
            row.server(),
            r.ready_at_start,
            r.heartbeats,
            ms3(&r.heartbeat_rtt),
            r.errors,
            r.events_per_s,
            cpu / window_s,
            run.loadgen_cpu_s / window_s,
            run.machine_cpu_s / window_s,
            us(us_event),
            us(us_user),
            us(us_sys),
        );
        if let Some(p) = &profile {
            profiles.push((
                format!(
                    "{n} {}, {}",
                    if http2 { "HTTP/2" } else { "HTTP/1.1" },
                    row.server()
                ),
                p.clone(),
            ));
        }
        js.push(Json {
            sessions: n,
            ticker,
            http2,
            server: row.server(),
            loadgen_cpu_s: fixed(run.loadgen_cpu_s, 3),
            machine_cpu_s: fixed(run.machine_cpu_s, 3),
            server_cpu_s: fixed(cpu, 3),
            server_user_cpu_s: fixed(user, 3),
            server_sys_cpu_s: fixed(sys, 3),
            server_heartbeats: heartbeats as u64,
            events: r.events,
            cpu_s_per_1000_heartbeats: fixed(cpu_per_k, 4),
            server_cpu_us_per_event: us_event.map(|x| fixed(x, 2)),
            server_user_cpu_us_per_event: us_user.map(|x| fixed(x, 2)),
            server_sys_cpu_us_per_event: us_sys.map(|x| fixed(x, 2)),
            rss_kib_idle: run.idle.rss_kib,
            rss_kib_end: run.usage.1.rss_kib,
            rss_kib_per_session: fixed(rss_kib, 2),
            profile,
            loadgen: run.raw,
        });
    }
    md.push_str(&profiles_md(&profiles));
    Ok(Section::new(md, &js))
}

/// The profiles side by side: shares by crate, then each one's hottest functions.
fn profiles_md(profiles: &[(String, PerfProfile)]) -> String {
    if profiles.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\nWhere the server's CPU goes over the window (`perf record -e cpu-clock`, self time, \
         percent of the samples; the kernel is mostly loopback TCP: one socket write per \
         event per subscriber):\n\n| crate |",
    );
    for (label, _) in profiles {
        let _ = write!(md, " {label} |");
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(profiles.len()));
    md.push('\n');
    // The crates of the first profile, in its order, then any others.
    let mut crates: Vec<&str> = Vec::new();
    for (_, p) in profiles {
        for (c, share) in &p.crates {
            if *share >= 1.0 && !crates.contains(&c.as_str()) {
                crates.push(c);
            }
        }
    }
    for c in crates {
        let _ = write!(md, "| {c} |");
        for (_, p) in profiles {
            let share = p
                .crates
                .iter()
                .find(|(k, _)| k == c)
                .map_or(0.0, |(_, s)| *s);
            let _ = write!(md, " {share:.1}% |");
        }
        md.push('\n');
    }
    for (label, p) in profiles {
        let _ = write!(md, "\nHottest functions, {label}:");
        for h in &p.top {
            let _ = write!(
                md,
                " {:.1}% `{}`{};",
                h.percent,
                profile::short(&h.function, 70),
                if h.kernel { " (kernel)" } else { "" }
            );
        }
        md.push('\n');
    }
    md
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
        assert_eq!(quick.len(), 5);
        assert!(quick.iter().all(|r| r.n <= 100));
        let small = rows(false, 20_000);
        assert_eq!(small[2].n, 9_000);
        assert!(small[5].http2 && small[6].http2 && small[6].stock && !small[7].ticker);
        assert!(small.iter().filter(|r| r.n == 10_000).all(|r| r.http2));
        let big = rows(false, 65_536);
        assert_eq!(big[2].n, 10_000);
        assert!(big.iter().filter(|r| r.n == 10_000).all(|r| !r.http2));
        assert_eq!(big.iter().filter(|r| r.stock).count(), 2);
    }
}
