//! The dashboard end to end, in a real headless Chromium driven over WebDriver: the built
//! page (`web/dist`) served by the real server, with chaos on.
//!
//! It waits for READY, sees events arrive, applies new client settings (a new client
//! that resumes the feed), clicks "Drop connections", sees the state leave READY and come
//! back, and checks that the feed's sequence numbers have no gap and no duplicate; then
//! the same for "Stall". It saves a screenshot to
//! `<target>/dashboard.png`, writes the figures it measured (page load → READY, time to
//! notice and to recover) to `<target>/dashboard-e2e.txt`, and fails on any console
//! error of the page.
//!
//! Needs the built page and the browser tools. `cargo xtask test` builds the page first
//! and sets `KEEPALIVE_DASHBOARD_E2E=require`, so a missing piece fails the run; without
//! that variable (a plain `cargo test`) the test says what is missing and passes.
//! `KEEPALIVE_WEB_DIST` names the page's directory (default `<workspace>/web/dist`).

mod webdriver;

use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use testkit::chromedriver::{self, ChromeDriver};
use testkit::{self as server, ServerProcess};

/// Set to `require` to make missing prerequisites a failure.
const REQUIRE_ENV: &str = "KEEPALIVE_DASHBOARD_E2E";
/// The built page's directory.
const DIST_ENV: &str = "KEEPALIVE_WEB_DIST";
const TOKEN: &str = "e2e-chaos-token";
/// A stall must outlast Time + Timeout (1 s + 2 s, set by the test) to be noticed.
const STALL_SECS: u32 = 6;
const WINDOW: (u32, u32) = (1440, 1000);

/// What the test needs, or why it cannot run.
struct Prerequisites {
    dist: PathBuf,
    chromedriver: PathBuf,
    chromium: PathBuf,
}

fn prerequisites() -> Result<Prerequisites, String> {
    let dist = std::env::var_os(DIST_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| server::workspace_root().join("web").join("dist"));
    if !dist.join("index.html").is_file() {
        return Err(format!(
            "the page is not built ({} has no index.html): run `trunk build --release` \
             at the repository root, or `cargo xtask test`",
            dist.display()
        ));
    }
    let chromedriver = chromedriver::find_chromedriver()
        .ok_or("no chromedriver: run `cargo xtask setup --browser`")?;
    let chromium =
        chromedriver::find_chromium().ok_or("no chromium: run `cargo xtask setup --browser`")?;
    Ok(Prerequisites {
        dist,
        chromedriver,
        chromium,
    })
}

/// Runs `script` in the page and returns its value.
async fn js(browser: &Client, script: &str) -> Value {
    browser
        .execute(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("script failed ({e}): {script}"))
}

async fn state(browser: &Client) -> (String, u64) {
    let v = js(
        browser,
        "const s = document.getElementById('state'); return [s.dataset.state, Number(s.dataset.lost)];",
    )
    .await;
    (
        v[0].as_str().unwrap_or_default().to_owned(),
        v[1].as_u64().unwrap_or_default(),
    )
}

