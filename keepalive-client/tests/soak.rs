//! Chaos soak in a real browser: one client subscribed and publishing while the server is,
//! N times over, dropped, stalled, refused, GOAWAYed and restarted at random.
//!
//! Why a soak on top of the one-fault tests (`keepalive.rs`): the faults that hurt are
//! the ones that land in the middle of recovering from the previous one — a drop during
//! a resume, a restart while a publish is being retried, a stall right after a GoAway.
//! Only many faults in a row, at random moments, reach those states.
//!
//! At the end the test checks what the user of a live view cares about: every event the
//! server logged (the ticker's and ours) arrived exactly once and in order, with no gap;
//! every publish that succeeded is among them; the client is READY; the server holds no
//! more connections than the one live page can have open; and the server's resident memory
//! is back near its baseline. The figures are printed as `FIGURE soak ...` lines.
//!
//! N is `KEEPALIVE_SOAK_FAULTS` at compile time (default 10: `cargo xtask test`);
//! `cargo xtask soak` sets 100. `KEEPALIVE_SOAK_SEED` makes the sequence of faults
//! repeatable (the seed used is always printed).

#![cfg(target_arch = "wasm32")]

mod support;

use demo_proto::v1::ChaosAction;
use keepalive_client::{Channel, ConnectivityState, Options};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Faults in the short run.
const DEFAULT_FAULTS: u32 = 10;
/// Most connections one page keeps to one HTTP/1.1 origin (Chromium's per-host limit).
const PAGE_CONNECTIONS: u64 = 6;
/// Resident memory may end this much above the baseline (allocator slack, a replay
/// buffer that filled, a bigger session table) and still count as "back near it".
const RSS_SLACK_KB: u64 = 16 * 1024;

fn faults() -> u32 {
    option_env!("KEEPALIVE_SOAK_FAULTS")
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_FAULTS)
}

fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now())
}

fn figure(what: &str, value: String) {
    web_sys::console::log_1(&format!("FIGURE soak {what}: {value}").into());
}

/// A small repeatable random source (xorshift64*): the fault schedule from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `lo..hi` (hi > lo).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// What the soak does to the server, one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// Chaos DROP_CONNECTIONS: every socket closed, no GOAWAY.
    Drop,
    /// Chaos STALL for a while: half-open connections.
    Stall,
    /// Chaos REFUSE_CONNECTIONS for a while: open ones dropped, new ones reset.
    Refuse,
    /// Chaos GOAWAY: every subscription gets a GoAway, every connection a graceful GOAWAY.
    GoAway,
    /// The controller kills the process (SIGKILL) and starts it again on the same port.
    Kill,
    /// The controller stops it gracefully (SIGTERM: drain, GoAways) and starts it again.
    Restart,
}

const FAULTS: [Fault; 6] = [
    Fault::Drop,
    Fault::Stall,
    Fault::Refuse,
    Fault::GoAway,
    Fault::Kill,
    Fault::Restart,
];

