//! The native driver: one browser session, run by the same sans-IO
//! [`keepalive::client::Channel`] as the wasm client, with tokio timers instead of the
//! page's.
//!
//! It mirrors `keepalive-client/src/driver.rs`: the core's actions start or abort calls (each
//! call a task; aborting the task drops its response body, which closes its HTTP/1.1
//! connection as a browser's aborted fetch does), network outcomes come back over a
//! channel and are fed to the core, and one loop sleeps until the core's next deadline.
//! The session id is opened on first need and one at a time; a server that forgot it
//! (UNAUTHENTICATED or NOT_FOUND, after a restart) gets a new one, and a refused resume token is dropped
//! while the resume point is kept.
//!
//! The loop also records what the bench reports: heartbeat round trips (the core's own
//! `HeartbeatRtt`), event lag, state changes, losses (with the last moment anything was
//! received) and the first event after each resume.
//!
//! `probe`: the core sends a heartbeat only after `Time` with nothing received, so a feed
//! busier than `Time` never heartbeats. With `probe`, the driver asks the core for a check
//! every `Time` (the path a page takes when its tab becomes visible), so heartbeats flow
//! at `Time` whatever the feed does.

use crate::grpc::{CallError, code};
use crate::histogram::Histogram;
use crate::http::{self, Pool};
use demo_proto::v1::subscribe_response::Kind;
use demo_proto::v1::{SubscribeRequest, SubscribeResponse};
use keepalive::client::{
    CallId, Channel, ClientAction, ClientConfig, ClientEvent, ClientStats, ConnectivityState,
    Delivery, HeartbeatOutcome, StreamId, Welcome,
};
use keepalive_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, OpenSessionRequest, OpenSessionResponse, ResumeRequest,
};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

/// Method paths of `keepalive.v1.Session` and the demo's `keepalive.demo.v1.Feed`.
pub mod path {
    /// OpenSession.
    pub const OPEN_SESSION: &str = "/keepalive.v1.Session/OpenSession";
    /// Heartbeat.
    pub const HEARTBEAT: &str = "/keepalive.v1.Session/Heartbeat";
    /// Subscribe.
    pub const SUBSCRIBE: &str = "/keepalive.demo.v1.Feed/Subscribe";
    /// Publish.
    pub const PUBLISH: &str = "/keepalive.demo.v1.Feed/Publish";
    /// Chaos.
    pub const CHAOS: &str = "/keepalive.demo.v1.Feed/Chaos";
}

/// Converts between tokio instants, the core's instants and report seconds.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub fn start() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Now, for the core.
    pub fn now(&self) -> keepalive::Instant {
        keepalive::Instant::from_origin(self.origin.elapsed())
    }

    /// Seconds since the origin.
    pub fn secs(&self) -> f64 {
        self.origin.elapsed().as_secs_f64()
    }

    /// A core instant as seconds since the origin.
    pub fn secs_of(at: keepalive::Instant) -> f64 {
        at.since_origin().as_secs_f64()
    }

    /// A core instant as a tokio instant.
    pub fn to_tokio(&self, at: keepalive::Instant) -> Instant {
        self.origin + at.since_origin()
    }
}

/// Milliseconds since the Unix epoch (the server stamps events with its wall clock).
pub fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// What every session records into (shared, lock-free).
#[derive(Debug, Default)]
pub struct Totals {
    /// Record distributions and window counters only while this is set.
    pub measuring: AtomicBool,
    /// Heartbeat round trips, as the core measures them.
    pub rtt: Histogram,
    /// Event lag: receive wall clock minus the server's publish stamp.
    pub lag: Histogram,
    /// Heartbeats answered while measuring.
    pub heartbeats: AtomicU64,
    /// Events delivered while measuring.
    pub events: AtomicU64,
    /// Heartbeats that failed or were refused while measuring.
    pub heartbeat_errors: AtomicU64,
    /// Connections lost while measuring.
    pub losses: AtomicU64,
    /// Sessions READY now.
    pub ready: AtomicU64,
}

