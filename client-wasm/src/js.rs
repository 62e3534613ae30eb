//! The JavaScript API (wasm-bindgen), with TypeScript types:
//!
//! ```js
//! import init, { KeepaliveClient } from "./client_wasm.js";
//! await init();
//! const client = new KeepaliveClient("http://127.0.0.1:8080", { keepaliveTimeMs: 10000 });
//! client.onState((s) => console.log(s.state, s.retryInMs));
//! client.onEvent((e) => console.log(e.sequence, e.text));
//! client.onStats((s) => console.log(s.heartbeatsSent, s.lastRttMs));
//! client.subscribe();
//! await client.publish("hello");
//! client.close();
//! ```

use crate::client::{Client, Options};
use crate::driver::{StateInfo, Stats};
use js_sys::{Function, Object, Reflect};
use keepalive::client::{ClientEvent, StreamId};
use std::cell::Cell;
use std::time::Duration;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** Options of a KeepaliveClient; every field is optional. */
export interface ClientOptions {
  /** Nothing received for this long → heartbeat (grpc-go ClientParameters.Time). Default 10000. */
  keepaliveTimeMs?: number;
  /** Heartbeat unanswered (or stream silent beyond its interval) this long → reconnect. Default 20000. */
  keepaliveTimeoutMs?: number;
  /** Heartbeats even without an open stream. Default false. */
  permitWithoutStream?: boolean;
  /** Connection backoff: first delay. Default 1000. */
  backoffInitialMs?: number;
  /** Connection backoff: growth per failure. Default 1.6. */
  backoffMultiplier?: number;
  /** Connection backoff: random spread (0.2 = ±20%). Default 0.2. */
  backoffJitter?: number;
  /** Connection backoff: largest delay. Default 120000. */
  backoffMaxMs?: number;
}

/** "IDLE" | "CONNECTING" | "READY" | "TRANSIENT_FAILURE" | "SHUTDOWN" */
export type ConnectivityState = "IDLE" | "CONNECTING" | "READY" | "TRANSIENT_FAILURE" | "SHUTDOWN";

export interface StateInfo {
  state: ConnectivityState;
  /** When the state began (ms since the epoch). */
  sinceMs: number;
  /** Consecutive failed attempts. */
  failures: number;
  /** In TRANSIENT_FAILURE: ms until the next attempt. */
  retryInMs?: number;
}

export interface FeedEvent {
  sequence: number;
  publishedAtMs: number;
  source: string;
  text: string;
}

export interface ClientStats {
  state: ConnectivityState;
  keepaliveTimeMs: number;
  heartbeatsSent: number;
  heartbeatsAnswered: number;
  heartbeatsMissed: number;
  reconnects: number;
  resumes: number;
  eventsDelivered: number;
  duplicatesDropped: number;
  gaps: number;
  eventsMissed: number;
  tooManyPings: number;
  lastRttMs?: number;
}

/** One entry of the connection timeline. */
export interface TimelineEntry {
  atMs: number;
  kind: "state" | "lost" | "gap" | "log_reset" | "resumed" | "go_away" | "rtt" | "too_many_pings";
  text: string;
  rttMs?: number;
}

export interface PublishResult {
  sequence: number;
  duplicate: boolean;
}
"#;

#[wasm_bindgen]
extern "C" {
    /// `ClientOptions` (TypeScript).
    #[wasm_bindgen(typescript_type = "ClientOptions")]
    pub type JsClientOptions;
    /// `(state: StateInfo) => void`.
    #[wasm_bindgen(typescript_type = "(state: StateInfo) => void")]
    pub type StateCallback;
    /// `(event: FeedEvent) => void`.
    #[wasm_bindgen(typescript_type = "(event: FeedEvent) => void")]
    pub type EventCallback;
    /// `(stats: ClientStats) => void`.
    #[wasm_bindgen(typescript_type = "(stats: ClientStats) => void")]
    pub type StatsCallback;
    /// `(entry: TimelineEntry) => void`.
    #[wasm_bindgen(typescript_type = "(entry: TimelineEntry) => void")]
    pub type TimelineCallback;
    /// `Promise<PublishResult>`.
    #[wasm_bindgen(typescript_type = "Promise<PublishResult>")]
    pub type PublishPromise;
}

