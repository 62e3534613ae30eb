//! Counters of connection events, kept for the dashboard's stats call and `/metrics`.
//!
//! Plain relaxed atomics: each event costs one uncontended increment, and readers only
//! need a consistent-enough snapshot.

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
}

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
