//! The demo server: [`keepalive_server`] with a feed, fault injection, counters and the
//! dashboard — the library's first user, built on its public API only.
//!
//! The binary (`cargo run --release -p server -- [flags]`) is a thin shell: flags and the
//! TOML file ([`config`]) → [`Demo`] → the library's builder → serve until SIGTERM/SIGINT
//! (or a chaos RESTART, exit code [`RESTART_EXIT_CODE`]).
//!
//! # Layout
//! - [`config`]: the flags: the library's `Settings` and `BrowserOptions`, plus
//!   [`settings::DemoSettings`].
//! - [`feed`]: `keepalive.demo.v1.Feed` — Subscribe (a resumable stream), Publish
//!   ([`publish`]), Stats ([`counters`]), Chaos ([`chaos`]).
//! - [`ticker`]: `--tick-interval`, events without a client.
//! - [`static_files`]: the dashboard's built page, an axum fallback next to `/metrics`.
//! - [`Demo`]: opens the log and puts the parts on a builder.

pub mod chaos;
pub mod config;
pub mod counters;
pub mod feed;
pub mod publish;
pub mod settings;
pub mod static_files;
pub mod ticker;

pub use config::Config;

use chaos::Chaos;
use counters::{Counters, DemoStats};
use demo_proto::v1::Event;
use feed::FeedService;
use keepalive_server::browser::{BrowserKeepalive, Replica};
use keepalive_server::log::{EventLog, FileLog, MemoryLog};
use keepalive_server::redis::{RedisLog, RedisLogOptions, RedisStore};
use keepalive_server::{Builder, FaultInjector, Server};
use static_files::StaticFiles;
use std::sync::Arc;
use tokio::sync::watch;

/// The exit code of a server that stopped to be restarted (chaos RESTART): `EX_TEMPFAIL`,
/// "try again". `cargo xtask demo` starts the server again when it exits with it.
pub const RESTART_EXIT_CODE: u8 = 75;

/// The demo's parts, ready to be put on a server.
#[derive(Debug)]
pub struct Demo {
    /// Sessions, heartbeats and the feed's resumable streams.
    pub browser: BrowserKeepalive,
    /// The feed's log: memory, or `--event-log FILE`.
    pub log: Arc<dyn EventLog<Event>>,
    /// The feed's and chaos's counters.
    pub stats: Arc<DemoStats>,
    /// Fault injection, when `--chaos` is on.
    pub chaos: Option<Arc<Chaos>>,
    /// The Redis the replicas share (`--redis`): health says NOT_SERVING while it is away.
    pub store: Option<RedisStore>,
    faults: Arc<FaultInjector>,
    config: Config,
}

/// The name of the feed's log in Redis.
pub const FEED_LOG: &str = "demo-feed";

impl Demo {
    /// Opens the event log `config` asks for (memory or a file) and prepares the
    /// services, for a server alone; [`connect`](Self::connect) is the same with
    /// `--redis` and the replica settings.
    ///
    /// # Errors
    /// An unusable event log file, or `--redis` (which needs [`connect`](Self::connect)),
    /// in one line.
    pub fn open(config: &Config) -> Result<Demo, String> {
        if config.replica.redis.is_some() {
            return Err("--redis: the demo must be opened with Demo::connect".into());
        }
        let replica =
            Replica::single().map_err(|e| format!("no randomness for a session key: {e}"))?;
        Self::assemble(config, Self::local_log(config)?, replica, None)
    }

    /// Opens what `config` asks for — the replica (session secret, shared sessions) and
    /// the feed's log (in Redis with `--redis`, else memory or a file) — and prepares the
    /// services.
    ///
    /// # Errors
    /// Bad settings, an unusable log, or Redis not reachable, in one line.
    pub async fn connect(config: &Config) -> Result<Demo, String> {
        let replica = config.replica.replica().await?;
        match &config.replica.redis {
            Some(url) => {
                let store = RedisStore::new(url).map_err(|e| e.0)?;
                let options = RedisLogOptions {
                    ring_capacity: config.demo.replay_capacity,
                    retention: config.demo.replay_capacity,
                    ..RedisLogOptions::default()
                };
                let log = RedisLog::<Event>::open(&store, FEED_LOG, options)
                    .await
                    .map_err(|e| e.0)?;
                Self::assemble(config, log, replica, Some(store))
            }
            None => Self::assemble(config, Self::local_log(config)?, replica, None),
        }
    }

