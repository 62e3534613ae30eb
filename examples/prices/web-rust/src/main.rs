//! The price ticker's page in Rust: what a team with its own proto writes.
//!
//! - one [`Channel`] to the page's origin, Quote declared retryable (A6);
//! - the generated `PricesClient` over it for Quote;
//! - Watch(ACME) kept open with [`Channel::keep_open`]: every tick once, in order, across
//!   kills, restarts and stalls of the server;
//! - History(ACME, n), a finite stream kept open: it ends without a reconnect.
//!
//! Settings come from the URL's query (`?keepaliveTimeMs=1000&keepaliveTimeoutMs=1000`).
//! What the browser test reads and does is on `window.__prices` (`state()`, `ticks()`,
//! `stats()`, `now()`, `quote(symbol)`, `history(symbol, n)`).

#[cfg(not(target_arch = "wasm32"))]
fn main() {}

#[cfg(target_arch = "wasm32")]
fn main() {
    page::start();
}

#[cfg(target_arch = "wasm32")]
mod page {
    use js_sys::{Array, Object, Promise, Reflect};
    use keepalive_client::{Channel, ConnectivityState, KeepOpen, Options, RetryPolicy};
    use prices_proto::v1::prices_client::PricesClient;
    use prices_proto::v1::{HistoryRequest, PriceTick, QuoteRequest, WatchRequest};
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;
    use wasm_bindgen::prelude::*;

    /// What the page knows.
    #[derive(Default)]
    struct Seen {
        state: String,
        state_at: f64,
        ticks: Vec<u64>,
    }

    fn now() -> f64 {
        web_sys::window()
            .and_then(|w| w.performance())
            .map_or(0.0, |p| p.now())
    }

    fn set(o: &Object, k: &str, v: impl Into<JsValue>) {
        let _ = Reflect::set(o, &k.into(), &v.into());
    }

