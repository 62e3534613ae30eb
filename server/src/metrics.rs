//! `GET /metrics`: the server's counters in the Prometheus (OpenMetrics) text format.
//!
//! Nothing is counted twice: every value is read at scrape time from the counters the
//! server keeps anyway ([`crate::stats::Stats`], plus the service's sessions and event log
//! through [`crate::service::counters::snapshot`]), the same snapshot the `Stats` call
//! answers. This module only names them: [`FAMILIES`] maps each internal counter to a
//! metric family and, where several counters are one family, a label (`protocol`,
//! `reason`). A counter added to [`crate::stats::Stats`] later and not yet in the table is
//! still exported, as `keepalive_<name>` (a gauge if its name starts with `open_`), and a
//! unit test asks for it to be named properly.
//!
//! Encoding is `prometheus-client`'s text encoder (OpenMetrics 1.0: counters get a
//! `_total` suffix, the body ends with `# EOF`), which Prometheus scrapes natively.
//!
//! Only `GET /metrics` is answered here ([`is_metrics`]); every other request (gRPC,
//! gRPC-web, CORS preflights, the dashboard's files) passes through untouched.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body_util::Full;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, text};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use proto::v1::StatsResponse;
use std::collections::HashSet;
use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;
use tower::util::Either;

/// The path scraped.
pub const PATH: &str = "/metrics";

/// The content type of the body (OpenMetrics text, which Prometheus asks for first).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prefix of every metric name.
pub const PREFIX: &str = "keepalive_";

/// Counter (monotonic) or gauge (a current value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only grows; exported with a `_total` suffix.
    Counter,
    /// A current value.
    Gauge,
}

/// One metric family and the internal counters it is made of.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// The metric name, without the prefix and (for counters) without `_total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// The `# HELP` text.
    pub help: &'static str,
    /// The label that tells the members apart (`""` for a single-member family).
    pub label: &'static str,
    /// `(internal name, label value)` of each member; the value is ignored without a label.
    pub members: &'static [(&'static str, &'static str)],
}

const fn family(
    name: &'static str,
    kind: Kind,
    help: &'static str,
    label: &'static str,
    members: &'static [(&'static str, &'static str)],
) -> Family {
    Family {
        name,
        kind,
        help,
        label,
        members,
    }
}

use Kind::{Counter, Gauge};

