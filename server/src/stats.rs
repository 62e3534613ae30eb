//! Counters of connection and service events, kept for the dashboard's stats call and
//! `/metrics`.
//!
//! Plain relaxed atomics: each event costs one uncontended increment, and readers only
//! need a consistent-enough snapshot. Names are snake_case because they become metric
//! names as they are; those starting with `open_` are gauges, every other one only grows.

use keepalive::{CloseReason, DrainReason};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident ),* $(,)?) => {
        /// Server-wide counters (monotonic unless named `open_*`).
        #[derive(Debug, Default)]
        pub struct Stats {
            $( $(#[$doc])* pub $name: AtomicU64, )*
        }

        impl Stats {
            /// Every counter with its name, for the stats call and `/metrics`.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                vec![$( (stringify!($name), self.$name.load(Relaxed)), )*]
            }

            /// Whether `name` is a gauge (a current value) rather than a monotonic counter.
            pub fn is_gauge(name: &str) -> bool {
                name.starts_with(GAUGE_PREFIX)
            }
        }
    };
}

counters! {
    /// HTTP/2 connections accepted.
    connections_h2,
    /// HTTP/1.1 connections accepted.
    connections_h1,
    /// HTTP/2 connections open now.
    open_connections_h2,
    /// HTTP/1.1 connections open now.
    open_connections_h1,
    /// Streams (HTTP/2) and requests (HTTP/1.1) open now.
    open_streams,
    /// Streams and requests served.
    streams,
    /// Keepalive PINGs sent by the server.
    pings_sent,
    /// PINGs received from clients.
    pings_received,
    /// Ping strikes counted.
    ping_strikes,
    /// GOAWAYs (or HTTP/1.1 closes) for max-connection-idle.
    goaway_max_idle,
    /// GOAWAYs (or HTTP/1.1 closes) for max-connection-age.
    goaway_max_age,
    /// GOAWAYs (or HTTP/1.1 closes) for a graceful stop.
    goaway_graceful_stop,
    /// GOAWAY ENHANCE_YOUR_CALM `too_many_pings` sent.
    goaway_too_many_pings,
    /// Connections closed because a keepalive PING went unanswered.
    closed_keepalive_timeout,
    /// Connections closed when max-connection-age-grace ran out.
    closed_max_age_grace,
    /// Connections closed when the shutdown grace ran out.
    closed_shutdown_grace,
    /// Connections closed by chaos DROP_CONNECTIONS.
    closed_chaos_drop,
    /// Graceful GOAWAYs (or HTTP/1.1 closes) for chaos GOAWAY.
    goaway_chaos,
    /// Connections reset at accept by chaos REFUSE_CONNECTIONS.
    connections_refused_chaos,
    /// Connections refused because `--max-connections` were open (HTTP/1.1 503 or
    /// HTTP/2 GOAWAY `REFUSED_STREAM`, or reset when even refusing is saturated).
    connections_refused_limit,
    /// Chaos calls that were carried out.
    chaos_actions,
    /// Sessions opened.
    sessions_opened,
    /// Sessions dropped after being idle too long.
    sessions_expired,
    /// Heartbeat calls judged (known session, not rejected by chaos).
    heartbeats,
    /// Heartbeats that were a strike (too soon), including the refused ones.
    heartbeat_strikes,
    /// Heartbeats refused with RESOURCE_EXHAUSTED `too_many_pings`.
    heartbeats_too_many_pings,
    /// Heartbeats refused with UNAVAILABLE by chaos REJECT_HEARTBEATS.
    heartbeats_rejected_chaos,
    /// Subscriptions started.
    subscriptions,
    /// Subscriptions that resumed (with an `after_sequence` or a resume token).
    resumes,
    /// Subscriptions open now.
    open_subscriptions,
    /// Gap messages sent.
    gaps_sent,
    /// Events appended to the log (publishes and ticks, duplicates not counted).
    events_published,
    /// Publishes answered from the idempotency memory (`duplicate = true`).
    publish_duplicates,
    /// Events delivered to subscriptions.
    events_delivered,
    /// StreamHeartbeat messages sent.
    stream_heartbeats_sent,
    /// GoAway messages sent on subscriptions (max stream age, shutdown, chaos).
    goaways_sent,
}

/// Names of gauges start with this.
pub const GAUGE_PREFIX: &str = "open_";

impl Stats {
    /// Adds one to `counter`.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Subtracts one from a gauge.
    pub fn dec(counter: &AtomicU64) {
        counter.fetch_sub(1, Relaxed);
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
