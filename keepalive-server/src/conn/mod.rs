//! One task per connection: the connection lifecycle that tonic does not give us.
//!
//! [`serve`] sniffs the protocol, builds the hyper connection over the tonic routes, and
//! drives it together with the keepalive core: it sleeps until the core's next deadline,
//! wakes when a stream ends or the observer queued a GOAWAY, carries out the core's
//! actions (PING, drain, close) and, on shutdown, drains.
//!
//! With TLS ([`tls`]) ALPN says the protocol instead of the first bytes.
//!
//! HTTP/2 goes through the frame observer ([`io::ObservedIo`]); HTTP/1.1 has no frames to
//! observe, so idle and age simply close it at its next idle moment (hyper's graceful
//! shutdown: the request in flight finishes first).
//!
//! A server with a fault injector ([`crate::faults`]) has its faults reach the task here
//! too: a drop ends it at once (the socket is closed without GOAWAY, logged as
//! `reason="chaos_drop"`), a GOAWAY starts the same graceful drain as a shutdown but with
//! the debug data `chaos` (the keepalive core knows only max-idle, max-age and shutdown
//! drains; the task maps its own chaos drain onto the core's shutdown drain without a
//! grace, and relabels it), and a stall holds back the task's own writes (keepalive PINGs)
//! like the socket wrappers hold h2's. Without one, none of this is checked.

pub mod frame;
pub mod incoming;
pub mod io;
pub mod limit;
pub mod outgoing;
pub mod refuse;
pub mod shared;
pub mod sock;
pub mod stall;
pub mod streams;
pub mod tls;

use crate::clock::Clock;
use crate::faults::{self, FaultInjector};
use crate::routes::Routes;
use crate::stats::TransportStats as Stats;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use keepalive::{
    Action, CloseReason, DrainReason, EnforcementPolicy, ServerConnection, ServerParameters,
};
use shared::{ConnShared, Proto};
use sock::Socket;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::time::Duration;
use streams::CountedService;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

