//! A raw HTTP/2 frame client (RFC 9113) for frame-level assertions.
//!
//! This is not an HTTP/2 implementation: [`RawH2`] writes exactly the frames it is told to
//! and hands back every frame it reads, so tests can check what the server puts on the wire
//! (PINGs, GOAWAYs with their debug data, the moment the connection closes) and can misbehave
//! on purpose (ping floods, never ACKing a PING). The only automatic behaviour is ACKing the
//! server's SETTINGS (on by default, as every peer must) and, if asked, ACKing its PINGs.
//!
//! Request headers are HPACK-encoded without a library, as literal fields without indexing
//! and without Huffman coding ([`encode_headers`]); responses are not decoded.

use std::fmt;
use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::time::Instant;

/// The 24-byte client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = 9;

/// Default SETTINGS_MAX_FRAME_SIZE; [`RawH2`] never sends larger HEADERS/DATA payloads.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16_384;

/// Largest stream id (2^31-1), the last-stream-id of the first GOAWAY of a graceful close.
pub const MAX_STREAM_ID: u32 = 0x7fff_ffff;

/// HTTP/2 error codes (RFC 9113 §7), as found in RST_STREAM and GOAWAY frames.
pub mod error_code {
    /// Graceful shutdown / no error.
    pub const NO_ERROR: u32 = 0x0;
    /// Protocol error detected.
    pub const PROTOCOL_ERROR: u32 = 0x1;
    /// Implementation fault.
    pub const INTERNAL_ERROR: u32 = 0x2;
    /// Flow-control limits exceeded.
    pub const FLOW_CONTROL_ERROR: u32 = 0x3;
    /// Settings not acknowledged.
    pub const SETTINGS_TIMEOUT: u32 = 0x4;
    /// Frame received for a closed stream.
    pub const STREAM_CLOSED: u32 = 0x5;
    /// Frame size incorrect.
    pub const FRAME_SIZE_ERROR: u32 = 0x6;
    /// Stream not processed.
    pub const REFUSED_STREAM: u32 = 0x7;
    /// Stream cancelled.
    pub const CANCEL: u32 = 0x8;
    /// Compression state not updated.
    pub const COMPRESSION_ERROR: u32 = 0x9;
    /// TCP connection error for CONNECT method.
    pub const CONNECT_ERROR: u32 = 0xa;
    /// Processing capacity exceeded (used for `too_many_pings`).
    pub const ENHANCE_YOUR_CALM: u32 = 0xb;
    /// Negotiated TLS parameters not acceptable.
    pub const INADEQUATE_SECURITY: u32 = 0xc;
    /// Use HTTP/1.1 for the request.
    pub const HTTP_1_1_REQUIRED: u32 = 0xd;

    /// The RFC name of an error code, or `"UNKNOWN"`.
    pub fn name(code: u32) -> &'static str {
        match code {
            NO_ERROR => "NO_ERROR",
            PROTOCOL_ERROR => "PROTOCOL_ERROR",
            INTERNAL_ERROR => "INTERNAL_ERROR",
            FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
            SETTINGS_TIMEOUT => "SETTINGS_TIMEOUT",
            STREAM_CLOSED => "STREAM_CLOSED",
            FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
            REFUSED_STREAM => "REFUSED_STREAM",
            CANCEL => "CANCEL",
            COMPRESSION_ERROR => "COMPRESSION_ERROR",
            CONNECT_ERROR => "CONNECT_ERROR",
            ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM",
            INADEQUATE_SECURITY => "INADEQUATE_SECURITY",
            HTTP_1_1_REQUIRED => "HTTP_1_1_REQUIRED",
            _ => "UNKNOWN",
        }
    }
}

/// One HTTP/2 frame as read from or written to the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// Frame type (see the `Frame::DATA`.. constants).
    pub kind: u8,
    /// Flags (see the `Frame::ACK`.. constants).
    pub flags: u8,
    /// Stream identifier (the reserved bit cleared).
    pub stream_id: u32,
    /// The frame payload (padding included, for padded frames).
    pub payload: Bytes,
}

/// Contents of a GOAWAY frame.
#[derive(Clone, PartialEq, Eq)]
pub struct GoAway {
    /// Highest stream id the sender may have processed.
    pub last_stream_id: u32,
    /// Error code (see [`error_code`]).
    pub error_code: u32,
    /// Additional debug data (e.g. `too_many_pings`, `max_idle`, `max_age`).
    pub debug: Bytes,
}

