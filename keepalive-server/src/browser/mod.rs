//! Keepalive for browsers, which cannot see HTTP/2: sessions, heartbeats judged like
//! PINGs, and resumable streams of your own message types.
//!
//! A page cannot send or see HTTP/2 PINGs, and gRPC-web has only unary and
//! server-streaming calls, so the browser client emulates keepalive with messages
//! (`shared/KEEPALIVE.md` §2) and [`BrowserKeepalive`] is the server half of it:
//!
//! - **`keepalive.v1.Session`** ([`BrowserKeepalive::service`]): `OpenSession` gives the
//!   identity heartbeats are judged by ([`sessions`]); `Heartbeat` is the browser's PING,
//!   judged per session by the same [`keepalive::PingEnforcer`] and policy as HTTP/2 PINGs,
//!   with the session's open resumable streams as its active streams; past the strikes:
//!   RESOURCE_EXHAUSTED `too_many_pings`.
//! - **Resumable streams** ([`BrowserKeepalive::resumable`]): your server-streaming method
//!   answers with your own message type ([`ResumableMessage`]) over an [`EventLog`] of
//!   your own event type — Welcome, events exactly once and in order, StreamHeartbeats
//!   when quiet, explicit Gaps, a GoAway with the resume point at max stream age, at
//!   shutdown and on [`go_away_all`](BrowserKeepalive::go_away_all).
//!
//! ```
//! use keepalive_server::browser::{BrowserKeepalive, BrowserOptions, ResumableStream, StreamOptions};
//! use keepalive_server::log::MemoryLog;
//! use std::sync::Arc;
//! # mod generated {
//! #     #[derive(Clone, PartialEq, prost::Message)]
//! #     pub struct Tick { #[prost(uint64, tag = "1")] pub sequence: u64 }
//! #     #[derive(Clone, PartialEq, prost::Message)]
//! #     pub struct WatchResponse {
//! #         #[prost(oneof = "watch_response::Kind", tags = "1, 2, 3, 4, 5")]
//! #         pub kind: Option<watch_response::Kind>,
//! #     }
//! #     pub mod watch_response {
//! #         #[derive(Clone, PartialEq, prost::Oneof)]
//! #         pub enum Kind {
//! #             #[prost(message, tag = "1")] Welcome(keepalive_proto::v1::Welcome),
//! #             #[prost(message, tag = "2")] Event(super::Tick),
//! #             #[prost(message, tag = "3")] Heartbeat(keepalive_proto::v1::StreamHeartbeat),
//! #             #[prost(message, tag = "4")] Gap(keepalive_proto::v1::Gap),
//! #             #[prost(message, tag = "5")] GoAway(keepalive_proto::v1::GoAway),
//! #         }
//! #     }
//! #     keepalive_proto::resumable_message!(WatchResponse, watch_response::Kind, Tick);
//! #     keepalive_proto::sequenced!(Tick);
//! # }
//! # use generated::{Tick, WatchResponse};
//!
//! struct Ticks {
//!     browser: BrowserKeepalive,
//!     log: Arc<MemoryLog<Tick>>,
//! }
//!
//! impl Ticks {
//!     // The body of a tonic handler `async fn watch(&self, req) -> Result<Response<..>, Status>`.
//!     fn watch(
//!         &self,
//!         resume: keepalive_proto::v1::ResumeRequest,
//!     ) -> Result<ResumableStream<WatchResponse>, tonic::Status> {
//!         self.browser.resumable(&self.log, resume, StreamOptions::default())
//!     }
//! }
//!
//! let browser = BrowserKeepalive::new(BrowserOptions::default());
//! let ticks = Ticks { browser: browser.clone(), log: Arc::new(MemoryLog::new(10_000)) };
//! // Server::builder().browser_keepalive(browser).add_service(TicksServer::new(ticks))…
//! # drop(ticks);
//! ```
//!
//! Errors (code, message):
//! - a session id that is not valid (forged, altered, signed with a key this server does
//!   not have): UNAUTHENTICATED `invalid session id`; past its expiry: UNAUTHENTICATED
//!   `session expired` — the client opens a new session;
//! - heartbeat past the strikes: RESOURCE_EXHAUSTED `too_many_pings`;
//! - resume token of another session: PERMISSION_DENIED
//!   `resume token does not belong to this session`;
//! - table full: RESOURCE_EXHAUSTED `too many sessions: the server's limit is N (max-sessions)`.
//!
//! # Layout
//! - [`sessions`]: the session table, one [`keepalive::PingEnforcer`] per session.
//! - [`stream`]: one resumable stream's task.
//! - [`stats`]: the counters.
//! - [`tokens`]: signed session ids and resume tokens, valid on every replica.
//! - [`replica`]: this process as one replica: its name, its keys, the state it shares.
//! - [`ids`]: random ids, constant-time comparison.

