//! What a [`Channel`](crate::Channel) and its clones share: the keepalive core and
//! everything in flight, on the page's one thread.
//!
//! Every input (a byte of a call, a heartbeat's answer, a timer, an `online` event) goes
//! the same way: borrow, feed the core, release, then [`crate::pump`] carries out the
//! core's actions and hands its events to the listeners — with no borrow held, so a
//! listener may call back into the channel.

use crate::pump;
use crate::session::SessionState;
use crate::stream::StreamRunner;
use crate::task::Signal;
use crate::time;
use keepalive::client::{
    CallId, ClientConfig, ClientEvent, ClientStats, ConnectivityState, StreamId,
};
use keepalive_proto::v1::session_client::SessionClient;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

/// A state listener.
pub type StateListener = Rc<dyn Fn(&StateInfo)>;
/// A timeline listener: wall-clock time (ms) and the core's event.
pub type TimelineListener = Rc<dyn Fn(f64, &ClientEvent)>;
/// A counters listener.
pub type StatsListener = Rc<dyn Fn(&Stats)>;
/// What a stream's end tells its listener.
pub type EndListener = Rc<dyn Fn(&Result<(), tonic::Status>)>;

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

/// The channel's counters plus the knobs in force.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// The core's counters.
    pub core: ClientStats,
    /// The keepalive time in force (doubled by `too_many_pings`).
    pub keepalive_time: Duration,
    /// The state.
    pub state: ConnectivityState,
    /// Calls of the application in flight.
    pub calls_in_flight: u32,
}

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

/// What aborts an application call when the connection is judged lost.
#[derive(Clone)]
pub(crate) enum Abort {
    /// A Rust call: its future and body watch the signal.
    Signal(Rc<Signal>),
    /// A call made in JavaScript (the connect-es transport): its abort function.
    #[cfg_attr(not(feature = "js"), allow(dead_code))]
    Callback(Rc<dyn Fn()>),
}

/// The mutable part.
pub(crate) struct Inner {
    pub core: keepalive::client::Channel,
    pub session: SessionState,
    /// How each kept-open stream runs one call.
    pub runners: HashMap<StreamId, Rc<dyn StreamRunner>>,
    /// Who wants to hear that a kept-open stream ended for good.
    pub ends: HashMap<StreamId, Vec<EndListener>>,
    /// The call each kept-open stream has open, and what aborts it.
    pub stream_calls: HashMap<StreamId, (CallId, Rc<Signal>)>,
    pub heartbeats: HashMap<u64, Rc<Signal>>,
    /// The application's calls in flight, and what aborts each.
    pub calls: HashMap<u64, Abort>,
    pub next_call: u64,
    /// Why the connection was last judged lost (for the aborted calls' status).
    pub last_loss: &'static str,
    pub listeners: Listeners,
    pub last_stats: Option<Stats>,
    wall_offset_ms: f64,
    pub closed: bool,
    pub dom: Vec<crate::dom::Listener>,
    /// Which server (replica) answered last: a stream's Welcome, a heartbeat.
    pub servers: Servers,
}

/// Which server (replica) answered the channel last, as the servers name themselves.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Servers {
    /// The one whose Welcome opened the newest stream call.
    pub stream: Option<String>,
    /// The one that answered the last heartbeat.
    pub heartbeat: Option<String>,
}

/// Records `name` in `slot` (an empty name — an older server — leaves it as it was).
pub(crate) fn note_server(
    weak: &Weak<Shared>,
    name: &str,
    slot: fn(&mut Servers) -> &mut Option<String>,
) {
    if name.is_empty() {
        return;
    }
    if let Some(shared) = weak.upgrade()
        && let Ok(mut inner) = shared.inner.try_borrow_mut()
    {
        *slot(&mut inner.servers) = Some(name.to_owned());
    }
}

/// Shared by every clone of a channel, its calls and its tasks.
pub(crate) struct Shared {
    pub inner: RefCell<Inner>,
    /// fetch, for the application's calls and the channel's own.
    pub transport: tonic_web_wasm_client::Client,
    pub options: crate::Options,
    /// Wakes the timer loop when the core's deadline may have moved.
    pub timer: Signal,
}

impl Shared {
    pub fn new(options: crate::Options) -> Rc<Shared> {
        let url = if options.url.is_empty() {
            web_sys::window()
                .and_then(|w| w.location().origin().ok())
                .unwrap_or_default()
        } else {
            options.url.trim_end_matches('/').to_owned()
        };
        let config: ClientConfig = options.keepalive;
        Rc::new(Shared {
            inner: RefCell::new(Inner {
                core: keepalive::client::Channel::new(time::now(), config, time::seed()),
                session: SessionState::None,
                runners: HashMap::new(),
                ends: HashMap::new(),
                stream_calls: HashMap::new(),
                heartbeats: HashMap::new(),
                servers: Servers::default(),
                calls: HashMap::new(),
                next_call: 0,
                last_loss: "connection lost",
                listeners: Listeners::default(),
                last_stats: None,
                wall_offset_ms: time::wall_ms() - time::now_ms(),
                closed: false,
                dom: Vec::new(),
            }),
            transport: tonic_web_wasm_client::Client::new(url),
            options,
            timer: Signal::default(),
        })
    }

    /// The session service over the raw transport (the channel's own calls are not the
    /// application's: they do not count as active calls).
    pub fn session_api(&self) -> SessionClient<tonic_web_wasm_client::Client> {
        SessionClient::new(self.transport.clone())
    }
}

impl Inner {
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
            calls_in_flight: self.core.active_calls(),
        }
    }
}

/// Feeds the core with `f` (unless the channel is gone or closed) and pumps.
pub(crate) fn with_core<T>(
    weak: &Weak<Shared>,
    f: impl FnOnce(&mut keepalive::client::Channel, keepalive::Instant) -> T,
) -> Option<T> {
    let shared = weak.upgrade()?;
    let out = {
        let mut inner = shared.inner.try_borrow_mut().ok()?;
        if inner.closed {
            return None;
        }
        f(&mut inner.core, time::now())
    };
    pump::pump(&shared);
    Some(out)
}

/// [`with_core`], also from a `Drop` that may run while the channel is borrowed: then the
/// input is fed a moment later.
pub(crate) fn with_core_soon(
    weak: &Weak<Shared>,
    f: impl FnOnce(&mut keepalive::client::Channel, keepalive::Instant) + 'static,
) {
    let Some(shared) = weak.upgrade() else { return };
    if shared.inner.try_borrow_mut().is_ok() {
        with_core(weak, f);
    } else {
        let weak = weak.clone();
        wasm_bindgen_futures::spawn_local(async move {
            with_core(&weak, f);
        });
    }
}
