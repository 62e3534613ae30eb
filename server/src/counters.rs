//! The demo's counters, the Stats call's snapshot, and `GET /metrics`.
//!
//! Each part keeps its own counters — the transport (`keepalive_server::TransportStats`),
//! browser keepalive (`BrowserStats`), the feed ([`DemoStats`]) — and both the Stats call
//! and `/metrics` read all three: the call as one map of counters and one of gauges (a
//! dashboard plots rates and levels differently), the scrape as Prometheus families
//! registered by each part on one registry.

use demo_proto::v1::{Event, StatsResponse};
use keepalive_server::TransportStats;
use keepalive_server::browser::BrowserKeepalive;
use keepalive_server::log::EventLog;
use keepalive_server::metrics::{self, Family, Kind, Registry, Sample, Snapshot, family};
use std::sync::Arc;

keepalive_server::counters! {
    /// What the feed and the chaos call count.
    pub struct DemoStats {
        /// Events appended to the log (publishes and ticks, duplicates not counted).
        counter events_published,
        /// Publishes answered from the idempotency memory (`duplicate = true`).
        counter publish_duplicates,
        /// Chaos calls that were carried out.
        counter chaos_actions,
        /// Heartbeats refused with UNAVAILABLE by chaos REJECT_HEARTBEATS.
        counter heartbeats_rejected_chaos,
    }
}

/// The demo's Prometheus families (prefix `keepalive`), the log's two gauges included.
pub const FAMILIES: &[Family] = &[
    family(
        "events_published",
        Kind::Counter,
        "Events appended to the log (publishes and ticks; duplicates not counted).",
        "",
        &[("events_published", "")],
    ),
    family(
        "publish_duplicates",
        Kind::Counter,
        "Publishes answered from the idempotency memory.",
        "",
        &[("publish_duplicates", "")],
    ),
    family(
        "chaos_actions",
        Kind::Counter,
        "Chaos calls carried out.",
        "",
        &[("chaos_actions", "")],
    ),
    family(
        "chaos_heartbeats_rejected",
        Kind::Counter,
        "Heartbeats answered UNAVAILABLE by chaos REJECT_HEARTBEATS.",
        "",
        &[("heartbeats_rejected_chaos", "")],
    ),
    family(
        "log_head_sequence",
        Kind::Gauge,
        "The highest sequence in the event log.",
        "",
        &[("log_head", "")],
    ),
    family(
        "replay_log_depth",
        Kind::Gauge,
        "Events held for replay now.",
        "",
        &[("log_depth", "")],
    ),
];

/// Everything the demo counts, from the parts that count it.
#[derive(Clone)]
pub struct Counters {
    /// The transport's counters.
    pub transport: Arc<TransportStats>,
    /// Sessions, heartbeats, resumable streams.
    pub browser: BrowserKeepalive,
    /// The feed's and chaos's.
    pub demo: Arc<DemoStats>,
    /// The feed's log (head and depth).
    pub log: Arc<dyn EventLog<Event>>,
}

impl std::fmt::Debug for Counters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counters").finish_non_exhaustive()
    }
}

impl Counters {
    /// The demo's own samples: its counters and the log's gauges.
    fn demo_snapshot(&self) -> Snapshot {
        let mut s = self.demo.snapshot();
        s.push(Sample {
            name: "log_head",
            value: self.log.head(),
            kind: Kind::Gauge,
        });
        s.push(Sample {
            name: "log_depth",
            value: self.log.depth(),
            kind: Kind::Gauge,
        });
        s
    }

    /// Every counter and gauge, now: the Stats call's answer.
    pub fn snapshot(&self) -> StatsResponse {
        let mut res = StatsResponse::default();
        let all = self
            .transport
            .snapshot()
            .into_iter()
            .chain(self.browser.snapshot())
            .chain(self.demo_snapshot());
        for s in all {
            let map = match s.kind {
                Kind::Counter => &mut res.counters,
                Kind::Gauge => &mut res.gauges,
            };
            map.insert(s.name.to_string(), s.value);
        }
        res
    }

    /// One registry with every part's families: what `GET /metrics` renders.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        self.transport.register(&mut registry);
        self.browser.register_metrics(&mut registry);
        let me = self.clone();
        metrics::register(&mut registry, "keepalive", FAMILIES, move || {
            me.demo_snapshot()
        });
        registry
    }
}

/// `GET /metrics`: the registry as OpenMetrics text.
pub fn metrics_route(registry: Arc<Registry>) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move {
                (
                    [
                        (http::header::CONTENT_TYPE, metrics::CONTENT_TYPE),
                        (http::header::CACHE_CONTROL, "no-store"),
                    ],
                    metrics::render(&registry),
                )
            }
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use keepalive_server::browser::BrowserOptions;
    use keepalive_server::log::MemoryLog;

    #[test]
    fn every_counter_has_one_family_and_names_stay() {
        let c = Counters {
            transport: Arc::new(TransportStats::default()),
            browser: BrowserKeepalive::new(BrowserOptions::default()),
            demo: Arc::new(DemoStats::default()),
            log: Arc::new(MemoryLog::<Event>::new(10)),
        };
        metrics::check_families(FAMILIES, &c.demo_snapshot()).expect("families");
        TransportStats::inc(&c.transport.connections_h2);
        let snap = c.snapshot();
        assert_eq!(snap.counters["connections_h2"], 1);
        assert_eq!(snap.gauges["open_connections_h2"], 0);
        assert_eq!(snap.gauges["sessions"], 0);
        assert_eq!(snap.gauges["log_head"], 0);
        assert!(snap.counters.contains_key("events_published"));
        let body = metrics::render(&c.registry());
        assert!(
            body.contains("keepalive_connections_total{protocol=\"h2\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("# TYPE keepalive_replay_log_depth gauge\n"),
            "{body}"
        );
        assert!(body.contains("keepalive_sessions_open 0\n"), "{body}");
        assert!(body.ends_with("# EOF\n"));
    }
}
