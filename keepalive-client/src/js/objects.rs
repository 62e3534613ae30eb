//! Rust values as JavaScript objects, and JavaScript options as Rust values.

use crate::{Options, StateInfo, Stats};
use js_sys::{Array, Function, Object, Reflect};
use keepalive::client::{ClientEvent, RetryPolicy};
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};

pub(crate) fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
    let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn get_f64(obj: &JsValue, key: &str) -> Option<f64> {
    get(obj, key)
        .as_f64()
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1000.0)
}

/// Calls `f(arg)`, logging what it throws.
pub(crate) fn call(f: &Function, arg: &JsValue) {
    if let Err(e) = f.call1(&JsValue::NULL, arg) {
        tracing::error!("callback threw: {e:?}");
    }
}

/// Calls `f()`, logging what it throws.
pub(crate) fn call0(f: &Function) {
    if let Err(e) = f.call0(&JsValue::NULL) {
        tracing::error!("callback threw: {e:?}");
    }
}

/// `ChannelOptions` → [`Options`].
pub(crate) fn options_from(url: String, js: &JsValue) -> Options {
    let mut o = Options::new(url);
    if !js.is_object() {
        return o;
    }
    let k = &mut o.keepalive;
    if let Some(v) = get_f64(js, "keepaliveTimeMs") {
        k.keepalive_time = ms(v);
    }
    if let Some(v) = get_f64(js, "keepaliveTimeoutMs") {
        k.keepalive_timeout = ms(v);
    }
    if let Some(b) = get(js, "permitWithoutStream").as_bool() {
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
    let retry = get(js, "retry");
    if retry.is_object() {
        let retry_obj: &Object = retry.unchecked_ref();
        for key in Object::keys(retry_obj).iter() {
            let Some(name) = key.as_string() else {
                continue;
            };
            o = o.retry(name.clone(), retry_policy(&get(&retry, &name)));
        }
    }
    o
}

/// `RetryPolicyInit` → [`RetryPolicy`] (defaults for what it leaves out).
fn retry_policy(js: &JsValue) -> RetryPolicy {
    let mut p = RetryPolicy::default();
    if let Some(v) = get_f64(js, "maxAttempts") {
        p.max_attempts = v as u32;
    }
    if let Some(v) = get_f64(js, "initialBackoffMs") {
        p.initial_backoff = ms(v);
    }
    if let Some(v) = get_f64(js, "maxBackoffMs") {
        p.max_backoff = ms(v);
    }
    if let Some(v) = get_f64(js, "backoffMultiplier") {
        p.backoff_multiplier = v;
    }
    let codes = get(js, "retryableCodes");
    if Array::is_array(&codes) {
        p.retryable_codes = Array::from(&codes)
            .iter()
            .filter_map(|c| c.as_f64())
            .map(|c| c as i32)
            .collect();
    }
    p
}

/// `StateInfo` as a JS object.
pub(crate) fn state(s: &StateInfo) -> Object {
    let o = Object::new();
    set(&o, "state", s.state.as_str());
    set(&o, "sinceMs", s.since_ms);
    set(&o, "failures", s.failures);
    if let Some(r) = s.retry_in_ms {
        set(&o, "retryInMs", r);
    }
    o
}

/// `ChannelStats` as a JS object.
pub(crate) fn stats(s: &Stats) -> Object {
    let o = Object::new();
    let c = &s.core;
    set(&o, "state", s.state.as_str());
    set(
        &o,
        "keepaliveTimeMs",
        s.keepalive_time.as_secs_f64() * 1000.0,
    );
    set(&o, "callsInFlight", s.calls_in_flight);
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
pub(crate) fn timeline(at: f64, e: &ClientEvent) -> Object {
    let o = Object::new();
    set(&o, "atMs", at);
    let (kind, text) = match e {
        ClientEvent::StateChanged { from, to } => ("state", format!("{from} → {to}")),
        ClientEvent::ConnectionLost { reason, retry_in } => {
            set(&o, "reason", reason.as_str());
            (
                "lost",
                format!(
                    "connection lost: {}; retry in {} ms",
                    reason.as_str(),
                    retry_in.as_millis()
                ),
            )
        }
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
        ClientEvent::GoAway { reason, .. } => {
            set(&o, "reason", reason.as_str());
            (
                "go_away",
                format!("server ended the stream (go-away {reason}): resuming"),
            )
        }
        ClientEvent::StreamFinished { .. } => ("finished", "the server ended a stream".to_owned()),
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