/// One loss of the connection, as the session saw it.
#[derive(Clone, Debug, Serialize)]
pub struct Loss {
    /// When the core declared it (s since the origin).
    pub at: f64,
    /// The core's reason.
    pub reason: &'static str,
    /// The backoff delay before the next attempt (s).
    pub retry_in: f64,
    /// The last moment anything was received before (s).
    pub last_rx: f64,
}

/// What one session did, for the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionRecord {
    /// The core's counters at the end.
    #[serde(skip)]
    pub stats: ClientStats,
    /// Every loss.
    pub losses: Vec<Loss>,
    /// Every state change: (s, state).
    pub states: Vec<(f64, &'static str)>,
    /// Each resume: (s when the stream was resumed, s of the first event delivered after).
    pub resumed: Vec<(f64, Option<f64>)>,
    /// Heartbeats refused (not answered OK, server alive).
    pub rejected: u64,
    /// HTTP/1.1 connections opened.
    pub connects: u64,
    /// The first sequence delivered.
    pub first: Option<u64>,
    /// The last sequence delivered.
    pub last: u64,
    /// Events delivered (each once: the core drops a replayed duplicate).
    pub delivered: u64,
    /// When the core saw the log reset (a new `log_id`), s since the origin.
    pub log_resets: Vec<f64>,
    /// The servers (replicas) whose Welcome this session got, in order, repeats folded.
    pub servers: Vec<String>,
}

/// A session's knobs.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// The core's knobs.
    pub client: ClientConfig,
    /// Ask for a heartbeat every `Time` even while events arrive.
    pub probe: bool,
    /// Where to connect.
    pub target: http::Target,
    /// gRPC-web over one HTTP/2 connection (a browser over https) instead of HTTP/1.1.
    pub http2: bool,
    /// Subscribe from the log's first event (after 0) instead of from now on.
    pub from_start: bool,
}

enum Input {
    Welcome(CallId, Welcome, String),
    Event(CallId, u64, u64),
    Message(CallId),
    Gap(CallId, u64, u64),
    GoAway(CallId, String, String),
    Ended(CallId),
    Heartbeat(u64, HeartbeatOutcome),
}

/// The session id, opened on first need (one at a time).
#[derive(Debug)]
struct Shared {
    pool: Arc<Pool>,
    authority: String,
    session: tokio::sync::Mutex<Option<String>>,
}

impl Shared {
    async fn session(&self) -> Result<String, CallError> {
        let mut s = self.session.lock().await;
        if let Some(id) = &*s {
            return Ok(id.clone());
        }
        let mut lease = self.pool.get().await?;
        let res: OpenSessionResponse = http::unary(
            &mut lease.sender(),
            &self.authority,
            path::OPEN_SESSION,
            &OpenSessionRequest {},
        )
        .await?;
        lease.done();
        *s = Some(res.session_id.clone());
        Ok(res.session_id)
    }

    async fn forget(&self, id: &str) {
        let mut s = self.session.lock().await;
        if s.as_deref() == Some(id) {
            *s = None;
        }
    }
}

const STREAM: StreamId = StreamId(0);

/// One session: the core, its calls, and what it records.
pub struct Session {
    core: Channel,
    clock: Clock,
    config: SessionConfig,
    shared: Arc<Shared>,
    totals: Arc<Totals>,
    tx: mpsc::UnboundedSender<Input>,
    stream: Option<(CallId, AbortHandle)>,
    heartbeats: HashMap<u64, AbortHandle>,
    record: SessionRecord,
    last_rx: f64,
    awaiting_event: Option<usize>,
    ready: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("state", &self.core.state())
            .finish_non_exhaustive()
    }
}

fn state_name(s: ConnectivityState) -> &'static str {
    match s {
        ConnectivityState::Idle => "IDLE",
        ConnectivityState::Connecting => "CONNECTING",
        ConnectivityState::Ready => "READY",
        ConnectivityState::TransientFailure => "TRANSIENT_FAILURE",
        ConnectivityState::Shutdown => "SHUTDOWN",
    }
}