impl GoAway {
    /// The debug data as (lossy) UTF-8 text.
    pub fn debug_str(&self) -> String {
        String::from_utf8_lossy(&self.debug).into_owned()
    }
}

impl fmt::Debug for GoAway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GoAway {{ last_stream_id: {}, error: {} ({:#x}), debug: {:?} }}",
            self.last_stream_id,
            error_code::name(self.error_code),
            self.error_code,
            self.debug_str()
        )
    }
}

impl Frame {
    /// DATA frame type.
    pub const DATA: u8 = 0x0;
    /// HEADERS frame type.
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY frame type.
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM frame type.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS frame type.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE frame type.
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING frame type.
    pub const PING: u8 = 0x6;
    /// GOAWAY frame type.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE frame type.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION frame type.
    pub const CONTINUATION: u8 = 0x9;

    /// ACK flag (SETTINGS, PING).
    pub const ACK: u8 = 0x1;
    /// END_STREAM flag (DATA, HEADERS).
    pub const END_STREAM: u8 = 0x1;
    /// END_HEADERS flag (HEADERS, CONTINUATION, PUSH_PROMISE).
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED flag (DATA, HEADERS, PUSH_PROMISE).
    pub const PADDED: u8 = 0x8;
    /// PRIORITY flag (HEADERS).
    pub const PRIORITY_FLAG: u8 = 0x20;

    /// A frame with the given fields.
    pub fn new(kind: u8, flags: u8, stream_id: u32, payload: impl Into<Bytes>) -> Self {
        Self {
            kind,
            flags,
            stream_id: stream_id & MAX_STREAM_ID,
            payload: payload.into(),
        }
    }

    /// The wire encoding: 9-byte header then payload.
    ///
    /// # Panics
    /// If the payload is longer than 2^24-1 bytes.
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(FRAME_HEADER_LEN + self.payload.len());
        encode_frame(
            &mut out,
            self.kind,
            self.flags,
            self.stream_id,
            &self.payload,
        );
        out.freeze()
    }

    /// Parses one complete frame from the front of `buf`, consuming it; `None` (and `buf`
    /// untouched) if `buf` does not hold a whole frame yet.
    pub fn decode(buf: &mut BytesMut) -> Option<Frame> {
        if buf.len() < FRAME_HEADER_LEN {
            return None;
        }
        let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
        if buf.len() < FRAME_HEADER_LEN + len {
            return None;
        }
        let kind = buf[3];
        let flags = buf[4];
        let stream_id = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & MAX_STREAM_ID;
        buf.advance(FRAME_HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        Some(Frame {
            kind,
            flags,
            stream_id,
            payload,
        })
    }

    /// Whether `flag` is set.
    pub fn has_flag(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// The RFC name of the frame type (`"PING"`), or `"UNKNOWN"`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Self::DATA => "DATA",
            Self::HEADERS => "HEADERS",
            Self::PRIORITY => "PRIORITY",
            Self::RST_STREAM => "RST_STREAM",
            Self::SETTINGS => "SETTINGS",
            Self::PUSH_PROMISE => "PUSH_PROMISE",
            Self::PING => "PING",
            Self::GOAWAY => "GOAWAY",
            Self::WINDOW_UPDATE => "WINDOW_UPDATE",
            Self::CONTINUATION => "CONTINUATION",
            _ => "UNKNOWN",
        }
    }

    /// A PING without ACK (a ping from the peer that wants an answer).
    pub fn is_ping(&self) -> bool {
        self.kind == Self::PING && !self.has_flag(Self::ACK)
    }

    /// A PING with ACK.
    pub fn is_ping_ack(&self) -> bool {
        self.kind == Self::PING && self.has_flag(Self::ACK)
    }

    /// A SETTINGS frame without ACK.
    pub fn is_settings(&self) -> bool {
        self.kind == Self::SETTINGS && !self.has_flag(Self::ACK)
    }

    /// A SETTINGS frame with ACK.
    pub fn is_settings_ack(&self) -> bool {
        self.kind == Self::SETTINGS && self.has_flag(Self::ACK)
    }

    /// A GOAWAY frame.
    pub fn is_goaway(&self) -> bool {
        self.kind == Self::GOAWAY
    }

    /// A HEADERS frame.
    pub fn is_headers(&self) -> bool {
        self.kind == Self::HEADERS
    }

    /// A DATA frame.
    pub fn is_data(&self) -> bool {
        self.kind == Self::DATA
    }

