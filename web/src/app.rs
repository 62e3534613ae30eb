//! The page's state and the client's lifecycle.
//!
//! One [`App`] behind an `Rc<RefCell<_>>`, on the page's only thread. Inputs come from the
//! channel's listeners (state, timeline, counters, events), from the views' handlers
//! (publish, chaos, settings) and from two timers: a render tick (time in state,
//! countdown, sparkline; every 250 ms) and the server poll (`Stats`, every second).
//!
//! The page uses the client library's public API only: one [`Channel`], the demo's
//! generated `FeedClient` over it (Publish declared retryable, so a lost answer is retried
//! with the same idempotency key; Stats; Chaos), and the feed kept open with
//! [`Channel::keep_open`]. New settings make a new channel whose feed starts after the
//! last event the page showed ([`Channel::keep_open_after`]).
//!
//! Two rules keep the borrows simple: the app is never borrowed while the channel is
//! called (a call may run listeners, which borrow the app), and every listener carries
//! the generation of its channel, so the events of a channel that was replaced (new
//! settings) are ignored.

use crate::dom;
use crate::fmt;
use crate::rtt::RttWindow;
use crate::server_stats::ServerPanel;
use crate::settings::{self, SettingsForm};
use crate::timeline::{self, Entry, Tone};
use crate::token;
use crate::views::Views;
use crate::views::status::StatusModel;
use demo_proto::v1::feed_client::FeedClient;
use demo_proto::v1::{
    ChaosAction, ChaosRequest, PublishRequest, StatsRequest, SubscribeRequest, SubscribeResponse,
};
use keepalive::client::ClientStats;
use keepalive_client::{
    Channel, ClientConfig, ClientEvent, ConnectivityState, KeepOpen, Options, RetryPolicy,
    StateInfo, Stats,
};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;
use wasm_bindgen_futures::spawn_local;

/// How often the time-dependent parts are redrawn.
const RENDER_EVERY_MS: u32 = 250;
/// How often the server's `Stats` are asked for.
const POLL_SERVER_EVERY: Duration = Duration::from_secs(1);

/// Everything the page knows.
struct App {
    views: Views,
    /// The page's origin: the server (same origin, no CORS).
    origin: String,
    utc_offset_min: f64,
    token: Option<String>,
    /// The client settings in force.
    config: ClientConfig,
    /// Generation of the current channel; listeners of older ones are ignored.
    generation: u64,
    client: Option<Channel>,
    /// The current channel's feed.
    feed: Option<KeepOpen>,
    /// The last event the page showed, and the log it belongs to (from the feed's
    /// Welcome): where a new channel's feed starts.
    delivered: Option<u64>,
    log_id: Option<String>,
    /// The current client's connectivity state, as last reported.
    state: ConnectivityState,
    /// How many times the state left READY (over every client).
    lost: u32,
    /// `performance.now()` when the page was first READY.
    ready_page_ms: Option<f64>,
    rtt: RttWindow,
    /// Counters of the clients replaced so far.
    retired: ClientStats,
    /// The current client's counters.
    current: Option<Stats>,
    server_updated_ms: Option<f64>,
    server_error: Option<String>,
}

type Shared = Rc<RefCell<App>>;

thread_local! {
    /// The page's app, alive as long as the page (everything else holds it weakly).
    static PAGE: RefCell<Option<Shared>> = const { RefCell::new(None) };
}

/// Starts the page.
pub fn start() {
    let views = Views::find();
    let window = web_sys::window().expect("a window");
    let origin = window.location().origin().unwrap_or_default();
    let token = token::chaos_token(&window.location().hash().unwrap_or_default());
    let config = settings::page_defaults();
    dom::set_text(&dom::by_id::<web_sys::Element>("origin"), &origin);
    dom::by_id::<web_sys::Element>("loading").remove();
    views.chaos.set_token_present(token.is_some());
    views.settings.fill(&SettingsForm::from_config(&config));
    let app = Rc::new(RefCell::new(App {
        views,
        origin,
        utc_offset_min: dom::utc_offset_min(),
        token,
        config,
        generation: 0,
        client: None,
        feed: None,
        delivered: None,
        log_id: None,
        state: ConnectivityState::Idle,
        lost: 0,
        ready_page_ms: None,
        rtt: RttWindow::default(),
        retired: ClientStats::default(),
        current: None,
        server_updated_ms: None,
        server_error: None,
    }));
    PAGE.with_borrow_mut(|page| *page = Some(app.clone()));
    bind_publish(&app);
    bind_chaos(&app);
    bind_settings(&app);
    {
        let a = app.borrow();
        let text = format!(
            "page loaded: connecting to {} with {}",
            a.origin,
            describe_config(&a.config)
        );
        a.note(Tone::Info, &text);
    }
    connect(&app);
    start_render_tick(&app);
    start_server_poll(&app);
}