async fn wait_for(what: &str, timeout: Duration, f: impl Fn() -> bool) {
    let start = now_ms();
    while !f() {
        if now_ms() - start > timeout.as_secs_f64() * 1000.0 {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        support::sleep(Duration::from_millis(20)).await;
    }
}

fn options() -> Options {
    let mut o = support::demo::options();
    o.keepalive.keepalive_time = Duration::from_secs(1);
    o.keepalive.keepalive_timeout = Duration::from_secs(1);
    o.keepalive.backoff.initial = Duration::from_millis(300);
    o.keepalive.backoff.max = Duration::from_secs(2);
    o
}

/// Sends a chaos call without waiting for its answer: a stalled or dropped connection may
/// never answer it, and the fault has happened either way.
fn chaos(client: &Channel, action: ChaosAction, duration_ms: u64) {
    let token = support::chaos_token();
    let client = client.clone();
    wasm_bindgen_futures::spawn_local(async move {
        let _ = support::demo::chaos(&client, token, action, duration_ms).await;
    });
}

#[wasm_bindgen_test]
async fn chaos_soak_loses_nothing_and_duplicates_nothing() {
    keepalive_client::init_logging(tracing::Level::WARN);
    support::server_up().await;
    let n = faults();
    let seed = option_env!("KEEPALIVE_SOAK_SEED")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| js_sys::Date::now() as u64)
        | 1;
    figure("faults, seed", format!("{n}, {seed}"));
    let mut rng = Rng(seed);

    let client = Channel::new(options());
    let seqs = Rc::new(RefCell::new(Vec::<u64>::new()));
    {
        let s = seqs.clone();
        support::demo::subscribe(&client, move |e| s.borrow_mut().push(e.sequence));
    }
    let ready = {
        let c = client.clone();
        move || c.state().state == ConnectivityState::Ready
    };
    wait_for("READY", Duration::from_secs(15), &ready).await;
    {
        let s = seqs.clone();
        wait_for("first events", Duration::from_secs(10), move || {
            s.borrow().len() >= 3
        })
        .await;
    }
    let (pid0, rss0) = support::controller::rss().await;

    // The publisher: one publish every 200 ms for the whole soak.
    let published = Rc::new(RefCell::new(Vec::<u64>::new()));
    let publish_failed = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let publisher_done = Rc::new(Cell::new(false));
    {
        let (client, published, failed, stop, done) = (
            client.clone(),
            published.clone(),
            publish_failed.clone(),
            stop.clone(),
            publisher_done.clone(),
        );
        wasm_bindgen_futures::spawn_local(async move {
            let mut i = 0u64;
            while !stop.get() {
                i += 1;
                match support::demo::publish(&client, &format!("soak {i}")).await {
                    Ok(r) => published.borrow_mut().push(r.sequence),
                    Err(_) => failed.set(failed.get() + 1),
                }
                support::sleep(Duration::from_millis(200)).await;
            }
            done.set(true);
        });
    }

    let mut counts = [0u32; FAULTS.len()];
    let started = now_ms();
    let mut since_restart = 0u32;
    let mut rss_max = rss0;
    for i in 0..n {
        let k = rng.range(0, FAULTS.len() as u64) as usize;
        let fault = FAULTS[k];
        counts[k] += 1;
        since_restart += 1;
        match fault {
            Fault::Drop => chaos(&client, ChaosAction::DropConnections, 0),
            Fault::Stall => chaos(&client, ChaosAction::Stall, rng.range(1500, 3000)),
            Fault::Refuse => chaos(
                &client,
                ChaosAction::RefuseConnections,
                rng.range(500, 1500),
            ),
            Fault::GoAway => chaos(&client, ChaosAction::Goaway, 0),
            Fault::Kill => {
                support::controller::restart().await;
                since_restart = 0;
            }
            Fault::Restart => {
                support::controller::restart_graceful().await;
                since_restart = 0;
            }
        }
        // Let the fault land, then wait for the client to be back and the feed to move.
        support::sleep(Duration::from_millis(rng.range(200, 800))).await;
        let before = seqs.borrow().len();
        wait_for(
            &format!("READY after fault {i} ({fault:?})"),
            Duration::from_secs(30),
            &ready,
        )
        .await;
        let s = seqs.clone();
        wait_for(
            &format!("an event after fault {i} ({fault:?})"),
            Duration::from_secs(30),
            move || s.borrow().len() > before,
        )
        .await;
        let (_, rss) = support::controller::rss().await;
        rss_max = rss_max.max(rss);
        support::sleep(Duration::from_millis(rng.range(100, 600))).await;
    }
    let soak_ms = now_ms() - started;

    // Quiesce: the publisher stops, one last publish must arrive, the client stays READY.
    stop.set(true);
    {
        let done = publisher_done.clone();
        wait_for(
            "the publisher to stop",
            Duration::from_secs(60),
            move || done.get(),
        )
        .await;
    }
    wait_for("READY at the end", Duration::from_secs(30), &ready).await;
    let last = support::demo::publish(&client, "soak end")
        .await
        .expect("final publish");
    published.borrow_mut().push(last.sequence);
    {
        let s = seqs.clone();
        wait_for("the final event", Duration::from_secs(15), move || {
            s.borrow().contains(&last.sequence)
        })
        .await;
    }

    // Exactly once, in order: each delivered sequence is the previous one plus one.
    let seqs = seqs.borrow().clone();
    let mut lost = 0u64;
    let mut duplicated = 0u64;
    for w in seqs.windows(2) {
        if w[1] <= w[0] {
            duplicated += 1;
        } else {
            lost += w[1] - w[0] - 1;
        }
    }
    let published = published.borrow().clone();
    let missing: Vec<u64> = published
        .iter()
        .copied()
        .filter(|p| seqs.binary_search(p).is_err())
        .collect();
    let stats = client.stats().core;

    // The server: connections back to what one page holds, memory back near the baseline.
    let mut open = u64::MAX;
    let mut gauges = Default::default();
    for _ in 0..50 {
        if let Ok(r) = support::demo::server_stats(&client).await {
            let g = |k: &str| r.gauges.get(k).copied().unwrap_or(0);
            open = g("open_connections_h1") + g("open_connections_h2");
            gauges = r.gauges;
            if open <= PAGE_CONNECTIONS {
                break;
            }
        }
        support::sleep(Duration::from_millis(200)).await;
    }
    let (pid1, rss1) = support::controller::rss().await;

    let names = [
        "drops",
        "stalls",
        "refusals",
        "go-aways",
        "kills",
        "graceful restarts",
    ];
    let summary: Vec<String> = names
        .iter()
        .zip(counts)
        .map(|(name, c)| format!("{name} {c}"))
        .collect();
    figure("faults by kind", summary.join(", "));
    figure("duration s", format!("{:.1}", soak_ms / 1000.0));
    figure(
        "events",
        format!(
            "received {} (seq {}..={}), published {} (+{} publish calls failed after retries), \
             lost {lost}, duplicated {duplicated}, missing published {}",
            seqs.len(),
            seqs.first().copied().unwrap_or(0),
            seqs.last().copied().unwrap_or(0),
            published.len(),
            publish_failed.get(),
            missing.len()
        ),
    );
    figure(
        "client",
        format!(
            "reconnects {}, resumes {}, duplicates dropped {}, gaps {}, heartbeats missed {}",
            stats.reconnects,
            stats.resumes,
            stats.duplicates_dropped,
            stats.gaps,
            stats.heartbeats_missed
        ),
    );
    figure(
        "server",
        format!("open connections {open} at the end; gauges {gauges:?}"),
    );
    figure(
        "server RSS KiB",
        format!(
            "{rss0} (pid {pid0}, baseline) -> {rss1} (pid {pid1}, {since_restart} faults since its \
             last restart); highest after any fault {rss_max}"
        ),
    );

    assert_eq!(lost, 0, "events lost: {seqs:?}");
    assert_eq!(duplicated, 0, "events duplicated: {seqs:?}");
    assert_eq!(stats.gaps, 0, "the client reported a gap");
    assert!(
        missing.is_empty(),
        "published but never received: {missing:?}"
    );
    assert_eq!(client.state().state, ConnectivityState::Ready);
    assert!(
        open <= PAGE_CONNECTIONS,
        "the server still holds {open} connections for one page"
    );
    assert!(
        rss1 <= rss0 + rss0 / 2 + RSS_SLACK_KB,
        "server RSS {rss0} KiB -> {rss1} KiB"
    );
    client.close();
}