/// Every exported family, in output order.
pub const FAMILIES: &[Family] = &[
    family(
        "connections",
        Counter,
        "Connections accepted, by protocol (h2 = HTTP/2, http1 = HTTP/1.1).",
        "protocol",
        &[("connections_h2", "h2"), ("connections_h1", "http1")],
    ),
    family(
        "connections_open",
        Gauge,
        "Connections open now, by protocol.",
        "protocol",
        &[
            ("open_connections_h2", "h2"),
            ("open_connections_h1", "http1"),
        ],
    ),
    family(
        "connections_closed",
        Counter,
        "Connections closed by the server without a graceful GOAWAY, by reason.",
        "reason",
        &[
            ("closed_keepalive_timeout", "keepalive_timeout"),
            ("closed_max_age_grace", "max_age_grace"),
            ("closed_shutdown_grace", "shutdown_grace"),
            ("closed_chaos_drop", "chaos_drop"),
        ],
    ),
    family(
        "connections_refused",
        Counter,
        "Connections refused at accept, by reason (max_connections: --max-connections \
         were open; chaos: REFUSE_CONNECTIONS).",
        "reason",
        &[
            ("connections_refused_limit", "max_connections"),
            ("connections_refused_chaos", "chaos"),
        ],
    ),
    family(
        "streams",
        Counter,
        "HTTP/2 streams and HTTP/1.1 requests served.",
        "",
        &[("streams", "")],
    ),
    family(
        "streams_open",
        Gauge,
        "HTTP/2 streams and HTTP/1.1 requests open now.",
        "",
        &[("open_streams", "")],
    ),
    family(
        "pings_sent",
        Counter,
        "Keepalive PINGs sent by the server.",
        "",
        &[("pings_sent", "")],
    ),
    family(
        "pings_received",
        Counter,
        "HTTP/2 PINGs received from clients.",
        "",
        &[("pings_received", "")],
    ),
    family(
        "ping_strikes",
        Counter,
        "HTTP/2 PINGs judged too soon (strikes).",
        "",
        &[("ping_strikes", "")],
    ),
    family(
        "goaways",
        Counter,
        "GOAWAYs sent (HTTP/2) or graceful closes (HTTP/1.1), by reason; \
         too_many_pings is GOAWAY ENHANCE_YOUR_CALM.",
        "reason",
        &[
            ("goaway_max_idle", "max_idle"),
            ("goaway_max_age", "max_age"),
            ("goaway_graceful_stop", "graceful_stop"),
            ("goaway_too_many_pings", "too_many_pings"),
            ("goaway_chaos", "chaos"),
        ],
    ),
    family(
        "sessions_opened",
        Counter,
        "Browser sessions opened.",
        "",
        &[("sessions_opened", "")],
    ),
    family(
        "sessions_expired",
        Counter,
        "Sessions forgotten after being idle too long.",
        "",
        &[("sessions_expired", "")],
    ),
    family(
        "sessions_open",
        Gauge,
        "Sessions in the table now.",
        "",
        &[("sessions", "")],
    ),
    family(
        "heartbeats",
        Counter,
        "Heartbeat calls judged by the enforcement policy (known session).",
        "",
        &[("heartbeats", "")],
    ),
    family(
        "heartbeat_strikes",
        Counter,
        "Heartbeats judged too soon (strikes), the refused ones included.",
        "",
        &[("heartbeat_strikes", "")],
    ),
    family(
        "heartbeats_refused",
        Counter,
        "Heartbeats refused, by reason (too_many_pings: RESOURCE_EXHAUSTED; chaos: UNAVAILABLE).",
        "reason",
        &[
            ("heartbeats_too_many_pings", "too_many_pings"),
            ("heartbeats_rejected_chaos", "chaos"),
        ],
    ),
    family(
        "subscriptions",
        Counter,
        "Subscribe streams started.",
        "",
        &[("subscriptions", "")],
    ),
    family(
        "subscriptions_open",
        Gauge,
        "Subscribe streams open now.",
        "",
        &[("open_subscriptions", "")],
    ),
    family(
        "resumes",
        Counter,
        "Subscriptions that resumed (after a sequence or with a resume token).",
        "",
        &[("resumes", "")],
    ),
    family(
        "gaps",
        Counter,
        "Gap messages sent (events the server no longer held).",
        "",
        &[("gaps_sent", "")],
    ),
    family(
        "events_published",
        Counter,
        "Events appended to the log (publishes and ticks; duplicates not counted).",
        "",
        &[("events_published", "")],
    ),
    family(
        "publish_duplicates",
        Counter,
        "Publishes answered from the idempotency memory.",
        "",
        &[("publish_duplicates", "")],
    ),
    family(
        "events_delivered",
        Counter,
        "Events delivered to subscriptions (one per subscriber).",
        "",
        &[("events_delivered", "")],
    ),
    family(
        "stream_heartbeats",
        Counter,
        "StreamHeartbeat messages sent on quiet subscriptions.",
        "",
        &[("stream_heartbeats_sent", "")],
    ),
    family(
        "stream_goaways",
        Counter,
        "GoAway messages that ended subscriptions (max stream age, shutdown, chaos).",
        "",
        &[("goaways_sent", "")],
    ),
    family(
        "log_head_sequence",
        Gauge,
        "The highest sequence in the event log.",
        "",
        &[("log_head", "")],
    ),
    family(
        "replay_log_depth",
        Gauge,
        "Events held for replay now.",
        "",
        &[("log_depth", "")],
    ),
    family(
        "chaos_actions",
        Counter,
        "Chaos calls carried out.",
        "",
        &[("chaos_actions", "")],
    ),
];

