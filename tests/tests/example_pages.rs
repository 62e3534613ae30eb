//! The example's two pages — Rust (its tonic client over `keepalive_client::Channel`) and
//! TypeScript (its connect-es client over the keepalive transport) — in headless Chromium
//! against the real example server, through a proxy that can go half-open:
//!
//! - a unary call retried per its declared policy (the server fails the first two Quote
//!   calls UNAVAILABLE; the third answers);
//! - a finite stream (History) ends without a reconnect;
//! - the server killed: noticed within Time + Timeout;
//! - restarted on the same port (same files): READY again, the stream resumed;
//! - the proxy stalled (sockets open, nothing moves): noticed within Time + Timeout,
//!   recovered when it moves again;
//! - through all of it, the Watch stream's ticks are 1, 2, 3… without a gap or a
//!   duplicate.
//!
//! Needs the built pages (`cargo xtask test` builds them first and sets
//! `KEEPALIVE_PAGES_E2E=require` and `KEEPALIVE_PAGES_DIST`); without them the test says
//! what is missing and passes.

mod webdriver;

use fantoccini::Client;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;
use testkit::Proxy;
use testkit::chromedriver::{self, ChromeDriver};
use testkit::{self as server, ServerProcess};
use tokio::time::Instant;

const REQUIRE_ENV: &str = "KEEPALIVE_PAGES_E2E";
const DIST_ENV: &str = "KEEPALIVE_PAGES_DIST";
/// The pages' keepalive Time and Timeout (from the URL).
const TIME_MS: f64 = 1000.0;
const TIMEOUT_MS: f64 = 1000.0;
/// What detection may take beyond Time + Timeout on a busy 2-core machine.
const MARGIN_MS: f64 = 1000.0;

fn dist() -> Result<PathBuf, String> {
    let dist = std::env::var_os(DIST_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| server::target_dir().join("prices-pages"));
    for page in ["rust", "ts"] {
        if !dist.join(page).join("index.html").is_file() {
            return Err(format!(
                "the example's pages are not built ({} has no {page}/index.html): run \
                 `cargo xtask test`",
                dist.display()
            ));
        }
    }
    Ok(dist)
}

/// The page's test hooks (`window.__prices`).
struct Page<'a> {
    browser: &'a Client,
    name: &'static str,
}

impl Page<'_> {
    async fn js(&self, script: &str) -> Value {
        self.browser
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{}: script failed ({e}): {script}", self.name))
    }

    /// Runs `call` (an expression returning a promise) and waits for its value.
    async fn call(&self, call: &str) -> Value {
        let script = format!(
            "const done = arguments[0]; ({call}).then(done, e => done({{ error: String(e) }}));"
        );
        self.browser
            .execute_async(&script, vec![])
            .await
            .unwrap_or_else(|e| panic!("{}: async script failed ({e}): {call}", self.name))
    }

    async fn state(&self) -> (String, f64) {
        let v = self
            .js("return window.__prices ? window.__prices.state() : { state: 'LOADING', changedAt: 0 };")
            .await;
        (
            v["state"].as_str().unwrap_or_default().to_owned(),
            v["changedAt"].as_f64().unwrap_or_default(),
        )
    }

    async fn ticks(&self) -> Vec<u64> {
        let v = self
            .js("return window.__prices ? window.__prices.ticks() : [];")
            .await;
        v.as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default()
    }

    async fn stats(&self) -> Value {
        self.js("return window.__prices.stats();").await
    }

    async fn now(&self) -> f64 {
        self.js("return window.__prices.now();")
            .await
            .as_f64()
            .unwrap_or_default()
    }

    async fn wait_for<T, F, Fut>(&self, what: &str, timeout: Duration, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        if let Some(v) = webdriver::poll(timeout, Duration::from_millis(25), check).await {
            return v;
        }
        let log = self
            .browser
            .issue_cmd(webdriver::BrowserLog)
            .await
            .unwrap_or_default();
        panic!(
            "{}: timed out after {timeout:?} waiting for {what}; state {:?}, ticks {:?}\nbrowser log: {log:#}",
            self.name,
            self.state().await,
            self.ticks().await
        );
    }

    async fn wait_state(&self, want: &str, timeout: Duration) {
        self.wait_for(want, timeout, || async {
            (self.state().await.0 == want).then_some(())
        })
        .await;
    }

    /// Waits until the state leaves READY; returns how long after `mark` (the page's
    /// clock) it did.
    async fn wait_not_ready(&self, mark: f64, what: &str) -> f64 {
        let changed = self
            .wait_for(what, Duration::from_secs(10), || async {
                let (s, at) = self.state().await;
                (s != "READY").then_some(at)
            })
            .await;
        changed - mark
    }

    async fn wait_more_ticks(&self, n: usize) {
        let before = self.ticks().await.len();
        self.wait_for(
            &format!("{n} more ticks"),
            Duration::from_secs(20),
            || async { (self.ticks().await.len() >= before + n).then_some(()) },
        )
        .await;
    }
}

fn figure(what: &str, value: String) {
    eprintln!("FIGURE {what}: {value}");
}

