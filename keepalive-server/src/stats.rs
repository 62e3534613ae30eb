//! The transport's counters: connections, streams, PINGs, GOAWAYs and closes, by reason.
//!
//! They are what the frame-level machinery does, whatever services it serves, so they
//! belong to the server, not to a service: read them through
//! [`Builder::stats`](crate::Builder::stats) at any time, or register them on your own
//! Prometheus registry ([`TransportStats::register`], as `keepalive_*` families). Your
//! services count their own things (see [`crate::metrics`]).

use crate::metrics::{self, Family, Kind, Registry, family};
use keepalive::{CloseReason, DrainReason};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

crate::counters! {
    /// Server-wide transport counters (all monotonic but the `open_*` gauges).
    pub struct TransportStats {
        /// HTTP/2 connections accepted.
        counter connections_h2,
        /// HTTP/1.1 connections accepted.
        counter connections_h1,
        /// HTTP/2 connections open now.
        gauge open_connections_h2,
        /// HTTP/1.1 connections open now.
        gauge open_connections_h1,
        /// Streams (HTTP/2) and requests (HTTP/1.1) open now.
        gauge open_streams,
        /// Streams and requests served.
        counter streams,
        /// Keepalive PINGs sent by the server.
        counter pings_sent,
        /// PINGs received from clients.
        counter pings_received,
        /// Ping strikes counted.
        counter ping_strikes,
        /// GOAWAYs (or HTTP/1.1 closes) for max-connection-idle.
        counter goaway_max_idle,
        /// GOAWAYs (or HTTP/1.1 closes) for max-connection-age.
        counter goaway_max_age,
        /// GOAWAYs (or HTTP/1.1 closes) for a graceful stop.
        counter goaway_graceful_stop,
        /// GOAWAY ENHANCE_YOUR_CALM `too_many_pings` sent.
        counter goaway_too_many_pings,
        /// Connections closed because a keepalive PING went unanswered.
        counter closed_keepalive_timeout,
        /// Connections closed when max-connection-age-grace ran out.
        counter closed_max_age_grace,
        /// Connections closed when the shutdown grace ran out.
        counter closed_shutdown_grace,
        /// Connections closed by a fault injector's drop.
        counter closed_chaos_drop,
        /// Connections closed because no byte came within the first-bytes timeout.
        counter closed_first_bytes_timeout,
        /// HTTP/1.1 connections closed because a request head did not arrive in time.
        counter closed_http1_header_timeout,
        /// Calls refused because a request message was over max-recv-message-size.
        counter refused_recv_message_size,
        /// Calls refused because a request body was over max-request-body-size.
        counter refused_request_body_size,
        /// Calls ended because a response message was over max-send-message-size.
        counter refused_send_message_size,
        /// Graceful GOAWAYs (or HTTP/1.1 closes) started by a fault injector.
        counter goaway_chaos,
        /// Connections reset at accept by a fault injector.
        counter connections_refused_chaos,
        /// Connections refused because the connection limit was reached (HTTP/1.1 503 or
        /// HTTP/2 GOAWAY `REFUSED_STREAM`, or reset when even refusing is saturated).
        counter connections_refused_limit,
    }
}

