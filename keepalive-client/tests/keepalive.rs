//! The client against the real server in a real browser (headless Chromium): heartbeat
//! round trips, a killed server, a restarted server (resume with nothing lost or twice), a
//! stalled server (half-open), too_many_pings, and go-away at max stream age.
//!
//! `cargo xtask test` runs the server with `--stream-heartbeat-interval 1s
//! --max-stream-age 5s --tick-interval 500ms --min-ping-interval 100ms`, a file-backed
//! event log (so a restart keeps the sequence space), chaos on, and CORS for any origin.
//! The figures each test measures are printed with a `FIGURE` prefix (shown with
//! `cargo xtask test --browser-only -- -- --nocapture`).

#![cfg(target_arch = "wasm32")]

mod support;

use demo_proto::v1::ChaosAction;
use keepalive_client::{Channel, ClientEvent, ConnectivityState, Options};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Client `Time` and `Timeout` in these tests.
const TIME: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(1);
/// What detection may take beyond `Time + Timeout`: timer granularity and a busy machine.
const MARGIN_MS: f64 = 500.0;

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now())
}

fn figure(what: &str, value: String) {
    web_sys::console::log_1(&format!("FIGURE {what}: {value}").into());
}

fn options() -> Options {
    let mut o = support::demo::options();
    o.keepalive.keepalive_time = TIME;
    o.keepalive.keepalive_timeout = TIMEOUT;
    o.keepalive.backoff.initial = Duration::from_millis(500);
    o
}

