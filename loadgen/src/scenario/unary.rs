//! Unary throughput: `concurrency` workers calling Heartbeat back to back for `duration`,
//! over HTTP/2 (native gRPC: one connection, streams multiplexed) or gRPC-web over
//! HTTP/1.1 (one connection per worker, one request at a time). The same client against
//! two servers gives the overhead ratio of one server over the other.
//!
//! The server should run with `--max-ping-strikes 0` (strikes counted, never refused):
//! heartbeats this frequent are all strikes.

use crate::driver::{path, wall_ms};
use crate::grpc::{CallError, Wire};
use crate::histogram::{Histogram, Summary};
use crate::http::{self, Sender, Target};
use keepalive_proto::v1::{
    HeartbeatRequest, HeartbeatResponse, OpenSessionRequest, OpenSessionResponse,
};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What to run.
#[derive(Clone, Debug)]
pub struct UnaryOptions {
    /// The server.
    pub addr: SocketAddr,
    /// gRPC over HTTP/2, or gRPC-web over HTTP/1.1.
    pub wire: Wire,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Calls before measuring (connections warm, allocator settled).
    pub warmup: Duration,
    /// The measurement window.
    pub duration: Duration,
}

/// What it measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UnaryReport {
    /// `h2` or `http1`.
    pub protocol: String,
    /// Calls in flight at once.
    pub concurrency: usize,
    /// Calls answered OK in the window.
    pub requests: u64,
    /// Calls that failed in the window.
    pub errors: u64,
    /// The window, s.
    pub window_s: f64,
    /// Answered calls per second.
    pub requests_per_s: f64,
    /// Call latency.
    pub latency: Summary,
}

#[derive(Debug, Default)]
struct Counts {
    measuring: AtomicBool,
    stop: AtomicBool,
    ok: AtomicU64,
    errors: AtomicU64,
    latency: Histogram,
}

enum Conn {
    H1(http::H1),
    H2(http::H2),
}

impl Conn {
    fn sender(&mut self) -> Sender<'_> {
        match self {
            Conn::H1(c) => Sender::H1(c),
            Conn::H2(c) => Sender::H2(c),
        }
    }
}

async fn open(target: &Target, wire: Wire) -> Result<Conn, CallError> {
    Ok(match wire {
        Wire::Web => Conn::H1(http::open_h1(target).await?),
        Wire::Grpc => Conn::H2(http::open_h2(target).await?),
    })
}

/// Runs the workers and reports.
pub async fn run(opts: UnaryOptions) -> Result<UnaryReport, CallError> {
    let target = Target {
        addr: opts.addr,
        local_ip: None,
    };
    let authority = target.authority();
    let mut first = open(&target, opts.wire).await?;
    let session: OpenSessionResponse = http::unary(
        &mut first.sender(),
        &authority,
        path::OPEN_SESSION,
        &OpenSessionRequest {},
    )
    .await?;
    let counts = Arc::new(Counts::default());
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency.max(1) {
        let mut conn = match (&first, opts.wire) {
            (Conn::H2(shared), Wire::Grpc) => Conn::H2(shared.clone()),
            _ => open(&target, opts.wire).await?,
        };
        let counts = counts.clone();
        let authority = authority.clone();
        let target = target.clone();
        let session_id = session.session_id.clone();
        workers.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !counts.stop.load(Relaxed) {
                seq += 1;
                let req = HeartbeatRequest {
                    session_id: session_id.clone(),
                    sequence: seq,
                    client_send_time_ms: wall_ms(),
                };
                let t0 = tokio::time::Instant::now();
                let res: Result<HeartbeatResponse, _> =
                    http::unary(&mut conn.sender(), &authority, path::HEARTBEAT, &req).await;
                if !counts.measuring.load(Relaxed) {
                    if res.is_err() {
                        // Reconnect and go on (warmup errors are not counted).
                        if let Ok(c) = open(&target, opts.wire).await {
                            conn = c;
                        }
                    }
                    continue;
                }
                match res {
                    Ok(_) => {
                        counts.ok.fetch_add(1, Relaxed);
                        counts.latency.record(t0.elapsed());
                    }
                    Err(_) => {
                        counts.errors.fetch_add(1, Relaxed);
                        if let Ok(c) = open(&target, opts.wire).await {
                            conn = c;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(opts.warmup).await;
    counts.measuring.store(true, Relaxed);
    let start = tokio::time::Instant::now();
    tokio::time::sleep(opts.duration).await;
    counts.measuring.store(false, Relaxed);
    let window_s = start.elapsed().as_secs_f64();
    counts.stop.store(true, Relaxed);
    for w in workers {
        let _ = w.await;
    }
    let requests = counts.ok.load(Relaxed);
    Ok(UnaryReport {
        protocol: match opts.wire {
            Wire::Web => "http1".into(),
            Wire::Grpc => "h2".into(),
        },
        concurrency: opts.concurrency,
        requests,
        errors: counts.errors.load(Relaxed),
        window_s,
        requests_per_s: requests as f64 / window_s.max(1e-9),
        latency: counts.latency.summary(),
    })
}
