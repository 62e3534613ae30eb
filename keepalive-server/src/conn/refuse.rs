//! Refusing a connection over `--max-connections`, in the client's own protocol.
//!
//! Closing at once would leave the client guessing (a reset looks like a crash). So a
//! connection over the limit is read just long enough to learn its protocol and gets a
//! refusal every client understands as "not processed, retry later":
//!
//! - HTTP/1.1: `503 Service Unavailable`, `retry-after: 1`, `connection: close` (a
//!   gRPC-web client maps 503 to `UNAVAILABLE`);
//! - HTTP/2: the server preface (an empty SETTINGS) and GOAWAY with last-stream-id 0,
//!   `REFUSED_STREAM` and debug data `too_many_connections` (gRPC maps `REFUSED_STREAM` to
//!   `UNAVAILABLE`, and no stream was processed, so every call on it may be retried).
//!
//! Then FIN, and a short lingering read so the refusal is not destroyed by a reset over
//! unread request bytes. Each refusal is bounded in time ([`SNIFF_TIMEOUT`],
//! [`WRITE_TIMEOUT`], [`LINGER`]) and the number of refusals in progress is bounded too
//! (the caller's business): past that, connections are reset at once. The answer is
//! written through `AsyncRead + AsyncWrite`, so the same refusal works over TLS.

use super::frame;
use super::shared::Proto;
use crate::stats::TransportStats as Stats;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a connection over the limit may take to show its protocol.
pub const SNIFF_TIMEOUT: Duration = Duration::from_secs(1);
/// How long writing the refusal may take.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the client's remaining bytes are read and dropped after the refusal.
pub const LINGER: Duration = Duration::from_secs(1);
/// Refusals in progress at once; past this, connections over the limit are reset.
pub const MAX_REFUSING: usize = 64;
/// GOAWAY debug data (and log reason) of a refused HTTP/2 connection.
pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";

/// The HTTP/1.1 refusal.
pub const HTTP1_REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\
content-length: 21\r\n\
\r\n\
too many connections\n";

/// The bytes that refuse a connection speaking `proto`.
pub fn refusal(proto: Proto) -> Vec<u8> {
    match proto {
        Proto::H1 => HTTP1_REFUSAL.to_vec(),
        Proto::H2 => {
            let mut b = frame::frame(frame::SETTINGS, 0, 0, &[]);
            b.extend(frame::goaway(
                0,
                frame::REFUSED_STREAM,
                TOO_MANY_CONNECTIONS.as_bytes(),
            ));
            b
        }
    }
}

/// Writes the refusal for `proto`, sends FIN, and drops what the client still sends
/// for up to [`LINGER`] (until it closes).
pub async fn answer<IO>(io: &mut IO, proto: Proto) -> std::io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    tokio::time::timeout(WRITE_TIMEOUT, async {
        io.write_all(&refusal(proto)).await?;
        io.flush().await?;
        io.shutdown().await
    })
    .await
    .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 4096];
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    Ok(())
}

/// Refuses an accepted TCP connection: learns its protocol from its first bytes (within
/// [`SNIFF_TIMEOUT`]), then [`answer`]s. A client that sends nothing in time is closed.
pub async fn refuse_tcp(mut sock: TcpStream, peer: SocketAddr, stats: &Stats) {
    Stats::inc(&stats.connections_refused_limit);
    let proto = match tokio::time::timeout(SNIFF_TIMEOUT, super::sniff(&sock)).await {
        Ok(Ok(Some(sniffed))) => sniffed.proto,
        _ => {
            tracing::debug!(%peer, "connection over the limit closed: no request");
            return;
        }
    };
    let result = answer(&mut sock, proto).await;
    tracing::debug!(%peer, proto = proto.as_str(), ?result, "connection refused: too many connections");
}

/// [`refuse_tcp`] for a TLS listener: the handshake (within [`SNIFF_TIMEOUT`]) says the
/// protocol by ALPN, and the refusal goes inside TLS.
pub async fn refuse_tls(tls: &super::tls::Tls, sock: TcpStream, peer: SocketAddr, stats: &Stats) {
    Stats::inc(&stats.connections_refused_limit);
    let mut stream = match tokio::time::timeout(SNIFF_TIMEOUT, tls.accept(sock)).await {
        Ok(Ok(stream)) => stream,
        _ => {
            tracing::debug!(%peer, "connection over the limit closed: no TLS handshake");
            return;
        }
    };
    let proto = super::tls::negotiated(&stream);
    let result = answer(&mut stream, proto).await;
    tracing::debug!(%peer, proto = proto.as_str(), ?result, "connection refused: too many connections");
}

/// Resets a connection at once (SO_LINGER 0, then close): for when even refusing
/// politely is over its bound.
pub fn reset(sock: TcpStream) {
    let _ = socket2::SockRef::from(&sock).set_linger(Some(Duration::ZERO));
    drop(sock);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_refusal_is_a_whole_response() {
        let text = std::str::from_utf8(HTTP1_REFUSAL).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }

    #[test]
    fn http2_refusal_is_settings_then_goaway_refused_stream() {
        let b = refusal(Proto::H2);
        let settings = frame::FrameHeader::parse(&b).expect("settings");
        assert_eq!(
            (settings.kind, settings.len, settings.stream_id),
            (frame::SETTINGS, 0, 0)
        );
        let rest = &b[settings.frame_len()..];
        let goaway = frame::FrameHeader::parse(rest).expect("goaway");
        assert_eq!(goaway.kind, frame::GOAWAY);
        assert_eq!(goaway.frame_len(), rest.len());
        let fields = frame::parse_goaway(&rest[frame::HEADER_LEN..]).expect("fields");
        assert_eq!(
            (fields.last_stream_id, fields.error_code),
            (0, frame::REFUSED_STREAM)
        );
        assert_eq!(
            &rest[frame::HEADER_LEN + 8..],
            TOO_MANY_CONNECTIONS.as_bytes()
        );
    }

    #[tokio::test]
    async fn answer_writes_the_refusal_and_closes() {
        let (mut server, mut client) = tokio::io::duplex(1024);
        let task = tokio::spawn(async move { answer(&mut server, Proto::H1).await });
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, HTTP1_REFUSAL);
        drop(client);
        task.await.expect("join").expect("answer");
    }
}
