//! A one-port gRPC + gRPC-web server that applies grpc-go's keepalive `ServerParameters`
//! and `EnforcementPolicy` at the HTTP/2 frame level.
//!
//! tonic 0.14 gives no max-connection-idle, no jitter, no ping enforcement and no GOAWAY
//! debug data, so this crate owns the connection lifecycle: its own accept loop, one task
//! per connection over hyper, and a transparent frame observer on each HTTP/2 socket that
//! sees every frame header in both directions and can add frames at frame boundaries. The
//! decisions themselves (strikes, idle, age, jitter) are the sans-IO `keepalive` crate's;
//! this crate only carries them out. See `shared/KEEPALIVE.md` for the semantics.
//!
//! # Layout
//! - [`config`]: flags and the TOML file → [`Config`].
//! - [`routes`]: health, reflection, gRPC-web and CORS on one service.
//! - [`conn`]: the per-connection task ([`conn::serve`]) and its parts:
//!   - [`conn::frame`]: the few HTTP/2 frame facts needed;
//!   - [`conn::incoming`] / [`conn::outgoing`]: the observer, one per direction (sans-IO);
//!   - [`conn::io`]: the socket wrapper hyper reads and writes through;
//!   - [`conn::shared`]: state shared by the task, the socket wrapper and the streams;
//!   - [`conn::streams`]: active-stream counting at the service boundary.
//!   - [`conn::stall`]: chaos STALL at the socket.
//!   - [`conn::limit`] / [`conn::refuse`]: `--max-connections`, and refusing the ones over it.
//!   - [`conn::sock`]: the socket the observer shares with the task (TCP, or TLS's plaintext);
//!   - [`conn::tls`]: `--tls-cert`/`--tls-key`, ALPN, the TLS-to-observer bridge.
//! - [`limits`]: message and request-body size limits on every gRPC call.
//! - [`fdlimit`]: the open-file limit, raised at start.
//! - [`service`]: `keepalive.v1.Keepalive` — sessions, heartbeats judged like PINGs, the
//!   resumable event feed over an event log, publishing, stats, chaos.
//! - [`faults`]: server-wide fault injection state (chaos).
//! - [`stats`]: counters for the dashboard and `/metrics`.
//! - [`metrics`]: `GET /metrics`, those counters in the Prometheus text format.
//! - [`static_files`]: the dashboard's built page (`--web-root`), served at `/`.
//! - [`clock`]: tokio time ↔ core time.
//! - [`Server`]: bind, accept, graceful stop.

pub mod clock;
pub mod config;
pub mod conn;
pub mod faults;
pub mod fdlimit;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod service;
pub mod static_files;
pub mod stats;

pub use config::{Config, ConfigError};

use clock::Clock;
use conn::limit::ConnLimit;
use conn::{ConnContext, ConnSettings};
use faults::Faults;
use service::KeepaliveService;
use service::log::EventLog;
use static_files::StaticFiles;
use stats::Stats;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tonic_health::ServingStatus;

/// The exit code of a server that stopped to be restarted (chaos RESTART): `EX_TEMPFAIL`,
/// "try again". `cargo xtask demo` starts the server again when it exits with it.
pub const RESTART_EXIT_CODE: u8 = 75;

/// Why [`Server::serve_or_restart`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The shutdown future completed (SIGTERM, SIGINT).
    Shutdown,
    /// Chaos RESTART asked for a restart: exit with [`RESTART_EXIT_CODE`].
    Restart,
}

/// A bound server, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: Config,
    tls: Option<conn::tls::Tls>,
    stats: Arc<Stats>,
    log: Arc<dyn EventLog>,
}

