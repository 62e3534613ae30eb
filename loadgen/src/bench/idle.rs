//! Idle memory per connection (issue 13): N connections opened and left idle, the
//! server's resident memory read before and after, for an HTTP/2 connection (preface,
//! SETTINGS exchanged, no stream) and for an HTTP/1.1 keep-alive connection (one `HEAD /`
//! answered, then nothing). Two sizes, so the figure is the *marginal* cost of one more
//! connection (RSS at the larger size minus at the smaller, over the difference), not an
//! average that hides the server's fixed memory.
//!
//! Then where that memory is: the server run under valgrind's DHAT with a few hundred
//! idle connections of each kind, stopped (SIGTERM) so that it writes its file, whose
//! heap blocks live at the peak are summed by the code that asked for them
//! ([`profile::dhat_sites`]) — bytes per connection by allocation site, the profile of
//! a target that is missed. Without valgrind that table is skipped.
//!
//! This machine's open-file hard limit (20 000 here, and a container cannot raise it)
//! bounds the sizes: both processes need one descriptor per connection.

use super::children::Server;
use super::profile;
use super::report::{Section, fixed};
use super::{Ctx, Result};
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The client preface and an empty SETTINGS frame.
const H2_HELLO: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";
/// SETTINGS with the ACK flag.
const H2_SETTINGS_ACK: &[u8] = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00";
/// One keep-alive request with an answer of headers only.
const H1_HEAD: &[u8] = b"HEAD / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// Heap bytes per connection by allocation site, largest first.
type Sites = Vec<(String, f64)>;

/// One protocol's measurement on one server.
#[derive(Debug, Serialize)]
struct Row {
    protocol: &'static str,
    server: &'static str,
    /// Connections the server had closed by the end (a stock server's own idle timeouts).
    closed: usize,
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
    // The stock tonic server has none of these flags (nor the timeouts they lift).
    let servers: [(&str, &Path, &[&str]); 2] = [
        ("ours", &ctx.bins.server, &flags),
        ("stock", &ctx.bins.bench_server, &[]),
    ];
    for (which, protocol) in servers
        .iter()
        .flat_map(|s| ["HTTP/2", "HTTP/1.1"].map(|p| (s, p)))
    {
        let (name, program, flags) = *which;
        let server = Server::start(ctx, &format!("idle-{name}"), program, flags).await?;
        let mut conns = Vec::with_capacity(large);
        // A few first, so that the allocator's and the runtime's start-up is not counted.
        open(&mut conns, server.addr(), protocol, 50).await?;
        let base = settled_rss(&server).await;
        open(&mut conns, server.addr(), protocol, small - 50).await?;
        let at_small = settled_rss(&server).await;
        open(&mut conns, server.addr(), protocol, large - small).await?;
        let at_large = settled_rss(&server).await;
        let closed = conns.iter().filter(|c| is_closed(c)).count();
        rows.push(Row {
            protocol,
            server: name,
            closed,
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
         Ours, and `bench-server` (stock: the same services behind a stock \
         `tonic::transport::Server`; its HTTP/1.1 header read timeout of 30 s may close idle \
         connections during the run: they are counted).\n\n\
         | protocol | server | RSS at {small} / {large} (MiB) | marginal KiB per connection | average KiB per connection | closed by the server | target (ours) |\n\
         |---|---|---|---|---|---|---|\n"
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} (idle{}) | {} | {:.1} / {:.1} | {:.1} | {:.1} | {} | {} |",
            r.protocol,
            if r.protocol == "HTTP/2" {
                ", SETTINGS exchanged"
            } else {
                " keep-alive after one request"
            },
            r.server,
            r.rss_small_kib as f64 / 1024.0,
            r.rss_large_kib as f64 / 1024.0,
            r.marginal_kib_per_connection,
            r.average_kib_per_connection,
            r.closed,
            match (r.server, r.marginal_kib_per_connection <= 12.0) {
                ("stock", _) => "",
                (_, true) => "≤ 12 KiB: met",
                (_, false) => "≤ 12 KiB: **missed**",
            },
        );
    }
    let n = if ctx.quick { 100 } else { 2_000 };
    let mut heap = Vec::new();
    // Ours only: under DHAT the stock server's peak held none of its connections' h2 or
    // hyper buffers (2.7 KiB per connection, the task alone), which its RSS contradicts;
    // a profile that cannot be trusted is left out.
    for (which, protocol) in servers[..1]
        .iter()
        .flat_map(|s| ["HTTP/2", "HTTP/1.1"].map(|p| (s, p)))
    {
        match heap_per_connection(ctx, which, protocol, n).await {
            Ok(sites) => heap.push((protocol, which.0, sites)),
            Err(e) => {
                println!("  idle heap profile skipped: {e}");
                break;
            }
        }
    }
    if !heap.is_empty() {
        md.push_str(&heap_md(n, &heap));
    }
    let js = super::report::Object::new()
        .with("rows", &rows)
        .with("heap_bytes_per_connection", &heap);
    Ok(Section::new(md, &js))
}