impl App {
    /// Adds an entry of the page itself (an action of the user) to the timeline.
    fn note(&self, tone: Tone, text: &str) {
        self.views
            .timeline
            .push(&Entry::new(tone, text), dom::now_ms(), self.utc_offset_min);
    }

    fn client(&self) -> Option<Channel> {
        self.client.clone()
    }

    fn on_state(&mut self, info: &StateInfo) {
        if self.state == ConnectivityState::Ready && info.state != ConnectivityState::Ready {
            self.lost += 1;
        }
        if info.state == ConnectivityState::Ready && self.ready_page_ms.is_none() {
            let ms = dom::page_ms();
            self.ready_page_ms = Some(ms);
            if let Some(body) = dom::document().body() {
                let _ = body.set_attribute("data-ready-ms", &format!("{ms:.1}"));
            }
        }
        self.state = info.state;
        self.render_status(info.clone());
    }

    fn on_timeline(&mut self, at_ms: f64, event: &ClientEvent) {
        if let ClientEvent::HeartbeatRtt { rtt } = event {
            self.rtt.push(at_ms, rtt.as_secs_f64() * 1000.0);
            self.views.rtt.render(&self.rtt, dom::now_ms());
            return;
        }
        if let Some(entry) = timeline::describe(event) {
            self.views.timeline.push(&entry, at_ms, self.utc_offset_min);
        }
    }

    fn on_stats(&mut self, stats: &Stats) {
        self.current = Some(*stats);
        let mut total = *stats;
        total.core = add(&self.retired, &stats.core);
        self.views.counters.render(&total);
    }

    fn on_event(&mut self, event: &demo_proto::v1::Event) {
        self.delivered = Some(event.sequence);
        self.views.feed.push(event, self.utc_offset_min);
    }

    fn render_status(&self, info: StateInfo) {
        self.views.status.render(&StatusModel {
            info,
            now_ms: dom::now_ms(),
            lost: self.lost,
            keepalive_time: self.current.map(|s| s.keepalive_time),
            ready_page_ms: self.ready_page_ms,
            servers: self.client().map(|c| c.servers()).unwrap_or_default(),
        });
    }

    /// Forgets the current client (its counters join the retired ones); returns it so
    /// that the caller closes it once the app is no longer borrowed.
    fn retire_client(&mut self) -> Option<Channel> {
        self.generation += 1;
        if let Some(log_id) = self.feed.take().and_then(|f| f.log_id()) {
            self.log_id = Some(log_id);
        }
        if let Some(stats) = self.current.take() {
            self.retired = add(&self.retired, &stats.core);
        }
        self.client.take()
    }
}

/// The feed's Publish may be retried: it carries an idempotency key.
const PUBLISH: &str = "keepalive.demo.v1.Feed/Publish";

/// A new channel with the settings in force: listeners, then the feed kept open (which
/// connects), after the last event the page showed.
fn connect(app: &Shared) {
    let (generation, options, after, log_id) = {
        let mut a = app.borrow_mut();
        a.generation += 1;
        let options = Options {
            keepalive: a.config,
            ..Options::new(a.origin.clone())
        }
        .retry(PUBLISH, RetryPolicy::default());
        (a.generation, options, a.delivered, a.log_id.clone())
    };
    let client = Channel::new(options);
    let weak = Rc::downgrade(app);
    client.on_state({
        let weak = weak.clone();
        move |info| with_current(&weak, generation, |a| a.on_state(info))
    });
    client.on_timeline({
        let weak = weak.clone();
        move |at, event| with_current(&weak, generation, |a| a.on_timeline(at, event))
    });
    client.on_stats({
        let weak = weak.clone();
        move |stats| with_current(&weak, generation, |a| a.on_stats(stats))
    });
    app.borrow_mut().client = Some(client.clone());
    let feed = client.keep_open_after(
        after,
        log_id,
        |channel, resume| async move {
            let request = SubscribeRequest {
                resume: Some(resume),
            };
            let stream = FeedClient::new(channel).subscribe(request).await?;
            Ok::<tonic::Streaming<SubscribeResponse>, tonic::Status>(stream.into_inner())
        },
        move |event| with_current(&weak, generation, |a| a.on_event(&event)),
    );
    app.borrow_mut().feed = Some(feed);
}

