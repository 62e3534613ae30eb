//! Connections and calls: TCP on loopback, hyper's client connections (HTTP/1.1 for
//! gRPC-web, HTTP/2 for gRPC), and one call = one request whose body is read frame by
//! frame ([`Streaming`]).
//!
//! A browser over plain http speaks HTTP/1.1 with at most six connections per origin, one
//! request at a time on each: a streaming subscription occupies its connection for as long
//! as it lives, so a heartbeat needs another. [`Pool`] is that: per session, up to
//! [`MAX_PER_ORIGIN`] connections, reused while they stay open. Over https a browser speaks
//! HTTP/2 and puts every call on one connection; the pool's HTTP/2 mode does that (without
//! TLS), for runs that must stay within fewer sockets.

use crate::grpc::{self, CallError, Decoder, Frame, Wire};
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;

/// A browser's limit of HTTP/1.1 connections per origin.
pub const MAX_PER_ORIGIN: usize = 6;

/// Where calls go.
#[derive(Clone, Debug)]
pub struct Target {
    /// The server (on loopback).
    pub addr: SocketAddr,
    /// The local address to connect from (another loopback address spreads the
    /// ephemeral ports of many thousand connections); `None`: the kernel's choice.
    pub local_ip: Option<IpAddr>,
}

impl Target {
    /// The `host` header value.
    pub fn authority(&self) -> String {
        self.addr.to_string()
    }
}

