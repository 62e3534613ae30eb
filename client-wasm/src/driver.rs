//! The driver: runs the sans-IO [`keepalive::client::Channel`] in the browser.
//!
//! Everything lives on the page's one thread, in one `Rc<RefCell<Inner>>`. Every input
//! (a message on a stream, a heartbeat's answer, a timer, an `online` event) goes the same
//! way: borrow, feed the core, release, then [`pump`] carries out the core's actions
//! (start or abort a call with `spawn_local`) and hands its events to the listeners — with
//! no borrow held, so a listener may call back into the client.
//!
//! Calls are started as cancellable tasks ([`crate::task::abortable`]): when the core
//! judges the connection dead it aborts them, which drops the fetch.

use crate::resumable::{Frame, ResumableMessage, Sequenced, welcome};
use crate::status::{CallError, classify};
use crate::task::{Signal, abortable, sleep_or_signal};
use crate::time;
use demo_proto::v1::feed_client::FeedClient;
use keepalive::client::{
    CallId, Channel, ClientAction, ClientConfig, ClientEvent, ClientStats, ConnectivityState,
    Delivery, HeartbeatOutcome, StreamId, Welcome,
};
use keepalive_proto::v1::session_client::SessionClient;
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};
use std::time::Duration;
use tonic::{Code, Status};

/// The generated clients over fetch: the session service and the demo's feed.
#[derive(Clone, Debug)]
pub struct Api {
    /// `keepalive.v1.Session`.
    pub session: SessionClient<tonic_web_wasm_client::Client>,
    /// `keepalive.demo.v1.Feed`.
    pub feed: FeedClient<tonic_web_wasm_client::Client>,
}

type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// A server session: the identity heartbeats are judged by and resume state is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: String,
}

#[derive(Debug)]
enum SessionState {
    None,
    Opening(Vec<Waker>),
    Open(Session),
}

/// What a stream opener gets: the session and where to resume.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResumeRequest {
    /// The session to subscribe in.
    pub session_id: String,
    /// Resume after this sequence.
    pub after: Option<u64>,
    /// The resume token of the previous subscription (empty for a new session).
    pub token: String,
    /// The log the sequence refers to.
    pub log_id: String,
}

/// Opens one call of a resumable stream.
pub type Opener<M> =
    Rc<dyn Fn(Api, ResumeRequest) -> LocalFuture<Result<tonic::Streaming<M>, Status>>>;

/// A stream the channel keeps open: how to run one call of it.
trait StreamRunner {
    fn run(self: Rc<Self>, ctx: CallCtx, req: ResumeRequest) -> LocalFuture<()>;
}

struct Typed<M: ResumableMessage> {
    opener: Opener<M>,
    sink: Rc<dyn Fn(M::Event)>,
}

impl<M: ResumableMessage> StreamRunner for Typed<M> {
    fn run(self: Rc<Self>, ctx: CallCtx, req: ResumeRequest) -> LocalFuture<()> {
        Box::pin(run_stream(self, ctx, req))
    }
}

/// A state listener.
pub type StateListener = Rc<dyn Fn(&StateInfo)>;
/// A timeline listener: wall-clock time (ms) and the core's event.
pub type TimelineListener = Rc<dyn Fn(f64, &ClientEvent)>;
/// A counters listener.
pub type StatsListener = Rc<dyn Fn(&Stats)>;

/// Listeners of the application.
#[derive(Default)]
pub struct Listeners {
    /// State changes.
    pub state: Vec<StateListener>,
    /// Every core event, with the wall-clock time.
    pub timeline: Vec<TimelineListener>,
    /// Counters, when they change.
    pub stats: Vec<StatsListener>,
}

/// The connectivity state with what a user wants to see about it.
#[derive(Clone, Debug, PartialEq)]
pub struct StateInfo {
    /// The state.
    pub state: ConnectivityState,
    /// When it began (wall clock, ms since the epoch).
    pub since_ms: f64,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// In TRANSIENT_FAILURE: milliseconds until the next attempt.
    pub retry_in_ms: Option<f64>,
}

/// The client's counters plus the knobs in force.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// The core's counters.
    pub core: ClientStats,
    /// The keepalive time in force (doubled by `too_many_pings`).
    pub keepalive_time: Duration,
    /// The state.
    pub state: ConnectivityState,
}

