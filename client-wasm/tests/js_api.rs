//! The JavaScript API (`KeepaliveClient`) in a real browser: options object, `onState`,
//! `onEvent`, `onStats`, `onTimeline` with real JS functions, `subscribe`, `publish` as a
//! promise, `close`.

#![cfg(target_arch = "wasm32")]

mod support;

use client_wasm::js::{
    EventCallback, JsClient, JsClientOptions, StateCallback, StatsCallback, TimelineCallback,
};
use js_sys::{Function, Object, Reflect};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// A JS function that appends its argument to `log`.
fn recorder(log: &Rc<RefCell<Vec<JsValue>>>) -> Function {
    let log = log.clone();
    let closure = Closure::<dyn Fn(JsValue)>::new(move |v| log.borrow_mut().push(v));
    closure.into_js_value().unchecked_into()
}

fn field(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

async fn wait_for(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1500 {
        if f() {
            return;
        }
        support::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[wasm_bindgen_test]
async fn plain_js_usage() {
    client_wasm::init_logging(tracing::Level::INFO);
    let url = support::server_up().await;
    let options = Object::new();
    Reflect::set(&options, &"keepaliveTimeMs".into(), &1000.into()).expect("set");
    Reflect::set(&options, &"keepaliveTimeoutMs".into(), &1000.into()).expect("set");
    let client = JsClient::new(
        url.to_owned(),
        Some(options.unchecked_into::<JsClientOptions>()),
    );

    let states = Rc::new(RefCell::new(Vec::new()));
    let events = Rc::new(RefCell::new(Vec::new()));
    let stats = Rc::new(RefCell::new(Vec::new()));
    let timeline = Rc::new(RefCell::new(Vec::new()));
    client.on_state(recorder(&states).unchecked_into::<StateCallback>());
    client.on_event(recorder(&events).unchecked_into::<EventCallback>());
    client.on_stats(recorder(&stats).unchecked_into::<StatsCallback>());
    client.on_timeline(recorder(&timeline).unchecked_into::<TimelineCallback>());
    client.subscribe();

    let s = states.clone();
    wait_for("READY through onState", move || {
        s.borrow()
            .iter()
            .any(|v| field(v, "state").as_string().as_deref() == Some("READY"))
    })
    .await;

    let promise: js_sys::Promise = client.publish("from js".to_owned()).unchecked_into();
    let result = JsFuture::from(promise).await.expect("publish resolves");
    let sequence = field(&result, "sequence").as_f64().expect("sequence");
    assert_eq!(field(&result, "duplicate").as_bool(), Some(false));

    let e = events.clone();
    wait_for("the published event through onEvent", move || {
        e.borrow().iter().any(|v| {
            field(v, "sequence").as_f64() == Some(sequence)
                && field(v, "text").as_string().as_deref() == Some("from js")
        })
    })
    .await;
    // Events arrive in order, each once.
    let seqs: Vec<f64> = events
        .borrow()
        .iter()
        .filter_map(|v| field(v, "sequence").as_f64())
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1.0), "{seqs:?}");

    let last_stats = stats.borrow().last().cloned().expect("onStats called");
    assert_eq!(
        field(&last_stats, "state").as_string().as_deref(),
        Some("READY")
    );
    assert!(
        field(&last_stats, "eventsDelivered")
            .as_f64()
            .unwrap_or(0.0)
            >= 1.0
    );
    assert!(
        timeline
            .borrow()
            .iter()
            .any(|v| field(v, "kind").as_string().as_deref() == Some("state")),
        "timeline has the state changes"
    );
    assert_eq!(
        field(&client.state(), "state").as_string().as_deref(),
        Some("READY")
    );

    client.close();
    assert_eq!(
        field(&client.state(), "state").as_string().as_deref(),
        Some("SHUTDOWN")
    );
}
