//! `bench-server`: the same services (the demo's feed and the library's session service)
//! behind a stock `tonic::transport::Server` (HTTP/1.1 accepted, tonic-web's layer), with
//! none of the library's connection manager or frame observer, and tonic-health's stock
//! `grpc.health.v1.Health` (SERVING for ""). The overhead scenario of the bench (`cargo
//! xtask bench`) calls both servers with the same client and compares requests/s; the
//! latency scenario calls Health/Check on both (and on grpc-go) with h2load.
//!
//! ```sh
//! bench-server --listen 127.0.0.1:9090 [--max-ping-strikes 0]
//! ```
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
    eprintln!("usage: bench-server --listen ADDR [--max-ping-strikes N]");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let mut listen: SocketAddr = ([127, 0, 0, 1], 9090).into();
    let mut policy = EnforcementPolicy::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = args.next();
        match (a.as_str(), value) {
            ("--listen", Some(v)) => match v.parse() {
                Ok(addr) => listen = addr,
                Err(_) => return usage(),
            },
            ("--max-ping-strikes", Some(v)) => match v.parse() {
                Ok(n) => policy.max_ping_strikes = n,
                Err(_) => return usage(),
            },
            _ => return usage(),
        }
    }
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
    runtime.block_on(serve(listen, policy))
}

async fn serve(listen: SocketAddr, policy: EnforcementPolicy) -> ExitCode {
    let mut config = Config::default();
    config.browser.enforcement = Some(policy);
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
    let result = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(demo.browser.service())
        .add_service(feed)
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, keepalive_server::shutdown_signal())
        .await;
    demo.browser.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