/// Polls `f` every 10 ms until it holds; returns the milliseconds it took, or panics with
/// `what` after `timeout`.
async fn wait_for(what: &str, timeout: Duration, f: impl Fn() -> bool) -> f64 {
    let start = now_ms();
    while !f() {
        if now_ms() - start > timeout.as_secs_f64() * 1000.0 {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        support::sleep(Duration::from_millis(10)).await;
    }
    now_ms() - start
}

/// A subscribed client and the sequences it delivered.
struct Subscribed {
    client: Channel,
    seqs: Rc<RefCell<Vec<u64>>>,
    lost: Rc<RefCell<Vec<String>>>,
}

impl Subscribed {
    async fn start(options: Options) -> Subscribed {
        keepalive_client::init_logging(tracing::Level::INFO);
        support::server_up().await;
        let client = Channel::new(options);
        let seqs = Rc::new(RefCell::new(Vec::new()));
        let lost = Rc::new(RefCell::new(Vec::new()));
        let l = lost.clone();
        client.on_timeline(move |_, e| {
            if let ClientEvent::ConnectionLost { reason, .. } = e {
                l.borrow_mut().push(reason.as_str().to_owned());
            }
        });
        let s = seqs.clone();
        support::demo::subscribe(&client, move |e| s.borrow_mut().push(e.sequence));
        let c = client.clone();
        wait_for("READY", Duration::from_secs(15), move || {
            c.state().state == ConnectivityState::Ready
        })
        .await;
        Subscribed { client, seqs, lost }
    }

    fn ready(&self) -> bool {
        self.client.state().state == ConnectivityState::Ready
    }

    fn delivered(&self) -> usize {
        self.seqs.borrow().len()
    }

    /// Every delivered sequence is the previous one plus one: nothing lost, nothing twice.
    fn assert_contiguous(&self) {
        let seqs = self.seqs.borrow();
        for w in seqs.windows(2) {
            assert_eq!(w[1], w[0] + 1, "not contiguous: {seqs:?}");
        }
        assert_eq!(self.client.stats().core.gaps, 0, "a gap was reported");
    }

    async fn wait_events(&self, n: usize, timeout: Duration) {
        let seqs = self.seqs.clone();
        let target = self.delivered() + n;
        wait_for("events", timeout, move || seqs.borrow().len() >= target).await;
    }
}

#[wasm_bindgen_test]
async fn heartbeat_round_trip_and_rtt() {
    let s = Subscribed::start(Options {
        keepalive: keepalive::client::ClientConfig {
            // Heartbeats only after silence: make the feed quiet enough by a short Time.
            keepalive_time: Duration::from_millis(300),
            ..options().keepalive
        },
        ..options()
    })
    .await;
    let rtts = Rc::new(RefCell::new(Vec::new()));
    let r = rtts.clone();
    s.client.on_timeline(move |_, e| {
        if let ClientEvent::HeartbeatRtt { rtt } = e {
            r.borrow_mut().push(rtt.as_secs_f64() * 1000.0);
        }
    });
    let r = rtts.clone();
    wait_for(
        "5 heartbeat round trips",
        Duration::from_secs(20),
        move || r.borrow().len() >= 5,
    )
    .await;
    let mut rtts = rtts.borrow().clone();
    rtts.sort_by(f64::total_cmp);
    let stats = s.client.stats().core;
    assert!(stats.heartbeats_answered >= 5, "{stats:?}");
    assert!(stats.last_rtt.is_some());
    assert!(
        rtts[rtts.len() / 2] < 500.0,
        "median heartbeat RTT {rtts:?}"
    );
    figure("heartbeat RTT ms (sorted)", format!("{rtts:.1?}"));
    s.client.close();
}

#[wasm_bindgen_test]
async fn killed_server_is_detected_and_restarted_server_resumes_with_nothing_lost() {
    let s = Subscribed::start(options()).await;
    s.wait_events(3, Duration::from_secs(10)).await;

    let killed_at = now_ms();
    support::controller::kill().await;
    let c = s.client.clone();
    wait_for(
        "leaving READY",
        TIME + TIMEOUT + Duration::from_secs(2),
        move || c.state().state != ConnectivityState::Ready,
    )
    .await;
    let detection = now_ms() - killed_at;
    figure(
        "kill → left READY ms",
        format!(
            "{detection:.0} (Time + Timeout = {} ms)",
            (TIME + TIMEOUT).as_millis()
        ),
    );
    assert!(
        detection <= (TIME + TIMEOUT).as_secs_f64() * 1000.0 + MARGIN_MS,
        "{detection}"
    );

    let before = s.delivered();
    support::sleep(Duration::from_millis(700)).await;
    let restarted_at = now_ms();
    support::controller::start().await;
    let c = s.client.clone();
    wait_for("READY after restart", Duration::from_secs(20), move || {
        c.state().state == ConnectivityState::Ready
    })
    .await;
    let to_ready = now_ms() - restarted_at;
    let seqs = s.seqs.clone();
    wait_for("first resumed event", Duration::from_secs(10), move || {
        seqs.borrow().len() > before
    })
    .await;
    let to_event = now_ms() - restarted_at;
    figure("restart → READY ms", format!("{to_ready:.0}"));
    figure("restart → first resumed event ms", format!("{to_event:.0}"));

    s.wait_events(3, Duration::from_secs(10)).await;
    // Published while we watch, with a retry-safe publish.
    let sent = support::demo::publish(&s.client, "after restart")
        .await
        .expect("publish");
    let seqs = s.seqs.clone();
    wait_for("the published event", Duration::from_secs(10), move || {
        seqs.borrow().contains(&sent.sequence)
    })
    .await;
    s.assert_contiguous();
    let stats = s.client.stats().core;
    assert!(stats.resumes >= 1 && stats.reconnects >= 1, "{stats:?}");
    s.client.close();
}

#[wasm_bindgen_test]
async fn stalled_server_is_detected_and_recovered() {
    let token = support::chaos_token();
    let s = Subscribed::start(options()).await;
    s.wait_events(2, Duration::from_secs(10)).await;
    support::demo::chaos(&s.client, token, ChaosAction::Stall, 4000)
        .await
        .expect("chaos");
    let stalled_at = now_ms();
    let c = s.client.clone();
    wait_for("leaving READY", Duration::from_secs(6), move || {
        c.state().state != ConnectivityState::Ready
    })
    .await;
    let detection = now_ms() - stalled_at;
    figure(
        "stall → left READY ms",
        format!(
            "{detection:.0} (Time + Timeout = {} ms)",
            (TIME + TIMEOUT).as_millis()
        ),
    );
    assert!(
        detection <= (TIME + TIMEOUT).as_secs_f64() * 1000.0 + MARGIN_MS,
        "{detection}"
    );
    assert!(
        s.lost
            .borrow()
            .iter()
            .any(|r| r == "heartbeat timeout" || r == "stream silent"),
        "{:?}",
        s.lost.borrow()
    );
    let c = s.client.clone();
    wait_for(
        "READY after the stall",
        Duration::from_secs(30),
        move || c.state().state == ConnectivityState::Ready,
    )
    .await;
    s.wait_events(3, Duration::from_secs(10)).await;
    s.assert_contiguous();
    s.client.close();
}

#[wasm_bindgen_test]
async fn too_many_pings_doubles_time() {
    keepalive_client::init_logging(tracing::Level::INFO);
    support::server_up().await;
    // No stream, heartbeats permitted on the client only: the server's 2-hour rule makes
    // every quick heartbeat a strike, and the third strike is too_many_pings.
    let mut o = options();
    o.keepalive.keepalive_time = Duration::from_millis(100);
    o.keepalive.permit_without_stream = true;
    let client = Channel::new(o);
    client.connect();
    let c = client.clone();
    wait_for("too_many_pings", Duration::from_secs(10), move || {
        c.stats().core.too_many_pings >= 1
    })
    .await;
    let stats = client.stats();
    assert!(
        stats.keepalive_time >= Duration::from_millis(200),
        "{stats:?}"
    );
    assert_eq!(
        stats.state,
        ConnectivityState::Ready,
        "too_many_pings is not a dead connection"
    );
    figure(
        "too_many_pings → keepalive time",
        format!("{:?} (was 100ms)", stats.keepalive_time),
    );
    client.close();
}

#[wasm_bindgen_test]
async fn go_away_at_max_stream_age_resumes_at_once_without_loss() {
    let s = Subscribed::start(options()).await;
    let stats_before = s.client.stats().core;
    let go_aways = Rc::new(RefCell::new(0u32));
    let g = go_aways.clone();
    let left_ready = Rc::new(RefCell::new(false));
    let l = left_ready.clone();
    s.client.on_timeline(move |_, e| match e {
        ClientEvent::GoAway { .. } => *g.borrow_mut() += 1,
        ClientEvent::StateChanged { to, .. } if *to != ConnectivityState::Ready => {
            *l.borrow_mut() = true
        }
        _ => {}
    });
    // --max-stream-age 5s (±10%): within 12 s at least one go-away, handled without leaving
    // READY and without backoff.
    let g = go_aways.clone();
    wait_for("a go-away", Duration::from_secs(12), move || {
        *g.borrow() >= 1
    })
    .await;
    s.wait_events(4, Duration::from_secs(10)).await;
    assert!(s.ready());
    assert!(!*left_ready.borrow(), "a go-away must not be a failure");
    let stats = s.client.stats().core;
    assert_eq!(
        stats.reconnects, stats_before.reconnects,
        "no reconnect with backoff"
    );
    assert!(stats.resumes > stats_before.resumes, "{stats:?}");
    s.assert_contiguous();
    s.client.close();
}