impl Session {
    /// Runs one session until `stop` turns true; returns what it recorded.
    pub async fn run(
        config: SessionConfig,
        clock: Clock,
        seed: u64,
        totals: Arc<Totals>,
        mut stop: watch::Receiver<bool>,
    ) -> SessionRecord {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let pool = Pool::new(config.target.clone(), config.http2);
        let shared = Arc::new(Shared {
            authority: pool.authority(),
            pool,
            session: tokio::sync::Mutex::new(None),
        });
        let mut s = Session {
            core: Channel::new(clock.now(), config.client, seed),
            clock,
            config,
            shared,
            totals,
            tx,
            stream: None,
            heartbeats: HashMap::new(),
            record: SessionRecord::default(),
            last_rx: clock.secs(),
            awaiting_event: None,
            ready: false,
        };
        if s.config.from_start {
            s.core.add_stream_after(clock.now(), Some(0), None);
        } else {
            s.core.add_stream(clock.now());
        }
        s.pump();
        let time = s.config.client.keepalive_time;
        let mut next_probe = Instant::now() + time;
        loop {
            let deadline = s.core.poll_timeout().map(|t| clock.to_tokio(t));
            tokio::select! {
                biased;
                _ = stop.wait_for(|v| *v) => break,
                Some(input) = rx.recv() => s.feed(input),
                () = sleep_until(deadline) => s.core.handle_timeout(clock.now()),
                () = tokio::time::sleep_until(next_probe), if s.config.probe => {
                    next_probe += time;
                    if s.core.state() == ConnectivityState::Ready
                        && s.core.heartbeat_in_flight().is_none()
                    {
                        s.core.visibility(clock.now(), true);
                    }
                }
            }
            s.pump();
        }
        s.core.close(clock.now());
        s.pump();
        s.record.stats = s.core.stats();
        s.record.connects = s.shared.pool.connects();
        s.shared.pool.clear();
        if s.ready {
            s.totals.ready.fetch_sub(1, Relaxed);
        }
        s.record
    }

    fn measuring(&self) -> bool {
        self.totals.measuring.load(Relaxed)
    }

    fn feed(&mut self, input: Input) {
        let now = self.clock.now();
        let received = !matches!(
            input,
            Input::Ended(_) | Input::Heartbeat(_, HeartbeatOutcome::Failed)
        );
        match input {
            Input::Welcome(call, w, server) => {
                if self.record.servers.last() != Some(&server) {
                    self.record.servers.push(server);
                }
                self.core.on_welcome(now, STREAM, call, &w);
            }
            Input::Event(call, seq, published_ms) => {
                let d = self.core.on_event(now, STREAM, call, seq);
                if matches!(d, Delivery::Deliver | Delivery::DeliverAfterGap { .. }) {
                    self.record.first.get_or_insert(seq);
                    self.record.last = seq;
                    self.record.delivered += 1;
                    if let Some(i) = self.awaiting_event.take() {
                        self.record.resumed[i].1 = Some(Clock::secs_of(now));
                    }
                    if self.measuring() {
                        self.totals.events.fetch_add(1, Relaxed);
                        let lag_ms = (wall_ms() - published_ms as f64).max(0.0);
                        self.totals.lag.record_us((lag_ms * 1000.0) as u64);
                    }
                }
            }
            Input::Message(call) => self.core.on_stream_message(now, STREAM, call),
            Input::Gap(call, from, missed) => self.core.on_gap(now, STREAM, call, from, missed),
            Input::GoAway(call, token, reason) => {
                if self.stream.as_ref().is_some_and(|(c, _)| *c == call) {
                    self.stream = None;
                }
                self.core.on_go_away(now, STREAM, call, &token, &reason);
            }
            Input::Ended(call) => {
                if self.stream.as_ref().is_some_and(|(c, _)| *c == call) {
                    self.stream = None;
                }
                self.core.on_stream_end(now, STREAM, call);
            }
            Input::Heartbeat(seq, outcome) => {
                self.heartbeats.remove(&seq);
                if !matches!(outcome, HeartbeatOutcome::Answered) {
                    if matches!(
                        outcome,
                        HeartbeatOutcome::Rejected | HeartbeatOutcome::TooManyPings
                    ) {
                        self.record.rejected += 1;
                    }
                    if self.measuring() {
                        self.totals.heartbeat_errors.fetch_add(1, Relaxed);
                    }
                }
                self.core.on_heartbeat(now, seq, outcome);
            }
        }
        if received {
            self.last_rx = Clock::secs_of(now);
        }
    }