    /// A RST_STREAM frame.
    pub fn is_rst_stream(&self) -> bool {
        self.kind == Self::RST_STREAM
    }

    /// A DATA or HEADERS frame with END_STREAM (e.g. the trailers ending a gRPC response).
    pub fn is_end_stream(&self) -> bool {
        matches!(self.kind, Self::DATA | Self::HEADERS) && self.has_flag(Self::END_STREAM)
    }

    /// The 8 opaque bytes of a PING (ACK or not).
    pub fn ping_data(&self) -> Option<[u8; 8]> {
        if self.kind != Self::PING {
            return None;
        }
        self.payload.as_ref().try_into().ok()
    }

    /// The contents of a GOAWAY frame.
    pub fn goaway(&self) -> Option<GoAway> {
        if self.kind != Self::GOAWAY || self.payload.len() < 8 {
            return None;
        }
        let p = &self.payload;
        Some(GoAway {
            last_stream_id: u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & MAX_STREAM_ID,
            error_code: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
            debug: p.slice(8..),
        })
    }

    /// The error code of a RST_STREAM frame.
    pub fn rst_stream_code(&self) -> Option<u32> {
        if self.kind != Self::RST_STREAM {
            return None;
        }
        let p: [u8; 4] = self.payload.as_ref().try_into().ok()?;
        Some(u32::from_be_bytes(p))
    }

    /// The increment of a WINDOW_UPDATE frame.
    pub fn window_increment(&self) -> Option<u32> {
        if self.kind != Self::WINDOW_UPDATE {
            return None;
        }
        let p: [u8; 4] = self.payload.as_ref().try_into().ok()?;
        Some(u32::from_be_bytes(p) & MAX_STREAM_ID)
    }

    /// The `(identifier, value)` pairs of a SETTINGS frame.
    pub fn settings(&self) -> Option<Vec<(u16, u32)>> {
        if self.kind != Self::SETTINGS || !self.payload.len().is_multiple_of(6) {
            return None;
        }
        Some(
            self.payload
                .chunks_exact(6)
                .map(|c| {
                    (
                        u16::from_be_bytes([c[0], c[1]]),
                        u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                    )
                })
                .collect(),
        )
    }
}

fn flag_names(kind: u8, flags: u8) -> Vec<&'static str> {
    let known: &[(u8, &'static str)] = match kind {
        Frame::SETTINGS | Frame::PING => &[(Frame::ACK, "ACK")],
        Frame::DATA => &[(Frame::END_STREAM, "END_STREAM"), (Frame::PADDED, "PADDED")],
        Frame::HEADERS => &[
            (Frame::END_STREAM, "END_STREAM"),
            (Frame::END_HEADERS, "END_HEADERS"),
            (Frame::PADDED, "PADDED"),
            (Frame::PRIORITY_FLAG, "PRIORITY"),
        ],
        Frame::CONTINUATION => &[(Frame::END_HEADERS, "END_HEADERS")],
        Frame::PUSH_PROMISE => &[
            (Frame::END_HEADERS, "END_HEADERS"),
            (Frame::PADDED, "PADDED"),
        ],
        _ => &[],
    };
    known
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|&(_, name)| name)
        .collect()
}

impl fmt::Debug for Frame {
    /// e.g. `PING[ACK] stream=0 data=0102030405060708`,
    /// `GOAWAY stream=0 last_stream_id=1 error=ENHANCE_YOUR_CALM (0xb) debug="too_many_pings"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind_name())?;
        if self.kind_name() == "UNKNOWN" {
            write!(f, "({:#x})", self.kind)?;
        }
        let names = flag_names(self.kind, self.flags);
        if !names.is_empty() {
            write!(f, "[{}]", names.join("|"))?;
        }
        if self.flags != 0 && names.is_empty() {
            write!(f, "[flags={:#x}]", self.flags)?;
        }
        write!(f, " stream={}", self.stream_id)?;
        if let Some(data) = self.ping_data() {
            write!(f, " data=")?;
            for b in data {
                write!(f, "{b:02x}")?;
            }
            return Ok(());
        }
        if let Some(g) = self.goaway() {
            return write!(
                f,
                " last_stream_id={} error={} ({:#x}) debug={:?}",
                g.last_stream_id,
                error_code::name(g.error_code),
                g.error_code,
                g.debug_str()
            );
        }
        if let Some(code) = self.rst_stream_code() {
            return write!(f, " error={} ({code:#x})", error_code::name(code));
        }
        if let Some(inc) = self.window_increment() {
            return write!(f, " increment={inc}");
        }
        if let Some(settings) = self.settings() {
            if !settings.is_empty() {
                write!(f, " {settings:?}")?;
            }
            return Ok(());
        }
        write!(f, " len={}", self.payload.len())
    }
}