/// Runs `f` on the app if it still exists and `generation` is the current client's.
fn with_current(weak: &Weak<RefCell<App>>, generation: u64, f: impl FnOnce(&mut App)) {
    let Some(app) = weak.upgrade() else { return };
    let Ok(mut a) = app.try_borrow_mut() else {
        // Only a bug could get here (a client call made while the app is borrowed).
        web_sys::console::warn_1(&"dashboard: a client event arrived while busy; skipped".into());
        return;
    };
    if a.generation == generation {
        f(&mut a);
    }
}

fn bind_publish(app: &Shared) {
    let weak = Rc::downgrade(app);
    app.borrow().views.feed.on_publish(move |text| {
        let Some(app) = weak.upgrade() else { return };
        let Some(client) = app.borrow().client() else {
            return;
        };
        app.borrow().views.feed.set_busy(true);
        let weak = weak.clone();
        spawn_local(async move {
            let request = PublishRequest {
                session_id: String::new(),
                idempotency_key: keepalive_client::idempotency_key(),
                text,
            };
            let result = FeedClient::new(client)
                .publish(request)
                .await
                .map(tonic::Response::into_inner);
            let Some(app) = weak.upgrade() else { return };
            let a = app.borrow();
            a.views.feed.set_busy(false);
            a.views.feed.show_result(match result {
                Ok(r) if r.duplicate => Ok(format!("published as #{} (a retry)", r.sequence)),
                Ok(r) => Ok(format!("published as #{}", r.sequence)),
                Err(status) => Err(format!("publish failed: {}", short(&status))),
            });
        });
    });
}

fn bind_chaos(app: &Shared) {
    let weak = Rc::downgrade(app);
    app.borrow()
        .views
        .chaos
        .on_action(move |action, duration_ms| {
            let Some(app) = weak.upgrade() else { return };
            let (client, token) = {
                let a = app.borrow();
                (a.client(), a.token.clone())
            };
            let (Some(client), Some(token)) = (client, token) else {
                return;
            };
            // What each button does, as calls: "refuse" looks like a restart, so the open
            // connections are dropped too (else the client would not notice for a while).
            let windowed = matches!(
                action,
                ChaosAction::Stall | ChaosAction::RefuseConnections | ChaosAction::RejectHeartbeats
            );
            let secs = if windowed {
                format!(" {} s", duration_ms / 1000)
            } else {
                String::new()
            };
            let mut calls = vec![(action, if windowed { duration_ms } else { 0 })];
            if action == ChaosAction::RefuseConnections {
                calls.push((ChaosAction::DropConnections, 0));
            }
            app.borrow().note(
                Tone::Info,
                &format!("you asked: {}{secs}", action.as_str_name()),
            );
            let weak = weak.clone();
            spawn_local(async move {
                let mut said = Vec::new();
                let mut failed = None;
                let mut feed = FeedClient::new(client);
                for (action, ms) in calls {
                    let request = ChaosRequest {
                        token: token.clone(),
                        action: action as i32,
                        duration_ms: ms,
                    };
                    match feed.chaos(request).await {
                        Ok(r) => said.push(r.into_inner().message),
                        Err(status) => {
                            failed = Some(short(&status));
                            break;
                        }
                    }
                }
                let Some(app) = weak.upgrade() else { return };
                let a = app.borrow();
                match failed {
                    None => {
                        let text = format!("server: {}", said.join("; then "));
                        a.note(Tone::Info, &text);
                        a.views.chaos.show_result(Ok(text));
                    }
                    Some(e) => {
                        let text = format!("chaos call failed: {e}");
                        a.note(Tone::Bad, &text);
                        a.views.chaos.show_result(Err(text));
                    }
                }
            });
        });
}

