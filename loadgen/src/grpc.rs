//! gRPC and gRPC-web framing, hand-rolled over hyper: what a browser's gRPC-web client
//! puts on the wire, without a generated client or a tower stack in the way.
//!
//! Both protocols carry length-prefixed messages (`flag:u8, len:u32be, bytes`). They differ
//! in where the status goes: gRPC (HTTP/2) sends it in HTTP trailers; gRPC-web sends it in
//! a last frame whose flag has bit `0x80` set, holding `name:value\r\n` lines (or in the
//! response headers when the answer is trailers-only, as with an immediate error).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::HeaderMap;
use prost::Message;

/// Which protocol a call speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// gRPC-web (`application/grpc-web+proto`), as a browser sends it over HTTP/1.1.
    Web,
    /// Native gRPC (`application/grpc`) over HTTP/2.
    Grpc,
}

impl Wire {
    /// The request's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Wire::Web => "application/grpc-web+proto",
            Wire::Grpc => "application/grpc",
        }
    }
}

/// A gRPC status the server sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// `grpc-status`.
    pub code: u32,
    /// `grpc-message` (as sent, percent-encoding kept).
    pub message: String,
}

/// gRPC status codes used here.
pub mod code {
    /// OK.
    pub const OK: u32 = 0;
    /// NOT_FOUND.
    pub const NOT_FOUND: u32 = 5;
    /// PERMISSION_DENIED.
    pub const PERMISSION_DENIED: u32 = 7;
    /// RESOURCE_EXHAUSTED.
    pub const RESOURCE_EXHAUSTED: u32 = 8;
    /// UNAVAILABLE.
    pub const UNAVAILABLE: u32 = 14;
    /// DEADLINE_EXCEEDED.
    pub const DEADLINE_EXCEEDED: u32 = 4;
    /// UNAUTHENTICATED.
    pub const UNAUTHENTICATED: u32 = 16;

    /// Whether `code` refuses the session itself (a new one must be opened):
    /// UNAUTHENTICATED (an id the server does not take), NOT_FOUND (older servers).
    pub fn session_refused(code: Option<u32>) -> bool {
        matches!(code, Some(UNAUTHENTICATED | NOT_FOUND))
    }
}

/// Why a call gave no message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The server answered with a non-OK status: it is alive.
    Status(Status),
    /// No usable answer: connect failed, connection lost, malformed response.
    Transport(String),
}

impl CallError {
    /// A transport error with `what` as its text.
    pub fn transport(what: impl std::fmt::Display) -> Self {
        CallError::Transport(what.to_string())
    }

    /// The status code, if the server answered.
    pub fn code(&self) -> Option<u32> {
        match self {
            CallError::Status(s) => Some(s.code),
            CallError::Transport(_) => None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Status(s) => write!(f, "status {} {}", s.code, s.message),
            CallError::Transport(t) => write!(f, "transport: {t}"),
        }
    }
}

/// One length-prefixed message as a request body.
pub fn encode(msg: &impl Message) -> Bytes {
    let len = msg.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    // Encoding into a buffer with enough capacity cannot fail.
    let _ = msg.encode(&mut buf);
    buf.freeze()
}

/// A frame of a response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A message's bytes.
    Message(Bytes),
    /// gRPC-web trailers: the status.
    Trailers(Status),
}

/// Splits a response body into frames as its bytes arrive.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

/// The largest message accepted (the server's default limit is 4 MiB).
const MAX_FRAME: usize = 16 << 20;

impl Decoder {
    /// Appends body bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether bytes of an unfinished frame are buffered.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next complete frame, if buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, CallError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let flag = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_FRAME {
            return Err(CallError::transport(format!("frame of {len} bytes")));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        let body = self.buf.split_to(len).freeze();
        if flag & 0x80 != 0 {
            return Ok(Some(Frame::Trailers(parse_trailer_block(&body))));
        }
        if flag & 0x01 != 0 {
            return Err(CallError::transport("compressed message not asked for"));
        }
        Ok(Some(Frame::Message(body)))
    }
}

/// The status in a gRPC-web trailer block (`name:value\r\n` lines).
pub fn parse_trailer_block(block: &[u8]) -> Status {
    let text = String::from_utf8_lossy(block);
    let mut status = Status {
        code: code::UNAVAILABLE,
        message: "trailers without grpc-status".into(),
    };
    let mut message = String::new();
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "grpc-status" => {
                if let Ok(c) = value.trim().parse() {
                    status.code = c;
                    status.message.clear();
                }
            }
            "grpc-message" => message = value.trim().to_string(),
            _ => {}
        }
    }
    if status.message.is_empty() {
        status.message = message;
    }
    status
}

/// The status in HTTP headers or trailers, if present.
pub fn status_of(headers: &HeaderMap) -> Option<Status> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    Some(Status { code, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_pushes() {
        let msg = keepalive_proto::v1::HeartbeatRequest {
            session_id: "abc".into(),
            sequence: 7,
            client_send_time_ms: 1.5,
        };
        let bytes = encode(&msg);
        let mut d = Decoder::default();
        d.push(&bytes[..3]);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&bytes[3..]);
        let trailers = b"grpc-status:5\r\ngrpc-message:gone\r\n";
        d.push(&[0x80, 0, 0, 0, trailers.len() as u8]);
        d.push(trailers);
        let Ok(Some(Frame::Message(m))) = d.next_frame() else {
            panic!("no message")
        };
        assert_eq!(keepalive_proto::v1::HeartbeatRequest::decode(m), Ok(msg));
        assert_eq!(
            d.next_frame(),
            Ok(Some(Frame::Trailers(Status {
                code: code::NOT_FOUND,
                message: "gone".into()
            })))
        );
        assert!(d.is_empty());
    }
}