/// Opens a TCP connection to the target, with `TCP_NODELAY` as browsers set it.
pub async fn connect(target: &Target) -> std::io::Result<TcpStream> {
    let socket = if target.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = target.local_ip {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(target.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One HTTP/1.1 connection's request half.
pub type H1 = http1::SendRequest<Full<Bytes>>;
/// One HTTP/2 connection's request half (cloneable: streams are multiplexed).
pub type H2 = http2::SendRequest<Full<Bytes>>;

/// Opens an HTTP/1.1 connection; its I/O runs in a task of its own.
pub async fn open_h1(target: &Target) -> Result<H1, CallError> {
    let stream = connect(target).await.map_err(CallError::transport)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(CallError::transport)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Opens an HTTP/2 connection (prior knowledge, as gRPC over plain http does).
pub async fn open_h2(target: &Target) -> Result<H2, CallError> {
    let stream = connect(target).await.map_err(CallError::transport)?;
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
        .await
        .map_err(CallError::transport)?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A connection to send one request on, and the protocol spoken on it.
#[derive(Debug)]
pub enum Sender<'a> {
    /// gRPC-web over HTTP/1.1 (a browser over plain http).
    H1(&'a mut H1),
    /// Native gRPC over HTTP/2.
    H2(&'a mut H2),
    /// gRPC-web over HTTP/2 (a browser over https, minus TLS).
    H2Web(&'a mut H2),
}

impl Sender<'_> {
    fn wire(&self) -> Wire {
        match self {
            Sender::H1(_) | Sender::H2Web(_) => Wire::Web,
            Sender::H2(_) => Wire::Grpc,
        }
    }

    fn http2(&self) -> bool {
        !matches!(self, Sender::H1(_))
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, CallError> {
        match self {
            Sender::H1(s) => {
                s.ready().await.map_err(CallError::transport)?;
                s.send_request(req).await.map_err(CallError::transport)
            }
            Sender::H2(s) | Sender::H2Web(s) => {
                s.ready().await.map_err(CallError::transport)?;
                s.send_request(req).await.map_err(CallError::transport)
            }
        }
    }
}

/// A call's response body, read message by message.
#[derive(Debug)]
pub struct Streaming {
    body: Incoming,
    decoder: Decoder,
    status: Option<grpc::Status>,
    data_bytes: u64,
}

impl Streaming {
    /// The next message; `Ok(None)` when the call ended with status OK.
    pub async fn message<M: Message + Default>(&mut self) -> Result<Option<M>, CallError> {
        loop {
            match self.decoder.next_frame()? {
                Some(Frame::Message(bytes)) => {
                    return M::decode(bytes).map(Some).map_err(CallError::transport);
                }
                Some(Frame::Trailers(status)) => self.status = Some(status),
                None => {}
            }
            if let Some(status) = &self.status {
                // Read the body to its end, so that an HTTP/1.1 connection is reusable.
                while let Some(Ok(frame)) = self.body.frame().await {
                    if let Some(data) = frame.data_ref() {
                        self.data_bytes += data.len() as u64;
                    }
                }
                return if status.code == grpc::code::OK {
                    Ok(None)
                } else {
                    Err(CallError::Status(status.clone()))
                };
            }
            match self.body.frame().await {
                None => return Err(CallError::transport("response ended without a status")),
                Some(Err(e)) => return Err(CallError::transport(e)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        self.data_bytes += data.len() as u64;
                        self.decoder.push(&data);
                    }
                    Err(frame) => {
                        if let Some(t) = frame.trailers_ref() {
                            self.status = Some(grpc::status_of(t).unwrap_or(grpc::Status {
                                code: grpc::code::UNAVAILABLE,
                                message: "trailers without grpc-status".into(),
                            }));
                        }
                    }
                },
            }
        }
    }
}

/// Starts a call of `path` with `msg`; the answer's messages are read from the result.
pub async fn start(
    sender: &mut Sender<'_>,
    authority: &str,
    path: &str,
    msg: &impl Message,
) -> Result<Streaming, CallError> {
    let wire = sender.wire();
    let http2 = sender.http2();
    let uri = if http2 {
        format!("http://{authority}{path}")
    } else {
        path.to_string()
    };
    let mut req = Request::post(uri)
        .header(header::CONTENT_TYPE, wire.content_type())
        .body(Full::new(grpc::encode(msg)))
        .map_err(CallError::transport)?;
    let headers = req.headers_mut();
    match wire {
        Wire::Web => {
            if !http2 {
                headers.insert(
                    header::HOST,
                    authority.parse().map_err(CallError::transport)?,
                );
            }
            headers.insert("x-grpc-web", http::HeaderValue::from_static("1"));
            headers.insert(
                header::ACCEPT,
                http::HeaderValue::from_static("application/grpc-web+proto"),
            );
        }
        Wire::Grpc => {
            headers.insert(header::TE, http::HeaderValue::from_static("trailers"));
        }
    }
    let res = sender.send(req).await?;
    if res.status() != http::StatusCode::OK {
        return Err(CallError::transport(format!("HTTP {}", res.status())));
    }
    // Trailers-only (an immediate error): the status is in the headers.
    let status = grpc::status_of(res.headers());
    Ok(Streaming {
        body: res.into_body(),
        decoder: Decoder::default(),
        status,
        data_bytes: 0,
    })
}

/// A unary call: exactly one message, then status OK.
pub async fn unary<M: Message + Default>(
    sender: &mut Sender<'_>,
    authority: &str,
    path: &str,
    msg: &impl Message,
) -> Result<M, CallError> {
    Ok(unary_sized(sender, authority, path, msg).await?.0)
}

/// [`unary`], and the bytes of the answer's body (HTTP DATA: the framed message, and for
/// gRPC-web the trailers frame) — what a load generator that does not decode answers can
/// check each one against.
pub async fn unary_sized<M: Message + Default>(
    sender: &mut Sender<'_>,
    authority: &str,
    path: &str,
    msg: &impl Message,
) -> Result<(M, u64), CallError> {
    let mut s = start(sender, authority, path, msg).await?;
    let Some(answer) = s.message::<M>().await? else {
        return Err(CallError::transport("unary call without a message"));
    };
    match s.message::<M>().await? {
        None => Ok((answer, s.data_bytes)),
        Some(_) => Err(CallError::transport("unary call with two messages")),
    }
}

/// A session's connections: up to [`MAX_PER_ORIGIN`] HTTP/1.1 connections reused while
/// open (a browser over http), or one HTTP/2 connection that carries every call (a
/// browser over https), opened again when it is lost.
#[derive(Debug)]
pub struct Pool {
    target: Target,
    state: Mutex<PoolState>,
    freed: Notify,
    http2: Option<tokio::sync::Mutex<Option<H2>>>,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<H1>,
    open: usize,
    connects: u64,
}

impl Pool {
    /// An empty pool of HTTP/1.1 connections, or of one HTTP/2 connection.
    pub fn new(target: Target, http2: bool) -> Arc<Self> {
        Arc::new(Pool {
            target,
            state: Mutex::new(PoolState::default()),
            freed: Notify::new(),
            http2: http2.then(|| tokio::sync::Mutex::new(None)),
        })
    }

    async fn get_h2(
        self: &Arc<Self>,
        slot: &tokio::sync::Mutex<Option<H2>>,
    ) -> Result<Lease, CallError> {
        let mut conn = slot.lock().await;
        if let Some(c) = conn.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Lease::shared(self.clone(), c.clone()));
        }
        *conn = None;
        self.lock().connects += 1;
        let c = open_h2(&self.target).await?;
        *conn = Some(c.clone());
        Ok(Lease::shared(self.clone(), c))
    }

    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `host` header value.
    pub fn authority(&self) -> String {
        self.target.authority()
    }

    /// Connections opened so far.
    pub fn connects(&self) -> u64 {
        self.lock().connects
    }

    /// An idle open connection, or a new one if fewer than six are open; otherwise waits
    /// for one to be freed.
    pub async fn get(self: &Arc<Self>) -> Result<Lease, CallError> {
        if let Some(slot) = &self.http2 {
            return self.get_h2(slot).await;
        }
        loop {
            let freed = self.freed.notified();
            match self.take() {
                Take::Idle(conn) => return Ok(Lease::new(self.clone(), conn)),
                Take::Connect => {
                    let slot = Slot(self.clone());
                    let conn = open_h1(&self.target).await?;
                    std::mem::forget(slot);
                    return Ok(Lease::new(self.clone(), conn));
                }
                Take::Wait => freed.await,
            }
        }
    }

    fn take(&self) -> Take {
        let mut st = self.lock();
        while let Some(conn) = st.idle.pop() {
            if conn.is_closed() {
                st.open -= 1;
                continue;
            }
            return Take::Idle(conn);
        }
        if st.open < MAX_PER_ORIGIN {
            st.open += 1;
            st.connects += 1;
            return Take::Connect;
        }
        Take::Wait
    }

    fn release(&self, conn: Option<H1>) {
        let mut st = self.lock();
        match conn {
            Some(c) if !c.is_closed() => st.idle.push(c),
            _ => st.open -= 1,
        }
        drop(st);
        self.freed.notify_one();
    }

    /// Closes the idle connections (a browser tab going away).
    pub fn clear(&self) {
        let mut st = self.lock();
        let n = st.idle.len();
        st.idle.clear();
        st.open -= n;
        drop(st);
        if let Some(slot) = &self.http2
            && let Ok(mut conn) = slot.try_lock()
        {
            *conn = None;
        }
    }
}

enum Take {
    Idle(H1),
    Connect,
    Wait,
}

/// Gives a connection slot back if connecting failed or was cancelled.
struct Slot(Arc<Pool>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.release(None);
    }
}

/// A connection taken from the pool. Call [`Lease::done`] once a response has been read
/// to its end so the connection is reused; a lease dropped before that (a call aborted
/// midway) closes its connection, as a browser aborting a fetch does.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    conn: Option<H1>,
    shared: Option<H2>,
    reusable: bool,
}

impl Lease {
    fn new(pool: Arc<Pool>, conn: H1) -> Self {
        Lease {
            pool,
            conn: Some(conn),
            shared: None,
            reusable: false,
        }
    }

    fn shared(pool: Arc<Pool>, conn: H2) -> Self {
        Lease {
            pool,
            conn: None,
            shared: Some(conn),
            reusable: false,
        }
    }

    /// The connection, to send a request on.
    pub fn sender(&mut self) -> Sender<'_> {
        match (&mut self.conn, &mut self.shared) {
            (Some(c), _) => Sender::H1(c),
            (None, Some(c)) => Sender::H2Web(c),
            (None, None) => unreachable!("a lease holds its connection until dropped"),
        }
    }

    /// The response was read to its end: the connection may serve another request.
    pub fn done(mut self) {
        self.reusable = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // An HTTP/2 stream ends with its lease; the connection stays with the pool.
        if self.shared.is_none() {
            let conn = self.conn.take().filter(|_| self.reusable);
            self.pool.release(conn);
        }
    }
}
