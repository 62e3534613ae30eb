//! A WebDriver session in headless Chromium for the browser tests (`dashboard_e2e.rs`,
//! `example_pages.rs`, `chromium_tls.rs`): the capabilities they share, and the
//! browser-log command fantoccini does not have.

#![allow(dead_code)] // Not every test file uses every helper.

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use testkit::ChromeDriver;

/// Opens a session of `driver` on `chromium` with a `width`×`height` window, the console
/// kept for [`BrowserLog`], and `extra` Chromium flags.
pub async fn session(
    driver: &ChromeDriver,
    chromium: &Path,
    (width, height): (u32, u32),
    extra: &[&str],
) -> Client {
    let mut args = driver.chrome_args(width, height);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": chromium.display().to_string(), "args": args }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .expect("a WebDriver session in headless Chromium")
}

/// `POST /session/{id}/se/log {"type":"browser"}`: ChromeDriver's browser log (console
/// messages, uncaught exceptions, failed loads) since the last call.
#[derive(Debug)]
pub struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// Calls `check` every `every` until it returns `Some` (that value) or `timeout` has
/// passed (`None`: the caller says what the page showed).
pub async fn poll<T, F, Fut>(timeout: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}