    /// Carries out the core's actions and records its events.
    fn pump(&mut self) {
        while let Some(action) = self.core.poll_action() {
            self.execute(action);
        }
        while let Some(event) = self.core.poll_event() {
            self.observe(event);
        }
    }

    fn execute(&mut self, action: ClientAction) {
        match action {
            ClientAction::OpenStream {
                call,
                resume_after,
                resume_token,
                log_id,
                ..
            } => {
                let req = SubscribeRequest {
                    resume: Some(ResumeRequest {
                        session_id: String::new(),
                        after_sequence: resume_after,
                        resume_token: resume_token.unwrap_or_default(),
                        log_id: log_id.unwrap_or_default(),
                        stream_key: "0".to_owned(),
                    }),
                };
                let task = tokio::spawn(subscribe(self.shared.clone(), self.tx.clone(), call, req));
                if let Some((_, old)) = self.stream.replace((call, task.abort_handle())) {
                    old.abort();
                }
            }
            ClientAction::AbortStream { call, .. } => {
                if self.stream.as_ref().is_some_and(|(c, _)| *c == call)
                    && let Some((_, task)) = self.stream.take()
                {
                    task.abort();
                }
            }
            ClientAction::SendHeartbeat { seq } => {
                let task = tokio::spawn(heartbeat(self.shared.clone(), self.tx.clone(), seq));
                self.heartbeats.insert(seq, task.abort_handle());
            }
            ClientAction::AbortHeartbeat { seq } => {
                if let Some(task) = self.heartbeats.remove(&seq) {
                    task.abort();
                }
            }
        }
    }

