//! The HTTP/2 frame layer (RFC 9113 §4, §6): the frame header and type/flag constants,
//! [`Frame`] encoding and decoding with typed views of its payload (PING data, [`GoAway`],
//! RST_STREAM and WINDOW_UPDATE values, SETTINGS pairs), and the [`error_code`]s, so the
//! client and the tests read and build frames in one place.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The 24-byte client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of a frame header.
pub const FRAME_HEADER_LEN: usize = 9;

/// Default SETTINGS_MAX_FRAME_SIZE; [`RawH2`](super::RawH2) never sends larger HEADERS/DATA
/// payloads.
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

/// Appends the wire encoding of one frame (9-byte header, then `payload`) to `out`.
///
/// # Panics
/// If the payload is longer than 2^24-1 bytes.
pub(super) fn encode_frame(
    out: &mut BytesMut,
    kind: u8,
    flags: u8,
    stream_id: u32,
    payload: &[u8],
) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