/// The feed's sequence numbers, newest first.
async fn feed(browser: &Client) -> Vec<u64> {
    let v = js(
        browser,
        "return Array.from(document.querySelectorAll('#feed-list li')).map(li => Number(li.dataset.seq));",
    )
    .await;
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

/// Polls `check` every 50 ms until it returns `Some`; after `timeout`, panics with `what`
/// and what the page shows (state, timeline, browser log).
async fn wait_for<T, F, Fut>(browser: &Client, what: &str, timeout: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match webdriver::poll(timeout, Duration::from_millis(50), check).await {
        Some(v) => v,
        None => panic!(
            "timed out after {timeout:?} waiting for {what}\n{}",
            diagnose(browser).await
        ),
    }
}

/// The page's state, timeline and browser log, for a failure message.
async fn diagnose(browser: &Client) -> String {
    let (state, lost) = state(browser).await;
    let timeline = timeline(browser).await;
    let log = browser
        .issue_cmd(webdriver::BrowserLog)
        .await
        .unwrap_or_default();
    format!("state {state} (left READY {lost} times)\ntimeline:\n{timeline}\nbrowser log: {log:#}")
}

/// The timeline's entries, oldest first.
async fn timeline(browser: &Client) -> String {
    js(
        browser,
        "return Array.from(document.querySelectorAll('#timeline-list li')).map(li => li.textContent).reverse().join('\\n');",
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_owned()
}

/// Asserts the feed is one run of consecutive sequence numbers (newest first): nothing
/// lost, nothing twice, and the page's own gap counter is 0.
async fn assert_feed_contiguous(browser: &Client, after: &str) {
    let seqs = feed(browser).await;
    assert!(seqs.len() >= 3, "too few events after {after}: {seqs:?}");
    for pair in seqs.windows(2) {
        assert_eq!(
            pair[0],
            pair[1] + 1,
            "after {after} the feed has a gap or a duplicate between #{} and #{}: {seqs:?}",
            pair[1],
            pair[0]
        );
    }
    let gaps = js(
        browser,
        "return document.getElementById('c-gaps').textContent;",
    )
    .await;
    assert_eq!(gaps, json!("0"), "the page counted gaps after {after}");
}

/// Sets the input `id` to `text`, as a person would (clear, type).
async fn type_into(browser: &Client, id: &str, text: &str) {
    let input = browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("no #{id}: {e}"));
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

/// Clicks `button` and follows the state: out of READY (`lost` grows), back to READY,
/// new events after the recovery. Returns (time to notice, time to recover).
async fn break_and_recover(browser: &Client, button: &str) -> (Duration, Duration) {
    let (_, lost_before) = state(browser).await;
    let newest_before = feed(browser).await.first().copied().unwrap_or(0);
    let clicked = Instant::now();
    browser
        .find(Locator::Id(button))
        .await
        .unwrap_or_else(|e| panic!("no #{button}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("cannot click #{button}: {e}"));
    wait_for(
        browser,
        &format!("the state to leave READY after #{button}"),
        Duration::from_secs(20),
        || async {
            let (_, lost) = state(browser).await;
            (lost > lost_before).then_some(())
        },
    )
    .await;
    let noticed = clicked.elapsed();
    wait_for(
        browser,
        &format!("READY again after #{button}"),
        Duration::from_secs(30),
        || async { (state(browser).await.0 == "READY").then_some(()) },
    )
    .await;
    let recovered = clicked.elapsed();
    wait_for(
        browser,
        &format!("new events after #{button}"),
        Duration::from_secs(15),
        || async {
            let newest = feed(browser).await.first().copied().unwrap_or(0);
            (newest >= newest_before + 2).then_some(())
        },
    )
    .await;
    (noticed, recovered)
}

#[tokio::test]
async fn dashboard_recovers_from_drop_and_stall() {
    let started = Instant::now();
    let prereq = match prerequisites() {
        Ok(p) => p,
        Err(why) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "require") => {
            panic!("{REQUIRE_ENV}=require but {why}")
        }
        Err(why) => {
            eprintln!("dashboard_e2e skipped: {why}");
            return;
        }
    };
    let event_log = std::env::temp_dir().join(format!("dashboard-e2e-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&event_log);
    let dist = prereq.dist.display().to_string();
    let log = event_log.display().to_string();
    let srv = ServerProcess::builder()
        .args(&[
            "--web-root",
            &dist,
            "--chaos",
            "--chaos-token",
            TOKEN,
            // A tick every 1.5 s leaves room for a heartbeat between two ticks once the
            // page's Time is 1 s (set below), so the RTT sparkline fills.
            "--tick-interval",
            "1500ms",
            "--stream-heartbeat-interval",
            "5s",
            "--min-ping-interval",
            "500ms",
            "--permit-keepalive-without-stream",
            "--event-log",
            &log,
        ])
        .echo(false)
        .start()
        .await;
    let driver = ChromeDriver::start(&prereq.chromedriver).expect("start chromedriver");
    let browser = webdriver::session(&driver, &prereq.chromium, WINDOW, &[]).await;

    let page = format!("{}/#chaos={TOKEN}", srv.url());
    browser.goto(&page).await.expect("open the dashboard");
    wait_for(&browser, "READY", Duration::from_secs(30), || async {
        (state(&browser).await.0 == "READY").then_some(())
    })
    .await;
    let ready_ms = js(&browser, "return Number(document.body.dataset.readyMs);")
        .await
        .as_f64()
        .expect("body[data-ready-ms]");
    wait_for(
        &browser,
        "three events in the feed",
        Duration::from_secs(15),
        || async { (feed(&browser).await.len() >= 3).then_some(()) },
    )
    .await;
    assert_feed_contiguous(&browser, "the start").await;

    // New settings: a new client, which resumes the feed after the last event shown.
    type_into(&browser, "s-time", "1").await;
    type_into(&browser, "s-timeout", "2").await;
    break_and_recover(&browser, "settings-apply").await;
    assert_feed_contiguous(&browser, "new settings").await;
    wait_for(
        &browser,
        "heartbeat round trips",
        Duration::from_secs(15),
        || async {
            let n = js(
                &browser,
                "return Number(document.getElementById('rtt-count').textContent);",
            )
            .await
            .as_u64()
            .unwrap_or(0);
            (n >= 2).then_some(())
        },
    )
    .await;

    let (drop_noticed, drop_recovered) = break_and_recover(&browser, "chaos-drop").await;
    assert_feed_contiguous(&browser, "drop connections").await;

    type_into(&browser, "chaos-seconds", &STALL_SECS.to_string()).await;
    let (stall_noticed, stall_recovered) = break_and_recover(&browser, "chaos-stall").await;
    assert_feed_contiguous(&browser, "stall").await;

    // Let the sparkline and the server panel catch up, and show the whole page.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let height = js(&browser, "return document.documentElement.scrollHeight;")
        .await
        .as_u64()
        .unwrap_or(u64::from(WINDOW.1));
    let height = u32::try_from(height)
        .unwrap_or(WINDOW.1)
        .clamp(WINDOW.1, 3000);
    browser
        .set_window_size(WINDOW.0, height + 100)
        .await
        .expect("resize the window");
    js(&browser, "window.scrollTo(0, 0); return true;").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = browser.screenshot().await.expect("screenshot");
    let shot = server::target_dir().join("dashboard.png");
    std::fs::write(&shot, png).expect("write the screenshot");

    let log = browser
        .issue_cmd(webdriver::BrowserLog)
        .await
        .expect("browser log");
    let entries = log.as_array().cloned().unwrap_or_default();
    let severe: Vec<&Value> = entries
        .iter()
        .filter(|e| e["level"] == json!("SEVERE"))
        .collect();
    // Failed fetches while the connections are broken on purpose are the browser's
    // network log, not errors of the page.
    let (network, errors): (Vec<&Value>, Vec<&Value>) = severe
        .into_iter()
        .partition(|e| e["source"] == json!("network"));
    let timeline = timeline(&browser).await;
    browser.close().await.expect("end the session");
    drop(driver);
    let _ = std::fs::remove_file(&event_log);
    assert!(
        errors.is_empty(),
        "console errors on the page: {errors:#?}\ntimeline:\n{timeline}"
    );

    let figures = format!(
        "page load -> READY: {ready_ms:.0} ms\n\
         drop connections: left READY after {:.0} ms, READY again after {:.0} ms\n\
         stall {STALL_SECS} s: left READY after {:.0} ms, READY again after {:.0} ms\n\
         browser network errors while broken on purpose: {}\n\
         e2e wall time: {:.1} s\n\
         screenshot: {}\n",
        drop_noticed.as_secs_f64() * 1000.0,
        drop_recovered.as_secs_f64() * 1000.0,
        stall_noticed.as_secs_f64() * 1000.0,
        stall_recovered.as_secs_f64() * 1000.0,
        network.len(),
        started.elapsed().as_secs_f64(),
        shot.display(),
    );
    let _ = std::fs::write(server::target_dir().join("dashboard-e2e.txt"), &figures);
    for line in figures.lines() {
        eprintln!("FIGURE dashboard {line}");
    }
}