/// The Prometheus families of [`TransportStats`] (prefix `keepalive`).
pub const FAMILIES: &[Family] = &[
    family(
        "connections",
        Kind::Counter,
        "Connections accepted, by protocol (h2 = HTTP/2, http1 = HTTP/1.1).",
        "protocol",
        &[("connections_h2", "h2"), ("connections_h1", "http1")],
    ),
    family(
        "connections_open",
        Kind::Gauge,
        "Connections open now, by protocol.",
        "protocol",
        &[
            ("open_connections_h2", "h2"),
            ("open_connections_h1", "http1"),
        ],
    ),
    family(
        "connections_closed",
        Kind::Counter,
        "Connections closed by the server without a graceful GOAWAY, by reason.",
        "reason",
        &[
            ("closed_keepalive_timeout", "keepalive_timeout"),
            ("closed_max_age_grace", "max_age_grace"),
            ("closed_shutdown_grace", "shutdown_grace"),
            ("closed_chaos_drop", "chaos_drop"),
            ("closed_first_bytes_timeout", "first_bytes_timeout"),
            ("closed_http1_header_timeout", "http1_header_read_timeout"),
        ],
    ),
    family(
        "limits_refused",
        Kind::Counter,
        "Calls refused with RESOURCE_EXHAUSTED by a size limit, by the limit's name.",
        "limit",
        &[
            ("refused_recv_message_size", "max_recv_message_size"),
            ("refused_request_body_size", "max_request_body_size"),
            ("refused_send_message_size", "max_send_message_size"),
        ],
    ),
    family(
        "connections_refused",
        Kind::Counter,
        "Connections refused at accept, by reason (max_connections: the server's limit \
         was reached; chaos: a fault injector refused them).",
        "reason",
        &[
            ("connections_refused_limit", "max_connections"),
            ("connections_refused_chaos", "chaos"),
        ],
    ),
    family(
        "streams",
        Kind::Counter,
        "HTTP/2 streams and HTTP/1.1 requests served.",
        "",
        &[("streams", "")],
    ),
    family(
        "streams_open",
        Kind::Gauge,
        "HTTP/2 streams and HTTP/1.1 requests open now.",
        "",
        &[("open_streams", "")],
    ),
    family(
        "pings_sent",
        Kind::Counter,
        "Keepalive PINGs sent by the server.",
        "",
        &[("pings_sent", "")],
    ),
    family(
        "pings_received",
        Kind::Counter,
        "HTTP/2 PINGs received from clients.",
        "",
        &[("pings_received", "")],
    ),
    family(
        "ping_strikes",
        Kind::Counter,
        "HTTP/2 PINGs judged too soon (strikes).",
        "",
        &[("ping_strikes", "")],
    ),
    family(
        "goaways",
        Kind::Counter,
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
];

impl TransportStats {
    /// Registers these counters on `registry`, as the [`FAMILIES`] (`keepalive_*`).
    pub fn register(self: &Arc<Self>, registry: &mut Registry) {
        let stats = self.clone();
        metrics::register(registry, "keepalive", FAMILIES, move || stats.snapshot());
    }

    /// The counter of drains for `reason`.
    pub fn drain(&self, reason: DrainReason) -> &AtomicU64 {
        match reason {
            DrainReason::MaxIdle => &self.goaway_max_idle,
            DrainReason::MaxAge => &self.goaway_max_age,
            DrainReason::Shutdown => &self.goaway_graceful_stop,
        }
    }

    /// The counter of closes for `reason`.
    pub fn close(&self, reason: CloseReason) -> &AtomicU64 {
        match reason {
            CloseReason::KeepaliveTimeout => &self.closed_keepalive_timeout,
            CloseReason::AgeGraceExpired => &self.closed_max_age_grace,
            CloseReason::ShutdownGraceExpired => &self.closed_shutdown_grace,
            CloseReason::TooManyPings => &self.goaway_too_many_pings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_one_family() {
        metrics::check_families(FAMILIES, &TransportStats::default().snapshot()).expect("families");
    }

    #[test]
    fn registered_names() {
        let stats = Arc::new(TransportStats::default());
        TransportStats::inc(&stats.connections_h2);
        TransportStats::inc(stats.close(CloseReason::TooManyPings));
        let mut registry = Registry::default();
        stats.register(&mut registry);
        let body = metrics::render(&registry);
        assert!(
            body.contains("keepalive_connections_total{protocol=\"h2\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("keepalive_goaways_total{reason=\"too_many_pings\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("# TYPE keepalive_connections_open gauge\n"),
            "{body}"
        );
    }
}
