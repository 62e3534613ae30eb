//! The keepalive state machine of one server connection (grpc-go `ServerParameters`).
//!
//! The driver (the server's connection task) feeds it what happens on the wire and asks
//! it what to do:
//!
//! ```text
//!   on_read(now)            any bytes read from the client (so any frame)
//!   on_stream_opened(now)   a request / HTTP/2 stream began
//!   on_stream_closed(now)   it ended (response finished or reset)
//!   on_data_sent()          HEADERS, DATA or trailers written (resets ping strikes)
//!   on_ping(now)            a client PING was ACKed: judge it (enforcement)
//!   drain(now, reason, grace)   e.g. SIGTERM
//!
//!   poll_timeout()  -> when to call handle_timeout(now) next
//!   poll_action()   -> SendPing | Drain(reason) | Close(reason)
//! ```
//!
//! The rules, from grpc-go's `keepalive()` loop and `shared/KEEPALIVE.md` §1:
//! - **Time / Timeout**: nothing read for `time` → send a PING; nothing read
//!   within `timeout` after that → close. Anything read counts, not only the
//!   PING's ACK, exactly as grpc-go does.
//! - **MaxConnectionIdle**: no active stream for the (jittered) idle limit → graceful
//!   drain with reason `max_idle`. The idle clock starts when the connection opens and
//!   again each time the last stream closes.
//! - **MaxConnectionAge**: the connection reached its (jittered) age → graceful drain with
//!   reason `max_age`; streams still open after `max_connection_age_grace` are cut off.
//! - A connection drains once; later reasons (a shutdown during an age grace) only bring
//!   the hard-close deadline forward.

use crate::enforcement::{EnforcementPolicy, PingEnforcer, PingVerdict};
use crate::jitter::{CONNECTION_JITTER, jittered};
use crate::settings::SettingsError;
use crate::time::Instant;
use std::collections::VecDeque;
use std::time::Duration;

/// grpc-go's floor for the server keepalive time.
pub const MIN_KEEPALIVE_TIME: Duration = Duration::from_secs(1);
/// grpc-go `ServerParameters.Time` default.
pub const DEFAULT_KEEPALIVE_TIME: Duration = Duration::from_secs(2 * 60 * 60);
/// grpc-go `ServerParameters.Timeout` default.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// grpc-go `keepalive.ServerParameters`: what the server does to keep its connections
/// healthy and bounded.
///
/// ```
/// use std::time::Duration;
/// use keepalive::ServerParameters;
///
/// let params = ServerParameters {
///     time: Duration::from_secs(30),
///     max_connection_age: Some(Duration::from_secs(300)),
///     max_connection_age_grace: Some(Duration::from_secs(30)),
///     ..Default::default()
/// };
/// assert!(params.validate().is_ok());
/// assert_eq!(ServerParameters::default().timeout, Duration::from_secs(20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct ServerParameters {
    /// No frame read for this long: send a PING (ServerParameters.Time) [default: 2h, floor 1s].
    #[cfg_attr(feature = "cli", arg(
        id = "keepalive_time", long = "keepalive-time", value_name = "DUR",
        value_parser = crate::settings::parse_duration, required = false
    ))]
    pub time: Duration,
    /// After that PING, nothing read for this long: close (ServerParameters.Timeout) [default: 20s].
    #[cfg_attr(feature = "cli", arg(
        id = "keepalive_timeout", long = "keepalive-timeout", value_name = "DUR",
        value_parser = crate::settings::parse_duration, required = false
    ))]
    pub timeout: Duration,
    /// No active stream for this long (±10%): GOAWAY max_idle [default: off].
    #[cfg_attr(feature = "cli", arg(
        id = "max_connection_idle", long = "max-connection-idle", value_name = "DUR|off",
        value_parser = crate::settings::parse_knob, required = false
    ))]
    pub max_connection_idle: std::option::Option<Duration>,
    /// Connection older than this (±10%): GOAWAY max_age [default: off].
    #[cfg_attr(feature = "cli", arg(
        id = "max_connection_age", long = "max-connection-age", value_name = "DUR|off",
        value_parser = crate::settings::parse_knob, required = false
    ))]
    pub max_connection_age: std::option::Option<Duration>,
    /// After the age GOAWAY, open streams get this long, then close [default: off = forever].
    #[cfg_attr(feature = "cli", arg(
        id = "max_connection_age_grace", long = "max-connection-age-grace", value_name = "DUR|off",
        value_parser = crate::settings::parse_knob, required = false
    ))]
    pub max_connection_age_grace: std::option::Option<Duration>,
}

impl Default for ServerParameters {
    fn default() -> Self {
        ServerParameters {
            time: DEFAULT_KEEPALIVE_TIME,
            timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            max_connection_idle: None,
            max_connection_age: None,
            max_connection_age_grace: None,
        }
    }
}

