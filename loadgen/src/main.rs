//! `loadgen`: simulated browser sessions or unary throughput against a server on loopback.
//!
//! ```sh
//! loadgen sessions --addr 127.0.0.1:8080 --sessions 1000 --time 1s --timeout 1s --probe
//! loadgen unary --addr 127.0.0.1:8080 --protocol http1 --concurrency 32
//! ```
//!
//! Progress lines (`READY …`, `MEASURE start`, `MEASURE end`) and, last, one line
//! `REPORT {json}` go to stdout; diagnostics to stderr.

use clap::{Parser, Subcommand, ValueEnum};
use keepalive::client::{BackoffConfig, ClientConfig};
use loadgen::grpc::Wire;
use loadgen::scenario::sessions::{SessionsOptions, Stall};
use loadgen::scenario::unary::UnaryOptions;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "loadgen",
    about = "Browser-shaped load on a keepalive server (loopback only)"
)]
struct Cli {
    /// Runtime worker threads.
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    #[command(subcommand)]
    run: Run,
}

#[derive(Subcommand, Debug)]
enum Run {
    /// N sessions: a resumable subscription plus heartbeats each (capacity, detection,
    /// recovery, fan-out).
    Sessions(SessionsArgs),
    /// Heartbeat calls back to back (throughput).
    Unary(UnaryArgs),
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(clap::Args, Debug)]
struct SessionsArgs {
    /// The server (a loopback address).
    #[arg(long)]
    addr: SocketAddr,
    /// How many sessions.
    #[arg(long, default_value_t = 100)]
    sessions: usize,
    /// Spread session starts over this long.
    #[arg(long, value_parser = duration, default_value = "2s")]
    ramp: Duration,
    /// Stop waiting for all sessions READY after this long.
    #[arg(long, value_parser = duration, default_value = "60s")]
    ready_timeout: Duration,
    /// Wait this long after READY before measuring.
    #[arg(long, value_parser = duration, default_value = "1s")]
    settle: Duration,
    /// The measurement window.
    #[arg(long, value_parser = duration, default_value = "10s")]
    duration: Duration,
    /// Client keepalive Time.
    #[arg(long, value_parser = duration, default_value = "1s")]
    time: Duration,
    /// Client keepalive Timeout.
    #[arg(long, value_parser = duration, default_value = "1s")]
    timeout: Duration,
    /// First reconnect backoff.
    #[arg(long, value_parser = duration, default_value = "1s")]
    backoff_initial: Duration,
    /// Heartbeat every Time even while events arrive.
    #[arg(long)]
    probe: bool,
    /// gRPC-web over one HTTP/2 connection per session (a browser over https) instead of
    /// HTTP/1.1 (a browser over http: a stream connection plus a heartbeat connection).
    #[arg(long)]
    http2: bool,
    /// Connect from this many loopback addresses 127.0.0.2… (0: 127.0.0.1 only).
    #[arg(long, default_value_t = 0)]
    source_ips: u8,
    /// Call chaos STALL this far into the window (needs --chaos-token).
    #[arg(long, value_parser = duration)]
    stall_after: Option<Duration>,
    /// How long the stall lasts.
    #[arg(long, value_parser = duration, default_value = "4s")]
    stall_for: Duration,
    /// The server's chaos token.
    #[arg(long)]
    chaos_token: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Protocol {
    /// gRPC over HTTP/2.
    H2,
    /// gRPC-web over HTTP/1.1.
    Http1,
}

#[derive(clap::Args, Debug)]
struct UnaryArgs {
    /// The server (a loopback address).
    #[arg(long)]
    addr: SocketAddr,
    /// The protocol.
    #[arg(long, value_enum, default_value = "h2")]
    protocol: Protocol,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Calls before measuring.
    #[arg(long, value_parser = duration, default_value = "1s")]
    warmup: Duration,
    /// The measurement window.
    #[arg(long, value_parser = duration, default_value = "3s")]
    duration: Duration,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let addr = match &cli.run {
        Run::Sessions(a) => a.addr,
        Run::Unary(a) => a.addr,
    };
    if !addr.ip().is_loopback() {
        eprintln!("error: loadgen only targets loopback addresses (got {addr})");
        return ExitCode::from(2);
    }
    let wanted = match &cli.run {
        Run::Sessions(a) => a.sessions as u64 * 3 + 1024,
        Run::Unary(a) => a.concurrency as u64 + 1024,
    };
    match loadgen::limits::raise_nofile(wanted) {
        Ok(n) if n < wanted => {
            eprintln!("loadgen: open file limit {n} is below the {wanted} this run may need")
        }
        Ok(_) => {}
        Err(e) => eprintln!("loadgen: cannot read the open file limit: {e}"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cli.threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = runtime.block_on(async {
        match cli.run {
            Run::Sessions(a) => {
                let stall = match (a.stall_after, a.chaos_token) {
                    (Some(after), Some(token)) => Some(Stall {
                        after,
                        hold: a.stall_for,
                        token,
                    }),
                    (Some(_), None) => return Err("--stall-after needs --chaos-token".into()),
                    _ => None,
                };
                let client = ClientConfig {
                    keepalive_time: a.time,
                    keepalive_timeout: a.timeout,
                    backoff: BackoffConfig {
                        initial: a.backoff_initial,
                        ..BackoffConfig::default()
                    },
                    ..ClientConfig::default()
                };
                let report = loadgen::scenario::sessions::run(SessionsOptions {
                    addr: a.addr,
                    sessions: a.sessions,
                    ramp: a.ramp,
                    ready_timeout: a.ready_timeout,
                    settle: a.settle,
                    duration: a.duration,
                    client,
                    probe: a.probe,
                    source_ips: a.source_ips,
                    stall,
                    http2: a.http2,
                    announce: true,
                })
                .await;
                serde_json::to_string(&report).map_err(|e| e.to_string())
            }
            Run::Unary(a) => {
                let wire = match a.protocol {
                    Protocol::H2 => Wire::Grpc,
                    Protocol::Http1 => Wire::Web,
                };
                let report = loadgen::scenario::unary::run(UnaryOptions {
                    addr: a.addr,
                    wire,
                    concurrency: a.concurrency,
                    warmup: a.warmup,
                    duration: a.duration,
                })
                .await
                .map_err(|e| e.to_string())?;
                serde_json::to_string(&report).map_err(|e| e.to_string())
            }
        }
    });
    match json {
        Ok(j) => {
            println!("REPORT {j}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