    fn observe(&mut self, event: ClientEvent) {
        let at = self.clock.secs();
        match event {
            ClientEvent::StateChanged { to, .. } => {
                self.record.states.push((at, state_name(to)));
                let ready = to == ConnectivityState::Ready;
                if ready != self.ready {
                    self.ready = ready;
                    if ready {
                        self.totals.ready.fetch_add(1, Relaxed);
                    } else {
                        self.totals.ready.fetch_sub(1, Relaxed);
                    }
                }
            }
            ClientEvent::ConnectionLost { reason, retry_in } => {
                if self.measuring() {
                    self.totals.losses.fetch_add(1, Relaxed);
                }
                self.record.losses.push(Loss {
                    at,
                    reason: reason.as_str(),
                    retry_in: retry_in.as_secs_f64(),
                    last_rx: self.last_rx,
                });
            }
            ClientEvent::LogReset { .. } => self.record.log_resets.push(at),
            ClientEvent::Resumed { .. } => {
                self.record.resumed.push((at, None));
                self.awaiting_event = Some(self.record.resumed.len() - 1);
            }
            ClientEvent::HeartbeatRtt { rtt } if self.measuring() => {
                self.totals.rtt.record(rtt);
                self.totals.heartbeats.fetch_add(1, Relaxed);
            }
            _ => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One heartbeat call; its outcome goes back to the session.
async fn heartbeat(shared: Arc<Shared>, tx: mpsc::UnboundedSender<Input>, seq: u64) {
    let outcome = match shared.session().await {
        Err(e) => outcome_of(&e),
        Ok(id) => {
            let req = HeartbeatRequest {
                session_id: id.clone(),
                sequence: seq,
                client_send_time_ms: wall_ms(),
            };
            match heartbeat_call(&shared, &req).await {
                Ok(()) => HeartbeatOutcome::Answered,
                Err(e) => {
                    if code::session_refused(e.code()) {
                        shared.forget(&id).await;
                    }
                    outcome_of(&e)
                }
            }
        }
    };
    let _ = tx.send(Input::Heartbeat(seq, outcome));
}

async fn heartbeat_call(shared: &Shared, req: &HeartbeatRequest) -> Result<(), CallError> {
    let mut lease = shared.pool.get().await?;
    let _: HeartbeatResponse =
        http::unary(&mut lease.sender(), &shared.authority, path::HEARTBEAT, req).await?;
    lease.done();
    Ok(())
}

/// How the core should see a failed call (as `keepalive-client/src/status.rs` classifies it).
fn outcome_of(e: &CallError) -> HeartbeatOutcome {
    match e {
        CallError::Transport(_) => HeartbeatOutcome::Failed,
        CallError::Status(s) => match s.code {
            code::UNAVAILABLE | code::DEADLINE_EXCEEDED => HeartbeatOutcome::Failed,
            code::RESOURCE_EXHAUSTED if s.message == "too_many_pings" => {
                HeartbeatOutcome::TooManyPings
            }
            _ => HeartbeatOutcome::Rejected,
        },
    }
}

/// One call of the subscription: open it (with a session; once more with a fresh session
/// if the server forgot it, or without the token if refused), then feed its messages to
/// the session until it ends.
async fn subscribe(
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Input>,
    call: CallId,
    mut req: SubscribeRequest,
) {
    let ended = |tx: &mpsc::UnboundedSender<Input>| {
        let _ = tx.send(Input::Ended(call));
    };
    let mut opened = None;
    for attempt in 0..2 {
        let id = match shared.session().await {
            Ok(id) => id,
            Err(_) => return ended(&tx),
        };
        let resume = req.resume.get_or_insert_with(ResumeRequest::default);
        resume.session_id = id.clone();
        let mut lease = match shared.pool.get().await {
            Ok(l) => l,
            Err(_) => return ended(&tx),
        };
        let started = http::start(
            &mut lease.sender(),
            &shared.authority,
            path::SUBSCRIBE,
            &req,
        )
        .await;
        let mut stream = match started {
            Ok(s) => s,
            Err(_) => return ended(&tx),
        };
        // The first message (or the error) tells whether the subscription was accepted.
        match stream.message::<SubscribeResponse>().await {
            Ok(Some(first)) => {
                opened = Some((lease, stream, first));
                break;
            }
            Err(e) if attempt == 0 && code::session_refused(e.code()) => {
                shared.forget(&id).await;
                if let Some(r) = req.resume.as_mut() {
                    r.resume_token.clear();
                }
            }
            Err(e) if attempt == 0 && e.code() == Some(code::PERMISSION_DENIED) => {
                if let Some(r) = req.resume.as_mut() {
                    r.resume_token.clear();
                }
            }
            _ => return ended(&tx),
        }
    }
    let Some((_lease, mut stream, first)) = opened else {
        return ended(&tx);
    };
    let mut next = Some(first);
    loop {
        let msg = match next.take() {
            Some(m) => m,
            None => match stream.message::<SubscribeResponse>().await {
                Ok(Some(m)) => m,
                _ => return ended(&tx),
            },
        };
        let input = match msg.kind {
            Some(Kind::Welcome(w)) => Input::Welcome(
                call,
                Welcome {
                    next_sequence: w.next_sequence,
                    stream_heartbeat_interval: Some(Duration::from_millis(
                        w.stream_heartbeat_interval_ms,
                    )),
                    resume_token: w.resume_token,
                    log_id: w.log_id,
                },
                w.server,
            ),
            Some(Kind::Event(e)) => Input::Event(call, e.sequence, e.published_at_ms),
            Some(Kind::Gap(g)) => Input::Gap(call, g.from_sequence, g.missed),
            Some(Kind::GoAway(g)) => {
                let _ = tx.send(Input::GoAway(call, g.resume_token, g.reason));
                return;
            }
            Some(Kind::Heartbeat(_)) | None => Input::Message(call),
        };
        if tx.send(input).is_err() {
            return;
        }
    }
}
