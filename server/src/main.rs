//! The server binary: `cargo run --release -p server -- [flags]`; `--help` lists them.

use server::config::CliOutcome;
use server::{Config, Server, Stopped};
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
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    let max_connections = config.max_connections;
    runtime.block_on(async {
        let server = match Server::bind(config).await {
            Ok(s) => s,
            Err(e) => return fail(&e),
        };
        // After the bind, so that a bad config or a port in use stays a one-line error.
        server::fdlimit::raise_and_log(max_connections);
        match server.serve_or_restart(server::shutdown_signal()).await {
            Ok(Stopped::Shutdown) => ExitCode::SUCCESS,
            Ok(Stopped::Restart) => ExitCode::from(server::RESTART_EXIT_CODE),
            Err(e) => fail(&e),
        }
    })
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
