//! `keepalive.v1.Keepalive`: keepalive for browsers, which cannot see HTTP/2.
//!
//! A page cannot send or see HTTP/2 PINGs, and gRPC-web has only unary and
//! server-streaming calls, so the browser client emulates keepalive with messages
//! (`shared/KEEPALIVE.md` §2) and this service is the server half of it:
//!
//! - **OpenSession** gives the identity heartbeats are judged by ([`sessions`]).
//! - **Heartbeat** is the browser's PING, judged per session by the same
//!   [`keepalive::PingEnforcer`] and flags as HTTP/2 PINGs; past the strikes:
//!   RESOURCE_EXHAUSTED `too_many_pings`.
//! - **Subscribe** is a resumable feed ([`feed`]) over a sequence-numbered log ([`log`]):
//!   exactly once, in order, explicit Gaps, StreamHeartbeats when quiet so silence can be
//!   told from death, and a GoAway with the resume point when the server ends it.
//! - **Publish** appends idempotently ([`publish`]); **Stats** reports counters
//!   ([`counters`]); **Chaos** injects faults ([`chaos`], [`crate::faults`]).
//!
//! Errors (code, message):
//! - unknown session (Heartbeat, Subscribe): NOT_FOUND `unknown session`;
//! - heartbeat past the strikes: RESOURCE_EXHAUSTED `too_many_pings`;
//! - heartbeat during chaos REJECT_HEARTBEATS: UNAVAILABLE `heartbeats rejected (chaos)`;
//! - resume token of another session: PERMISSION_DENIED
//!   `resume token does not belong to this session`;
//! - table full: RESOURCE_EXHAUSTED `too many sessions: the server's limit is N (max-sessions)`;
//! - bad publish: INVALID_ARGUMENT (the message says the limit);
//! - chaos off / wrong token: PERMISSION_DENIED `chaos is disabled` / `wrong chaos token`.

pub mod chaos;
pub mod counters;
pub mod feed;
pub mod ids;
pub mod log;
pub mod publish;
pub mod sessions;
pub mod settings;
pub mod ticker;

pub use settings::ServiceSettings;

use crate::clock::Clock;
use crate::faults::Faults;
use crate::stats::Stats;
use feed::{FeedContext, StreamGuard, SubscribeStream};
use keepalive::enforcement::TOO_MANY_PINGS;
use keepalive::{EnforcementPolicy, PingVerdict};
use log::{EventLog, LogError};
use proto::v1::keepalive_server::{Keepalive, KeepaliveServer};
use proto::v1::{
    ChaosRequest, ChaosResponse, HeartbeatRequest, HeartbeatResponse, OpenSessionRequest,
    OpenSessionResponse, PublishRequest, PublishResponse, StatsRequest, StatsResponse,
    SubscribeRequest, Welcome,
};
use sessions::{OpenError, Session, Sessions};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

/// What the service takes from the server.
#[derive(Clone, Debug)]
pub struct ServerParts {
    /// Counters.
    pub stats: Arc<Stats>,
    /// Chaos faults.
    pub faults: Arc<Faults>,
    /// The server's clock.
    pub clock: Clock,
    /// Becomes `true` when the server stops.
    pub shutdown: watch::Receiver<bool>,
}

/// The service.
#[derive(Debug)]
pub struct KeepaliveService {
    log: Arc<dyn EventLog>,
    sessions: Arc<Sessions>,
    server: ServerParts,
    settings: ServiceSettings,
    feed: FeedContext,
}

/// Opens the event log the settings ask for: the file, or memory.
pub fn open_log(settings: &ServiceSettings) -> Result<Arc<dyn EventLog>, LogError> {
    Ok(match &settings.event_log {
        Some(path) => Arc::new(log::file::open(path, settings.replay_capacity)?),
        None => Arc::new(log::memory::open(settings.replay_capacity)?),
    })
}

impl KeepaliveService {
    /// The service over `log`; heartbeats are judged by `policy`.
    pub fn new(
        settings: ServiceSettings,
        policy: EnforcementPolicy,
        log: Arc<dyn EventLog>,
        server: ServerParts,
    ) -> Self {
        let feed = FeedContext {
            log: log.clone(),
            stats: server.stats.clone(),
            clock: server.clock,
            heartbeat_interval: settings.stream_heartbeat_interval,
            max_stream_age: settings.max_stream_age,
            shutdown: server.shutdown.clone(),
            chaos_goaway: server.faults.subscribe_goaway(),
        };
        KeepaliveService {
            sessions: Arc::new(Sessions::new(policy, settings.max_sessions, server.clock)),
            log,
            server,
            settings,
            feed,
        }
    }

    /// Starts the ticker if `--tick-interval` asks for it (needs a tokio runtime).
    pub fn start_ticker(&self) {
        if let Some(every) = self.settings.tick_interval {
            ticker::spawn(
                self.log.clone(),
                self.server.stats.clone(),
                every,
                self.server.shutdown.clone(),
            );
        }
    }

