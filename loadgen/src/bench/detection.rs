//! Detection: chaos STALL (the server keeps every socket open and answers nothing) with
//! sessions connected and READY, client keepalive Time 1 s + Timeout 1 s. Per session:
//! from the last byte received to leaving READY, how far beyond Time + Timeout that was,
//! and from the chaos call to leaving READY; why (the core's reason). The target: every
//! session leaves READY at most 100 ms after Time + Timeout.

use super::children::{self, During, Server, sessions_args, timing};
use super::report::{Section, met, ms3};
use super::{CHAOS_TOKEN, Ctx, Result};
use crate::scenario::sessions::SessionsReport;
use std::fmt::Write as _;
use std::time::Duration;

/// Runs the detection scenario.
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let n = if ctx.quick { 50 } else { 1_000 };
    let flags = [
        "--tick-interval",
        "100ms",
        "--stream-heartbeat-interval",
        "1s",
        "--chaos",
        "--chaos-token",
        CHAOS_TOKEN,
    ];
    let mut server = Server::start(ctx, "detection", &ctx.bins.server, &flags).await?;
    let args = sessions_args(
        server.addr(),
        n,
        &[
            &timing("1s", "1s", "7s")[..],
            &[
                "--stall-after",
                "2s",
                "--stall-for",
                "4s",
                "--chaos-token",
                CHAOS_TOKEN,
            ],
        ]
        .concat(),
    );
    let run = children::sessions::<SessionsReport>(
        ctx,
        "detection",
        &mut server,
        &args,
        During::Nothing,
        Duration::from_secs(90),
    )
    .await?;
    // No figures (the stall call failed): a row of zeros, missed.
    let stalled = run.report.detection.is_some();
    let d = run.report.detection.unwrap_or_default();
    let all = stalled && d.detected == d.sessions;
    let mut md = String::from(
        "### Detection: chaos STALL (sockets open, nothing answers), client Time 1 s + Timeout 1 s\n\n\
         | sessions READY at the stall | left READY | last byte → not READY p50 / p99 / max (ms) | beyond Time + Timeout p50 / p99 / max (ms) | stall call → not READY p50 / max (ms) | reasons | target: every session ≤ +100 ms |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let reasons = d
        .reasons
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {:.0} / {:.0} | {reasons} | {} |",
        d.sessions,
        d.detected,
        ms3(&d.since_last_rx),
        ms3(&d.overshoot),
        d.since_stall.p50_ms,
        d.since_stall.max_ms,
        met(all && d.overshoot.max_ms <= 100.0)
    );
    Ok(Section::new(md, &run.raw))
}
