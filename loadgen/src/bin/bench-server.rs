//! `bench-server`: the same services (the demo's feed and the library's session service)
//! behind a stock `tonic::transport::Server` (HTTP/1.1 accepted, tonic-web's layer), with
//! none of the library's connection manager or frame observer, and tonic-health's stock
//! `grpc.health.v1.Health` (SERVING for ""). The overhead scenario of the bench (`cargo
//! xtask bench`) calls both servers with the same client and compares requests/s; the
//! latency scenario calls Health/Check on both (and on grpc-go) with h2load; the capacity
//! scenario runs browser sessions against both, its ticker included.
//!
//! ```sh
//! bench-server --listen 127.0.0.1:9090 [--max-ping-strikes N] [--min-ping-interval DUR]
//!              [--tick-interval DUR|off] [--max-sessions N] [--max-connections N]
//! ```
//!
//! The flags the bench passes our `server` that this one can honour, through the same
//! public API the demo binary uses:
//! - `--max-ping-strikes`, `--min-ping-interval`: the policy the session service judges
//!   heartbeats by (`BrowserOptions::enforcement`). A stock tonic server has no HTTP/2
//!   PING enforcement of its own, so they do not reach the transport.
//! - `--tick-interval`: the demo's ticker on the feed's log (`Demo::start_ticker`).
//! - `--max-sessions`: the session table's bound (`BrowserOptions::max_sessions`).
//! - `--max-connections`: accepted and **ignored**: a stock tonic server has no limit on
//!   open connections (only the open-file limit, raised to the hard limit at start).
//!
//! It prints `listening on ADDR` on stderr once it listens (with the port the kernel
//! gave it for port 0) and stops on SIGTERM/SIGINT.

use keepalive::EnforcementPolicy;
use keepalive_server::TransportStats;
use server::{Config, Demo};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use tonic::transport::server::TcpIncoming;

fn usage() -> ExitCode {
    eprintln!(
        "usage: bench-server --listen ADDR [--max-ping-strikes N] [--min-ping-interval DUR] \
         [--tick-interval DUR|off] [--max-sessions N] [--max-connections N (ignored)]"
    );
    ExitCode::from(2)
}

/// The command line: where to listen, and the demo's configuration.
fn parse(mut args: impl Iterator<Item = String>) -> Option<(SocketAddr, Config)> {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 9090).into();
    let mut config = Config::default();
    let mut policy = EnforcementPolicy::default();
    while let Some(a) = args.next() {
        let v = args.next()?;
        match a.as_str() {
            "--listen" => listen = v.parse().ok()?,
            "--max-ping-strikes" => policy.max_ping_strikes = v.parse().ok()?,
            "--min-ping-interval" => policy.min_time = humantime::parse_duration(&v).ok()?,
            "--tick-interval" => {
                config.demo.tick_interval = match v.as_str() {
                    "off" => None,
                    v => Some(humantime::parse_duration(v).ok()?),
                }
            }
            "--max-sessions" => config.browser.max_sessions = v.parse().ok()?,
            // No such limit in a stock tonic server: checked, then ignored.
            "--max-connections" => {
                v.parse::<usize>().ok()?;
            }
            _ => return None,
        }
    }
    config.browser.enforcement = Some(policy);
    if let Err(e) = config.browser.validate().and(config.demo.validate()) {
        eprintln!("error: {}", e.0);
        return None;
    }
    Some((listen, config))
}

fn main() -> ExitCode {
    let Some((listen, config)) = parse(std::env::args().skip(1)) else {
        return usage();
    };
    // Ten thousand browser sessions over HTTP/1.1 are twenty thousand sockets.
    let _ = keepalive_server::fdlimit::raise_nofile();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(listen, config))
}

async fn serve(listen: SocketAddr, config: Config) -> ExitCode {
    let demo = match Demo::open(&config) {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let feed = demo.feed(Arc::new(TransportStats::default())).into_server();
    // Bound here (with TCP_NODELAY, as tonic's own bind does), so that the line below
    // names the port and comes once connections are accepted.
    let incoming = match TcpIncoming::bind(listen) {
        Ok(incoming) => incoming.with_nodelay(Some(true)),
        Err(e) => {
            eprintln!("error: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match incoming.local_addr() {
        Ok(addr) => eprintln!("listening on {addr}"),
        Err(e) => eprintln!("warning: bound {listen}, but cannot read the address: {e}"),
    }
    // tonic-health's reporter says SERVING for "" (the whole server) from the start.
    let (_health_reporter, health) = tonic_health::server::health_reporter();
    // `--tick-interval`: the ticker publishes on the feed's log until the server stops.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    demo.start_ticker(stop_rx);
    let result = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(demo.browser.service())
        .add_service(feed)
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, keepalive_server::shutdown_signal())
        .await;
    let _ = stop_tx.send(true);
    demo.browser.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