async fn scenario(browser: &Client, dist: &std::path::Path, name: &'static str) {
    let data = std::env::temp_dir().join(format!("prices-pages-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let pages = dist.display().to_string();
    let data_dir = data.display().to_string();
    let args = [
        "--pages",
        &pages,
        "--data-dir",
        &data_dir,
        "--tick-interval",
        "200ms",
        "--stream-heartbeat-interval",
        "1s",
        "--min-ping-interval",
        "100ms",
        "--permit-keepalive-without-stream",
    ];
    let mut first = args.to_vec();
    first.extend(["--fail-quotes", "2"]);
    let mut srv = ServerProcess::start_prices(&first).await;
    let addr = srv.addr();
    let proxy = Proxy::start(addr).await;
    let page = Page { browser, name };
    let url = format!(
        "{}/{name}/?keepaliveTimeMs={TIME_MS}&keepaliveTimeoutMs={TIMEOUT_MS}",
        proxy.url()
    );
    browser.goto(&url).await.expect("open the page");
    page.wait_state("READY", Duration::from_secs(30)).await;
    // History below asks for the last 5: the log holds them once 5 ticks arrived.
    page.wait_more_ticks(5).await;

    // A unary call, retried per its declared policy: two UNAVAILABLE, then the answer.
    let quote = page.call("window.__prices.quote('ACME')").await;
    assert!(quote["error"].is_null(), "{name}: quote failed: {quote}");
    assert!(
        quote["sequence"].as_u64().unwrap_or(0) >= 1,
        "{name}: {quote}"
    );
    srv.assert_metric("prices_quotes_failed_total", 2.0).await;
    srv.assert_metric("prices_quotes_total", 1.0).await;
    figure(
        &format!("{name} page: Quote"),
        "3 attempts (2 UNAVAILABLE, retried per policy), answered".into(),
    );

    // A finite stream ends without a reconnect.
    let reconnects = page.stats().await["reconnects"].as_f64();
    let history = page.call("window.__prices.history('ACME', 5)").await;
    assert_eq!(history["end"], json!("ok"), "{name}: {history}");
    let seqs: Vec<u64> = history["ticks"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    assert_eq!(seqs.len(), 5, "{name}: {history}");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "{name}: {seqs:?}"
    );
    let stats = page.stats().await;
    assert_eq!(stats["reconnects"].as_f64(), reconnects, "{name}: {stats}");
    assert_eq!(stats["ready"], json!(true), "{name}: {stats}");

    // Kill: noticed within Time + Timeout.
    let mark = page.now().await;
    srv.kill();
    let killed = page
        .wait_not_ready(mark, "leaving READY after the kill")
        .await;
    figure(
        &format!("{name} page: kill → left READY ms"),
        format!("{killed:.0} (Time + Timeout = {} ms)", TIME_MS + TIMEOUT_MS),
    );
    assert!(
        killed <= TIME_MS + TIMEOUT_MS + MARGIN_MS,
        "{name}: {killed}"
    );
    let before = page.ticks().await.len();

    // Restart on the same port, the same files: READY again, ticks resume.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut again = args.to_vec();
    let listen = addr.to_string();
    again.extend(["--listen", &listen]);
    let restarted = Instant::now();
    let srv = ServerProcess::start_prices(&again).await;
    page.wait_state("READY", Duration::from_secs(30)).await;
    let to_ready = restarted.elapsed();
    page.wait_for("a resumed tick", Duration::from_secs(20), || async {
        (page.ticks().await.len() > before).then_some(())
    })
    .await;
    figure(
        &format!("{name} page: restart → READY, first resumed tick ms"),
        format!(
            "{:.0}, {:.0}",
            to_ready.as_secs_f64() * 1000.0,
            restarted.elapsed().as_secs_f64() * 1000.0
        ),
    );
    page.wait_more_ticks(3).await;

    // Stall (half-open): noticed within Time + Timeout, recovered when bytes move again.
    let mark = page.now().await;
    proxy.stall();
    let stalled = page
        .wait_not_ready(mark, "leaving READY after the stall")
        .await;
    figure(
        &format!("{name} page: stall → left READY ms"),
        format!(
            "{stalled:.0} (Time + Timeout = {} ms)",
            TIME_MS + TIMEOUT_MS
        ),
    );
    assert!(
        stalled <= TIME_MS + TIMEOUT_MS + MARGIN_MS,
        "{name}: {stalled}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.resume();
    page.wait_state("READY", Duration::from_secs(30)).await;
    page.wait_more_ticks(3).await;

    // Through all of it: 1, 2, 3… once each.
    let ticks = page.ticks().await;
    let first = *ticks.first().expect("ticks");
    let expected: Vec<u64> = (first..first + ticks.len() as u64).collect();
    assert_eq!(ticks, expected, "{name}: a gap or a duplicate");
    let stats = page.stats().await;
    assert_eq!(stats["gaps"].as_f64(), Some(0.0), "{name}: {stats}");
    figure(
        &format!("{name} page: ticks"),
        format!(
            "{} contiguous ({first}..{}), gaps 0, {stats}",
            ticks.len(),
            first + ticks.len() as u64 - 1
        ),
    );
    drop((srv, proxy));
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn the_example_pages_keep_their_streams_alive() {
    let dist = match dist() {
        Ok(d) => d,
        Err(why) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "require") => {
            panic!("{REQUIRE_ENV}=require but {why}")
        }
        Err(why) => {
            eprintln!("example_pages skipped: {why}");
            return;
        }
    };
    let chromedriver =
        chromedriver::find_chromedriver().expect("chromedriver: cargo xtask setup --browser");
    let chromium = chromedriver::find_chromium().expect("chromium: cargo xtask setup --browser");
    let driver = ChromeDriver::start(&chromedriver).expect("start chromedriver");
    let browser = webdriver::session(&driver, &chromium, (1000, 800), &[]).await;
    for name in ["rust", "ts"] {
        scenario(&browser, &dist, name).await;
    }
    let _ = browser.close().await;
}