pub mod ids;
pub mod replica;
pub mod sessions;
pub mod stats;
pub mod stream;
pub mod tokens;

pub use replica::Replica;
pub use stats::BrowserStats;
pub use stream::{ResumableStream, StreamOptions, start_position};

use crate::clock::Clock;
use crate::log::{EventLog, LogEvent};
use crate::metrics::{self, Kind, Registry, Sample, Snapshot};
use keepalive::enforcement::TOO_MANY_PINGS;
use keepalive::settings::SettingsError;
use keepalive::{EnforcementPolicy, PingVerdict};
use keepalive_proto::resume::ResumableMessage;
use keepalive_proto::v1::session_server::{Session as SessionApi, SessionServer};
use keepalive_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, OpenSessionRequest, OpenSessionResponse, ResumeRequest,
    Welcome,
};
use sessions::{OpenError, Session, Sessions};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

/// Default `--stream-heartbeat-interval` (SignalR's keepalive interval; below common
/// proxies' 30–60 s idle cut).
pub const DEFAULT_STREAM_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);
/// Default `--max-sessions`.
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;

/// The knobs of browser keepalive.
///
/// ```
/// use keepalive_server::browser::BrowserOptions;
/// use std::time::Duration;
/// let options = BrowserOptions {
///     stream_heartbeat_interval: Duration::from_secs(5),
///     ..BrowserOptions::default()
/// };
/// assert!(options.validate().is_ok());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct BrowserOptions {
    /// A quiet resumable stream gets a StreamHeartbeat this often [default: 15s].
    #[cfg_attr(feature = "cli", arg(
        id = "stream_heartbeat_interval", long = "stream-heartbeat-interval", value_name = "DUR",
        value_parser = keepalive::settings::parse_duration, required = false
    ))]
    pub stream_heartbeat_interval: Duration,
    /// Resumable streams older than this (±10%) end with GoAway max_stream_age [default: off].
    #[cfg_attr(feature = "cli", arg(
        id = "max_stream_age", long = "max-stream-age", value_name = "DUR|off",
        value_parser = keepalive::settings::parse_knob, required = false
    ))]
    pub max_stream_age: std::option::Option<Duration>,
    /// Most sessions open at once [default: 100000].
    #[cfg_attr(
        feature = "cli",
        arg(
            id = "max_sessions",
            long = "max-sessions",
            value_name = "N",
            required = false
        )
    )]
    pub max_sessions: usize,
    /// How long a session id stays valid after it was made [default: 24h].
    #[cfg_attr(feature = "cli", arg(
        id = "session_ttl", long = "session-ttl", value_name = "DUR",
        value_parser = keepalive::settings::parse_duration, required = false
    ))]
    pub session_ttl: Duration,
    /// The policy heartbeats are judged by; `None`: the server's
    /// ([`Builder::enforcement`](crate::Builder::enforcement)) once mounted with
    /// [`Builder::browser_keepalive`](crate::Builder::browser_keepalive), grpc-go's
    /// defaults otherwise.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub enforcement: Option<EnforcementPolicy>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        BrowserOptions {
            stream_heartbeat_interval: DEFAULT_STREAM_HEARTBEAT_INTERVAL,
            max_stream_age: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            session_ttl: tokens::DEFAULT_SESSION_TTL,
            enforcement: None,
        }
    }
}

