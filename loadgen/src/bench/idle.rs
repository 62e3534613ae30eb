//! Idle memory per connection (issue 13): N connections opened and left idle, the
//! server's resident memory read before and after, for an HTTP/2 connection (preface,
//! SETTINGS exchanged, no stream) and for an HTTP/1.1 keep-alive connection (one `HEAD /`
//! answered, then nothing). Two sizes, so the figure is the *marginal* cost of one more
//! connection (RSS at the larger size minus at the smaller, over the difference), not an
//! average that hides the server's fixed memory.
//!
//! This machine's open-file hard limit (20 000 here, and a container cannot raise it)
//! bounds the sizes: both processes need one descriptor per connection.

use super::children::Server;
use super::report::{Section, fixed};
use super::{Ctx, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client preface and an empty SETTINGS frame.
const H2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// SETTINGS with the ACK flag.
const H2_SETTINGS_ACK: &[u8] = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00";
/// One keep-alive request with an answer of headers only.
const H1_HEAD: &[u8] = b"HEAD / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// One protocol's measurement.
#[derive(Debug, Serialize)]
struct Row {
    protocol: &'static str,
    small: usize,
    large: usize,
    rss_small_kib: u64,
    rss_large_kib: u64,
    marginal_kib_per_connection: f64,
    average_kib_per_connection: f64,
}

/// Runs the idle-memory scenario.
pub async fn run(ctx: &Ctx, nofile: Option<u64>) -> Result<Section> {
    let limit = nofile.unwrap_or(1024) as usize;
    // Room for the server's own descriptors and the bench's.
    let large = if ctx.quick {
        1_000
    } else {
        15_000.min(limit.saturating_sub(500))
    };
    let small = large / 3;
    let flags = [
        "--max-connections",
        "50000",
        "--first-bytes-timeout",
        "10m",
        "--http1-header-read-timeout",
        "10m",
    ];
    let mut rows = Vec::new();
    for protocol in ["HTTP/2", "HTTP/1.1"] {
        let server = Server::start(ctx, "idle", &ctx.bins.server, &flags).await?;
        let mut conns = Vec::with_capacity(large);
        // A few first, so that the allocator's and the runtime's start-up is not counted.
        open(&mut conns, server.addr(), protocol, 50).await?;
        let base = settled_rss(&server).await;
        open(&mut conns, server.addr(), protocol, small - 50).await?;
        let at_small = settled_rss(&server).await;
        open(&mut conns, server.addr(), protocol, large - small).await?;
        let at_large = settled_rss(&server).await;
        rows.push(Row {
            protocol,
            small,
            large,
            rss_small_kib: at_small,
            rss_large_kib: at_large,
            marginal_kib_per_connection: fixed(
                at_large.saturating_sub(at_small) as f64 / (large - small) as f64,
                2,
            ),
            average_kib_per_connection: fixed(
                at_large.saturating_sub(base) as f64 / (large - 50) as f64,
                2,
            ),
        });
        drop(conns);
    }
    let mut md = format!(
        "### Idle memory per connection: server RSS with {small} and {large} idle connections (open-file limit {limit})\n\n\
         | protocol | RSS at {small} / {large} (MiB) | marginal KiB per connection | average KiB per connection | target |\n\
         |---|---|---|---|---|\n"
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} (idle{}) | {:.1} / {:.1} | {:.1} | {:.1} | ≤ 12 KiB: {} |",
            r.protocol,
            if r.protocol == "HTTP/2" {
                ", SETTINGS exchanged"
            } else {
                " keep-alive after one request"
            },
            r.rss_small_kib as f64 / 1024.0,
            r.rss_large_kib as f64 / 1024.0,
            r.marginal_kib_per_connection,
            r.average_kib_per_connection,
            if r.marginal_kib_per_connection <= 12.0 {
                "met"
            } else {
                "**missed**"
            },
        );
    }
    Ok(Section::new(md, &rows))
}

/// The server's RSS once it has settled (the last connections handled).
async fn settled_rss(server: &Server) -> u64 {
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.usage().rss_kib
}

/// Opens `n` more idle connections of `protocol`, 100 at a time.
async fn open(
    conns: &mut Vec<TcpStream>,
    addr: SocketAddr,
    protocol: &str,
    n: usize,
) -> Result<()> {
    let mut left = n;
    while left > 0 {
        let batch = left.min(100);
        let mut tasks = Vec::with_capacity(batch);
        for _ in 0..batch {
            let h2 = protocol == "HTTP/2";
            tasks.push(tokio::spawn(async move { idle_connection(addr, h2).await }));
        }
        for t in tasks {
            let conn = t
                .await
                .map_err(|e| format!("idle: {e}"))?
                .map_err(|e| format!("idle {protocol} connection to {addr}: {e}"))?;
            conns.push(conn);
        }
        left -= batch;
    }
    Ok(())
}

/// One connection, brought to idle: HTTP/2 with SETTINGS both ways (and acknowledged),
/// or HTTP/1.1 after one answered `HEAD /`.
async fn idle_connection(addr: SocketAddr, h2: bool) -> std::io::Result<TcpStream> {
    let mut conn = TcpStream::connect(addr).await?;
    let mut buf = vec![0u8; 4096];
    if h2 {
        conn.write_all(H2_HELLO).await?;
        // The server's SETTINGS (and, later, its ACK of ours): read until a SETTINGS
        // frame without the ACK flag came, then acknowledge it.
        let mut got = Vec::new();
        loop {
            let n = read_some(&mut conn, &mut buf).await?;
            got.extend_from_slice(&buf[..n]);
            if has_settings(&got) {
                break;
            }
        }
        conn.write_all(H2_SETTINGS_ACK).await?;
    } else {
        conn.write_all(H1_HEAD).await?;
        let mut got = Vec::new();
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = read_some(&mut conn, &mut buf).await?;
            got.extend_from_slice(&buf[..n]);
        }
    }
    Ok(conn)
}

async fn read_some(conn: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<usize> {
    match tokio::time::timeout(Duration::from_secs(10), conn.read(buf)).await {
        Ok(Ok(0)) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Whether `bytes` (frames from the server) hold a SETTINGS frame that is not an ACK.
fn has_settings(bytes: &[u8]) -> bool {
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_be_bytes([0, bytes[at], bytes[at + 1], bytes[at + 2]]) as usize;
        let (kind, flags) = (bytes[at + 3], bytes[at + 4]);
        if kind == 4 && flags & 1 == 0 {
            return true;
        }
        at += 9 + len;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_servers_settings_among_its_frames() {
        // A WINDOW_UPDATE, then a SETTINGS ACK: not yet.
        let mut frames = vec![0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        frames.extend_from_slice(H2_SETTINGS_ACK);
        assert!(!has_settings(&frames));
        // Then SETTINGS with one setting.
        frames.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        assert!(has_settings(&frames));
        assert!(!has_settings(&frames[..frames.len() - 10]));
    }
}
