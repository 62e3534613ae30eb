//! The channel's vocabulary: its knobs, ids, actions, events, counters and inputs.
//!
//! Kept apart from the state machine ([`super::channel`]) so that a driver (the browser
//! client, the load generator) reads what it must handle here, and the machine's file is
//! only the machine.

use super::backoff::BackoffConfig;
use super::connectivity::ConnectivityState;
use std::time::Duration;

/// The client's knobs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClientConfig {
    /// Nothing received for this long → heartbeat (grpc-go `ClientParameters.Time`).
    pub keepalive_time: Duration,
    /// Heartbeat unanswered, or stream silent beyond its interval, this long → dead.
    pub keepalive_timeout: Duration,
    /// Heartbeats also without an open stream.
    pub permit_without_stream: bool,
    /// Connection backoff.
    pub backoff: BackoffConfig,
    /// The server's stream heartbeat interval until the server says otherwise.
    pub stream_heartbeat_interval: Duration,
    /// A timer this much later than asked for means the page was asleep.
    pub late_timer_threshold: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            keepalive_time: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(20),
            permit_without_stream: false,
            backoff: BackoffConfig::default(),
            stream_heartbeat_interval: Duration::from_secs(15),
            late_timer_threshold: Duration::from_secs(1),
        }
    }
}

/// A stream of the channel (the application may have several).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(pub u32);

/// One call that opened a stream; answers of older calls are stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// What the driver must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open (or reopen) a stream: subscribe, resuming after `resume_after` if set.
    OpenStream {
        /// Which stream.
        stream: StreamId,
        /// This call's id, to pass back with its answers.
        call: CallId,
        /// Resume after this sequence (the last delivered), if any.
        resume_after: Option<u64>,
        /// The resume token from the stream's last Welcome or GoAway.
        resume_token: Option<String>,
        /// The log the sequence refers to.
        log_id: Option<String>,
    },
    /// Abort that call (drop its response body: that aborts the fetch).
    AbortStream {
        /// Which stream.
        stream: StreamId,
        /// Which call.
        call: CallId,
    },
    /// Send a heartbeat call with this sequence.
    SendHeartbeat {
        /// Heartbeat sequence, echoed by the server.
        seq: u64,
    },
    /// Abort that heartbeat call.
    AbortHeartbeat {
        /// Heartbeat sequence.
        seq: u64,
    },
}

/// Why the channel judged its connection lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossReason {
    /// A heartbeat went unanswered for the timeout.
    HeartbeatTimeout,
    /// A heartbeat call failed (network error, UNAVAILABLE).
    HeartbeatFailed,
    /// A stream stayed silent beyond its heartbeat interval plus the timeout.
    StreamSilent,
    /// A stream failed or ended without a GoAway.
    StreamFailed,
    /// The attempt took longer than the connect timeout.
    ConnectTimeout,
    /// The browser went offline.
    Offline,
    /// A unary call failed with a network error.
    CallFailed,
}

impl LossReason {
    /// A short name for logs and the dashboard.
    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::HeartbeatTimeout => "heartbeat timeout",
            LossReason::HeartbeatFailed => "heartbeat failed",
            LossReason::StreamSilent => "stream silent",
            LossReason::StreamFailed => "stream failed",
            LossReason::ConnectTimeout => "connect timeout",
            LossReason::Offline => "offline",
            LossReason::CallFailed => "call failed",
        }
    }
}

/// Something the application may want to know.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The connectivity state changed.
    StateChanged {
        /// Before.
        from: ConnectivityState,
        /// After.
        to: ConnectivityState,
    },
    /// The connection was judged lost.
    ConnectionLost {
        /// Why.
        reason: LossReason,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// Events that will never be delivered.
    Gap {
        /// Which stream.
        stream: StreamId,
        /// First missing sequence.
        from: u64,
        /// How many.
        missed: u64,
    },
    /// The server's event log is a different one (it was lost): sequences start over.
    LogReset {
        /// Which stream.
        stream: StreamId,
    },
    /// A stream was resumed after a reconnect or a GoAway.
    Resumed {
        /// Which stream.
        stream: StreamId,
        /// Resumed after this sequence.
        after: Option<u64>,
    },
    /// The server ended a stream on purpose (it is being reopened at once).
    GoAway {
        /// Which stream.
        stream: StreamId,
        /// The server's reason (`max_stream_age`, `shutdown`, …).
        reason: String,
    },
    /// The server ended a stream on purpose and for good (a finite stream was complete,
    /// or it refused the stream with an error): it is not reopened.
    StreamFinished {
        /// Which stream.
        stream: StreamId,
    },
    /// A heartbeat round trip.
    HeartbeatRtt {
        /// Measured round-trip time.
        rtt: Duration,
    },
    /// The server refused a heartbeat with `too_many_pings`; `Time` doubled.
    TooManyPings {
        /// The new keepalive time.
        keepalive_time: Duration,
    },
}

/// Counters for the dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// Heartbeats answered.
    pub heartbeats_answered: u64,
    /// Heartbeats that failed or timed out.
    pub heartbeats_missed: u64,
    /// Connection attempts after a failure.
    pub reconnects: u64,
    /// Streams resumed (after a reconnect or a GoAway).
    pub resumes: u64,
    /// Events delivered to the application.
    pub events_delivered: u64,
    /// Events dropped as already delivered.
    pub duplicates_dropped: u64,
    /// Gaps reported.
    pub gaps: u64,
    /// Events reported missing.
    pub events_missed: u64,
    /// `too_many_pings` answers received.
    pub too_many_pings: u64,
    /// The last heartbeat round trip.
    pub last_rtt: Option<Duration>,
}

/// How a heartbeat call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeartbeatOutcome {
    /// Answered.
    Answered,
    /// Refused with RESOURCE_EXHAUSTED `too_many_pings`.
    TooManyPings,
    /// The server answered with another error: it is alive.
    Rejected,
    /// Network error, UNAVAILABLE, or no answer.
    Failed,
}

/// The Welcome of a stream: what the server says when a subscription starts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Welcome {
    /// The first sequence this stream will deliver.
    pub next_sequence: u64,
    /// The server's stream heartbeat interval, if it says.
    pub stream_heartbeat_interval: Option<Duration>,
    /// Token for resuming later.
    pub resume_token: String,
    /// The event log's identity.
    pub log_id: String,
}
