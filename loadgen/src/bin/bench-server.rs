//! `bench-server`: the same `keepalive.v1` service behind a stock
//! `tonic::transport::Server` (HTTP/1.1 accepted, tonic-web's layer), with none of the
//! project's connection manager or frame observer. The overhead scenario of
//! `cargo xtask bench` calls both servers with the same client and compares requests/s.
//!
//! ```sh
//! bench-server --listen 127.0.0.1:9090 [--max-ping-strikes 0]
//! ```
//!
//! It prints `listening on ADDR` on stderr as it starts (give it a fixed port) and stops
//! on SIGTERM/SIGINT.

use keepalive::EnforcementPolicy;
use server::clock::Clock;
use server::faults::Faults;
use server::service::{self, KeepaliveService, ServerParts, ServiceSettings};
use server::stats::Stats;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

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
    let settings = ServiceSettings::default();
    let log = match service::open_log(&settings) {
        Ok(log) => log,
        Err(e) => {
            eprintln!("error: {}", e.0);
            return ExitCode::FAILURE;
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let keepalive = KeepaliveService::new(
        settings,
        policy,
        log,
        ServerParts {
            stats: Arc::new(Stats::default()),
            faults: Arc::new(Faults::default()),
            clock: Clock::start(),
            shutdown: stop_rx,
        },
    );
    // tonic binds (with TCP_NODELAY, its default) when serving starts.
    eprintln!("listening on {listen}");
    let result = tonic::transport::Server::builder()
        .accept_http1(true)
        .layer(tonic_web::GrpcWebLayer::new())
        .add_service(keepalive.into_server())
        .serve_with_shutdown(listen, server::shutdown_signal())
        .await;
    let _ = stop_tx.send(true);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
