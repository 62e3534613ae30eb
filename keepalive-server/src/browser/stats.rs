//! The counters of browser keepalive: sessions, heartbeats, resumable streams.

use crate::metrics::{Family, Kind, family};

crate::counters! {
    /// Counters of one [`BrowserKeepalive`](super::BrowserKeepalive) (monotonic but the
    /// `open_*` gauge).
    pub struct BrowserStats {
        /// Sessions opened.
        counter sessions_opened,
        /// Sessions dropped after being idle too long.
        counter sessions_expired,
        /// Heartbeat calls judged (known session).
        counter heartbeats,
        /// Heartbeats that were a strike (too soon), including the refused ones.
        counter heartbeat_strikes,
        /// Heartbeats refused with RESOURCE_EXHAUSTED `too_many_pings`.
        counter heartbeats_too_many_pings,
        /// Resumable streams started.
        counter subscriptions,
        /// Resumable streams that resumed (with an `after_sequence` or a resume token).
        counter resumes,
        /// Resumable streams open now.
        gauge open_subscriptions,
        /// Gap messages sent.
        counter gaps_sent,
        /// Events delivered on resumable streams.
        counter events_delivered,
        /// StreamHeartbeat messages sent.
        counter stream_heartbeats_sent,
        /// GoAway messages that ended resumable streams (max stream age, shutdown, ...).
        counter goaways_sent,
        /// Resumable streams ended because a newer stream of their key attached.
        counter streams_superseded,
        /// Session ids refused (forged, altered, unknown key, expired).
        counter sessions_refused,
    }
}

/// The Prometheus families of [`BrowserStats`] and the session gauge (prefix `keepalive`).
pub const FAMILIES: &[Family] = &[
    family(
        "sessions_opened",
        Kind::Counter,
        "Browser sessions opened.",
        "",
        &[("sessions_opened", "")],
    ),
    family(
        "sessions_expired",
        Kind::Counter,
        "Sessions forgotten after being idle too long.",
        "",
        &[("sessions_expired", "")],
    ),
    family(
        "sessions_open",
        Kind::Gauge,
        "Sessions in the table now.",
        "",
        &[("sessions", "")],
    ),
    family(
        "heartbeats",
        Kind::Counter,
        "Heartbeat calls judged by the enforcement policy (known session).",
        "",
        &[("heartbeats", "")],
    ),
    family(
        "heartbeat_strikes",
        Kind::Counter,
        "Heartbeats judged too soon (strikes), the refused ones included.",
        "",
        &[("heartbeat_strikes", "")],
    ),
    family(
        "heartbeats_refused",
        Kind::Counter,
        "Heartbeats refused with RESOURCE_EXHAUSTED too_many_pings.",
        "reason",
        &[("heartbeats_too_many_pings", "too_many_pings")],
    ),
    family(
        "subscriptions",
        Kind::Counter,
        "Resumable streams started.",
        "",
        &[("subscriptions", "")],
    ),
    family(
        "subscriptions_open",
        Kind::Gauge,
        "Resumable streams open now.",
        "",
        &[("open_subscriptions", "")],
    ),
    family(
        "resumes",
        Kind::Counter,
        "Resumable streams that resumed (after a sequence or with a resume token).",
        "",
        &[("resumes", "")],
    ),
    family(
        "gaps",
        Kind::Counter,
        "Gap messages sent (events the server no longer held).",
        "",
        &[("gaps_sent", "")],
    ),
    family(
        "events_delivered",
        Kind::Counter,
        "Events delivered on resumable streams (one per subscriber).",
        "",
        &[("events_delivered", "")],
    ),
    family(
        "stream_heartbeats",
        Kind::Counter,
        "StreamHeartbeat messages sent on quiet resumable streams.",
        "",
        &[("stream_heartbeats_sent", "")],
    ),
    family(
        "stream_goaways",
        Kind::Counter,
        "GoAway messages that ended resumable streams (max stream age, shutdown, ...).",
        "",
        &[("goaways_sent", "")],
    ),
    family(
        "streams_superseded",
        Kind::Counter,
        "Resumable streams ended (ABORTED) because a newer stream of the same session and \
         stream key attached, on this replica or another.",
        "",
        &[("streams_superseded", "")],
    ),
    family(
        "sessions_refused",
        Kind::Counter,
        "Calls refused for their session id (forged, altered, signed with an unknown key, \
         expired): UNAUTHENTICATED.",
        "",
        &[("sessions_refused", "")],
    ),
];