/// Default `--first-bytes-timeout`: how long a new connection may take to send its first
/// bytes.
pub const DEFAULT_FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `--http1-header-read-timeout` (hyper's): how long an HTTP/1.1 request head may
/// take to arrive, counted from when the server starts waiting for it — so it also closes
/// a keep-alive connection idle between requests for this long.
pub const DEFAULT_HTTP1_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `--max-concurrent-streams` (hyper's): streams one HTTP/2 client may have open;
/// the next one is refused by h2 with RST_STREAM `REFUSED_STREAM`.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 200;
/// How long the lingering close after a GOAWAY with an error code waits for the client
/// (grpc-go's server waits one second too before it closes after such a GOAWAY).
const LINGER: Duration = Duration::from_secs(1);
/// GOAWAY debug data (and log reason) of a drain started by a fault injector.
pub const CHAOS_DRAIN: &str = "chaos";

/// Keepalive settings every connection gets.
#[derive(Clone, Copy, Debug)]
pub struct ConnSettings {
    /// Server parameters for HTTP/2 connections (HTTP/1.1 ones get them without PINGs).
    pub params: ServerParameters,
    /// The PING enforcement policy.
    pub policy: EnforcementPolicy,
    /// How long in-flight streams may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// How long a new connection may take to send its first bytes.
    pub first_bytes_timeout: Duration,
    /// How long an HTTP/1.1 request head may take (slowloris), and the keep-alive idle.
    pub http1_header_read_timeout: Duration,
    /// Most streams one HTTP/2 connection may have open (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
}

/// What every connection task gets from the server (shared: one per server).
#[derive(Clone, Debug)]
pub struct ConnContext {
    /// The routes.
    pub routes: Routes,
    /// Counters.
    pub stats: Arc<Stats>,
    /// The server's clock.
    pub clock: Clock,
    /// Keepalive settings.
    pub settings: ConnSettings,
    /// Becomes `true` when the server stops.
    pub shutdown: watch::Receiver<bool>,
    /// Faults to inject, if the server has a fault injector.
    pub faults: Option<Arc<FaultInjector>>,
    /// TLS (`--tls-cert`): every connection starts with a handshake.
    pub tls: Option<tls::Tls>,
}

/// Serves one accepted connection until it ends.
pub async fn serve(sock: TcpStream, peer: SocketAddr, id: u64, ctx: Arc<ConnContext>) {
    let mut signals = Signals {
        shutdown: ctx.shutdown.clone(),
        drop: ctx.faults.as_ref().map(|f| f.subscribe_drop()),
        goaway: ctx.faults.as_ref().map(|f| f.subscribe_goaway()),
        faults: ctx.faults.clone(),
    };
    // Boxed: the wait for the first bytes is over before the connection is served, and
    // its futures would otherwise take room in this task for as long as it lives.
    let Some(transport) = Box::pin(first_bytes(sock, peer, id, &ctx, &mut signals)).await else {
        return;
    };
    let proto = transport.proto();
    let stats = ctx.stats.clone();
    let (accepted, open) = match proto {
        Proto::H2 => (&stats.connections_h2, &stats.open_connections_h2),
        Proto::H1 => (&stats.connections_h1, &stats.open_connections_h1),
    };
    Stats::inc(accepted);
    Stats::inc(open);
    tracing::info!(conn = id, %peer, proto = proto.as_str(), tls = transport.is_tls(), "connection accepted");

    let core = ServerConnection::new(
        ctx.clock.now(),
        ctx.settings.params,
        ctx.settings.policy,
        fastrand::f64,
    );
    let core = match proto {
        Proto::H2 => core,
        Proto::H1 => core.without_pings(), // HTTP/1.1 has no PING
    };
    let shared = Arc::new(ConnShared::new(
        id,
        peer,
        proto,
        ctx.clock,
        stats.clone(),
        core,
    ));
    let service = CountedService::new(ctx.routes.clone(), shared.clone());

    // Each kind of connection is served by a future of its own size, on the heap: inline
    // in this task, every connection would pay for the largest kind (HTTP/1.1 over TLS,
    // with rustls' state) — an idle connection's memory is mostly its task.
    let ending = match transport {
        Transport::H2(sock, consumed) => {
            Box::pin(serve_h2(
                Arc::new(sock),
                &consumed,
                shared,
                service,
                &ctx,
                signals,
            ))
            .await
        }
        Transport::H2Tls(sock) => {
            Box::pin(serve_h2(
                Arc::new(sock),
                &[],
                shared,
                service,
                &ctx,
                signals,
            ))
            .await
        }
        Transport::H1(sock) => Box::pin(serve_h1(sock, &shared, service, &ctx, signals)).await,
        Transport::H1Tls(tls) => Box::pin(serve_h1(*tls, &shared, service, &ctx, signals)).await,
    };
    Stats::dec(open);
    match ending {
        Ending::Finished(reason) => {
            if reason == HTTP1_HEADER_TIMEOUT {
                Stats::inc(&stats.closed_http1_header_timeout);
            }
            tracing::info!(conn = id, %peer, proto = proto.as_str(), reason, "connection closed")
        }
        Ending::Closed(reason) => {
            if reason != CloseReason::TooManyPings {
                Stats::inc(stats.close(reason));
            }
            tracing::info!(conn = id, %peer, proto = proto.as_str(), reason = reason.as_str(), "connection closed")
        }
        Ending::ChaosDrop => {
            Stats::inc(&stats.closed_chaos_drop);
            tracing::warn!(conn = id, %peer, proto = proto.as_str(), reason = "chaos_drop", "connection closed")
        }
    }
}

/// Waits for the connection's first bytes (or its TLS handshake), at most the first-bytes
/// timeout: what it carries, or `None` when it ended first (closed, timed out, the server
/// stopped, a chaos drop).
async fn first_bytes(
    sock: TcpStream,
    peer: SocketAddr,
    id: u64,
    ctx: &ConnContext,
    signals: &mut Signals,
) -> Option<Transport> {
    let first_bytes_timeout = ctx.settings.first_bytes_timeout;
    tokio::select! {
        p = tokio::time::timeout(first_bytes_timeout, open(sock, ctx.tls.clone())) => match p {
            Ok(Ok(Some(transport))) => Some(transport),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::debug!(conn = id, %peer, error = %e, "connection failed before its first bytes");
                None
            }
            Err(_) => {
                Stats::inc(&ctx.stats.closed_first_bytes_timeout);
                tracing::info!(conn = id, %peer, "connection closed: no bytes within {first_bytes_timeout:?}");
                None
            }
        },
        _ = signals.shutdown.wait_for(|stop| *stop) => None,
        () = faults::changed(&mut signals.drop) => None,
    }
}

/// How an HTTP/1.1 connection ends when a request head did not come in time.
const HTTP1_HEADER_TIMEOUT: &str = "http1_header_read_timeout";

/// What a connection carries once its first bytes (or its TLS handshake) are in.
enum Transport {
    /// HTTP/2 on the TCP socket, after the bytes of the preface sniffing took off it.
    H2(TcpStream, Vec<u8>),
    /// HTTP/2 over TLS: the observer's end of the plaintext bridge ([`tls::bridge`]).
    H2Tls(UnixStream),
    /// HTTP/1.1 on the TCP socket.
    H1(TcpStream),
    /// HTTP/1.1 over TLS.
    H1Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    fn proto(&self) -> Proto {
        match self {
            Transport::H2(..) | Transport::H2Tls(_) => Proto::H2,
            Transport::H1(_) | Transport::H1Tls(_) => Proto::H1,
        }
    }

    fn is_tls(&self) -> bool {
        matches!(self, Transport::H2Tls(_) | Transport::H1Tls(_))
    }
}

/// Learns what the connection carries: without TLS from its first bytes ([`sniff`]),
/// with TLS from the handshake's ALPN; an HTTP/2-over-TLS connection gets its bridge
/// task here. `None` when the client closed first.
async fn open(sock: TcpStream, tls: Option<tls::Tls>) -> std::io::Result<Option<Transport>> {
    let Some(acceptor) = tls else {
        return Ok(sniff(&sock).await?.map(|s| match s.proto {
            Proto::H2 => Transport::H2(sock, s.consumed),
            Proto::H1 => Transport::H1(sock),
        }));
    };
    let stream = acceptor.accept(sock).await?;
    Ok(Some(match tls::negotiated(&stream) {
        Proto::H2 => {
            let (ours, theirs) = UnixStream::pair()?;
            tokio::spawn(tls::bridge(stream, theirs));
            Transport::H2Tls(ours)
        }
        Proto::H1 => Transport::H1Tls(Box::new(stream)),
    }))
}

/// HTTP/2 through the frame observer on `sock`, `prefix` (preface bytes already read)
/// first; after a GOAWAY with an error code (`too_many_pings`, or h2's for a protocol
/// error), the lingering close.
async fn serve_h2<S: Socket>(
    sock: Arc<S>,
    prefix: &[u8],
    shared: Arc<ConnShared>,
    service: CountedService,
    ctx: &ConnContext,
    signals: Signals,
) -> Ending {
    let io = TokioIo::new(
        io::ObservedIo::new(sock.clone(), shared.clone(), ctx.faults.clone()).with_prefix(prefix),
    );
    let ending = {
        let conn = pin!(
            http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(ctx.settings.max_concurrent_streams)
                .serve_connection(io, service)
        );
        drive(
            conn,
            |c| c.graceful_shutdown(),
            &shared,
            Some(&*sock),
            signals,
            ctx.settings.shutdown_grace,
        )
        .await
    };
    // Ours for `too_many_pings` is one (ENHANCE_YOUR_CALM), so it needs no case of its own.
    if shared.sent_error_goaway() {
        // Boxed: its read buffer would otherwise be room in every connection's task.
        Box::pin(linger_close(&*sock, &shared)).await;
    }
    ending
}

/// HTTP/1.1 over `io` (TCP or TLS), honouring the stall window.
async fn serve_h1<T>(
    io: T,
    shared: &ConnShared,
    service: CountedService,
    ctx: &ConnContext,
    signals: Signals,
) -> Ending
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let conn = pin!(
        http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(ctx.settings.http1_header_read_timeout)
            .serve_connection(
                TokioIo::new(stall::StallIo::new(io, ctx.faults.clone())),
                service
            )
    );
    drive(
        conn,
        |c| c.graceful_shutdown(),
        shared,
        None::<&TcpStream>,
        signals,
        ctx.settings.shutdown_grace,
    )
    .await
}

