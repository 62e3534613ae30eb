//! The server binary: `cargo run --release -p server -- [flags]`; `--help` lists them.
//!
//! Flags and TOML → [`server::Demo`] → the library's builder → serve until SIGTERM/SIGINT
//! (exit 0) or a chaos RESTART (exit 75); a configuration mistake is one line, exit 2.

use server::config::CliOutcome;
use server::{Config, Demo, RESTART_EXIT_CODE};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::str::FromStr;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args_os()) {
        Ok(c) => c,
        Err(CliOutcome::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(CliOutcome::Error(e)) => return fail(&e),
    };
    init_tracing();
    let runtime = match keepalive_server::runtime::builder().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let code = runtime.block_on(run(config));
    // Nothing of the server outlives its drain; don't wait for idle runtime threads either.
    runtime.shutdown_background();
    code
}

async fn run(config: Config) -> ExitCode {
    let demo = match Demo::connect(&config).await {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let builder = match demo.builder() {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let listener = match keepalive_server::listen(config.listen) {
        Ok(l) => l,
        Err(e) => return fail(&format!("cannot listen on {}: {e}", config.listen)),
    };
    // After the bind, so that a bad config or a port in use stays a one-line error.
    keepalive_server::fdlimit::raise_and_log(config.server.limits.max_connections);
    demo.log_web_root();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    demo.start_ticker(stop_rx);
    let mut restart = false;
    let signal = async {
        tokio::select! {
            () = keepalive_server::shutdown_signal() => {}
            () = demo.restart_requested() => {
                tracing::warn!("restart requested (chaos): stopping, then exit code {RESTART_EXIT_CODE}");
                restart = true;
            }
        }
        let _ = stop_tx.send(true);
    };
    match builder.serve_with_incoming_shutdown(listener, signal).await {
        Ok(()) if restart => ExitCode::from(RESTART_EXIT_CODE),
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// One clear line and exit code 2.
fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

/// Logs to stderr; `RUST_LOG` takes `info`, `debug`, `info,h2=debug`, ….
fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|s| Targets::from_str(&s).ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_target(false),
        )
        .with(filter)
        .init();
}