    fn local_log(config: &Config) -> Result<Arc<dyn EventLog<Event>>, String> {
        let demo = &config.demo;
        Ok(match &demo.event_log {
            Some(path) => {
                Arc::new(FileLog::<Event>::open(path, demo.replay_capacity).map_err(|e| e.0)?)
            }
            None => Arc::new(MemoryLog::<Event>::new(demo.replay_capacity)),
        })
    }

    fn assemble(
        config: &Config,
        log: Arc<dyn EventLog<Event>>,
        replica: Replica,
        store: Option<RedisStore>,
    ) -> Result<Demo, String> {
        let demo = &config.demo;
        let browser = BrowserKeepalive::replicated(config.browser, replica);
        let stats = Arc::new(DemoStats::default());
        let faults = Arc::new(FaultInjector::default());
        let chaos = demo
            .chaos
            .then(|| Chaos::new(faults.clone(), browser.clone(), stats.clone()));
        Ok(Demo {
            browser,
            log,
            stats,
            chaos,
            store,
            faults,
            config: config.clone(),
        })
    }

    /// The feed service, counting with `transport` (the server's transport counters).
    pub fn feed(&self, transport: Arc<keepalive_server::TransportStats>) -> FeedService {
        FeedService {
            browser: self.browser.clone(),
            log: self.log.clone(),
            counters: self.counters(transport),
            stats: self.stats.clone(),
            chaos: self.chaos.clone().zip(self.config.demo.chaos_token.clone()),
        }
    }

    fn counters(&self, transport: Arc<keepalive_server::TransportStats>) -> Counters {
        Counters {
            transport,
            browser: self.browser.clone(),
            demo: self.stats.clone(),
            log: self.log.clone(),
        }
    }

    /// A builder with the configured settings and every part of the demo on it: the
    /// browser keepalive, the feed, the fault injector (with `--chaos`), `/metrics` and
    /// the dashboard's files.
    ///
    /// # Errors
    /// A setting the library refuses, or an unusable TLS file, in one line.
    pub fn builder(&self) -> Result<Builder, keepalive_server::Error> {
        let mut builder = Server::builder()
            .settings(&self.config.server)?
            .browser_keepalive(self.browser.clone())
            .file_descriptor_set(demo_proto::FILE_DESCRIPTOR_SET);
        if self.chaos.is_some() {
            builder = builder.fault_injector(self.faults.clone());
        }
        if let Some(store) = &self.store {
            builder = builder.serving_while(store.reachable());
        }
        let feed = self
            .feed(builder.stats())
            .into_server()
            .max_decoding_message_size(self.config.server.limits.max_recv_message_size);
        let registry = Arc::new(self.counters(builder.stats()).registry());
        let files = StaticFiles::new(self.config.demo.web_root());
        Ok(builder
            .add_service(feed)
            .axum(counters::metrics_route(registry).merge(files.router())))
    }

    /// Says where the dashboard's files come from (in the log).
    pub fn log_web_root(&self) {
        let root = self.config.demo.web_root();
        match root {
            Some(dir) if dir.join("index.html").is_file() => {
                tracing::info!("dashboard: served at / (files in {})", dir.display());
            }
            Some(dir) => tracing::warn!(
                "dashboard: {} has no index.html; / says how to build it",
                dir.display()
            ),
            None => tracing::info!("dashboard: not built (no --web-root, no web/dist here)"),
        }
    }

    /// Starts the ticker if `--tick-interval` asks for it, until `stop` turns true.
    pub fn start_ticker(&self, stop: watch::Receiver<bool>) {
        if let Some(every) = self.config.demo.tick_interval {
            ticker::spawn(self.log.clone(), self.stats.clone(), every, stop);
        }
    }

    /// Completes when chaos RESTART asks for a restart (never without `--chaos`).
    pub async fn restart_requested(&self) {
        match &self.chaos {
            Some(chaos) => chaos.restart_requested().await,
            None => std::future::pending().await,
        }
    }
}
