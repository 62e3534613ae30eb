//! A raw HTTP/1.1 client, the way a browser's gRPC-web calls look on the wire: one TCP
//! connection, keep-alive, chunked responses. Just enough to assert status lines, headers,
//! and when the server closes.

use bytes::BytesMut;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One HTTP/1.1 connection.
#[derive(Debug)]
pub struct Http1 {
    stream: TcpStream,
    buf: BytesMut,
    authority: String,
}

/// A response head plus whatever body bytes were read with it.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl Response {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Http1 {
    /// Connects.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Ok(Http1 {
            stream: TcpStream::connect(addr).await?,
            buf: BytesMut::new(),
            authority: addr.to_string(),
        })
    }

    /// Sends a request with `Content-Length` framing.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.authority);
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            req.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        self.stream.write_all(req.as_bytes()).await?;
        self.stream.write_all(body).await
    }

    /// Sends raw bytes.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    async fn fill(&mut self, deadline: Instant) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
            Ok(Ok(0)) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
        }
    }

    /// Reads a response head.
    pub async fn read_head(&mut self, timeout: Duration) -> io::Result<Response> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let head = self.buf.split_to(end + 4);
                let text = String::from_utf8_lossy(&head).to_string();
                let mut lines = text.split("\r\n");
                let status = lines
                    .next()
                    .and_then(|l| l.split(' ').nth(1))
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, text.clone()))?;
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                return Ok(Response { status, headers });
            }
            self.fill(deadline).await?;
        }
    }

    /// Reads body bytes until `needle` has been seen; returns everything read up to and
    /// including it.
    pub async fn read_until(&mut self, needle: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = find(&self.buf, needle) {
                return Ok(self.buf.split_to(at + needle.len()).to_vec());
            }
            self.fill(deadline).await?;
        }
    }

    /// Waits until the server closes the connection; errors if it is still open at the
    /// timeout. Bytes read meanwhile are returned.
    pub async fn expect_closed(&mut self, timeout: Duration) -> io::Result<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline).await {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
                    ) =>
                {
                    return Ok(self.buf.split().to_vec());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether the server closed the connection within `timeout`.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        self.expect_closed(timeout).await.is_ok()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
