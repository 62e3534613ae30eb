//! A browser-shaped gRPC-web client over raw HTTP/1.1 (what a page on plain http uses):
//! `application/grpc-web+proto` requests on a keep-alive connection, responses read frame
//! by frame from a chunked (or sized) body, so tests see each message when it arrives.

use prost::Message;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// One gRPC-web frame of a response body.
#[derive(Debug, PartialEq, Eq)]
pub enum WebFrame {
    /// A message (still encoded).
    Message(Vec<u8>),
    /// The trailers block (`grpc-status:0\r\n...`).
    Trailers(String),
}

#[derive(Debug)]
enum Body {
    Chunked,
    Sized(usize),
}

/// A keep-alive HTTP/1.1 connection speaking gRPC-web.
#[derive(Debug)]
pub struct WebConn {
    sock: TcpStream,
    authority: String,
    raw: Vec<u8>,
    body: Vec<u8>,
    mode: Option<Body>,
    ended: bool,
}

impl WebConn {
    /// Connects.
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Ok(WebConn {
            sock: TcpStream::connect(addr).await?,
            authority: addr.to_string(),
            raw: Vec::new(),
            body: Vec::new(),
            mode: None,
            ended: false,
        })
    }

    /// Sends a gRPC-web call of `method`: `Heartbeat` and `OpenSession` of
    /// `keepalive.v1.Session`, any other of the demo's `keepalive.demo.v1.Feed`.
    pub async fn send(&mut self, method: &str, msg: &impl Message) -> io::Result<()> {
        let payload = msg.encode_to_vec();
        let mut body = vec![0u8];
        body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        body.extend_from_slice(&payload);
        let service = match method {
            "Heartbeat" | "OpenSession" => "keepalive.v1.Session",
            _ => "keepalive.demo.v1.Feed",
        };
        let head = format!(
            "POST /{service}/{method} HTTP/1.1\r\nhost: {}\r\n\
             content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
             accept: application/grpc-web+proto\r\ncontent-length: {}\r\n\r\n",
            self.authority,
            body.len()
        );
        self.sock.write_all(head.as_bytes()).await?;
        self.sock.write_all(&body).await
    }

    /// Reads the response head; returns the status.
    pub async fn head(&mut self, timeout: Duration) -> io::Result<u16> {
        let deadline = Instant::now() + timeout;
        let end = loop {
            if let Some(at) = find(&self.raw, b"\r\n\r\n") {
                break at;
            }
            self.read_more(deadline).await?;
        };
        let head = String::from_utf8_lossy(&self.raw[..end]).to_ascii_lowercase();
        self.raw.drain(..end + 4);
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, head.clone()))?;
        let sized = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok());
        self.mode = Some(match sized {
            Some(n) => Body::Sized(n),
            None => Body::Chunked,
        });
        self.body.clear();
        self.ended = false;
        Ok(status)
    }

    /// The next frame of the body; `None` when the body ended.
    pub async fn frame(&mut self, timeout: Duration) -> io::Result<Option<WebFrame>> {
        let deadline = Instant::now() + timeout;
        loop {
            self.decode_body();
            if self.body.len() >= 5 {
                let len =
                    u32::from_be_bytes([self.body[1], self.body[2], self.body[3], self.body[4]])
                        as usize;
                if self.body.len() >= 5 + len {
                    let flag = self.body[0];
                    let data: Vec<u8> = self.body.drain(..5 + len).skip(5).collect();
                    return Ok(Some(if flag & 0x80 != 0 {
                        WebFrame::Trailers(String::from_utf8_lossy(&data).to_string())
                    } else {
                        WebFrame::Message(data)
                    }));
                }
            }
            if self.ended {
                return Ok(None);
            }
            self.read_more(deadline).await?;
        }
    }

    /// A unary call: the message and the trailers.
    pub async fn unary<R: Message + Default>(
        &mut self,
        method: &str,
        msg: &impl Message,
        timeout: Duration,
    ) -> io::Result<(Option<R>, String)> {
        self.send(method, msg).await?;
        let status = self.head(timeout).await?;
        assert_eq!(status, 200);
        let mut reply = None;
        loop {
            match self.frame(timeout).await? {
                Some(WebFrame::Message(m)) => {
                    reply = Some(R::decode(m.as_slice()).map_err(io::Error::other)?);
                }
                Some(WebFrame::Trailers(t)) => {
                    // Consume the end of the body so the connection can be reused.
                    while self.frame(timeout).await?.is_some() {}
                    return Ok((reply, t));
                }
                None => return Ok((reply, String::new())),
            }
        }
    }

    fn decode_body(&mut self) {
        match self.mode {
            Some(Body::Sized(ref mut left)) => {
                let n = (*left).min(self.raw.len());
                self.body.extend(self.raw.drain(..n));
                *left -= n;
                if *left == 0 {
                    self.ended = true;
                }
            }
            Some(Body::Chunked) => loop {
                let Some(line_end) = find(&self.raw, b"\r\n") else {
                    return;
                };
                let line = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
                let size_hex = line.split(';').next().unwrap_or("").trim();
                let Ok(size) = usize::from_str_radix(size_hex, 16) else {
                    return;
                };
                if size == 0 {
                    // Last chunk, then (no trailer fields) an empty line.
                    if self.raw.len() >= line_end + 4 {
                        self.raw.drain(..line_end + 4);
                        self.ended = true;
                    }
                    return;
                }
                if self.raw.len() < line_end + 2 + size + 2 {
                    return;
                }
                let data: Vec<u8> = self
                    .raw
                    .drain(..line_end + 2 + size + 2)
                    .skip(line_end + 2)
                    .take(size)
                    .collect();
                self.body.extend(data);
            },
            None => {}
        }
    }

    async fn read_more(&mut self, deadline: Instant) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        match tokio::time::timeout_at(deadline, self.sock.read(&mut chunk)).await {
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
            Ok(Ok(0)) => Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(Ok(n)) => {
                self.raw.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Err(e)) => Err(e),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