/// Heap bytes per idle connection by allocation site: `n` connections of `protocol`
/// opened to the server (`(label, program, flags)`) under DHAT, then the server stopped.
async fn heap_per_connection(
    ctx: &Ctx,
    (label, program, flags): &(&str, &Path, &[&str]),
    protocol: &str,
    n: usize,
) -> Result<Sites> {
    let name = format!(
        "dhat-idle-{label}-{}",
        if protocol == "HTTP/2" { "h2" } else { "http1" }
    );
    let out = ctx.out.join(format!("{name}.json"));
    let tool = [
        "--tool=dhat".to_string(),
        format!("--dhat-out-file={}", out.display()),
    ];
    let mut server = profile::under_valgrind(ctx, &name, &tool, program, flags).await?;
    let mut conns = Vec::with_capacity(n);
    open(&mut conns, server.addr(), protocol, n).await?;
    // Let the last ones reach idle (valgrind runs the server slowly).
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SIGTERM, then the clients go: a stock tonic server's drain waits for its
    // connections to close.
    server.signal_term();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(conns);
    if server.wait_exit(Duration::from_secs(60)).await.is_none() {
        server.kill();
        return Err(format!("{name}: no exit after SIGTERM"));
    }
    let text = std::fs::read_to_string(&out)
        .map_err(|e| format!("{name}: no DHAT file {}: {e}", out.display()))?;
    let dhat: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))?;
    let _ = std::fs::remove_file(&out);
    let sites = profile::dhat_sites(&dhat, n as u64 / 2)?;
    Ok(sites
        .into_iter()
        .map(|(site, bytes)| (site, fixed(bytes / n as f64, 0)))
        .collect())
}

/// The heap table: sites of at least 100 bytes per connection, and the sum.
fn heap_md(n: usize, heap: &[(&str, &str, Sites)]) -> String {
    let mut md = format!(
        "\nWhere an idle connection's memory is (valgrind DHAT, {n} idle connections: heap \
         bytes live at the peak per connection, by the code that allocated them. Allocated \
         is not resident: a buffer's pages never written are not in the RSS, so the sum can \
         exceed the marginal RSS above):\n\n| protocol | server | heap per connection | largest sites (bytes per connection) |\n|---|---|---|---|\n"
    );
    for (protocol, server, sites) in heap {
        let total: f64 = sites.iter().map(|(_, b)| b).sum();
        let mut cell = String::new();
        for (site, bytes) in sites.iter().filter(|(_, b)| *b >= 100.0).take(10) {
            let _ = write!(cell, "{bytes:.0} `{}`; ", profile::short(site, 60));
        }
        let _ = writeln!(
            md,
            "| {protocol} | {server} | {:.1} KiB | {} |",
            total / 1024.0,
            cell.trim_end()
        );
    }
    md
}

/// Whether the server closed `conn` (end of stream or an error, rather than nothing to
/// read).
fn is_closed(conn: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    match conn.try_read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
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