impl Server {
    /// Opens the event log and binds the listen address; an unusable event log file or a
    /// port in use is a [`ConfigError`].
    pub async fn bind(config: Config) -> Result<Self, ConfigError> {
        let log = service::open_log(&config.service).map_err(|e| ConfigError(e.0))?;
        let tls = match &config.tls {
            Some(files) => Some(conn::tls::load(&files.cert, &files.key).map_err(ConfigError)?),
            None => None,
        };
        let listener = listen(config.listen)
            .map_err(|e| ConfigError(format!("cannot listen on {}: {e}", config.listen)))?;
        Ok(Server {
            listener,
            config,
            tls,
            stats: Arc::new(Stats::default()),
            log,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The server's counters.
    pub fn stats(&self) -> Arc<Stats> {
        self.stats.clone()
    }

    /// Serves until `shutdown` completes, then drains every connection: GOAWAY, in-flight
    /// streams get the shutdown grace, then the rest is closed.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<(), ConfigError> {
        self.serve_or_restart(shutdown).await.map(drop)
    }

    /// [`serve`](Self::serve), also ending (with the same drain) when chaos RESTART asks
    /// for a restart; says which of the two happened.
    pub async fn serve_or_restart(
        self,
        shutdown: impl Future<Output = ()>,
    ) -> Result<Stopped, ConfigError> {
        let Server {
            listener,
            config,
            tls,
            stats,
            log,
        } = self;
        let (health, health_service) = tonic_health::server::health_reporter();
        let (stop_tx, stop_rx) = watch::channel(false);
        let faults = Arc::new(Faults::default());
        let clock = Clock::start();
        let settings: ConnSettings = config.conn;
        let keepalive = KeepaliveService::new(
            config.service.clone(),
            settings.policy,
            log,
            service::ServerParts {
                stats: stats.clone(),
                faults: faults.clone(),
                clock,
                shutdown: stop_rx.clone(),
            },
        );
        keepalive.start_ticker();
        let routes = routes::build(
            health_service,
            keepalive,
            &config.cors_allow_origin,
            config.limits,
        )
        .map_err(ConfigError)?;
        let routes = static_files::wrap(routes, StaticFiles::new(config.web_root.clone()));
        let ctx = ConnContext {
            routes,
            stats: stats.clone(),
            clock,
            settings,
            shutdown: stop_rx,
            faults: faults.clone(),
            tls: tls.clone(),
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let addr = listener
            .local_addr()
            .map_err(|e| ConfigError(e.to_string()))?;
        tracing::info!(
            keepalive_time = ?settings.params.keepalive_time,
            keepalive_timeout = ?settings.params.keepalive_timeout,
            max_connection_idle = ?settings.params.max_connection_idle,
            max_connection_age = ?settings.params.max_connection_age,
            max_connection_age_grace = ?settings.params.max_connection_age_grace,
            min_ping_interval = ?settings.policy.min_time,
            permit_without_stream = settings.policy.permit_without_stream,
            max_ping_strikes = settings.policy.max_ping_strikes,
            "keepalive settings"
        );
        tracing::info!(
            max_connections = config.max_connections,
            max_concurrent_streams = settings.max_concurrent_streams,
            max_recv_message_size = config.limits.max_recv_message_size,
            max_send_message_size = config.limits.max_send_message_size,
            max_request_body_size = config.limits.max_request_body_size,
            first_bytes_timeout = ?settings.first_bytes_timeout,
            http1_header_read_timeout = ?settings.http1_header_read_timeout,
            "limits"
        );
        let svc = &config.service;
        tracing::info!(
            stream_heartbeat_interval = ?svc.stream_heartbeat_interval,
            max_stream_age = ?svc.max_stream_age,
            max_sessions = svc.max_sessions,
            replay_capacity = svc.replay_capacity,
            event_log = ?svc.event_log,
            tick_interval = ?svc.tick_interval,
            "service settings"
        );
        if svc.chaos {
            tracing::warn!("chaos enabled: the Chaos call can break connections on purpose");
        }
        match &config.web_root {
            Some(dir) if dir.join("index.html").is_file() => {
                tracing::info!("dashboard: {scheme}://{addr}/ (files in {})", dir.display());
            }
            Some(dir) => tracing::warn!(
                "dashboard: {} has no index.html; / says how to build it",
                dir.display()
            ),
            None => tracing::info!("dashboard: not built (no --web-root, no web/dist here)"),
        }
        if tls.is_some() {
            tracing::info!("TLS: rustls (ring), ALPN h2 and http/1.1");
        }
        tracing::info!("listening on {addr}");

        let mut tasks = JoinSet::new();
        let mut next_id = 0u64;
        let connections = ConnLimit::new(config.max_connections);
        let refusing = ConnLimit::new(conn::refuse::MAX_REFUSING);
        let mut shutdown = std::pin::pin!(shutdown);
        let mut stopped = Stopped::Shutdown;
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((sock, peer)) if faults.refusing(tokio::time::Instant::now()) => {
                        refuse(sock, peer, &stats);
                    }
                    Ok((sock, peer)) => match connections.try_acquire() {
                        Some(permit) => {
                            let _ = sock.set_nodelay(true);
                            next_id += 1;
                            let serve = conn::serve(sock, peer, next_id, ctx.clone());
                            tasks.spawn(async move {
                                serve.await;
                                drop(permit);
                            });
                        }
                        None => refuse_over_limit(sock, peer, &connections, &refusing, &stats, tls.as_ref()),
                    },
                    Err(e) => {
                        // EMFILE and friends: back off a little instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = tasks.join_next() => {}
                () = &mut shutdown => break,
                () = faults.restart_requested() => {
                    tracing::warn!("restart requested (chaos): stopping, then exit code {RESTART_EXIT_CODE}");
                    stopped = Stopped::Restart;
                    break;
                }
            }
        }

        let grace = settings.shutdown_grace;
        tracing::info!(
            connections = tasks.len(),
            ?grace,
            "shutting down: draining connections"
        );
        drop(listener);
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let _ = stop_tx.send(true);
        let drained = tokio::time::timeout(grace + Duration::from_secs(2), async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                connections = tasks.len(),
                "connections still open after the grace; closing them"
            );
            tasks.abort_all();
        }
        tracing::info!("shutdown complete");
        Ok(stopped)
    }
}

/// Listen backlog: connections the kernel completes before `accept` takes them. tokio's
/// default (1024) overflows when a few thousand clients connect at once (a restart, a
/// reconnect storm), and an overflowed handshake is only retried by the kernel seconds
/// later; the kernel caps this at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (with SO_REUSEADDR, as tokio does) and listens with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// `--max-connections` are open: refuse this one in its protocol (in a task of its own,
/// bounded by [`conn::refuse::MAX_REFUSING`]), or reset it when that bound is reached too.
fn refuse_over_limit(
    sock: tokio::net::TcpStream,
    peer: SocketAddr,
    connections: &ConnLimit,
    refusing: &ConnLimit,
    stats: &Arc<Stats>,
    tls: Option<&conn::tls::Tls>,
) {
    if connections.note_refusal() {
        tracing::warn!(
            max_connections = connections.max(),
            "connection limit reached: refusing new connections (HTTP/1.1 503, HTTP/2 GOAWAY REFUSED_STREAM)"
        );
    }
    match refusing.try_acquire() {
        Some(permit) => {
            let stats = stats.clone();
            let tls = tls.cloned();
            tokio::spawn(async move {
                match tls {
                    Some(tls) => conn::refuse::refuse_tls(&tls, sock, peer, &stats).await,
                    None => conn::refuse::refuse_tcp(sock, peer, &stats).await,
                }
                drop(permit);
            });
        }
        None => {
            Stats::inc(&stats.connections_refused_limit);
            conn::refuse::reset(sock);
        }
    }
}

/// Chaos REFUSE_CONNECTIONS: reset the connection at once (SO_LINGER 0, then close), as a
/// restarting server's kernel would.
fn refuse(sock: tokio::net::TcpStream, peer: SocketAddr, stats: &Stats) {
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    drop(sock);
    Stats::inc(&stats.connections_refused_chaos);
    tracing::warn!(%peer, "connection refused (chaos)");
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name} received");
}
