//! Recovery: the server killed (SIGKILL) one second into the window and started again on
//! the same port with the same file-backed event log, client Time 1 s + Timeout 1 s,
//! backoff 1 s ± 20%. Per session: READY again (from the loss, and from the end of the
//! backoff slot of the attempt that worked), the first resumed event after READY, the
//! attempts it took; and the reconnect storm: sessions READY again per 100 ms from the
//! first loss.

use super::children::{self, During, Server, sessions_args, timing};
use super::report::{Section, ms3};
use super::{Ctx, Result};
use crate::scenario::sessions::SessionsReport;
use std::fmt::Write as _;
use std::time::Duration;

/// Runs the recovery scenario.
pub async fn run(ctx: &Ctx) -> Result<Section> {
    let n = if ctx.quick { 50 } else { 1_000 };
    let events = ctx.out.join("recovery-events.log");
    let _ = std::fs::remove_file(&events);
    let events = events.display().to_string();
    let flags = [
        "--tick-interval",
        "100ms",
        "--stream-heartbeat-interval",
        "1s",
        "--event-log",
        &events,
    ];
    let mut server = Server::start(ctx, "recovery", &ctx.bins.server, &flags).await?;
    let args = sessions_args(server.addr(), n, &timing("1s", "1s", "7s"));
    let run = children::sessions::<SessionsReport>(
        ctx,
        "recovery",
        &mut server,
        &args,
        During::RestartAfter(Duration::from_secs(1)),
        Duration::from_secs(90),
    )
    .await?;
    let d = run.report.recovery.unwrap_or_default();
    let (first, shape) = storm(&d.ready_per_100ms);
    let mut md = String::from(
        "### Recovery: server killed and started again on the same port (file event log), Time 1 s + Timeout 1 s, backoff 1 s ± 20%\n\n\
         | sessions lost | READY again | with a resumed event | loss → READY p50 / p99 / max (ms) | end of backoff slot → READY p50 / p99 / max (ms) | READY → first resumed event p50 / p99 / max (ms) | attempts p50 / max | READY per 100 ms from the first loss |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    let _ = writeln!(
        md,
        "| {} | {} | {} | {} | {} | {} | {:.0} / {:.0} | from {:.1} s: {shape} |",
        d.lost,
        d.recovered,
        d.resumed_with_event,
        ms3(&d.loss_to_ready),
        ms3(&d.slot_to_ready),
        ms3(&d.ready_to_first_event),
        d.attempts.p50_ms,
        d.attempts.max_ms,
        first as f64 / 10.0,
    );
    Ok(Section::new(md, &run.raw))
}

/// Where the storm begins (in 100 ms steps) and its counts from the first non-zero one
/// to the last.
fn storm(per_100ms: &[u32]) -> (usize, String) {
    let first = per_100ms.iter().position(|&x| x > 0).unwrap_or(0);
    let last = per_100ms.iter().rposition(|&x| x > 0).unwrap_or(0);
    let shape = per_100ms
        .get(first..=last)
        .unwrap_or_default()
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(" ");
    (first, shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_storm_from_its_first_to_its_last_step() {
        assert_eq!(storm(&[0, 0, 3, 0, 5, 0]), (2, "3 0 5".to_string()));
        assert_eq!(storm(&[]), (0, String::new()));
        assert_eq!(storm(&[0, 0]), (0, "0".to_string()));
    }
}