/// Reads the server's counters and gauges at scrape time.
pub type Source = Arc<dyn Fn() -> StatsResponse + Send + Sync>;

/// The `/metrics` endpoint: a registry whose one collector reads [`Source`].
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics read from `source` on each scrape.
    pub fn new(source: Source) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Snapshot(source)));
        Metrics {
            registry: Arc::new(registry),
        }
    }

    /// The text body of one scrape.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail.
        let _ = text::encode(&mut out, &self.registry);
        out
    }
}

/// Encodes one snapshot as OpenMetrics text (what a scrape answers).
pub fn encode(snapshot: &StatsResponse) -> String {
    let snapshot = snapshot.clone();
    Metrics::new(Arc::new(move || snapshot.clone())).render()
}

/// The collector: one snapshot per scrape, named by [`FAMILIES`].
struct Snapshot(Source);

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").finish_non_exhaustive()
    }
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> std::fmt::Result {
        let snapshot = (self.0)();
        let mut named = HashSet::new();
        for f in FAMILIES {
            let name = format!("{PREFIX}{}", f.name);
            let mut metric = enc.encode_descriptor(&name, f.help, None, f.kind.metric_type())?;
            for (member, label_value) in f.members {
                named.insert(*member);
                let v = value(&snapshot, member);
                if f.label.is_empty() {
                    f.kind.encode(v, metric)?;
                    break;
                }
                let labels = [(f.label, *label_value)];
                f.kind.encode(v, metric.encode_family(&labels)?)?;
            }
        }
        // Counters not (yet) in the table: exported under their own name, never dropped.
        let mut rest: Vec<(&String, u64, Kind)> = snapshot
            .counters
            .iter()
            .map(|(k, v)| (k, *v, Counter))
            .chain(snapshot.gauges.iter().map(|(k, v)| (k, *v, Gauge)))
            .filter(|(k, _, _)| !named.contains(k.as_str()))
            .collect();
        rest.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v, kind) in rest {
            let name = format!("{PREFIX}{k}");
            let metric =
                enc.encode_descriptor(&name, "(not described yet)", None, kind.metric_type())?;
            kind.encode(v, metric)?;
        }
        Ok(())
    }
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Counter => MetricType::Counter,
            Gauge => MetricType::Gauge,
        }
    }

    fn encode(self, v: u64, metric: MetricEncoder<'_>) -> std::fmt::Result {
        match self {
            Counter => ConstCounter::new(v).encode(metric),
            Gauge => ConstGauge::new(v).encode(metric),
        }
    }
}

fn value(snapshot: &StatsResponse, name: &str) -> u64 {
    snapshot
        .counters
        .get(name)
        .or_else(|| snapshot.gauges.get(name))
        .copied()
        .unwrap_or(0)
}

/// Whether `req` is a scrape: `GET /metrics`.
pub fn is_metrics<B>(req: &Request<B>) -> bool {
    req.method() == Method::GET && req.uri().path() == PATH
}

/// The layer that answers `GET /metrics` and passes everything else to the service it
/// wraps. A layer (not a wrapper around the boxed routes) so that a gRPC call pays only
/// for the path comparison: no clone of the routes and no boxed future per request.
#[derive(Debug, Clone)]
pub struct MetricsLayer {
    metrics: Metrics,
}

impl MetricsLayer {
    /// Scrapes answered from `metrics`.
    pub fn new(metrics: Metrics) -> Self {
        MetricsLayer { metrics }
    }
}

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            scrape: Scrape {
                metrics: self.metrics.clone(),
                error: PhantomData,
            },
        }
    }
}

/// See [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    scrape: Scrape<Infallible>,
}

/// Answers a scrape at once (the inner half of [`MetricsService`]).
#[derive(Debug)]
pub struct Scrape<E> {
    metrics: Metrics,
    error: PhantomData<fn() -> E>,
}

impl<E> Clone for Scrape<E> {
    fn clone(&self) -> Self {
        Scrape {
            metrics: self.metrics.clone(),
            error: PhantomData,
        }
    }
}