impl BrowserOptions {
    /// Checks the options; the error names the flag, in one line.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (name, d) in [
            (
                "--stream-heartbeat-interval",
                Some(self.stream_heartbeat_interval),
            ),
            ("--max-stream-age", self.max_stream_age),
            ("--session-ttl", Some(self.session_ttl)),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                return Err(SettingsError(format!("{name} must be more than 0")));
            }
        }
        if self.max_sessions == 0 {
            return Err(SettingsError::new("--max-sessions must be at least 1"));
        }
        Ok(())
    }
}

/// Browser keepalive: the session table, the `keepalive.v1.Session` service, and the
/// resumable streams of your services. Cheap to clone; clones share everything.
#[derive(Clone, Debug)]
pub struct BrowserKeepalive {
    inner: Arc<Inner>,
}

/// A go-away for every stream, and why.
#[derive(Clone, Debug, Default)]
pub(crate) struct GoAwayAll {
    pub(crate) reason: Arc<str>,
}

/// A check every heartbeat passes first (see [`BrowserKeepalive::intercept_heartbeats`]).
pub type HeartbeatGate = Arc<dyn Fn() -> Result<(), Status> + Send + Sync>;

pub(crate) struct Inner {
    options: BrowserOptions,
    pub(crate) replica: Replica,
    gate: std::sync::OnceLock<HeartbeatGate>,
    sessions: Sessions,
    pub(crate) stats: Arc<BrowserStats>,
    pub(crate) clock: Clock,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) go_away_all: watch::Sender<GoAwayAll>,
}

impl BrowserKeepalive {
    /// Browser keepalive with `options` (check them first with
    /// [`BrowserOptions::validate`]; the server does when it is mounted), for a server
    /// alone ([`Replica::single`]).
    ///
    /// # Panics
    /// If the OS CSPRNG fails (no key to sign session ids with).
    pub fn new(options: BrowserOptions) -> Self {
        #[allow(clippy::expect_used)]
        let replica = Replica::single().expect("the OS CSPRNG for a session key");
        Self::replicated(options, replica)
    }

    /// Browser keepalive as one replica of several: session ids signed with the shared
    /// keys, stream presence and fencing shared (see [`Replica`]).
    pub fn replicated(options: BrowserOptions, replica: Replica) -> Self {
        let clock = Clock::start();
        BrowserKeepalive {
            inner: Arc::new(Inner {
                sessions: Sessions::new(
                    options.enforcement.unwrap_or_default(),
                    options.max_sessions,
                    clock,
                    replica.keys(),
                    options.session_ttl,
                ),
                replica,
                options,
                gate: std::sync::OnceLock::new(),
                stats: Arc::new(BrowserStats::default()),
                clock,
                shutdown: watch::channel(false).0,
                go_away_all: watch::channel(GoAwayAll::default()).0,
            }),
        }
    }

    /// The options in force.
    pub fn options(&self) -> &BrowserOptions {
        &self.inner.options
    }

    /// The `keepalive.v1.Session` service (OpenSession, Heartbeat), to add to a server.
    pub fn service(&self) -> SessionServer<SessionService> {
        SessionServer::new(SessionService {
            browser: self.clone(),
        })
    }

