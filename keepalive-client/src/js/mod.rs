//! The JavaScript API (feature `js`): what the npm package's connect-es transport and
//! `keepOpen` are built on.
//!
//! The keepalive machinery stays here, in Rust — the same core, heartbeats, session,
//! backoff, A6 decisions and resume cursor as for Rust pages. JavaScript does the I/O:
//! its calls go through connect-es (`@connectrpc/connect-web`'s gRPC-web transport, with a
//! `fetch` that reports to this channel), and it tells the channel what happens:
//!
//! ```js
//! const ch = new KeepaliveChannel("https://api.example", { keepaliveTimeMs: 10000 });
//! const id = ch.callStarted(() => controller.abort());  // aborted if the connection dies
//! ch.callAnswered(true); ch.callBytes(); ch.callEnded(id);
//! const retry = ch.retry("/prices.v1.Prices/Quote");    // undefined if not declared
//! const delayMs = retry?.onFailure(14, undefined);      // undefined: give up
//! ch.keepOpen(async (resume, call) => { ... call.event(seq) ... }, undefined, undefined);
//! ```
//!
//! The package (`keepalive-client/js/`) wraps this in `keepaliveTransport()` and
//! `keepOpen()`; its TypeScript types are there. The types below are for this module's
//! own exports.

mod objects;
mod stream;

pub use stream::{JsStream, JsStreamCall};

use crate::Channel;
use crate::shared::{Abort, with_core};
use js_sys::Function;
use keepalive::client::{Failure, RetryDecision, RetryPolicy, RetryState};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::prelude::*;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** Options of a KeepaliveChannel; every field is optional. */
export interface ChannelOptions {
  /** Nothing received for this long → heartbeat (grpc-go ClientParameters.Time). Default 10000. */
  keepaliveTimeMs?: number;
  /** Heartbeat unanswered (or stream silent beyond its interval) this long → reconnect. Default 20000. */
  keepaliveTimeoutMs?: number;
  /** Heartbeats even without an open call or stream. Default false. */
  permitWithoutStream?: boolean;
  /** Connection backoff: first delay. Default 1000. */
  backoffInitialMs?: number;
  /** Connection backoff: growth per failure. Default 1.6. */
  backoffMultiplier?: number;
  /** Connection backoff: random spread (0.2 = ±20%). Default 0.2. */
  backoffJitter?: number;
  /** Connection backoff: largest delay. Default 120000. */
  backoffMaxMs?: number;
  /** Retry policies (A6) by "package.Service/Method" or "package.Service". */
  retry?: Record<string, RetryPolicyInit>;
}

/** A6 retry policy of a method; every field is optional. */
export interface RetryPolicyInit {
  /** Attempts in all, the first included (2..5). Default 5. */
  maxAttempts?: number;
  /** Delay before the first retry. Default 100. */
  initialBackoffMs?: number;
  /** Largest delay. Default 5000. */
  maxBackoffMs?: number;
  /** Growth per retry. Default 2. */
  backoffMultiplier?: number;
  /** gRPC status codes worth retrying. Default [14] (UNAVAILABLE). */
  retryableCodes?: number[];
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

export interface ChannelStats {
  state: ConnectivityState;
  keepaliveTimeMs: number;
  callsInFlight: number;
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
  kind: "state" | "lost" | "gap" | "log_reset" | "resumed" | "go_away" | "finished" | "rtt" | "too_many_pings";
  text: string;
  rttMs?: number;
  reason?: string;
}

/** Where a kept-open stream resumes: put it in the request (keepalive.v1.ResumeRequest). */
export interface ResumePoint {
  sessionId: string;
  afterSequence?: bigint;
  resumeToken: string;
  logId: string;
  streamKey: string;
}

/** How a kept-open stream ended for good: undefined when it completed, else the status. */
export type StreamEnd = undefined | { code: number; message: string };
"#;

#[wasm_bindgen]
extern "C" {
    /// `ChannelOptions` (TypeScript).
    #[wasm_bindgen(typescript_type = "ChannelOptions")]
    pub type JsChannelOptions;
    /// `(state: StateInfo) => void`.
    #[wasm_bindgen(typescript_type = "(state: StateInfo) => void")]
    pub type StateCallback;
    /// `(stats: ChannelStats) => void`.
    #[wasm_bindgen(typescript_type = "(stats: ChannelStats) => void")]
    pub type StatsCallback;
    /// `(entry: TimelineEntry) => void`.
    #[wasm_bindgen(typescript_type = "(entry: TimelineEntry) => void")]
    pub type TimelineCallback;
    /// `() => void`.
    #[wasm_bindgen(typescript_type = "() => void")]
    pub type AbortCallback;
    /// The opener of a kept-open stream.
    #[wasm_bindgen(typescript_type = "(resume: ResumePoint, call: KeepaliveStreamCall) => void")]
    pub type OpenCallback;
    /// `(end: StreamEnd) => void`.
    #[wasm_bindgen(typescript_type = "(end: StreamEnd) => void")]
    pub type EndCallback;
}

/// A keepalive channel for calls made in JavaScript.
#[wasm_bindgen(js_name = KeepaliveChannel)]
#[derive(Debug)]
pub struct JsChannel {
    channel: Channel,
}

#[wasm_bindgen(js_class = KeepaliveChannel)]
impl JsChannel {
    /// A channel to the server at `url` (`""` for the page's origin), in IDLE.
    #[wasm_bindgen(constructor)]
    pub fn new(url: String, options: Option<JsChannelOptions>) -> JsChannel {
        let js: JsValue = options.map(Into::into).unwrap_or(JsValue::UNDEFINED);
        JsChannel {
            channel: Channel::new(objects::options_from(url, &js)),
        }
    }