fn encode_frame(out: &mut BytesMut, kind: u8, flags: u8, stream_id: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l < (1 << 24))
        .expect("HTTP/2 frame payload must be shorter than 2^24 bytes");
    out.reserve(FRAME_HEADER_LEN + payload.len());
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_u8(kind);
    out.put_u8(flags);
    out.put_u32(stream_id & MAX_STREAM_ID);
    out.put_slice(payload);
}

/// Appends `value` as an HPACK integer with an `prefix_bits`-bit prefix (RFC 7541 §5.1);
/// `first_byte` holds the bits above the prefix (e.g. the H flag).
pub fn encode_hpack_int(out: &mut BytesMut, value: usize, prefix_bits: u8, first_byte: u8) {
    assert!((1..=8).contains(&prefix_bits), "prefix must be 1..=8 bits");
    let max_prefix = (1usize << prefix_bits) - 1;
    if value < max_prefix {
        // Fits in the prefix: value < max_prefix <= 255.
        out.put_u8(first_byte | value as u8);
        return;
    }
    out.put_u8(first_byte | max_prefix as u8);
    let mut rest = value - max_prefix;
    while rest >= 128 {
        out.put_u8((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    out.put_u8(rest as u8);
}

/// HPACK-encodes headers as "Literal Header Field without Indexing — New Name"
/// (RFC 7541 §6.2.2), no Huffman coding, no table use: `0x00`, name length (7-bit prefix),
/// name, value length (7-bit prefix), value. Names are sent as given (HTTP/2 wants them
/// lowercase).
pub fn encode_headers<K: AsRef<str>, V: AsRef<str>>(headers: &[(K, V)]) -> Bytes {
    let mut out = BytesMut::new();
    for (name, value) in headers {
        let (name, value) = (name.as_ref().as_bytes(), value.as_ref().as_bytes());
        out.put_u8(0x00);
        encode_hpack_int(&mut out, name.len(), 7, 0x00);
        out.put_slice(name);
        encode_hpack_int(&mut out, value.len(), 7, 0x00);
        out.put_slice(value);
    }
    out.freeze()
}

/// The request headers of a gRPC call: `:method POST`, `:scheme http`, `:path`,
/// `:authority`, `content-type application/grpc`, `te trailers`.
pub fn grpc_request_headers(authority: &str, path: &str) -> Vec<(String, String)> {
    [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A gRPC length-prefixed message: compressed flag 0, 4-byte big-endian length, message.
pub fn grpc_frame(message: &[u8]) -> Bytes {
    let len = u32::try_from(message.len()).expect("gRPC message shorter than 4 GiB");
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(len);
    out.put_slice(message);
    out.freeze()
}

/// Splits concatenated gRPC length-prefixed messages (e.g. the payloads of a stream's DATA
/// frames, joined) into the messages. Errors on a truncated message or a compressed one.
pub fn decode_grpc_frames(mut buf: &[u8]) -> Result<Vec<Bytes>, String> {
    let mut messages = Vec::new();
    while !buf.is_empty() {
        if buf.len() < 5 {
            return Err(format!("truncated gRPC prefix: {} bytes left", buf.len()));
        }
        if buf[0] != 0 {
            return Err(format!("compressed flag {} not supported", buf[0]));
        }
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        let body = &buf[5..];
        if body.len() < len {
            return Err(format!(
                "truncated gRPC message: want {len} bytes, have {}",
                body.len()
            ));
        }
        messages.push(Bytes::copy_from_slice(&body[..len]));
        buf = &body[len..];
    }
    Ok(messages)
}

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
    use tokio::net::TcpListener;

    fn int(value: usize, prefix: u8) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_hpack_int(&mut out, value, prefix, 0);
        out.to_vec()
    }

    #[test]
    fn hpack_integers_rfc7541_c1() {
        // C.1.1: 10 with a 5-bit prefix.
        assert_eq!(int(10, 5), [0b0000_1010]);
        // C.1.2: 1337 with a 5-bit prefix.
        assert_eq!(int(1337, 5), [31, 154, 10]);
        // C.1.3: 42 starting at an octet boundary.
        assert_eq!(int(42, 8), [42]);
        // Boundaries of the 7-bit prefix used for string lengths.
        assert_eq!(int(126, 7), [126]);
        assert_eq!(int(127, 7), [127, 0]);
        assert_eq!(int(128, 7), [127, 1]);
        assert_eq!(int(255, 7), [127, 128, 1]);
        // Flag bits above the prefix are kept.
        let mut out = BytesMut::new();
        encode_hpack_int(&mut out, 3, 7, 0x80);
        assert_eq!(out.as_ref(), [0x83]);
    }

    #[test]
    fn hpack_literal_without_indexing() {
        // RFC 7541 C.2.2 uses a indexed name; this is the new-name form of the same field.
        assert_eq!(
            encode_headers(&[(":path", "/a")]).as_ref(),
            b"\x00\x05:path\x02/a"
        );
        let long = "x".repeat(200);
        let block = encode_headers(&[("k", long.as_str())]);
        assert_eq!(&block[..5], b"\x00\x01k\x7f\x49"); // 200 = 127 + 73
        assert_eq!(block.len(), 5 + 200);
    }

    #[test]
    fn frame_round_trip_and_partial_decode() {
        let frames = [
            Frame::new(Frame::PING, Frame::ACK, 0, &b"12345678"[..]),
            Frame::new(Frame::HEADERS, Frame::END_HEADERS, 3, vec![0u8; 70_000]),
            Frame::new(Frame::SETTINGS, 0, 0, Bytes::new()),
        ];
        let mut wire = BytesMut::new();
        for f in &frames {
            wire.extend_from_slice(&f.encode());
        }
        // Byte by byte: nothing decodes until a frame is complete.
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for b in wire {
            buf.put_u8(b);
            if let Some(f) = Frame::decode(&mut buf) {
                decoded.push(f);
            }
        }
        assert!(buf.is_empty());
        assert_eq!(decoded, frames);
        assert_eq!(decoded[0].ping_data(), Some(*b"12345678"));
        assert!(decoded[0].is_ping_ack() && !decoded[0].is_ping());
    }

    #[test]
    fn goaway_parse_and_debug_format() {
        let mut payload = BytesMut::new();
        payload.put_u32(0x8000_0005); // reserved bit must be ignored
        payload.put_u32(error_code::ENHANCE_YOUR_CALM);
        payload.put_slice(b"too_many_pings");
        let frame = Frame::new(Frame::GOAWAY, 0, 0, payload.freeze());
        let g = frame.goaway().expect("goaway");
        assert_eq!(g.last_stream_id, 5);
        assert_eq!(g.error_code, error_code::ENHANCE_YOUR_CALM);
        assert_eq!(g.debug_str(), "too_many_pings");
        assert_eq!(
            format!("{frame:?}"),
            r#"GOAWAY stream=0 last_stream_id=5 error=ENHANCE_YOUR_CALM (0xb) debug="too_many_pings""#
        );
        let ping = Frame::new(
            Frame::PING,
            Frame::ACK,
            0,
            Bytes::from_static(&[1, 2, 3, 4, 5, 6, 7, 8]),
        );
        assert_eq!(
            format!("{ping:?}"),
            "PING[ACK] stream=0 data=0102030405060708"
        );
        let data = Frame::new(Frame::DATA, Frame::END_STREAM, 1, &b"abc"[..]);
        assert_eq!(format!("{data:?}"), "DATA[END_STREAM] stream=1 len=3");
        let settings = Frame::new(
            Frame::SETTINGS,
            0,
            0,
            Bytes::from_static(&[0, 3, 0, 0, 0, 100]),
        );
        assert_eq!(settings.settings(), Some(vec![(3, 100)]));
        assert_eq!(format!("{settings:?}"), "SETTINGS stream=0 [(3, 100)]");
    }

    #[test]
    fn grpc_framing() {
        let framed = grpc_frame(b"hi");
        assert_eq!(framed.as_ref(), b"\x00\x00\x00\x00\x02hi");
        let mut two = framed.to_vec();
        two.extend_from_slice(&grpc_frame(b""));
        assert_eq!(
            decode_grpc_frames(&two),
            Ok(vec![Bytes::from_static(b"hi"), Bytes::new()])
        );
        assert!(decode_grpc_frames(&framed[..4]).is_err());
        assert!(decode_grpc_frames(&framed[..6]).is_err());
    }

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