/// A keepalive gRPC-web client for the keepalive server.
#[wasm_bindgen(js_name = KeepaliveClient)]
#[derive(Debug)]
pub struct JsClient {
    client: Client,
    feed: Cell<Option<StreamId>>,
    on_event: std::rc::Rc<std::cell::RefCell<Vec<Function>>>,
}

fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

fn get_f64(obj: &JsValue, key: &str) -> Option<f64> {
    Reflect::get(obj, &JsValue::from_str(key))
        .ok()?
        .as_f64()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}

fn options_from(url: String, js: &JsValue) -> Options {
    let mut o = Options::new(url);
    if js.is_object() {
        let k = &mut o.keepalive;
        if let Some(v) = get_f64(js, "keepaliveTimeMs") {
            k.keepalive_time = ms(v);
        }
        if let Some(v) = get_f64(js, "keepaliveTimeoutMs") {
            k.keepalive_timeout = ms(v);
        }
        if let Ok(v) = Reflect::get(js, &JsValue::from_str("permitWithoutStream"))
            && let Some(b) = v.as_bool()
        {
            k.permit_without_stream = b;
        }
        if let Some(v) = get_f64(js, "backoffInitialMs") {
            k.backoff.initial = ms(v);
        }
        if let Some(v) = get_f64(js, "backoffMultiplier") {
            k.backoff.multiplier = v;
        }
        if let Some(v) = get_f64(js, "backoffJitter") {
            k.backoff.jitter = v.min(1.0);
        }
        if let Some(v) = get_f64(js, "backoffMaxMs") {
            k.backoff.max = ms(v);
        }
    }
    o
}

/// `StateInfo` as a JS object.
pub fn state_object(s: &StateInfo) -> Object {
    let o = Object::new();
    set(&o, "state", s.state.as_str());
    set(&o, "sinceMs", s.since_ms);
    set(&o, "failures", s.failures);
    if let Some(r) = s.retry_in_ms {
        set(&o, "retryInMs", r);
    }
    o
}

/// `ClientStats` as a JS object.
pub fn stats_object(s: &Stats) -> Object {
    let o = Object::new();
    let c = &s.core;
    set(&o, "state", s.state.as_str());
    set(
        &o,
        "keepaliveTimeMs",
        s.keepalive_time.as_secs_f64() * 1000.0,
    );
    set(&o, "heartbeatsSent", c.heartbeats_sent as f64);
    set(&o, "heartbeatsAnswered", c.heartbeats_answered as f64);
    set(&o, "heartbeatsMissed", c.heartbeats_missed as f64);
    set(&o, "reconnects", c.reconnects as f64);
    set(&o, "resumes", c.resumes as f64);
    set(&o, "eventsDelivered", c.events_delivered as f64);
    set(&o, "duplicatesDropped", c.duplicates_dropped as f64);
    set(&o, "gaps", c.gaps as f64);
    set(&o, "eventsMissed", c.events_missed as f64);
    set(&o, "tooManyPings", c.too_many_pings as f64);
    if let Some(rtt) = c.last_rtt {
        set(&o, "lastRttMs", rtt.as_secs_f64() * 1000.0);
    }
    o
}

/// A timeline entry as a JS object.
pub fn timeline_object(at: f64, e: &ClientEvent) -> Object {
    let o = Object::new();
    set(&o, "atMs", at);
    let (kind, text) = match e {
        ClientEvent::StateChanged { from, to } => ("state", format!("{from} → {to}")),
        ClientEvent::ConnectionLost { reason, retry_in } => (
            "lost",
            format!(
                "connection lost: {}; retry in {} ms",
                reason.as_str(),
                retry_in.as_millis()
            ),
        ),
        ClientEvent::Gap { from, missed, .. } => {
            ("gap", format!("{missed} events from #{from} are gone"))
        }
        ClientEvent::LogReset { .. } => (
            "log_reset",
            "the server's event log was replaced".to_owned(),
        ),
        ClientEvent::Resumed { after, .. } => (
            "resumed",
            match after {
                Some(a) => format!("stream resumed after #{a}"),
                None => "stream resumed".to_owned(),
            },
        ),
        ClientEvent::GoAway { .. } => (
            "go_away",
            "server ended the stream (go-away): resuming".to_owned(),
        ),
        ClientEvent::HeartbeatRtt { rtt } => {
            set(&o, "rttMs", rtt.as_secs_f64() * 1000.0);
            (
                "rtt",
                format!("heartbeat {:.1} ms", rtt.as_secs_f64() * 1000.0),
            )
        }
        ClientEvent::TooManyPings { keepalive_time } => (
            "too_many_pings",
            format!(
                "too_many_pings: keepalive time now {} ms",
                keepalive_time.as_millis()
            ),
        ),
    };
    set(&o, "kind", kind);
    set(&o, "text", text);
    o
}