fn bind_settings(app: &Shared) {
    let apply = {
        let weak = Rc::downgrade(app);
        move |form: SettingsForm| {
            let Some(app) = weak.upgrade() else { return };
            let base = app.borrow().config;
            let config = match form.to_config(&base) {
                Ok(c) => c,
                Err(errors) => return app.borrow().views.settings.show_result(Err(errors)),
            };
            let old = {
                let mut a = app.borrow_mut();
                a.config = config;
                a.retire_client()
            };
            if let Some(old) = old {
                old.close();
            }
            let resume = app.borrow().delivered.map_or_else(String::new, |seq| {
                format!("; the feed resumes after #{seq}")
            });
            {
                let a = app.borrow();
                let text = format!(
                    "settings applied: reconnecting with {}{resume}",
                    describe_config(&config)
                );
                a.note(Tone::Info, &text);
                a.views.settings.show_result(Ok(text));
            }
            connect(&app);
        }
    };
    let reset = {
        let weak = Rc::downgrade(app);
        move || {
            let Some(app) = weak.upgrade() else { return };
            let a = app.borrow();
            a.views
                .settings
                .fill(&SettingsForm::from_config(&settings::page_defaults()));
            a.views.settings.show_result(Ok(
                "page defaults filled in: Apply to reconnect with them".to_owned(),
            ));
        }
    };
    app.borrow().views.settings.on_apply(apply, reset);
}

/// Redraws what changes with time alone: time in state, countdown, sparkline, the age of
/// the server's numbers.
fn start_render_tick(app: &Shared) {
    let weak = Rc::downgrade(app);
    let tick = gloo_timers::callback::Interval::new(RENDER_EVERY_MS, move || {
        let Some(app) = weak.upgrade() else { return };
        let client = app.borrow().client();
        let info = client.map(|c| c.state());
        let mut a = app.borrow_mut();
        let now = dom::now_ms();
        if let Some(info) = info {
            a.render_status(info);
        }
        a.rtt.prune(now);
        a.views.rtt.render(&a.rtt, now);
        a.views
            .server
            .render_age(now, a.server_updated_ms, a.server_error.as_deref());
    });
    // The tick lives as long as the page.
    tick.forget();
}

/// Asks the server for its `Stats` every second (one call at a time).
fn start_server_poll(app: &Shared) {
    let weak = Rc::downgrade(app);
    spawn_local(async move {
        loop {
            let Some(client) = weak.upgrade().and_then(|app| app.borrow().client()) else {
                return;
            };
            let result = FeedClient::new(client)
                .stats(StatsRequest {})
                .await
                .map(tonic::Response::into_inner);
            let Some(app) = weak.upgrade() else { return };
            {
                let mut a = app.borrow_mut();
                match result {
                    Ok(s) => {
                        a.server_updated_ms = Some(dom::now_ms());
                        a.server_error = None;
                        a.views
                            .server
                            .render(&ServerPanel::new(&s.counters, &s.gauges));
                    }
                    Err(status) => a.server_error = Some(short(&status)),
                }
            }
            drop(app);
            gloo_timers::future::sleep(POLL_SERVER_EVERY).await;
        }
    });
}

/// The settings in words, for the timeline.
fn describe_config(c: &ClientConfig) -> String {
    format!(
        "Time {}, Timeout {}, PermitWithoutStream {}, backoff {} ×{} ±{}% ≤ {}",
        fmt::setting(c.keepalive_time),
        fmt::setting(c.keepalive_timeout),
        c.permit_without_stream,
        fmt::setting(c.backoff.initial),
        fmt::trim_float(c.backoff.multiplier),
        fmt::trim_float(c.backoff.jitter * 100.0),
        fmt::setting(c.backoff.max),
    )
}

/// A status in a few words: the code and the first line of the message.
fn short(status: &tonic::Status) -> String {
    let message = status.message().lines().next().unwrap_or_default();
    let message: String = message.chars().take(120).collect();
    if message.is_empty() {
        format!("{:?}", status.code())
    } else {
        format!("{:?}: {message}", status.code())
    }
}

/// `a + b`, counter by counter (the last RTT is `b`'s).
fn add(a: &ClientStats, b: &ClientStats) -> ClientStats {
    ClientStats {
        heartbeats_sent: a.heartbeats_sent + b.heartbeats_sent,
        heartbeats_answered: a.heartbeats_answered + b.heartbeats_answered,
        heartbeats_missed: a.heartbeats_missed + b.heartbeats_missed,
        reconnects: a.reconnects + b.reconnects,
        resumes: a.resumes + b.resumes,
        events_delivered: a.events_delivered + b.events_delivered,
        duplicates_dropped: a.duplicates_dropped + b.duplicates_dropped,
        gaps: a.gaps + b.gaps,
        events_missed: a.events_missed + b.events_missed,
        too_many_pings: a.too_many_pings + b.too_many_pings,
        last_rtt: b.last_rtt.or(a.last_rtt),
    }
}