    /// Reads every counter and gauge of the Stats call, also after the service has been
    /// handed to tonic (for `/metrics`).
    pub fn snapshot_source(&self) -> impl Fn() -> StatsResponse + Send + Sync + 'static {
        let stats = self.server.stats.clone();
        let sessions = self.sessions.clone();
        let log = self.log.clone();
        move || counters::snapshot(&stats, &sessions, log.as_ref())
    }

    /// The tonic service.
    pub fn into_server(self) -> KeepaliveServer<Self> {
        KeepaliveServer::new(self)
    }

    fn stats(&self) -> &Stats {
        &self.server.stats
    }

    fn session(&self, id: &str) -> Result<Arc<Session>, Status> {
        self.sessions
            .get(id)
            .ok_or_else(|| Status::not_found("unknown session"))
    }

    fn heartbeat_interval_ms(&self) -> u64 {
        u64::try_from(self.settings.stream_heartbeat_interval.as_millis()).unwrap_or(u64::MAX)
    }
}

#[tonic::async_trait]
impl Keepalive for KeepaliveService {
    async fn open_session(
        &self,
        _: Request<OpenSessionRequest>,
    ) -> Result<Response<OpenSessionResponse>, Status> {
        let (session, expired) = self.sessions.open().map_err(|e| match e {
            OpenError::Full => Status::resource_exhausted(format!(
                "too many sessions: the server's limit is {} (max-sessions)",
                self.settings.max_sessions
            )),
            OpenError::Random(e) => {
                tracing::error!(error = %e, "no randomness for a session id");
                Status::internal("cannot create a session id")
            }
        })?;
        Stats::inc(&self.stats().sessions_opened);
        self.stats()
            .sessions_expired
            .fetch_add(expired as u64, Relaxed);
        Ok(Response::new(OpenSessionResponse {
            session_id: session.id.clone(),
            stream_heartbeat_interval_ms: self.heartbeat_interval_ms(),
            log_id: self.log.log_id().to_string(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let req = request.into_inner();
        if self
            .server
            .faults
            .rejecting_heartbeats(tokio::time::Instant::now())
        {
            Stats::inc(&self.stats().heartbeats_rejected_chaos);
            return Err(Status::unavailable("heartbeats rejected (chaos)"));
        }
        let session = self.session(&req.session_id)?;
        Stats::inc(&self.stats().heartbeats);
        match session.heartbeat(self.server.clock.now()) {
            PingVerdict::Accepted => {}
            PingVerdict::Strike { strikes } => {
                Stats::inc(&self.stats().heartbeat_strikes);
                tracing::debug!(session = %session.source(), strikes, "heartbeat strike");
            }
            PingVerdict::TooManyPings { strikes } => {
                Stats::inc(&self.stats().heartbeat_strikes);
                Stats::inc(&self.stats().heartbeats_too_many_pings);
                tracing::info!(session = %session.source(), strikes, "heartbeat refused: too many pings");
                return Err(Status::resource_exhausted(TOO_MANY_PINGS));
            }
        }
        Ok(Response::new(HeartbeatResponse {
            sequence: req.sequence,
            client_send_time_ms: req.client_send_time_ms,
            server_time_ms: log::now_ms(),
        }))
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<SubscribeStream>, Status> {
        let req = request.into_inner();
        let session = self.session(&req.session_id)?;
        if !req.resume_token.is_empty() && !ids::ct_eq(&req.resume_token, &session.resume_token) {
            return Err(Status::permission_denied(
                "resume token does not belong to this session",
            ));
        }
        let head = self.log.head();
        let log_id = self.log.log_id();
        let next_sequence = feed::start_position(req.after_sequence, &req.log_id, log_id, head);
        Stats::inc(&self.stats().subscriptions);
        if req.after_sequence.is_some() || !req.resume_token.is_empty() {
            Stats::inc(&self.stats().resumes);
        }
        let welcome = Welcome {
            resume_token: session.resume_token.clone(),
            head_sequence: head,
            stream_heartbeat_interval_ms: self.heartbeat_interval_ms(),
            log_id: log_id.to_string(),
            next_sequence,
        };
        let guard = StreamGuard::open(session, self.server.stats.clone(), self.server.clock);
        Ok(Response::new(feed::spawn(
            self.feed.clone(),
            guard,
            welcome,
        )))
    }

    async fn publish(
        &self,
        request: Request<PublishRequest>,
    ) -> Result<Response<PublishResponse>, Status> {
        let event = publish::validate(request.into_inner(), &self.sessions)?;
        let appended = self.log.append(event).await.map_err(|e| {
            tracing::error!(error = %e, "publish failed");
            Status::unavailable(e.to_string())
        })?;
        Stats::inc(if appended.duplicate {
            &self.stats().publish_duplicates
        } else {
            &self.stats().events_published
        });
        Ok(Response::new(PublishResponse {
            sequence: appended.sequence,
            duplicate: appended.duplicate,
        }))
    }

    async fn stats(&self, _: Request<StatsRequest>) -> Result<Response<StatsResponse>, Status> {
        Ok(Response::new(counters::snapshot(
            self.stats(),
            &self.sessions,
            self.log.as_ref(),
        )))
    }

    async fn chaos(
        &self,
        request: Request<ChaosRequest>,
    ) -> Result<Response<ChaosResponse>, Status> {
        let req = request.into_inner();
        chaos::authorize(
            self.settings.chaos,
            self.settings.chaos_token.as_ref(),
            &req.token,
        )?;
        let message = chaos::apply(&self.server.faults, &req)?;
        Stats::inc(&self.stats().chaos_actions);
        Ok(Response::new(ChaosResponse { message }))
    }
}