pub(crate) struct Inner {
    pub core: Channel,
    pub api: Api,
    session: SessionState,
    runners: HashMap<StreamId, Rc<dyn StreamRunner>>,
    calls: HashMap<StreamId, (CallId, Rc<Signal>)>,
    heartbeats: HashMap<u64, Rc<Signal>>,
    pub listeners: Listeners,
    timer: Rc<Signal>,
    last_stats: Option<Stats>,
    wall_offset_ms: f64,
    pub closed: bool,
    pub dom: Vec<crate::dom::Listener>,
}

impl Inner {
    pub fn new(url: &str, config: ClientConfig) -> Self {
        let transport = tonic_web_wasm_client::Client::new(url.to_owned());
        let api = Api {
            session: SessionClient::new(transport.clone()),
            feed: FeedClient::new(transport),
        };
        Inner {
            core: Channel::new(time::now(), config, time::seed()),
            api,
            session: SessionState::None,
            runners: HashMap::new(),
            calls: HashMap::new(),
            heartbeats: HashMap::new(),
            listeners: Listeners::default(),
            timer: Rc::new(Signal::default()),
            last_stats: None,
            wall_offset_ms: time::wall_ms() - time::now_ms(),
            closed: false,
            dom: Vec::new(),
        }
    }

    fn to_wall(&self, at: keepalive::Instant) -> f64 {
        at.since_origin().as_secs_f64() * 1000.0 + self.wall_offset_ms
    }

    pub fn state_info(&self) -> StateInfo {
        StateInfo {
            state: self.core.state(),
            since_ms: self.to_wall(self.core.state_since()),
            failures: self.core.failures(),
            retry_in_ms: self
                .core
                .retry_at()
                .map(|at| (at.since_origin().as_secs_f64() * 1000.0 - time::now_ms()).max(0.0)),
        }
    }

    pub fn stats(&self) -> Stats {
        Stats {
            core: self.core.stats(),
            keepalive_time: self.core.keepalive_time(),
            state: self.core.state(),
        }
    }

    /// Registers a stream kept open by the channel; returns its id.
    pub fn add_stream<M: ResumableMessage>(
        &mut self,
        opener: Opener<M>,
        sink: Rc<dyn Fn(M::Event)>,
    ) -> StreamId {
        // The core assigns ids in order: register the runner under the next one first.
        let next = StreamId(self.runners.len() as u32);
        self.runners.insert(next, Rc::new(Typed { opener, sink }));
        let id = self.core.add_stream(time::now());
        debug_assert_eq!(id, next);
        id
    }

    pub fn forget_session(&mut self, id: &str) {
        if matches!(&self.session, SessionState::Open(s) if s.id == id) {
            self.session = SessionState::None;
        }
    }
}

/// Carries out the core's actions and delivers its events; call after every input.
pub(crate) fn pump(rc: &Rc<RefCell<Inner>>) {
    loop {
        let (actions, events) = {
            let mut inner = rc.borrow_mut();
            let actions: Vec<ClientAction> =
                std::iter::from_fn(|| inner.core.poll_action()).collect();
            let events: Vec<ClientEvent> = std::iter::from_fn(|| inner.core.poll_event()).collect();
            (actions, events)
        };
        if actions.is_empty() && events.is_empty() {
            break;
        }
        for action in actions {
            execute(rc, action);
        }
        dispatch(rc, &events);
    }
    let (timer, stats, listeners) = {
        let mut inner = rc.borrow_mut();
        let stats = inner.stats();
        let changed = inner.last_stats != Some(stats);
        inner.last_stats = Some(stats);
        let listeners = if changed {
            inner.listeners.stats.clone()
        } else {
            Vec::new()
        };
        (inner.timer.clone(), stats, listeners)
    };
    timer.notify();
    for l in listeners {
        l(&stats);
    }
}