    /// Starts connecting.
    pub fn connect(&self) {
        self.channel.connect();
    }

    /// Closes the channel: calls and streams are aborted.
    pub fn close(&self) {
        self.channel.close();
    }

    /// The connectivity state now.
    pub fn state(&self) -> JsValue {
        objects::state(&self.channel.state()).into()
    }

    /// The counters now.
    pub fn stats(&self) -> JsValue {
        objects::stats(&self.channel.stats()).into()
    }

    /// Which server (replica) answered last: `{ stream, heartbeat }` (names, or
    /// undefined).
    pub fn servers(&self) -> JsValue {
        let s = self.channel.servers();
        let o = js_sys::Object::new();
        for (k, v) in [("stream", s.stream), ("heartbeat", s.heartbeat)] {
            if let Some(v) = v {
                let _ = js_sys::Reflect::set(&o, &k.into(), &v.into());
            }
        }
        o.into()
    }

    /// Calls `f(state)` on every connectivity change.
    #[wasm_bindgen(js_name = onState)]
    pub fn on_state(&self, f: StateCallback) {
        let f: Function = f.unchecked_into();
        self.channel
            .on_state(move |s| objects::call(&f, &objects::state(s).into()));
    }

    /// Calls `f(stats)` when the counters change.
    #[wasm_bindgen(js_name = onStats)]
    pub fn on_stats(&self, f: StatsCallback) {
        let f: Function = f.unchecked_into();
        self.channel
            .on_stats(move |s| objects::call(&f, &objects::stats(s).into()));
    }

    /// Calls `f(entry)` for every keepalive event (state, loss, gap, resume, rtt…).
    #[wasm_bindgen(js_name = onTimeline)]
    pub fn on_timeline(&self, f: TimelineCallback) {
        let f: Function = f.unchecked_into();
        self.channel
            .on_timeline(move |at, e| objects::call(&f, &objects::timeline(at, e).into()));
    }

    /// A call of the application started; `abort()` is called if the channel judges the
    /// connection lost while it is in flight. Returns its id for `callEnded`.
    #[wasm_bindgen(js_name = callStarted)]
    pub fn call_started(&self, abort: AbortCallback) -> f64 {
        let abort: Function = abort.unchecked_into();
        let shared = &self.channel.shared;
        let id = {
            let mut inner = shared.inner.borrow_mut();
            inner.next_call += 1;
            let id = inner.next_call;
            let f = Rc::new(move || objects::call0(&abort)) as Rc<dyn Fn()>;
            inner.calls.insert(id, Abort::Callback(f));
            id
        };
        with_core(&Rc::downgrade(shared), |c, now| c.call_started(now));
        id as f64
    }

    /// A call got its response headers (`answered`), or failed in transport (`false`).
    #[wasm_bindgen(js_name = callAnswered)]
    pub fn call_answered(&self, answered: bool) {
        with_core(&Rc::downgrade(&self.channel.shared), |c, now| {
            c.on_call(now, answered)
        });
    }

    /// Bytes of a call arrived.
    #[wasm_bindgen(js_name = callBytes)]
    pub fn call_bytes(&self) {
        with_core(&Rc::downgrade(&self.channel.shared), |c, now| {
            c.on_bytes(now)
        });
    }

    /// The call `id` ended (its body finished, failed or was cancelled).
    #[wasm_bindgen(js_name = callEnded)]
    pub fn call_ended(&self, id: f64) {
        let shared = &self.channel.shared;
        if shared
            .inner
            .borrow_mut()
            .calls
            .remove(&(id as u64))
            .is_some()
        {
            with_core(&Rc::downgrade(shared), |c, now| c.call_ended(now));
        }
    }

    /// Why the connection was last judged lost (for the status of aborted calls).
    #[wasm_bindgen(js_name = lossReason)]
    pub fn loss_reason(&self) -> String {
        self.channel.shared.inner.borrow().last_loss.to_owned()
    }

    /// The A6 retry state of one call of the method at `path` (`/package.Service/Method`),
    /// or `undefined` when no policy is declared for it.
    pub fn retry(&self, path: &str) -> Option<JsRetry> {
        let policy: RetryPolicy = self.channel.options().retry_policy(path)?.clone();
        Some(JsRetry {
            state: RetryState::new(policy),
        })
    }

    /// Keeps a stream open: `open(resume, call)` makes one call of it and reports its
    /// messages to `call`; it starts after `after` in the log `logId` (both optional).
    #[wasm_bindgen(js_name = keepOpen)]
    pub fn keep_open(
        &self,
        open: OpenCallback,
        after: Option<u64>,
        log_id: Option<String>,
    ) -> JsStream {
        stream::keep_open(&self.channel, open.unchecked_into(), after, log_id)
    }
}

/// The A6 retry state of one call.
#[wasm_bindgen(js_name = KeepaliveRetry)]
#[derive(Debug)]
pub struct JsRetry {
    state: RetryState,
}

#[wasm_bindgen(js_class = KeepaliveRetry)]
impl JsRetry {
    /// An attempt failed with gRPC status `code` (and the server's `grpc-retry-pushback-ms`
    /// header value, if any): the delay in ms before the next attempt, or `undefined` to
    /// give up.
    #[wasm_bindgen(js_name = onFailure)]
    pub fn on_failure(&mut self, code: i32, pushback_ms: Option<String>) -> Option<f64> {
        let failure = Failure {
            code,
            headers_received: false,
            pushback_ms: pushback_ms.map(|v| v.trim().parse::<u64>().ok()),
        };
        match self.state.on_failure(failure, js_sys::Math::random()) {
            RetryDecision::Retry(d) => Some(ms(d)),
            RetryDecision::GiveUp => None,
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.state.attempts()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