/// A feed event as a JS object.
pub fn event_object(e: &demo_proto::v1::Event) -> Object {
    let o = Object::new();
    set(&o, "sequence", e.sequence as f64);
    set(&o, "publishedAtMs", e.published_at_ms as f64);
    set(&o, "source", e.source.as_str());
    set(&o, "text", e.text.as_str());
    o
}

fn call(f: &Function, arg: &JsValue) {
    if let Err(e) = f.call1(&JsValue::NULL, arg) {
        tracing::error!("callback threw: {e:?}");
    }
}

#[wasm_bindgen(js_class = KeepaliveClient)]
impl JsClient {
    /// Creates a client for the server at `url` (`""` for the page's origin). It connects
    /// on `subscribe()` (or `connect()`).
    #[wasm_bindgen(constructor)]
    pub fn new(url: String, options: Option<JsClientOptions>) -> JsClient {
        let js: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        JsClient {
            client: Client::new(options_from(url, &js)),
            feed: Cell::new(None),
            on_event: Default::default(),
        }
    }

    /// Starts connecting.
    pub fn connect(&self) {
        self.client.connect();
    }

    /// Calls `f(state)` on every connectivity change.
    #[wasm_bindgen(js_name = onState)]
    pub fn on_state(&self, f: StateCallback) {
        let f: Function = f.unchecked_into();
        self.client
            .on_state(move |s| call(&f, &state_object(s).into()));
    }

    /// Calls `f(event)` for every feed event, exactly once, in order.
    #[wasm_bindgen(js_name = onEvent)]
    pub fn on_event(&self, f: EventCallback) {
        self.on_event.borrow_mut().push(f.unchecked_into());
    }

    /// Calls `f(stats)` when the counters change.
    #[wasm_bindgen(js_name = onStats)]
    pub fn on_stats(&self, f: StatsCallback) {
        let f: Function = f.unchecked_into();
        self.client
            .on_stats(move |s| call(&f, &stats_object(s).into()));
    }

    /// Calls `f(entry)` for every keepalive event (state, loss, gap, resume, rtt…).
    #[wasm_bindgen(js_name = onTimeline)]
    pub fn on_timeline(&self, f: TimelineCallback) {
        let f: Function = f.unchecked_into();
        self.client
            .on_timeline(move |at, e| call(&f, &timeline_object(at, e).into()));
    }

    /// Subscribes to the event feed (once; later calls do nothing).
    pub fn subscribe(&self) {
        if self.feed.get().is_some() {
            return;
        }
        let listeners = self.on_event.clone();
        let id = self.client.subscribe(move |e| {
            let obj: JsValue = event_object(&e).into();
            for f in listeners.borrow().iter() {
                call(f, &obj);
            }
        });
        self.feed.set(Some(id));
    }

    /// Publishes `text`; resolves to `{sequence, duplicate}`. Retried safely.
    pub fn publish(&self, text: String) -> PublishPromise {
        let client = self.client.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let r = client.publish(&text).await.map_err(|s| {
                JsValue::from(js_sys::Error::new(&format!(
                    "{:?}: {}",
                    s.code(),
                    s.message()
                )))
            })?;
            let o = Object::new();
            set(&o, "sequence", r.sequence as f64);
            set(&o, "duplicate", r.duplicate);
            Ok(o.into())
        })
        .unchecked_into()
    }

    /// The connectivity state now.
    pub fn state(&self) -> JsValue {
        state_object(&self.client.state()).into()
    }

    /// The counters now.
    pub fn stats(&self) -> JsValue {
        stats_object(&self.client.stats()).into()
    }

    /// Closes the client.
    pub fn close(&self) {
        self.client.close();
    }
}