impl ServerParameters {
    /// Checks the combination; the error names the flag, in one line.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.timeout.is_zero() {
            return Err(SettingsError::new(
                "--keepalive-timeout must be more than 0",
            ));
        }
        if self.max_connection_age_grace.is_some() && self.max_connection_age.is_none() {
            return Err(SettingsError::new(
                "--max-connection-age-grace needs --max-connection-age",
            ));
        }
        for (name, d) in [
            ("--max-connection-idle", self.max_connection_idle),
            ("--max-connection-age", self.max_connection_age),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(SettingsError(format!(
                    "{name} must be more than 0 (or off)"
                )));
            }
        }
        Ok(())
    }

    /// `time` raised to grpc-go's 1 s floor (grpc-go raises it silently; a driver should
    /// say so when it differs from `time`).
    pub fn effective_time(&self) -> Duration {
        self.time.max(MIN_KEEPALIVE_TIME)
    }
}

/// Why a connection is drained (graceful GOAWAY: in-flight streams finish).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DrainReason {
    /// No active stream for max-connection-idle.
    MaxIdle,
    /// The connection reached max-connection-age.
    MaxAge,
    /// The server is stopping (SIGTERM/SIGINT).
    Shutdown,
}

impl DrainReason {
    /// The GOAWAY debug data grpc-go sends for this reason.
    pub fn debug_data(self) -> &'static str {
        match self {
            DrainReason::MaxIdle => "max_idle",
            DrainReason::MaxAge => "max_age",
            DrainReason::Shutdown => "graceful_stop",
        }
    }
}

/// Why a connection is closed without waiting any longer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// A keepalive PING went unanswered (nothing read) for keepalive-timeout.
    KeepaliveTimeout,
    /// Streams were still open when max-connection-age-grace ran out.
    AgeGraceExpired,
    /// Streams were still open when the shutdown grace ran out.
    ShutdownGraceExpired,
    /// The client PINGed too often (send GOAWAY ENHANCE_YOUR_CALM `too_many_pings`).
    TooManyPings,
}

impl CloseReason {
    /// A short name for logs and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::KeepaliveTimeout => "keepalive_timeout",
            CloseReason::AgeGraceExpired => "max_age_grace",
            CloseReason::ShutdownGraceExpired => "shutdown_grace",
            CloseReason::TooManyPings => "too_many_pings",
        }
    }
}

/// What the driver must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send a keepalive PING.
    SendPing,
    /// Start a graceful drain: two-step GOAWAY (HTTP/2) or close at the next idle moment
    /// (HTTP/1.1).
    Drain(DrainReason),
    /// Close the connection now.
    Close(CloseReason),
}

/// Keepalive state of one server connection.
#[derive(Clone, Debug)]
pub struct ServerConnection {
    params: ServerParameters,
    /// `params.time` after the floor; `None` when this connection sends no PINGs.
    ping_time: Option<Duration>,
    enforcer: PingEnforcer,
    last_read: Instant,
    ping_sent_at: Option<Instant>,
    active_streams: u32,
    idle_since: Option<Instant>,
    idle_limit: Option<Duration>,
    age_deadline: Option<Instant>,
    draining: Option<DrainReason>,
    close_deadline: Option<(Instant, CloseReason)>,
    closed: Option<CloseReason>,
    actions: VecDeque<Action>,
}

impl ServerConnection {
    /// A connection accepted at `now`. `sample` gives uniform random numbers in `[0, 1)`
    /// for the idle and age jitter.
    pub fn new(
        now: Instant,
        params: ServerParameters,
        policy: EnforcementPolicy,
        mut sample: impl FnMut() -> f64,
    ) -> Self {
        let idle_limit = params
            .max_connection_idle
            .map(|d| jittered(d, CONNECTION_JITTER, sample()));
        let age_deadline = params
            .max_connection_age
            .map(|d| now + jittered(d, CONNECTION_JITTER, sample()));
        ServerConnection {
            ping_time: Some(params.effective_time()),
            params,
            enforcer: PingEnforcer::new(policy),
            last_read: now,
            ping_sent_at: None,
            active_streams: 0,
            idle_since: Some(now),
            idle_limit,
            age_deadline,
            draining: None,
            close_deadline: None,
            closed: None,
            actions: VecDeque::new(),
        }
    }

    /// This connection sends no keepalive PINGs (HTTP/1.1 has none); `Timeout` then never
    /// applies either.
    pub fn without_pings(mut self) -> Self {
        self.ping_time = None;
        self
    }

    /// The idle limit of this connection after jitter, if max-idle is on.
    pub fn idle_limit(&self) -> Option<Duration> {
        self.idle_limit
    }

