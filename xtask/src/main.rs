//! `cargo xtask`: the project's developer commands, written in Rust.
//!
//! `cargo xtask` is an alias (in `.cargo/config.toml`) for
//! `cargo run --quiet --package xtask --`. The crate uses the standard library
//! only, so it builds in seconds on a fresh machine before anything else is
//! installed.
//!
//! - `cargo xtask setup [--browser]`: install the toolchain pieces and the
//!   Python venv, idempotently.
//! - `cargo xtask test [--no-lint] [--no-browser|--browser-only] [-- ARGS]`:
//!   setup (with the browser tools), fmt, clippy, build the server,
//!   `cargo test --workspace`, the browser tests in headless Chromium. This is
//!   what `.ci/run` runs.
//! - `cargo xtask demo [--listen ADDR] [-- ARGS]`: build the dashboard and the
//!   release server, run it with demo settings (restarted on request), print
//!   the page's URL.
//! - `cargo xtask client`: the browser client as an npm package (connect-es transport).
//! - `cargo xtask example [--listen ADDR]`: the example's Rust and TypeScript pages,
//!   served by the example server.
//! - `cargo xtask test-server`: the browser tests' server on fixed addresses, for
//!   `wasm-pack test --headless --chrome keepalive-client` by hand.
//! - `cargo xtask fuzz [--seconds N]`: the long run of the fuzz harnesses.
//! - `cargo xtask bench [--quick] [--only ...]`: measure capacity, overhead,
//!   detection, recovery, fan-out and sizes (issue 5); markdown and JSON.
//! - `cargo xtask soak [--faults N] [--seed S]`: the full chaos soak in headless
//!   Chromium (issue 6).
//! - `cargo xtask help`: usage.
//!
//! # Layout
//!
//! - `main.rs`: entry point; runs a [`cli::Task`] and turns an error into a
//!   message and exit code 1.
//! - [`cli`]: argument parsing and the usage text.
//! - [`client`]: `cargo xtask client`, the browser client as a JS package.
//! - [`cmd`]: [`cmd::Cmd`], run a command, echo it, fail with a clear message.
//! - [`error`]: the one error type, a message for a person.
//! - [`workspace`]: paths (root, `.tools/`, the venv, the target dir) and `$CARGO`.
//! - [`setup`]: `cargo xtask setup`, one function per installed thing.
//! - [`mod@test`]: `cargo xtask test`, timed steps and a summary.
//! - [`browser`]: the browser test step (`testkit browser-server` for the server and its
//!   controller, then `wasm-pack test` in headless Chromium) and `cargo xtask test-server`.
//! - [`demo`]: `cargo xtask demo`.
//! - [`page`]: Trunk builds (the dashboard for `demo` and `test`) and wasm sizes.
//! - [`example`]: the example's pages (Trunk; buf, tsc, esbuild) and `cargo xtask example`.
//! - [`mod@bench`]: `cargo xtask bench`: the release builds, then loadgen's `bench` binary.
//! - [`fuzz`]: `cargo xtask fuzz`.
//! - [`soak`]: `cargo xtask soak`.

mod bench;
mod browser;
mod cli;
mod client;
mod cmd;
mod demo;
mod error;
mod example;
mod fuzz;
mod page;
mod setup;
mod soak;
mod test;
mod workspace;

use std::process::ExitCode;

use cli::Task;
use error::Result;
use workspace::Workspace;

fn run(task: Task) -> Result<()> {
    match task {
        Task::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Task::Setup(options) => setup::run(&Workspace::locate()?, options),
        Task::Test(options) => test::run(&Workspace::locate()?, &options),
        Task::Demo(options) => demo::run(&Workspace::locate()?, &options),
        Task::Client => client::run(&Workspace::locate()?),
        Task::Example(listen) => example::run(&Workspace::locate()?, &listen),
        Task::TestServer => browser::serve(&Workspace::locate()?),
        Task::Bench(options) => bench::run(&Workspace::locate()?, &options),
        Task::Fuzz(options) => fuzz::run(&Workspace::locate()?, &options),
        Task::Soak(options) => soak::run(&Workspace::locate()?, &options),
    }
}

fn main() -> ExitCode {
    let task = match cli::parse(std::env::args_os().skip(1)) {
        Ok(task) => task,
        Err(err) => {
            eprintln!("error: {err}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match run(task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("\nerror: {err}");
            ExitCode::FAILURE
        }
    }
}