    /// Opens a resumable stream of your message type `M` over `log`, from where `resume`
    /// says: the body of your server-streaming handler.
    ///
    /// The stream sends a Welcome, then every event after the resume point in order and
    /// exactly once (a Gap for what `log` no longer holds), StreamHeartbeats when quiet,
    /// and ends with a GoAway at max stream age, at shutdown and on
    /// [`go_away_all`](Self::go_away_all). While it is open it counts as an active stream
    /// of its session, so the session's heartbeats are judged like PINGs on a busy
    /// connection.
    ///
    /// # Errors
    /// UNAUTHENTICATED for a session id that is not valid; PERMISSION_DENIED when the resume token belongs to
    /// another session.
    pub fn resumable<M, L>(
        &self,
        log: &Arc<L>,
        resume: ResumeRequest,
        options: StreamOptions,
    ) -> Result<ResumableStream<M>, Status>
    where
        M: ResumableMessage,
        M::Event: LogEvent,
        L: EventLog<M::Event> + ?Sized,
    {
        let session = self.session(&resume.session_id)?;
        let stream_key = resume.stream_key.clone();
        if !resume.resume_token.is_empty()
            && !ids::ct_eq(&resume.resume_token, &session.resume_token)
        {
            return Err(Status::permission_denied(
                "resume token does not belong to this session",
            ));
        }
        let head = log.head();
        let log_id = log.log_id();
        let next_sequence = start_position(resume.after_sequence, &resume.log_id, &log_id, head);
        let stats = &self.inner.stats;
        BrowserStats::inc(&stats.subscriptions);
        if resume.after_sequence.is_some() || !resume.resume_token.is_empty() {
            BrowserStats::inc(&stats.resumes);
        }
        let heartbeat_interval = options
            .heartbeat_interval
            .unwrap_or(self.inner.options.stream_heartbeat_interval);
        let welcome = Welcome {
            resume_token: session.resume_token.clone(),
            head_sequence: head,
            stream_heartbeat_interval_ms: millis(heartbeat_interval),
            log_id: log_id.to_string(),
            next_sequence,
            server: self.inner.replica.name().to_owned(),
        };
        let guard = stream::StreamGuard::open(session, self.inner.clone(), &stream_key);
        Ok(stream::spawn(
            log.clone(),
            guard,
            welcome,
            heartbeat_interval,
            options.max_stream_age.or(self.inner.options.max_stream_age),
        ))
    }

    /// Ends every open resumable stream with a GoAway carrying `reason` (clients reopen
    /// at once and resume): for a deploy, a rebalance, a test.
    pub fn go_away_all(&self, reason: &str) {
        self.inner.go_away_all.send_replace(GoAwayAll {
            reason: reason.into(),
        });
    }

    /// The server is stopping: every open resumable stream ends with GoAway `shutdown`,
    /// and so does every stream opened from now on. The server calls this when it drains;
    /// call it yourself when serving these services on another transport.
    pub fn shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Lets `gate` refuse heartbeats before they are judged (once per keepalive; a second
    /// gate is ignored): a fault-injection hook for demos and tests, which make heartbeats
    /// fail on purpose to show what a client does then.
    pub fn intercept_heartbeats(
        &self,
        gate: impl Fn() -> Result<(), Status> + Send + Sync + 'static,
    ) {
        let _ = self.inner.gate.set(Arc::new(gate));
    }

    /// Whether `session_id` names a valid session (counts as its activity; a valid id of
    /// another replica is adopted).
    pub fn has_session(&self, session_id: &str) -> bool {
        self.inner.sessions.get(session_id).is_ok()
    }

    /// The short name of the session `session_id` names, for events it publishes (the
    /// first characters of its random part); `None` for an id that is not valid.
    pub fn session_source(&self, session_id: &str) -> Option<String> {
        self.inner.sessions.get(session_id).ok().map(|s| s.source())
    }

    /// This replica.
    pub fn replica(&self) -> &Replica {
        &self.inner.replica
    }

    /// The counters.
    pub fn stats(&self) -> &Arc<BrowserStats> {
        &self.inner.stats
    }

    /// Every counter and the `sessions` gauge, now.
    pub fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.inner.stats.snapshot();
        snapshot.push(Sample {
            name: "sessions",
            value: self.inner.sessions.len() as u64,
            kind: Kind::Gauge,
        });
        snapshot
    }

    /// Registers the counters on `registry`, as [`stats::FAMILIES`] (`keepalive_*`).
    pub fn register_metrics(&self, registry: &mut Registry) {
        let browser = self.clone();
        metrics::register(registry, "keepalive", stats::FAMILIES, move || {
            browser.snapshot()
        });
    }

    /// Judges heartbeats of sessions opened from now on by `policy` (what
    /// [`Builder::browser_keepalive`](crate::Builder::browser_keepalive) does with the
    /// server's policy, unless the options name one).
    pub(crate) fn adopt_policy(&self, policy: EnforcementPolicy) {
        if self.inner.options.enforcement.is_none() {
            self.inner.sessions.set_policy(policy);
        }
    }