fn dispatch(rc: &Rc<RefCell<Inner>>, events: &[ClientEvent]) {
    if events.is_empty() {
        return;
    }
    let (timeline, state_listeners, info) = {
        let inner = rc.borrow();
        (
            inner.listeners.timeline.clone(),
            inner.listeners.state.clone(),
            inner.state_info(),
        )
    };
    let wall = time::wall_ms();
    for e in events {
        match e {
            ClientEvent::StateChanged { from, to } => {
                tracing::info!("connectivity {from} → {to}");
                for l in &state_listeners {
                    l(&info);
                }
            }
            ClientEvent::ConnectionLost { reason, retry_in } => {
                tracing::warn!(
                    "connection lost ({}); retry in {retry_in:?}",
                    reason.as_str()
                );
            }
            ClientEvent::Gap { from, missed, .. } => {
                tracing::warn!("gap: {missed} events from {from} are gone");
            }
            ClientEvent::TooManyPings { keepalive_time } => {
                tracing::warn!("server said too_many_pings; keepalive time now {keepalive_time:?}");
            }
            _ => tracing::debug!("{e:?}"),
        }
        for l in &timeline {
            l(wall, e);
        }
    }
}

fn execute(rc: &Rc<RefCell<Inner>>, action: ClientAction) {
    match action {
        ClientAction::OpenStream {
            stream,
            call,
            resume_after,
            resume_token,
            log_id,
        } => {
            let abort = Rc::new(Signal::default());
            let runner = {
                let mut inner = rc.borrow_mut();
                inner.calls.insert(stream, (call, abort.clone()));
                inner.runners.get(&stream).cloned()
            };
            let Some(runner) = runner else { return };
            let ctx = CallCtx {
                inner: Rc::downgrade(rc),
                stream,
                call,
            };
            let req = ResumeRequest {
                session_id: String::new(),
                after: resume_after,
                token: resume_token.unwrap_or_default(),
                log_id: log_id.unwrap_or_default(),
            };
            wasm_bindgen_futures::spawn_local(async move {
                abortable(runner.run(ctx, req), abort).await;
            });
        }
        ClientAction::AbortStream { stream, call } => {
            let mut inner = rc.borrow_mut();
            if inner.calls.get(&stream).is_some_and(|(c, _)| *c == call)
                && let Some((_, abort)) = inner.calls.remove(&stream)
            {
                abort.notify();
            }
        }
        ClientAction::SendHeartbeat { seq } => {
            let abort = Rc::new(Signal::default());
            rc.borrow_mut().heartbeats.insert(seq, abort.clone());
            let weak = Rc::downgrade(rc);
            wasm_bindgen_futures::spawn_local(async move {
                abortable(heartbeat(weak, seq), abort).await;
            });
        }
        ClientAction::AbortHeartbeat { seq } => {
            if let Some(abort) = rc.borrow_mut().heartbeats.remove(&seq) {
                abort.notify();
            }
        }
    }
}

/// Feeds the core with `f` (unless the client is gone) and pumps.
pub(crate) fn with_core<T>(
    weak: &Weak<RefCell<Inner>>,
    f: impl FnOnce(&mut Channel, keepalive::Instant) -> T,
) -> Option<T> {
    let rc = weak.upgrade()?;
    let out = {
        let mut inner = rc.borrow_mut();
        if inner.closed {
            return None;
        }
        f(&mut inner.core, time::now())
    };
    pump(&rc);
    Some(out)
}