impl<B, E> Service<Request<B>> for Scrape<E> {
    type Response = Response<tonic::body::Body>;
    type Error = E;
    type Future = std::future::Ready<Result<Self::Response, E>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), E>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        std::future::ready(Ok(response(self.metrics.render())))
    }
}

impl<S, B> Service<Request<B>> for MetricsService<S>
where
    S: Service<Request<B>, Response = Response<tonic::body::Body>, Error = Infallible>,
{
    type Response = Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = <Either<Scrape<Infallible>, S> as Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // `Either` only to name one future type for both answers; the services are
        // borrowed for the call, never moved.
        let mut either: Either<&mut Scrape<Infallible>, &mut S> = if is_metrics(&req) {
            Either::Left(&mut self.scrape)
        } else {
            Either::Right(&mut self.inner)
        };
        either.call(req)
    }
}

fn response(body: String) -> Response<tonic::body::Body> {
    let mut res = Response::new(tonic::body::Body::new(Full::new(Bytes::from(body))));
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The samples of a rendered body, `(name with labels, value)`, for tests and tools.
pub fn samples(body: &str) -> Vec<(String, f64)> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            Some((name.to_string(), v.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Stats;

    fn snapshot() -> StatsResponse {
        let stats = Stats::default();
        Stats::inc(&stats.connections_h2);
        Stats::inc(&stats.connections_h1);
        Stats::inc(&stats.connections_h1);
        Stats::inc(&stats.goaway_too_many_pings);
        let mut res = StatsResponse::default();
        for (name, v) in stats.snapshot() {
            if Stats::is_gauge(name) {
                res.gauges.insert(name.into(), v);
            } else {
                res.counters.insert(name.into(), v);
            }
        }
        res.gauges.insert("sessions".into(), 3);
        res.gauges.insert("log_head".into(), 7);
        res.gauges.insert("log_depth".into(), 5);
        res
    }

    #[test]
    fn every_counter_has_a_family() {
        let named: HashSet<&str> = FAMILIES
            .iter()
            .flat_map(|f| f.members.iter().map(|m| m.0))
            .collect();
        for (name, _) in Stats::default().snapshot() {
            assert!(named.contains(name), "{name} is not in metrics::FAMILIES");
        }
        for name in ["sessions", "log_head", "log_depth"] {
            assert!(named.contains(name), "{name} is not in metrics::FAMILIES");
        }
    }

    #[test]
    fn members_are_counted_once() {
        let mut seen = HashSet::new();
        for f in FAMILIES {
            for (m, _) in f.members {
                assert!(seen.insert(*m), "{m} is in two families");
            }
            assert!(f.label.is_empty() == (f.members.len() == 1 && f.members[0].1.is_empty()));
        }
    }

    #[test]
    fn renders_labels_and_totals() {
        let body = encode(&snapshot());
        let s: std::collections::HashMap<String, f64> = samples(&body).into_iter().collect();
        assert_eq!(s["keepalive_connections_total{protocol=\"h2\"}"], 1.0);
        assert_eq!(s["keepalive_connections_total{protocol=\"http1\"}"], 2.0);
        assert_eq!(s["keepalive_goaways_total{reason=\"too_many_pings\"}"], 1.0);
        assert_eq!(s["keepalive_sessions_open"], 3.0);
        assert_eq!(s["keepalive_replay_log_depth"], 5.0);
        assert!(body.contains("# TYPE keepalive_connections counter\n"));
        assert!(body.contains("# TYPE keepalive_connections_open gauge\n"));
        assert!(body.ends_with("# EOF\n"));
    }

    #[test]
    fn unknown_counters_are_still_exported() {
        let mut snap = snapshot();
        snap.counters.insert("brand_new".into(), 4);
        snap.gauges.insert("open_things".into(), 2);
        let s: std::collections::HashMap<String, f64> =
            samples(&encode(&snap)).into_iter().collect();
        assert_eq!(s["keepalive_brand_new_total"], 4.0);
        assert_eq!(s["keepalive_open_things"], 2.0);
    }
}
