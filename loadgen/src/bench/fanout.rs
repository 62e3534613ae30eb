//! Fan-out: a ticker as fast as it goes (1 ms interval, a replay buffer that holds the
//! whole run) to every subscriber, client Time 5 s + Timeout 5 s. Events published and
//! delivered per second as the server counts them (`/metrics` at the window's start and
//! end), delivered per second as the clients count them, per subscriber, the lag from
//! the server's publish stamp to delivery, gaps, errors, and the CPU of the server, the
//! load generator and the whole machine.

use super::children::{self, During, Server, metric, sessions_args, timing};
use super::report::{Section, fixed, ms3};
use super::{Ctx, Result};
use crate::scenario::sessions::SessionsReport;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// The scenario's `bench.json`.
#[derive(Debug, Serialize)]
struct Json {
    published_per_s: f64,
    server_delivered_per_s: f64,
    server_cpu_s: f64,
    loadgen: Value,
}

/// Runs the fan-out scenario.
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let n = if ctx.quick { 50 } else { 1_000 };
    let flags = [
        "--tick-interval",
        "1ms",
        "--replay-capacity",
        "200000",
        "--stream-heartbeat-interval",
        "5s",
    ];
    let mut server = Server::start(ctx, "fanout", &ctx.bins.server, &flags).await?;
    let args = sessions_args(server.addr(), n, &timing("5s", "5s", "10s"));
    let run = children::sessions::<SessionsReport>(
        ctx,
        "fanout",
        &mut server,
        &args,
        During::Nothing,
        Duration::from_secs(90),
    )
    .await?;
    let r = &run.report;
    let window = r.window_s;
    let per_s =
        |sample: &str| (metric(&run.metrics.1, sample) - metric(&run.metrics.0, sample)) / window;
    let published = per_s("keepalive_events_published_total");
    let delivered_server = per_s("keepalive_events_delivered_total");
    let cpu = run.usage.1.cpu_s - run.usage.0.cpu_s;
    let mut md = String::from(
        "### Fan-out: a ticker as fast as it goes (1 ms interval) to every subscriber\n\n\
         | subscribers | published/s | delivered/s (clients) | delivered/s (server) | per subscriber/s | lag p50 / p99 / max (ms) | gaps | errors | CPU server / loadgen / machine (cores) |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let _ = writeln!(
        md,
        "| {n} | {published:.0} | {:.0} | {delivered_server:.0} | {:.0} | {} | {} | {} | {:.2} / {:.2} / {:.2} |",
        r.events_per_s,
        r.events_per_s / n as f64,
        ms3(&r.event_lag),
        r.gaps,
        r.errors,
        cpu / window,
        run.loadgen_cpu_s / window,
        run.machine_cpu_s / window,
    );
    let json = Json {
        published_per_s: fixed(published, 1),
        server_delivered_per_s: fixed(delivered_server, 1),
        server_cpu_s: fixed(cpu, 3),
        loadgen: run.raw,
    };
    Ok(Section::new(md, &json))
}