    fn session(&self, id: &str) -> Result<Arc<Session>, Status> {
        self.inner.sessions.get(id).map_err(|e| {
            if matches!(e, OpenError::Token(_)) {
                BrowserStats::inc(&self.inner.stats.sessions_refused);
            }
            open_error(e, self.inner.options.max_sessions)
        })
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("options", &self.options)
            .field("sessions", &self.sessions)
            .field("heartbeat_gate", &self.gate.get().is_some())
            .finish_non_exhaustive()
    }
}

/// The status of a session that cannot be opened or found.
fn open_error(e: OpenError, max_sessions: usize) -> Status {
    match e {
        OpenError::Full => Status::resource_exhausted(format!(
            "too many sessions: the server's limit is {max_sessions} (max-sessions)"
        )),
        OpenError::Random(e) => {
            tracing::error!(error = %e, "no randomness for a session id");
            Status::internal("cannot create a session id")
        }
        OpenError::Token(e) => Status::unauthenticated(e.message()),
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The `keepalive.v1.Session` service of a [`BrowserKeepalive`].
#[derive(Debug, Clone)]
pub struct SessionService {
    browser: BrowserKeepalive,
}

#[tonic::async_trait]
impl SessionApi for SessionService {
    async fn open_session(
        &self,
        _: Request<OpenSessionRequest>,
    ) -> Result<Response<OpenSessionResponse>, Status> {
        let inner = &self.browser.inner;
        let (session, expired) = inner
            .sessions
            .open()
            .map_err(|e| open_error(e, inner.options.max_sessions))?;
        BrowserStats::inc(&inner.stats.sessions_opened);
        BrowserStats::add(&inner.stats.sessions_expired, expired as u64);
        Ok(Response::new(OpenSessionResponse {
            session_id: session.id.clone(),
            stream_heartbeat_interval_ms: millis(inner.options.stream_heartbeat_interval),
            server: inner.replica.name().to_owned(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let req = request.into_inner();
        if let Some(gate) = self.browser.inner.gate.get() {
            gate()?;
        }
        let session = self.browser.session(&req.session_id)?;
        let stats = &self.browser.inner.stats;
        BrowserStats::inc(&stats.heartbeats);
        // Its stream may be open on another replica (the load balancer spread its calls).
        let elsewhere = !session.has_open_stream()
            && self
                .browser
                .inner
                .replica
                .streams_elsewhere(&session.key)
                .await;
        match session.heartbeat_with(self.browser.inner.clock.now(), elsewhere) {
            PingVerdict::Accepted => {}
            PingVerdict::Strike { strikes } => {
                BrowserStats::inc(&stats.heartbeat_strikes);
                tracing::debug!(session = %session.source(), strikes, "heartbeat strike");
            }
            PingVerdict::TooManyPings { strikes } => {
                BrowserStats::inc(&stats.heartbeat_strikes);
                BrowserStats::inc(&stats.heartbeats_too_many_pings);
                tracing::info!(session = %session.source(), strikes, "heartbeat refused: too many pings");
                return Err(Status::resource_exhausted(TOO_MANY_PINGS));
            }
        }
        Ok(Response::new(HeartbeatResponse {
            sequence: req.sequence,
            client_send_time_ms: req.client_send_time_ms,
            server_time_ms: crate::log::now_ms(),
            server: self.browser.inner.replica.name().to_owned(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_one_family() {
        let b = BrowserKeepalive::new(BrowserOptions::default());
        metrics::check_families(stats::FAMILIES, &b.snapshot()).expect("families");
    }

    #[test]
    fn options_are_checked() {
        assert!(BrowserOptions::default().validate().is_ok());
        let zero = BrowserOptions {
            stream_heartbeat_interval: Duration::ZERO,
            ..BrowserOptions::default()
        };
        assert_eq!(
            zero.validate().expect_err("zero").0,
            "--stream-heartbeat-interval must be more than 0"
        );
        let none = BrowserOptions {
            max_sessions: 0,
            ..BrowserOptions::default()
        };
        assert!(none.validate().expect_err("zero").0.contains("at least 1"));
    }
}