    /// When this connection reaches its (jittered) max age, if max-age is on.
    pub fn age_deadline(&self) -> Option<Instant> {
        self.age_deadline
    }

    /// Streams open now.
    pub fn active_streams(&self) -> u32 {
        self.active_streams
    }

    /// The drain in progress, if any.
    pub fn draining(&self) -> Option<DrainReason> {
        self.draining
    }

    /// Why the connection was closed, once it was.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// Ping strikes counted so far.
    pub fn ping_strikes(&self) -> u32 {
        self.enforcer.strikes()
    }

    /// Bytes were read from the client.
    pub fn on_read(&mut self, now: Instant) {
        self.last_read = self.last_read.max(now);
        self.ping_sent_at = None;
    }

    /// A stream (HTTP/2) or request (HTTP/1.1) began.
    pub fn on_stream_opened(&mut self, _now: Instant) {
        self.active_streams = self.active_streams.saturating_add(1);
        self.idle_since = None;
    }

    /// A stream or request ended.
    pub fn on_stream_closed(&mut self, now: Instant) {
        self.active_streams = self.active_streams.saturating_sub(1);
        if self.active_streams == 0 {
            self.idle_since = Some(now);
        }
    }

    /// The server wrote HEADERS, DATA or trailers.
    pub fn on_data_sent(&mut self) {
        self.enforcer.on_data_sent();
    }

    /// A client PING was received and ACKed at `now`: judge it. On
    /// [`PingVerdict::TooManyPings`] the connection counts as closed; the driver sends
    /// GOAWAY ENHANCE_YOUR_CALM `too_many_pings` and closes.
    pub fn on_ping(&mut self, now: Instant) -> PingVerdict {
        let verdict = self.enforcer.on_ping(now, self.active_streams > 0);
        if matches!(verdict, PingVerdict::TooManyPings { .. }) && self.closed.is_none() {
            self.closed = Some(CloseReason::TooManyPings);
            self.actions.clear();
        }
        verdict
    }

    /// Drain gracefully for `reason` and close after `grace` (forever if `None`). A
    /// connection already draining keeps its drain and only moves the close deadline
    /// earlier.
    pub fn drain(&mut self, now: Instant, reason: DrainReason, grace: Option<Duration>) {
        if self.closed.is_some() {
            return;
        }
        if self.draining.is_none() {
            self.draining = Some(reason);
            self.actions.push_back(Action::Drain(reason));
        }
        if let Some(grace) = grace {
            let close_reason = match reason {
                DrainReason::Shutdown => CloseReason::ShutdownGraceExpired,
                DrainReason::MaxAge | DrainReason::MaxIdle => CloseReason::AgeGraceExpired,
            };
            let deadline = now + grace;
            if self.close_deadline.is_none_or(|(d, _)| deadline < d) {
                self.close_deadline = Some((deadline, close_reason));
            }
        }
    }

    fn keepalive_deadline(&self) -> Option<Instant> {
        let time = self.ping_time?;
        Some(match self.ping_sent_at {
            Some(sent) => sent + self.params.timeout,
            None => self.last_read + time,
        })
    }

    fn idle_deadline(&self) -> Option<Instant> {
        if self.draining.is_some() {
            return None;
        }
        Some(self.idle_since? + self.idle_limit?)
    }

    fn age_drain_deadline(&self) -> Option<Instant> {
        if self.draining.is_some() {
            return None;
        }
        self.age_deadline
    }

    /// The next moment [`handle_timeout`](Self::handle_timeout) has something to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        [
            self.keepalive_deadline(),
            self.idle_deadline(),
            self.age_drain_deadline(),
            self.close_deadline.map(|(d, _)| d),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advance to `now`: fire whatever deadlines have passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if let Some((deadline, reason)) = self.close_deadline
            && now >= deadline
        {
            return self.close(reason);
        }
        if let Some(deadline) = self.keepalive_deadline()
            && now >= deadline
        {
            if self.ping_sent_at.is_some() {
                return self.close(CloseReason::KeepaliveTimeout);
            }
            self.ping_sent_at = Some(now);
            self.actions.push_back(Action::SendPing);
        }
        if self.age_drain_deadline().is_some_and(|d| now >= d) {
            self.drain(
                now,
                DrainReason::MaxAge,
                self.params.max_connection_age_grace,
            );
        } else if self.idle_deadline().is_some_and(|d| now >= d) {
            self.drain(now, DrainReason::MaxIdle, None);
        }
    }

    fn close(&mut self, reason: CloseReason) {
        self.closed = Some(reason);
        self.actions.clear();
        self.actions.push_back(Action::Close(reason));
    }

    /// The next thing the driver must do, if any.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }
}

#[cfg(test)]
mod tests;