/// Returns the session, opening one if needed (one at a time: concurrent callers wait).
pub(crate) async fn ensure_session(weak: &Weak<RefCell<Inner>>) -> Result<Session, Status> {
    enum Next {
        Wait,
        Open(Box<Api>),
    }
    loop {
        let next = {
            let rc = weak
                .upgrade()
                .ok_or_else(|| Status::cancelled("client closed"))?;
            let mut inner = rc.borrow_mut();
            match &inner.session {
                SessionState::Open(s) => return Ok(s.clone()),
                SessionState::Opening(_) => Next::Wait,
                SessionState::None => {
                    inner.session = SessionState::Opening(Vec::new());
                    Next::Open(Box::new(inner.api.clone()))
                }
            }
        };
        match next {
            Next::Wait => {
                std::future::poll_fn(|cx| {
                    let Some(rc) = weak.upgrade() else {
                        return Poll::Ready(());
                    };
                    let mut inner = rc.borrow_mut();
                    match &mut inner.session {
                        SessionState::Opening(waiters) => {
                            waiters.push(cx.waker().clone());
                            Poll::Pending
                        }
                        _ => Poll::Ready(()),
                    }
                })
                .await;
            }
            Next::Open(mut api) => {
                let guard = OpeningGuard(weak.clone());
                let result = api
                    .session
                    .open_session(keepalive_proto::v1::OpenSessionRequest {})
                    .await;
                std::mem::forget(guard);
                let rc = weak
                    .upgrade()
                    .ok_or_else(|| Status::cancelled("client closed"))?;
                let mut inner = rc.borrow_mut();
                let waiters = match std::mem::replace(&mut inner.session, SessionState::None) {
                    SessionState::Opening(w) => w,
                    _ => Vec::new(),
                };
                let out = result.map(|r| {
                    let r = r.into_inner();
                    let s = Session { id: r.session_id };
                    inner.session = SessionState::Open(s.clone());
                    tracing::info!(session = %s.id, "session opened");
                    s
                });
                drop(inner);
                waiters.into_iter().for_each(Waker::wake);
                return out;
            }
        }
    }
}

/// Resets "opening" if the task opening a session is dropped (aborted) midway.
struct OpeningGuard(Weak<RefCell<Inner>>);

impl Drop for OpeningGuard {
    fn drop(&mut self) {
        if let Some(rc) = self.0.upgrade()
            && let Ok(mut inner) = rc.try_borrow_mut()
            && let SessionState::Opening(waiters) =
                std::mem::replace(&mut inner.session, SessionState::None)
        {
            waiters.into_iter().for_each(Waker::wake);
        }
    }
}

async fn heartbeat(weak: Weak<RefCell<Inner>>, seq: u64) {
    let outcome = match ensure_session(&weak).await {
        Err(status) => outcome_of(&weak, "", &status),
        Ok(session) => {
            let Some(mut api) = weak.upgrade().map(|rc| rc.borrow().api.clone()) else {
                return;
            };
            let req = keepalive_proto::v1::HeartbeatRequest {
                session_id: session.id.clone(),
                sequence: seq,
                client_send_time_ms: time::wall_ms(),
            };
            match api.session.heartbeat(req).await {
                Ok(_) => HeartbeatOutcome::Answered,
                Err(status) => outcome_of(&weak, &session.id, &status),
            }
        }
    };
    if let Some(rc) = weak.upgrade() {
        rc.borrow_mut().heartbeats.remove(&seq);
    }
    with_core(&weak, |core, now| core.on_heartbeat(now, seq, outcome));
}

fn outcome_of(weak: &Weak<RefCell<Inner>>, session: &str, status: &Status) -> HeartbeatOutcome {
    match classify(status) {
        CallError::Answered(Code::ResourceExhausted) if status.message() == "too_many_pings" => {
            HeartbeatOutcome::TooManyPings
        }
        CallError::Answered(Code::NotFound) => {
            // The server forgot the session (it restarted): open a new one next time.
            if let Some(rc) = weak.upgrade() {
                rc.borrow_mut().forget_session(session);
            }
            HeartbeatOutcome::Rejected
        }
        CallError::Answered(_) => HeartbeatOutcome::Rejected,
        CallError::Failed => HeartbeatOutcome::Failed,
    }
}

/// One call of one stream, as the core knows it.
pub(crate) struct CallCtx {
    inner: Weak<RefCell<Inner>>,
    stream: StreamId,
    call: CallId,
}

impl CallCtx {
    fn welcome(&self, w: &Welcome) {
        with_core(&self.inner, |c, now| {
            c.on_welcome(now, self.stream, self.call, w)
        });
    }

    fn event(&self, seq: u64) -> bool {
        let d = with_core(&self.inner, |c, now| {
            c.on_event(now, self.stream, self.call, seq)
        });
        matches!(
            d,
            Some(Delivery::Deliver | Delivery::DeliverAfterGap { .. })
        )
    }

    fn gap(&self, from: u64, missed: u64) {
        with_core(&self.inner, |c, now| {
            c.on_gap(now, self.stream, self.call, from, missed)
        });
    }

    fn message(&self) {
        with_core(&self.inner, |c, now| {
            c.on_stream_message(now, self.stream, self.call)
        });
    }

