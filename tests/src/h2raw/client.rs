//! The connection itself: [`RawH2`] over TCP or any [`Transport`] writes exactly the frames
//! it is told to and hands back every frame it reads, with deadlines for reading until a
//! frame or until the server closes.

use std::fmt;
use std::io;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::time::Instant;

use super::frame::{
    DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_LEN, Frame, MAX_STREAM_ID, PREFACE, encode_frame,
};
use super::grpc::{grpc_frame, grpc_request_headers};
use super::hpack::encode_headers;

/// Whether an I/O error means the peer closed the connection (EOF, reset, aborted, broken
/// pipe), as returned by [`RawH2::read_frame`] and the send methods.
pub fn is_closed_error(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// A byte stream [`RawH2`] can run over: TCP, or a TLS stream (HTTP/2 over TLS).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + fmt::Debug> Transport for T {}

/// A raw HTTP/2 connection: over plain TCP with prior knowledge ([`connect`](Self::connect)),
/// or over any [`Transport`], e.g. TLS with ALPN `h2` ([`over`](Self::over)).
#[derive(Debug)]
pub struct RawH2 {
    stream: Box<dyn Transport>,
    local_addr: std::net::SocketAddr,
    read_buf: BytesMut,
    authority: String,
    auto_ack_settings: bool,
    auto_ack_pings: bool,
}

impl RawH2 {
    /// Opens a TCP connection (with TCP_NODELAY). Nothing is sent yet; call
    /// [`handshake`](Self::handshake).
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let authority = stream.peer_addr()?.to_string();
        let local_addr = stream.local_addr()?;
        Ok(Self::over(stream, authority, local_addr))
    }

    /// A connection over `stream` (already connected, e.g. a TLS stream that negotiated
    /// `h2`); `authority` is the `:authority` of requests. Nothing is sent yet.
    pub fn over(
        stream: impl Transport + 'static,
        authority: String,
        local_addr: std::net::SocketAddr,
    ) -> Self {
        Self {
            stream: Box::new(stream),
            local_addr,
            read_buf: BytesMut::with_capacity(64 * 1024),
            authority,
            auto_ack_settings: true,
            auto_ack_pings: false,
        }
    }

    /// Connects and performs the [`handshake`](Self::handshake).
    pub async fn connect_and_handshake(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let mut conn = Self::connect(addr).await?;
        conn.handshake().await?;
        Ok(conn)
    }

    /// Sends the client preface and an empty SETTINGS frame, then reads frames until the
    /// server's SETTINGS (without ACK) arrives and ACKs it. Returns the frames read (the
    /// server's SETTINGS last). The server's ACK of our SETTINGS and its WINDOW_UPDATEs
    /// usually come later, through [`read_frame`](Self::read_frame).
    ///
    /// Errors with `TimedOut` if no SETTINGS arrives within 10 s.
    pub async fn handshake(&mut self) -> io::Result<Vec<Frame>> {
        let mut out = BytesMut::with_capacity(PREFACE.len() + FRAME_HEADER_LEN);
        out.put_slice(PREFACE);
        encode_frame(&mut out, Frame::SETTINGS, 0, 0, &[]);
        self.send_raw(&out).await?;
        // Read with auto-ACK off so the ACK is sent exactly once, here.
        let auto = std::mem::replace(&mut self.auto_ack_settings, false);
        let result = self
            .read_until(Duration::from_secs(10), Frame::is_settings)
            .await;
        self.auto_ack_settings = auto;
        let (mut seen, settings) = result?;
        let settings = settings.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no SETTINGS from the server within 10 s; frames: {seen:?}"),
            )
        })?;
        seen.push(settings);
        self.settings_ack().await?;
        Ok(seen)
    }

    /// Whether SETTINGS frames from the server are ACKed automatically when read
    /// (default `true`). The frame is still returned to the caller.
    pub fn set_auto_ack_settings(&mut self, on: bool) {
        self.auto_ack_settings = on;
    }

    /// Whether PINGs from the server are ACKed automatically when read (default `false`,
    /// so tests decide). The PING is still returned to the caller.
    pub fn set_auto_ack_pings(&mut self, on: bool) {
        self.auto_ack_pings = on;
    }

    /// The `host:port` of the server, used as `:authority`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The local address of the TCP connection.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        Ok(self.local_addr)
    }

    /// Writes raw bytes (anything: a partial frame, garbage).
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Writes one frame.
    pub async fn send_frame(
        &mut self,
        kind: u8,
        flags: u8,
        stream_id: u32,
        payload: &[u8],
    ) -> io::Result<()> {
        let mut out = BytesMut::new();
        encode_frame(&mut out, kind, flags, stream_id, payload);
        self.send_raw(&out).await
    }

    /// Sends a PING (no ACK) with the given opaque data.
    pub async fn ping(&mut self, data: [u8; 8]) -> io::Result<()> {
        self.send_frame(Frame::PING, 0, 0, &data).await
    }

    /// Sends a PING ACK echoing `data`.
    pub async fn ping_ack(&mut self, data: [u8; 8]) -> io::Result<()> {
        self.send_frame(Frame::PING, Frame::ACK, 0, &data).await
    }

    /// Sends a SETTINGS frame with the given `(identifier, value)` pairs.
    pub async fn settings(&mut self, settings: &[(u16, u32)]) -> io::Result<()> {
        let mut payload = BytesMut::with_capacity(settings.len() * 6);
        for &(id, value) in settings {
            payload.put_u16(id);
            payload.put_u32(value);
        }
        self.send_frame(Frame::SETTINGS, 0, 0, &payload).await
    }

    /// Sends an empty SETTINGS frame with ACK.
    pub async fn settings_ack(&mut self) -> io::Result<()> {
        self.send_frame(Frame::SETTINGS, Frame::ACK, 0, &[]).await
    }

    /// Sends a WINDOW_UPDATE (`stream_id` 0 for the connection window).
    pub async fn window_update(&mut self, stream_id: u32, increment: u32) -> io::Result<()> {
        self.send_frame(Frame::WINDOW_UPDATE, 0, stream_id, &increment.to_be_bytes())
            .await
    }

    /// Sends a RST_STREAM with the given error code.
    pub async fn rst_stream(&mut self, stream_id: u32, code: u32) -> io::Result<()> {
        self.send_frame(Frame::RST_STREAM, 0, stream_id, &code.to_be_bytes())
            .await
    }

    /// Sends a GOAWAY without debug data.
    pub async fn goaway(&mut self, last_stream_id: u32, code: u32) -> io::Result<()> {
        self.goaway_with_debug(last_stream_id, code, &[]).await
    }

    /// Sends a GOAWAY with debug data.
    pub async fn goaway_with_debug(
        &mut self,
        last_stream_id: u32,
        code: u32,
        debug: &[u8],
    ) -> io::Result<()> {
        let mut payload = BytesMut::with_capacity(8 + debug.len());
        payload.put_u32(last_stream_id & MAX_STREAM_ID);
        payload.put_u32(code);
        payload.put_slice(debug);
        self.send_frame(Frame::GOAWAY, 0, 0, &payload).await
    }

    /// Sends a header block: one HEADERS frame (END_HEADERS), or HEADERS plus CONTINUATION
    /// frames if the block exceeds 16 KiB. `end_stream` sets END_STREAM on the HEADERS.
    pub async fn send_headers<K: AsRef<str>, V: AsRef<str>>(
        &mut self,
        stream_id: u32,
        headers: &[(K, V)],
        end_stream: bool,
    ) -> io::Result<()> {
        let block = encode_headers(headers);
        let mut chunks = block.chunks(DEFAULT_MAX_FRAME_SIZE).peekable();
        let mut out = BytesMut::new();
        let mut kind = Frame::HEADERS;
        let mut flags = if end_stream { Frame::END_STREAM } else { 0 };
        loop {
            let chunk = chunks.next().unwrap_or_default();
            if chunks.peek().is_none() {
                flags |= Frame::END_HEADERS;
            }
            encode_frame(&mut out, kind, flags, stream_id, chunk);
            if flags & Frame::END_HEADERS != 0 {
                break;
            }
            kind = Frame::CONTINUATION;
            flags = 0;
        }
        self.send_raw(&out).await
    }

    /// Sends `data` in DATA frames of at most 16 KiB (one empty frame if `data` is empty);
    /// `end_stream` sets END_STREAM on the last one.
    pub async fn send_data(
        &mut self,
        stream_id: u32,
        data: &[u8],
        end_stream: bool,
    ) -> io::Result<()> {
        let mut out = BytesMut::new();
        let mut chunks = data.chunks(DEFAULT_MAX_FRAME_SIZE).peekable();
        loop {
            let chunk = chunks.next().unwrap_or_default();
            let last = chunks.peek().is_none();
            let flags = if last && end_stream {
                Frame::END_STREAM
            } else {
                0
            };
            encode_frame(&mut out, Frame::DATA, flags, stream_id, chunk);
            if last {
                break;
            }
        }
        self.send_raw(&out).await
    }

    /// Opens a gRPC call on `stream_id` (odd, increasing): HEADERS from
    /// [`grpc_request_headers`] (END_HEADERS), then DATA holding [`grpc_frame`]`(message)`,
    /// with END_STREAM if `end_stream` (a unary or server-streaming request).
    pub async fn open_grpc_stream(
        &mut self,
        stream_id: u32,
        path: &str,
        message: &[u8],
        end_stream: bool,
    ) -> io::Result<()> {
        let headers = grpc_request_headers(&self.authority, path);
        self.send_headers(stream_id, &headers, false).await?;
        self.send_data(stream_id, &grpc_frame(message), end_stream)
            .await
    }

    /// Reads one frame, waiting at most `timeout`. `Ok(None)` on timeout (a partly read
    /// frame stays buffered). On EOF the error kind is `UnexpectedEof`; a reset connection
    /// gives `ConnectionReset` (see [`is_closed_error`]).
    ///
    /// Server SETTINGS (and PINGs, if enabled) are ACKed automatically, then returned.
    pub async fn read_frame(&mut self, timeout: Duration) -> io::Result<Option<Frame>> {
        self.read_frame_until(Instant::now() + timeout).await
    }

    async fn read_frame_until(&mut self, deadline: Instant) -> io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = Frame::decode(&mut self.read_buf) {
                if self.auto_ack_settings && frame.is_settings() {
                    self.settings_ack().await?;
                }
                if self.auto_ack_pings
                    && frame.is_ping()
                    && let Some(data) = frame.ping_data()
                {
                    self.ping_ack(data).await?;
                }
                return Ok(Some(frame));
            }
            let read =
                match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.read_buf))
                    .await
                {
                    Err(_elapsed) => return Ok(None),
                    Ok(read) => read?,
                };
            if read == 0 {
                let msg = if self.read_buf.is_empty() {
                    "connection closed by the server".to_owned()
                } else {
                    format!(
                        "connection closed by the server mid-frame ({} bytes buffered)",
                        self.read_buf.len()
                    )
                };
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
            }
        }
    }

    /// Reads frames until one satisfies `predicate` or `timeout` passes. Returns the frames
    /// read before it and the matching frame (`None` on timeout). If the connection closes
    /// first, the error (kind as in [`read_frame`](Self::read_frame)) lists the frames
    /// read.
    pub async fn read_until(
        &mut self,
        timeout: Duration,
        mut predicate: impl FnMut(&Frame) -> bool,
    ) -> io::Result<(Vec<Frame>, Option<Frame>)> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match self.read_frame_until(deadline).await {
                Ok(Some(frame)) if predicate(&frame) => return Ok((seen, Some(frame))),
                Ok(Some(frame)) => seen.push(frame),
                Ok(None) => return Ok((seen, None)),
                Err(e) => {
                    return Err(io::Error::new(
                        e.kind(),
                        format!("{e}; frames read before: {seen:?}"),
                    ));
                }
            }
        }
    }

    /// Reads frames until the server closes the connection (EOF or reset) and returns the
    /// frames read before the close. Errors with `TimedOut` (listing the frames) if the
    /// connection is still open after `timeout`, or with any other I/O error.
    pub async fn expect_closed(&mut self, timeout: Duration) -> io::Result<Vec<Frame>> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match self.read_frame_until(deadline).await {
                Ok(Some(frame)) => seen.push(frame),
                Ok(None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connection still open after {timeout:?}; frames: {seen:?}"),
                    ));
                }
                Err(e) if is_closed_error(&e) => return Ok(seen),
                Err(e) => return Err(e),
            }
        }
    }

    /// Shuts down the write half (sends FIN); reading still works.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2raw::error_code;
    use bytes::Bytes;
    use tokio::net::TcpListener;

    async fn next(sock: &mut TcpStream, buf: &mut BytesMut) -> io::Result<Frame> {
        loop {
            if let Some(f) = Frame::decode(buf) {
                return Ok(f);
            }
            if sock.read_buf(buf).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// A scripted fake server: checks the preface, sends SETTINGS, expects the ACK, answers
    /// a PING, then sends a GOAWAY and closes.
    #[tokio::test]
    async fn raw_client_against_fake_server() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await?;
            let mut preface = [0u8; 24];
            sock.read_exact(&mut preface).await?;
            assert_eq!(&preface, PREFACE);
            let mut buf = BytesMut::new();
            assert!(next(&mut sock, &mut buf).await?.is_settings());
            sock.write_all(
                &Frame::new(
                    Frame::SETTINGS,
                    0,
                    0,
                    Bytes::from_static(&[0, 4, 0, 1, 0, 0]),
                )
                .encode(),
            )
            .await?;
            assert!(next(&mut sock, &mut buf).await?.is_settings_ack());
            let ping = next(&mut sock, &mut buf).await?;
            assert!(ping.is_ping());
            sock.write_all(&Frame::new(Frame::PING, Frame::ACK, 0, ping.payload).encode())
                .await?;
            let headers = next(&mut sock, &mut buf).await?;
            assert!(headers.is_headers() && headers.has_flag(Frame::END_HEADERS));
            assert_eq!(headers.stream_id, 1);
            let data = next(&mut sock, &mut buf).await?;
            assert!(data.is_data() && data.is_end_stream());
            assert_eq!(data.payload.as_ref(), b"\x00\x00\x00\x00\x03abc");
            let mut goaway = BytesMut::new();
            goaway.put_u32(1);
            goaway.put_u32(error_code::NO_ERROR);
            goaway.put_slice(b"max_idle");
            sock.write_all(&Frame::new(Frame::GOAWAY, 0, 0, goaway.freeze()).encode())
                .await?;
            Ok::<_, io::Error>(())
        });

        let mut conn = RawH2::connect(addr).await?;
        let seen = conn.handshake().await?;
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].settings(), Some(vec![(4, 65536)]));
        conn.ping(*b"pingpong").await?;
        let (before, ack) = conn
            .read_until(Duration::from_secs(5), Frame::is_ping_ack)
            .await?;
        assert!(before.is_empty());
        assert_eq!(ack.and_then(|f| f.ping_data()), Some(*b"pingpong"));
        conn.open_grpc_stream(1, "/pkg.Svc/Method", b"abc", true)
            .await?;
        let frames = conn.expect_closed(Duration::from_secs(5)).await?;
        assert_eq!(frames.len(), 1, "{frames:?}");
        let g = frames[0].goaway().expect("goaway");
        assert_eq!((g.last_stream_id, g.debug_str().as_str()), (1, "max_idle"));
        let err = conn
            .read_frame(Duration::from_secs(1))
            .await
            .expect_err("closed");
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        server.await.expect("fake server task")?;
        Ok(())
    }

    #[tokio::test]
    async fn read_frame_times_out_and_expect_closed_errors_when_open() -> io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut conn = RawH2::connect(addr).await?;
        let (_sock, _) = listener.accept().await?;
        assert!(conn.read_frame(Duration::from_millis(50)).await?.is_none());
        let err = conn
            .expect_closed(Duration::from_millis(50))
            .await
            .expect_err("still open");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        Ok(())
    }
}
