//! `--tick-interval`: a built-in publisher, so a feed has traffic without any client.
//!
//! The demo and the dashboard need events flowing to show delivery, resume and gaps; the
//! ticker publishes `tick N` (source `ticker`, N from 1 per process) at a fixed interval
//! until the server stops. Ticks have no idempotency key.

use crate::counters::DemoStats;
use demo_proto::v1::Event;
use keepalive_server::log::{EventLog, now_ms};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

/// The source of ticks.
pub const SOURCE: &str = "ticker";

/// Publishes a tick every `every` until `shutdown` turns true.
pub fn spawn(
    log: Arc<dyn EventLog<Event>>,
    stats: Arc<DemoStats>,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                _ = interval.tick() => {}
            }
            n += 1;
            let tick = Event {
                sequence: 0,
                published_at_ms: now_ms(),
                source: SOURCE.to_string(),
                text: format!("tick {n}"),
            };
            match log.append(tick, None).await {
                Ok(_) => DemoStats::inc(&stats.events_published),
                Err(e) => tracing::warn!(error = %e, "ticker: cannot publish"),
            }
        }
    });
}