    fn text(id: &str, value: &str) {
        if let Some(e) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.get_element_by_id(id))
        {
            e.set_text_content(Some(value));
            if id == "state" {
                e.set_class_name(value);
            }
        }
    }

    /// `12.34` from micros, in integers (a page that never formats a float does not carry
    /// float formatting: 9 KB of wasm).
    fn price(micros: i64) -> String {
        let cents = micros / 10_000;
        let sign = if cents < 0 { "-" } else { "" };
        let cents = cents.unsigned_abs();
        format!("{sign}{}.{:02}", cents / 100, cents % 100)
    }

    /// `?name=milliseconds` of the page's URL.
    fn query_ms(name: &str) -> Option<Duration> {
        let search = web_sys::window()?.location().search().ok()?;
        search
            .trim_start_matches('?')
            .split('&')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
    }

    pub fn start() {
        let origin = web_sys::window()
            .and_then(|w| w.location().origin().ok())
            .unwrap_or_default();
        let mut options = Options::new(origin).retry(
            "prices.v1.Prices/Quote",
            RetryPolicy {
                initial_backoff: Duration::from_millis(50),
                ..RetryPolicy::default()
            },
        );
        if let Some(t) = query_ms("keepaliveTimeMs") {
            options.keepalive.keepalive_time = t;
        }
        if let Some(t) = query_ms("keepaliveTimeoutMs") {
            options.keepalive.keepalive_timeout = t;
        }
        options.keepalive.backoff.initial = Duration::from_millis(500);
        let channel = Channel::new(options);
        let seen = Rc::new(RefCell::new(Seen {
            state: "IDLE".into(),
            ..Seen::default()
        }));

        let s = seen.clone();
        channel.on_state(move |info| {
            let mut s = s.borrow_mut();
            s.state = info.state.as_str().to_owned();
            s.state_at = now();
            text("state", info.state.as_str());
        });
        let s = seen.clone();
        channel.keep_open(
            |ch, resume| async move {
                let request = WatchRequest {
                    symbol: "ACME".into(),
                    resume: Some(resume),
                };
                Ok(PricesClient::new(ch).watch(request).await?.into_inner())
            },
            move |tick: PriceTick| {
                let mut s = s.borrow_mut();
                s.ticks.push(tick.sequence);
                text("count", &s.ticks.len().to_string());
                text("price", &price(tick.price_micros));
            },
        );
        expose(channel, seen);
    }

    /// `window.__prices`: the test's view of the page.
    fn expose(channel: Channel, seen: Rc<RefCell<Seen>>) {
        let api = Object::new();
        let s = seen.clone();
        let state = Closure::<dyn Fn() -> JsValue>::new(move || {
            let o = Object::new();
            let s = s.borrow();
            set(&o, "state", s.state.as_str());
            set(&o, "changedAt", s.state_at);
            o.into()
        });
        let s = seen.clone();
        let ticks = Closure::<dyn Fn() -> JsValue>::new(move || {
            s.borrow()
                .ticks
                .iter()
                .map(|&t| JsValue::from_f64(t as f64))
                .collect::<Array>()
                .into()
        });
        let ch = channel.clone();
        let stats = Closure::<dyn Fn() -> JsValue>::new(move || {
            let st = ch.stats();
            let o = Object::new();
            set(&o, "reconnects", st.core.reconnects as f64);
            set(&o, "resumes", st.core.resumes as f64);
            set(&o, "gaps", st.core.gaps as f64);
            set(&o, "duplicatesDropped", st.core.duplicates_dropped as f64);
            set(&o, "ready", st.state == ConnectivityState::Ready);
            o.into()
        });
        let ch = channel.clone();
        let quote = Closure::<dyn Fn(String) -> Promise>::new(move |symbol: String| {
            let mut client = PricesClient::new(ch.clone());
            wasm_bindgen_futures::future_to_promise(async move {
                let o = Object::new();
                match client.quote(QuoteRequest { symbol }).await {
                    Ok(r) => {
                        let tick = r.into_inner().tick.unwrap_or_default();
                        set(&o, "sequence", tick.sequence as f64);
                        set(&o, "priceMicros", tick.price_micros as f64);
                    }
                    Err(status) => set(
                        &o,
                        "error",
                        format!("{:?}: {}", status.code(), status.message()),
                    ),
                }
                Ok(o.into())
            })
        });
        let ch = channel.clone();
        let history =
            Closure::<dyn Fn(String, u32) -> Promise>::new(move |symbol: String, last: u32| {
                let got = Rc::new(RefCell::new(Vec::new()));
                let g = got.clone();
                let stream: KeepOpen = ch.keep_open(
                    move |ch, resume| {
                        let symbol = symbol.clone();
                        async move {
                            let request = HistoryRequest {
                                symbol,
                                last,
                                resume: Some(resume),
                            };
                            Ok(PricesClient::new(ch).history(request).await?.into_inner())
                        }
                    },
                    move |tick: PriceTick| g.borrow_mut().push(tick.sequence),
                );
                Promise::new(&mut |resolve, _reject| {
                    let got = got.clone();
                    stream.on_end(move |end| {
                        let o = Object::new();
                        let seqs: Array = got
                            .borrow()
                            .iter()
                            .map(|&t| JsValue::from_f64(t as f64))
                            .collect();
                        set(&o, "ticks", seqs);
                        match end {
                            Ok(()) => set(&o, "end", "ok"),
                            Err(status) => set(&o, "end", format!("{:?}", status.code())),
                        }
                        let _ = resolve.call1(&JsValue::NULL, &o);
                    });
                })
            });
        let now_fn = Closure::<dyn Fn() -> f64>::new(now);
        set(&api, "state", state.as_ref().clone());
        set(&api, "ticks", ticks.as_ref().clone());
        set(&api, "stats", stats.as_ref().clone());
        set(&api, "quote", quote.as_ref().clone());
        set(&api, "history", history.as_ref().clone());
        set(&api, "now", now_fn.as_ref().clone());
        // They live as long as the page.
        state.forget();
        ticks.forget();
        stats.forget();
        quote.forget();
        history.forget();
        now_fn.forget();
        if let Some(w) = web_sys::window() {
            let _ = Reflect::set(&w, &"__prices".into(), &api);
        }
    }
}