/// What a connection task listens to besides its connection.
#[derive(Debug)]
struct Signals {
    /// Becomes `true` when the server stops.
    shutdown: watch::Receiver<bool>,
    /// The fault injector's drops.
    drop: Option<watch::Receiver<u64>>,
    /// The fault injector's GOAWAYs.
    goaway: Option<watch::Receiver<u64>>,
    /// The stall window.
    faults: Option<Arc<FaultInjector>>,
}

/// How a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// hyper finished it (client closed, drain completed, or an error), with a reason.
    Finished(&'static str),
    /// The keepalive core closed it.
    Closed(CloseReason),
    /// A fault injector's drop: closed at once, without GOAWAY.
    ChaosDrop,
}

/// What a connection's first bytes said.
#[derive(Debug)]
pub(crate) struct Sniffed {
    /// The protocol.
    pub proto: Proto,
    /// Bytes of the HTTP/2 preface already taken off the socket (a client that sent it in
    /// pieces): they go to h2 before anything else. Empty otherwise.
    pub consumed: Vec<u8>,
}

/// Looks at the first bytes: the HTTP/2 preface means HTTP/2 with prior knowledge,
/// anything else is HTTP/1.1. `None` when the client closed first.
///
/// The bytes are peeked, not read, so hyper sees them again — except when the client
/// sent only a piece of the preface: peeking again would find the same bytes at once, and
/// polling for more would cost a wakeup every few milliseconds for every such connection
/// (a thousand connections that sent `PRI` kept a core busy). So that piece is read off
/// the socket, the rest awaited as new bytes, and the piece handed to h2 first. A piece
/// of the preface followed by something else is an error: no client does that.
pub(crate) async fn sniff(sock: &TcpStream) -> std::io::Result<Option<Sniffed>> {
    let preface = frame::PREFACE;
    let mut buf = [0u8; frame::PREFACE.len()];
    let n = sock.peek(&mut buf).await?;
    let sniffed = |proto, consumed| Ok(Some(Sniffed { proto, consumed }));
    if n == 0 {
        return Ok(None);
    }
    if buf[..n] != preface[..n] {
        return sniffed(Proto::H1, Vec::new());
    }
    if n == preface.len() {
        return sniffed(Proto::H2, Vec::new());
    }
    let mut got = Vec::with_capacity(preface.len());
    while got.len() < preface.len() {
        sock.readable().await?;
        // Never more than the preface: what follows it is h2's to read.
        let want = preface.len() - got.len();
        match sock.try_read(&mut buf[..want]) {
            Ok(0) => return Ok(None),
            Ok(k) => {
                got.extend_from_slice(&buf[..k]);
                if got[..] != preface[..got.len()] {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "a piece of the HTTP/2 preface, then something else",
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    sniffed(Proto::H2, got)
}

/// Drives the hyper connection `conn` with the keepalive core until either ends it.
async fn drive<F, S: Socket>(
    mut conn: Pin<&mut F>,
    graceful: impl Fn(Pin<&mut F>),
    shared: &ConnShared,
    sock: Option<&S>,
    mut signals: Signals,
    grace: Duration,
) -> Ending
where
    F: Future<Output = hyper::Result<()>>,
{
    let clock = shared.clock;
    let mut stopping = false;
    // Whether the drain in progress was started by a fault injector (labelled `chaos`).
    let mut chaos_drain = false;
    // What the task waits for besides its connection lives as long as the task: a wake
    // (every read, every response written) re-polls registered waiters instead of
    // registering new ones, and arms no timer. The timer is moved only to an earlier
    // deadline; when it fires early (the keepalive deadline moved on with every read),
    // `handle_timeout` finds nothing due and it is set for the new deadline.
    let mut shutdown_rx = signals.shutdown.clone();
    let shutdown = async move {
        let _ = shutdown_rx.wait_for(|stop| *stop).await;
    };
    // A fault injector's waits are on the heap, and only on a server with one: without
    // it, a connection's task has no room for them.
    let boxed = |rx: watch::Receiver<u64>| -> Wait {
        let mut rx = Some(rx);
        Box::pin(async move { faults::changed(&mut rx).await })
    };
    let mut dropped = signals.drop.take().map(boxed);
    let mut chaos_goaway = signals.goaway.take().map(boxed);
    let mut goaway_seen = false;
    let timer = tokio::time::sleep(Duration::ZERO);
    let notified = shared.notify.notified();
    tokio::pin!(shutdown, timer, notified);
    loop {
        let (unsent, timing) = {
            let mut st = shared.lock();
            // The timer is set for `st.armed`, under the lock: a stream ending after this
            // sees it, and wakes the task only for an earlier deadline.
            if let Some(d) = st.earlier_deadline() {
                timer.as_mut().reset(clock.to_tokio(d));
                st.armed = Some(d);
            }
            (st.out.pending() > 0, st.armed.is_some())
        };
        let stalled = if unsent {
            stalled_until(signals.faults.as_deref())
        } else {
            None
        };
        tokio::select! {
            biased;
            res = conn.as_mut() => {
                return Ending::Finished(match res {
                    Ok(()) => "done",
                    Err(e) if e.is_incomplete_message() => "client went away mid-request",
                    Err(e) if e.is_timeout() => HTTP1_HEADER_TIMEOUT,
                    Err(e) => {
                        tracing::debug!(conn = shared.id, error = %e, "connection error");
                        "protocol or I/O error"
                    }
                });
            }
            () = &mut timer, if timing => {
                let mut st = shared.lock();
                st.armed = None;
                st.core.handle_timeout(clock.now());
            }
            () = &mut notified => notified.set(shared.notify.notified()),
            _ = writable(sock), if unsent && stalled.is_none() => {
                if let Some(sock) = sock {
                    let _ = shared.lock().out.send(sock);
                }
            }
            // Our own frames wait out a stall; wake when it ends to send them.
            _ = sleep_until(stalled), if unsent => {}
            () = &mut shutdown, if !stopping => {
                stopping = true;
                shared.lock().core.drain(clock.now(), DrainReason::Shutdown, Some(grace));
            }
            () = wait(&mut dropped) => return Ending::ChaosDrop,
            // One chaos GOAWAY is enough: the connection drains, and a later one would
            // find it draining.
            () = wait(&mut chaos_goaway), if !goaway_seen => {
                goaway_seen = true;
                let mut st = shared.lock();
                if st.core.draining().is_none() && st.core.closed().is_none() {
                    chaos_drain = true;
                    st.core.drain(clock.now(), DrainReason::Shutdown, None);
                }
            }
        }
        if shared.lock().out.closing() {
            return Ending::Closed(CloseReason::TooManyPings);
        }
        loop {
            let action = shared.lock().core.poll_action();
            match action {
                None => break,
                Some(Action::SendPing) => {
                    if let Some(sock) = sock {
                        let mut guard = shared.lock();
                        let st = &mut *guard;
                        st.out.inject(
                            &frame::ping(false, frame::KEEPALIVE_PING),
                            &mut shared.judge(&mut st.core),
                        );
                        if stalled_until(signals.faults.as_deref()).is_none() {
                            let _ = st.out.send(sock);
                        }
                        Stats::inc(&shared.stats.pings_sent);
                        tracing::info!(conn = shared.id, peer = %shared.peer, "PING sent");
                    }
                }
                Some(Action::Drain(reason)) => {
                    let label = if chaos_drain {
                        Stats::inc(&shared.stats.goaway_chaos);
                        CHAOS_DRAIN
                    } else {
                        Stats::inc(shared.stats.drain(reason));
                        reason.debug_data()
                    };
                    tracing::info!(
                        conn = shared.id,
                        peer = %shared.peer,
                        proto = shared.proto.as_str(),
                        reason = label,
                        "draining"
                    );
                    shared.lock().out.set_goaway_debug(label);
                    graceful(conn.as_mut());
                }
                Some(Action::Close(reason)) => return Ending::Closed(reason),
            }
        }
    }
}

/// When the stall in force now ends, if the server injects faults and one is.
fn stalled_until(faults: Option<&FaultInjector>) -> Option<tokio::time::Instant> {
    faults.and_then(FaultInjector::stalled_now)
}

/// A wait of the connection task's that only some servers have (a fault injector's).
type Wait = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Completes when `w` does; never without one. Not polled again once it completed.
async fn wait(w: &mut Option<Wait>) {
    match w {
        Some(w) => w.as_mut().await,
        None => std::future::pending().await,
    }
}

/// Completes at `at`; never without it. The timer is on the heap: only a stalled
/// connection (a fault injector's) has one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => Box::pin(tokio::time::sleep_until(at)).await,
        None => std::future::pending().await,
    }
}

async fn writable<S: Socket>(sock: Option<&S>) {
    match sock {
        Some(sock) => {
            let _ = sock::writable(sock).await;
        }
        None => std::future::pending().await,
    }
}

/// After a GOAWAY with an error code: send what is queued, FIN, then read and discard what
/// the client still sends for a moment, so that closing with unread bytes (the rest of
/// a garbage stream, PINGs of a flood) does not turn into a RST that could destroy the
/// GOAWAY before the client reads it, or fail the client's next write (a SETTINGS ACK)
/// before it has read the GOAWAY.
async fn linger_close<S: Socket>(sock: &S, shared: &ConnShared) {
    let _ = tokio::time::timeout(LINGER, io::flush(sock, shared)).await;
    let _ = sock.shutdown_write();
    let _ = tokio::time::timeout(LINGER, async {
        let mut buf = [0u8; 4096];
        loop {
            if sock::readable(sock).await.is_err() {
                return;
            }
            match sock.try_read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    })
    .await;
}
