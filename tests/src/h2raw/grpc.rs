//! gRPC over HTTP/2 on top of the raw frames: the request headers of a call and the
//! length-prefixed message framing (1-byte compressed flag, 4-byte big-endian length) that
//! goes in DATA frames.

use bytes::{BufMut, Bytes, BytesMut};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
