//! `prices-server`: the example's binary. `--help` lists the flags — the library's
//! keepalive, enforcement and limit flags (derived from its settings structs), and three
//! of its own.

use prices_server::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli: Cli = match keepalive_server::cli::parse(std::env::args_os()) {
        Ok(cli) => cli,
        Err(keepalive_server::cli::CliOutcome::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(keepalive_server::cli::CliOutcome::Error(e)) => return fail(&e),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .init();
    let Ok(runtime) = keepalive_server::runtime::builder().build() else {
        return fail(&"cannot start the runtime");
    };
    let code = runtime.block_on(async {
        let builder = match prices_server::builder(&cli) {
            Ok(b) => b,
            Err(e) => return fail(&e),
        };
        match builder
            .serve_with_shutdown(cli.listen, keepalive_server::shutdown_signal())
            .await
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e),
        }
    });
    runtime.shutdown_background();
    code
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}
