//! A third-party service kept alive by `keepalive-server`: a price ticker with its own
//! proto (`prices.v1`), its own service code, and the library's builder around it — only
//! the library's public API.
//!
//! - `Quote` (unary) answers the latest tick of a symbol.
//! - `Watch` (server streaming) is resumable: one call of
//!   [`BrowserKeepalive::resumable`] over the symbol's log, so a client that reconnects
//!   (after a kill, a restart, a deploy) gets every tick it missed, once, in order.
//! - Each symbol is its own [`EventLog`] (sequences 1, 2, 3… per symbol): a
//!   [`MemoryLog`], or a [`FileLog`] under `--data-dir` so a restarted server continues
//!   them.
//! - A market task per symbol publishes a random-walk tick every `--tick-interval`.
//!
//! # Layout
//! - [`Cli`]: the flags — the library's `Settings` and `BrowserOptions` flattened, plus
//!   this server's own three.
//! - [`Prices`]: the service.
//! - [`market`]: the ticks.
//! - [`builder`]: the server, put together.

pub mod market;
pub mod pages;

use clap::Parser;
use keepalive_proto::resume::{Frame, ResumableMessage};
use keepalive_proto::v1::Welcome;
use keepalive_server::browser::{BrowserKeepalive, BrowserOptions, ResumableStream, StreamOptions};
use keepalive_server::log::{EventLog, FileLog, MemoryLog};
use keepalive_server::metrics::{self, Family, Kind, Registry};
use keepalive_server::{Builder, Error, Server, Settings};
use prices_proto::v1::prices_server::{Prices as PricesApi, PricesServer};
use prices_proto::v1::{
    HistoryRequest, PriceTick, QuoteRequest, QuoteResponse, WatchRequest, WatchResponse,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Request, Response, Status};

/// The symbols this market trades.
pub const SYMBOLS: [&str; 3] = ["ACME", "GLOBEX", "INITECH"];

/// Ticks kept per symbol for resuming clients.
pub const REPLAY_CAPACITY: usize = 10_000;

/// The flags of `prices-server`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "prices-server",
    about = "An example price ticker kept alive by keepalive-server"
)]
pub struct Cli {
    /// TOML file with any of these settings (snake_case names); flags win.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8090].
    #[arg(long, value_name = "ADDR", required = false)]
    pub listen: SocketAddr,
    /// Keep each symbol's ticks in a file in this directory, so a restart continues them [default: memory].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Publish a tick of every symbol this often [default: 1s].
    #[arg(long, value_name = "DUR", value_parser = keepalive_server::cli::parse_duration, required = false)]
    pub tick_interval: Duration,
    /// Serve the example's built pages from this directory at `/` (`/rust/`, `/ts/`) [default: none].
    #[arg(long, value_name = "DIR")]
    pub pages: Option<PathBuf>,
    /// Answer the first N Quote calls UNAVAILABLE (with grpc-retry-pushback-ms 50), to try a client's retries [default: 0].
    #[arg(long, value_name = "N", required = false)]
    pub fail_quotes: u64,
    /// The transport.
    #[command(flatten)]
    pub server: Settings,
    /// Browser sessions and resumable streams.
    #[command(flatten)]
    pub browser: BrowserOptions,
}

impl Default for Cli {
    fn default() -> Self {
        Cli {
            config: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8090)),
            data_dir: None,
            tick_interval: Duration::from_secs(1),
            pages: None,
            fail_quotes: 0,
            server: Settings::default(),
            browser: BrowserOptions::default(),
        }
    }
}

keepalive_server::counters! {
    /// What the price service counts (next to the library's transport and browser
    /// counters on the same registry, at `/metrics`).
    pub struct PricesStats {
        /// Quotes answered.
        counter quotes,
        /// Quotes answered UNAVAILABLE on purpose (`--fail-quotes`).
        counter quotes_failed,
        /// Watch streams opened.
        counter watches,
    }
}

/// The Prometheus families of [`PricesStats`] (prefix `prices`).
pub const FAMILIES: &[Family] = &[
    metrics::family(
        "quotes",
        Kind::Counter,
        "Quotes answered.",
        "",
        &[("quotes", "")],
    ),
    metrics::family(
        "watches",
        Kind::Counter,
        "Watch streams opened.",
        "",
        &[("watches", "")],
    ),
];

/// The `prices.v1.Prices` service.
#[derive(Debug, Clone)]
pub struct Prices {
    browser: BrowserKeepalive,
    logs: Arc<HashMap<&'static str, Arc<dyn EventLog<PriceTick>>>>,
    stats: Arc<PricesStats>,
    /// Quote calls still to answer UNAVAILABLE (`--fail-quotes`).
    fail_quotes: Arc<std::sync::atomic::AtomicU64>,
}

impl Prices {
    /// The service over one log per symbol of [`SYMBOLS`], in memory or under `data_dir`.
    ///
    /// # Errors
    /// A log file that cannot be opened.
    pub fn open(
        browser: BrowserKeepalive,
        data_dir: Option<&std::path::Path>,
    ) -> Result<Self, Error> {
        let mut logs: HashMap<&'static str, Arc<dyn EventLog<PriceTick>>> = HashMap::new();
        for symbol in SYMBOLS {
            let log: Arc<dyn EventLog<PriceTick>> = match data_dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| Error(format!("--data-dir {}: {e}", dir.display())))?;
                    let path = dir.join(format!("{symbol}.log"));
                    Arc::new(FileLog::open(&path, REPLAY_CAPACITY).map_err(|e| Error(e.0))?)
                }
                None => Arc::new(MemoryLog::new(REPLAY_CAPACITY)),
            };
            logs.insert(symbol, log);
        }
        Ok(Prices {
            browser,
            logs: Arc::new(logs),
            stats: Arc::new(PricesStats::default()),
            fail_quotes: Arc::default(),
        })
    }

    /// Answers the next `n` Quote calls UNAVAILABLE (a client with a retry policy retries).
    pub fn fail_next_quotes(&self, n: u64) {
        self.fail_quotes
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// The service's counters.
    pub fn stats(&self) -> &Arc<PricesStats> {
        &self.stats
    }

    /// The log of `symbol`.
    pub fn log(&self, symbol: &str) -> Result<&Arc<dyn EventLog<PriceTick>>, Status> {
        self.logs
            .get(symbol)
            .ok_or_else(|| Status::not_found(format!("unknown symbol {symbol:?}")))
    }

    /// Every symbol's log.
    pub fn logs(&self) -> impl Iterator<Item = (&'static str, &Arc<dyn EventLog<PriceTick>>)> {
        self.logs.iter().map(|(s, l)| (*s, l))
    }
}

