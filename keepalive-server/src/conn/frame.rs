//! The few HTTP/2 facts the observer needs (RFC 9113 §4.1, §6): frame headers, and the
//! two frames the server writes itself, PING and GOAWAY. Everything else is h2's.

/// The client connection preface.
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const HEADER_LEN: usize = 9;

/// DATA frame type.
pub const DATA: u8 = 0x0;
/// HEADERS frame type (also carries trailers).
pub const HEADERS: u8 = 0x1;
/// RST_STREAM frame type.
pub const RST_STREAM: u8 = 0x3;
/// SETTINGS frame type.
pub const SETTINGS: u8 = 0x4;
/// PING frame type.
pub const PING: u8 = 0x6;
/// GOAWAY frame type.
pub const GOAWAY: u8 = 0x7;

/// The ACK flag of SETTINGS and PING.
pub const FLAG_ACK: u8 = 0x1;

/// NO_ERROR.
pub const NO_ERROR: u32 = 0x0;
/// REFUSED_STREAM: not processed, safe to retry (gRPC maps it to UNAVAILABLE).
pub const REFUSED_STREAM: u32 = 0x7;
/// ENHANCE_YOUR_CALM: the peer is generating excessive load.
pub const ENHANCE_YOUR_CALM: u32 = 0xb;

/// Payload of the keepalive PINGs this server sends. Their ACKs are taken out of the
/// byte stream before h2 sees them (h2 would log an ACK for a PING it never sent).
pub const KEEPALIVE_PING: [u8; 8] = *b"ka-ping\x01";

/// A frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length.
    pub len: u32,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (reserved bit cleared).
    pub stream_id: u32,
}

impl FrameHeader {
    /// Parses the first nine bytes of `b`; `None` if there are fewer.
    pub fn parse(b: &[u8]) -> Option<FrameHeader> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    /// Encodes the header; lengths above 2^24-1 are truncated (never produced here).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let l = self.len.to_be_bytes();
        let s = self.stream_id.to_be_bytes();
        [
            l[1], l[2], l[3], self.kind, self.flags, s[0], s[1], s[2], s[3],
        ]
    }

    /// Header plus payload length.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.len as usize
    }
}

/// A whole frame: header and payload (whose length must fit in 24 bits).
pub fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        len: payload.len() as u32,
        kind,
        flags,
        stream_id,
    };
    let mut f = Vec::with_capacity(header.frame_len());
    f.extend_from_slice(&header.encode());
    f.extend_from_slice(payload);
    f
}

/// A PING frame (stream 0).
pub fn ping(ack: bool, payload: [u8; 8]) -> Vec<u8> {
    frame(PING, if ack { FLAG_ACK } else { 0 }, 0, &payload)
}

/// A GOAWAY frame (stream 0) with optional debug data.
pub fn goaway(last_stream_id: u32, error_code: u32, debug: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(8 + debug.len());
    payload.extend_from_slice(&(last_stream_id & 0x7fff_ffff).to_be_bytes());
    payload.extend_from_slice(&error_code.to_be_bytes());
    payload.extend_from_slice(debug);
    frame(GOAWAY, 0, 0, &payload)
}

/// The fields of a GOAWAY payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoAwayFields {
    /// Last stream id the sender may process.
    pub last_stream_id: u32,
    /// Error code.
    pub error_code: u32,
}

/// Parses the fixed part of a GOAWAY payload.
pub fn parse_goaway(payload: &[u8]) -> Option<GoAwayFields> {
    let p: &[u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(GoAwayFields {
        last_stream_id: u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff,
        error_code: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = FrameHeader {
            len: 0x01_02_03,
            kind: GOAWAY,
            flags: 0x5,
            stream_id: 0x7fff_fffe,
        };
        assert_eq!(FrameHeader::parse(&h.encode()), Some(h));
        assert_eq!(FrameHeader::parse(&[0; 8]), None);
    }

    #[test]
    fn goaway_layout() {
        let f = goaway(7, ENHANCE_YOUR_CALM, b"too_many_pings");
        let h = FrameHeader::parse(&f).expect("header");
        assert_eq!(h.len as usize, 8 + 14);
        assert_eq!(h.frame_len(), f.len());
        let g = parse_goaway(&f[HEADER_LEN..]).expect("payload");
        assert_eq!(g.last_stream_id, 7);
        assert_eq!(g.error_code, ENHANCE_YOUR_CALM);
        assert_eq!(&f[HEADER_LEN + 8..], b"too_many_pings");
    }
}