    fn go_away(&self, token: &str, reason: &str) {
        self.forget_call();
        with_core(&self.inner, |c, now| {
            c.on_go_away(now, self.stream, self.call, token, reason)
        });
    }

    fn ended(&self) {
        self.forget_call();
        with_core(&self.inner, |c, now| {
            c.on_stream_end(now, self.stream, self.call)
        });
    }

    fn forget_call(&self) {
        if let Some(rc) = self.inner.upgrade() {
            let mut inner = rc.borrow_mut();
            if inner
                .calls
                .get(&self.stream)
                .is_some_and(|(c, _)| *c == self.call)
            {
                inner.calls.remove(&self.stream);
            }
        }
    }
}

/// Opens the stream (with a session; once more with a fresh session if the server
/// forgot it, or without the token if the server refused it) and feeds its messages to
/// the core until it ends.
async fn run_stream<M: ResumableMessage>(
    typed: Rc<Typed<M>>,
    ctx: CallCtx,
    mut req: ResumeRequest,
) {
    let mut stream = None;
    for attempt in 0..2 {
        let session = match ensure_session(&ctx.inner).await {
            Ok(s) => s,
            Err(status) => {
                tracing::info!("opening a session failed: {status}");
                return ctx.ended();
            }
        };
        req.session_id = session.id.clone();
        let Some(api) = ctx.inner.upgrade().map(|rc| rc.borrow().api.clone()) else {
            return;
        };
        match (typed.opener)(api, req.clone()).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(status) if attempt == 0 && status.code() == Code::NotFound => {
                tracing::info!(
                    "the server forgot session {}: opening a new one",
                    session.id
                );
                if let Some(rc) = ctx.inner.upgrade() {
                    rc.borrow_mut().forget_session(&session.id);
                }
                req.token.clear();
            }
            Err(status) if attempt == 0 && status.code() == Code::PermissionDenied => {
                tracing::info!(
                    "resume token refused ({}); subscribing after the last delivered event",
                    status.message()
                );
                req.token.clear();
            }
            Err(status) => {
                tracing::info!("subscribe failed: {status}");
                return ctx.ended();
            }
        }
    }
    let Some(mut stream) = stream else {
        return ctx.ended();
    };
    loop {
        match stream.message().await {
            Ok(Some(msg)) => match msg.into_frame() {
                Some(Frame::Welcome(w)) => ctx.welcome(&welcome(w)),
                Some(Frame::Event(e)) => {
                    if ctx.event(e.sequence()) {
                        (typed.sink)(e);
                    }
                }
                Some(Frame::Heartbeat(_)) | None => ctx.message(),
                Some(Frame::Gap(g)) => ctx.gap(g.from_sequence, g.missed),
                Some(Frame::GoAway(g)) => {
                    tracing::info!("stream go-away ({}): resuming at once", g.reason);
                    return ctx.go_away(&g.resume_token, &g.reason);
                }
            },
            Ok(None) => return ctx.ended(),
            Err(status) => {
                tracing::info!("stream ended: {status}");
                return ctx.ended();
            }
        }
    }
}

/// The timer loop: sleeps until the core's next deadline (or until an input changed it),
/// then lets the core handle it. Ends when the client is closed or dropped.
pub(crate) fn start_timer_loop(rc: &Rc<RefCell<Inner>>) {
    let weak = Rc::downgrade(rc);
    let signal = rc.borrow().timer.clone();
    wasm_bindgen_futures::spawn_local(async move {
        loop {
            // Our own pump (below) notifies too: forget that before reading the deadline,
            // or the loop would never yield to the page. Whatever changes the deadline
            // after this point notifies again.
            signal.clear();
            let wait_ms = {
                let Some(rc) = weak.upgrade() else { return };
                let inner = rc.borrow();
                if inner.closed {
                    return;
                }
                inner
                    .core
                    .poll_timeout()
                    .map(|d| (d.since_origin().as_secs_f64() * 1000.0 - time::now_ms()).max(0.0))
            };
            sleep_or_signal(wait_ms, &signal).await;
            if with_core(&weak, |core, now| core.handle_timeout(now)).is_none() {
                return;
            }
        }
    });
}
