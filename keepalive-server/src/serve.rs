//! The accept loop and the graceful stop.
//!
//! One task per connection ([`crate::conn::serve`]); the loop counts connections against
//! the limit (refusing the ones over it in their own protocol), lets a fault injector
//! refuse them, and on the shutdown signal drains: health `NOT_SERVING`, every browser
//! keepalive's streams a GoAway, every connection a graceful GOAWAY, the shutdown grace
//! for in-flight streams, then a hard close. It returns once the last connection task
//! has ended — not later: nothing else of the server keeps running.

use crate::Error;
use crate::builder::Builder;
use crate::clock::Clock;
use crate::conn::limit::ConnLimit;
use crate::conn::{self, ConnContext, ConnSettings};
use crate::routes;
use crate::stats::TransportStats as Stats;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Listen backlog: connections the kernel completes before `accept` takes them. tokio's
/// default (1024) overflows when a few thousand clients connect at once (a restart, a
/// reconnect storm), and an overflowed handshake is only retried by the kernel seconds
/// later; the kernel caps this at `net.core.somaxconn`.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` (with SO_REUSEADDR, as tokio does) and listens with [`LISTEN_BACKLOG`]:
/// the listener to give [`Builder::serve_with_incoming`] when you need its address first
/// (port 0).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `builder` on `listener` until `signal`, then drains.
pub(crate) async fn run(
    mut builder: Builder,
    listener: TcpListener,
    signal: impl Future<Output = ()>,
) -> Result<(), Error> {
    builder.keepalive.validate().map_err(|e| Error(e.0))?;
    builder.limits.validate().map_err(|e| Error(e.0))?;
    if builder.browsers.len() > 1 {
        return Err(Error(
            "one browser keepalive per server (its service is keepalive.v1.Session)".into(),
        ));
    }
    for browser in &builder.browsers {
        browser.options().validate().map_err(|e| Error(e.0))?;
    }
    let tls = builder.tls.take();
    let addr = listener
        .local_addr()
        .map_err(|e| Error(format!("listener: {e}")))?;
    let params = builder.keepalive;
    if params.effective_time() != params.time {
        tracing::warn!(
            "keepalive time {:?} is below the 1s floor; using 1s (as grpc-go does)",
            params.time
        );
    }
    let max_in = builder.limits.max_recv_message_size;
    let browsers = std::mem::take(&mut builder.browsers);
    for browser in &browsers {
        browser.adopt_policy(builder.enforcement);
        builder = builder.add_service(browser.service().max_decoding_message_size(max_in));
        builder
            .descriptor_sets
            .push(keepalive_proto::FILE_DESCRIPTOR_SET);
    }
    let health = builder.health.clone();
    health.set_serving("");
    let mut served: Vec<String> = builder.services.iter().map(|s| (*s).to_owned()).collect();
    served.push(String::new());
    for up in std::mem::take(&mut builder.serving_while) {
        health.follow(served.clone(), up);
    }
    builder = builder.add_service(health.service().max_decoding_message_size(max_in));
    if builder.reflection {
        let reflection = || {
            let mut r = tonic_reflection::server::Builder::configure();
            for set in &builder.descriptor_sets {
                r = r.register_encoded_file_descriptor_set(set);
            }
            r
        };
        let v1 = reflection()
            .build_v1()
            .map_err(|e| Error(format!("reflection: {e}")))?
            .max_decoding_message_size(max_in);
        let v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| Error(format!("reflection: {e}")))?
            .max_decoding_message_size(max_in);
        builder = builder.add_service(v1).add_service(v1alpha);
    }
    let mut grpc = builder.grpc.into_axum_router();
    for extra in builder.extra_routes {
        grpc = grpc.merge(extra.into_axum_router().reset_fallback());
    }
    let routes = routes::build(routes::Parts {
        grpc: grpc.into(),
        services: builder.services,
        http: builder.http,
        layers: builder.layers,
        cors: builder.cors,
        grpc_web: builder.grpc_web,
        limits: builder.limits,
        stats: builder.stats.clone(),
    });
    let stats = builder.stats;
    let faults = builder.faults;
    let limits = builder.limits;
    let (stop_tx, stop_rx) = watch::channel(false);
    let settings = ConnSettings {
        params,
        policy: builder.enforcement,
        shutdown_grace: builder.shutdown_grace,
        first_bytes_timeout: limits.first_bytes_timeout,
        http1_header_read_timeout: limits.http1_header_read_timeout,
        max_concurrent_streams: limits.max_concurrent_streams,
    };
    let ctx = Arc::new(ConnContext {
        routes,
        stats: stats.clone(),
        clock: Clock::start(),
        settings,
        shutdown: stop_rx,
        faults: faults.clone(),
        tls: tls.clone(),
    });
    tracing::info!(
        keepalive_time = ?params.effective_time(),
        keepalive_timeout = ?params.timeout,
        max_connection_idle = ?params.max_connection_idle,
        max_connection_age = ?params.max_connection_age,
        max_connection_age_grace = ?params.max_connection_age_grace,
        min_ping_interval = ?settings.policy.min_time,
        permit_without_stream = settings.policy.permit_without_stream,
        max_ping_strikes = settings.policy.max_ping_strikes,
        "keepalive settings"
    );
    tracing::info!(
        max_connections = limits.max_connections,
        max_concurrent_streams = limits.max_concurrent_streams,
        max_recv_message_size = limits.max_recv_message_size,
        max_send_message_size = limits.max_send_message_size,
        max_request_body_size = limits.max_request_body_size,
        first_bytes_timeout = ?limits.first_bytes_timeout,
        http1_header_read_timeout = ?limits.http1_header_read_timeout,
        "limits"
    );
    if tls.is_some() {
        tracing::info!("TLS: rustls (ring), ALPN h2 and http/1.1");
    }
    if faults.is_some() {
        tracing::warn!("fault injection enabled: connections can be broken on purpose");
    }
    tracing::info!("listening on {addr}");

    let mut tasks = JoinSet::new();
    let mut next_id = 0u64;
    let connections = ConnLimit::new(limits.max_connections);
    let refusing = ConnLimit::new(conn::refuse::MAX_REFUSING);
    let mut signal = std::pin::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) if faults.as_ref().is_some_and(|f| f.refusing(tokio::time::Instant::now())) => {
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
            () = &mut signal => break,
        }
    }

    let grace = settings.shutdown_grace;
    tracing::info!(
        connections = tasks.len(),
        ?grace,
        "shutting down: draining connections"
    );
    drop(listener);
    health.shut_down();
    for browser in &browsers {
        browser.shutdown();
    }
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
    Ok(())
}

/// The connection limit is reached: refuse this one in its protocol (in a task of its own,
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

/// A fault injector refuses connections: reset this one at once (SO_LINGER 0, then close),
/// as a restarting server's kernel would.
fn refuse(sock: tokio::net::TcpStream, peer: SocketAddr, stats: &Stats) {
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    drop(sock);
    Stats::inc(&stats.connections_refused_chaos);
    tracing::warn!(%peer, "connection refused (chaos)");
}

/// Completes on SIGTERM or SIGINT (logging which): the usual shutdown signal of a server
/// process.
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