#[tonic::async_trait]
impl PricesApi for Prices {
    async fn quote(
        &self,
        request: Request<QuoteRequest>,
    ) -> Result<Response<QuoteResponse>, Status> {
        use std::sync::atomic::Ordering::Relaxed;
        let failing = self
            .fail_quotes
            .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            PricesStats::inc(&self.stats.quotes_failed);
            let mut status = Status::unavailable("failing on purpose (--fail-quotes)");
            status.metadata_mut().insert(
                "grpc-retry-pushback-ms",
                tonic::metadata::MetadataValue::from_static("50"),
            );
            return Err(status);
        }
        let log = self.log(&request.get_ref().symbol)?;
        let tick = market::last_tick(log.as_ref())
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?
            .ok_or_else(|| Status::unavailable("no tick yet"))?;
        PricesStats::inc(&self.stats.quotes);
        Ok(Response::new(QuoteResponse { tick: Some(tick) }))
    }

    type WatchStream = ResumableStream<WatchResponse>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let req = request.into_inner();
        let log = self.log(&req.symbol)?;
        let resume = req.resume.unwrap_or_default();
        let stream = self
            .browser
            .resumable(log, resume, StreamOptions::default())?;
        PricesStats::inc(&self.stats.watches);
        Ok(Response::new(stream))
    }

    type HistoryStream = tokio_stream::Iter<std::vec::IntoIter<Result<WatchResponse, Status>>>;

    async fn history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<Self::HistoryStream>, Status> {
        let req = request.into_inner();
        let log = self.log(&req.symbol)?;
        let resume = req.resume.unwrap_or_default();
        let head = log.head();
        let log_id = log.log_id().to_string();
        let start = match resume.after_sequence {
            Some(after) if resume.log_id.is_empty() || resume.log_id == log_id => after + 1,
            _ => head.saturating_sub(u64::from(req.last.min(1000))) + 1,
        };
        let wanted = usize::try_from((head + 1).saturating_sub(start)).unwrap_or(usize::MAX);
        let batch = log
            .read_after(start.saturating_sub(1), wanted)
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        let welcome = Welcome {
            resume_token: String::new(),
            head_sequence: head,
            stream_heartbeat_interval_ms: 0,
            log_id,
            next_sequence: start,
            server: String::new(),
        };
        let mut messages = vec![WatchResponse::from_frame(Frame::Welcome(welcome))];
        messages.extend(batch.gap.map(|g| WatchResponse::from_frame(Frame::Gap(g))));
        messages.extend(
            batch
                .events
                .into_iter()
                .map(|t| WatchResponse::from_frame(Frame::Event(t))),
        );
        // Then the stream ends with status OK: it is complete.
        let messages: Vec<_> = messages.into_iter().map(Ok).collect();
        Ok(Response::new(tokio_stream::iter(messages)))
    }
}

/// The server: keepalive and enforcement from the flags, browser keepalive, the prices
/// service with its reflection descriptors, axum routes next to it (`/healthz`, and
/// `/metrics` with the library's counters and the service's on one registry). Starts the
/// market.
///
/// # Errors
/// Invalid settings, an unusable TLS or log file.
pub fn builder(cli: &Cli) -> Result<Builder, Error> {
    let browser = BrowserKeepalive::new(cli.browser);
    let prices = Prices::open(browser.clone(), cli.data_dir.as_deref())?;
    prices.fail_next_quotes(cli.fail_quotes);
    for (symbol, log) in prices.logs() {
        tokio::spawn(market::run(symbol, log.clone(), cli.tick_interval));
    }
    let tick = prices.logs().map(|(_, log)| log.head()).max().unwrap_or(0);
    tracing::info!(symbols = ?SYMBOLS, last_sequence = tick, "market open");
    let max = cli.server.limits.max_recv_message_size;
    let builder = Server::builder()
        .settings(&cli.server)?
        .browser_keepalive(browser.clone());
    let mut registry = Registry::default();
    builder.register_metrics(&mut registry);
    browser.register_metrics(&mut registry);
    let stats = prices.stats().clone();
    metrics::register(&mut registry, "prices", FAMILIES, move || stats.snapshot());
    let registry = Arc::new(registry);
    let mut routes = axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
                        metrics::render(&registry),
                    )
                }
            }),
        );
    if let Some(dir) = &cli.pages {
        routes = routes.merge(pages::router(dir.clone()));
    }
    Ok(builder
        .add_service(PricesServer::new(prices).max_decoding_message_size(max))
        .file_descriptor_set(prices_proto::FILE_DESCRIPTOR_SET)
        .axum(routes))
}

/// The README's chapter "Use it in your own server", compiled: its snippets use this
/// crate and the library as a user would.
#[cfg(doctest)]
#[doc = include_str!("../../../../README.md")]
pub struct ReadmeDoctests;
